//! The event log on NATS JetStream: the stream's settings, appends with optimistic concurrency and
//! de-duplication, loads, ordered reads. The only module of the platform that speaks JetStream's
//! stream API (with `kv.rs` and `durable.rs` beside it).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
    context::{GetStreamErrorKind, PublishErrorKind},
    message::PublishMessage,
    stream::{Config, DirectGetErrorKind, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};
use async_nats::{HeaderMap, connection::State};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::watch;
use tracing::{info, instrument};

use crate::log::{Append, AppendAck, CommitStream, EventLog, StoredCommit};
use crate::subjects::Subjects;
use crate::{AppendError, StoreError};

/// Content type of a commit message: a JSON array of CloudEvents (the CloudEvents JSON batch format).
const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// Header carrying the request fingerprint of a command sent with an idempotency key.
const FINGERPRINT_HEADER: &str = "Prism-Request-Fingerprint";
/// Commits asked for in one batched direct get. One direct get is a round trip (~170 µs); a batch
/// streams its messages back without one per message, and leaves no consumer behind on the server.
const DIRECT_BATCH: usize = 1024;

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

/// Whether opening the store may create the stream or change its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the stream if missing; bring its de-duplication window to the configured one.
    Manage,
    /// Use the stream as it is (operator tools such as `prism projections status`): never create
    /// or change it; a missing stream is an error.
    Existing,
}

#[derive(Debug, Clone)]
pub struct EventStore {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: Stream,
    config: StoreConfig,
    subjects: Subjects,
    /// Counts reconnections to NATS (see [`EventLog::reconnections`]); the sender lives as long as
    /// any copy of the store, so receivers never see it closed.
    reconnects: Arc<watch::Sender<u64>>,
}

/// Options for connecting to `url` (one URL or a comma-separated list) with the user and password,
/// or token, written in its first URL (`nats://user:password@host:port`): async-nats 0.51 parses
/// them but does not send them.
fn connect_options(url: &str) -> async_nats::ConnectOptions {
    let first = url.split(',').next().unwrap_or_default().trim();
    let Ok(addr) = first.parse::<async_nats::ServerAddr>() else {
        return async_nats::ConnectOptions::new();
    };
    match (
        addr.username().map(percent_decode),
        addr.password().map(percent_decode),
    ) {
        (Some(user), Some(password)) => async_nats::ConnectOptions::with_user_and_password(user, password),
        (Some(token), None) => async_nats::ConnectOptions::with_token(token),
        _ => async_nats::ConnectOptions::new(),
    }
}

