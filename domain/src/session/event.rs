use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::DomainEvent;
use crate::ids::{Actor, SessionId, UserId};
use crate::values::SecretHash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum SessionEvent {
    Started(SessionStarted),
    Rotated(SessionRotated),
    ReuseDetected(SessionReuseDetected),
    Revoked(SessionRevoked),
}

/// How the user proved who they are when the session began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignInMethod {
    Password,
    #[serde(rename = "openid_connect")]
    OpenIdConnect {
        issuer: String,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    SignedOut,
    PasswordChanged,
    UserDisabled,
    /// A spent refresh token was presented again: the family is compromised.
    RefreshTokenReused,
    Administrator,
}

/// A user signed in: the session and the first refresh token of its family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStarted {
    pub id: SessionId,
    pub user: UserId,
    pub method: SignInMethod,
    pub refresh: SecretHash,
    pub expires_at: DateTime<Utc>,
    /// No token of the family is accepted from then on, however recently it was issued.
    pub family_expires_at: DateTime<Utc>,
    /// The user's credential generation when they signed in (see `User::admits`): a password change
    /// or reset after it ends the session.
    #[serde(default)]
    pub credentials: u32,
    pub started_at: DateTime<Utc>,
}

/// The current refresh token was spent for the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRotated {
    pub spent: SecretHash,
    pub next: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: DateTime<Utc>,
}

/// A refresh token that had been spent was presented again; a `revoked` event follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionReuseDetected {
    pub presented: SecretHash,
    pub detected_at: DateTime<Utc>,
}

/// The session ended: none of its refresh tokens is accepted any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRevoked {
    pub reason: RevocationReason,
    pub revoked_by: Actor,
    pub revoked_at: DateTime<Utc>,
}

impl DomainEvent for SessionEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Started(_) => "started",
            Self::Rotated(_) => "rotated",
            Self::ReuseDetected(_) => "reuse_detected",
            Self::Revoked(_) => "revoked",
        }
    }
}
