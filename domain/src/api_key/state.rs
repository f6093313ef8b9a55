use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::ApiKeyRejection;
use crate::access::Permission;
use crate::ids::{ApiKeyId, UserId, WorkspaceId};
use crate::values::SecretHash;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStatus {
    /// No event yet: the key does not exist.
    #[default]
    New,
    Active,
    Revoked,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub status: ApiKeyStatus,
    pub id: Option<ApiKeyId>,
    pub owner: Option<UserId>,
    pub workspace: Option<WorkspaceId>,
    pub name: String,
    pub permissions: BTreeSet<Permission>,
    pub secret: Option<SecretHash>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether `presented` (the hash of the secret a caller sent) opens this key at `now`. The secret
    /// is checked first, so only its holder learns that a key was revoked or has expired. A key is
    /// accepted strictly before `expires_at`.
    pub fn authenticates(&self, presented: &SecretHash, now: DateTime<Utc>) -> Result<(), ApiKeyRejection> {
        if !self
            .secret
            .as_ref()
            .is_some_and(|secret| secret.matches(presented))
        {
            return Err(ApiKeyRejection::WrongSecret);
        }
        if self.status == ApiKeyStatus::Revoked {
            return Err(ApiKeyRejection::Revoked);
        }
        if self.expires_at.is_none_or(|end| now >= end) {
            return Err(ApiKeyRejection::Expired);
        }
        Ok(())
    }
}
