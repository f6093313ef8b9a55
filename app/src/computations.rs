//! Computations: the preconditions that read the workspace, then the one command path.

use prism_domain::access::Permission;
use prism_domain::computation::{
    Computation, ComputationChanges, ComputationCommand, Definition, WorkspaceStanding,
};
use prism_domain::workspace::{Workspace, WorkspaceStatus};
use prism_domain::{ComputationId, WorkspaceId};
use prism_projections::{COMPUTATIONS, ComputationView, Page, PageRequest, WORKSPACES};
use serde::Serialize;

use crate::workspaces;
use crate::{Action, App, AppError, Caller, Command, CommandOptions, Executed, ReadOptions, Target};

const WHAT: &str = "computation";

#[derive(Debug, Clone, Copy)]
pub struct Computations<'a> {
    app: &'a App,
}

#[derive(Serialize)]
struct ArchiveInput<'a> {
    reason: &'a Option<String>,
}

impl<'a> Computations<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Defines a computation in an active workspace.
    pub async fn create(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        definition: Definition,
    ) -> Result<Executed<Computation>, AppError> {
        // The workspace aggregate itself, not its read model: a workspace created a moment ago may not
        // be projected yet, and one archived a moment ago must already count as archived. The load
        // brings a cached view up to date with the commits after it, never the whole history again.
        let standing = self
            .app
            .bounded(async {
                let loaded = self.app.repository::<Workspace>().load(&workspace).await?;
                Ok(match loaded.state.status {
                    WorkspaceStatus::New => WorkspaceStanding::Missing,
                    WorkspaceStatus::Active => WorkspaceStanding::Active,
                    WorkspaceStatus::Archived => WorkspaceStanding::Archived,
                })
            })
            .await?;
        let command = Command {
            what: WHAT,
            operation: "create",
            permission: Permission::ComputationCreate,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input: &definition,
        };
        self.app
            .execute(caller, options, command, |id| ComputationCommand::Create {
                id: ComputationId(id.parse().expect("the service proposes UUIDs")),
                workspace_id: workspace,
                workspace: standing,
                definition: definition.clone(),
            })
            .await
    }

    /// Changes a computation's definition; absent fields keep their value.
    pub async fn update(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        changes: ComputationChanges,
    ) -> Result<Executed<Computation>, AppError> {
        self.ensure_in_workspace(workspace, id).await?;
        if changes.participants.is_some() {
            // Changing who takes part is more than editing the definition.
            self.app
                .authorize(
                    caller,
                    Action::on_computation(Permission::ComputationParticipantsManage, workspace, id),
                )
                .await?;
        }
        let command = Command {
            what: WHAT,
            operation: "update",
            permission: Permission::ComputationUpdate,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &changes,
        };
        self.app
            .execute(caller, options, command, |_| {
                ComputationCommand::Update(changes.clone())
            })
            .await
    }

    /// Archives a computation (it is kept, read-only, for the audit trail).
    pub async fn archive(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        reason: Option<String>,
    ) -> Result<Executed<Computation>, AppError> {
        self.ensure_in_workspace(workspace, id).await?;
        let command = Command {
            what: WHAT,
            operation: "archive",
            permission: Permission::ComputationArchive,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &ArchiveInput { reason: &reason },
        };
        self.app
            .execute(caller, options, command, |_| ComputationCommand::Archive {
                reason: reason.clone(),
            })
            .await
    }

    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
        read: ReadOptions,
    ) -> Result<ComputationView, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRead, workspace, id),
            )
            .await?;
        self.app.wait_read(&[COMPUTATIONS], read).await?;
        self.app
            .read_models()?
            .computation(workspace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A workspace's computations, oldest first. An unknown workspace is "not found", not an empty
    /// list, so a typo is not mistaken for "no computations yet".
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        page: PageRequest,
        read: ReadOptions,
    ) -> Result<Page<ComputationView>, AppError> {
        self.app
            .authorize(
                caller,
                Action::in_workspace(Permission::ComputationRead, workspace),
            )
            .await?;
        self.app.wait_read(&[WORKSPACES, COMPUTATIONS], read).await?;
        let models = self.app.read_models()?;
        if models.workspace(workspace).await?.is_none() {
            return Err(workspaces::not_found(workspace));
        }
        Ok(models.computations(workspace, page).await?)
    }

    /// A computation is addressed through its workspace; one in another workspace is "not found" here,
    /// or a request could change a computation of a workspace it does not name. Checked on the aggregate
    /// (the read model may lag). A computation never moves between workspaces, so the repository's
    /// cached state answers when present.
    async fn ensure_in_workspace(&self, workspace: WorkspaceId, id: ComputationId) -> Result<(), AppError> {
        let existing = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().existing_state(&id).await?) })
            .await?;
        match existing.workspace_id {
            Some(w) if w == workspace => Ok(()),
            _ => Err(not_found(id)),
        }
    }
}

fn not_found(id: ComputationId) -> AppError {
    AppError::not_found(format!("computation {id} not found"))
}
