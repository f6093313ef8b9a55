//! The audit ledger's service: the platform's Ed25519 ledger key, sealing checkpoints over the
//! log as the auditor sees it, and verifying — the whole log against the ledger, or an exported
//! bundle offline with the public key alone.
//!
//! The per-aggregate hash chains reveal corruption, but someone able to write to the store can
//! recompute them. The ledger vouches for every commit with a leaf ([`StoredCommit::leaf`]) signed
//! into a checkpoint, so a rewrite shows as a commit whose leaf is not the one the ledger holds for
//! its place; looking up where each leaf went tells an altered commit from a missing or moved one.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use prism_domain::Aggregate as _;
use prism_domain::ledger::{
    CheckpointSealed, Digest, GENESIS, LEDGER_ID, Ledger, LedgerCommand, LedgerEvent, SealCheckpoint,
    absent_leaf, leaf_hash, statement,
};
use prism_domain::values::PublicKey;
use prism_store::{ChainTip, CommandRequest, EventEnvelope, StoreError, StoredCommit};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tracing::debug;

use crate::audit::first_at_or_after;
use crate::{App, AppError, Caller, ErrorKind};

/// The sealed key the platform signs checkpoints with.
const LEDGER_KEY: &str = "audit-ledger-signing-key";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The leaf of a stream sequence whose message could not be read as a commit when it was sealed.
pub fn unreadable_leaf() -> Digest {
    leaf_hash(b"prism-audit-unreadable-v1")
}

/// The platform's ledger key.
pub struct LedgerSigner {
    pair: Ed25519KeyPair,
    public_key: PublicKey,
}

impl std::fmt::Debug for LedgerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerSigner")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl LedgerSigner {
    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| e.to_string())?;
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        let public_key = PublicKey::parse(&BASE64.encode(der)).map_err(|e| e.to_string())?;
        Ok(Self { pair, public_key })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> String {
        BASE64.encode(self.pair.sign(message).as_ref())
    }
}

#[derive(Debug, Default)]
pub(crate) struct LedgerState {
    signer: OnceCell<Arc<LedgerSigner>>,
}

/// What one checkpoint sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub from: u64,
    pub to: u64,
    /// The stream sequence of the checkpoint's own commit.
    pub sequence: u64,
}

/// What a verification found wrong at one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The commit at this sequence is not the one the ledger sealed there, and that one is nowhere
    /// else: its content was changed (or it does not match its own hashes).
    Altered,
    /// The commit sealed at this sequence is in the log no more.
    Missing,
    /// The commit sealed at this sequence stands at another one now.
    Reordered,
    /// The commit breaks its aggregate's hash chain.
    ChainBroken,
    /// A checkpoint that does not verify (signature, leaves, continuity): nothing after it is vouched for.
    BadCheckpoint,
}

/// One problem, at the stream sequence where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub sequence: u64,
    pub kind: FindingKind,
    pub detail: String,
    /// The commit now at `sequence`, when there is one: its subject and events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
}

/// The outcome of a verification. `findings` lists the problems in stream order, the first being
/// the first place where the log differs from what the ledger vouches for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReport {
    /// The range read (for a bundle: the range it holds).
    pub from: u64,
    pub to: u64,
    pub commits: u64,
    pub checkpoints: u64,
    /// The last sequence the valid checkpoints cover.
    pub covered_through: u64,
    /// Commits after it, not yet vouched for (the ledger's own last checkpoint among them).
    pub uncovered: u64,
    pub findings: Vec<Finding>,
}

