use super::state::Role;
use crate::aggregate::{Rejection, RejectionKind};
use crate::ids::ParticipantId;
use crate::values::{Sha3Digest, SignatureError, ValueError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputationError {
    #[error("computation not found")]
    NotFound,
    #[error("computation already exists")]
    AlreadyExists,
    #[error("computation is archived and can no longer change")]
    Archived,
    #[error("computation is already archived")]
    AlreadyArchived,
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("workspace is archived: no new computations can be created in it")]
    WorkspaceArchived,
    #[error(transparent)]
    Invalid(#[from] DefinitionError),
    /// The definition (or its attestation policies) changed since the signer read the manifest.
    #[error("the computation's manifest is now {current}; consent is given to the current manifest only")]
    ManifestChanged { current: String },
    #[error("`{0}` is not a participant with a public key, so it cannot consent")]
    NotASigner(ParticipantId),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A rule of a computation's definition that the command breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("a computation needs at least one participant with the `owner` role")]
    NoOwner,
    #[error("participant `{0}` is listed more than once")]
    DuplicateParticipant(ParticipantId),
    #[error("participant `{0}` has no role")]
    NoRole(ParticipantId),
    #[error("participant `{participant}` has the `{role}` role and so needs a public key")]
    PublicKeyRequired { participant: ParticipantId, role: Role },
    #[error("`{provider}` provides an asset but is not a participant")]
    UnknownProvider { provider: ParticipantId },
    #[error("`{provider}` provides an asset but lacks the `{role}` role")]
    ProviderLacksRole { provider: ParticipantId, role: Role },
    #[error("dataset digest {0} is listed more than once")]
    DuplicateDataset(Sha3Digest),
    #[error("too many {what}: {count} (limit {max})")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

impl From<ValueError> for ComputationError {
    fn from(e: ValueError) -> Self {
        Self::Invalid(e.into())
    }
}

impl Rejection for ComputationError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::NotFound => RejectionKind::NotFound,
            Self::AlreadyExists => RejectionKind::AlreadyExists,
            Self::Archived | Self::AlreadyArchived | Self::WorkspaceArchived => RejectionKind::StateConflict,
            // The workspace is a precondition named in the request path, so its absence is a "not found".
            Self::WorkspaceNotFound => RejectionKind::NotFound,
            Self::ManifestChanged { .. } => RejectionKind::StateConflict,
            Self::Invalid(_) | Self::NotASigner(_) | Self::Signature(_) => RejectionKind::Invalid,
        }
    }
}
