use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::access::Permission;
use crate::ids::{ApiKeyId, UserId, WorkspaceId};
use crate::values::SecretHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyCommand {
    /// Issues a key acting for `owner` in `workspace`, limited to `permissions`. `secret` is the hash
    /// of the key the application layer generated and shows once. Without `expires_at` the key lives
    /// as long as allowed ([`super::MAX_LIFETIME`]).
    Create {
        id: ApiKeyId,
        owner: UserId,
        workspace: WorkspaceId,
        name: String,
        permissions: BTreeSet<Permission>,
        secret: SecretHash,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Revoking a revoked key changes nothing.
    Revoke { reason: Option<String> },
}
