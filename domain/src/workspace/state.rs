use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::access::{Grants, Permission, RoleName, WorkspaceRole};
use crate::ids::{InvitationId, UserId, WorkspaceId};
use crate::values::{Email, SecretHash};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// No event yet: the aggregate does not exist.
    #[default]
    New,
    Active,
    Archived,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub status: WorkspaceStatus,
    pub id: Option<WorkspaceId>,
    pub name: String,
    pub description: String,
    pub members: BTreeMap<UserId, Member>,
    pub invitations: BTreeMap<InvitationId, Invitation>,
    /// Custom roles: named sets of permissions.
    pub roles: BTreeMap<RoleName, BTreeSet<Permission>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: WorkspaceRole,
    pub custom_roles: BTreeSet<RoleName>,
    pub since: DateTime<Utc>,
}

/// Who an invitation is for: a registered user, or an e-mail address that may register later.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Invitee {
    User(UserId),
    Email(Email),
}

impl Invitee {
    /// Whether the signed-in user `user`, with address `email`, is the one invited.
    pub fn is(&self, user: UserId, email: &Email) -> bool {
        match self {
            Self::User(id) => *id == user,
            Self::Email(address) => address == email,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Rejected,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub invitee: Invitee,
    pub role: WorkspaceRole,
    pub custom_roles: BTreeSet<RoleName>,
    pub token: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub status: InvitationStatus,
}

impl Invitation {
    /// Pending and not yet expired: it can still be accepted.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.status == InvitationStatus::Pending && now < self.expires_at
    }
}

impl Workspace {
    pub fn member(&self, user: UserId) -> Option<&Member> {
        self.members.get(&user)
    }

    pub fn admins(&self) -> impl Iterator<Item = UserId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.role == WorkspaceRole::Admin)
            .map(|(id, _)| *id)
    }

    /// What `user` may do in this workspace by its membership (none when not a member).
    pub fn grants_of(&self, user: UserId) -> Grants {
        let mut grants = Grants::default();
        if let Some(member) = self.member(user) {
            grants.add_workspace_role(member.role);
            for name in &member.custom_roles {
                if let Some(permissions) = self.roles.get(name) {
                    grants.add_custom(permissions.iter().copied());
                }
            }
        }
        grants
    }
}
