//! JetStream adapter: the stream's settings, appends with optimistic concurrency, loads, ordered reads.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
    context::{GetStreamErrorKind, PublishErrorKind},
    message::PublishMessage,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};
use async_nats::{HeaderMap, connection::State};
use bytes::Bytes;
use futures::{Stream as FuturesStream, StreamExt as _, TryStreamExt as _};
use tokio::sync::watch;
use tracing::{info, instrument};

use crate::envelope::{EventEnvelope, GENESIS_HASH};

/// Content type of a commit message: a JSON array of CloudEvents (the CloudEvents JSON batch format).
const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// Above this many messages an aggregate is read with an ordered consumer instead of direct gets:
/// one direct get is a round trip (~170 µs), a consumer drains ~170k msgs/s after a slower start.
const DIRECT_GET_LIMIT: usize = 16;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub stream: String,
    /// Subjects are `<prefix>.<aggregate type>.<aggregate id>`.
    pub subject_prefix: String,
    /// How long JetStream remembers a `Nats-Msg-Id` for de-duplication.
    pub duplicate_window: Duration,
    pub replicas: usize,
    /// Upper bound for any single request to JetStream; past it a command fails as unavailable.
    pub request_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            stream: "PRISM_EVENTS".into(),
            subject_prefix: "prism.ev".into(),
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            request_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "stream `{stream}` exists with settings too weak for an audit log: {problems}. \
         Fix the stream (or use another name) before starting Prism."
    )]
    WeakStream { stream: String, problems: String },
    #[error("event log tampering detected on `{subject}` at stream sequence {sequence}: {reason}")]
    Tampered {
        subject: String,
        sequence: u64,
        reason: String,
    },
    #[error("stored message at stream sequence {sequence} is unreadable: {reason}")]
    Corrupt { sequence: u64, reason: String },
    #[error("the commit is larger than the event store accepts in one message: {0}")]
    TooLarge(String),
    #[error("invalid aggregate id `{0}`: it must be a single NATS subject token")]
    InvalidId(String),
    #[error("event store request failed: {0}")]
    Request(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another commit reached the aggregate first.
    #[error("concurrent write to the aggregate")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub sequence: u64,
    /// JetStream had already stored a message with this `Nats-Msg-Id`; nothing new was appended.
    pub duplicate: bool,
}

/// One stored message: the ordered events of one command commit.
#[derive(Debug, Clone)]
pub struct StoredCommit {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub events: Vec<EventEnvelope>,
}

#[derive(Debug, Clone)]
pub struct EventStore {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: Stream,
    config: StoreConfig,
    /// Counts reconnections to NATS (see [`EventStore::reconnections`]); the sender lives as long as
    /// any copy of the store, so receivers never see it closed.
    reconnects: Arc<watch::Sender<u64>>,
}

