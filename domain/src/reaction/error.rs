use crate::aggregate::{Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReactionError {
    #[error("no failure is recorded for this reaction")]
    NotFound,
    #[error("this failure is already recorded")]
    AlreadyRecorded,
    #[error("a retry of this reaction is already pending")]
    RetryPending,
    #[error("no retry of this reaction is pending")]
    NoRetryPending,
    #[error("this reaction succeeded on a retry; there is nothing left to retry")]
    Resolved,
}

impl Rejection for ReactionError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyRecorded => RejectionKind::AlreadyExists,
            Self::RetryPending | Self::NoRetryPending | Self::Resolved => RejectionKind::StateConflict,
        }
    }
}
