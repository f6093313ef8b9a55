use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("backend not found")]
    NotFound,
    #[error("backend already exists")]
    AlreadyExists,
    #[error("the backend has been removed")]
    Removed,
    #[error("a backend's name has 1–64 characters from letters, digits and `-_.`")]
    Name,
    #[error("a backend offers at least one confidential platform")]
    NoPlatform,
    #[error("a confidential platform is listed twice")]
    RepeatedPlatform,
    #[error("a backend runs 1–{max} VMs at once")]
    Capacity { max: u32 },
    #[error("a backend has at most {max} labels")]
    TooManyLabels { max: usize },
    #[error("label `{0}`: keys have 1–64 and values 0–64 characters from letters, digits and `-_.`")]
    Label(String),
    #[error("`{0}` is not an address of the form host:port")]
    Address(String),
    #[error("the manager's CA certificates must be PEM (at most 64 KiB)")]
    CaPem,
    #[error(
        "the local backend runs the emulated agent, which protects nothing: it offers only the platform `none`"
    )]
    LocalIsInsecure,
    #[error("a backend's kind of driver cannot change: register another")]
    KindChange,
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for BackendError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Removed | Self::KindChange => RejectionKind::StateConflict,
            Self::Name
            | Self::NoPlatform
            | Self::RepeatedPlatform
            | Self::Capacity { .. }
            | Self::TooManyLabels { .. }
            | Self::Label(_)
            | Self::Address(_)
            | Self::CaPem
            | Self::LocalIsInsecure
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
