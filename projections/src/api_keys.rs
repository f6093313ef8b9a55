use deadpool_postgres::Transaction;
use prism_domain::api_key::{ApiKey, ApiKeyEvent};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{API_KEYS, Projection, ProjectionError};

/// The `api_keys` table: one row per personal API key, as of its last event. The hash of the key's
/// secret is not kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiKeysProjection;

impl Projection for ApiKeysProjection {
    type Aggregate = ApiKey;

    fn name(&self) -> &'static str {
        API_KEYS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["api_keys"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<ApiKeyEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        match &recorded.event {
            ApiKeyEvent::Created(e) => {
                let permissions: Vec<&str> = e.permissions.iter().map(|p| p.as_str()).collect();
                tx.execute(
                    "INSERT INTO api_keys (id, owner, workspace_id, name, permissions, status, expires_at,
                                           created_at, version)
                     VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8)",
                    &[
                        &id,
                        &e.owner.0,
                        &e.workspace.0,
                        &e.name,
                        &permissions,
                        &e.expires_at,
                        &e.created_at,
                        &v,
                    ],
                )
                .await?;
            }
            ApiKeyEvent::Revoked(e) => {
                tx.execute(
                    "UPDATE api_keys SET status = 'revoked', revoked_at = $2, version = $3 WHERE id = $1",
                    &[&id, &e.revoked_at, &v],
                )
                .await?;
            }
        }
        Ok(())
    }
}