impl LedgerReport {
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One commit as a bundle carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleCommit {
    pub sequence: u64,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub events: Vec<EventEnvelope>,
}

impl BundleCommit {
    fn stored(&self) -> StoredCommit {
        StoredCommit {
            sequence: self.sequence,
            subject: self.subject.clone(),
            msg_id: self.msg_id.clone(),
            fingerprint: self.fingerprint.clone(),
            events: self.events.clone(),
            bytes: 0,
        }
    }
}

impl From<StoredCommit> for BundleCommit {
    fn from(c: StoredCommit) -> Self {
        Self {
            sequence: c.sequence,
            subject: c.subject,
            msg_id: c.msg_id,
            fingerprint: c.fingerprint,
            events: c.events,
        }
    }
}

/// A range of the log with the checkpoints that vouch for it: what a third party verifies offline
/// with `prism audit verify --bundle` and the ledger's public key (`docs/audit.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// `prism.audit-bundle.v1`.
    pub format: String,
    pub from: u64,
    pub to: u64,
    pub exported_at: DateTime<Utc>,
    /// The key the checkpoints say they are signed with; a verifier trusts its own copy, not this.
    pub public_key: PublicKey,
    /// The log's subject prefix (`prism.ev`), under which each commit's subject must stand.
    pub subject_prefix: String,
    /// Every commit of `from..=to` in the log, in order (a sequence that holds nothing is left out).
    pub commits: Vec<BundleCommit>,
    /// The consecutive checkpoints that cover `from..=to`, in order.
    pub checkpoints: Vec<CheckpointSealed>,
}

pub const BUNDLE_FORMAT: &str = "prism.audit-bundle.v1";

/// The ledger service.
#[derive(Debug, Clone, Copy)]
pub struct LedgerService<'a> {
    app: &'a App,
}

fn internal(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::internal(format!("{what}: {e}"))
}

