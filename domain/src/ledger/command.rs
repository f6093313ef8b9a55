use chrono::{DateTime, Utc};

use super::Digest;
use crate::values::PublicKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerCommand {
    Seal(SealCheckpoint),
}

/// A checkpoint as its signer made it: the leaves of `from..=to`, and a signature by `public_key`
/// over [`super::statement`] of their tree hash, the ledger's last digest and `signed_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealCheckpoint {
    pub from: u64,
    pub to: u64,
    pub leaves: Vec<Digest>,
    pub signed_at: DateTime<Utc>,
    pub public_key: PublicKey,
    /// Base64.
    pub signature: String,
}
