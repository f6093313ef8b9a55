//! What readers (projections, workers) receive: verified, typed events.
//!
//! Every commit a reader takes from the log goes through a [`Verifier`] first: each event must sit under
//! its own aggregate's subject, match its hash, and continue its aggregate's chain from the commit
//! before it on that subject. A commit that fails is handed over as [`Checked::Quarantined`], never as
//! events, so no reader acts on a rewritten or misplaced event; the reader records it and goes on.

use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prism_domain::Aggregate;

use crate::chain::{ChainTip, check_well_formed, verify_commit, verify_commits};
use crate::log::{EventLog, StoredCommit};
use crate::{EventEnvelope, StoreError};

/// Everything about a recorded event except its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Stream sequence of the commit the event is part of.
    pub sequence: u64,
    /// CloudEvents id.
    pub id: String,
    /// CloudEvents type, e.g. `io.prism.workspace.archived.v1`.
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's version after this event.
    pub version: u64,
    pub time: DateTime<Utc>,
    pub workspace: Option<String>,
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
}

impl EventMeta {
    /// The metadata of `e`, part of the commit at stream sequence `sequence`.
    pub fn of(sequence: u64, e: &EventEnvelope) -> Self {
        Self {
            sequence,
            id: e.id.clone(),
            event_type: e.ty.clone(),
            aggregate_type: e.aggregatetype.clone(),
            aggregate_id: e.aggregateid.clone(),
            version: e.aggregateversion,
            time: e.time,
            workspace: e.workspace.clone(),
            actor: e.actor.clone(),
            correlation_id: e.correlationid.clone(),
            causation_id: e.causationid.clone(),
            traceparent: e.traceparent.clone(),
        }
    }
}

/// A verified event, decoded into its aggregate's event type.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<E> {
    pub meta: EventMeta,
    pub event: E,
}

/// A commit that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedCommit(StoredCommit);

impl VerifiedCommit {
    pub fn sequence(&self) -> u64 {
        self.0.sequence
    }

    pub fn commit(&self) -> &StoredCommit {
        &self.0
    }

    /// The commit's events as `A`'s events, or `None` when the commit is another aggregate type's.
    /// An event that does not decode (an unknown version, a payload that does not fit its type) is an
    /// error: the caller quarantines the commit.
    pub fn events<A: Aggregate>(&self) -> Option<Result<Vec<Recorded<A::Event>>, StoreError>> {
        let first = self.0.events.first()?;
        if first.aggregatetype != A::TYPE {
            return None;
        }
        Some(
            self.0
                .events
                .iter()
                .map(|e| {
                    let event = e.decode::<A::Event>(A::TYPE).map_err(|err| StoreError::Corrupt {
                        sequence: self.0.sequence,
                        source: err.into(),
                    })?;
                    Ok(Recorded {
                        meta: EventMeta::of(self.0.sequence, e),
                        event,
                    })
                })
                .collect(),
        )
    }
}

/// The outcome of checking one commit.
#[derive(Debug)]
pub enum Checked {
    Verified(VerifiedCommit),
    /// The commit must not be acted on; `reason` says why (always a permanent [`StoreError`]).
    Quarantined {
        commit: StoredCommit,
        reason: StoreError,
    },
}

impl Checked {
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Verified(c) => c.sequence(),
            Self::Quarantined { commit, .. } => commit.sequence,
        }
    }
}

/// Checks commits read in stream order. It remembers the chain tip of recently seen aggregates; for
/// one it has not seen, it asks the log for the commit before on the same subject.
#[derive(Debug)]
pub struct Verifier {
    log: Arc<dyn EventLog>,
    /// Subject → (sequence of its last verified commit, chain tip after it).
    tips: lru::LruCache<String, (u64, ChainTip)>,
    /// Every commit of the stream so far passed through this verifier, and it forgot none: an
    /// aggregate it has not seen has no history yet.
    saw_everything: bool,
}

impl Verifier {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            tips: lru::LruCache::new(NonZeroUsize::new(100_000).expect("non-zero")),
            saw_everything: false,
        }
    }

    /// A verifier for a reader that starts at the stream's first message and is given every commit
    /// after it, in order (a rebuild): until its cache has to forget an aggregate, a commit of one it
    /// has not seen needs no question to the log — that would be one round trip per aggregate, the
    /// largest cost of a rebuild — because nothing came before it.
    pub fn from_first(log: Arc<dyn EventLog>) -> Self {
        Self {
            saw_everything: true,
            ..Self::new(log)
        }
    }

    /// Checks `commit`. An `Err` is an infrastructure failure (the log could not be asked about the
    /// commit before); a bad commit is `Ok(Checked::Quarantined)`.
    pub async fn check(&mut self, commit: StoredCommit) -> Result<Checked, StoreError> {
        let checked = self.check_one(commit).await;
        if matches!(checked, Ok(Checked::Quarantined { .. })) {
            // What follows a bad commit is judged against the log, as without this verifier's
            // memory, so that the reason names the first bad commit of the aggregate.
            self.saw_everything = false;
        }
        checked
    }

    async fn check_one(&mut self, commit: StoredCommit) -> Result<Checked, StoreError> {
        if let Err(reason) = check_well_formed(self.log.subjects(), &commit) {
            return Ok(Checked::Quarantined { commit, reason });
        }
        let tip = match self.tip_before(&commit).await {
            Ok(tip) => tip,
            Err(reason) if reason.is_permanent() => return Ok(Checked::Quarantined { commit, reason }),
            Err(e) => return Err(e),
        };
        match verify_commit(self.log.subjects(), &tip, &commit) {
            Ok(after) => {
                let evicted = self.tips.push(commit.subject.clone(), (commit.sequence, after));
                if evicted.is_some_and(|(subject, _)| subject != commit.subject) {
                    self.saw_everything = false;
                }
                Ok(Checked::Verified(VerifiedCommit(commit)))
            }
            Err(reason) => Ok(Checked::Quarantined { commit, reason }),
        }
    }

    /// The chain tip before `commit`: the cached one when this verifier saw the aggregate's previous
    /// commit, else the tip of the aggregate's history before `commit`, verified from its first event
    /// (once per aggregate: a claim to be version 1 is only believed if nothing came before it).
    async fn tip_before(&mut self, commit: &StoredCommit) -> Result<ChainTip, StoreError> {
        match self.tips.get(&commit.subject) {
            Some((sequence, tip)) if *sequence < commit.sequence => return Ok(tip.clone()),
            None if self.saw_everything => return Ok(ChainTip::genesis()),
            _ => {}
        }
        let history: Vec<StoredCommit> = self
            .log
            .commits_after(&commit.subject, 0)
            .await?
            .into_iter()
            .take_while(|c| c.sequence < commit.sequence)
            .collect();
        verify_commits(self.log.subjects(), ChainTip::genesis(), &history)
    }
}
