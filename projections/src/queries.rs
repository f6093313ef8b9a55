//! Queries over the read models, and waiting for a projection to catch up.
//!
//! Every query is one prepared statement (each pooled connection prepares it once), so a read is one
//! round trip: a computation comes with its participants aggregated in the same statement. The views
//! read most — one workspace, one computation — are also answered from memory ([`crate::read_cache`]),
//! which the database keeps true by announcing what any process's projector commits; see there for
//! why read-your-writes still holds.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use prism_domain::computation::{ExpectedAsset, Participant};
use prism_domain::run::RunLimits;
use prism_domain::{ComputationId, WorkspaceId};
use serde::Serialize;
use tokio::time::Instant;
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::{NoTls, Row};

use crate::ProjectionError;
use crate::read_cache::{Cached, Lookup, Position, ReadCache};

const POOL_SIZE: usize = 16;
/// While changes are followed, `wait_for` hears of a checkpoint move at once and asks the database
/// only in case the listening connection died silently: this often, growing to the maximum.
const FALLBACK_POLL_MIN: Duration = Duration::from_millis(50);
const FALLBACK_POLL_MAX: Duration = Duration::from_millis(200);
/// Polling when changes are not followed: from 1 ms, doubling up to this.
const POLL_MAX: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Return items with an id greater than this (ids are UUIDv7, so this is creation order).
    pub after: Option<uuid::Uuid>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_after: Option<uuid::Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceView {
    pub id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub status: String,
    pub version: u64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComputationView {
    pub id: ComputationId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub status: String,
    pub participants: Vec<Participant>,
    pub algorithm: Option<ExpectedAsset>,
    pub datasets: Vec<ExpectedAsset>,
    pub limits: RunLimits,
    pub version: u64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A reaction a worker gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionView {
    pub id: String,
    pub worker: String,
    pub event_id: String,
    pub event_type: String,
    pub stream_sequence: u64,
    pub attempts: u64,
    pub error: String,
    /// `failed`, `retry_requested` or `resolved`.
    pub status: String,
    pub failed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// A commit a reader refused to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedView {
    pub reader: String,
    pub sequence: u64,
    pub subject: String,
    pub event_ids: Vec<String>,
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

/// The query side: a connection pool over the read-model tables, and the hot views in memory.
#[derive(Clone)]
pub struct ReadModels {
    pool: Pool,
    cache: Arc<ReadCache>,
}

impl std::fmt::Debug for ReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModels")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl ReadModels {
    /// Builds the pool (connections open lazily), checks one connection, and starts following the
    /// changes the database announces (on a connection of its own, retried in the background).
    pub async fn connect(database_url: &str) -> Result<Self, ProjectionError> {
        let mut config: tokio_postgres::Config = database_url.parse()?;
        // A database that vanishes without closing the connection must not hang a request for good:
        // bound connecting, detect dead peers, and cap every statement (a caller's own URL options win).
        config.connect_timeout(Duration::from_secs(5));
        config.keepalives(true).keepalives_idle(Duration::from_secs(15));
        config.tcp_user_timeout(Duration::from_secs(30));
        if config.get_options().is_none() {
            config.options("-c statement_timeout=30000");
        }
        let cache = Arc::new(ReadCache::start(config.clone()));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()?;
        let models = Self { pool, cache };
        models.ping().await?;
        Ok(models)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), ProjectionError> {
        let mut client = self.pool.get().await?;
        crate::migrate(&mut client).await?;
        // The database announces changes from now on: follow them without waiting for the next retry.
        self.cache.retry_now();
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), ProjectionError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached("SELECT 1").await?;
        client.query_one(&statement, &[]).await?;
        Ok(())
    }

    /// Whether this process follows the changes the database announces, and so answers hot reads from
    /// memory. False until the connection listening for them is up (and the schema migrated), and
    /// while it is down; reads are then answered by the database alone.
    pub fn follows_changes(&self) -> bool {
        self.cache.is_live()
    }

    /// Stream sequence a projection has applied up to (0 when it has not started), as the database
    /// says now.
    pub async fn checkpoint(&self, name: &str) -> Result<u64, ProjectionError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(CHECKPOINT).await?;
        let Some(row) = client.query_opt(&statement, &[&name]).await? else {
            return Ok(0);
        };
        let at = Position {
            sequence: row.get::<_, i64>(0) as u64,
            generation: row.get(1),
        };
        // The caller may now expect every read to show the commits up to here.
        self.cache.handed_out(name, at);
        Ok(at.sequence)
    }

    /// Whether projection `name` has applied `sequence`: from memory when this process has already
    /// heard so (no round trip), else from the database. Same answer as
    /// `checkpoint(name).await? >= sequence`, cheaper on the read-your-writes path.
    pub async fn reached(&self, name: &str, sequence: u64) -> Result<bool, ProjectionError> {
        if self.cache.listened(name).is_some_and(|heard| heard >= sequence) {
            return Ok(true);
        }
        Ok(self.checkpoint(name).await? >= sequence)
    }

    /// Waits until projection `name` has applied `sequence`. Woken by the checkpoint moves the database
    /// announces; the database is also polled, rarely while changes are followed (in case the listening
    /// connection died silently), otherwise with a short, growing interval.
    pub async fn wait_for(
        &self,
        name: &str,
        sequence: u64,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let deadline = Instant::now() + timeout;
        let mut moved = self.cache.subscribe();
        let mut interval = Duration::from_millis(1);
        let mut next_poll = Instant::now();
        let mut reached = 0;
        loop {
            // Seen before looking, so a move from here on wakes the wait below.
            moved.borrow_and_update();
            if let Some(heard) = self.cache.listened(name) {
                if heard >= sequence {
                    return Ok(());
                }
                reached = reached.max(heard);
            }
            if Instant::now() >= next_poll {
                let at = self.checkpoint(name).await?;
                if at >= sequence {
                    return Ok(());
                }
                reached = reached.max(at);
                interval = if self.cache.is_live() {
                    (interval * 2).clamp(FALLBACK_POLL_MIN, FALLBACK_POLL_MAX)
                } else {
                    (interval * 2).min(POLL_MAX)
                };
                next_poll = Instant::now() + interval;
            }
            if Instant::now() >= deadline {
                return Err(ProjectionError::Lagging {
                    name: name.into(),
                    sequence,
                    reached,
                });
            }
            tokio::select! {
                _ = moved.changed() => {}
                _ = tokio::time::sleep_until(next_poll.min(deadline)) => {}
            }
        }
    }

    pub async fn workspace(&self, id: WorkspaceId) -> Result<Option<WorkspaceView>, ProjectionError> {
        self.cached(id.as_uuid(), WORKSPACE_BY_ID, |row| Ok(workspace_view(row)))
            .await
    }

    pub async fn workspaces(&self, page: PageRequest) -> Result<Page<WorkspaceView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool.get().await?;
        let rows = match page.after {
            None => {
                let statement = client.prepare_cached(WORKSPACES_FIRST).await?;
                client.query(&statement, &[&limit]).await?
            }
            Some(after) => {
                let statement = client.prepare_cached(WORKSPACES_AFTER).await?;
                client.query(&statement, &[&after, &limit]).await?
            }
        };
        Ok(paged(
            rows.iter().map(workspace_view).collect(),
            page.limit,
            |w| w.id.as_uuid(),
        ))
    }

    pub async fn computation(
        &self,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<Option<ComputationView>, ProjectionError> {
        // Looked up by id alone, so memory holds one view per computation whatever the workspace asked.
        let view = self
            .cached(id.as_uuid(), COMPUTATION_BY_ID, computation_view)
            .await?;
        Ok(view.filter(|v| v.workspace_id == workspace))
    }

    pub async fn computations(
        &self,
        workspace: WorkspaceId,
        page: PageRequest,
    ) -> Result<Page<ComputationView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool.get().await?;
        let rows = match page.after {
            None => {
                let statement = client.prepare_cached(COMPUTATIONS_FIRST).await?;
                client.query(&statement, &[&workspace.as_uuid(), &limit]).await?
            }
            Some(after) => {
                let statement = client.prepare_cached(COMPUTATIONS_AFTER).await?;
                client
                    .query(&statement, &[&workspace.as_uuid(), &after, &limit])
                    .await?
            }
        };
        let views = rows.iter().map(computation_view).collect::<Result<Vec<_>, _>>()?;
        Ok(paged(views, page.limit, |c| c.id.as_uuid()))
    }

    /// Ids of the active computations of a workspace as of stream sequence `sequence` or later, read in
    /// one snapshot together with the projection's checkpoint; `None` while the computations projection
    /// has not reached `sequence`. (Waiting first and querying after could be fooled by a rebuild in
    /// between, which empties the table and resets the checkpoint.)
    pub async fn active_computation_ids_as_of(
        &self,
        workspace: WorkspaceId,
        sequence: u64,
    ) -> Result<Option<Vec<ComputationId>>, ProjectionError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // TRUNCATE is not MVCC-safe: a snapshot taken while a rebuild is under way would pair the old
        // checkpoint with the emptied table once the rebuild commits. Holding the table lock first
        // means the snapshot below is taken before a rebuild empties the table (it then waits for this
        // transaction) or after the rebuild has committed (its checkpoint reset included).
        tx.batch_execute("LOCK TABLE computations IN ACCESS SHARE MODE")
            .await?;
        let statement = tx.prepare_cached(ACTIVE_COMPUTATIONS_AS_OF).await?;
        let row = tx
            .query_one(&statement, &[&workspace.as_uuid(), &crate::COMPUTATIONS])
            .await?;
        tx.commit().await?;
        if (row.get::<_, i64>(0) as u64) < sequence {
            return Ok(None);
        }
        let ids: Vec<uuid::Uuid> = row.get(1);
        Ok(Some(ids.into_iter().map(ComputationId).collect()))
    }

    /// The active computations that name `participant` (a user id or an address), as of stream sequence
    /// `sequence` or later; `None` while the read model has not reached it.
    pub async fn active_computations_naming_as_of(
        &self,
        participant: &str,
        sequence: u64,
    ) -> Result<Option<Vec<(WorkspaceId, ComputationId)>>, ProjectionError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // As in `active_computation_ids_as_of`: no snapshot across a rebuild's truncation.
        tx.batch_execute("LOCK TABLE computations, participants IN ACCESS SHARE MODE")
            .await?;
        let statement = tx.prepare_cached(ACTIVE_COMPUTATIONS_NAMING_AS_OF).await?;
        let checkpoint = tx
            .query_one(CHECKPOINT_OF, &[&crate::COMPUTATIONS])
            .await?
            .get::<_, i64>(0) as u64;
        let rows = tx.query(&statement, &[&participant]).await?;
        tx.commit().await?;
        if checkpoint < sequence {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .map(|row| (WorkspaceId(row.get(0)), ComputationId(row.get(1))))
                .collect(),
        ))
    }

    /// Failed reactions, newest failure first; only those in `status` when given.
    pub async fn reactions(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReactionView>, ProjectionError> {
        let limit = i64::from(limit);
        let client = self.pool.get().await?;
        let rows = match status {
            None => {
                let statement = client.prepare_cached(REACTIONS_ALL).await?;
                client.query(&statement, &[&limit]).await?
            }
            Some(status) => {
                let statement = client.prepare_cached(REACTIONS_IN_STATUS).await?;
                client.query(&statement, &[&status, &limit]).await?
            }
        };
        Ok(rows
            .iter()
            .map(|r| ReactionView {
                id: r.get(0),
                worker: r.get(1),
                event_id: r.get(2),
                event_type: r.get(3),
                stream_sequence: r.get::<_, i64>(4) as u64,
                attempts: r.get::<_, i64>(5) as u64,
                error: r.get(6),
                status: r.get(7),
                failed_at: r.get(8),
                updated_at: r.get(9),
                version: r.get::<_, i64>(10) as u64,
            })
            .collect())
    }

    /// Commits readers refused to apply, newest first.
    pub async fn quarantined(&self, limit: u32) -> Result<Vec<QuarantinedView>, ProjectionError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(QUARANTINED).await?;
        let rows = client.query(&statement, &[&i64::from(limit)]).await?;
        Ok(rows
            .iter()
            .map(|r| QuarantinedView {
                reader: r.get(0),
                sequence: r.get::<_, i64>(1) as u64,
                subject: r.get(2),
                event_ids: r.get(3),
                reason: r.get(4),
                recorded_at: r.get(5),
            })
            .collect())
    }

    /// Ids of the active computations of a workspace, in creation order.
    pub async fn active_computation_ids(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<ComputationId>, ProjectionError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(ACTIVE_COMPUTATIONS).await?;
        let rows = client.query(&statement, &[&workspace.as_uuid()]).await?;
        Ok(rows.iter().map(|r| ComputationId(r.get(0))).collect())
    }

    /// One view by id: from memory when it holds it, else from the database with `sql` (parameter `$1`:
    /// the id), kept for the next read when nothing changed it meanwhile.
    async fn cached<V: Cached>(
        &self,
        id: uuid::Uuid,
        sql: &str,
        view: impl FnOnce(&Row) -> Result<V, ProjectionError>,
    ) -> Result<Option<V>, ProjectionError> {
        let lease = match self.cache.get::<V>(id) {
            Lookup::Hit(view) => return Ok(Some(V::clone(&view))),
            Lookup::Miss(lease) => lease,
        };
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        let found = client
            .query_opt(&statement, &[&id])
            .await?
            .as_ref()
            .map(view)
            .transpose()?;
        if let Some(lease) = lease {
            self.cache.fill(lease, found.as_ref());
        }
        Ok(found)
    }
}

