//! Membership: invitations, roles and custom roles. Kept apart from the workspace's descriptive fields
//! because its rules (the last admin stays, an invitation is taken only by its invitee with its token
//! before it expires) are the workspace's access control.

use std::collections::BTreeSet;

use super::command::MembershipCommand;
use super::error::WorkspaceError;
use super::event::*;
use super::state::{Invitation, InvitationStatus, Member, Workspace};
use crate::access::{RoleName, Scope, WorkspaceRole};
use crate::aggregate::CommandContext;
use crate::ids::{InvitationId, UserId};

impl Workspace {
    /// Decides a membership command on an active workspace.
    pub(super) fn decide_membership(
        &self,
        command: MembershipCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        match command {
            MembershipCommand::Invite {
                invitation,
                invitee,
                role,
                custom_roles,
                token,
                expires_at,
            } => {
                if self.invitations.contains_key(&invitation) {
                    return Err(WorkspaceError::InvitationExists);
                }
                if expires_at <= ctx.now {
                    return Err(WorkspaceError::ExpiryInThePast);
                }
                if let super::state::Invitee::User(user) = &invitee
                    && self.members.contains_key(user)
                {
                    return Err(WorkspaceError::AlreadyMember);
                }
                if self
                    .invitations
                    .values()
                    .any(|i| i.invitee == invitee && i.is_open(ctx.now))
                {
                    return Err(WorkspaceError::InvitationPending);
                }
                self.check_custom_roles(&custom_roles)?;
                Ok(vec![WorkspaceEvent::MemberInvited(MemberInvited {
                    invitation,
                    invitee,
                    role,
                    custom_roles,
                    token,
                    expires_at,
                    invited_by: ctx.actor.clone(),
                    invited_at: ctx.now,
                })])
            }
            MembershipCommand::Resend {
                invitation,
                token,
                expires_at,
            } => {
                self.still_pending(invitation)?;
                if expires_at <= ctx.now {
                    return Err(WorkspaceError::ExpiryInThePast);
                }
                Ok(vec![WorkspaceEvent::InvitationResent(InvitationResent {
                    invitation,
                    token,
                    expires_at,
                    resent_by: ctx.actor.clone(),
                    resent_at: ctx.now,
                })])
            }
            MembershipCommand::Revoke { invitation } => {
                self.still_pending(invitation)?;
                Ok(vec![WorkspaceEvent::InvitationRevoked(InvitationRevoked {
                    invitation,
                    revoked_by: ctx.actor.clone(),
                    revoked_at: ctx.now,
                })])
            }
            MembershipCommand::Accept {
                invitation,
                token,
                user,
                email,
            } => {
                let pending = self.presented(invitation, &token, ctx)?;
                if !pending.invitee.is(user, &email) {
                    return Err(WorkspaceError::NotTheInvitee);
                }
                if self.members.contains_key(&user) {
                    return Err(WorkspaceError::AlreadyMember);
                }
                Ok(vec![WorkspaceEvent::InvitationAccepted(InvitationAccepted {
                    invitation,
                    user,
                    role: pending.role,
                    // A custom role deleted since the invitation is simply not granted.
                    custom_roles: pending
                        .custom_roles
                        .iter()
                        .filter(|r| self.roles.contains_key(*r))
                        .cloned()
                        .collect(),
                    accepted_at: ctx.now,
                })])
            }
            MembershipCommand::Reject {
                invitation,
                token,
                user,
                email,
            } => {
                let pending = self.presented(invitation, &token, ctx)?;
                if !pending.invitee.is(user, &email) {
                    return Err(WorkspaceError::NotTheInvitee);
                }
                Ok(vec![WorkspaceEvent::InvitationRejected(InvitationRejected {
                    invitation,
                    user,
                    rejected_at: ctx.now,
                })])
            }
            MembershipCommand::ChangeRole {
                user,
                role,
                custom_roles,
            } => {
                let member = self.member(user).ok_or(WorkspaceError::NotAMember)?;
                self.check_custom_roles(&custom_roles)?;
                if member.role == role && member.custom_roles == custom_roles {
                    return Ok(vec![]);
                }
                if member.role == WorkspaceRole::Admin && role != WorkspaceRole::Admin {
                    self.keeps_an_admin_without(user)?;
                }
                Ok(vec![WorkspaceEvent::MemberRoleChanged(MemberRoleChanged {
                    user,
                    role,
                    custom_roles,
                    changed_by: ctx.actor.clone(),
                    changed_at: ctx.now,
                })])
            }
            MembershipCommand::Remove { user } => {
                let member = self.member(user).ok_or(WorkspaceError::NotAMember)?;
                if member.role == WorkspaceRole::Admin {
                    self.keeps_an_admin_without(user)?;
                }
                Ok(vec![WorkspaceEvent::MemberRemoved(MemberRemoved {
                    user,
                    removed_by: ctx.actor.clone(),
                    removed_at: ctx.now,
                })])
            }
            MembershipCommand::DefineRole { name, permissions } => {
                if permissions.is_empty() {
                    return Err(WorkspaceError::EmptyRole);
                }
                if let Some(p) = permissions.iter().find(|p| p.scope() == Scope::Platform) {
                    return Err(WorkspaceError::PlatformPermission(*p));
                }
                if self.roles.get(&name) == Some(&permissions) {
                    return Ok(vec![]);
                }
                Ok(vec![WorkspaceEvent::RoleDefined(RoleDefined {
                    name,
                    permissions,
                    defined_by: ctx.actor.clone(),
                    defined_at: ctx.now,
                })])
            }
            MembershipCommand::DeleteRole { name } => {
                if !self.roles.contains_key(&name) {
                    return Err(WorkspaceError::UnknownRole(name));
                }
                if self.members.values().any(|m| m.custom_roles.contains(&name)) {
                    return Err(WorkspaceError::RoleInUse(name));
                }
                Ok(vec![WorkspaceEvent::RoleDeleted(RoleDeleted {
                    name,
                    deleted_by: ctx.actor.clone(),
                    deleted_at: ctx.now,
                })])
            }
        }
    }

