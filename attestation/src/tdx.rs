//! Intel TDX: quote → claims. Built only with the `tdx` feature, because the `tdx-quote` crate it
//! uses is AGPL-3.0-or-later and the default build stays Apache-2.0.
//!
//! What is checked, in order:
//!
//! 1. The quote header: version 4, attestation key type 2 (ECDSA P-256), TEE type 0x81 (TDX).
//!    `tdx-quote` would also accept TEE type 0 (SGX) and read an enclave report as if it were a TD
//!    report, so the TEE type is checked here. Version 5 is refused: `tdx-quote` 0.0.5 checks a
//!    version-5 quote's signature over the wrong bytes (the header and body without the 6-byte
//!    body descriptor that Intel's format signs), so a genuine version-5 quote never verifies.
//!    The quote must also be long enough to hold everything up to its certification data:
//!    `tdx-quote` 0.0.5 panics on a shorter input (it slices before it checks the length).
//! 2. `tdx-quote` parses the quote and checks its ECDSA P-256 signature over header and TD report
//!    with the quote's attestation key, and that the QE report's REPORTDATA starts with
//!    SHA-256(attestation key ‖ QE authentication data), the binding of that key to the quoting
//!    enclave. The rest of that REPORTDATA must be zeros (checked here).
//! 3. The certification data must be a QE report (type 6) carrying a PCK certificate chain
//!    (type 5). The chain is verified here, not by `tdx-quote` (whose `pck` feature pins Intel's
//!    root and so cannot verify to a test root): every certificate signed with ECDSA P-256 and
//!    SHA-256 by the next one (ring), each issuer's subject equal to the issued certificate's
//!    issuer, every certificate above the PCK a CA, and the last one signed by the configured
//!    root — Intel's SGX root CA, or a test-only root.
//! 4. `tdx-quote` checks the QE report's signature with the PCK certificate's key.
//! 5. REPORTDATA and the EAT's nonce must be what was asked for ([`crate::binding`]).
//!
//! **Not checked** — a quote passing here proves only that an Intel-certified platform's quoting
//! enclave signed this TD report:
//!
//! - **TCB status.** Intel's TCB info for the platform (PCS `tcb` by FMSPC) is not fetched or
//!   read: TEE_TCB_SVN and the PCK certificate's CPUSVN/PCESVN are not compared with Intel's TCB
//!   levels, so a platform whose TCB is out of date or affected by a published advisory passes.
//!   The policy's `minimum_tee_tcb_svn` is the only floor.
//! - **Revocation.** No CRL is read (Intel's PCK Platform/Processor CA CRL, the root CA's CRL): a
//!   revoked PCK certificate or CA passes.
//! - **QE identity.** The QE report's MRSIGNER, ISVPRODID, ISVSVN and attributes are not compared
//!   with Intel's QE identity (PCS `qe/identity`): any enclave whose report the PCK signed is
//!   taken as the quoting enclave, whatever its security version.
//! - **Certificate validity periods** (nothing here reads a clock), key usage, certificate
//!   policies, and the PCK certificate's SGX extensions (FMSPC, PCE id, TCB components).
//! - The QE vendor id in the header.
//!
//! Those need Intel's collateral (TCB info, QE identity, CRLs, each signed by Intel's TCB signing
//! key) and a clock; they are to be added on top of this module before TDX evidence is relied on
//! for more than "genuine Intel TDX hardware signed this".

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use sha2::{Digest as _, Sha256};
use tdx_quote::{Quote, QuoteParseError, QuoteVerificationError, Signature, Verifier as _, VerifyingKey};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::Verifier;
use crate::binding::Expected;
use crate::claims::{Claims, Root, TdxClaims};
use crate::evidence::{Evidence, EvidenceKind};
use crate::hexbytes::HexBytes;
use crate::verdict::Failure;

/// Intel's "Intel SGX Root CA", the root of every PCK certificate chain, as Intel publishes it at
/// <https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer>
/// (DER; the same bytes `tdx-quote` 0.0.5 carries as `src/pck/Intel_SGX_Provisioning_Certification_RootCA.cer`
/// and genuine quotes carry at the end of their chain). Valid from 2018-05-21 to 2049-12-31.
pub const INTEL_SGX_ROOT_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
";

