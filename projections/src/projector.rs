//! Runs a projection: reads the log from the projection's checkpoint and applies each batch of commits
//! in one transaction with the new checkpoint.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use futures::StreamExt as _;
use prism_store::{EventStore, StoredCommit};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::ProjectionError;

/// Most commits applied in one transaction: large enough to amortise the commit, small enough to keep
/// a rebuild's transactions short.
const BATCH: usize = 256;

/// A read model: which tables it owns (emptied by a rebuild) and how one commit changes them.
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn tables(&self) -> &'static [&'static str];
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        commit: &'a StoredCommit,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;
}

/// Called with the last sequence of a batch after its rows are written and before its checkpoint is;
/// returning `true` aborts the transaction as a crash at that point would. For crash tests.
pub type FaultHook = Arc<dyn Fn(u64) -> bool + Send + Sync>;

pub struct Projector<P: Projection> {
    projection: P,
    pool: Pool,
    store: EventStore,
    fault: Option<FaultHook>,
}

impl<P: Projection> std::fmt::Debug for Projector<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("projection", &self.projection.name())
            .finish()
    }
}

impl<P: Projection> Projector<P> {
    pub fn new(projection: P, pool: Pool, store: EventStore) -> Self {
        Self {
            projection,
            pool,
            store,
            fault: None,
        }
    }

    pub fn with_fault(mut self, hook: FaultHook) -> Self {
        self.fault = Some(hook);
        self
    }

    /// Projects until `shutdown` turns true, recovering from errors with a capped backoff.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                r = self.follow(None) => r,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(ProjectionError::Superseded(name)) => {
                    info!(name, "projection rebuilt elsewhere; restarting")
                }
                Err(e) => {
                    error!(projection = self.projection.name(), error = %e, "projection failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    // Capped low: a projector waiting out an outage that has ended delays every read-your-write.
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Projects everything up to the log's current end, then returns. Used by `projections rebuild`.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let end = self.store.last_sequence().await?;
        // `follow` also returns when NATS reconnects; go on until the end is really reached.
        while self.checkpoint().await?.0 < end {
            self.follow(Some(end)).await?;
        }
        Ok(end)
    }

    /// Reads from the checkpoint on; stops after `until` if given.
    async fn follow(&self, until: Option<u64>) -> Result<(), ProjectionError> {
        let (checkpoint, generation) = self.checkpoint().await?;
        let filter = format!("{}.>", self.store.config().subject_prefix);
        let mut commits = self
            .store
            .read_from(checkpoint + 1, &filter)
            .await?
            .ready_chunks(BATCH);
        let mut reconnected = self.store.reconnections();
        reconnected.borrow_and_update();
        loop {
            let batch = tokio::select! {
                batch = commits.next() => batch,
                // A restarted server forgot our consumer: start a new one from the checkpoint now.
                _ = reconnected.changed() => {
                    info!(projection = self.projection.name(), "reconnected to NATS; resuming from the checkpoint");
                    return Ok(());
                }
            };
            let Some(batch) = batch else { return Ok(()) };
            let batch = batch.into_iter().collect::<Result<Vec<_>, _>>()?;
            let last = self.apply_batch(&batch, generation).await?;
            if until.is_some_and(|end| last >= end) {
                return Ok(());
            }
        }
    }

    async fn apply_batch(&self, batch: &[StoredCommit], generation: i64) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "SELECT sequence, generation FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await?;
        let (mut applied, current_generation): (i64, i64) = (row.get(0), row.get(1));
        if current_generation != generation {
            return Err(ProjectionError::Superseded(name.into()));
        }
        for commit in batch {
            // Another projector of the same generation may have got here first; never apply twice.
            if commit.sequence as i64 <= applied {
                continue;
            }
            self.projection.apply(&tx, commit).await?;
            applied = commit.sequence as i64;
        }
        if let Some(fault) = &self.fault
            && fault(applied as u64)
        {
            warn!(name, applied, "injected fault: abandoning the transaction");
            return Err(ProjectionError::Injected(applied as u64));
        }
        tx.execute(
            "UPDATE projection_checkpoints SET sequence = $2, updated_at = now() WHERE name = $1",
            &[&name, &applied],
        )
        .await?;
        tx.commit().await?;
        Ok(applied as u64)
    }

    async fn checkpoint(&self) -> Result<(u64, i64), ProjectionError> {
        let client = self.pool.get().await?;
        let name = self.projection.name();
        client
            .execute(
                "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&name],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT sequence, generation FROM projection_checkpoints WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok((row.get::<_, i64>(0) as u64, row.get(1)))
    }
}

/// Empties a projection's tables and resets its checkpoint in one transaction; the next projector run
/// (or [`Projector::catch_up`]) replays the log from sequence 1. Projectors of the old generation
/// notice and restart.
pub async fn rebuild(pool: &Pool, projection: &impl Projection) -> Result<(), ProjectionError> {
    let name = projection.name();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .await?;
    tx.query_one(
        "SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
        &[&name],
    )
    .await?;
    for table in projection.tables() {
        // Table names are static strings owned by the projection, never user input.
        tx.batch_execute(&format!("TRUNCATE {table} CASCADE")).await?;
    }
    tx.execute(
        "UPDATE projection_checkpoints SET sequence = 0, generation = generation + 1, updated_at = now() WHERE name = $1",
        &[&name],
    )
    .await?;
    tx.commit().await?;
    info!(name, "projection reset; replaying from sequence 1");
    Ok(())
}
