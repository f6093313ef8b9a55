//! The authorisation every service asks for before it acts, whatever the transport.
//!
//! A service names the [`Action`] (one [`Permission`], and the workspace or computation it applies to);
//! the [`Authorizer`] answers from the caller's [`Principal`]. [`RoleAuthorizer`] enforces the domain's
//! permission matrix ([`prism_domain::access`]) against the aggregates themselves (workspace
//! membership, computation participants) as [`prism_store::Repository::view`] has them: a change made
//! through this process holds from the next request, one made through another process as soon as this
//! process's follower of the log has delivered it (milliseconds), without a round trip per request.
//! [`AllowAll`] lets everyone do everything; it exists for the application layer's own tests.
//!
//! A resource of a workspace the caller has nothing to do with is "not found", never "forbidden", so
//! its existence does not leak. Every denial is recorded as an `io.prism.access.denied.v1` event.

use async_trait::async_trait;
use prism_domain::access::{Grants, Permission, Scope};
use prism_domain::computation::Computation;
use prism_domain::workspace::{Workspace, WorkspaceStatus};
use prism_domain::{ComputationId, ParticipantId, WorkspaceId};

use crate::caller::{Principal, UserPrincipal};
use crate::denials::Denial;
use crate::{App, AppError, Caller};

/// What a caller asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub permission: Permission,
    /// The workspace it happens in, when it happens in one.
    pub workspace: Option<WorkspaceId>,
    /// The computation it applies to, for computation permissions on one computation.
    pub computation: Option<ComputationId>,
}

impl Action {
    /// An action on the platform as a whole.
    pub fn platform(permission: Permission) -> Self {
        Self {
            permission,
            workspace: None,
            computation: None,
        }
    }

    pub fn in_workspace(permission: Permission, workspace: WorkspaceId) -> Self {
        Self {
            permission,
            workspace: Some(workspace),
            computation: None,
        }
    }

    pub fn on_computation(
        permission: Permission,
        workspace: WorkspaceId,
        computation: ComputationId,
    ) -> Self {
        Self {
            permission,
            workspace: Some(workspace),
            computation: Some(computation),
        }
    }

    /// Listing what the caller can see (filtered by the service): any signed-in caller may ask, an
    /// API key only when it carries `permission`.
    pub fn listing(permission: Permission) -> Self {
        Self::platform(permission)
    }

    /// The resource, as a denial record names it.
    pub fn resource(&self) -> String {
        match (self.workspace, self.computation) {
            (Some(w), Some(c)) => format!("workspaces/{w}/computations/{c}"),
            (Some(w), None) => format!("workspaces/{w}"),
            _ => "platform".into(),
        }
    }
}

#[async_trait]
pub trait Authorizer: Send + Sync + std::fmt::Debug + 'static {
    /// `Ok` to go on; otherwise the [`Denial`] to record and answer.
    async fn authorize(&self, app: &App, caller: &Caller, action: &Action) -> Result<(), AuthzError>;
}

/// Why an action is refused, or that it could not be decided.
#[derive(Debug)]
pub enum AuthzError {
    Denied(Denial),
    /// Deciding failed (the event store is unreachable…): nothing is recorded.
    Failed(AppError),
}

impl From<AppError> for AuthzError {
    fn from(e: AppError) -> Self {
        Self::Failed(e)
    }
}

/// Every caller may do everything. Only for tests of the application layer itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _: &App, _: &Caller, _: &Action) -> Result<(), AuthzError> {
        Ok(())
    }
}

/// Enforces the permission matrix: platform administrators and platform services may do everything;
/// users what their workspace role, custom roles and computation roles grant; API keys what both the
/// key and its owner may, in the key's workspace only.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleAuthorizer;

#[async_trait]
impl Authorizer for RoleAuthorizer {
    async fn authorize(&self, app: &App, caller: &Caller, action: &Action) -> Result<(), AuthzError> {
        let user = match &caller.principal {
            Principal::Service(_) => return Ok(()),
            Principal::Anonymous => return Err(AuthzError::Denied(Denial::unauthenticated(action))),
            Principal::User(user) => user,
        };
        if user.platform_admin && user.api_key.is_none() {
            return Ok(());
        }
        let grants = grants_for(app, user, action).await?;
        if grants.allows(action.permission) {
            Ok(())
        } else {
            Err(AuthzError::Denied(Denial::missing_permission(action)))
        }
    }
}

/// What `user` holds where `action` happens. A workspace (or computation) the user has no part in is
/// "not found".
async fn grants_for(app: &App, user: &UserPrincipal, action: &Action) -> Result<Grants, AuthzError> {
    let mut grants = match action.permission.scope() {
        Scope::Platform => {
            if user.platform_admin {
                Grants::everything()
            } else {
                Grants::signed_in()
            }
        }
        Scope::Workspace | Scope::Computation => {
            let Some(workspace_id) = action.workspace else {
                // A listing: the service shows only what the caller belongs to.
                let mut grants = Grants::from_iter([action.permission]);
                if let Some(key) = &user.api_key {
                    grants.limit_to(&key.permissions);
                }
                return Ok(grants);
            };
            if let Some(key) = &user.api_key
                && key.workspace != workspace_id
            {
                return Err(AuthzError::Denied(Denial::not_visible(
                    action,
                    "outside the API key's workspace",
                )));
            }
            let workspace = app
                .bounded(async { Ok(app.repository::<Workspace>().view(&workspace_id).await?) })
                .await?;
            let mut grants = if user.platform_admin {
                Grants::everything()
            } else {
                workspace.grants_of(user.id)
            };
            let mut involved = workspace.member(user.id).is_some() || user.platform_admin;
            if let Some(computation_id) = action.computation {
                let computation = app
                    .bounded(async { Ok(app.repository::<Computation>().view(&computation_id).await?) })
                    .await?;
                // Only a participant linked to the user counts: an address still pending grants nothing
                // until its holder has verified it.
                let me = ParticipantId::User(user.id);
                if computation.workspace_id == Some(workspace_id)
                    && let Some(participant) = computation.definition.participant(&me)
                {
                    involved = true;
                    for role in &participant.roles {
                        grants.add_computation_role(*role);
                    }
                    // Custom roles given on this computation grant their permissions on it only.
                    for name in &participant.custom_roles {
                        let permissions = workspace.roles.get(name).into_iter().flatten();
                        grants.add_custom(permissions.copied().filter(|p| p.scope() == Scope::Computation));
                    }
                }
            }
            if workspace.status == WorkspaceStatus::New || !involved {
                return Err(AuthzError::Denied(Denial::not_visible(
                    action,
                    "not a member of the workspace",
                )));
            }
            grants
        }
    };
    if let Some(key) = &user.api_key {
        grants.limit_to(&key.permissions);
    }
    Ok(grants)
}
