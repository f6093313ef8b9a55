//! [`Auditor`] seals the event log into the audit ledger: it reads every commit in stream order from
//! where the ledger's last checkpoint ends, and soon after a commit arrives signs a checkpoint over
//! the leaves read so far (`prism_app::LedgerService::seal`).
//!
//! Several processes may run it: each checkpoint must continue the ledger, so when another process
//! sealed first, this one's is refused and it reads on from the new end. The ledger's own commits
//! are covered by the next checkpoint, but never cause one: otherwise each checkpoint would call for
//! another, forever.

use std::time::Duration;

use futures::StreamExt as _;
use prism_app::{App, AppError, ErrorKind, unreadable_leaf};
use prism_domain::Aggregate as _;
use prism_domain::ledger::{Digest, LEDGER_ID, Ledger, MAX_LEAVES, absent_leaf};
use prism_store::StoreError;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Seals the log into the audit ledger.
#[derive(Debug, Clone)]
pub struct Auditor {
    app: App,
    /// How long after the first commit not yet covered a checkpoint is sealed: the commits that
    /// arrive meanwhile share it.
    window: Duration,
}

/// How long the auditor waits before reading again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Auditor {
    pub const NAME: &'static str = "auditor";

    pub fn new(app: App, window: Duration) -> Self {
        Self { app, window }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.app.ledger().signer().await {
            warn!(error = %e, "no audit ledger: the platform has no key store to keep its ledger key in");
            return;
        }
        info!(window = ?self.window, "sealing the log into the audit ledger");
        while !*shutdown.borrow() {
            match self.follow(&mut shutdown).await {
                Ok(()) => return,
                // Another process sealed first: go on from the ledger's new end at once.
                Err(e) if e.kind == ErrorKind::StateConflict => debug!(error = %e, "the ledger moved on"),
                Err(e) => {
                    warn!(error = %e, "sealing the log failed; reading again shortly");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Reads and seals from the ledger's end until shut down (`Ok`) or something fails.
    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), AppError> {
        let ledger = self.app.ledger();
        let log = self.app.log();
        let ledger_subject = log.subjects().aggregate(Ledger::TYPE, LEDGER_ID)?;
        let mut from = ledger.state().await?.covered_through + 1;
        let mut commits = log.read(from, &log.subjects().all()).await?;
        // The leaves read and not sealed yet, each with whether it is the ledger's own commit.
        let mut pending: Vec<(Digest, bool)> = Vec::new();
        // When the pending leaves must be sealed: set by the first commit that is not the ledger's.
        let mut due: Option<Instant> = None;
        loop {
            let seal_now = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = sleep_until(due) => true,
                item = commits.next() => {
                    let (sequence, leaf, own) = match item {
                        Some(Ok(commit)) => (commit.sequence, commit.leaf(), commit.subject == ledger_subject),
                        // Sealed as unreadable: the ledger vouches that it already was.
                        Some(Err(StoreError::Corrupt { sequence, .. })) => (sequence, unreadable_leaf(), false),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(AppError::unavailable("the log's reading ended")),
                    };
                    let next = from + pending.len() as u64;
                    if sequence < next {
                        continue;
                    }
                    // The log never deletes, so a skipped sequence held nothing when it was read.
                    pending.extend((next..sequence).map(|_| (absent_leaf(), false)));
                    pending.push((leaf, own));
                    if !own {
                        due.get_or_insert_with(|| Instant::now() + self.window);
                    }
                    pending.len() >= MAX_LEAVES && due.is_some()
                }
            };
            if !seal_now {
                continue;
            }
            let take = pending.len().min(MAX_LEAVES);
            let leaves: Vec<Digest> = pending.drain(..take).map(|(leaf, _)| leaf).collect();
            let sealed = ledger.seal(from, leaves).await?;
            debug!(
                from = sealed.from,
                to = sealed.to,
                sequence = sealed.sequence,
                "checkpoint sealed"
            );
            from = sealed.to + 1;
            // What is left beyond a full checkpoint is sealed when due again, unless it is only the
            // ledger's own commits.
            due = pending
                .iter()
                .any(|(_, own)| !own)
                .then(|| Instant::now() + self.window);
        }
    }
}

/// Waits until `due`, or forever when nothing is due.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
