use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("session already exists")]
    AlreadyExists,
    #[error("the session has ended")]
    Ended,
    #[error("refresh token is invalid")]
    RefreshTokenInvalid,
    #[error("refresh token has expired")]
    RefreshTokenExpired,
    #[error("the session has expired: sign in again")]
    SessionExpired,
    /// Answered after committing the events that end the session (see `SessionCommand::Refresh`).
    #[error("refresh token was already used: the session has been ended, sign in again")]
    RefreshTokenReused,
    #[error("the next refresh token must differ from every earlier one of the session")]
    NextTokenNotFresh,
    #[error("a refresh token must expire in the future")]
    ExpiresInThePast,
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for SessionError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Ended => RejectionKind::StateConflict,
            Self::RefreshTokenInvalid
            | Self::RefreshTokenExpired
            | Self::SessionExpired
            | Self::RefreshTokenReused
            | Self::NextTokenNotFresh
            | Self::ExpiresInThePast
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
