//! Queries over the read models, and waiting for a projection to catch up.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use prism_domain::computation::{ExpectedAsset, Participant, Role};
use prism_domain::values::PublicKey;
use prism_domain::{ComputationId, ParticipantId, WorkspaceId};
use serde::Serialize;
use tokio::time::Instant;
use tokio_postgres::{NoTls, Row};

use crate::ProjectionError;

const POOL_SIZE: usize = 16;

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

/// The query side: a connection pool over the read-model tables.
#[derive(Clone)]
pub struct ReadModels {
    pool: Pool,
}

impl std::fmt::Debug for ReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModels").finish_non_exhaustive()
    }
}

impl ReadModels {
    /// Builds the pool (connections open lazily) and checks one connection.
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
        let models = Self { pool };
        models.ping().await?;
        Ok(models)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), ProjectionError> {
        let mut client = self.pool.get().await?;
        crate::migrate(&mut client).await
    }

    pub async fn ping(&self) -> Result<(), ProjectionError> {
        self.pool.get().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    /// Stream sequence a projection has applied up to (0 when it has not started).
    pub async fn checkpoint(&self, name: &str) -> Result<u64, ProjectionError> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT sequence FROM projection_checkpoints WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    /// Waits until projection `name` has applied `sequence`, polling with a short, growing interval.
    pub async fn wait_for(
        &self,
        name: &str,
        sequence: u64,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(1);
        loop {
            let reached = self.checkpoint(name).await?;
            if reached >= sequence {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProjectionError::Lagging {
                    name: name.into(),
                    sequence,
                    reached,
                });
            }
            tokio::time::sleep(interval.min(deadline - Instant::now())).await;
            interval = (interval * 2).min(Duration::from_millis(50));
        }
    }

    pub async fn workspace(&self, id: WorkspaceId) -> Result<Option<WorkspaceView>, ProjectionError> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(&format!("{WORKSPACE_SELECT} WHERE id = $1"), &[&id.as_uuid()])
            .await?;
        Ok(row.as_ref().map(workspace_view))
    }

    pub async fn workspaces(&self, page: PageRequest) -> Result<Page<WorkspaceView>, ProjectionError> {
        let limit = i64::from(page.limit);
        let rows = self
            .pool
            .get()
            .await?
            .query(
                &format!("{WORKSPACE_SELECT} WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"),
                &[&page.after, &(limit + 1)],
            )
            .await?;
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
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("{COMPUTATION_SELECT} WHERE workspace_id = $1 AND id = $2"),
                &[&workspace.as_uuid(), &id.as_uuid()],
            )
            .await?;
        Ok(self.with_participants(&client, &rows).await?.pop())
    }

    pub async fn computations(
        &self,
        workspace: WorkspaceId,
        page: PageRequest,
    ) -> Result<Page<ComputationView>, ProjectionError> {
        let client = self.pool.get().await?;
        let limit = i64::from(page.limit);
        let rows = client
            .query(
                &format!(
                    "{COMPUTATION_SELECT} WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
                ),
                &[&workspace.as_uuid(), &page.after, &(limit + 1)],
            )
            .await?;
        let views = self.with_participants(&client, &rows).await?;
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
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let reached = tx
            .query_opt(
                "SELECT sequence FROM projection_checkpoints WHERE name = $1",
                &[&crate::COMPUTATIONS],
            )
            .await?
            .map_or(0, |r| r.get::<_, i64>(0) as u64);
        if reached < sequence {
            return Ok(None);
        }
        let rows = tx
            .query(
                "SELECT id FROM computations WHERE workspace_id = $1 AND status = 'active' ORDER BY id",
                &[&workspace.as_uuid()],
            )
            .await?;
        tx.commit().await?;
        Ok(Some(rows.iter().map(|r| ComputationId(r.get(0))).collect()))
    }

    /// Failed reactions, newest failure first; only those in `status` when given.
    pub async fn reactions(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReactionView>, ProjectionError> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT id, worker, event_id, event_type, stream_sequence, attempts, error, status, failed_at,
                        updated_at, version
                 FROM reactions WHERE ($1::text IS NULL OR status = $1) ORDER BY failed_at DESC, id LIMIT $2",
                &[&status, &i64::from(limit)],
            )
            .await?;
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
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT reader, sequence, subject, event_ids, reason, recorded_at FROM quarantine
                 ORDER BY recorded_at DESC, reader, sequence LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
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
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT id FROM computations WHERE workspace_id = $1 AND status = 'active' ORDER BY id",
                &[&workspace.as_uuid()],
            )
            .await?;
        Ok(rows.iter().map(|r| ComputationId(r.get(0))).collect())
    }

    async fn with_participants(
        &self,
        client: &tokio_postgres::Client,
        rows: &[Row],
    ) -> Result<Vec<ComputationView>, ProjectionError> {
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.get("id")).collect();
        let mut participants: HashMap<uuid::Uuid, Vec<Participant>> = HashMap::new();
        for row in client
            .query(
                "SELECT computation_id, participant_id, roles, public_key FROM participants
                 WHERE computation_id = ANY($1) ORDER BY computation_id, position",
                &[&ids],
            )
            .await?
        {
            participants
                .entry(row.get(0))
                .or_default()
                .push(participant(&row)?);
        }
        rows.iter()
            .map(|row| {
                let id: uuid::Uuid = row.get("id");
                Ok(ComputationView {
                    id: ComputationId(id),
                    workspace_id: WorkspaceId(row.get("workspace_id")),
                    name: row.get("name"),
                    description: row.get("description"),
                    status: row.get("status"),
                    participants: participants.remove(&id).unwrap_or_default(),
                    algorithm: row
                        .get::<_, Option<serde_json::Value>>("algorithm")
                        .map(from_json)
                        .transpose()?,
                    datasets: from_json(row.get::<_, serde_json::Value>("datasets"))?,
                    version: row.get::<_, i64>("version") as u64,
                    created_by: row.get("created_by"),
                    created_at: row.get("created_at"),
                    updated_at: row.get("updated_at"),
                })
            })
            .collect()
    }
}

