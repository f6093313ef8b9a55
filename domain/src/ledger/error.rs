use crate::aggregate::{Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the checkpoint begins at sequence {from}, but the ledger continues at {expected}")]
    DoesNotContinue { expected: u64, from: u64 },
    #[error("the range {from}..={to} is empty")]
    BadRange { from: u64, to: u64 },
    #[error("the checkpoint lists {leaves} leaves for a range of {span} sequences (at most {max})", max = super::MAX_LEAVES)]
    LeafCount { span: u64, leaves: usize },
    #[error("the checkpoint's root is not the tree hash of its leaves")]
    RootMismatch,
    #[error("the checkpoint is signed by another key than the ledger's")]
    ForeignKey,
    #[error("the ledger key must be an Ed25519 key")]
    NotEd25519,
    #[error("the checkpoint's signature does not verify")]
    BadSignature,
}

impl Rejection for LedgerError {
    fn kind(&self) -> RejectionKind {
        match self {
            Self::DoesNotContinue { .. } => RejectionKind::StateConflict,
            Self::BadRange { .. }
            | Self::LeafCount { .. }
            | Self::RootMismatch
            | Self::ForeignKey
            | Self::NotEd25519
            | Self::BadSignature => RejectionKind::Invalid,
        }
    }
}
