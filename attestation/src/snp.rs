//! AMD SEV-SNP: report → claims.
//!
//! 1. The report is parsed by the `sev` crate (`AttestationReport`, which knows each product's TCB
//!    layout); its signature algorithm must be ECDSA P-384 with SHA-384 and it must be signed by a
//!    VCEK (not a VLEK).
//! 2. The VCEK comes with the evidence (go-sev-guest's certificate chain, as Cocos sends it) or
//!    from a [`VcekCache`] directory; nothing is fetched from the network.
//! 3. The VCEK must chain to a trusted root: AMD's ARK and ASK for the product, built into the
//!    `sev` crate, checked with its RSA-PSS verification (an ARK or ASK sent with the evidence is
//!    never trusted for that); or, only when configured, a test-only ECDSA P-384 root such as the
//!    emulated agent's. A verified VCEK is remembered by its SHA-256, so the chain is checked once
//!    per VCEK, not once per report.
//! 4. The report's signature is checked with the VCEK's key. This is done with ring rather than the
//!    `sev` crate's own check because it is the hot path: ring verifies P-384 at ~0.9× OpenSSL here,
//!    the `sev` crate's pure-Rust backend at ~0.3× (BENCHMARKS.md).
//! 5. The VCEK's TCB extensions must equal the report's REPORTED_TCB and its hardware id the
//!    report's CHIP_ID (unless the chip id is masked), as go-sev-guest's `validateVcekTcb` and
//!    `validateVcekCertificateProductNonspecific` require.
//! 6. REPORT_DATA and the EAT's nonce must be what was asked for ([`crate::binding`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use ring::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use sev::certs::snp::{Certificate, Chain, Verifiable as _, builtin, ca};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::Verifier;
use crate::binding::Expected;
use crate::claims::{Claims, FirmwareVersion, Root, SnpClaims, Tcb};
use crate::evidence::{Evidence, EvidenceKind, SNP_REPORT_LEN, SnpCertificates};
use crate::hexbytes::HexBytes;
use crate::verdict::Failure;

/// The bytes the report's signature covers: 0x000–0x29F.
pub const SIGNED_LEN: usize = 0x2A0;
const SIGNATURE_OFFSET: usize = 0x2A0;
const REPORTED_TCB_OFFSET: usize = 0x180;
/// SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384.
pub const ECDSA_P384_SHA384: u32 = 1;

/// AMD's VCEK extensions (AMD, "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
/// Interface Specification", table "VCEK Certificate Extensions").
mod oid {
    pub const PRODUCT_NAME: &str = "1.3.6.1.4.1.3704.1.2";
    pub const BOOTLOADER: &str = "1.3.6.1.4.1.3704.1.3.1";
    pub const TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
    pub const SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
    pub const MICROCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
    pub const FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
    pub const HARDWARE_ID: &str = "1.3.6.1.4.1.3704.1.4";
}

/// A certificate built into the `sev` crate.
type BuiltinCertificate = fn() -> std::io::Result<Certificate>;

/// A certificate's signed part, signature and public key.
type CertificateParts = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A root the verifier trusts.
#[derive(Debug, Clone)]
struct TrustedRoot {
    /// `Milan`, `Genoa`, `Turin`, or `test` for a test-only root.
    product: String,
    kind: Root,
    ark_der: Vec<u8>,
    /// AMD's ASK for the product; a test root's ASK comes with the evidence.
    ask_der: Option<Vec<u8>>,
}

/// A VCEK whose chain has been verified.
#[derive(Debug, Clone)]
struct VerifiedVcek {
    product: String,
    root: Root,
    /// The uncompressed P-384 point.
    public_key: Vec<u8>,
    tcb: Option<Tcb>,
    hardware_id: Option<Vec<u8>>,
    sha256: [u8; 32],
}

/// A directory of VCEKs for reports that come without one, as AMD's KDS serves them:
/// `<dir>/<chip id, hex>/<REPORTED_TCB, 16 hex digits, little-endian bytes>.der`.
#[derive(Debug, Clone)]
pub struct VcekCache {
    dir: PathBuf,
}

