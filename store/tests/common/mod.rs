//! Envelopes built and sealed by hand, for tests that write to a log directly.

use std::time::Duration;

use futures::StreamExt as _;
use prism_store::{
    Append, AppendAck, AppendError, CommitStream, EventEnvelope, EventLog, GENESIS_HASH, StoredCommit,
};

/// How long a test waits for something that should come at once (a live commit, a background write).
pub const PATIENCE: Duration = Duration::from_secs(5);

/// One unsealed event of `aggregate_type`/`aggregate_id` at `version`, shaped like a stored update.
pub fn envelope(aggregate_type: &str, aggregate_id: &str, version: u64, text: &str) -> EventEnvelope {
    EventEnvelope {
        specversion: "1.0".into(),
        id: uuid::Uuid::now_v7().to_string(),
        source: "/prism".into(),
        ty: format!("io.prism.{aggregate_type}.updated.v1"),
        subject: format!("{aggregate_type}/{aggregate_id}"),
        time: prism_domain::testing::fixed_time(),
        datacontenttype: "application/json".into(),
        workspace: None,
        aggregatetype: aggregate_type.into(),
        aggregateid: aggregate_id.into(),
        aggregateversion: version,
        actor: "alice".into(),
        correlationid: "correlation".into(),
        causationid: None,
        traceparent: None,
        prevhash: String::new(),
        data: serde_json::json!({
            "description": text,
            "updated_by": "alice",
            "updated_at": "2024-01-01T00:00:00Z",
        }),
        hash: String::new(),
    }
}

/// Chains `events` after `prevhash` and seals each one; returns the last hash.
pub fn seal(events: &mut [EventEnvelope], prevhash: &str) -> String {
    let mut prev = prevhash.to_owned();
    for event in events {
        event.prevhash = prev;
        event.hash.clear();
        event.hash = event.compute_hash();
        prev = event.hash.clone();
    }
    prev
}

/// One aggregate as a writer sees it: its subject and the tip its next commit continues from.
#[derive(Debug, Clone)]
pub struct Writer {
    pub aggregate_type: String,
    pub id: String,
    pub subject: String,
    pub version: u64,
    pub hash: String,
    /// Stream sequence of the last commit this writer made (0: none).
    pub last_sequence: u64,
}

impl Writer {
    pub fn new(log: &dyn EventLog, aggregate_type: &str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let subject = log
            .subjects()
            .aggregate(aggregate_type, &id)
            .expect("a valid subject");
        Self {
            aggregate_type: aggregate_type.into(),
            id,
            subject,
            version: 0,
            hash: GENESIS_HASH.into(),
            last_sequence: 0,
        }
    }

    pub fn workspace(log: &dyn EventLog) -> Self {
        Self::new(log, "workspace")
    }

    /// `count` sealed events continuing this writer's chain (the tip does not move).
    pub fn next_events(&self, count: usize) -> Vec<EventEnvelope> {
        let mut events: Vec<_> = (1..=count as u64)
            .map(|i| {
                envelope(
                    &self.aggregate_type,
                    &self.id,
                    self.version + i,
                    &format!("v{}", self.version + i),
                )
            })
            .collect();
        seal(&mut events, &self.hash);
        events
    }

    /// The append of `events` expecting this writer's last commit.
    pub fn append_of(&self, events: &[EventEnvelope], msg_id: &str) -> Append {
        Append::envelopes(&self.subject, self.last_sequence, msg_id, events).expect("envelopes serialise")
    }

    /// Moves the tip past `events`, stored at `sequence`.
    pub fn advance(&mut self, events: &[EventEnvelope], sequence: u64) {
        if let Some(last) = events.last() {
            self.version = last.aggregateversion;
            self.hash = last.hash.clone();
        }
        self.last_sequence = sequence;
    }

    /// Appends `events` expecting this writer's last commit; on success the tip moves past them.
    pub async fn append(
        &mut self,
        log: &dyn EventLog,
        events: Vec<EventEnvelope>,
        msg_id: &str,
        fingerprint: Option<&str>,
    ) -> Result<AppendAck, AppendError> {
        let mut append = self.append_of(&events, msg_id);
        append.fingerprint = fingerprint.map(str::to_owned);
        let ack = log.append(append).await?;
        if !ack.duplicate {
            self.advance(&events, ack.sequence);
        }
        Ok(ack)
    }

    /// Appends one well-chained event and returns its stream sequence.
    pub async fn commit(&mut self, log: &dyn EventLog) -> u64 {
        let events = self.next_events(1);
        let msg_id = uuid::Uuid::now_v7().simple().to_string();
        self.append(log, events, &msg_id, None)
            .await
            .expect("an append with the right expectation is stored")
            .sequence
    }
}

/// The next commit of a live read, failing the test if none comes in time.
pub async fn next_commit(stream: &mut CommitStream) -> StoredCommit {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a commit arrives in time")
        .expect("the stream does not end")
        .expect("the commit is readable")
}
