//! The verdict on a piece of evidence, and the [`Appraiser`] that reaches it.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::binding::{Binding, Expected};
use crate::claims::Claims;
use crate::evidence::{Evidence, EvidenceKind};
use crate::hexbytes::HexBytes;
use crate::none::NoneVerifier;
use crate::policy::Policy;
use crate::snp::SnpVerifier;
use crate::{Platform, Verifier};

/// One failed check: the field, what was expected and what the evidence says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// The field or check, e.g. `measurement`, `guest_policy.debug`, `vcek.signature`.
    pub field: String,
    pub expected: String,
    pub actual: String,
}

impl Failure {
    pub fn new(field: impl Into<String>, expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Failure {
            field: field.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.field, self.expected, self.actual
        )
    }
}

/// Whether evidence from machines without a TEE may be accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only hardware evidence verified to the manufacturer's root is accepted.
    #[default]
    Secure,
    /// Development only: evidence from machines without a TEE is accepted as
    /// [`Outcome::AcceptedInsecure`], never as verified.
    InsecureDevelopment,
}

/// The outcome of an appraisal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Hardware evidence verified to the manufacturer's root and satisfying the policy.
    Verified,
    /// Evidence from a machine without a TEE, accepted because the platform runs in insecure
    /// development mode. Nothing about the machine is proven.
    AcceptedInsecure,
    /// Refused: see the failures.
    Refused,
}

impl Outcome {
    /// Whether the run may proceed on this evidence.
    pub fn accepted(self) -> bool {
        !matches!(self, Outcome::Refused)
    }
}

/// The verdict on one piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The platform the machine declared.
    pub platform: Platform,
    pub binding: Binding,
    /// Empty unless refused; otherwise every failed check, the first one first.
    pub failures: Vec<Failure>,
    /// The verified claims (absent when the evidence itself did not verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
    /// SHA-256 of the evidence bytes.
    pub evidence_sha256: HexBytes,
    /// SHA-256 of the policy's canonical JSON ([`Policy::digest`]).
    pub policy_sha256: HexBytes,
    /// Plain statements a reader must not miss: no hardware protection, no freshness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Verdict {
    /// The first failure, if refused.
    pub fn reason(&self) -> Option<&Failure> {
        self.failures.first()
    }
}

/// The warning every verdict on evidence from a machine without a TEE carries.
pub const INSECURE_WARNING: &str =
    "INSECURE: no hardware protection; evidence from a machine without a TEE proves nothing";
/// The warning every verdict on a start-up report carries.
pub const NOT_FRESH_WARNING: &str =
    "not fresh: a start-up report bound to the agent's client certificate, not to a platform nonce";

/// Evidence → claims → policy → verdict, for every platform.
#[derive(Debug)]
pub struct Appraiser {
    mode: Mode,
    /// Shared so that appraisers made per machine (each with its own test root) share the chains
    /// already verified.
    snp: Arc<SnpVerifier>,
    none: NoneVerifier,
    /// Intel TDX, when built with the `tdx` feature and given one ([`Appraiser::with_tdx`]).
    tdx: Option<Arc<dyn Verifier>>,
}

impl Appraiser {
    pub fn new(mode: Mode, snp: SnpVerifier, none: NoneVerifier) -> Self {
        Self::shared(mode, Arc::new(snp), none)
    }

    /// An appraiser sharing `snp` (and the chains it has verified) with others.
    pub fn shared(mode: Mode, snp: Arc<SnpVerifier>, none: NoneVerifier) -> Self {
        Appraiser {
            mode,
            snp,
            none,
            tdx: None,
        }
    }

    /// Also verifies Intel TDX quotes. Give it `TdxVerifier::intel()`: a test-only root here would
    /// let a test chain's quotes come out verified.
    #[cfg(feature = "tdx")]
    pub fn with_tdx(mut self, tdx: Arc<crate::tdx::TdxVerifier>) -> Self {
        self.tdx = Some(tdx);
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Appraises `evidence` from a machine that declared `platform`, against what was asked for
    /// and a policy. Never panics, whatever the bytes.
    pub fn appraise(
        &self,
        platform: Platform,
        evidence: &[u8],
        expected: &Expected,
        policy: &Policy,
    ) -> Verdict {
        let mut warnings = Vec::new();
        if platform == Platform::None {
            warnings.push(INSECURE_WARNING.to_owned());
        }
        if !expected.is_fresh() {
            warnings.push(NOT_FRESH_WARNING.to_owned());
        }
        let (claims, failures) = self.evaluate(platform, evidence, expected, policy);
        let outcome = match (failures.is_empty(), platform) {
            (false, _) => Outcome::Refused,
            (true, Platform::None) => Outcome::AcceptedInsecure,
            (true, _) => Outcome::Verified,
        };
        Verdict {
            outcome,
            platform,
            binding: expected.binding.clone(),
            failures,
            claims,
            evidence_sha256: HexBytes(Sha256::digest(evidence).to_vec()),
            policy_sha256: HexBytes(policy.digest().to_vec()),
            warnings,
        }
    }

    fn evaluate(
        &self,
        platform: Platform,
        evidence: &[u8],
        expected: &Expected,
        policy: &Policy,
    ) -> (Option<Claims>, Vec<Failure>) {
        if platform == Platform::None && self.mode == Mode::Secure {
            let failure = Failure::new(
                "platform",
                "sev_snp or tdx (a machine without a TEE is accepted only in insecure development mode)",
                "none",
            );
            return (None, vec![failure]);
        }
        let decoded = match Evidence::decode(evidence) {
            Ok(decoded) => decoded,
            Err(error) => {
                return (
                    None,
                    vec![Failure::new(
                        "evidence",
                        "a Cocos EAT or an SEV-SNP report",
                        error.to_string(),
                    )],
                );
            }
        };
        let expected_kind = match platform {
            Platform::SevSnp => Some(EvidenceKind::Snp),
            Platform::Tdx => Some(EvidenceKind::Tdx),
            Platform::None => None,
        };
        if let Some(kind) = expected_kind.filter(|kind| *kind != decoded.kind) {
            return (
                None,
                vec![Failure::new(
                    "evidence.platform",
                    kind.to_string(),
                    decoded.kind.to_string(),
                )],
            );
        }
        let verifier: &dyn Verifier = match platform {
            Platform::SevSnp => self.snp.as_ref(),
            Platform::None => &self.none,
            Platform::Tdx => match self.tdx.as_deref() {
                Some(tdx) => tdx,
                None => {
                    let failure = Failure::new(
                        "platform",
                        "a platform this build verifies (sev_snp; tdx needs the `tdx` feature)",
                        "tdx",
                    );
                    return (None, vec![failure]);
                }
            },
        };
        match verifier.evaluate(&decoded, expected) {
            Ok(claims) => {
                let failures = policy.appraise(&claims);
                (Some(claims), failures)
            }
            Err(failure) => (None, vec![failure]),
        }
    }
}
