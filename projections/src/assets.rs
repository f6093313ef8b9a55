use deadpool_postgres::Transaction;
use prism_domain::asset::{Asset, AssetEvent, AssetStatus};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{ASSETS, Projection, ProjectionError};

/// The `assets` table: one row per asset with its record, its status and what identifies its sample
/// (never the sample's bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct AssetsProjection;

impl Projection for AssetsProjection {
    type Aggregate = Asset;

    fn name(&self) -> &'static str {
        ASSETS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["assets"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<AssetEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        match &recorded.event {
            AssetEvent::Registered(e) => {
                let r = &e.record;
                tx.execute(
                    "INSERT INTO assets (id, workspace_id, owner_id, kind, algorithm_type, mime_type, sha3_256,
                                         file_name, description, status, created_by, created_at, updated_at,
                                         version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)",
                    &[
                        &id,
                        &e.workspace_id.as_uuid(),
                        &e.owner.as_uuid(),
                        &r.kind.as_str(),
                        &r.algorithm_type.map(|t| t.as_str()),
                        &r.mime_type.as_str(),
                        &r.sha3_256.as_str(),
                        &r.file_name.as_str(),
                        &r.description,
                        &AssetStatus::Active.as_str(),
                        &e.registered_by.0,
                        &e.registered_at,
                        &v,
                    ],
                )
                .await?;
            }
            AssetEvent::Updated(e) => {
                let c = &e.changes;
                tx.execute(
                    "UPDATE assets SET description = COALESCE($2, description),
                            mime_type = COALESCE($3, mime_type), version = $4, updated_at = $5
                     WHERE id = $1",
                    &[
                        &id,
                        &c.description,
                        &c.mime_type.as_ref().map(|m| m.as_str()),
                        &v,
                        &e.updated_at,
                    ],
                )
                .await?;
            }
            AssetEvent::SampleAttached(e) => {
                let s = &e.sample;
                tx.execute(
                    "UPDATE assets SET sample_sha256 = $2, sample_size = $3, sample_mime_type = $4,
                            sample_attached_at = $5, version = $6, updated_at = $5
                     WHERE id = $1",
                    &[
                        &id,
                        &s.sha256,
                        &(s.size as i64),
                        &s.mime_type.as_str(),
                        &e.attached_at,
                        &v,
                    ],
                )
                .await?;
            }
            AssetEvent::SampleRemoved(e) => {
                tx.execute(
                    "UPDATE assets SET sample_sha256 = NULL, sample_size = NULL, sample_mime_type = NULL,
                            sample_attached_at = NULL, version = $2, updated_at = $3
                     WHERE id = $1",
                    &[&id, &v, &e.removed_at],
                )
                .await?;
            }
            AssetEvent::Archived(e) => {
                tx.execute(
                    "UPDATE assets SET status = $2, version = $3, updated_at = $4 WHERE id = $1",
                    &[&id, &AssetStatus::Archived.as_str(), &v, &e.archived_at],
                )
                .await?;
            }
        }
        Ok(())
    }
}