/// A URL's user or password with its `%XX` escapes undone.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl EventStore {
    /// Connects to NATS at `url` and opens the stream, creating it if needed (see [`EventStore::open`]).
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        Self::connect_with(url, config, OpenMode::Manage).await
    }

    pub async fn connect_with(url: &str, config: StoreConfig, mode: OpenMode) -> Result<Self, StoreError> {
        let reconnects = Arc::new(watch::Sender::new(0));
        let on_event = reconnects.clone();
        let client = connect_options(url)
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
            .map_err(StoreError::unavailable)?;
        let mut store = Self::open_with(client, config, mode).await?;
        store.reconnects = reconnects;
        Ok(store)
    }

    /// Opens the stream on a caller's connection, creating it if missing and refusing to run on one
    /// with weaker settings.
    pub async fn open(client: async_nats::Client, config: StoreConfig) -> Result<Self, StoreError> {
        Self::open_with(client, config, OpenMode::Manage).await
    }

    #[instrument(skip(client, config), fields(stream = %config.stream))]
    pub async fn open_with(
        client: async_nats::Client,
        config: StoreConfig,
        mode: OpenMode,
    ) -> Result<Self, StoreError> {
        check_server_version(&client.server_info().version)?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);
        let wanted = stream_config(&config);
        let stream = match js.get_stream(&config.stream).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(StoreError::request)?;
                let problems = weaknesses(&info.config, &wanted);
                if !problems.is_empty() {
                    return Err(StoreError::WeakStream {
                        stream: config.stream.clone(),
                        problems: problems.join("; "),
                    });
                }
                if mode == OpenMode::Manage && info.config.duplicate_window != wanted.duplicate_window {
                    let mut updated = info.config.clone();
                    updated.duplicate_window = wanted.duplicate_window;
                    js.update_stream(updated).await.map_err(StoreError::request)?;
                }
                stream
            }
            Err(e) if is_stream_not_found(&e) => match mode {
                OpenMode::Manage => {
                    info!("creating stream");
                    js.create_stream(wanted).await.map_err(StoreError::request)?
                }
                OpenMode::Existing => return Err(StoreError::MissingStream(config.stream.clone())),
            },
            Err(e) => return Err(StoreError::unavailable(e)),
        };
        Ok(Self {
            client,
            js,
            stream,
            subjects: Subjects::new(config.subject_prefix.clone()),
            config,
            reconnects: Arc::new(watch::Sender::new(0)),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The de-duplication window the stream has now (as the server reports it).
    pub async fn duplicate_window(&self) -> Result<Duration, StoreError> {
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(stream.cached_info().config.duplicate_window)
    }

    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The subject of one aggregate (see [`Subjects::aggregate`]).
    pub fn subject(&self, aggregate_type: &str, aggregate_id: &str) -> Result<String, StoreError> {
        self.subjects.aggregate(aggregate_type, aggregate_id)
    }

    pub(crate) fn decode_message(
        sequence: u64,
        subject: String,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<StoredCommit, StoreError> {
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        StoredCommit::decode(
            sequence,
            subject,
            header("Nats-Msg-Id"),
            header(FINGERPRINT_HEADER),
            payload,
        )
    }

    /// Up to `max` commits on `subject` from stream sequence `from` on, in one batched direct get
    /// (`next_by_subj` with `batch`, nats-server ≥ 2.11): the server streams the messages to an inbox
    /// and ends with an end-of-batch status. async-nats has no API for batched gets, so the request is
    /// written here.
    async fn direct_batch(
        &self,
        subject: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredCommit>, StoreError> {
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(StoreError::unavailable)?;
        let request = serde_json::json!({ "seq": from, "next_by_subj": subject, "batch": max });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.config.stream),
                inbox,
                Bytes::from(serde_json::to_vec(&request).map_err(StoreError::request)?),
            )
            .await
            .map_err(StoreError::unavailable)?;
        let mut commits = Vec::new();
        loop {
            let reply = tokio::time::timeout(self.config.request_timeout, replies.next())
                .await
                .map_err(|_| StoreError::unavailable("a batched direct get timed out"))?
                .ok_or_else(|| {
                    StoreError::unavailable("the connection closed during a batched direct get")
                })?;
            match reply.status.map(|s| s.as_u16()) {
                None => {}
                // End of the batch (204), or nothing (more) on the subject (404).
                Some(204 | 404) => break,
                Some(status) => {
                    return Err(StoreError::request(format!(
                        "batched direct get answered {status}: {}",
                        reply.description.unwrap_or_default()
                    )));
                }
            }
            let headers = reply.headers.as_ref();
            let sequence = headers
                .and_then(|h| h.get("Nats-Sequence"))
                .and_then(|v| v.as_str().parse::<u64>().ok())
                .ok_or_else(|| StoreError::request("direct get answer without Nats-Sequence"))?;
            let found_subject = headers
                .and_then(|h| h.get("Nats-Subject"))
                .map_or_else(|| subject.to_owned(), |v| v.as_str().to_owned());
            commits.push(Self::decode_message(
                sequence,
                found_subject,
                headers,
                &reply.payload,
            )?);
            if commits.len() >= max {
                break;
            }
        }
        let _ = replies.unsubscribe().await;
        Ok(commits)
    }
}

#[async_trait]
impl EventLog for EventStore {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    fn is_available(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Consumers restart on a reconnection: after a server restart their server-side state is gone,
    /// and waiting for missed heartbeats to notice would stall read-your-writes for many seconds.
    /// (Stores made with [`EventStore::open`] from a caller's client never report one.)
    fn reconnections(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }

    #[instrument(skip_all, fields(subject = %append.subject))]
    async fn append(&self, append: Append) -> Result<AppendAck, AppendError> {
        // Fail fast while disconnected: the client would otherwise buffer the publish and the caller wait.
        if !self.is_available() {
            return Err(StoreError::unavailable("not connected to NATS").into());
        }
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", BATCH_CONTENT_TYPE);
        if let Some(tp) = &append.traceparent {
            headers.insert("traceparent", tp.as_str());
        }
        if let Some(fingerprint) = &append.fingerprint {
            headers.insert(FINGERPRINT_HEADER, fingerprint.as_str());
        }
        let message = PublishMessage::build()
            .payload(Bytes::from(append.payload))
            .headers(headers)
            .message_id(append.msg_id)
            .expected_last_subject_sequence(append.expected_last_sequence);
        let ack = self
            .js
            .send_publish(append.subject, message)
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(AppendAck {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn subject_last_sequence(&self, subject: &str) -> Result<u64, StoreError> {
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    #[instrument(skip(self))]
    async fn commits_after(&self, subject: &str, after: u64) -> Result<Vec<StoredCommit>, StoreError> {
        let last = self.subject_last_sequence(subject).await?;
        let mut commits = Vec::new();
        let mut next_from = after + 1;
        while next_from <= last {
            let batch = self.direct_batch(subject, next_from, DIRECT_BATCH).await?;
            let Some(newest) = batch.last() else { break };
            next_from = newest.sequence + 1;
            commits.extend(batch.into_iter().filter(|c| c.sequence <= last));
        }
        Ok(commits)
    }

    async fn commit_at(&self, sequence: u64) -> Result<Option<StoredCommit>, StoreError> {
        if sequence == 0 {
            return Ok(None);
        }
        match self.stream.direct_get(sequence).await {
            Ok(m) => Self::decode_message(m.sequence, m.subject.to_string(), Some(&m.headers), &m.payload)
                .map(Some),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        // `get_stream` fetches the stream's info in its one request.
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(stream.cached_info().state.last_sequence)
    }

    async fn read(&self, start_sequence: u64, filter: &str) -> Result<CommitStream, StoreError> {
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
            .map_err(StoreError::unavailable)?;
        let messages = consumer.messages().await.map_err(StoreError::unavailable)?;
        Ok(messages
            .map(|m| {
                let m = m.map_err(StoreError::unavailable)?;
                let sequence = m.info().map_err(StoreError::request)?.stream_sequence;
                Self::decode_message(sequence, m.subject.to_string(), m.headers.as_ref(), &m.payload)
            })
            .boxed())
    }
}

/// Oldest nats-server accepted: 2.9.15–2.9.20 could accept two concurrent publishes with the same
/// expected sequence (nats-server #4320), which would break optimistic concurrency silently, and
/// histories are read with batched direct gets (2.11).
const MIN_SERVER: (u64, u64) = (2, 11);

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
        _ => Err(StoreError::unavailable(format!(
            "nats-server {version} is too old: Prism needs {}.{} or newer with JetStream",
            MIN_SERVER.0, MIN_SERVER.1
        ))),
    }
}

pub(crate) fn stream_config(config: &StoreConfig) -> Config {
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

fn publish_error(e: async_nats::jetstream::context::PublishError) -> AppendError {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => AppendError::Conflict,
        // Retrying cannot help a commit the server will never take: it is the request that is wrong.
        PublishErrorKind::MaxPayloadExceeded => StoreError::TooLarge(e.into()).into(),
        PublishErrorKind::Other | PublishErrorKind::WrongLastMessageId => StoreError::request(e).into(),
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::StreamNotFound
        | PublishErrorKind::MaxAckPending => StoreError::unavailable(e).into(),
    }
}

fn is_stream_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::check_server_version;

    #[test]
    fn old_servers_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("2.9.20").is_err());
        assert!(check_server_version("2.10.22").is_err());
        assert!(check_server_version("2.11.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta").is_ok());
    }
}
