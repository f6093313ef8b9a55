use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::TimeZone;

use super::*;
use crate::testing::{given, keys};

fn leaves(range: std::ops::RangeInclusive<u64>) -> Vec<Digest> {
    range
        .map(|seq| leaf_hash(format!("commit {seq}").as_bytes()))
        .collect()
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
}

/// A checkpoint of `from..=to` after `previous`, signed with the sample Ed25519 key.
fn sealed(from: u64, to: u64, previous: Digest) -> CheckpointSealed {
    let leaves = leaves(from..=to);
    let root = tree_hash(&leaves).unwrap();
    let signature = keys::sign_ed25519(&statement(from, to, &root, &previous, at()));
    CheckpointSealed {
        from,
        to,
        leaves,
        root,
        previous,
        signed_at: at(),
        public_key: keys::ed25519(),
        signature: BASE64.encode(signature),
    }
}

fn seal(checkpoint: &CheckpointSealed) -> LedgerCommand {
    LedgerCommand::Seal(SealCheckpoint {
        from: checkpoint.from,
        to: checkpoint.to,
        leaves: checkpoint.leaves.clone(),
        signed_at: checkpoint.signed_at,
        public_key: checkpoint.public_key.clone(),
        signature: checkpoint.signature.clone(),
    })
}

#[test]
fn checkpoints_continue_one_another_and_chain_their_statements() {
    let first = sealed(1, 3, GENESIS);
    let state = given::<Ledger>([])
        .when(seal(&first))
        .then_expect([LedgerEvent::CheckpointSealed(first.clone())]);
    assert_eq!(state.covered_through, 3);
    assert_eq!(state.last_digest, first.digest());
    let second = sealed(4, 4, first.digest());
    let state = given::<Ledger>([LedgerEvent::CheckpointSealed(first.clone())])
        .when(seal(&second))
        .then_expect([LedgerEvent::CheckpointSealed(second.clone())]);
    assert_eq!((state.covered_through, state.checkpoints), (4, 2));
    // A checkpoint made against a ledger that has moved on (another process sealed first) does not
    // continue it.
    given::<Ledger>([LedgerEvent::CheckpointSealed(first.clone())])
        .when(seal(&sealed(1, 5, GENESIS)))
        .then_rejects(LedgerError::DoesNotContinue { expected: 4, from: 1 });
    // Nor one that signed another previous statement than the ledger's last.
    given::<Ledger>([LedgerEvent::CheckpointSealed(first)])
        .when(seal(&sealed(4, 4, GENESIS)))
        .then_rejects(LedgerError::BadSignature);
}

#[test]
fn a_checkpoint_must_be_whole_and_signed_by_the_ledger_key() {
    let good = sealed(1, 3, GENESIS);
    let mut short = good.clone();
    short.leaves.pop();
    given::<Ledger>([])
        .when(seal(&short))
        .then_rejects(LedgerError::LeafCount { span: 3, leaves: 2 });
    let mut altered = good.clone();
    altered.leaves[1] = leaf_hash(b"something else");
    given::<Ledger>([])
        .when(seal(&altered))
        .then_rejects(LedgerError::BadSignature);
    let mut late = good.clone();
    late.signed_at = at() + chrono::Duration::milliseconds(1);
    given::<Ledger>([])
        .when(seal(&late))
        .then_rejects(LedgerError::BadSignature);
    let mut p256 = good.clone();
    p256.public_key = PublicKey::parse(keys::P256).unwrap();
    given::<Ledger>([])
        .when(seal(&p256))
        .then_rejects(LedgerError::NotEd25519);
    // Once the ledger has a key, a checkpoint under any other is refused, however well signed.
    let mut foreign = sealed(4, 4, good.digest());
    foreign.public_key = PublicKey::parse(keys::P256).unwrap();
    given::<Ledger>([LedgerEvent::CheckpointSealed(good)])
        .when(seal(&foreign))
        .then_rejects(LedgerError::ForeignKey);
}

#[test]
fn the_statement_is_the_documented_text() {
    let root: Digest = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        .parse()
        .unwrap();
    assert_eq!(
        String::from_utf8(statement(1, 3, &root, &GENESIS, at())).unwrap(),
        "prism-audit-checkpoint-v1\nfrom=1\nto=3\n\
         root=6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d\n\
         previous=0000000000000000000000000000000000000000000000000000000000000000\n\
         signed_at=2026-12-02T10:00:00.000Z\n"
    );
}
