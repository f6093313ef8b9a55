use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user not found")]
    NotFound,
    #[error("a user with this e-mail address is registered")]
    AlreadyExists,
    #[error("the user id must be the one derived from the e-mail address")]
    IdDoesNotMatchEmail,
    #[error("the account is disabled")]
    Disabled,
    #[error("the account is already disabled")]
    AlreadyDisabled,
    #[error("the account is not disabled")]
    NotDisabled,
    #[error("this user is the only owner of {}: transfer ownership first", .0.join(", "))]
    SoleOwner(Vec<String>),
    #[error("the e-mail address is already verified")]
    AlreadyVerified,
    #[error("an address registered as verified needs no verification link")]
    VerifiedNeedsNoVerification,
    #[error("the verification link is invalid or has expired")]
    InvalidVerification,
    #[error("the password reset link is invalid or has expired")]
    InvalidPasswordReset,
    #[error("a link must expire in the future")]
    ExpiresInThePast,
    #[error("identity issuer `{0}` is not an http(s) URL")]
    IssuerNotUrl(String),
    #[error("lockout policy is invalid: {0}")]
    LockoutPolicy(String),
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for UserError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Disabled
            | Self::AlreadyDisabled
            | Self::NotDisabled
            | Self::SoleOwner(_)
            | Self::AlreadyVerified => RejectionKind::StateConflict,
            Self::IdDoesNotMatchEmail
            | Self::VerifiedNeedsNoVerification
            | Self::InvalidVerification
            | Self::InvalidPasswordReset
            | Self::ExpiresInThePast
            | Self::IssuerNotUrl(_)
            | Self::LockoutPolicy(_)
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