const CHECKPOINT: &str = "SELECT sequence, generation FROM projection_checkpoints WHERE name = $1";

macro_rules! workspace_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, description, status, version, created_by, created_at, updated_at FROM workspaces ",
            $rest
        )
    };
}

const WORKSPACE_BY_ID: &str = workspace_select!("WHERE id = $1");
// Two statements rather than `($1 IS NULL OR id > $1)`: a prepared statement gets one generic plan, and
// that one could not start the index scan at the cursor.
const WORKSPACES_FIRST: &str = workspace_select!("ORDER BY id LIMIT $1");
const WORKSPACES_AFTER: &str = workspace_select!("WHERE id > $1 ORDER BY id LIMIT $2");

/// A computation with its participants in definition order, as JSON objects shaped like
/// [`Participant`], in one statement.
macro_rules! computation_select {
    ($rest:literal) => {
        concat!(
            "SELECT c.id, c.workspace_id, c.name, c.description, c.status, c.algorithm, c.datasets, c.version, ",
            "c.created_by, c.created_at, c.updated_at, ",
            "COALESCE((SELECT json_agg(json_build_object('id', p.participant_id, 'roles', p.roles, ",
            "'custom_roles', p.custom_roles, 'public_key', p.public_key) ORDER BY p.position) ",
            "FROM participants p WHERE p.computation_id = c.id), '[]'), c.max_run_seconds ",
            "FROM computations c ",
            $rest
        )
    };
}