/// SHA-256 of the root's DER, as Intel's tools print its fingerprint: a changed byte in the PEM
/// above makes [`TdxVerifier::intel`] fail rather than trust another key.
pub const INTEL_SGX_ROOT_CA_SHA256: &str = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

/// The quote header's length.
pub const HEADER_LEN: usize = 48;
/// A version-4 quote's TD report (TDX 1.0 layout).
pub const V4_BODY_LEN: usize = 584;
/// The bytes a version-4 quote's signature covers: header and TD report.
pub const V4_SIGNED_LEN: usize = HEADER_LEN + V4_BODY_LEN;
/// Where a version-4 quote's signature, attestation key and certification data start.
const V4_SIGNATURE_OFFSET: usize = V4_SIGNED_LEN + 4;
const V4_ATTESTATION_KEY_OFFSET: usize = V4_SIGNATURE_OFFSET + 64;
const V4_CERTIFICATION_DATA_OFFSET: usize = V4_ATTESTATION_KEY_OFFSET + 64;
/// Everything up to the certification data's type and length.
const MIN_QUOTE_LEN: usize = V4_CERTIFICATION_DATA_OFFSET + 6;

/// Header values this module accepts.
const QUOTE_VERSION: u16 = 4;
const ATTESTATION_KEY_ECDSA_P256: u16 = 2;
const TEE_TYPE_TDX: u32 = 0x81;
/// The certification data type of a QE report with its own certification data inside (Intel,
/// "Intel TDX DCAP Quoting Library API", quote format appendix).
const CERTIFICATION_QE_REPORT: i16 = 6;

/// A PCK chain holds the PCK certificate and Intel's Platform or Processor CA, then the root:
/// more is refused before any signature is checked.
const MAX_CHAIN_LEN: usize = 3;

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("the root certificate is not PEM: {0}")]
    Pem(String),
    #[error("the root certificate is not a DER X.509 certificate: {0}")]
    Certificate(String),
    #[error("the built-in Intel SGX root CA has SHA-256 {0}, not the published {INTEL_SGX_ROOT_CA_SHA256}")]
    Fingerprint(String),
    #[error("the root certificate is not a self-signed ECDSA P-256 CA certificate: {0}")]
    NotRoot(&'static str),
}

/// The root a verifier trusts, as the chain check needs it.
#[derive(Debug, Clone)]
struct TrustedRoot {
    kind: Root,
    der: Vec<u8>,
    /// The subject, DER: an issued certificate's issuer must be these bytes.
    subject: Vec<u8>,
    /// The subject, readable, for failures.
    name: String,
    /// The uncompressed P-256 point.
    public_key: Vec<u8>,
}

impl TrustedRoot {
    fn new(kind: Root, der: Vec<u8>) -> Result<Self, RootError> {
        let (_, certificate) =
            X509Certificate::from_der(&der).map_err(|e| RootError::Certificate(e.to_string()))?;
        if certificate.subject().as_raw() != certificate.issuer().as_raw() {
            return Err(RootError::NotRoot("its issuer is not its subject"));
        }
        if !certificate.is_ca() {
            return Err(RootError::NotRoot("it is not a CA certificate"));
        }
        let public_key = p256_public_key(&certificate).ok_or(RootError::NotRoot("its key is not P-256"))?;
        check_signature(&certificate, &public_key)
            .map_err(|_| RootError::NotRoot("its signature does not verify"))?;
        let subject = certificate.subject().as_raw().to_vec();
        let name = certificate.subject().to_string();
        Ok(TrustedRoot {
            kind,
            der,
            subject,
            name,
            public_key,
        })
    }
}

/// The Intel TDX verifier.
#[derive(Debug)]
pub struct TdxVerifier {
    root: TrustedRoot,
}

