use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Digest;
use crate::aggregate::DomainEvent;
use crate::values::PublicKey;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum LedgerEvent {
    CheckpointSealed(CheckpointSealed),
}

/// The commits at stream sequences `from..=to` are vouched for: `leaves[i]` is the leaf hash of the
/// commit at `from + i` (or of its absence), `root` their Merkle tree hash (RFC 6962), `previous` the
/// digest of the ledger's previous statement, and `signature` the ledger key's Ed25519 signature over
/// the statement (see `prism_domain::ledger::statement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSealed {
    pub from: u64,
    pub to: u64,
    pub leaves: Vec<Digest>,
    pub root: Digest,
    pub previous: Digest,
    pub signed_at: DateTime<Utc>,
    /// The ledger key (SubjectPublicKeyInfo PEM, Ed25519).
    pub public_key: PublicKey,
    /// The signature, base64.
    pub signature: String,
}

impl DomainEvent for LedgerEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::CheckpointSealed(_) => "checkpoint_sealed",
        }
    }
}
