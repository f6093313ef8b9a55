use super::state::Role;
use crate::aggregate::{Rejection, RejectionKind};
use crate::ids::{AssetId, ParticipantId};
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
    #[error("proposal {0} does not exist")]
    ProposalNotFound(u32),
    #[error("proposal {proposal} is {status}: it takes no more votes")]
    ProposalClosed { proposal: u32, status: &'static str },
    /// Kept for a proposal whose manifest changed without it being superseded, which the aggregate
    /// never records; refusing beats adopting what nobody agreed to.
    #[error(
        "proposal {proposal} was made for manifest {proposed_for}, but the manifest is now {current}: propose the change again"
    )]
    ProposalStale {
        proposal: u32,
        proposed_for: String,
        current: String,
    },
    #[error("`{participant}` has already approved proposal {proposal}")]
    AlreadyApproved {
        proposal: u32,
        participant: ParticipantId,
    },
    #[error(
        "`{0}` is not a participant with a public key, so it has no say in the computation's changes and execution"
    )]
    NotAParticipant(ParticipantId),
    #[error(
        "a change threshold of {threshold} is outside 1–{participants}, the number of participants with a public key"
    )]
    ThresholdOutOfRange { threshold: u32, participants: usize },
    #[error(
        "`{0}` has already halted the computation's execution; lift that halt first to give another reason"
    )]
    AlreadyHalted(ParticipantId),
    #[error(
        "`{participant}` holds no halt of the computation's execution (halted by: {}); only a participant who halted lifts its own halt",
        names(.halted_by)
    )]
    NotHalted {
        participant: ParticipantId,
        halted_by: Vec<ParticipantId>,
    },
    #[error(
        "the computation's execution is halted by {}: it runs again once each of them has lifted its halt",
        names(.by)
    )]
    Halted { by: Vec<ParticipantId> },
    /// Linking an asset of a kind takes the role that provides that kind.
    #[error(
        "only a participant with the `{role}` role links an asset of this kind; `{participant}` lacks it"
    )]
    NotAProvider { participant: ParticipantId, role: Role },
    /// Who provides an asset is who sends its file to the agent: its owner, no one else.
    #[error("asset {asset} is provided by `{provider}`: only its provider links or unlinks it")]
    NotTheProvider { asset: AssetId, provider: ParticipantId },
    #[error("only a participant signed in as a user links or unlinks an asset")]
    NoParticipant,
    #[error("asset {0} is already linked to the computation")]
    AssetAlreadyLinked(AssetId),
    #[error("asset {0} is not linked to the computation")]
    AssetNotLinked(AssetId),
    #[error("the computation's algorithm is provided by `{provider}`: only they replace it")]
    AlgorithmProvidedByAnother { provider: ParticipantId },
    #[error(
        "the computation already has a dataset named `{name}` (provided by `{provider}`): the agent tells datasets apart by name"
    )]
    DatasetNameTaken { name: String, provider: ParticipantId },
    #[error("the computation already has a dataset with digest {hash} (provided by `{provider}`)")]
    DatasetDigestTaken {
        hash: Sha3Digest,
        provider: ParticipantId,
    },
    /// A definition names an asset only as a link made it, so that no one can claim a link by editing.
    #[error(
        "`asset` {0} is not linked so: assets are linked with `POST …/assets`, and a change keeps a link only as it is"
    )]
    AssetNotAsLinked(AssetId),
}

/// Participants as a message lists them: `a`, `b`; "nobody" for none.
fn names(participants: &[ParticipantId]) -> String {
    if participants.is_empty() {
        return "nobody".into();
    }
    participants
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
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
    #[error("dataset file name `{0}` is listed more than once: the agent tells datasets apart by name")]
    DuplicateDatasetName(String),
    #[error(
        "a run limit of {0} s is out of range: {min}–{max} s",
        min = crate::run::RunLimits::MIN_RUN_SECONDS,
        max = crate::run::RunLimits::MAX_RUN_SECONDS
    )]
    RunLimit(u64),
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
            Self::ProposalNotFound(_) => RejectionKind::NotFound,
            Self::ProposalClosed { .. }
            | Self::ProposalStale { .. }
            | Self::AlreadyApproved { .. }
            | Self::AlreadyHalted(_)
            | Self::NotHalted { .. }
            | Self::Halted { .. } => RejectionKind::StateConflict,
            // As for consent: who has a say is part of what the computation says, so a caller
            // without one is told so (422) rather than refused a permission it may well hold. Who
            // provides an asset likewise.
            Self::NotAParticipant(_)
            | Self::ThresholdOutOfRange { .. }
            | Self::NotAProvider { .. }
            | Self::NotTheProvider { .. }
            | Self::NoParticipant
            | Self::AssetNotAsLinked(_) => RejectionKind::Invalid,
            Self::AssetAlreadyLinked(_)
            | Self::AssetNotLinked(_)
            | Self::AlgorithmProvidedByAnother { .. }
            | Self::DatasetNameTaken { .. }
            | Self::DatasetDigestTaken { .. } => RejectionKind::StateConflict,
        }
    }
}