impl TdxVerifier {
    /// Trusts Intel's SGX root CA ([`INTEL_SGX_ROOT_CA_PEM`]).
    pub fn intel() -> Result<Self, RootError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(INTEL_SGX_ROOT_CA_PEM.as_bytes())
            .map_err(|e| RootError::Pem(e.to_string()))?;
        let sha256 = hex::encode(Sha256::digest(&pem.contents));
        if sha256 != INTEL_SGX_ROOT_CA_SHA256 {
            return Err(RootError::Fingerprint(sha256));
        }
        Ok(TdxVerifier {
            root: TrustedRoot::new(Root::Manufacturer, pem.contents)?,
        })
    }

    /// Trusts only `root_der`, a self-signed ECDSA P-256 CA certificate (tests, development):
    /// claims verified to it say [`Root::TestOnly`].
    pub fn test_only(root_der: Vec<u8>) -> Result<Self, RootError> {
        Ok(TdxVerifier {
            root: TrustedRoot::new(Root::TestOnly, root_der)?,
        })
    }

    /// Verifies TDX evidence: the quote, its PCK chain, and its binding. Never panics, whatever
    /// the bytes.
    pub fn verify(&self, evidence: &Evidence, expected: &Expected) -> Result<TdxClaims, Failure> {
        if evidence.kind != EvidenceKind::Tdx {
            return Err(Failure::new(
                "evidence.platform",
                "TDX",
                evidence.kind.to_string(),
            ));
        }
        let bytes = evidence.report.as_slice();
        check_header(bytes)?;
        let quote = Quote::from_bytes(bytes).map_err(|error| parse_failure(bytes, error))?;

        let Some(qe) = quote.qe_report_certification_data() else {
            let actual = bytes
                .get(V4_CERTIFICATION_DATA_OFFSET..V4_CERTIFICATION_DATA_OFFSET + 2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]).to_string())
                .unwrap_or_default();
            return Err(Failure::new(
                "quote.certification_data",
                format!("type {CERTIFICATION_QE_REPORT} (QE report certification data)"),
                format!("type {actual}"),
            ));
        };
        // SHA-256(attestation key ‖ QE authentication data) ‖ 32 zero bytes: tdx-quote checks
        // the digest, not the padding.
        if qe.qe_report[352..384].iter().any(|byte| *byte != 0) {
            return Err(Failure::new(
                "qe_report.report_data",
                "32 zero bytes after the attestation key's digest",
                hex::encode(&qe.qe_report[352..384]),
            ));
        }
        let chain = quote.pck_cert_chain().map_err(|_| {
            Failure::new(
                "pck.chain",
                "a PCK certificate chain (type 5) in the QE report certification data",
                "none",
            )
        })?;
        let pck = self.verify_chain(&chain)?;
        let pck = VerifyingKey::from_sec1_bytes(&pck).map_err(|_| {
            Failure::new(
                "pck.certificate",
                "an ECDSA P-256 public key",
                "not a point on P-256",
            )
        })?;
        quote.verify_with_pck(&pck).map_err(|error| match error {
            QuoteVerificationError::BadSignature => Failure::new(
                "qe_report.signature",
                "signed by the PCK certificate's key",
                "the signature does not verify",
            ),
            other => Failure::new("qe_report", "QE report certification data", other.to_string()),
        })?;

        let body = &quote.body;
        if body.reportdata != expected.report_data {
            return Err(Failure::new(
                "report_data",
                hex::encode(expected.report_data),
                hex::encode(body.reportdata),
            ));
        }
        if let Some(nonce) = evidence
            .eat_nonce
            .as_ref()
            .filter(|nonce| **nonce != expected.eat_nonce)
        {
            return Err(Failure::new(
                "eat_nonce",
                hex::encode(&expected.eat_nonce),
                hex::encode(nonce),
            ));
        }

        Ok(TdxClaims {
            root: self.root.kind,
            tee_tcb_svn: body.tee_tcb_svn.into(),
            mr_seam: body.mrseam.into(),
            mr_td: body.mrtd.into(),
            rtmr0: body.rtmr0.into(),
            rtmr1: body.rtmr1.into(),
            rtmr2: body.rtmr2.into(),
            rtmr3: body.rtmr3.into(),
            td_attributes: body.tdattributes.into(),
            xfam: body.xfam.into(),
            report_data: HexBytes(body.reportdata.to_vec()),
            // TDATTRIBUTES is little-endian; bit 0 is DEBUG.
            debug: body.tdattributes[0] & 1 != 0,
        })
    }

    /// The PCK chain (PEM, PCK first) to the trusted root; returns the PCK's public key.
    fn verify_chain(&self, chain_pem: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut ders = Vec::new();
        for pem in Pem::iter_from_buffer(chain_pem) {
            let pem = pem.map_err(|e| Failure::new("pck.chain", "PEM certificates", e.to_string()))?;
            if pem.label != "CERTIFICATE" {
                return Err(Failure::new(
                    "pck.chain",
                    "PEM certificates",
                    format!("a PEM block labelled {:?}", pem.label),
                ));
            }
            ders.push(pem.contents);
            if ders.len() > MAX_CHAIN_LEN {
                return Err(Failure::new(
                    "pck.chain",
                    format!("at most {MAX_CHAIN_LEN} certificates (PCK, its CA, the root)"),
                    "more",
                ));
            }
        }
        // The root may come with the chain (Intel's quotes carry it); only the configured one is
        // trusted, so a copy of it is dropped and anything else must be signed by it.
        if ders.last().is_some_and(|last| *last == self.root.der) {
            ders.pop();
        }
        if ders.is_empty() {
            return Err(Failure::new("pck.chain", "a PCK certificate", "none"));
        }
        let mut certificates = Vec::with_capacity(ders.len());
        for (index, der) in ders.iter().enumerate() {
            let (_, certificate) = X509Certificate::from_der(der).map_err(|e| {
                Failure::new(
                    "pck.chain",
                    format!("certificate {index}: DER X.509"),
                    e.to_string(),
                )
            })?;
            certificates.push(certificate);
        }

        for (index, certificate) in certificates.iter().enumerate() {
            let (issuer_subject, issuer_name, issuer_key) = match certificates.get(index + 1) {
                Some(issuer) => {
                    if !issuer.is_ca() {
                        return Err(Failure::new(
                            "pck.chain",
                            format!("{} to be a CA certificate", issuer.subject()),
                            "not a CA",
                        ));
                    }
                    let key = p256_public_key(issuer).ok_or_else(|| {
                        Failure::new(
                            "pck.chain",
                            format!("{} to have an ECDSA P-256 key", issuer.subject()),
                            "another key",
                        )
                    })?;
                    (issuer.subject().as_raw(), issuer.subject().to_string(), key)
                }
                None => (
                    self.root.subject.as_slice(),
                    self.root.name.clone(),
                    self.root.public_key.clone(),
                ),
            };
            if certificate.issuer().as_raw() != issuer_subject {
                let self_issued = certificate.issuer().as_raw() == certificate.subject().as_raw();
                return Err(Failure::new(
                    "pck.chain",
                    format!("{} issued by {issuer_name}", certificate.subject()),
                    if self_issued {
                        format!("another root: {}", certificate.subject())
                    } else {
                        format!("issued by {}", certificate.issuer())
                    },
                ));
            }
            if certificate.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
                return Err(Failure::new(
                    "pck.chain",
                    format!("{} signed with ecdsa-with-SHA256", certificate.subject()),
                    certificate.signature_algorithm.algorithm.to_id_string(),
                ));
            }
            check_signature(certificate, &issuer_key).map_err(|()| {
                Failure::new(
                    "pck.chain",
                    format!("{} signed by {issuer_name}", certificate.subject()),
                    "the signature does not verify",
                )
            })?;
        }

        p256_public_key(&certificates[0])
            .ok_or_else(|| Failure::new("pck.certificate", "an ECDSA P-256 public key", "another key"))
    }
}

