use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook endpoint not found")]
    NotFound,
    #[error("webhook endpoint already exists")]
    AlreadyExists,
    #[error("the webhook endpoint has been deleted")]
    Deleted,
    #[error("`{url}` is not a usable endpoint URL: {why}")]
    Url { url: String, why: &'static str },
    #[error("an endpoint subscribes to at least one event type")]
    NoEventTypes,
    #[error("an endpoint subscribes to at most {max} event types")]
    TooManyEventTypes { max: usize },
    #[error("event type `{0}` is listed twice")]
    RepeatedEventType(String),
    #[error(
        "`{0}` is not an event type: an exact type (io.prism.<aggregate>.<event>.v<N>), a prefix ending \
         in `*` (io.prism.run.*), or `*`"
    )]
    EventType(String),
    #[error("`{0}` is not a name of the key store (lowercase letters, digits, `.`, `_`, `-`)")]
    SecretName(String),
    #[error("a secret's fingerprint is its SHA-256: 64 lowercase hexadecimal characters")]
    SecretFingerprint,
    #[error("the endpoint's URL is now `{current}`: a handshake with another URL validates nothing")]
    StaleValidation { current: String },
    #[error("a delivery failure names the event, at least one attempt and the last error")]
    DeliveryFailure,
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for WebhookError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Deleted | Self::StaleValidation { .. } => RejectionKind::StateConflict,
            Self::Url { .. }
            | Self::NoEventTypes
            | Self::TooManyEventTypes { .. }
            | Self::RepeatedEventType(_)
            | Self::EventType(_)
            | Self::SecretName(_)
            | Self::SecretFingerprint
            | Self::DeliveryFailure
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
