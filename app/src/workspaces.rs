//! Workspaces: the tenants that own computations.

use prism_domain::WorkspaceId;
use prism_domain::access::Permission;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_projections::{Page, PageRequest, WORKSPACES, WorkspaceView};
use serde::Serialize;

use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, Executed, Principal, ReadOptions, Target,
    UserPrincipal,
};

const WHAT: &str = "workspace";

/// A new workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewWorkspace {
    pub name: String,
    pub description: String,
}

/// Changes to a workspace; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceChanges {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Workspaces<'a> {
    app: &'a App,
}

impl<'a> Workspaces<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        input: NewWorkspace,
    ) -> Result<Executed<Workspace>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "create",
            permission: Permission::WorkspaceCreate,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: None,
            input: &input,
        };
        self.app
            .execute(caller, options, command, |id| WorkspaceCommand::Create {
                id: WorkspaceId(id.parse().expect("the service proposes UUIDs")),
                name: input.name.clone(),
                description: input.description.clone(),
                // The user who creates a workspace is its first admin.
                admin: caller.user().map(|user| user.id),
            })
            .await
    }

    pub async fn update(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        id: WorkspaceId,
        changes: WorkspaceChanges,
    ) -> Result<Executed<Workspace>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "update",
            permission: Permission::WorkspaceUpdate,
            target: Target::Existing(id.to_string()),
            workspace: Some(id),
            input: &changes,
        };
        self.app
            .execute(caller, options, command, |_| WorkspaceCommand::Update {
                name: changes.name.clone(),
                description: changes.description.clone(),
            })
            .await
    }

    /// Final: the workspace accepts no further change, and its computations are archived by a reaction.
    pub async fn archive(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        id: WorkspaceId,
    ) -> Result<Executed<Workspace>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "archive",
            permission: Permission::WorkspaceArchive,
            target: Target::Existing(id.to_string()),
            workspace: Some(id),
            input: &(),
        };
        self.app
            .execute(caller, options, command, |_| WorkspaceCommand::Archive)
            .await
    }

    pub async fn get(
        &self,
        caller: &Caller,
        id: WorkspaceId,
        read: ReadOptions,
    ) -> Result<WorkspaceView, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::WorkspaceRead, id))
            .await?;
        self.app.wait_read(&[WORKSPACES], read).await?;
        self.app
            .read_models()?
            .workspace(id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        page: PageRequest,
        read: ReadOptions,
    ) -> Result<Page<WorkspaceView>, AppError> {
        self.app
            .authorize(caller, Action::listing(Permission::WorkspaceRead))
            .await?;
        self.app.wait_read(&[WORKSPACES], read).await?;
        let models = self.app.read_models()?;
        match &caller.principal {
            // An API key sees its own workspace only (if its owner still may).
            Principal::User(UserPrincipal {
                api_key: Some(key), ..
            }) => {
                let mine = self
                    .app
                    .authorize(
                        caller,
                        Action::in_workspace(Permission::WorkspaceRead, key.workspace),
                    )
                    .await
                    .is_ok();
                let past_cursor = page.after.is_some_and(|after| after >= key.workspace.as_uuid());
                let items = match mine && !past_cursor {
                    true => models.workspace(key.workspace).await?.into_iter().collect(),
                    false => Vec::new(),
                };
                Ok(Page {
                    items,
                    next_after: None,
                })
            }
            // A user sees the workspaces it belongs to; an administrator and the platform see all.
            Principal::User(user) if !user.platform_admin => Ok(models.workspaces_of(user.id, page).await?),
            _ => Ok(models.workspaces(page).await?),
        }
    }
}

pub(crate) fn not_found(id: WorkspaceId) -> AppError {
    AppError::not_found(format!("workspace {id} not found"))
}
