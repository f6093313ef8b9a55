use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenialError {
    #[error("this denial is recorded already; records never change")]
    AlreadyRecorded,
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for DenialError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::AlreadyRecorded => RejectionKind::AlreadyExists,
            Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
