//! Machines without a TEE: the emulated agent and a real Cocos agent in NoCC mode.
//!
//! Nothing such evidence says is proven, so it is never called verified: the [`crate::Appraiser`]
//! refuses it unless the platform runs in insecure development mode, and then calls it
//! [`crate::Outcome::AcceptedInsecure`] with a warning. The checks here still run, so that the
//! development path exercises the same binding and policy as production:
//!
//! - NoCC evidence (upstream's 96-byte fake, report data ‖ nonce) must carry the expected report
//!   data and nonce;
//! - the emulated agent's SEV-SNP-shaped evidence must verify to a configured test-only root, carry
//!   the expected report data, and its claims go through the SEV-SNP policy.

use crate::Verifier;
use crate::binding::Expected;
use crate::claims::{Claims, NoneClaims};
use crate::evidence::{Evidence, EvidenceKind};
use crate::hexbytes::HexBytes;
use crate::snp::{RootError, SnpVerifier};
use crate::verdict::Failure;

/// Length of upstream's NoCC fake report: 64 bytes of report data, 32 of nonce.
pub const NOCC_REPORT_LEN: usize = 96;

/// The verifier for machines without a TEE.
#[derive(Debug)]
pub struct NoneVerifier {
    emulated: SnpVerifier,
}

impl NoneVerifier {
    /// Accepts the emulated agents' evidence verified to one of `test_roots` (their ARKs, DER).
    pub fn new(test_roots: impl IntoIterator<Item = Vec<u8>>) -> Result<Self, RootError> {
        Ok(NoneVerifier {
            emulated: SnpVerifier::test_only(test_roots)?,
        })
    }
}

impl Verifier for NoneVerifier {
    fn evaluate(&self, evidence: &Evidence, expected: &Expected) -> Result<Claims, Failure> {
        match evidence.kind {
            EvidenceKind::NoCc => {
                let report = evidence.report.as_slice();
                if report.len() != NOCC_REPORT_LEN {
                    return Err(Failure::new(
                        "report",
                        format!("{NOCC_REPORT_LEN} bytes (NoCC report data ‖ nonce)"),
                        format!("{} bytes", report.len()),
                    ));
                }
                let (report_data, nonce) = report.split_at(64);
                if report_data != expected.report_data {
                    return Err(Failure::new(
                        "report_data",
                        hex::encode(expected.report_data),
                        hex::encode(report_data),
                    ));
                }
                // Upstream zero-pads the nonce to 32 bytes.
                let mut padded = expected.eat_nonce.clone();
                padded.resize(32, 0);
                if nonce != padded {
                    return Err(Failure::new("nonce", hex::encode(&padded), hex::encode(nonce)));
                }
                Ok(Claims::None(NoneClaims {
                    source: EvidenceKind::NoCc.to_string(),
                    emulated_snp: None,
                    report_data: HexBytes(report_data.to_vec()),
                }))
            }
            EvidenceKind::Snp => {
                let claims = self.emulated.verify(evidence, expected)?;
                Ok(Claims::None(NoneClaims {
                    source: EvidenceKind::Snp.to_string(),
                    report_data: claims.report_data.clone(),
                    emulated_snp: Some(claims),
                }))
            }
            EvidenceKind::Tdx => Err(Failure::new(
                "evidence.platform",
                "NoCC or the emulated agent's SNP",
                "TDX",
            )),
        }
    }
}
