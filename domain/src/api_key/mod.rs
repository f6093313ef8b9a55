//! The API key aggregate: a personal key acting for its owner in one workspace, limited to a set of
//! permissions (a key allows what both the key and its owner allow), expiring, revocable, and stored
//! as the hash of its secret only. Uses are not recorded as events: there would be too many.

mod command;
mod error;
mod event;
mod state;

pub use command::ApiKeyCommand;
pub use error::{ApiKeyError, ApiKeyRejection};
pub use event::{ApiKeyCreated, ApiKeyEvent, ApiKeyRevoked};
pub use state::{ApiKey, ApiKeyStatus};

use chrono::Duration;

use crate::access::Scope;
use crate::aggregate::{Aggregate, CommandContext};
use crate::values::check_text;

pub const NAME_MAX: usize = 128;
pub const REASON_MAX: usize = 1024;
/// The longest a key may live, and how long one created without an expiry lives.
pub const MAX_LIFETIME: Duration = Duration::days(365);

impl Aggregate for ApiKey {
    const TYPE: &'static str = "api_key";
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = ApiKeyError;

    fn decide(&self, command: ApiKeyCommand, ctx: &CommandContext) -> Result<Vec<ApiKeyEvent>, ApiKeyError> {
        use ApiKeyCommand as C;
        use ApiKeyStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Create {
                    id,
                    owner,
                    workspace,
                    name,
                    permissions,
                    secret,
                    expires_at,
                },
            ) => {
                let name = name.trim().to_owned();
                check_text("name", &name, NAME_MAX, true)?;
                if permissions.is_empty() {
                    return Err(ApiKeyError::NoPermissions);
                }
                if let Some(platform) = permissions.iter().find(|p| p.scope() == Scope::Platform) {
                    return Err(ApiKeyError::PlatformPermission(*platform));
                }
                let latest = ctx.now + MAX_LIFETIME;
                let expires_at = expires_at.unwrap_or(latest);
                if expires_at <= ctx.now {
                    return Err(ApiKeyError::ExpiresInThePast);
                }
                if expires_at > latest {
                    return Err(ApiKeyError::LifetimeTooLong {
                        max_days: MAX_LIFETIME.num_days(),
                    });
                }
                Ok(vec![ApiKeyEvent::Created(ApiKeyCreated {
                    id,
                    owner,
                    workspace,
                    name,
                    permissions,
                    secret,
                    expires_at,
                    created_by: ctx.actor.clone(),
                    created_at: ctx.now,
                })])
            }
            (S::New, _) => Err(ApiKeyError::NotFound),
            (_, C::Create { .. }) => Err(ApiKeyError::AlreadyExists),
            (S::Revoked, C::Revoke { .. }) => Ok(vec![]),
            (S::Active, C::Revoke { reason }) => {
                if let Some(reason) = &reason {
                    check_text("reason", reason, REASON_MAX, false)?;
                }
                Ok(vec![ApiKeyEvent::Revoked(ApiKeyRevoked {
                    reason,
                    revoked_by: ctx.actor.clone(),
                    revoked_at: ctx.now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &ApiKeyEvent) {
        match event {
            ApiKeyEvent::Created(e) => {
                self.status = ApiKeyStatus::Active;
                self.id = Some(e.id);
                self.owner = Some(e.owner);
                self.workspace = Some(e.workspace);
                self.name = e.name.clone();
                self.permissions = e.permissions.clone();
                self.secret = Some(e.secret.clone());
                self.expires_at = Some(e.expires_at);
            }
            ApiKeyEvent::Revoked(_) => self.status = ApiKeyStatus::Revoked,
        }
    }
}

#[cfg(test)]
mod tests;
