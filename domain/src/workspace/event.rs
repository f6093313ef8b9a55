use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::state::Invitee;
use crate::access::{Permission, RoleName, WorkspaceRole};
use crate::aggregate::DomainEvent;
use crate::ids::{Actor, InvitationId, UserId, WorkspaceId};
use crate::values::SecretHash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum WorkspaceEvent {
    Created(WorkspaceCreated),
    Updated(WorkspaceUpdated),
    Archived(WorkspaceArchived),
    MemberInvited(MemberInvited),
    InvitationResent(InvitationResent),
    InvitationRevoked(InvitationRevoked),
    InvitationAccepted(InvitationAccepted),
    InvitationRejected(InvitationRejected),
    MemberRoleChanged(MemberRoleChanged),
    MemberRemoved(MemberRemoved),
    RoleDefined(RoleDefined),
    RoleDeleted(RoleDeleted),
}

/// A workspace came into being.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreated {
    pub id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
    /// The workspace's first admin: the user who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<UserId>,
}

/// Some of a workspace's descriptive fields changed; absent fields kept their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub updated_by: Actor,
    pub updated_at: DateTime<Utc>,
}

/// A workspace was archived: it accepts no further change, and its computations follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceArchived {
    pub archived_by: Actor,
    pub archived_at: DateTime<Utc>,
}

/// Someone was invited to join; only the hash of the invitation token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberInvited {
    pub invitation: InvitationId,
    pub invitee: Invitee,
    pub role: WorkspaceRole,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub custom_roles: BTreeSet<RoleName>,
    pub token: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub invited_by: Actor,
    pub invited_at: DateTime<Utc>,
}

/// An invitation got a new token and expiry; the previous token no longer works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationResent {
    pub invitation: InvitationId,
    pub token: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub resent_by: Actor,
    pub resent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRevoked {
    pub invitation: InvitationId,
    pub revoked_by: Actor,
    pub revoked_at: DateTime<Utc>,
}

/// The invitee joined, with the invitation's roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationAccepted {
    pub invitation: InvitationId,
    pub user: UserId,
    pub role: WorkspaceRole,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub custom_roles: BTreeSet<RoleName>,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRejected {
    pub invitation: InvitationId,
    pub user: UserId,
    pub rejected_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRoleChanged {
    pub user: UserId,
    pub role: WorkspaceRole,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub custom_roles: BTreeSet<RoleName>,
    pub changed_by: Actor,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRemoved {
    pub user: UserId,
    pub removed_by: Actor,
    pub removed_at: DateTime<Utc>,
}

/// A custom role was created or its permissions replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDefined {
    pub name: RoleName,
    pub permissions: BTreeSet<Permission>,
    pub defined_by: Actor,
    pub defined_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDeleted {
    pub name: RoleName,
    pub deleted_by: Actor,
    pub deleted_at: DateTime<Utc>,
}

impl DomainEvent for WorkspaceEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Updated(_) => "updated",
            Self::Archived(_) => "archived",
            Self::MemberInvited(_) => "member_invited",
            Self::InvitationResent(_) => "invitation_resent",
            Self::InvitationRevoked(_) => "invitation_revoked",
            Self::InvitationAccepted(_) => "invitation_accepted",
            Self::InvitationRejected(_) => "invitation_rejected",
            Self::MemberRoleChanged(_) => "member_role_changed",
            Self::MemberRemoved(_) => "member_removed",
            Self::RoleDefined(_) => "role_defined",
            Self::RoleDeleted(_) => "role_deleted",
        }
    }
}
