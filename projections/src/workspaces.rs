use deadpool_postgres::Transaction;
use prism_domain::workspace::{Workspace, WorkspaceEvent};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{Projection, ProjectionError, WORKSPACES};

/// The `workspaces` table: one row per workspace, as of its last event.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkspacesProjection;

impl Projection for WorkspacesProjection {
    type Aggregate = Workspace;

    fn name(&self) -> &'static str {
        WORKSPACES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["workspaces"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<WorkspaceEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        match &recorded.event {
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
        Ok(())
    }
}
