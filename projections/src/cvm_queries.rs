//! Queries over the backends and CVMs read models: the backends a workspace may use with how many
//! CVMs each runs now, a workspace's CVMs, and the CVMs past their TTL.

use chrono::{DateTime, Utc};
use prism_domain::backend::BackendSettings;
use prism_domain::cvm::{CvmAttestationAppraised, CvmSpec, MachineDescription};
use prism_domain::{BackendId, CvmId, WorkspaceId};
use serde::Serialize;
use tokio_postgres::Row;

use crate::queries::paged;
use crate::{Page, PageRequest, ProjectionError, ReadModels};

/// A backend as listed, with its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendView {
    pub id: BackendId,
    /// `None` for a backend of the whole platform.
    pub workspace_id: Option<WorkspaceId>,
    pub settings: BackendSettings,
    pub healthy: bool,
    pub health_detail: String,
    /// `active` or `removed`.
    pub status: String,
    /// CVMs on it that are not yet destroyed or failed.
    pub running: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// A CVM as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CvmView {
    pub id: CvmId,
    pub workspace_id: WorkspaceId,
    pub spec: CvmSpec,
    pub status: String,
    pub backend_id: Option<BackendId>,
    pub backend_reason: Option<String>,
    pub hourly_cost_micros: Option<u64>,
    pub backend_ref: Option<String>,
    pub agent_address: Option<String>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub online_since: Option<DateTime<Utc>>,
    /// Seconds online before the current connection.
    pub online_seconds: u64,
    pub disconnections: u32,
    pub last_heard_at: Option<DateTime<Utc>>,
    pub messages_received: u64,
    pub agent_state: Option<String>,
    pub destroy_reason: Option<String>,
    pub destroy_requested_at: Option<DateTime<Utc>>,
    pub destroyed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub description: Option<MachineDescription>,
    /// The latest attestation verdict's outcome (`verified`, `accepted_insecure`, `refused`).
    pub attestation_outcome: Option<String>,
    pub attested_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// Which CVMs a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CvmFilter {
    pub status: Option<String>,
    pub backend: Option<BackendId>,
}

const LIVE: &str = "('creating', 'starting', 'online', 'offline', 'destroying')";

fn backend_columns() -> String {
    format!(
        "b.id, b.workspace_id, b.settings, b.healthy, b.health_detail, b.status,
         (SELECT count(*) FROM cvms c WHERE c.backend_id = b.id AND c.status IN {LIVE}),
         b.created_at, b.updated_at, b.version"
    )
}

const CVM_COLUMNS: &str = "id, workspace_id, spec, status, backend_id, backend_reason, hourly_cost_micros, \
     backend_ref, agent_address, requested_by, requested_at, expires_at, started_at, online_since, online_seconds, \
     disconnections, last_heard_at, messages_received, agent_state, destroy_reason, destroy_requested_at, \
     destroyed_at, failure, updated_at, version, description, attestation_outcome, attested_at";

fn corrupt(what: &str, e: serde_json::Error) -> ProjectionError {
    ProjectionError::Corrupt {
        what: what.into(),
        source: e.into(),
    }
}

fn backend_view(row: &Row) -> Result<BackendView, ProjectionError> {
    Ok(BackendView {
        id: BackendId(row.get(0)),
        workspace_id: row.get::<_, Option<uuid::Uuid>>(1).map(WorkspaceId),
        settings: serde_json::from_value(row.get(2)).map_err(|e| corrupt("a backend's settings", e))?,
        healthy: row.get(3),
        health_detail: row.get(4),
        status: row.get(5),
        running: row.get::<_, i64>(6) as u32,
        created_at: row.get(7),
        updated_at: row.get(8),
        version: row.get::<_, i64>(9) as u64,
    })
}

