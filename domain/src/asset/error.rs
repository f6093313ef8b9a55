use crate::aggregate::{Rejection, RejectionKind};
use crate::ids::{ComputationId, UserId};
use crate::values::ValueError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssetError {
    #[error("asset not found")]
    NotFound,
    #[error("asset already exists")]
    AlreadyExists,
    #[error("the asset is archived and can no longer change")]
    Archived,
    /// Only who registered an asset speaks for its file.
    #[error("the asset belongs to `{owner}`: only its owner changes it, its sample, or archives it")]
    NotOwner { owner: UserId },
    #[error("an algorithm needs its `algorithm_type` (`python`, `bin`, `wasm` or `docker`)")]
    AlgorithmTypeRequired,
    #[error("a dataset has no `algorithm_type`")]
    AlgorithmTypeForDataset,
    #[error("a sample has at most {max} bytes; this one has {size}")]
    SampleTooLarge { size: u64, max: u64 },
    #[error("a sample has at least one byte")]
    EmptySample,
    #[error("`{0}` is not a SHA-256 digest: expected 64 lowercase hexadecimal characters")]
    SampleDigest(String),
    #[error(
        "the asset is linked to computation{} {}: unlink it first (or archive the computation)",
        if .computations.len() == 1 { "" } else { "s" },
        .computations.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    StillLinked { computations: Vec<ComputationId> },
    #[error(transparent)]
    Invalid(#[from] ValueError),
}

impl Rejection for AssetError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Archived | Self::StillLinked { .. } => RejectionKind::StateConflict,
            // As for a vote on a computation: the caller may well hold the permission; what the asset
            // says (whose it is) refuses it.
            Self::NotOwner { .. }
            | Self::AlgorithmTypeRequired
            | Self::AlgorithmTypeForDataset
            | Self::SampleTooLarge { .. }
            | Self::EmptySample
            | Self::SampleDigest(_)
            | Self::Invalid(_) => RejectionKind::Invalid,
        }
    }
}
