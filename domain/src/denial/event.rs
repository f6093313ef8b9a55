use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::aggregate::DomainEvent;
use crate::ids::Actor;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum DenialEvent {
    Denied(AccessDenied),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// No credentials, where the action needs some.
    Unauthenticated,
    /// Credentials that do not hold: malformed, wrongly signed, expired or revoked.
    InvalidCredentials,
    /// A sign-in with a wrong password, an unknown account, or a locked or disabled one.
    SignInFailed,
    /// Too many attempts from one source or for one account.
    Throttled,
    /// The caller has no part in the workspace (or computation), or an API key names another one.
    NotVisible,
    /// The caller's roles do not grant the permission.
    MissingPermission,
    /// A client certificate refused at the TLS handshake: unknown issuer, expired, revoked, or none
    /// where one is required.
    CertificateRefused,
}

/// A request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessDenied {
    /// Who was refused (`anonymous` when no credentials held).
    pub actor: Actor,
    pub reason: DenialReason,
    /// The permission the action needed, when it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<Permission>,
    /// What was asked for (`workspaces/<id>`, `platform`, `oauth/token`…).
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The source address, as the transport saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Denials from this source that were not recorded one by one since the previous record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
    pub at: DateTime<Utc>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl DomainEvent for DenialEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
        }
    }
}
