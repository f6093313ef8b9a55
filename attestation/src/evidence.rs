//! Evidence as it arrives: a Cocos EAT (what the real and emulated agents send) or a bare
//! SEV-SNP `ATTESTATION_REPORT` (what `snpguest report` writes), told apart by their first bytes.

use prost::Message as _;

use crate::eat;
use crate::sevsnp;

/// Length of an SEV-SNP `ATTESTATION_REPORT`.
pub const SNP_REPORT_LEN: usize = sevsnp::REPORT_SIZE;
/// Upper bound on evidence accepted for decoding: a report with a full certificate chain is a few
/// KiB, a TDX quote with its PCK chain under 16 KiB.
pub const MAX_EVIDENCE_LEN: usize = 256 * 1024;

/// What kind of machine the evidence says it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// AMD SEV-SNP.
    Snp,
    /// Intel TDX.
    Tdx,
    /// Cocos's `NoCC`: no TEE, a fake report nothing can verify.
    NoCc,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceKind::Snp => "SNP",
            EvidenceKind::Tdx => "TDX",
            EvidenceKind::NoCc => "NoCC",
        })
    }
}

/// Decoded evidence: the platform's own report and what wrapped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// The EAT's `eat_nonce`, when the evidence came in an EAT.
    pub eat_nonce: Option<Vec<u8>>,
    /// SNP: a bare 1,184-byte report; its certificates, when sent, are in `snp_certificates`.
    /// TDX: the quote. NoCC: upstream's 96-byte fake (report data ‖ nonce).
    pub report: Vec<u8>,
    /// The ARK, ASK and VCEK (DER) that came with SNP evidence, when any did.
    pub snp_certificates: Option<SnpCertificates>,
}

/// Certificates sent with SEV-SNP evidence (go-sev-guest's `CertificateChain`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnpCertificates {
    pub ark: Vec<u8>,
    pub ask: Vec<u8>,
    pub vcek: Vec<u8>,
}

/// Why evidence could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence is {0} bytes, more than the {MAX_EVIDENCE_LEN} accepted")]
    TooLarge(usize),
    #[error("evidence is neither a Cocos EAT nor a bare SEV-SNP report ({0})")]
    Unrecognised(String),
    #[error("the EAT's platform_type {0:?} is not one this platform verifies")]
    UnknownPlatform(String),
    #[error("the EAT's raw_report is not a go-sev-guest Attestation: {0}")]
    Attestation(String),
    #[error("the go-sev-guest Attestation has no report")]
    NoReport,
    #[error("the report's fields do not make an ATTESTATION_REPORT: {0}")]
    Report(#[from] sevsnp::ReportError),
}

/// The CBOR tag of a COSE_Sign1 (18) as a tagged item's first byte.
const COSE_SIGN1_TAG_BYTE: u8 = 0xD2;

impl Evidence {
    /// Decodes evidence; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(EvidenceError::TooLarge(bytes.len()));
        }
        if bytes.first() == Some(&COSE_SIGN1_TAG_BYTE) {
            let token = eat::decode(bytes).map_err(|e| EvidenceError::Unrecognised(e.to_string()))?;
            return Self::from_eat(token.claims);
        }
        if bytes.len() == SNP_REPORT_LEN {
            return Ok(Evidence {
                kind: EvidenceKind::Snp,
                eat_nonce: None,
                report: bytes.to_vec(),
                snp_certificates: None,
            });
        }
        Err(EvidenceError::Unrecognised(format!(
            "{} bytes, not a COSE_Sign1 and not {SNP_REPORT_LEN} bytes",
            bytes.len()
        )))
    }

    fn from_eat(claims: eat::Claims) -> Result<Self, EvidenceError> {
        match claims.platform_type.as_str() {
            eat::PLATFORM_SNP => {
                let attestation = sevsnp::Attestation::decode(claims.raw_report.as_slice())
                    .map_err(|e| EvidenceError::Attestation(e.to_string()))?;
                let report = attestation
                    .report
                    .ok_or(EvidenceError::NoReport)?
                    .to_abi_bytes()?;
                let snp_certificates = attestation
                    .certificate_chain
                    .filter(|chain| !chain.vcek_cert.is_empty())
                    .map(|chain| SnpCertificates {
                        ark: chain.ark_cert,
                        ask: chain.ask_cert,
                        vcek: chain.vcek_cert,
                    });
                Ok(Evidence {
                    kind: EvidenceKind::Snp,
                    eat_nonce: claims.nonce,
                    report,
                    snp_certificates,
                })
            }
            eat::PLATFORM_TDX => Ok(Evidence {
                kind: EvidenceKind::Tdx,
                eat_nonce: claims.nonce,
                report: claims.raw_report,
                snp_certificates: None,
            }),
            eat::PLATFORM_NOCC => Ok(Evidence {
                kind: EvidenceKind::NoCc,
                eat_nonce: claims.nonce,
                report: claims.raw_report,
                snp_certificates: None,
            }),
            other => Err(EvidenceError::UnknownPlatform(other.to_owned())),
        }
    }
}
