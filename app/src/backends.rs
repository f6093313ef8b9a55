//! Backends: where a workspace's CVMs are made. A workspace admin registers the workspace's own;
//! a platform operator registers the platform's, which every workspace may use (`prism up` registers
//! the local emulated agent that way). Health is recorded by the platform's health checker.

use prism_domain::BackendId;
use prism_domain::WorkspaceId;
use prism_domain::access::Permission;
use prism_domain::backend::{Backend, BackendCommand, BackendSettings, BackendStatus};
use prism_projections::{BACKENDS, BackendView};
use prism_store::CommandRequest;

use crate::{Action, App, AppError, Caller, Command, CommandOptions, Executed, ReadOptions, Target};

const WHAT: &str = "backend";

/// The platform acts as this service when it records a health check.
const HEALTH_CHECKER: &str = "backend-health";

#[derive(Debug, Clone, Copy)]
pub struct Backends<'a> {
    app: &'a App,
}

/// Who manages a backend: a workspace's admins, or the platform's operators.
fn manage(workspace: Option<WorkspaceId>) -> Action {
    match workspace {
        Some(workspace) => Action::in_workspace(Permission::BackendsManage, workspace),
        None => Action::platform(Permission::PlatformOperate),
    }
}

fn not_found(id: BackendId) -> AppError {
    AppError::not_found(format!("backend {id} not found"))
}

impl<'a> Backends<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Registers a backend in `workspace`, or for the whole platform (`None`).
    pub async fn register(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: Option<WorkspaceId>,
        settings: BackendSettings,
    ) -> Result<Executed<Backend>, AppError> {
        self.app.authorize(caller, manage(workspace)).await?;
        if let Some(workspace) = workspace {
            self.app.require_active_workspace(workspace, "backends").await?;
        }
        let command = Command {
            what: WHAT,
            operation: "register",
            permission: manage(workspace).permission,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace,
            input: &settings,
        };
        self.app
            .execute_authorized(caller, options, command, |id| BackendCommand::Register {
                id: BackendId(id.parse().expect("the service proposes UUIDs")),
                workspace,
                settings: settings.clone(),
            })
            .await
    }

    /// Registers the platform's backend `id` unless it exists (`prism up`'s local backend, under a
    /// fixed id, at every start).
    pub async fn ensure_platform_backend(
        &self,
        id: BackendId,
        settings: BackendSettings,
    ) -> Result<(), AppError> {
        let existing = self.load(id).await?;
        if existing.status != BackendStatus::New {
            return Ok(());
        }
        let caller = Caller::service("platform");
        let request = CommandRequest::<Backend>::new(
            &id,
            BackendCommand::Register {
                id,
                workspace: None,
                settings,
            },
            caller.metadata(None),
        );
        match self
            .app
            .bounded(async { Ok(self.app.repository::<Backend>().execute(request).await) })
            .await?
        {
            // Another process registered it first.
            Ok(_) | Err(prism_store::CommandError::Rejected(_)) => Ok(()),
            Err(e) => Err(AppError::command(WHAT, e)),
        }
    }

    /// Replaces a backend's settings; `workspace` is where the caller found it (`None`: the platform's).
    pub async fn update(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: Option<WorkspaceId>,
        id: BackendId,
        settings: BackendSettings,
    ) -> Result<Executed<Backend>, AppError> {
        self.change(caller, options, workspace, id, "update", &settings, || {
            BackendCommand::Update {
                settings: settings.clone(),
            }
        })
        .await
    }

    /// Takes a backend out of use.
    pub async fn remove(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: Option<WorkspaceId>,
        id: BackendId,
    ) -> Result<Executed<Backend>, AppError> {
        self.change(caller, options, workspace, id, "remove", &(), || {
            BackendCommand::Remove
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn change<I: serde::Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: Option<WorkspaceId>,
        id: BackendId,
        operation: &'static str,
        input: &I,
        make: impl FnOnce() -> BackendCommand,
    ) -> Result<Executed<Backend>, AppError> {
        self.app.authorize(caller, manage(workspace)).await?;
        // Another workspace's backend, or the platform's asked for through a workspace: not found.
        let state = self.load(id).await?;
        if state.status == BackendStatus::New || state.workspace != workspace {
            return Err(not_found(id));
        }
        let command = Command {
            what: WHAT,
            operation,
            permission: manage(workspace).permission,
            target: Target::Existing(id.to_string()),
            workspace,
            input,
        };
        self.app
            .execute_authorized(caller, options, command, |_| make())
            .await
    }

    /// The active backends `workspace` may use: its own and the platform's.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        read: ReadOptions,
    ) -> Result<Vec<BackendView>, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::BackendsRead, workspace))
            .await?;
        self.app.wait_read(&[BACKENDS], read).await?;
        Ok(self.app.read_models()?.backends(Some(workspace)).await?)
    }

    /// The platform's own backends and every workspace's, for operators.
    pub async fn list_all(&self, caller: &Caller, read: ReadOptions) -> Result<Vec<BackendView>, AppError> {
        self.app
            .authorize(caller, Action::platform(Permission::PlatformOperate))
            .await?;
        self.app.wait_read(&[BACKENDS], read).await?;
        Ok(self.app.read_models()?.backends(None).await?)
    }

    /// One backend `workspace` may see (its own or the platform's), removed or not.
    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: BackendId,
        read: ReadOptions,
    ) -> Result<BackendView, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::BackendsRead, workspace))
            .await?;
        self.app.wait_read(&[BACKENDS], read).await?;
        self.app
            .read_models()?
            .backend(id)
            .await?
            .filter(|b| b.workspace_id.is_none_or(|w| w == workspace))
            .ok_or_else(|| not_found(id))
    }

    /// Records a health check's outcome (the platform's health checker; no user asks for this).
    pub async fn record_health(&self, id: BackendId, healthy: bool, detail: String) -> Result<(), AppError> {
        let caller = Caller::service(HEALTH_CHECKER);
        let request = CommandRequest::<Backend>::new(
            &id,
            BackendCommand::RecordHealth { healthy, detail },
            caller.metadata(None),
        );
        self.app
            .bounded(async { Ok(self.app.repository::<Backend>().execute(request).await) })
            .await?
            .map(|_| ())
            .map_err(|e| AppError::command(WHAT, e))
    }

    /// The backend's state, from the log.
    pub async fn load(&self, id: BackendId) -> Result<Backend, AppError> {
        self.app
            .bounded(async { Ok(self.app.repository::<Backend>().view(&id).await?) })
            .await
    }
}