impl VcekCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VcekCache { dir: dir.into() }
    }

    /// The path a VCEK for `chip_id` at `reported_tcb` is looked for at.
    pub fn path(&self, chip_id: &[u8], reported_tcb: &[u8]) -> PathBuf {
        self.dir
            .join(hex::encode(chip_id))
            .join(format!("{}.der", hex::encode(reported_tcb)))
    }

    fn get(&self, chip_id: &[u8], reported_tcb: &[u8]) -> Option<Vec<u8>> {
        std::fs::read(self.path(chip_id, reported_tcb)).ok()
    }
}

/// The SEV-SNP verifier.
#[derive(Debug)]
pub struct SnpVerifier {
    roots: Vec<TrustedRoot>,
    cache: Option<VcekCache>,
    verified: Mutex<HashMap<([u8; 32], usize), VerifiedVcek>>,
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("AMD's built-in {0} certificates do not load: {1}")]
    Builtin(&'static str, String),
    #[error("the test root is not a DER certificate")]
    TestRoot,
}

impl SnpVerifier {
    /// Trusts AMD's ARK and ASK for Milan, Genoa and Turin (built into the `sev` crate).
    pub fn amd() -> Result<Self, RootError> {
        let builtin: [(&'static str, BuiltinCertificate, BuiltinCertificate); 3] = [
            ("Milan", builtin::milan::ark, builtin::milan::ask),
            ("Genoa", builtin::genoa::ark, builtin::genoa::ask),
            ("Turin", builtin::turin::ark, builtin::turin::ask),
        ];
        let mut roots = Vec::new();
        for (product, ark, ask) in builtin {
            let der = |certificate: std::io::Result<Certificate>| {
                certificate
                    .and_then(|certificate| certificate.to_der())
                    .map_err(|e| RootError::Builtin(product, e.to_string()))
            };
            roots.push(TrustedRoot {
                product: product.to_owned(),
                kind: Root::Manufacturer,
                ark_der: der(ark())?,
                ask_der: Some(der(ask())?),
            });
        }
        Ok(SnpVerifier {
            roots,
            cache: None,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Trusts only `ark_der`, a test-only ECDSA P-384 root (the emulated agent's). For insecure
    /// development: claims verified to it say [`Root::TestOnly`].
    pub fn test_only(ark_ders: impl IntoIterator<Item = Vec<u8>>) -> Result<Self, RootError> {
        let mut roots = Vec::new();
        for ark_der in ark_ders {
            X509Certificate::from_der(&ark_der).map_err(|_| RootError::TestRoot)?;
            roots.push(TrustedRoot {
                product: "test".to_owned(),
                kind: Root::TestOnly,
                ark_der,
                ask_der: None,
            });
        }
        Ok(SnpVerifier {
            roots,
            cache: None,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Also looks VCEKs up in `cache` when evidence comes without one.
    pub fn with_cache(mut self, cache: VcekCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Verifies SEV-SNP evidence: the report, its VCEK and chain, and its binding.
    pub fn verify(&self, evidence: &Evidence, expected: &Expected) -> Result<SnpClaims, Failure> {
        if evidence.kind != EvidenceKind::Snp {
            return Err(Failure::new(
                "evidence.platform",
                "SNP",
                evidence.kind.to_string(),
            ));
        }
        let bytes = evidence.report.as_slice();
        if bytes.len() != SNP_REPORT_LEN {
            return Err(Failure::new(
                "report",
                format!("{SNP_REPORT_LEN} bytes"),
                format!("{} bytes", bytes.len()),
            ));
        }
        let report = AttestationReport::from_bytes(bytes)
            .map_err(|e| Failure::new("report", "an SEV-SNP ATTESTATION_REPORT", e.to_string()))?;
        if report.sig_algo != ECDSA_P384_SHA384 {
            return Err(Failure::new(
                "signature_algo",
                "1 (ECDSA P-384 with SHA-384)",
                report.sig_algo.to_string(),
            ));
        }
        if report.key_info.signing_key() != 0 {
            return Err(Failure::new(
                "signing_key",
                "0 (VCEK)",
                format!("{} (VLEK or none: not supported)", report.key_info.signing_key()),
            ));
        }
        let reported_tcb_bytes = &bytes[REPORTED_TCB_OFFSET..REPORTED_TCB_OFFSET + 8];
        let vcek = self.vcek(evidence.snp_certificates.as_ref(), &report, reported_tcb_bytes)?;

        verify_report_signature(bytes, &vcek.public_key)?;

        let reported_tcb = Tcb::from(report.reported_tcb);
        match (&vcek.tcb, vcek.root) {
            (Some(tcb), _) if *tcb != reported_tcb => {
                return Err(Failure::new(
                    "vcek.tcb",
                    reported_tcb.to_string(),
                    tcb.to_string(),
                ));
            }
            (None, Root::Manufacturer) => {
                return Err(Failure::new("vcek.tcb", "the VCEK's TCB extensions", "none"));
            }
            _ => {}
        }
        let chip_id_masked = report.key_info.mask_chip_key();
        if !chip_id_masked {
            match (&vcek.hardware_id, vcek.root) {
                (Some(hardware_id), _) if !chip_id_matches(hardware_id, &report.chip_id) => {
                    return Err(Failure::new(
                        "vcek.hardware_id",
                        hex::encode(report.chip_id),
                        hex::encode(hardware_id),
                    ));
                }
                (None, Root::Manufacturer) => {
                    return Err(Failure::new(
                        "vcek.hardware_id",
                        "the VCEK's hwID extension",
                        "none",
                    ));
                }
                _ => {}
            }
        }

        if report.report_data != expected.report_data {
            return Err(Failure::new(
                "report_data",
                hex::encode(expected.report_data),
                hex::encode(report.report_data),
            ));
        }
        check_eat_nonce(evidence, expected)?;

        Ok(SnpClaims {
            product: vcek.product.clone(),
            root: vcek.root,
            version: report.version,
            guest_svn: report.guest_svn,
            guest_policy: u64::from_le_bytes(bytes[0x08..0x10].try_into().expect("8 bytes")),
            family_id: report.family_id.into(),
            image_id: report.image_id.into(),
            vmpl: report.vmpl,
            current_tcb: report.current_tcb.into(),
            reported_tcb,
            committed_tcb: report.committed_tcb.into(),
            launch_tcb: report.launch_tcb.into(),
            platform_info: u64::from_le_bytes(bytes[0x40..0x48].try_into().expect("8 bytes")),
            author_key_enabled: report.key_info.author_key_en(),
            chip_id_masked,
            report_data: report.report_data.into(),
            measurement: report.measurement.into(),
            host_data: report.host_data.into(),
            id_key_digest: report.id_key_digest.into(),
            author_key_digest: report.author_key_digest.into(),
            report_id: report.report_id.into(),
            report_id_ma: report.report_id_ma.into(),
            chip_id: report.chip_id.into(),
            current_version: FirmwareVersion {
                major: report.current.major,
                minor: report.current.minor,
                build: report.current.build,
            },
            committed_version: FirmwareVersion {
                major: report.committed.major,
                minor: report.committed.minor,
                build: report.committed.build,
            },
            vcek_sha256: HexBytes(vcek.sha256.to_vec()),
        })
    }

    /// The report's VCEK, its chain verified (once per VCEK and root).
    fn vcek(
        &self,
        sent: Option<&SnpCertificates>,
        report: &AttestationReport,
        reported_tcb: &[u8],
    ) -> Result<VerifiedVcek, Failure> {
        let vcek_der = match sent {
            Some(certificates) => certificates.vcek.clone(),
            None => self
                .cache
                .as_ref()
                .and_then(|cache| cache.get(&report.chip_id, reported_tcb))
                .ok_or_else(|| {
                    Failure::new(
                        "vcek",
                        "a VCEK with the evidence or in the certificate cache",
                        "none",
                    )
                })?,
        };
        let sha256: [u8; 32] = Sha256::digest(&vcek_der).into();
        let mut last_failure = None;
        for (index, root) in self.roots.iter().enumerate() {
            if let Some(verified) = self.verified.lock().expect("not poisoned").get(&(sha256, index)) {
                return Ok(verified.clone());
            }
            match verify_chain(root, sent, &vcek_der) {
                Ok(()) => {
                    let verified = read_vcek(root, &vcek_der, sha256)?;
                    self.verified
                        .lock()
                        .expect("not poisoned")
                        .insert((sha256, index), verified.clone());
                    return Ok(verified);
                }
                Err(failure) => last_failure = Some(failure),
            }
        }
        Err(last_failure
            .unwrap_or_else(|| Failure::new("vcek.chain", "a trusted root", "no root is configured")))
    }
}

impl Verifier for SnpVerifier {
    fn evaluate(&self, evidence: &Evidence, expected: &Expected) -> Result<Claims, Failure> {
        self.verify(evidence, expected).map(Claims::SevSnp)
    }
}

fn check_eat_nonce(evidence: &Evidence, expected: &Expected) -> Result<(), Failure> {
    match &evidence.eat_nonce {
        Some(nonce) if *nonce != expected.eat_nonce => Err(Failure::new(
            "eat_nonce",
            hex::encode(&expected.eat_nonce),
            hex::encode(nonce),
        )),
        _ => Ok(()),
    }
}

/// Turin's VCEK hwID is the report's 8-byte chip id (the rest of CHIP_ID is zeros).
fn chip_id_matches(hardware_id: &[u8], chip_id: &[u8; 64]) -> bool {
    if hardware_id.len() == chip_id.len() {
        return hardware_id == chip_id;
    }
    chip_id.starts_with(hardware_id) && chip_id[hardware_id.len()..].iter().all(|byte| *byte == 0)
}

/// ARK self-signed, ARK → ASK, ASK → VCEK.
fn verify_chain(root: &TrustedRoot, sent: Option<&SnpCertificates>, vcek_der: &[u8]) -> Result<(), Failure> {
    match root.kind {
        Root::Manufacturer => {
            let ask_der = root.ask_der.as_deref().expect("AMD roots carry their ASK");
            let load = |name: &str, der: &[u8]| {
                Certificate::from_der(der).map_err(|e| Failure::new(name, "a DER certificate", e.to_string()))
            };
            let chain = Chain {
                ca: ca::Chain {
                    ark: load("ark", &root.ark_der)?,
                    ask: load("ask", ask_der)?,
                },
                vek: load("vcek", vcek_der)?,
            };
            (&chain).verify().map(|_| ()).map_err(|e| {
                Failure::new(
                    "vcek.chain",
                    format!("signed by AMD's {} ASK", root.product),
                    e.to_string(),
                )
            })
        }
        Root::TestOnly => {
            let sent =
                sent.ok_or_else(|| Failure::new("ask", "the test chain's ASK with the evidence", "none"))?;
            if sent.ark != root.ark_der {
                return Err(Failure::new(
                    "vcek.chain",
                    "the configured test-only root",
                    "another root",
                ));
            }
            let (ark_tbs, ark_signature, ark_key) = certificate_parts("ark", &root.ark_der)?;
            let (ask_tbs, ask_signature, ask_key) = certificate_parts("ask", &sent.ask)?;
            let (vcek_tbs, vcek_signature, _) = certificate_parts("vcek", vcek_der)?;
            let check = |name: &str, key: &[u8], tbs: &[u8], signature: &[u8]| {
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, key)
                    .verify(tbs, signature)
                    .map_err(|_| {
                        Failure::new(
                            name,
                            "signed by its issuer (ECDSA P-384)",
                            "the signature does not verify",
                        )
                    })
            };
            check("ark.signature", &ark_key, &ark_tbs, &ark_signature)?;
            check("ask.signature", &ark_key, &ask_tbs, &ask_signature)?;
            check("vcek.signature", &ask_key, &vcek_tbs, &vcek_signature)
        }
    }
}

fn certificate_parts(name: &str, der: &[u8]) -> Result<CertificateParts, Failure> {
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|e| Failure::new(name, "a DER certificate", e.to_string()))?;
    Ok((
        certificate.tbs_certificate.as_ref().to_vec(),
        certificate.signature_value.data.to_vec(),
        certificate.public_key().subject_public_key.data.to_vec(),
    ))
}

/// The VCEK's key and AMD extensions.
fn read_vcek(root: &TrustedRoot, der: &[u8], sha256: [u8; 32]) -> Result<VerifiedVcek, Failure> {
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|e| Failure::new("vcek", "a DER certificate", e.to_string()))?;
    let mut product = None;
    let mut components: HashMap<&'static str, u8> = HashMap::new();
    let mut hardware_id = None;
    for extension in certificate.extensions() {
        let id = extension.oid.to_id_string();
        match id.as_str() {
            oid::PRODUCT_NAME => product = der_ia5(extension.value),
            oid::HARDWARE_ID => hardware_id = der_octets(extension.value),
            oid::BOOTLOADER | oid::TEE | oid::SNP | oid::MICROCODE | oid::FMC => {
                let value = der_small_integer(extension.value).ok_or_else(|| {
                    Failure::new(
                        format!("vcek.extension {id}"),
                        "an integer 0–255",
                        "another value",
                    )
                })?;
                let key = [oid::BOOTLOADER, oid::TEE, oid::SNP, oid::MICROCODE, oid::FMC]
                    .into_iter()
                    .find(|known| *known == id)
                    .expect("matched above");
                components.insert(key, value);
            }
            _ => {}
        }
    }
    let tcb = match (
        components.get(oid::BOOTLOADER),
        components.get(oid::TEE),
        components.get(oid::SNP),
        components.get(oid::MICROCODE),
    ) {
        (Some(&bootloader), Some(&tee), Some(&snp), Some(&microcode)) => Some(Tcb {
            fmc: components.get(oid::FMC).copied(),
            bootloader,
            tee,
            snp,
            microcode,
        }),
        _ => None,
    };
    Ok(VerifiedVcek {
        product: product
            .map(|name| name.split('-').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| root.product.clone()),
        root: root.kind,
        public_key: certificate.public_key().subject_public_key.data.to_vec(),
        tcb,
        hardware_id,
        sha256,
    })
}

/// The report's ECDSA P-384 signature: r and s little-endian in 72-byte fields, of which only the
/// low 48 bytes may be non-zero, followed by reserved zeros.
fn verify_report_signature(report: &[u8], vcek_public_key: &[u8]) -> Result<(), Failure> {
    // The signature field is 512 bytes: r and s take 144, the rest is reserved and must be zero.
    // The signature does not cover them, so unchecked they would let altered evidence verify.
    if report[SIGNATURE_OFFSET + 144..].iter().any(|byte| *byte != 0) {
        return Err(Failure::new(
            "signature",
            "zeros after r and s (reserved)",
            "non-zero reserved bytes",
        ));
    }
    let mut fixed = [0u8; 96];
    for (index, offset) in [SIGNATURE_OFFSET, SIGNATURE_OFFSET + 72].into_iter().enumerate() {
        if report[offset + 48..offset + 72].iter().any(|byte| *byte != 0) {
            return Err(Failure::new(
                "signature",
                "an ECDSA P-384 signature",
                "a scalar longer than 48 bytes",
            ));
        }
        for (i, byte) in report[offset..offset + 48].iter().rev().enumerate() {
            fixed[index * 48 + i] = *byte;
        }
    }
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, vcek_public_key)
        .verify(&report[..SIGNED_LEN], &fixed)
        .map_err(|_| Failure::new("signature", "signed by the VCEK", "the signature does not verify"))
}

/// A DER INTEGER 0–255 (AMD's SPL extensions).
fn der_small_integer(value: &[u8]) -> Option<u8> {
    match value {
        [0x02, 1, byte] if *byte < 0x80 => Some(*byte),
        [0x02, 2, 0, byte] if *byte >= 0x80 => Some(*byte),
        _ => None,
    }
}

/// A DER OCTET STRING's content (AMD's hwID: the chip id) or, as some VCEKs carry it, the raw
/// bytes.
fn der_octets(value: &[u8]) -> Option<Vec<u8>> {
    match value {
        [0x04, length, rest @ ..] if usize::from(*length) == rest.len() => Some(rest.to_vec()),
        _ if value.len() == 64 || value.len() == 8 => Some(value.to_vec()),
        _ => None,
    }
}

/// A DER IA5String's text (AMD's productName).
fn der_ia5(value: &[u8]) -> Option<String> {
    match value {
        [0x16, length, rest @ ..] if usize::from(*length) == rest.len() => {
            String::from_utf8(rest.to_vec()).ok()
        }
        _ => None,
    }
}