impl EventStore {
    /// Connects to NATS at `url` and opens the stream (see [`EventStore::open`]).
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        let reconnects = Arc::new(watch::Sender::new(0));
        let on_event = reconnects.clone();
        let client = async_nats::ConnectOptions::new()
            .name("prism")
            .connection_timeout(config.request_timeout)
            .event_callback(move |event| {
                let on_event = on_event.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        on_event.send_modify(|count| *count += 1);
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to NATS at {url}: {e}")))?;
        let mut store = Self::open(client, config).await?;
        store.reconnects = reconnects;
        Ok(store)
    }

    /// Changes each time the connection to NATS is re-established. Consumers restart on it: after a
    /// server restart their server-side state is gone, and waiting for missed heartbeats to notice
    /// would stall read-your-writes for many seconds. (Stores made with [`EventStore::open`] from a
    /// caller's client never report one.)
    pub fn reconnections(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }

    /// Connects to the stream, creating it if missing and refusing to run on one with weaker settings.
    #[instrument(skip(client, config), fields(stream = %config.stream))]
    pub async fn open(client: async_nats::Client, config: StoreConfig) -> Result<Self, StoreError> {
        check_server_version(&client.server_info().version)?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);
        let wanted = stream_config(&config);
        let stream = match js.get_stream(&config.stream).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(request)?;
                let problems = weaknesses(&info.config, &wanted);
                if !problems.is_empty() {
                    return Err(StoreError::WeakStream {
                        stream: config.stream.clone(),
                        problems: problems.join("; "),
                    });
                }
                if info.config.duplicate_window != wanted.duplicate_window {
                    let mut updated = info.config.clone();
                    updated.duplicate_window = wanted.duplicate_window;
                    js.update_stream(updated).await.map_err(request)?;
                }
                stream
            }
            Err(e) if is_stream_not_found(&e) => {
                info!("creating stream");
                js.create_stream(wanted).await.map_err(request)?
            }
            Err(e) => return Err(unavailable(e)),
        };
        Ok(Self {
            client,
            js,
            stream,
            config,
            reconnects: Arc::new(watch::Sender::new(0)),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn subject(&self, aggregate_type: &str, aggregate_id: &str) -> Result<String, StoreError> {
        let valid = !aggregate_id.is_empty()
            && aggregate_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(StoreError::InvalidId(aggregate_id.into()));
        }
        Ok(format!(
            "{}.{aggregate_type}.{aggregate_id}",
            self.config.subject_prefix
        ))
    }

    /// Appends one commit. `expected_last_sequence` is the stream sequence of the aggregate's last
    /// message (0 for a new aggregate); anything else in between is reported as [`AppendError::Conflict`].
    #[instrument(skip(self, events), fields(events = events.len()))]
    pub async fn append(
        &self,
        subject: &str,
        expected_last_sequence: u64,
        msg_id: &str,
        events: &[EventEnvelope],
    ) -> Result<AppendAck, AppendError> {
        let payload = serde_json::to_vec(events).map_err(|e| StoreError::Request(e.to_string()))?;
        let traceparent = events.first().and_then(|e| e.traceparent.as_deref());
        self.append_payload(subject, expected_last_sequence, msg_id, payload, traceparent)
            .await
    }

    /// [`EventStore::append`] for a commit already serialised as a JSON array of envelopes.
    pub(crate) async fn append_payload(
        &self,
        subject: &str,
        expected_last_sequence: u64,
        msg_id: &str,
        payload: Vec<u8>,
        traceparent: Option<&str>,
    ) -> Result<AppendAck, AppendError> {
        // Fail fast while disconnected: the client would otherwise buffer the publish and the caller wait.
        if !self.is_connected() {
            return Err(StoreError::Unavailable("not connected to NATS".into()).into());
        }
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", BATCH_CONTENT_TYPE);
        if let Some(tp) = traceparent {
            headers.insert("traceparent", tp);
        }
        let message = PublishMessage::build()
            .payload(Bytes::from(payload))
            .headers(headers)
            .message_id(msg_id)
            .expected_last_subject_sequence(expected_last_sequence);
        let ack = self
            .js
            .send_publish(subject.to_owned(), message)
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(AppendAck {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Stream sequence of the last commit on `subject` (0: none). One round trip.
    pub async fn subject_last_sequence(&self, subject: &str) -> Result<u64, StoreError> {
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every commit of one aggregate, oldest first, with its hash chain and versions verified.
    #[instrument(skip(self))]
    pub async fn load(&self, subject: &str) -> Result<Vec<StoredCommit>, StoreError> {
        let last = self.subject_last_sequence(subject).await?;
        if last == 0 {
            return Ok(Vec::new());
        }
        let mut commits = Vec::new();
        let mut next_from = 1;
        while next_from <= last && commits.len() < DIRECT_GET_LIMIT {
            let m = self
                .stream
                .direct_get_next_for_subject(subject, Some(next_from))
                .await
                .map_err(unavailable)?;
            next_from = m.sequence + 1;
            commits.push(StoredCommit::decode(
                m.sequence,
                m.subject.to_string(),
                &m.headers,
                &m.payload,
            )?);
        }
        if next_from <= last {
            let mut rest = self.read_from(next_from, subject).await?;
            while let Some(commit) = rest.try_next().await? {
                let done = commit.sequence >= last;
                commits.push(commit);
                if done {
                    break;
                }
            }
        }
        verify_chain(subject, &commits)?;
        Ok(commits)
    }

    /// The log in stream order from `start_sequence` (≥ 1), restricted to `filter` (`>` wildcards
    /// allowed), live: the stream never ends, it waits for new commits.
    pub async fn read_from(
        &self,
        start_sequence: u64,
        filter: &str,
    ) -> Result<impl FuturesStream<Item = Result<StoredCommit, StoreError>> + Send + use<>, StoreError> {
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: filter.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start_sequence.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        Ok(messages.map(|m| {
            let m = m.map_err(unavailable)?;
            let sequence = m
                .info()
                .map_err(|e| StoreError::Request(e.to_string()))?
                .stream_sequence;
            let headers = m.headers.clone().unwrap_or_default();
            StoredCommit::decode(sequence, m.subject.to_string(), &headers, &m.payload)
        }))
    }

    /// The stream sequence of the newest message in the log (0 when empty).
    pub async fn last_sequence(&self) -> Result<u64, StoreError> {
        // `get_stream` already fetched the stream's info; asking for it again would be a second request.
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(unavailable)?;
        Ok(stream.cached_info().state.last_sequence)
    }
}

/// Oldest nats-server accepted: 2.9.15–2.9.20 could accept two concurrent publishes with the same
/// expected sequence (nats-server #4320), which would break optimistic concurrency silently.
const MIN_SERVER: (u64, u64) = (2, 10);

fn check_server_version(version: &str) -> Result<(), StoreError> {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    match (major, minor) {
        (Some(major), Some(minor)) if (major, minor) >= MIN_SERVER => Ok(()),
        // Unknown (not yet received) info: the stream requests below will tell.
        _ if version.is_empty() => Ok(()),
        _ => Err(StoreError::Unavailable(format!(
            "nats-server {version} is too old: Prism needs {}.{} or newer with JetStream",
            MIN_SERVER.0, MIN_SERVER.1
        ))),
    }
}

fn stream_config(config: &StoreConfig) -> Config {
    Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_age: Duration::ZERO,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        allow_direct: true,
        duplicate_window: config.duplicate_window,
        num_replicas: config.replicas,
        description: Some("Prism event log (append-only, hash-chained CloudEvents)".into()),
        ..Default::default()
    }
}

/// Every way an existing stream could lose or rewrite events that the wanted one cannot.
fn weaknesses(have: &Config, want: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_owned());
        }
    };
    check(have.storage == StorageType::File, "storage is not file");
    check(
        have.retention == RetentionPolicy::Limits,
        "retention is not limits (messages would be removed)",
    );
    check(have.max_age.is_zero(), "max_age is set (old events would expire)");
    check(
        have.max_messages < 0 && have.max_bytes < 0,
        "max_msgs/max_bytes limits are set",
    );
    check(have.max_messages_per_subject < 0, "max_msgs_per_subject is set");
    check(have.deny_delete, "deny_delete is off");
    check(have.deny_purge, "deny_purge is off");
    check(!have.allow_rollup, "allow_rollup is on (a rollup purges history)");
    check(have.allow_direct, "allow_direct is off");
    check(!have.sealed, "the stream is sealed");
    check(
        have.num_replicas >= want.num_replicas,
        "fewer replicas than configured",
    );
    check(
        have.subjects.iter().any(|s| want.subjects.contains(s)),
        "subjects do not include the event subjects",
    );
    problems
}

