use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

use super::state::RunStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("run not found")]
    NotFound,
    #[error("run already exists")]
    AlreadyExists,
    /// The machine has no such step from here ([`super::TRANSITIONS`]).
    #[error("a run that is {} cannot be {event}", .from.as_str())]
    IllegalTransition { from: RunStatus, event: &'static str },
    #[error("{0} must be a 256-bit digest: 64 lower-case hexadecimal characters")]
    Digest(&'static str),
    /// A receipt for something the manifest does not declare.
    #[error("{0}")]
    Receipt(String),
    #[error(transparent)]
    Invalid(#[from] ValueError),
    /// A participant named with a key in the manifest has not consented (or its signature does not
    /// verify): no run without everyone's consent.
    #[error("participant `{participant}` has not consented to manifest {manifest_id}: {reason}")]
    ConsentMissing {
        participant: String,
        manifest_id: String,
        reason: String,
    },
}

impl Rejection for RunError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::IllegalTransition { .. } => RejectionKind::StateConflict,
            Self::Digest(_) | Self::Invalid(_) | Self::Receipt(_) => RejectionKind::Invalid,
            Self::ConsentMissing { .. } => RejectionKind::StateConflict,
        }
    }
}