const WORKSPACE_SELECT: &str =
    "SELECT id, name, description, status, version, created_by, created_at, updated_at FROM workspaces";
const COMPUTATION_SELECT: &str = "SELECT id, workspace_id, name, description, status, algorithm, datasets, version, \
     created_by, created_at, updated_at FROM computations";

fn workspace_view(row: &Row) -> WorkspaceView {
    WorkspaceView {
        id: WorkspaceId(row.get("id")),
        name: row.get("name"),
        description: row.get("description"),
        status: row.get("status"),
        version: row.get::<_, i64>("version") as u64,
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

fn participant(row: &Row) -> Result<Participant, ProjectionError> {
    let corrupt = |e: prism_store::BoxError| ProjectionError::Corrupt {
        what: "a participant row".into(),
        source: e,
    };
    let id = ParticipantId::parse(row.get::<_, String>(1)).map_err(|e| corrupt(e.into()))?;
    let roles = row
        .get::<_, Vec<String>>(2)
        .into_iter()
        .map(|r| serde_json::from_value::<Role>(serde_json::Value::String(r)).map_err(|e| corrupt(e.into())))
        .collect::<Result<_, _>>()?;
    let public_key = row
        .get::<_, Option<String>>(3)
        .map(|pem| PublicKey::parse(&pem).map_err(|e| corrupt(e.into())))
        .transpose()?;
    Ok(Participant {
        id,
        roles,
        public_key,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    value: impl Into<serde_json::Value>,
) -> Result<T, ProjectionError> {
    serde_json::from_value(value.into()).map_err(|e| ProjectionError::Corrupt {
        what: "a JSON column".into(),
        source: e.into(),
    })
}

fn paged<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> uuid::Uuid) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_after = if more { items.last().map(id) } else { None };
    Page { items, next_after }
}