impl StoredCommit {
    /// Reads a commit from a stream message (from a direct get or any consumer).
    pub fn decode(
        sequence: u64,
        subject: String,
        headers: &HeaderMap,
        payload: &[u8],
    ) -> Result<Self, StoreError> {
        let events: Vec<EventEnvelope> =
            serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
                sequence,
                reason: e.to_string(),
            })?;
        let msg_id = headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned());
        Ok(Self {
            sequence,
            subject,
            msg_id,
            events,
        })
    }
}

fn verify_chain(subject: &str, commits: &[StoredCommit]) -> Result<(), StoreError> {
    let mut prev = GENESIS_HASH.to_owned();
    let mut version = 0;
    for commit in commits {
        let tampered = |reason: String| StoreError::Tampered {
            subject: subject.into(),
            sequence: commit.sequence,
            reason,
        };
        if commit.events.is_empty() {
            return Err(tampered("a commit without events".into()));
        }
        for event in &commit.events {
            version += 1;
            if event.aggregateversion != version {
                return Err(tampered(format!(
                    "event {} has version {}, expected {version}",
                    event.id, event.aggregateversion
                )));
            }
            if event.prevhash != prev {
                return Err(tampered(format!(
                    "event {} does not chain to the previous event",
                    event.id
                )));
            }
            if event.compute_hash() != event.hash {
                return Err(tampered(format!("event {} does not match its hash", event.id)));
            }
            prev.clone_from(&event.hash);
        }
    }
    Ok(())
}

fn publish_error(e: async_nats::jetstream::context::PublishError) -> AppendError {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => AppendError::Conflict,
        // Retrying cannot help a commit the server will never take: it is the request that is wrong.
        PublishErrorKind::MaxPayloadExceeded => StoreError::TooLarge(e.to_string()).into(),
        PublishErrorKind::Other | PublishErrorKind::WrongLastMessageId => {
            StoreError::Request(e.to_string()).into()
        }
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::StreamNotFound
        | PublishErrorKind::MaxAckPending => StoreError::Unavailable(e.to_string()).into(),
    }
}

fn is_stream_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn request(e: impl std::fmt::Display) -> StoreError {
    StoreError::Request(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::check_server_version;

    #[test]
    fn old_servers_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("2.9.20").is_err());
        assert!(check_server_version("2.10.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta").is_ok());
    }
}
