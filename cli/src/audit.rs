//! `prism audit`: the audit ledger from the command line — verify the whole log against it, export
//! a range as a signed bundle, and verify such a bundle offline with the ledger's public key alone.

use std::path::Path;

use anyhow::{Context as _, bail};
use prism_app::{Bundle, LedgerReport};
use prism_domain::values::PublicKey;

/// The ledger's public key from a file (SubjectPublicKeyInfo PEM, as `GET /audit/public-key` and
/// `prism audit public-key` give it, or base64 DER).
pub fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = PublicKey::parse(&text).with_context(|| format!("{} is not a public key", path.display()))?;
    if !key.is_ed25519() {
        bail!("{} is not an Ed25519 key: the ledger key is one", path.display());
    }
    Ok(key)
}

/// A bundle written by `prism audit export`.
pub fn read_bundle(path: &Path) -> anyhow::Result<Bundle> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not an audit bundle", path.display()))
}

/// The report as text: a summary, then every finding, the first marked as where the log first
/// differs from what the ledger vouches for.
pub fn describe(report: &LedgerReport, what: &str) -> String {
    let mut text = format!(
        "{what}: sequences {}..={}, {} commit(s) read, {} checkpoint(s) verified, covered through {}",
        report.from, report.to, report.commits, report.checkpoints, report.covered_through
    );
    if report.uncovered > 0 {
        text.push_str(&format!(
            "\n{} commit(s) after {} not yet covered by a checkpoint",
            report.uncovered, report.covered_through
        ));
    }
    if report.is_intact() {
        text.push_str("\nintact: every commit is the one the ledger vouches for");
        return text;
    }
    text.push_str(&format!("\nNOT INTACT: {} finding(s)", report.findings.len()));
    for (i, finding) in report.findings.iter().enumerate() {
        let marker = if i == 0 { "first" } else { "     " };
        text.push_str(&format!(
            "\n{marker} sequence {}: {:?} — {}",
            finding.sequence, finding.kind, finding.detail
        ));
        if let Some(subject) = &finding.subject {
            text.push_str(&format!(
                "\n      now there: {subject} events {}",
                finding.event_ids.join(", ")
            ));
        }
    }
    text
}
