use crate::access::Permission;
use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key not found")]
    NotFound,
    #[error("API key already exists")]
    AlreadyExists,
    #[error("an API key needs at least one permission")]
    NoPermissions,
    #[error("`{0}` is a platform permission: an API key acts in one workspace and cannot carry it")]
    PlatformPermission(Permission),
    #[error("an API key must expire in the future")]
    ExpiresInThePast,
    #[error("an API key may live at most {max_days} days")]
    LifetimeTooLong { max_days: i64 },
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for ApiKeyError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::NoPermissions
            | Self::PlatformPermission(_)
            | Self::ExpiresInThePast
            | Self::LifetimeTooLong { .. }
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}

/// Why a presented key does not authenticate. Not a command's rejection: the application layer
/// answers every one of these as "unauthenticated".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyRejection {
    #[error("the API key is invalid")]
    WrongSecret,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
}
