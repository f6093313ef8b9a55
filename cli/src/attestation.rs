//! `prism attestation verify`: recorded appraisals appraised again, offline, from the records alone —
//! the evidence as the agent sent it, what it had to be bound to, the policy and the platform the
//! machine declared — with this program's own verifier, not the platform's word; and each EAR checked
//! against the platform's JWK Set when one is given.

use anyhow::Context as _;
use prism_attestation::{Mode, Outcome, ear};
use prism_domain::cvm::CvmAttestationAppraised;
use serde_json::Value;

/// What re-verifying one recorded appraisal found.
#[derive(Debug, Clone)]
pub struct Reverified {
    pub recorded: Outcome,
    pub verdict: prism_attestation::Verdict,
    /// `None` when no JWK Set was given; otherwise whether the EAR verified with it and says the
    /// recorded outcome.
    pub ear: Option<Result<(), String>>,
}

impl Reverified {
    /// The re-verified outcome is the recorded one, evidence that a run may rely on (verified, or
    /// accepted as insecure when that was asked for), and the EAR (when checked) holds.
    pub fn holds(&self) -> bool {
        self.verdict.outcome == self.recorded
            && self.verdict.outcome.accepted()
            && self.ear.as_ref().is_none_or(Result::is_ok)
    }
}

/// The appraisals in `json`: one appraisal, a list of them, or the API's `{"items": [...]}`.
pub fn parse_appraisals(json: &str) -> anyhow::Result<Vec<CvmAttestationAppraised>> {
    let value: Value = serde_json::from_str(json).context("the file is not JSON")?;
    let items = match value {
        Value::Object(ref map) if map.contains_key("items") => value["items"].clone(),
        Value::Array(_) => value,
        single => Value::Array(vec![single]),
    };
    serde_json::from_value(items).context("not attestation appraisals as the API lists them")
}

/// Appraises each recorded appraisal again and, with `jwks`, checks its EAR.
pub fn reverify(
    appraisals: &[CvmAttestationAppraised],
    jwks: Option<&Value>,
    mode: Mode,
) -> anyhow::Result<Vec<Reverified>> {
    appraisals
        .iter()
        .map(|appraisal| {
            let verdict = prism_app::reappraise(appraisal, mode)?;
            let ear = jwks.map(|jwks| check_ear(&appraisal.ear, jwks, appraisal.verdict.outcome));
            Ok(Reverified {
                recorded: appraisal.verdict.outcome,
                verdict,
                ear,
            })
        })
        .collect()
}

/// The EAR verifies with a key of `jwks` (its `kid`) and its status is the recorded outcome's. Its
/// expiry is not held against it: a record is re-verified long after it was made.
fn check_ear(token: &str, jwks: &Value, recorded: Outcome) -> Result<(), String> {
    let jwk = ear::jwk_for(token, jwks).map_err(|e| format!("no key of the JWK Set signed it: {e}"))?;
    let claims = ear::verify_signature(token, jwk).map_err(|e| format!("the EAR does not verify: {e}"))?;
    let expected = match recorded {
        Outcome::Verified => "affirming",
        Outcome::AcceptedInsecure => "warning",
        Outcome::Refused => "contraindicated",
    };
    let statuses: Vec<&str> = claims
        .submods
        .values()
        .filter_map(|submodule| submodule["ear_status"].as_str())
        .collect();
    if statuses.iter().all(|status| *status == expected) && !statuses.is_empty() {
        Ok(())
    } else {
        Err(format!("the EAR says {statuses:?}, the record says {expected}"))
    }
}
