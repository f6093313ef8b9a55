use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::SessionError;
use super::event::{RevocationReason, SessionEvent, SignInMethod};
use crate::ids::{SessionId, UserId};
use crate::values::SecretHash;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// No event yet: the session does not exist.
    #[default]
    New,
    Active,
    Revoked,
}

/// The refresh token that may be spent next, and until when (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub hash: SecretHash,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub status: SessionStatus,
    pub id: Option<SessionId>,
    pub user: Option<UserId>,
    pub method: Option<SignInMethod>,
    pub current: Option<RefreshToken>,
    pub family_expires_at: Option<DateTime<Utc>>,
    /// Every refresh token of the family spent so far: presenting one again ends the session.
    pub spent: Vec<SecretHash>,
    pub revoked: Option<RevocationReason>,
    /// The user's credential generation at sign-in.
    #[serde(default)]
    pub credentials: u32,
}

impl Session {
    /// The session can still be refreshed at `now`: not revoked, and neither its current token nor
    /// its family has expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.status == SessionStatus::Active
            && self.current.as_ref().is_some_and(|t| now < t.expires_at)
            && self.family_expires_at.is_some_and(|end| now < end)
    }

    /// What the events of a `Refresh` mean for the caller: `Ok` when they rotate the token, the
    /// error to answer with when they record a reuse (after committing them: the revocation must
    /// stand even though the caller is refused).
    pub fn refresh_outcome(events: &[SessionEvent]) -> Result<(), SessionError> {
        if events.iter().any(|e| matches!(e, SessionEvent::ReuseDetected(_))) {
            return Err(SessionError::RefreshTokenReused);
        }
        Ok(())
    }

    /// `presented` is a refresh token of this family that has been spent.
    pub fn was_spent(&self, presented: &SecretHash) -> bool {
        // Every hash is compared, in constant time each, so the answer's timing tells nothing.
        self.spent
            .iter()
            .fold(false, |found, h| h.matches(presented) | found)
    }
}
