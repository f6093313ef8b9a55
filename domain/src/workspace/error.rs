use crate::access::{Permission, RoleName};
use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace not found")]
    NotFound,
    #[error("workspace already exists")]
    AlreadyExists,
    #[error("workspace is archived and can no longer change")]
    Archived,
    #[error("workspace is already archived")]
    AlreadyArchived,
    #[error(transparent)]
    Invalid(#[from] ValueError),
    #[error("the user is not a member of this workspace")]
    NotAMember,
    #[error("the user is already a member of this workspace")]
    AlreadyMember,
    #[error("invitation not found")]
    InvitationNotFound,
    #[error("an invitation with this id exists already")]
    InvitationExists,
    #[error("this invitee has a pending invitation already; resend it instead")]
    InvitationPending,
    #[error("the invitation was {0} and can no longer change")]
    InvitationClosed(&'static str),
    #[error("the invitation token is invalid or has expired")]
    InvitationTokenInvalid,
    #[error("this invitation is for someone else")]
    NotTheInvitee,
    #[error("an invitation must expire in the future")]
    ExpiryInThePast,
    #[error("a workspace keeps at least one admin: make someone else admin first")]
    LastAdmin,
    #[error("custom role `{0}` is not defined in this workspace")]
    UnknownRole(RoleName),
    #[error("custom role `{0}` is held by members; take it from them first")]
    RoleInUse(RoleName),
    #[error("a custom role needs at least one permission")]
    EmptyRole,
    #[error("`{0}` is a platform permission, which no workspace role can grant")]
    PlatformPermission(Permission),
}

impl Rejection for WorkspaceError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound | Self::NotAMember | Self::InvitationNotFound => RejectionKind::NotFound,
            Self::AlreadyExists | Self::AlreadyMember | Self::InvitationExists => {
                RejectionKind::AlreadyExists
            }
            Self::Archived
            | Self::AlreadyArchived
            | Self::InvitationPending
            | Self::InvitationClosed(_)
            | Self::LastAdmin
            | Self::RoleInUse(_) => RejectionKind::StateConflict,
            Self::Invalid(_)
            | Self::InvitationTokenInvalid
            | Self::NotTheInvitee
            | Self::ExpiryInThePast
            | Self::UnknownRole(_)
            | Self::EmptyRole
            | Self::PlatformPermission(_) => RejectionKind::Invalid,
        }
    }
}