fn cvm_view(row: &Row) -> Result<CvmView, ProjectionError> {
    Ok(CvmView {
        id: CvmId(row.get(0)),
        workspace_id: WorkspaceId(row.get(1)),
        spec: serde_json::from_value(row.get(2)).map_err(|e| corrupt("a CVM's spec", e))?,
        status: row.get(3),
        backend_id: row.get::<_, Option<uuid::Uuid>>(4).map(BackendId),
        backend_reason: row.get(5),
        hourly_cost_micros: row.get::<_, Option<i64>>(6).map(|c| c as u64),
        backend_ref: row.get(7),
        agent_address: row.get(8),
        requested_by: row.get(9),
        requested_at: row.get(10),
        expires_at: row.get(11),
        started_at: row.get(12),
        online_since: row.get(13),
        online_seconds: row.get::<_, i64>(14) as u64,
        disconnections: row.get::<_, i32>(15) as u32,
        last_heard_at: row.get(16),
        messages_received: row.get::<_, i64>(17) as u64,
        agent_state: row.get(18),
        destroy_reason: row.get(19),
        destroy_requested_at: row.get(20),
        destroyed_at: row.get(21),
        failure: row.get(22),
        description: row
            .get::<_, Option<serde_json::Value>>(25)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| corrupt("a CVM's description", e))?,
        attestation_outcome: row.get(26),
        attested_at: row.get(27),
        updated_at: row.get(23),
        version: row.get::<_, i64>(24) as u64,
    })
}

impl ReadModels {
    /// The active backends `workspace` may use — its own and the platform's —, or with `None` every
    /// active backend; oldest first, with their load.
    pub async fn backends(
        &self,
        workspace: Option<WorkspaceId>,
    ) -> Result<Vec<BackendView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {} FROM backends b
                 WHERE b.status = 'active' AND ($1::uuid IS NULL OR b.workspace_id = $1 OR b.workspace_id IS NULL)
                 ORDER BY b.id",
                backend_columns()
            ))
            .await?;
        let rows = client
            .query(&statement, &[&workspace.map(|w| w.as_uuid())])
            .await?;
        rows.iter().map(backend_view).collect()
    }

    /// One backend, removed or not, whatever its workspace (the caller checks that).
    pub async fn backend(&self, id: BackendId) -> Result<Option<BackendView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {} FROM backends b WHERE b.id = $1",
                backend_columns()
            ))
            .await?;
        let row = client.query_opt(&statement, &[&id.as_uuid()]).await?;
        row.as_ref().map(backend_view).transpose()
    }

    /// A workspace's CVMs, oldest first, filtered.
    pub async fn cvms(
        &self,
        workspace: WorkspaceId,
        filter: &CvmFilter,
        page: PageRequest,
    ) -> Result<Page<CvmView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CVM_COLUMNS} FROM cvms
                 WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
                   AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR backend_id = $4)
                 ORDER BY id LIMIT $5"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &workspace.as_uuid(),
                    &page.after,
                    &filter.status,
                    &filter.backend.map(|b| b.as_uuid()),
                    &limit,
                ],
            )
            .await?;
        let items = rows.iter().map(cvm_view).collect::<Result<Vec<_>, _>>()?;
        Ok(paged(items, page.limit, |c| c.id.as_uuid()))
    }

    /// One CVM of a workspace.
    pub async fn cvm(&self, workspace: WorkspaceId, id: CvmId) -> Result<Option<CvmView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CVM_COLUMNS} FROM cvms WHERE workspace_id = $1 AND id = $2"
            ))
            .await?;
        let row = client
            .query_opt(&statement, &[&workspace.as_uuid(), &id.as_uuid()])
            .await?;
        row.as_ref().map(cvm_view).transpose()
    }

    /// Every appraisal of the CVM's evidence, oldest first.
    pub async fn cvm_attestations(
        &self,
        workspace: WorkspaceId,
        id: CvmId,
    ) -> Result<Vec<CvmAttestationAppraised>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT appraisal FROM cvm_attestations WHERE workspace_id = $1 AND cvm_id = $2 ORDER BY version",
            )
            .await?;
        let rows = client
            .query(&statement, &[&workspace.as_uuid(), &id.as_uuid()])
            .await?;
        rows.iter()
            .map(|row| serde_json::from_value(row.get(0)).map_err(|e| corrupt("an attestation appraisal", e)))
            .collect()
    }

    /// Up to `limit` CVMs still alive at `now` although their TTL has ended, the longest overdue first.
    pub async fn overdue_cvms(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(CvmId, WorkspaceId)>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, workspace_id FROM cvms
                 WHERE status IN ('creating', 'starting', 'online', 'offline') AND expires_at <= $1
                 ORDER BY expires_at LIMIT $2",
            )
            .await?;
        let rows = client.query(&statement, &[&now, &i64::from(limit)]).await?;
        Ok(rows
            .iter()
            .map(|row| (CvmId(row.get(0)), WorkspaceId(row.get(1))))
            .collect())
    }
}
