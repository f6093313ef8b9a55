//! Personal API keys: a user (signed in with a session) makes a key that acts for them in one
//! workspace with some of their permissions; the key's secret is shown once, only its hash is kept.
//!
//! At use, a key allows what both the key and its owner allow (see [`crate::RoleAuthorizer`]), so a
//! key never outgrows its owner. At creation the owner must hold every permission asked for in the
//! workspace itself, asked of the [`crate::Authorizer`] one permission at a time: a computation
//! permission held only through a role in one computation (not through the workspace role or a custom
//! role) cannot be put on a key.

use chrono::{DateTime, Utc};
use prism_auth::{OpaqueToken, TokenKind};
use prism_domain::access::{Permission, Scope};
use prism_domain::api_key::{ApiKey, ApiKeyCommand, ApiKeyError, ApiKeyStatus};
use prism_domain::denial::DenialReason;
use prism_domain::{ApiKeyId, UserId, WorkspaceId};
use prism_projections::ApiKeyView;
use serde::Serialize;

use crate::accounts::{commit, in_session};
use crate::{Action, App, AppError, Caller, Command, CommandOptions, Denial, ErrorKind, Executed, Target};

const WHAT: &str = "API key";
const RESOURCE: &str = "api-keys";

/// A new API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewApiKey {
    pub workspace: WorkspaceId,
    pub name: String,
    /// Permission names (`computation.read`); at least one, none of the platform's.
    pub permissions: Vec<String>,
    /// `None`: the longest lifetime allowed ([`prism_domain::api_key::MAX_LIFETIME`]).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key as created: `key` is the secret bearer credential, shown this once and kept nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedApiKey {
    pub id: ApiKeyId,
    pub key: String,
    pub expires_at: DateTime<Utc>,
    pub sequence: u64,
}

/// What a create's idempotency key is bound to: the request and who made it, so that another user's
/// request with the same key is refused rather than answered with someone else's key.
#[derive(Serialize)]
struct CreateInput<'a> {
    owner: UserId,
    key: &'a NewApiKey,
}

#[derive(Debug, Clone, Copy)]
pub struct ApiKeys<'a> {
    app: &'a App,
}

impl<'a> ApiKeys<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Creates a key for the caller (signed in with a session: a key cannot make keys), who must hold
    /// every requested permission in the workspace. A retry under the same idempotency key cannot show
    /// the secret again: it is answered `AlreadyExists`, naming the key (revoke it and create another).
    pub async fn create(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        input: NewApiKey,
    ) -> Result<IssuedApiKey, AppError> {
        let owner = in_session(self.app, caller, RESOURCE, "creating an API key").await?;
        let mut permissions = std::collections::BTreeSet::new();
        for name in &input.permissions {
            let permission = Permission::parse(name)
                .ok_or_else(|| AppError::new(ErrorKind::Invalid, format!("`{name}` is not a permission")))?;
            if permission.scope() == Scope::Platform {
                return Err(AppError::rejected(ApiKeyError::PlatformPermission(permission)));
            }
            permissions.insert(permission);
        }
        let workspace = input.workspace;
        // Seeing the workspace first: an outsider learns "not found", whatever it asked for.
        self.app
            .authorize(caller, Action::in_workspace(Permission::WorkspaceRead, workspace))
            .await?;
        // A platform administrator sees every workspace, also one that does not exist.
        let standing = self
            .app
            .bounded(async {
                Ok(self
                    .app
                    .repository::<prism_domain::workspace::Workspace>()
                    .load(&workspace)
                    .await?)
            })
            .await?;
        if standing.state.status == prism_domain::workspace::WorkspaceStatus::New {
            return Err(AppError::not_found(format!("workspace {workspace} not found")));
        }
        for permission in &permissions {
            self.app
                .authorize(caller, Action::in_workspace(*permission, workspace))
                .await?;
        }
        let command = Command {
            what: WHAT,
            operation: "create",
            permission: Permission::WorkspaceRead,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input: &CreateInput {
                owner: owner.id,
                key: &input,
            },
        };
        let mut key = None;
        let executed: Executed<ApiKey> = self
            .app
            .execute(caller, options, command, |id| {
                let id = ApiKeyId(id.parse().expect("the service proposes UUIDs"));
                let (token, secret) = OpaqueToken::generate(TokenKind::ApiKey, id.0);
                key = Some(token);
                ApiKeyCommand::Create {
                    id,
                    owner: owner.id,
                    workspace,
                    name: input.name.clone(),
                    permissions: permissions.clone(),
                    secret,
                    expires_at: input.expires_at,
                }
            })
            .await?;
        let id: ApiKeyId = executed
            .id
            .parse()
            .map_err(|_| AppError::internal("an API key's id is a UUID"))?;
        let (false, Some(key)) = (executed.outcome.replayed, key) else {
            return Err(AppError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "API key {id} was created under this idempotency key already; its secret is shown \
                     only once: revoke it and create another"
                ),
            ));
        };
        let expires_at = executed
            .outcome
            .state
            .expires_at
            .ok_or_else(|| AppError::internal("a created API key has an expiry"))?;
        Ok(IssuedApiKey {
            id,
            key,
            expires_at,
            sequence: executed.outcome.sequence,
        })
    }

    /// The caller's own keys (signed-in session), revoked and expired ones included, oldest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ApiKeyView>, AppError> {
        let owner = in_session(self.app, caller, RESOURCE, "listing API keys").await?;
        Ok(self.app.read_models()?.api_keys_of(owner.id).await?)
    }

    /// Revokes a key: its owner (signed-in session) or a platform administrator. Anyone else is told
    /// it does not exist. Checked on the key itself, not the workspace: an owner who has left the
    /// workspace can still revoke their key. Revoking a revoked key changes nothing.
    pub async fn revoke(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        id: ApiKeyId,
    ) -> Result<Executed<ApiKey>, AppError> {
        let user = in_session(self.app, caller, RESOURCE, "revoking an API key").await?;
        let key = self
            .app
            .bounded(async { Ok(self.app.repository::<ApiKey>().load(&id).await?.state) })
            .await?;
        let not_found = || AppError::not_found(format!("API key {id} not found"));
        if key.status == ApiKeyStatus::New {
            return Err(not_found());
        }
        if key.owner != Some(user.id) && !user.platform_admin {
            let denial = Denial::new(
                DenialReason::NotVisible,
                format!("{RESOURCE}/{id}"),
                "not the key's owner",
            );
            self.app.deny(caller, denial).await;
            return Err(not_found());
        }
        let outcome = commit::<ApiKey, _>(
            self.app,
            caller,
            options,
            "revoke",
            &id.to_string(),
            key.workspace.map(|w| w.to_string()),
            &(),
            ApiKeyCommand::Revoke { reason: None },
        )
        .await?;
        Ok(Executed {
            id: id.to_string(),
            outcome,
        })
    }
}