impl Verifier for TdxVerifier {
    fn evaluate(&self, evidence: &Evidence, expected: &Expected) -> Result<Claims, Failure> {
        self.verify(evidence, expected).map(Claims::Tdx)
    }
}

/// The header fields `tdx-quote` does not check, or reports only as "cannot parse".
fn check_header(bytes: &[u8]) -> Result<(), Failure> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(Failure::new(
            "quote",
            format!("an Intel TDX quote (at least its {HEADER_LEN}-byte header)"),
            format!("{} bytes", bytes.len()),
        ));
    };
    let version = u16::from_le_bytes([header[0], header[1]]);
    if version != QUOTE_VERSION {
        let actual = if version == 5 {
            "5 (not supported: tdx-quote 0.0.5 checks a version-5 quote's signature over the wrong bytes)"
                .to_owned()
        } else {
            version.to_string()
        };
        return Err(Failure::new("quote.version", QUOTE_VERSION.to_string(), actual));
    }
    let key_type = u16::from_le_bytes([header[2], header[3]]);
    if key_type != ATTESTATION_KEY_ECDSA_P256 {
        return Err(Failure::new(
            "quote.attestation_key_type",
            format!("{ATTESTATION_KEY_ECDSA_P256} (ECDSA P-256)"),
            key_type.to_string(),
        ));
    }
    let tee_type = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if tee_type != TEE_TYPE_TDX {
        return Err(Failure::new(
            "quote.tee_type",
            format!("{TEE_TYPE_TDX:#x} (TDX)"),
            format!("{tee_type:#x}"),
        ));
    }
    // tdx-quote 0.0.5 slices the signed bytes before it checks there are that many, and panics
    // on a shorter input.
    if bytes.len() < MIN_QUOTE_LEN {
        return Err(Failure::new(
            "quote",
            format!("an Intel TDX quote (at least {MIN_QUOTE_LEN} bytes before its certification data)"),
            format!("{} bytes", bytes.len()),
        ));
    }
    Ok(())
}

