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
}

impl Rejection for WorkspaceError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Archived | Self::AlreadyArchived => RejectionKind::StateConflict,
            Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