const COMPUTATION_BY_ID: &str = computation_select!("WHERE c.id = $1");
const COMPUTATIONS_FIRST: &str = computation_select!("WHERE c.workspace_id = $1 ORDER BY c.id LIMIT $2");
const COMPUTATIONS_AFTER: &str =
    computation_select!("WHERE c.workspace_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3");

const ACTIVE_COMPUTATIONS: &str =
    "SELECT id FROM computations WHERE workspace_id = $1 AND status = 'active' ORDER BY id";
/// One statement sees one snapshot, subqueries included.
const ACTIVE_COMPUTATIONS_AS_OF: &str = "SELECT \
     COALESCE((SELECT sequence FROM projection_checkpoints WHERE name = $2), 0), \
     ARRAY(SELECT id FROM computations WHERE workspace_id = $1 AND status = 'active' ORDER BY id)";

const CHECKPOINT_OF: &str =
    "SELECT COALESCE((SELECT sequence FROM projection_checkpoints WHERE name = $1), 0)";

const ACTIVE_COMPUTATIONS_NAMING_AS_OF: &str = "SELECT c.workspace_id, c.id FROM participants p \
     JOIN computations c ON c.id = p.computation_id \
     WHERE p.participant_id = $1 AND c.status = 'active' ORDER BY c.id";

