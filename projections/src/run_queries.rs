//! Queries over the runs read model: a workspace's runs newest first, one run, and how many runs were
//! requested each day by the state they are in now.

use chrono::{DateTime, NaiveDate, Utc};
use prism_domain::{ComputationId, CvmId, RunId, WorkspaceId};
use serde::Serialize;
use tokio_postgres::Row;

use crate::queries::paged;
use crate::{Page, PageRequest, ProjectionError, ReadModels};

/// A run as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    pub id: RunId,
    pub workspace_id: WorkspaceId,
    pub computation_id: ComputationId,
    /// SHA-256 (hex) of the manifest the run executes.
    pub manifest_id: String,
    /// Where the run is (`requested`, `provisioning`, …, `closed`).
    pub status: String,
    /// The CVM made for it, once provisioning has started.
    pub cvm_id: Option<CvmId>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// When it times out if it has not delivered its results.
    pub deadline: DateTime<Utc>,
    /// In which state it was stopped, failed or timed out.
    pub ending_during: Option<String>,
    /// Why it was stopped, failed or timed out.
    pub ending_reason: Option<String>,
    /// When it completed, was asked to stop, failed or timed out.
    pub ended_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// Once the result is ready: until when its consumers may fetch it.
    pub fetch_until: Option<DateTime<Utc>>,
}

/// Which runs a list shows: each field given narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub computation: Option<ComputationId>,
    pub status: Option<String>,
    /// Requested at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Requested before this.
    pub to: Option<DateTime<Utc>>,
}

/// How many runs requested on one UTC day are in one state now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunDayCount {
    pub day: NaiveDate,
    pub status: String,
    pub count: u64,
}

const RUN_COLUMNS: &str = "id, workspace_id, computation_id, manifest_id, status, cvm_id, requested_by, \
     requested_at, deadline, ending_during, ending_reason, ended_at, closed_at, updated_at, version, fetch_until";

fn run_view(row: &Row) -> RunView {
    RunView {
        id: RunId(row.get(0)),
        workspace_id: WorkspaceId(row.get(1)),
        computation_id: ComputationId(row.get(2)),
        manifest_id: row.get(3),
        status: row.get(4),
        cvm_id: row.get::<_, Option<uuid::Uuid>>(5).map(CvmId),
        requested_by: row.get(6),
        requested_at: row.get(7),
        deadline: row.get(8),
        ending_during: row.get(9),
        ending_reason: row.get(10),
        ended_at: row.get(11),
        closed_at: row.get(12),
        updated_at: row.get(13),
        version: row.get::<_, i64>(14) as u64,
        fetch_until: row.get(15),
    }
}

impl ReadModels {
    /// A workspace's runs, newest request first, filtered. A page's `next_after` is the id of its last
    /// (oldest) run; passed back as `after`, the next page holds the runs requested before it.
    pub async fn runs(
        &self,
        workspace: WorkspaceId,
        filter: &RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        // The cursor is a run's id, but the order is by request time (ties broken by id), so the page
        // starts below the cursor run's position in that order.
        let statement = client
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE workspace_id = $1
                   AND ($2::uuid IS NULL
                        OR (requested_at, id) < (SELECT c.requested_at, c.id FROM runs c
                                                 WHERE c.id = $2 AND c.workspace_id = $1))
                   AND ($3::uuid IS NULL OR computation_id = $3) AND ($4::text IS NULL OR status = $4)
                   AND ($5::timestamptz IS NULL OR requested_at >= $5)
                   AND ($6::timestamptz IS NULL OR requested_at < $6)
                 ORDER BY requested_at DESC, id DESC LIMIT $7"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &workspace.as_uuid(),
                    &page.after,
                    &filter.computation.map(|c| c.as_uuid()),
                    &filter.status,
                    &filter.from,
                    &filter.to,
                    &limit,
                ],
            )
            .await?;
        let items = rows.iter().map(run_view).collect();
        Ok(paged(items, page.limit, |r| r.id.as_uuid()))
    }

    /// One run of a workspace.
    pub async fn run(&self, workspace: WorkspaceId, id: RunId) -> Result<Option<RunView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2"
            ))
            .await?;
        let row = client
            .query_opt(&statement, &[&workspace.as_uuid(), &id.as_uuid()])
            .await?;
        Ok(row.as_ref().map(run_view))
    }

    /// The runs past their deadline that have not ended (nor delivered their result, which has a
    /// window of its own): those the run timer times out.
    pub async fn overdue_runs(&self, now: DateTime<Utc>) -> Result<Vec<RunId>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id FROM runs WHERE deadline < $1
                   AND status IN ('requested', 'provisioning', 'agent_connecting', 'attesting',
                                  'awaiting_inputs', 'running')
                 ORDER BY deadline LIMIT 1000",
            )
            .await?;
        let rows = client.query(&statement, &[&now]).await?;
        Ok(rows.iter().map(|row| RunId(row.get(0))).collect())
    }

    /// The runs of a computation that have not ended: those a halt of it stops.
    pub async fn unended_runs_of(&self, computation: ComputationId) -> Result<Vec<RunId>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id FROM runs WHERE computation_id = $1
                   AND status IN ('requested', 'provisioning', 'agent_connecting', 'attesting',
                                  'awaiting_inputs', 'running', 'results_ready')
                 ORDER BY requested_at",
            )
            .await?;
        let rows = client.query(&statement, &[&computation.as_uuid()]).await?;
        Ok(rows.iter().map(|row| RunId(row.get(0))).collect())
    }

    /// The runs whose result window has closed: they complete, whoever has not fetched.
    pub async fn runs_past_their_result_window(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<RunId>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id FROM runs WHERE status = 'results_ready' AND fetch_until < $1
                 ORDER BY fetch_until LIMIT 1000",
            )
            .await?;
        let rows = client.query(&statement, &[&now]).await?;
        Ok(rows.iter().map(|row| RunId(row.get(0))).collect())
    }

    /// How many of a workspace's runs (of one computation, when given) were requested on each UTC day
    /// and are in each state now; oldest day first, states in name order, days without runs left out.
    pub async fn run_counts_by_day(
        &self,
        workspace: WorkspaceId,
        computation: Option<ComputationId>,
    ) -> Result<Vec<RunDayCount>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT (requested_at AT TIME ZONE 'UTC')::date AS day, status, count(*) FROM runs
                 WHERE workspace_id = $1 AND ($2::uuid IS NULL OR computation_id = $2)
                 GROUP BY day, status ORDER BY day, status",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[&workspace.as_uuid(), &computation.map(|c| c.as_uuid())],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RunDayCount {
                day: row.get(0),
                status: row.get(1),
                count: row.get::<_, i64>(2) as u64,
            })
            .collect())
    }
}
