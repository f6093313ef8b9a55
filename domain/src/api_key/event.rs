use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::aggregate::DomainEvent;
use crate::ids::{Actor, ApiKeyId, UserId, WorkspaceId};
use crate::values::SecretHash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ApiKeyEvent {
    Created(ApiKeyCreated),
    Revoked(ApiKeyRevoked),
}

/// A personal API key was issued; only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreated {
    pub id: ApiKeyId,
    pub owner: UserId,
    pub workspace: WorkspaceId,
    pub name: String,
    pub permissions: BTreeSet<Permission>,
    pub secret: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
}

/// An API key was revoked: it authenticates no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRevoked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub revoked_by: Actor,
    pub revoked_at: DateTime<Utc>,
}

impl DomainEvent for ApiKeyEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Revoked(_) => "revoked",
        }
    }
}
