use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::state::Invitee;
use crate::access::{Permission, RoleName, WorkspaceRole};
use crate::ids::{InvitationId, UserId, WorkspaceId};
use crate::values::{Email, SecretHash};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceCommand {
    Create {
        id: WorkspaceId,
        name: String,
        description: String,
        /// The user who creates it becomes its first admin (`None` when a platform service creates it).
        admin: Option<UserId>,
    },
    /// Changes the given fields; fields equal to the current value are ignored.
    Update {
        name: Option<String>,
        description: Option<String>,
    },
    Archive,
    Membership(MembershipCommand),
}

/// Who belongs to the workspace and what they may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipCommand {
    /// Invites a registered user (by id) or anyone (by e-mail). The invitee proves it is them with the
    /// token, whose hash is kept here, before `expires_at`.
    Invite {
        invitation: InvitationId,
        invitee: Invitee,
        role: WorkspaceRole,
        custom_roles: BTreeSet<RoleName>,
        token: SecretHash,
        expires_at: DateTime<Utc>,
    },
    /// A new token and expiry for a pending (or expired) invitation; the old token stops working.
    Resend {
        invitation: InvitationId,
        token: SecretHash,
        expires_at: DateTime<Utc>,
    },
    Revoke {
        invitation: InvitationId,
    },
    /// The signed-in user `user` (with address `email`) takes the invitation the token belongs to.
    Accept {
        invitation: InvitationId,
        token: SecretHash,
        user: UserId,
        email: Email,
    },
    Reject {
        invitation: InvitationId,
        token: SecretHash,
        user: UserId,
        email: Email,
    },
    ChangeRole {
        user: UserId,
        role: WorkspaceRole,
        custom_roles: BTreeSet<RoleName>,
    },
    Remove {
        user: UserId,
    },
    /// Creates or replaces a custom role.
    DefineRole {
        name: RoleName,
        permissions: BTreeSet<Permission>,
    },
    DeleteRole {
        name: RoleName,
    },
}
