//! The event log as the rest of the platform sees it: a trait with two implementations, JetStream
//! ([`crate::EventStore`]) and memory ([`crate::MemoryLog`], for application-layer tests), held to the
//! same contract by `tests/log_contract.rs`.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::stream::BoxStream;
use prism_domain::ledger::{Digest, leaf_hash};
use tokio::sync::watch;

use crate::chain::{ChainTip, verify_commits};
use crate::envelope::EventEnvelope;
use crate::subjects::Subjects;
use crate::{AppendError, StoreError};

/// One commit to append: the ordered events of one command, already serialised as a JSON array of
/// sealed envelopes.
#[derive(Debug, Clone)]
pub struct Append {
    pub subject: String,
    /// Stream sequence of the aggregate's last commit (0 for a new aggregate); anything else on the
    /// subject in between is a [`AppendError::Conflict`].
    pub expected_last_sequence: u64,
    /// De-duplication id (`Nats-Msg-Id`).
    pub msg_id: String,
    /// Fingerprint of the request, for commands sent with an idempotency key; stored with the commit so
    /// that the key can be checked against a retry's content at any age.
    pub fingerprint: Option<String>,
    pub traceparent: Option<String>,
    pub payload: Vec<u8>,
}

impl Append {
    /// An append of envelopes built and sealed by the caller (the repository builds its own payload).
    pub fn envelopes(
        subject: impl Into<String>,
        expected_last_sequence: u64,
        msg_id: impl Into<String>,
        events: &[EventEnvelope],
    ) -> Result<Self, StoreError> {
        Ok(Self {
            subject: subject.into(),
            expected_last_sequence,
            msg_id: msg_id.into(),
            fingerprint: None,
            traceparent: events.first().and_then(|e| e.traceparent.clone()),
            payload: serde_json::to_vec(events).map_err(StoreError::request)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub sequence: u64,
    /// A commit with this `msg_id` was already stored (within the de-duplication window); nothing new
    /// was appended, and `sequence` is the earlier commit's.
    pub duplicate: bool,
}

/// One stored message: the ordered events of one command commit.
#[derive(Debug, Clone)]
pub struct StoredCommit {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    /// Present exactly on commits of commands sent with an idempotency key.
    pub fingerprint: Option<String>,
    pub events: Vec<EventEnvelope>,
    /// Size of the stored message body.
    pub bytes: usize,
}

impl StoredCommit {
    /// Reads a commit from a message body (a JSON array of envelopes).
    pub fn decode(
        sequence: u64,
        subject: String,
        msg_id: Option<String>,
        fingerprint: Option<String>,
        payload: &[u8],
    ) -> Result<Self, StoreError> {
        let events: Vec<EventEnvelope> =
            serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
                sequence,
                source: e.into(),
            })?;
        Ok(Self {
            sequence,
            subject,
            msg_id,
            fingerprint,
            events,
            bytes: payload.len(),
        })
    }

    /// The commit's leaf in the audit ledger (`prism_domain::ledger`): the RFC 6962 leaf hash of
    ///
    /// ```text
    /// prism-audit-leaf-v1
    /// <subject>
    /// <Nats-Msg-Id, or nothing>
    /// <request fingerprint, or nothing>
    /// <hash of the first event>
    /// …
    /// ```
    ///
    /// each line ending in `\n`. Each event's hash covers all of that event (its data and every
    /// attribute), so the leaf covers the whole commit once the events are checked against their
    /// hashes ([`crate::check_well_formed`]). The stream sequence is left out: the leaf's place in a
    /// checkpoint says where the commit stood, and a commit moved elsewhere is recognised by it.
    pub fn leaf(&self) -> Digest {
        let mut data = String::with_capacity(64 + self.subject.len() + 65 * (self.events.len() + 2));
        for line in [
            "prism-audit-leaf-v1",
            &self.subject,
            self.msg_id.as_deref().unwrap_or_default(),
            self.fingerprint.as_deref().unwrap_or_default(),
        ]
        .into_iter()
        .chain(self.events.iter().map(|e| e.hash.as_str()))
        {
            data.push_str(line);
            data.push('\n');
        }
        leaf_hash(data.as_bytes())
    }

    /// The chain tip after this commit, as the commit itself states it.
    pub fn tip(&self) -> Option<ChainTip> {
        self.events.last().map(|e| ChainTip {
            version: e.aggregateversion,
            hash: e.hash.clone(),
        })
    }
}

/// The log in stream order; it never ends, it waits for new commits.
pub type CommitStream = BoxStream<'static, Result<StoredCommit, StoreError>>;

#[async_trait]
pub trait EventLog: Send + Sync + Debug + 'static {
    fn subjects(&self) -> &Subjects;

    /// False while the log cannot be reached, so that commands fail at once instead of waiting.
    fn is_available(&self) -> bool;

    /// Changes each time the connection to the log is re-established; readers restart on it.
    fn reconnections(&self) -> watch::Receiver<u64>;

    async fn append(&self, append: Append) -> Result<AppendAck, AppendError>;

    /// Stream sequence of the last commit on `subject` (0: none).
    async fn subject_last_sequence(&self, subject: &str) -> Result<u64, StoreError>;

    /// The commits on `subject` with a stream sequence above `after`, oldest first, up to the subject's
    /// last commit when asked. Not verified: see [`EventLog::load`].
    async fn commits_after(&self, subject: &str, after: u64) -> Result<Vec<StoredCommit>, StoreError>;

    /// The commit at one stream sequence, if there is one.
    async fn commit_at(&self, sequence: u64) -> Result<Option<StoredCommit>, StoreError>;

    /// The stream sequence of the newest commit in the log (0 when empty).
    async fn last_sequence(&self) -> Result<u64, StoreError>;

    /// The log in stream order from `start_sequence` (≥ 1), restricted to `filter` (NATS wildcards),
    /// live. Not verified: subscriptions verify (see [`crate::Subscription`]).
    async fn read(&self, start_sequence: u64, filter: &str) -> Result<CommitStream, StoreError>;

    /// Every commit of one aggregate, oldest first, with its hash chain, versions and addresses verified.
    async fn load(&self, subject: &str) -> Result<Vec<StoredCommit>, StoreError> {
        let commits = self.commits_after(subject, 0).await?;
        verify_commits(self.subjects(), ChainTip::genesis(), &commits)?;
        Ok(commits)
    }
}
