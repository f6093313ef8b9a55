//! Verification of what is read back: every event sits under its own aggregate's subject, matches its
//! hash, and continues its aggregate's chain (consecutive versions, `prevhash` = the previous hash).
//! Loads and subscriptions both use it, so no reader acts on an event it has not checked.

use crate::StoreError;
use crate::envelope::GENESIS_HASH;
use crate::log::StoredCommit;
use crate::subjects::Subjects;

/// Where an aggregate's chain stands: the version and hash of its last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    pub version: u64,
    pub hash: String,
}

impl ChainTip {
    /// Before an aggregate's first event.
    pub fn genesis() -> Self {
        Self {
            version: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// Checks that `commit` is well addressed, intact, and continues the chain at `tip`; returns the tip
/// after it.
pub fn verify_commit(
    subjects: &Subjects,
    tip: &ChainTip,
    commit: &StoredCommit,
) -> Result<ChainTip, StoreError> {
    let tampered = |reason: String| StoreError::Tampered {
        subject: commit.subject.clone(),
        sequence: commit.sequence,
        reason,
    };
    check_well_formed(subjects, commit)?;
    let mut version = tip.version;
    let mut prev = tip.hash.as_str();
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
                "event {} does not chain to the previous event of its aggregate",
                event.id
            )));
        }
        prev = &event.hash;
    }
    Ok(ChainTip {
        version,
        hash: prev.to_owned(),
    })
}

/// [`verify_commit`] over consecutive commits of one aggregate.
pub fn verify_commits(
    subjects: &Subjects,
    tip: ChainTip,
    commits: &[StoredCommit],
) -> Result<ChainTip, StoreError> {
    commits
        .iter()
        .try_fold(tip, |tip, commit| verify_commit(subjects, &tip, commit))
}

/// What can be checked of a commit on its own: not empty, every event stored under its own aggregate's
/// subject, every event matching its hash, and the events chained to each other inside the commit.
pub fn check_well_formed(subjects: &Subjects, commit: &StoredCommit) -> Result<(), StoreError> {
    let tampered = |reason: String| StoreError::Tampered {
        subject: commit.subject.clone(),
        sequence: commit.sequence,
        reason,
    };
    let Some(first) = commit.events.first() else {
        return Err(tampered("a commit without events".into()));
    };
    let Some((aggregate_type, aggregate_id)) = subjects.parse(&commit.subject) else {
        return Err(tampered("the subject is not an aggregate subject".into()));
    };
    let mut prev: Option<&str> = None;
    for (expected_version, event) in (first.aggregateversion..).zip(&commit.events) {
        if event.aggregatetype != aggregate_type || event.aggregateid != aggregate_id {
            return Err(tampered(format!(
                "event {} belongs to {}/{} but is stored under {aggregate_type}/{aggregate_id}",
                event.id, event.aggregatetype, event.aggregateid
            )));
        }
        if event.compute_hash() != event.hash {
            return Err(tampered(format!("event {} does not match its hash", event.id)));
        }
        if event.aggregateversion != expected_version || prev.is_some_and(|p| p != event.prevhash) {
            return Err(tampered(format!(
                "event {} does not follow the event before it in the commit",
                event.id
            )));
        }
        prev = Some(&event.hash);
    }
    Ok(())
}
