//! Queries over the assets read model: a workspace's assets in creation order, one asset, and which
//! active computations link an asset.

use chrono::{DateTime, Utc};
use prism_domain::{AssetId, ComputationId, UserId, WorkspaceId};
use serde::Serialize;
use tokio_postgres::Row;

use crate::queries::paged;
use crate::{Page, PageRequest, ProjectionError, ReadModels};

/// An asset as the read model shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetView {
    pub id: AssetId,
    pub workspace_id: WorkspaceId,
    pub owner: UserId,
    /// `algorithm` or `dataset`.
    pub kind: String,
    pub algorithm_type: Option<String>,
    pub mime_type: String,
    pub sha3_256: String,
    pub file_name: String,
    pub description: String,
    /// `active` or `archived`.
    pub status: String,
    pub sample: Option<SampleView>,
    /// The active computations that link it, oldest first.
    pub linked_to: Vec<ComputationId>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// What identifies an asset's sample (its bytes are kept beside the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampleView {
    pub sha256: String,
    pub size: u64,
    pub mime_type: String,
    pub attached_at: DateTime<Utc>,
}

/// Which assets a list shows: each field given narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFilter {
    /// `algorithm` or `dataset`.
    pub kind: Option<String>,
    pub owner: Option<UserId>,
    /// `active` or `archived`.
    pub status: Option<String>,
}

const ASSET_COLUMNS: &str = "a.id, a.workspace_id, a.owner_id, a.kind, a.algorithm_type, a.mime_type, \
     a.sha3_256, a.file_name, a.description, a.status, a.sample_sha256, a.sample_size, a.sample_mime_type, \
     a.sample_attached_at, a.created_by, a.created_at, a.updated_at, a.version, \
     ARRAY(SELECT ca.computation_id FROM computation_assets ca JOIN computations c ON c.id = ca.computation_id \
           WHERE ca.asset_id = a.id AND c.status = 'active' ORDER BY ca.computation_id)";

fn asset_view(row: &Row) -> AssetView {
    let sample = row.get::<_, Option<String>>(10).map(|sha256| SampleView {
        sha256,
        size: row.get::<_, Option<i64>>(11).unwrap_or_default() as u64,
        mime_type: row.get::<_, Option<String>>(12).unwrap_or_default(),
        attached_at: row.get::<_, Option<DateTime<Utc>>>(13).unwrap_or_default(),
    });
    let linked: Vec<uuid::Uuid> = row.get(18);
    AssetView {
        id: AssetId(row.get(0)),
        workspace_id: WorkspaceId(row.get(1)),
        owner: UserId(row.get(2)),
        kind: row.get(3),
        algorithm_type: row.get(4),
        mime_type: row.get(5),
        sha3_256: row.get(6),
        file_name: row.get(7),
        description: row.get(8),
        status: row.get(9),
        sample,
        linked_to: linked.into_iter().map(ComputationId).collect(),
        created_by: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
        version: row.get::<_, i64>(17) as u64,
    }
}

impl ReadModels {
    /// A workspace's assets in creation order, filtered.
    pub async fn assets(
        &self,
        workspace: WorkspaceId,
        filter: &AssetFilter,
        page: PageRequest,
    ) -> Result<Page<AssetView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ASSET_COLUMNS} FROM assets a
                 WHERE a.workspace_id = $1 AND ($2::uuid IS NULL OR a.id > $2)
                   AND ($3::text IS NULL OR a.kind = $3) AND ($4::uuid IS NULL OR a.owner_id = $4)
                   AND ($5::text IS NULL OR a.status = $5)
                 ORDER BY a.id LIMIT $6"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &workspace.as_uuid(),
                    &page.after,
                    &filter.kind,
                    &filter.owner.map(|o| o.as_uuid()),
                    &filter.status,
                    &limit,
                ],
            )
            .await?;
        let items = rows.iter().map(asset_view).collect();
        Ok(paged(items, page.limit, |a| a.id.as_uuid()))
    }

    /// One asset of a workspace.
    pub async fn asset(
        &self,
        workspace: WorkspaceId,
        id: AssetId,
    ) -> Result<Option<AssetView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ASSET_COLUMNS} FROM assets a WHERE a.workspace_id = $1 AND a.id = $2"
            ))
            .await?;
        let row = client
            .query_opt(&statement, &[&workspace.as_uuid(), &id.as_uuid()])
            .await?;
        Ok(row.as_ref().map(asset_view))
    }

    /// The active computations that link `asset`, as of stream sequence `sequence` or later, read in
    /// one snapshot with the computations projection's checkpoint; `None` while it has not reached
    /// `sequence`.
    pub async fn active_computations_linking_as_of(
        &self,
        asset: AssetId,
        sequence: u64,
    ) -> Result<Option<Vec<ComputationId>>, ProjectionError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // As in `active_computation_ids_as_of`: no snapshot across a rebuild's truncation.
        tx.batch_execute("LOCK TABLE computations, computation_assets IN ACCESS SHARE MODE")
            .await?;
        let statement = tx
            .prepare_cached(
                "SELECT COALESCE((SELECT sequence FROM projection_checkpoints WHERE name = $2), 0),
                        ARRAY(SELECT ca.computation_id FROM computation_assets ca
                              JOIN computations c ON c.id = ca.computation_id
                              WHERE ca.asset_id = $1 AND c.status = 'active' ORDER BY ca.computation_id)",
            )
            .await?;
        let row = tx
            .query_one(&statement, &[&asset.as_uuid(), &crate::COMPUTATIONS])
            .await?;
        tx.commit().await?;
        if (row.get::<_, i64>(0) as u64) < sequence {
            return Ok(None);
        }
        let ids: Vec<uuid::Uuid> = row.get(1);
        Ok(Some(ids.into_iter().map(ComputationId).collect()))
    }
}
