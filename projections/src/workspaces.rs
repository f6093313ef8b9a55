use deadpool_postgres::Transaction;
use prism_domain::Aggregate as _;
use prism_domain::workspace::{Workspace, WorkspaceEvent};
use prism_store::StoredCommit;

use crate::projection_support::{decode, version};
use crate::{Projection, ProjectionError, WORKSPACES};

/// The `workspaces` table: one row per workspace, as of its last event.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkspacesProjection;

impl Projection for WorkspacesProjection {
    fn name(&self) -> &'static str {
        WORKSPACES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["workspaces"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        commit: &'a StoredCommit,
    ) -> Result<(), ProjectionError> {
        for envelope in commit
            .events
            .iter()
            .filter(|e| e.aggregatetype == Workspace::TYPE)
        {
            let id = crate::projection_support::aggregate_uuid(envelope, commit.sequence)?;
            let v = version(envelope);
            match decode::<Workspace>(envelope, commit.sequence)? {
                WorkspaceEvent::Created(e) => {
                    tx.execute(
                        "INSERT INTO workspaces (id, name, description, status, version, created_by, created_at, updated_at)
                         VALUES ($1, $2, $3, 'active', $4, $5, $6, $6)",
                        &[&id, &e.name, &e.description, &v, &e.created_by.0, &e.created_at],
                    )
                    .await?;
                }
                WorkspaceEvent::Updated(e) => {
                    tx.execute(
                        "UPDATE workspaces SET name = COALESCE($2, name), description = COALESCE($3, description),
                                version = $4, updated_at = $5 WHERE id = $1",
                        &[&id, &e.name, &e.description, &v, &e.updated_at],
                    )
                    .await?;
                }
                WorkspaceEvent::Archived(e) => {
                    tx.execute(
                        "UPDATE workspaces SET status = 'archived', version = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &v, &e.archived_at],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
