use crate::aggregate::{Rejection, RejectionKind};
use crate::values::ValueError;

use super::state::CvmStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvmError {
    #[error("CVM not found")]
    NotFound,
    #[error("CVM already exists")]
    AlreadyExists,
    #[error("the provider must have 1–64 characters from letters, digits and `-_.`")]
    Provider,
    #[error(
        "the local backend runs the emulated agent, which protects nothing: ask it for the platform `none`"
    )]
    LocalIsInsecure,
    #[error("a CVM has 1–{max} vCPUs")]
    Vcpus { max: u32 },
    #[error("a CVM has {min}–{max} MiB of memory")]
    Memory { min: u64, max: u64 },
    #[error("label `{0}`: keys have 1–64 and values 0–64 characters from letters, digits and `-_.`")]
    Label(String),
    #[error("a CVM lives between one minute and {max_days} days")]
    Ttl { max_days: u64 },
    #[error("a CVM in state `{}` cannot be {action}", .status.as_str())]
    State { status: CvmStatus, action: &'static str },
    #[error("{field} must be {bytes} bytes as lower-case hex")]
    Hex { field: &'static str, bytes: usize },
    #[error("the attestation nonce {0} was never issued for this CVM")]
    NonceUnknown(String),
    #[error("the attestation nonce {0} has already been used: evidence cannot be replayed")]
    NonceUsed(String),
    #[error("the attestation nonce {nonce} expired at {expired_at}")]
    NonceExpired { nonce: String, expired_at: String },
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for CvmError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::State { .. } | Self::NonceUsed(_) | Self::NonceExpired { .. } => {
                RejectionKind::StateConflict
            }
            Self::NonceUnknown(_) => RejectionKind::Invalid,
            Self::Provider
            | Self::Vcpus { .. }
            | Self::Memory { .. }
            | Self::Ttl { .. }
            | Self::Label(_)
            | Self::LocalIsInsecure
            | Self::Hex { .. }
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
