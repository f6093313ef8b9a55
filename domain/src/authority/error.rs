use crate::aggregate::{Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("the certificate authority is not established yet")]
    NotEstablished,
    #[error("the certificate authority is established already")]
    AlreadyEstablished,
    #[error("{0}")]
    Unreadable(String),
}

impl Rejection for AuthorityError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotEstablished => RejectionKind::NotFound,
            Self::AlreadyEstablished => RejectionKind::AlreadyExists,
            Self::Unreadable(_) => RejectionKind::Invalid,
        }
    }
}
