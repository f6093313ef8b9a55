use deadpool_postgres::Transaction;
use prism_domain::workspace::{Workspace, WorkspaceEvent};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{Projection, ProjectionError, WORKSPACES};

/// The `workspaces` table (one row per workspace, as of its last event) and its members, invitations
/// and custom roles.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkspacesProjection;

impl Projection for WorkspacesProjection {
    type Aggregate = Workspace;

    // Every statement is keyed by the workspace (invitations by their id, which is the workspace's).
    const INDEPENDENT_AGGREGATES: bool = true;

    fn name(&self) -> &'static str {
        WORKSPACES
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "workspaces",
            "workspace_members",
            "workspace_invitations",
            "workspace_roles",
        ]
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
                if let Some(admin) = e.admin {
                    tx.execute(
                        "INSERT INTO workspace_members (workspace_id, user_id, role, since) VALUES ($1, $2, 'admin', $3)",
                        &[&id, &admin.0, &e.created_at],
                    )
                    .await?;
                }
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
            membership => {
                let at = membership::apply(tx, id, membership).await?;
                tx.execute(
                    "UPDATE workspaces SET version = $2, updated_at = $3 WHERE id = $1",
                    &[&id, &v, &at],
                )
                .await?;
            }
        }
        Ok(())
    }
}

mod membership {
    use chrono::{DateTime, Utc};
    use deadpool_postgres::Transaction;
    use prism_domain::access::RoleName;
    use prism_domain::workspace::{Invitee, WorkspaceEvent};
    use uuid::Uuid;

    use crate::ProjectionError;

    fn names(roles: &std::collections::BTreeSet<RoleName>) -> Vec<&str> {
        roles.iter().map(RoleName::as_str).collect()
    }

    /// Applies one membership event; answers when it happened.
    pub(super) async fn apply(
        tx: &Transaction<'_>,
        workspace: Uuid,
        event: &WorkspaceEvent,
    ) -> Result<DateTime<Utc>, ProjectionError> {
        let at = match event {
            WorkspaceEvent::MemberInvited(e) => {
                let (user, email) = match &e.invitee {
                    Invitee::User(id) => (Some(id.0), None),
                    Invitee::Email(address) => (None, Some(address.as_str())),
                };
                tx.execute(
                    "INSERT INTO workspace_invitations (id, workspace_id, invitee_user, invitee_email, role, custom_roles,
                                                        status, expires_at, invited_by, invited_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9)",
                    &[&e.invitation.0, &workspace, &user, &email, &e.role.as_str(), &names(&e.custom_roles),
                      &e.expires_at, &e.invited_by.0, &e.invited_at],
                )
                .await?;
                e.invited_at
            }
            WorkspaceEvent::InvitationResent(e) => {
                tx.execute(
                    "UPDATE workspace_invitations SET expires_at = $2, updated_at = $3 WHERE id = $1",
                    &[&e.invitation.0, &e.expires_at, &e.resent_at],
                )
                .await?;
                e.resent_at
            }
            WorkspaceEvent::InvitationRevoked(e) => {
                close(tx, e.invitation.0, "revoked", e.revoked_at).await?;
                e.revoked_at
            }
            WorkspaceEvent::InvitationRejected(e) => {
                close(tx, e.invitation.0, "rejected", e.rejected_at).await?;
                e.rejected_at
            }
            WorkspaceEvent::InvitationAccepted(e) => {
                close(tx, e.invitation.0, "accepted", e.accepted_at).await?;
                tx.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role, custom_roles, since)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &workspace,
                        &e.user.0,
                        &e.role.as_str(),
                        &names(&e.custom_roles),
                        &e.accepted_at,
                    ],
                )
                .await?;
                e.accepted_at
            }
            WorkspaceEvent::MemberRoleChanged(e) => {
                tx.execute(
                    "UPDATE workspace_members SET role = $3, custom_roles = $4 WHERE workspace_id = $1 AND user_id = $2",
                    &[&workspace, &e.user.0, &e.role.as_str(), &names(&e.custom_roles)],
                )
                .await?;
                e.changed_at
            }
            WorkspaceEvent::MemberRemoved(e) => {
                tx.execute(
                    "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
                    &[&workspace, &e.user.0],
                )
                .await?;
                e.removed_at
            }
            WorkspaceEvent::RoleDefined(e) => {
                let permissions: Vec<&str> = e.permissions.iter().map(|p| p.as_str()).collect();
                tx.execute(
                    "INSERT INTO workspace_roles (workspace_id, name, permissions, defined_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (workspace_id, name) DO UPDATE SET permissions = $3, defined_at = $4",
                    &[&workspace, &e.name.as_str(), &permissions, &e.defined_at],
                )
                .await?;
                e.defined_at
            }
            WorkspaceEvent::RoleDeleted(e) => {
                tx.execute(
                    "DELETE FROM workspace_roles WHERE workspace_id = $1 AND name = $2",
                    &[&workspace, &e.name.as_str()],
                )
                .await?;
                e.deleted_at
            }
            WorkspaceEvent::Created(_) | WorkspaceEvent::Updated(_) | WorkspaceEvent::Archived(_) => {
                unreachable!("the workspace's own events are applied by the projection itself")
            }
        };
        Ok(at)
    }

    async fn close(
        tx: &Transaction<'_>,
        invitation: Uuid,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        tx.execute(
            "UPDATE workspace_invitations SET status = $2, updated_at = $3 WHERE id = $1",
            &[&invitation, &status, &at],
        )
        .await?;
        Ok(())
    }
}