impl<'a> LedgerService<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The platform's ledger key: made on first use and sealed with the certificate authority's
    /// keys, so every process signs with the same one and it outlives restarts.
    pub async fn signer(&self) -> Result<Arc<LedgerSigner>, AppError> {
        self.app
            .inner
            .ledger
            .signer
            .get_or_try_init(|| async {
                let pkcs8 = self
                    .app
                    .certificates()
                    .sealed_key_or_new(LEDGER_KEY, || {
                        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                            .map(|pkcs8| pkcs8.as_ref().to_vec())
                            .map_err(|e| e.to_string())
                    })
                    .await?;
                let signer = LedgerSigner::from_pkcs8(&pkcs8).map_err(|e| internal("the ledger key", e))?;
                Ok(Arc::new(signer))
            })
            .await
            .cloned()
    }

    /// The ledger key's public half, which verifiers trust.
    pub async fn public_key(&self) -> Result<PublicKey, AppError> {
        Ok(self.signer().await?.public_key().clone())
    }

    /// The ledger as the log holds it now.
    pub async fn state(&self) -> Result<Ledger, AppError> {
        let repository = self.app.repository::<Ledger>();
        self.app
            .bounded(async { Ok(repository.load(&LEDGER_ID).await?.state) })
            .await
    }

    /// Signs and records a checkpoint of `leaves`, the leaves of `from..` in order. It must
    /// continue the ledger: when another process sealed first, this is refused as a state conflict
    /// and the caller starts again from [`LedgerService::state`].
    pub async fn seal(&self, from: u64, leaves: Vec<Digest>) -> Result<Sealed, AppError> {
        // No leaves, no tree hash: a checkpoint covers at least one commit.
        let root = prism_domain::ledger::tree_hash(&leaves)
            .ok_or_else(|| AppError::new(ErrorKind::Invalid, "a checkpoint covers at least one commit"))?;
        let to = from.checked_add(leaves.len() as u64 - 1).ok_or_else(|| {
            AppError::new(ErrorKind::Invalid, "the range ends past the last stream sequence")
        })?;
        let signer = self.signer().await?;
        let ledger = self.state().await?;
        // Milliseconds: the statement writes no finer, and the event must say what was signed.
        let signed_at = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default();
        let signature = signer.sign(&statement(from, to, &root, &ledger.last_digest, signed_at));
        let command = LedgerCommand::Seal(SealCheckpoint {
            from,
            to,
            leaves,
            signed_at,
            public_key: signer.public_key().clone(),
            signature,
        });
        let request =
            CommandRequest::<Ledger>::new(&LEDGER_ID, command, Caller::service("auditor").metadata(None));
        let repository = self.app.repository::<Ledger>();
        let outcome = self
            .app
            .bounded(async { Ok(repository.execute(request).await) })
            .await?
            .map_err(|e| AppError::command("audit ledger", e))?;
        Ok(Sealed {
            from,
            to,
            sequence: outcome.sequence,
        })
    }

    /// Every checkpoint in the ledger's order, each with the stream sequence of its commit.
    async fn checkpoints(&self) -> Result<Vec<(u64, CheckpointSealed)>, AppError> {
        let log = self.app.log();
        let subject = log.subjects().aggregate(Ledger::TYPE, LEDGER_ID)?;
        let commits = self
            .app
            .bounded(async { Ok(log.commits_after(&subject, 0).await?) })
            .await?;
        let mut checkpoints = Vec::new();
        for commit in commits {
            for event in &commit.events {
                match event.decode::<LedgerEvent>(Ledger::TYPE) {
                    Ok(LedgerEvent::CheckpointSealed(sealed)) => checkpoints.push((commit.sequence, sealed)),
                    // A checkpoint that cannot be read vouches for nothing; the chain check below
                    // reports the gap it leaves.
                    Err(e) => debug!(sequence = commit.sequence, error = %e, "an unreadable checkpoint"),
                }
            }
        }
        Ok(checkpoints)
    }

    /// Checks the whole log against the ledger, with `key` as the ledger's trusted public key.
    pub async fn verify(&self, key: &PublicKey) -> Result<LedgerReport, AppError> {
        let log = self.app.log().clone();
        let last = log.last_sequence().await?;
        let (checkpoints, mut findings) = trusted_leaves(key, &self.checkpoints().await?, 1, GENESIS);
        let mut check = LogCheck::new(log.subjects().clone(), 1, checkpoints);
        let mut commits = log.read(1, &log.subjects().all()).await?;
        while check.next_sequence <= last {
            let Some(item) = commits.next().await else {
                return Err(AppError::unavailable(
                    "the log's reading ended before its last commit",
                ));
            };
            match item {
                Ok(commit) => check.commit(&commit),
                Err(StoreError::Corrupt { sequence, source }) => {
                    check.unreadable(sequence, &source.to_string())
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Through what the ledger covers, even past the log's end: a log cut short is missing commits.
        findings.extend(check.finish(check.covered_through));
        Ok(check.report(1, last, findings))
    }

    /// The commits of `from..=to` (sequences) with the checkpoints that cover them.
    pub async fn export(&self, from: u64, to: u64) -> Result<Bundle, AppError> {
        if from == 0 || to < from {
            return Err(AppError::new(
                ErrorKind::Invalid,
                format!("{from}..{to} is not a range of stream sequences (the first is 1)"),
            ));
        }
        let log = self.app.log().clone();
        let checkpoints = self.checkpoints().await?;
        let covered = checkpoints.last().map_or(0, |(_, c)| c.to);
        if to > covered {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!(
                    "sequence {to} is not covered by a checkpoint yet: the ledger covers up to {covered}"
                ),
            ));
        }
        let covering: Vec<CheckpointSealed> = checkpoints
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| c.to >= from && c.from <= to)
            .collect();
        let mut commits = Vec::new();
        let mut stream = log.read(from, &log.subjects().all()).await?;
        let last = log.last_sequence().await?.min(to);
        while commits.last().map_or(from, |c: &BundleCommit| c.sequence + 1) <= last {
            match stream.next().await {
                Some(Ok(commit)) if commit.sequence > to => break,
                Some(Ok(commit)) => commits.push(BundleCommit::from(commit)),
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(AppError::unavailable(
                        "the log's reading ended before the range did",
                    ));
                }
            }
        }
        Ok(Bundle {
            format: BUNDLE_FORMAT.into(),
            from,
            to,
            exported_at: Utc::now(),
            public_key: covering
                .last()
                .map(|c| c.public_key.clone())
                .ok_or_else(|| AppError::internal("a covered range without its checkpoints"))?,
            subject_prefix: log.subjects().prefix().to_owned(),
            commits,
            checkpoints: covering,
        })
    }

    /// The stream sequence of the first commit at or after `time`.
    pub async fn first_at_or_after(&self, time: DateTime<Utc>) -> Result<u64, AppError> {
        let log = self.app.log();
        first_at_or_after(log.as_ref(), log.last_sequence().await?, time).await
    }
}