macro_rules! reaction_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, worker, event_id, event_type, stream_sequence, attempts, error, status, failed_at, ",
            "updated_at, version FROM reactions ",
            $rest
        )
    };
}

const REACTIONS_ALL: &str = reaction_select!("ORDER BY failed_at DESC, id LIMIT $1");
const REACTIONS_IN_STATUS: &str = reaction_select!("WHERE status = $1 ORDER BY failed_at DESC, id LIMIT $2");

const QUARANTINED: &str = "SELECT reader, sequence, subject, event_ids, reason, recorded_at FROM quarantine \
     ORDER BY recorded_at DESC, reader, sequence LIMIT $1";

pub(crate) fn workspace_view(row: &Row) -> WorkspaceView {
    WorkspaceView {
        id: WorkspaceId(row.get(0)),
        name: row.get(1),
        description: row.get(2),
        status: row.get(3),
        version: row.get::<_, i64>(4) as u64,
        created_by: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
    }
}

fn computation_view(row: &Row) -> Result<ComputationView, ProjectionError> {
    let id: uuid::Uuid = row.get(0);
    let algorithm: Option<Json<ExpectedAsset>> = decoded(row, 5, id, "algorithm")?;
    let Json(datasets) = decoded(row, 6, id, "datasets")?;
    let Json(participants) = decoded(row, 11, id, "participants")?;
    Ok(ComputationView {
        id: ComputationId(id),
        workspace_id: WorkspaceId(row.get(1)),
        name: row.get(2),
        description: row.get(3),
        status: row.get(4),
        participants,
        algorithm: algorithm.map(|Json(a)| a),
        datasets,
        limits: RunLimits {
            max_run_seconds: row.get::<_, i64>(12) as u64,
        },
        version: row.get::<_, i64>(7) as u64,
        created_by: row.get(8),
        created_at: row.get(9),
        updated_at: row.get(10),
    })
}

/// A column whose content is checked as it is decoded (JSON into domain values).
fn decoded<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    computation: uuid::Uuid,
    what: &str,
) -> Result<T, ProjectionError> {
    row.try_get(index).map_err(|e| ProjectionError::Corrupt {
        what: format!("the {what} of computation {computation}"),
        source: e.into(),
    })
}

pub(crate) fn paged<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> uuid::Uuid) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_after = if more { items.last().map(id) } else { None };
    Page { items, next_after }
}