    pub(super) fn apply_membership(&mut self, event: &WorkspaceEvent) {
        match event {
            WorkspaceEvent::MemberInvited(e) => {
                self.invitations.insert(
                    e.invitation,
                    Invitation {
                        invitee: e.invitee.clone(),
                        role: e.role,
                        custom_roles: e.custom_roles.clone(),
                        token: e.token.clone(),
                        expires_at: e.expires_at,
                        status: InvitationStatus::Pending,
                    },
                );
            }
            WorkspaceEvent::InvitationResent(e) => {
                if let Some(i) = self.invitations.get_mut(&e.invitation) {
                    i.token = e.token.clone();
                    i.expires_at = e.expires_at;
                }
            }
            WorkspaceEvent::InvitationRevoked(e) => self.close(e.invitation, InvitationStatus::Revoked),
            WorkspaceEvent::InvitationRejected(e) => self.close(e.invitation, InvitationStatus::Rejected),
            WorkspaceEvent::InvitationAccepted(e) => {
                self.close(e.invitation, InvitationStatus::Accepted);
                self.members.insert(
                    e.user,
                    Member {
                        role: e.role,
                        custom_roles: e.custom_roles.clone(),
                        since: e.accepted_at,
                    },
                );
            }
            WorkspaceEvent::MemberRoleChanged(e) => {
                if let Some(m) = self.members.get_mut(&e.user) {
                    m.role = e.role;
                    m.custom_roles = e.custom_roles.clone();
                }
            }
            WorkspaceEvent::MemberRemoved(e) => {
                self.members.remove(&e.user);
            }
            WorkspaceEvent::RoleDefined(e) => {
                self.roles.insert(e.name.clone(), e.permissions.clone());
            }
            WorkspaceEvent::RoleDeleted(e) => {
                self.roles.remove(&e.name);
            }
            WorkspaceEvent::Created(_) | WorkspaceEvent::Updated(_) | WorkspaceEvent::Archived(_) => {}
        }
    }

    fn close(&mut self, invitation: InvitationId, status: InvitationStatus) {
        if let Some(i) = self.invitations.get_mut(&invitation) {
            i.status = status;
        }
    }

    fn still_pending(&self, invitation: InvitationId) -> Result<&Invitation, WorkspaceError> {
        let found = self
            .invitations
            .get(&invitation)
            .ok_or(WorkspaceError::InvitationNotFound)?;
        match found.status {
            InvitationStatus::Pending => Ok(found),
            InvitationStatus::Accepted => Err(WorkspaceError::InvitationClosed("accepted")),
            InvitationStatus::Rejected => Err(WorkspaceError::InvitationClosed("rejected")),
            InvitationStatus::Revoked => Err(WorkspaceError::InvitationClosed("revoked")),
        }
    }

    /// The pending invitation whose token was presented, when it is still open.
    fn presented(
        &self,
        invitation: InvitationId,
        token: &crate::values::SecretHash,
        ctx: &CommandContext,
    ) -> Result<&Invitation, WorkspaceError> {
        let pending = self.still_pending(invitation)?;
        if !pending.token.matches(token) || !pending.is_open(ctx.now) {
            return Err(WorkspaceError::InvitationTokenInvalid);
        }
        Ok(pending)
    }

    fn check_custom_roles(&self, roles: &BTreeSet<RoleName>) -> Result<(), WorkspaceError> {
        match roles.iter().find(|r| !self.roles.contains_key(*r)) {
            Some(unknown) => Err(WorkspaceError::UnknownRole(unknown.clone())),
            None => Ok(()),
        }
    }

    fn keeps_an_admin_without(&self, user: UserId) -> Result<(), WorkspaceError> {
        if self.admins().any(|admin| admin != user) {
            Ok(())
        } else {
            Err(WorkspaceError::LastAdmin)
        }
    }
}
