use super::facts::FactsError;
use super::profile::ProfileError;
use crate::aggregate::{Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate not found")]
    NotFound,
    #[error("certificate already exists")]
    AlreadyExists,
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Unreadable(#[from] FactsError),
    #[error("the certificate does not say what the request says: {0}")]
    Mismatch(String),
    #[error("`{0}` is not an entity id: use 1–128 characters from letters, digits and `._:@-`")]
    EntityId(String),
    #[error("the certificate is revoked: it cannot be renewed or downloaded")]
    Revoked,
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate has not expired yet")]
    NotExpired,
    #[error("the key of this certificate is its holder's: the platform has none to hand out")]
    KeyNotHeld,
    #[error("the download token is invalid, spent or expired")]
    InvalidDownloadToken,
    #[error("a download token must expire in the future, within a day")]
    DownloadTokenLifetime,
}

impl Rejection for CertificateError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Revoked | Self::Expired | Self::NotExpired | Self::KeyNotHeld => {
                RejectionKind::StateConflict
            }
            Self::Profile(_)
            | Self::Unreadable(_)
            | Self::Mismatch(_)
            | Self::EntityId(_)
            | Self::InvalidDownloadToken
            | Self::DownloadTokenLifetime => RejectionKind::Invalid,
        }
    }
}
