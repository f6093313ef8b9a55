//! The session aggregate: one sign-in, carried by a family of refresh tokens, each spent by the next
//! (refresh token rotation with reuse detection, OAuth 2.0 Security Best Current Practice, RFC 9700
//! §4.14.2). A spent token presented again means the family has leaked, so the whole session ends.
//! Tokens are generated and hashed by the application layer; the domain sees hashes only.

mod command;
mod error;
mod event;
mod state;

pub use command::SessionCommand;
pub use error::SessionError;
pub use event::{
    RevocationReason, SessionEvent, SessionReuseDetected, SessionRevoked, SessionRotated, SessionStarted,
    SignInMethod,
};
pub use state::{RefreshToken, Session, SessionStatus};

use chrono::{DateTime, Utc};

use crate::aggregate::{Aggregate, CommandContext};
use crate::values::{SecretHash, check_text};

pub const ISSUER_MAX: usize = 512;

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;

    fn decide(
        &self,
        command: SessionCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        use SessionCommand as C;
        use SessionStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Start {
                    id,
                    user,
                    method,
                    refresh,
                    expires_at,
                    family_expires_at,
                    credentials,
                },
            ) => {
                if let SignInMethod::OpenIdConnect { issuer } = &method {
                    check_text("issuer", issuer, ISSUER_MAX, true)?;
                }
                if expires_at <= ctx.now || family_expires_at <= ctx.now {
                    return Err(SessionError::ExpiresInThePast);
                }
                Ok(vec![SessionEvent::Started(SessionStarted {
                    id,
                    user,
                    method,
                    refresh,
                    expires_at: expires_at.min(family_expires_at),
                    family_expires_at,
                    credentials,
                    started_at: ctx.now,
                })])
            }
            (S::New, _) => Err(SessionError::NotFound),
            (_, C::Start { .. }) => Err(SessionError::AlreadyExists),
            // Even a reuse of a spent token adds nothing to an ended session: it is refused.
            (S::Revoked, C::Refresh { .. }) => Err(SessionError::Ended),
            (S::Revoked, C::Revoke { .. }) => Ok(vec![]),
            (
                S::Active,
                C::Refresh {
                    presented,
                    next,
                    expires_at,
                },
            ) => self.refresh(presented, next, expires_at, ctx),
            (S::Active, C::Revoke { reason }) => Ok(vec![revoked(reason, ctx)]),
        }
    }

    fn apply(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::Started(e) => {
                self.status = SessionStatus::Active;
                self.id = Some(e.id);
                self.user = Some(e.user);
                self.method = Some(e.method.clone());
                self.current = Some(RefreshToken {
                    hash: e.refresh.clone(),
                    expires_at: e.expires_at,
                });
                self.family_expires_at = Some(e.family_expires_at);
                self.credentials = e.credentials;
            }
            SessionEvent::Rotated(e) => {
                self.spent.push(e.spent.clone());
                self.current = Some(RefreshToken {
                    hash: e.next.clone(),
                    expires_at: e.expires_at,
                });
            }
            SessionEvent::ReuseDetected(_) => {}
            SessionEvent::Revoked(e) => {
                self.status = SessionStatus::Revoked;
                self.revoked = Some(e.reason);
            }
        }
    }
}

impl Session {
    fn refresh(
        &self,
        presented: SecretHash,
        next: SecretHash,
        expires_at: DateTime<Utc>,
        ctx: &CommandContext,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        let (Some(current), Some(family_expires_at)) = (&self.current, self.family_expires_at) else {
            return Err(SessionError::NotFound);
        };
        // Checked before any expiry: a replayed token revokes the family even late in its life.
        if self.was_spent(&presented) {
            return Ok(vec![
                SessionEvent::ReuseDetected(SessionReuseDetected {
                    presented,
                    detected_at: ctx.now,
                }),
                revoked(RevocationReason::RefreshTokenReused, ctx),
            ]);
        }
        if !current.hash.matches(&presented) {
            return Err(SessionError::RefreshTokenInvalid);
        }
        if ctx.now >= family_expires_at {
            return Err(SessionError::SessionExpired);
        }
        if ctx.now >= current.expires_at {
            return Err(SessionError::RefreshTokenExpired);
        }
        if next.matches(&current.hash) || self.was_spent(&next) {
            return Err(SessionError::NextTokenNotFresh);
        }
        if expires_at <= ctx.now {
            return Err(SessionError::ExpiresInThePast);
        }
        Ok(vec![SessionEvent::Rotated(SessionRotated {
            spent: current.hash.clone(),
            next,
            expires_at: expires_at.min(family_expires_at),
            rotated_at: ctx.now,
        })])
    }
}

fn revoked(reason: RevocationReason, ctx: &CommandContext) -> SessionEvent {
    SessionEvent::Revoked(SessionRevoked {
        reason,
        revoked_by: ctx.actor.clone(),
        revoked_at: ctx.now,
    })
}

#[cfg(test)]
mod tests;
