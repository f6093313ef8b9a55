use serde::{Deserialize, Serialize};

use super::{Digest, GENESIS};
use crate::values::PublicKey;

/// Where the ledger stands: the last sequence its checkpoints cover, the digest the next one chains
/// to, and the key every checkpoint is signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub covered_through: u64,
    pub last_digest: Digest,
    pub checkpoints: u64,
    pub public_key: Option<PublicKey>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            covered_through: 0,
            last_digest: GENESIS,
            checkpoints: 0,
            public_key: None,
        }
    }
}
