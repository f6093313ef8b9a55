//! The audit ledger: signed checkpoints over the event log, so that a rewrite of the log by someone
//! who can write to the store — which the per-aggregate hash chains alone do not reveal, since a
//! writer can recompute them — is detected and located.
//!
//! Each checkpoint covers the next range of stream sequences, `from..=to`, right after the previous
//! one: it lists one leaf hash per sequence (RFC 6962 leaf hashes of each stored commit, see
//! [`merkle`]), their Merkle tree hash, and the digest of the previous checkpoint's statement, and is
//! signed by the platform's Ed25519 ledger key over [`statement`]. A verifier holding only that public
//! key checks the checkpoints, then compares each commit in the log with its leaf: the first that
//! differs is named, whether altered, missing or moved. There is one ledger, [`LEDGER_ID`]; processes
//! sealing at once race through the log's optimistic concurrency, and the loser's range no longer
//! continues the ledger.

mod command;
mod error;
mod event;
pub mod merkle;
mod state;

pub use command::{LedgerCommand, SealCheckpoint};
pub use error::LedgerError;
pub use event::{CheckpointSealed, LedgerEvent};
pub use merkle::{Digest, absent_leaf, leaf_hash, tree_hash};
pub use state::Ledger;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest as _, Sha256};

use crate::aggregate::{Aggregate, CommandContext};
use crate::values::PublicKey;

/// The id of the platform's one ledger.
pub const LEDGER_ID: &str = "platform";

/// Most leaves one checkpoint lists: bounds a checkpoint's commit (about 70 bytes a leaf in JSON)
/// well below the store's largest message.
pub const MAX_LEAVES: usize = 4096;

/// The previous statement's digest of the first checkpoint.
pub const GENESIS: Digest = Digest([0; 32]);

/// The bytes a checkpoint's signature covers (documented with a test vector in `docs/audit.md`):
///
/// ```text
/// prism-audit-checkpoint-v1
/// from=<first sequence>
/// to=<last sequence>
/// root=<Merkle tree hash, hex>
/// previous=<SHA-256 of the previous checkpoint's statement, hex; zeros for the first>
/// signed_at=<RFC 3339, UTC, milliseconds>
/// ```
///
/// each line ending in `\n`.
pub fn statement(from: u64, to: u64, root: &Digest, previous: &Digest, signed_at: DateTime<Utc>) -> Vec<u8> {
    format!(
        "prism-audit-checkpoint-v1\nfrom={from}\nto={to}\nroot={root}\nprevious={previous}\nsigned_at={}\n",
        signed_at.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
    .into_bytes()
}

impl CheckpointSealed {
    /// The bytes its signature covers.
    pub fn statement(&self) -> Vec<u8> {
        statement(self.from, self.to, &self.root, &self.previous, self.signed_at)
    }

    /// What the next checkpoint names as `previous`.
    pub fn digest(&self) -> Digest {
        Digest(Sha256::digest(self.statement()).into())
    }

    /// Everything a verifier holding `key` checks of a checkpoint on its own: the leaves fill its
    /// range, their tree hash is its root, it is signed by `key` over its statement.
    pub fn check(&self, key: &PublicKey) -> Result<(), LedgerError> {
        if self.to < self.from {
            return Err(LedgerError::BadRange {
                from: self.from,
                to: self.to,
            });
        }
        let span = self.to - self.from + 1;
        if span != self.leaves.len() as u64 || self.leaves.len() > MAX_LEAVES {
            return Err(LedgerError::LeafCount {
                span,
                leaves: self.leaves.len(),
            });
        }
        if tree_hash(&self.leaves) != Some(self.root) {
            return Err(LedgerError::RootMismatch);
        }
        if &self.public_key != key {
            return Err(LedgerError::ForeignKey);
        }
        if !key.is_ed25519() {
            return Err(LedgerError::NotEd25519);
        }
        let signature = BASE64
            .decode(&self.signature)
            .map_err(|_| LedgerError::BadSignature)?;
        key.verify(&self.statement(), &signature)
            .map_err(|_| LedgerError::BadSignature)
    }
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "ledger";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = LedgerError;

    fn decide(&self, command: LedgerCommand, _ctx: &CommandContext) -> Result<Vec<LedgerEvent>, LedgerError> {
        let LedgerCommand::Seal(seal) = command;
        let expected = self.covered_through + 1;
        if seal.from != expected {
            return Err(LedgerError::DoesNotContinue {
                expected,
                from: seal.from,
            });
        }
        // The key is the one the ledger began with: a checkpoint signed by any other would let
        // whoever holds that key rewrite what the ledger vouches for from then on.
        let root = tree_hash(&seal.leaves).ok_or(LedgerError::LeafCount {
            span: seal.to.saturating_sub(seal.from) + 1,
            leaves: 0,
        })?;
        let sealed = CheckpointSealed {
            from: seal.from,
            to: seal.to,
            leaves: seal.leaves,
            root,
            previous: self.last_digest,
            signed_at: seal.signed_at,
            public_key: seal.public_key,
            signature: seal.signature,
        };
        sealed.check(self.public_key.as_ref().unwrap_or(&sealed.public_key))?;
        Ok(vec![LedgerEvent::CheckpointSealed(sealed)])
    }

    fn apply(&mut self, event: &LedgerEvent) {
        let LedgerEvent::CheckpointSealed(sealed) = event;
        self.covered_through = sealed.to;
        self.last_digest = sealed.digest();
        self.checkpoints += 1;
        self.public_key.get_or_insert_with(|| sealed.public_key.clone());
    }
}

#[cfg(test)]
mod tests;
