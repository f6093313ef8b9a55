//! The JetStream log underneath: the only module that uses `prism-store`.
//!
//! It reads an aggregate's history as plain events with the position the next commit must append
//! at, and appends a commit as one message of sealed, hash-chained CloudEvents.

use serde_json::Value;
use uuid::Uuid;

use prism_store::EventLog as _;
use prism_store::chain::{ChainTip, verify_commits};

use crate::error::Error;
use crate::mapping::Attributes;

pub use prism_store::EventStore as JetStreamLog;
pub use prism_store::StoreConfig;

/// Where an aggregate's history ends: what the next commit must chain to and append after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// Stream sequence of the aggregate's last message (0: none), the expected last subject sequence
    /// of the next append.
    pub last_sequence: u64,
    /// `aggregateversion` of the last event (0: none).
    pub version: u64,
    /// `hash` of the last event; the next event's `prevhash`.
    pub last_hash: String,
}

impl Head {
    pub(crate) fn empty() -> Self {
        Self {
            last_sequence: 0,
            version: 0,
            last_hash: prism_store::GENESIS_HASH.to_owned(),
        }
    }
}

/// One stored event, as much of its envelope as the adapter reads.
#[derive(Debug, Clone)]
pub(crate) struct LoggedEvent {
    pub ce_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    pub data: Value,
}

/// One event to append: its CloudEvents `type` and `data`.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub ce_type: String,
    pub data: Value,
}

/// The aggregate a commit belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub subject: &'a str,
}

/// The commit's fixed attributes besides the events themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitAttributes<'a> {
    pub source: &'a str,
    pub who: &'a Attributes,
}

/// Connects to NATS and opens (or creates, or checks) the stream.
pub(crate) async fn connect(url: &str, config: StoreConfig) -> Result<JetStreamLog, Error> {
    JetStreamLog::connect(url, config).await.map_err(store_error)
}

/// The name of the stream the log is kept in.
pub(crate) fn stream_name(log: &JetStreamLog) -> &str {
    &log.config().stream
}

/// The subject of one aggregate (`<prefix>.<aggregate type>.<aggregate id>`).
pub(crate) fn subject(log: &JetStreamLog, aggregate_type: &str, aggregate_id: &str) -> Result<String, Error> {
    log.subject(aggregate_type, aggregate_id).map_err(|e| match e {
        prism_store::StoreError::InvalidId(id) => Error::InvalidId(id),
        other => store_error(other),
    })
}

/// Stream sequence of the aggregate's last message (0: none). One round trip.
pub(crate) async fn last_sequence(log: &JetStreamLog, subject: &str) -> Result<u64, Error> {
    log.subject_last_sequence(subject).await.map_err(store_error)
}

/// The aggregate's events after `from` ([`Head::empty`]: all of them), oldest first, verified to
/// continue the hash chain from `from`, and the head after them.
pub(crate) async fn read_after(
    log: &JetStreamLog,
    subject: &str,
    from: &Head,
) -> Result<(Vec<LoggedEvent>, Head), Error> {
    let commits = log
        .commits_after(subject, from.last_sequence)
        .await
        .map_err(store_error)?;
    let tip = ChainTip {
        version: from.version,
        hash: from.last_hash.clone(),
    };
    verify_commits(log.subjects(), tip, &commits).map_err(store_error)?;
    let mut head = from.clone();
    let mut events = Vec::with_capacity(commits.iter().map(|c| c.events.len()).sum());
    for commit in commits {
        head.last_sequence = commit.sequence;
        for envelope in commit.events {
            head.version = envelope.aggregateversion;
            head.last_hash = envelope.hash;
            events.push(LoggedEvent {
                ce_type: envelope.ty,
                aggregate_type: envelope.aggregatetype,
                aggregate_id: envelope.aggregateid,
                version: envelope.aggregateversion,
                data: envelope.data,
            });
        }
    }
    Ok((events, head))
}

/// Appends `events` as one message after `head`: versions consecutive from `head.version + 1`, each
/// event's `prevhash` the previous event's `hash`. Fails with [`Error::Conflict`] when the aggregate
/// has another message after `head.last_sequence`. Returns the aggregate's head after the commit.
pub(crate) async fn append(
    log: &JetStreamLog,
    target: Target<'_>,
    head: &Head,
    attributes: CommitAttributes<'_>,
    events: Vec<NewEvent>,
) -> Result<Head, Error> {
    let time = chrono::Utc::now();
    let who = attributes.who;
    let mut envelopes = Vec::with_capacity(events.len());
    let mut prevhash = head.last_hash.clone();
    let mut commit_correlation = who.correlation_id.clone();
    for (version, event) in (head.version + 1..).zip(events) {
        let id = Uuid::now_v7().to_string();
        // As in Prism: without a correlation id the commit is correlated by its first event.
        let correlation_id = commit_correlation.get_or_insert_with(|| id.clone()).clone();
        let mut envelope = prism_store::EventEnvelope {
            specversion: "1.0".into(),
            id,
            source: attributes.source.to_owned(),
            ty: event.ce_type,
            subject: format!("{}/{}", target.aggregate_type, target.aggregate_id),
            time,
            datacontenttype: "application/json".into(),
            workspace: None,
            aggregatetype: target.aggregate_type.to_owned(),
            aggregateid: target.aggregate_id.to_owned(),
            aggregateversion: version,
            actor: who.actor.clone(),
            correlationid: correlation_id,
            causationid: who.causation_id.clone(),
            traceparent: who.traceparent.clone(),
            prevhash,
            data: event.data,
            hash: String::new(),
        };
        envelope.hash = envelope.compute_hash();
        prevhash = envelope.hash.clone();
        envelopes.push(envelope);
    }
    let payload = serde_json::to_vec(&envelopes).map_err(|e| Error::Store(Box::new(e)))?;
    let append = prism_store::Append {
        subject: target.subject.to_owned(),
        expected_last_sequence: head.last_sequence,
        // A fresh id per commit: cqrs-es has no idempotency key, and an id derived from the
        // position could make the server answer a different commit as a duplicate.
        msg_id: Uuid::now_v7().to_string(),
        fingerprint: None,
        traceparent: who.traceparent.clone(),
        payload,
    };
    match log.append(append).await {
        Ok(ack) if ack.duplicate => Err(Error::Duplicate),
        Ok(ack) => Ok(Head {
            last_sequence: ack.sequence,
            version: head.version + envelopes.len() as u64,
            last_hash: prevhash,
        }),
        Err(prism_store::AppendError::Conflict) => Err(Error::Conflict),
        Err(prism_store::AppendError::Store(e)) => Err(store_error(e)),
    }
}

fn store_error(e: prism_store::StoreError) -> Error {
    match e {
        prism_store::StoreError::Unavailable(_) => Error::Unavailable(Box::new(e)),
        prism_store::StoreError::InvalidId(id) => Error::InvalidId(id),
        other => Error::Store(Box::new(other)),
    }
}