/// Checks a bundle offline with the ledger's trusted public key: its checkpoints, and every commit
/// of its range against them (and against its own hashes and chain).
pub fn verify_bundle(bundle: &Bundle, key: &PublicKey) -> LedgerReport {
    if bundle.format != BUNDLE_FORMAT {
        return LedgerReport {
            from: bundle.from,
            to: bundle.to,
            findings: vec![Finding {
                sequence: bundle.from,
                kind: FindingKind::BadCheckpoint,
                detail: format!("not a bundle of format {BUNDLE_FORMAT}: `{}`", bundle.format),
                subject: None,
                event_ids: Vec::new(),
            }],
            ..Default::default()
        };
    }
    let numbered: Vec<(u64, CheckpointSealed)> = bundle.checkpoints.iter().map(|c| (0, c.clone())).collect();
    // The checkpoint before the bundle's first is not in it: the first is taken as it chains.
    let (first, previous) = bundle
        .checkpoints
        .first()
        .map_or((bundle.from, GENESIS), |c| (c.from, c.previous));
    let (checkpoints, mut findings) = trusted_leaves(key, &numbered, first, previous);
    let subjects = prism_store::Subjects::new(bundle.subject_prefix.clone());
    let mut check = LogCheck::new(subjects, bundle.from, checkpoints);
    // Within a bundle an aggregate's chain is checked from its first event there on: the events
    // before are outside the range.
    check.chain_from_first = true;
    for commit in &bundle.commits {
        if commit.sequence < bundle.from
            || commit.sequence > bundle.to
            || commit.sequence < check.next_sequence
        {
            findings.push(Finding {
                sequence: commit.sequence,
                kind: FindingKind::Reordered,
                detail: format!(
                    "the bundle holds sequence {} out of place (range {}..={})",
                    commit.sequence, bundle.from, bundle.to
                ),
                subject: Some(commit.subject.clone()),
                event_ids: commit.events.iter().map(|e| e.id.clone()).collect(),
            });
            continue;
        }
        check.commit(&commit.stored());
    }
    findings.extend(check.finish(bundle.to.min(check.covered_through)));
    if check.covered_through < bundle.to {
        findings.push(Finding {
            sequence: check.covered_through + 1,
            kind: FindingKind::BadCheckpoint,
            detail: format!(
                "the bundle's checkpoints cover up to {}, not its whole range {}..={}",
                check.covered_through, bundle.from, bundle.to
            ),
            subject: None,
            event_ids: Vec::new(),
        });
    }
    findings.sort_by_key(|f| f.sequence);
    check.report(bundle.from, bundle.to, findings)
}

