use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::SignInOutcome;
use super::event::{ExternalIdentity, PendingToken, SignInFailure, UserEvent};
use crate::ids::{SessionId, UserId};
use crate::session::Session;
use crate::values::{Email, PasswordHash};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// No event yet: the account does not exist.
    #[default]
    New,
    Active,
    Disabled,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub status: UserStatus,
    pub id: Option<UserId>,
    pub email: Option<Email>,
    pub display_name: String,
    /// `None` for a user who signs in only through OpenID Connect. Its `Debug` prints no hash.
    pub password: Option<PasswordHash>,
    pub email_verified: bool,
    pub platform_admin: bool,
    pub pending_verification: Option<PendingToken>,
    pub pending_reset: Option<PendingToken>,
    pub identities: BTreeSet<ExternalIdentity>,
    /// When the latest wrong passwords were given, since the last sign-in, lockout or reset (at most
    /// [`super::FAILURES_KEPT`]).
    pub recent_failures: Vec<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    /// Counts password changes and resets: a session started under an earlier generation has ended
    /// (all but `kept_session`, the one the latest change was made from).
    #[serde(default)]
    pub credentials: u32,
    #[serde(default)]
    pub kept_session: Option<SessionId>,
}

impl User {
    /// `session` may still act for this user: it began after the latest password change or reset, or
    /// it is the session that change was made from.
    pub fn admits(&self, session: &Session) -> bool {
        session.credentials == self.credentials || (session.id.is_some() && session.id == self.kept_session)
    }

    /// A lockout is in force at `now` (it ends at `locked_until`, exclusive).
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Whether a sign-in may be attempted at `now`, and if not, the reason to record with
    /// `RecordSignIn`. An account that does not exist answers like a wrong password, so that the
    /// answer does not tell which addresses are registered.
    pub fn can_sign_in(&self, now: DateTime<Utc>) -> Result<(), SignInFailure> {
        match self.status {
            UserStatus::New => Err(SignInFailure::WrongPassword),
            UserStatus::Disabled => Err(SignInFailure::Disabled),
            UserStatus::Active if self.is_locked(now) => Err(SignInFailure::Locked),
            UserStatus::Active => Ok(()),
        }
    }

    /// What the events of a `RecordSignIn` recorded: the domain may have turned an attempt the
    /// application layer judged successful into a failure (disabled or locked account), so the
    /// application reads the outcome from here before it opens a session.
    pub fn sign_in_outcome(events: &[UserEvent]) -> Option<SignInOutcome> {
        events.iter().find_map(|event| match event {
            UserEvent::SignedIn(_) => Some(SignInOutcome::Succeeded),
            UserEvent::SignInFailed(e) => Some(SignInOutcome::Failed { reason: e.reason }),
            _ => None,
        })
    }
}
