//! An event log in memory, with the same contract as the JetStream store (optimistic concurrency per
//! subject, de-duplication by message id within a window, the expected-sequence check winning over
//! de-duplication, live reads). It makes application-layer tests run in milliseconds; end-to-end tests
//! keep the real NATS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::sync::watch;

use crate::log::{Append, AppendAck, CommitStream, EventLog, StoredCommit};
use crate::subjects::{Subjects, matches};
use crate::{AppendError, StoreError};

#[derive(Debug, Default)]
struct State {
    /// Index `i` holds stream sequence `i + 1`.
    commits: Vec<StoredCommit>,
    by_subject: HashMap<String, Vec<u64>>,
    msg_ids: HashMap<String, (u64, Instant)>,
}

#[derive(Debug, Clone)]
pub struct MemoryLog {
    subjects: Subjects,
    duplicate_window: Duration,
    state: Arc<Mutex<State>>,
    /// Appends wait while this is true (see [`MemoryLog::hold_appends`]).
    held: Arc<watch::Sender<bool>>,
    /// `(subject, after)` of every `commits_after` (see [`MemoryLog::take_history_reads`]).
    history_reads: Arc<Mutex<Vec<(String, u64)>>>,
    /// The last sequence, for live readers to wait on.
    last: Arc<watch::Sender<u64>>,
    reconnects: Arc<watch::Sender<u64>>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self::new(Subjects::new("prism.ev"), Duration::from_secs(120))
    }
}

impl MemoryLog {
    pub fn new(subjects: Subjects, duplicate_window: Duration) -> Self {
        Self {
            subjects,
            duplicate_window,
            state: Arc::default(),
            held: Arc::new(watch::Sender::new(false)),
            history_reads: Arc::default(),
            last: Arc::new(watch::Sender::new(0)),
            reconnects: Arc::new(watch::Sender::new(0)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every write is a single push/insert).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every append wait until [`MemoryLog::release_appends`] (for tests of commands in flight).
    pub fn hold_appends(&self) {
        self.held.send_replace(true);
    }

    pub fn release_appends(&self) {
        self.held.send_replace(false);
    }

    /// The `(subject, after)` of every `commits_after` since the last call (for tests of how much of
    /// an aggregate's history is read).
    pub fn take_history_reads(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut *self.history_reads.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the stored commit at `sequence` (for tests of what readers do with a rewritten log).
    pub fn tamper(&self, sequence: u64, change: impl FnOnce(&mut StoredCommit)) {
        if let Some(commit) = self.state().commits.get_mut(sequence as usize - 1) {
            change(commit);
        }
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    fn is_available(&self) -> bool {
        true
    }

    fn reconnections(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }

    async fn append(&self, append: Append) -> Result<AppendAck, AppendError> {
        // The sender lives as long as the log, so waiting cannot fail.
        let _ = self.held.subscribe().wait_for(|held| !held).await;
        let mut state = self.state();
        let last_on_subject = state
            .by_subject
            .get(&append.subject)
            .and_then(|s| s.last().copied())
            .unwrap_or(0);
        // As JetStream does: the expected-sequence check comes before de-duplication.
        if last_on_subject != append.expected_last_sequence {
            return Err(AppendError::Conflict);
        }
        let window = self.duplicate_window;
        state.msg_ids.retain(|_, (_, at)| at.elapsed() < window);
        if let Some((sequence, _)) = state.msg_ids.get(&append.msg_id) {
            return Ok(AppendAck {
                sequence: *sequence,
                duplicate: true,
            });
        }
        let sequence = state.commits.len() as u64 + 1;
        let commit = StoredCommit::decode(
            sequence,
            append.subject.clone(),
            Some(append.msg_id.clone()),
            append.fingerprint,
            &append.payload,
        )?;
        state.commits.push(commit);
        state.by_subject.entry(append.subject).or_default().push(sequence);
        state.msg_ids.insert(append.msg_id, (sequence, Instant::now()));
        drop(state);
        self.last.send_replace(sequence);
        Ok(AppendAck {
            sequence,
            duplicate: false,
        })
    }

    async fn subject_last_sequence(&self, subject: &str) -> Result<u64, StoreError> {
        Ok(self
            .state()
            .by_subject
            .get(subject)
            .and_then(|s| s.last().copied())
            .unwrap_or(0))
    }

    async fn commits_after(&self, subject: &str, after: u64) -> Result<Vec<StoredCommit>, StoreError> {
        self.history_reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((subject.to_owned(), after));
        let state = self.state();
        Ok(state
            .by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|&&s| s > after)
            .map(|&s| state.commits[s as usize - 1].clone())
            .collect())
    }

    async fn commit_at(&self, sequence: u64) -> Result<Option<StoredCommit>, StoreError> {
        Ok(sequence
            .checked_sub(1)
            .and_then(|i| self.state().commits.get(i as usize).cloned()))
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.state().commits.len() as u64)
    }

    async fn read(&self, start_sequence: u64, filter: &str) -> Result<CommitStream, StoreError> {
        let log = self.clone();
        let filter = filter.to_owned();
        let last = self.last.subscribe();
        let stream = futures::stream::unfold(
            (log, filter, last, start_sequence.max(1)),
            |(log, filter, mut last, mut next)| async move {
                loop {
                    let found = {
                        let state = log.state();
                        let found = state.commits[(next as usize - 1).min(state.commits.len())..]
                            .iter()
                            .find(|c| matches(&filter, &c.subject))
                            .cloned();
                        if found.is_none() {
                            next = next.max(state.commits.len() as u64 + 1);
                        }
                        found
                    };
                    if let Some(commit) = found {
                        next = commit.sequence + 1;
                        return Some((Ok(commit), (log, filter, last, next)));
                    }
                    // Wait for a commit past what was scanned; the sender lives as long as the log.
                    let scanned = next - 1;
                    if last.wait_for(|&l| l > scanned).await.is_err() {
                        return None;
                    }
                }
            },
        );
        Ok(stream.boxed())
    }
}