/// The leaves the valid prefix of `checkpoints` vouches for, and a finding for the first
/// checkpoint that does not verify or does not continue the one before. The first must begin at
/// `first` and chain to `previous` (1 and the genesis for a whole ledger).
fn trusted_leaves(
    key: &PublicKey,
    checkpoints: &[(u64, CheckpointSealed)],
    first: u64,
    mut previous: Digest,
) -> (Vouched, Vec<Finding>) {
    let mut vouched = Vouched {
        first,
        leaves: Vec::new(),
        checkpoints: 0,
    };
    let mut next = first;
    for (sequence, checkpoint) in checkpoints {
        let problem = if let Err(e) = checkpoint.check(key) {
            Some(e.to_string())
        } else if checkpoint.from != next {
            Some(format!(
                "it begins at {}, where {next} was expected",
                checkpoint.from
            ))
        } else if checkpoint.previous != previous {
            Some("it does not chain to the checkpoint before it".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            let at = if *sequence == 0 {
                checkpoint.from
            } else {
                *sequence
            };
            return (
                vouched,
                vec![Finding {
                    sequence: at,
                    kind: FindingKind::BadCheckpoint,
                    detail: format!(
                        "the checkpoint of {}..={} does not verify: {problem}; nothing after sequence {} is vouched for",
                        checkpoint.from,
                        checkpoint.to,
                        next - 1
                    ),
                    subject: None,
                    event_ids: Vec::new(),
                }],
            );
        }
        vouched.leaves.extend_from_slice(&checkpoint.leaves);
        vouched.checkpoints += 1;
        previous = checkpoint.digest();
        next = checkpoint.to + 1;
    }
    (vouched, Vec::new())
}

/// The leaves of consecutive valid checkpoints, the first for sequence `first`.
#[derive(Debug)]
struct Vouched {
    first: u64,
    leaves: Vec<Digest>,
    checkpoints: u64,
}

impl Vouched {
    fn last(&self) -> u64 {
        self.first + self.leaves.len() as u64 - 1
    }

    fn at(&self, sequence: u64) -> Option<Digest> {
        let index = sequence.checked_sub(self.first)?;
        self.leaves.get(usize::try_from(index).ok()?).copied()
    }
}

/// What a reading of the log (or a bundle) found so far, commit by commit in stream order.
struct LogCheck {
    subjects: prism_store::Subjects,
    vouched: Vouched,
    covered_through: u64,
    /// The next sequence expected.
    next_sequence: u64,
    /// The leaf of every sequence read that a checkpoint covers, from `actual_first` on, and where
    /// each leaf stands.
    actual_first: u64,
    actual: Vec<Option<Digest>>,
    actual_at: HashMap<Digest, u64>,
    /// What stands at each sequence, to name it.
    named: HashMap<u64, (String, Vec<String>)>,
    tips: HashMap<String, ChainTip>,
    chain_from_first: bool,
    commits: u64,
    uncovered: u64,
    ledger_subject: Option<String>,
    findings: Vec<Finding>,
}

impl LogCheck {
    fn new(subjects: prism_store::Subjects, from: u64, vouched: Vouched) -> Self {
        let covered_through = if vouched.leaves.is_empty() {
            from - 1
        } else {
            vouched.last()
        };
        let ledger_subject = subjects.aggregate(Ledger::TYPE, LEDGER_ID).ok();
        Self {
            subjects,
            covered_through,
            next_sequence: from,
            actual_first: from.max(vouched.first),
            actual: Vec::new(),
            actual_at: HashMap::new(),
            named: HashMap::new(),
            tips: HashMap::new(),
            chain_from_first: false,
            commits: 0,
            uncovered: 0,
            ledger_subject,
            findings: Vec::new(),
            vouched,
        }
    }

    /// Records the leaf at `sequence`, the sequences skipped before it being empty.
    fn place(&mut self, sequence: u64, leaf: Digest) {
        while self.next_sequence < sequence {
            self.record(self.next_sequence, None);
        }
        self.record(sequence, Some(leaf));
    }

    fn record(&mut self, sequence: u64, leaf: Option<Digest>) {
        if sequence >= self.actual_first && sequence <= self.covered_through {
            if let Some(leaf) = leaf {
                self.actual_at.insert(leaf, sequence);
            }
            self.actual.push(leaf);
        } else if sequence > self.covered_through && leaf.is_some() {
            self.uncovered += 1;
        }
        self.next_sequence = sequence + 1;
    }

    fn unreadable(&mut self, sequence: u64, reason: &str) {
        self.commits += 1;
        if self.vouched.at(sequence) != Some(unreadable_leaf()) {
            self.findings.push(Finding {
                sequence,
                kind: FindingKind::Altered,
                detail: format!("the message at sequence {sequence} is not a readable commit: {reason}"),
                subject: None,
                event_ids: Vec::new(),
            });
        }
        self.place(sequence, unreadable_leaf());
    }

    fn commit(&mut self, commit: &StoredCommit) {
        self.commits += 1;
        let ids: Vec<String> = commit.events.iter().map(|e| e.id.clone()).collect();
        let finding = |kind, detail: String| Finding {
            sequence: commit.sequence,
            kind,
            detail,
            subject: Some(commit.subject.clone()),
            event_ids: ids.clone(),
        };
        if let Err(e) = prism_store::check_well_formed(&self.subjects, commit) {
            self.findings.push(finding(FindingKind::Altered, e.to_string()));
        } else {
            let tip = match self.tips.get(&commit.subject) {
                Some(tip) => Some(tip.clone()),
                None if self.chain_from_first => commit.events.first().map(|e| ChainTip {
                    version: e.aggregateversion.saturating_sub(1),
                    hash: e.prevhash.clone(),
                }),
                None => Some(ChainTip::genesis()),
            };
            if let Some(tip) = tip {
                match prism_store::verify_commit(&self.subjects, &tip, commit) {
                    Ok(next) => {
                        self.tips.insert(commit.subject.clone(), next);
                    }
                    Err(e) => {
                        self.findings
                            .push(finding(FindingKind::ChainBroken, e.to_string()));
                        // Follow the chain from what is there, so one break is reported once.
                        if let Some(next) = commit.tip() {
                            self.tips.insert(commit.subject.clone(), next);
                        }
                    }
                }
            }
        }
        self.named.insert(commit.sequence, (commit.subject.clone(), ids));
        let is_ledger = self.ledger_subject.as_deref() == Some(commit.subject.as_str());
        let before = self.uncovered;
        self.place(commit.sequence, commit.leaf());
        // The ledger's own last checkpoints wait for the next commit to be covered: not a concern.
        if is_ledger && self.uncovered > before {
            self.uncovered -= 1;
        }
    }

    /// Compares every vouched-for sequence read, and those through `end` not read (empty), with
    /// what the checkpoints sealed there, and names what differs.
    fn finish(&mut self, end: u64) -> Vec<Finding> {
        while self.next_sequence <= end {
            self.record(self.next_sequence, None);
        }
        let expected_at: HashMap<Digest, u64> = self
            .vouched
            .leaves
            .iter()
            .enumerate()
            .filter(|(_, leaf)| **leaf != absent_leaf())
            .map(|(i, leaf)| (*leaf, self.vouched.first + i as u64))
            .collect();
        let mut findings = std::mem::take(&mut self.findings);
        for (i, actual) in self.actual.iter().enumerate() {
            let sequence = self.actual_first + i as u64;
            let Some(expected) = self.vouched.at(sequence) else {
                break;
            };
            let matches = match actual {
                Some(leaf) => *leaf == expected,
                None => expected == absent_leaf(),
            };
            if matches {
                continue;
            }
            let (subject, event_ids) = self.named.get(&sequence).cloned().unzip();
            let (kind, detail) = match self.actual_at.get(&expected) {
                Some(now) => (
                    FindingKind::Reordered,
                    format!("the commit sealed at sequence {sequence} stands at sequence {now} now"),
                ),
                None => match actual.and_then(|leaf| expected_at.get(&leaf)) {
                    Some(sealed_at) => (
                        FindingKind::Missing,
                        format!(
                            "the commit sealed at sequence {sequence} is gone; the one here was sealed at {sealed_at}"
                        ),
                    ),
                    None if actual.is_none() => (
                        FindingKind::Missing,
                        format!(
                            "the commit sealed at sequence {sequence} is gone; the sequence holds nothing"
                        ),
                    ),
                    None => (
                        FindingKind::Altered,
                        format!("the commit at sequence {sequence} is not the one sealed there"),
                    ),
                },
            };
            findings.push(Finding {
                sequence,
                kind,
                detail,
                subject,
                event_ids: event_ids.unwrap_or_default(),
            });
        }
        findings.sort_by_key(|f| f.sequence);
        findings
    }

    fn report(&self, from: u64, to: u64, findings: Vec<Finding>) -> LedgerReport {
        LedgerReport {
            from,
            to,
            commits: self.commits,
            checkpoints: self.vouched.checkpoints,
            covered_through: self.covered_through,
            uncovered: self.uncovered,
            findings,
        }
    }
}