/// Names what `tdx-quote` refused. Its `Verification` error stands for any of four things, told
/// apart here from the version-4 layout (the header was checked, so the layout is known).
fn parse_failure(bytes: &[u8], error: QuoteParseError) -> Failure {
    match error {
        QuoteParseError::Verification => verification_failure(bytes),
        QuoteParseError::AttestationKeyDoesNotMatch => Failure::new(
            "qe_report.report_data",
            "SHA-256(attestation key ‖ QE authentication data)",
            "another digest: the QE did not certify this attestation key",
        ),
        QuoteParseError::UnknownCertificationDataType => Failure::new(
            "quote.certification_data",
            format!("type {CERTIFICATION_QE_REPORT} (QE report certification data)"),
            "an unknown type",
        ),
        QuoteParseError::UnknownQuoteVersion => {
            Failure::new("quote.version", QUOTE_VERSION.to_string(), "another")
        }
        QuoteParseError::UnsupportedAttestationKeyType => Failure::new(
            "quote.attestation_key_type",
            format!("{ATTESTATION_KEY_ECDSA_P256} (ECDSA P-256)"),
            "another",
        ),
        QuoteParseError::Parse | QuoteParseError::IntConversionError => Failure::new(
            "quote",
            "an Intel TDX quote",
            format!("{} bytes that do not parse as one ({error})", bytes.len()),
        ),
    }
}

fn verification_failure(bytes: &[u8]) -> Failure {
    let field = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or_default();
    let mut point = vec![0x04];
    point.extend_from_slice(field(V4_ATTESTATION_KEY_OFFSET..V4_CERTIFICATION_DATA_OFFSET));
    let Ok(attestation_key) = VerifyingKey::from_sec1_bytes(&point) else {
        return Failure::new(
            "quote.attestation_key",
            "an ECDSA P-256 public key",
            "not a point on P-256",
        );
    };
    let Ok(signature) = Signature::from_slice(field(V4_SIGNATURE_OFFSET..V4_ATTESTATION_KEY_OFFSET)) else {
        return Failure::new(
            "quote.signature",
            "an ECDSA P-256 signature",
            "r or s out of range",
        );
    };
    if attestation_key
        .verify(field(0..V4_SIGNED_LEN), &signature)
        .is_err()
    {
        return Failure::new(
            "quote.signature",
            "header and TD report signed by the quote's attestation key",
            "the signature does not verify",
        );
    }
    // The quote's own signature holds, so what failed to decode is the QE report's.
    Failure::new(
        "qe_report.signature",
        "an ECDSA P-256 signature",
        "r or s out of range",
    )
}

/// The certificate's key when it is an uncompressed ECDSA P-256 point.
fn p256_public_key(certificate: &X509Certificate<'_>) -> Option<Vec<u8>> {
    let spki = certificate.public_key();
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
    let point = &spki.subject_public_key.data;
    (spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && curve == OID_EC_P256
        && point.len() == 65
        && point[0] == 0x04)
        .then(|| point.to_vec())
}

/// The certificate's ECDSA P-256 / SHA-256 signature under `issuer_key`.
fn check_signature(certificate: &X509Certificate<'_>, issuer_key: &[u8]) -> Result<(), ()> {
    if certificate.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(());
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, issuer_key)
        .verify(
            certificate.tbs_certificate.as_ref(),
            &certificate.signature_value.data,
        )
        .map_err(|_| ())
}
