//! Emulated AMD SEV-SNP attestation — **TEST ONLY, NOT AMD, NO HARDWARE PROTECTION**.
//!
//! A report is laid out as the SEV-SNP firmware's `ATTESTATION_REPORT` (AMD SEV-SNP ABI
//! specification, "Attestation Report" table), 1184 bytes, little-endian:
//!
//! | offset  | size | field                         | value here                              |
//! |---------|------|-------------------------------|-----------------------------------------|
//! | 0x000   | 4    | VERSION                       | 3                                       |
//! | 0x004   | 4    | GUEST_SVN                     | 0                                       |
//! | 0x008   | 8    | POLICY                        | 0x30000 (SMT allowed, reserved bit 17)  |
//! | 0x010   | 16   | FAMILY_ID                     | zeros                                   |
//! | 0x020   | 16   | IMAGE_ID                      | zeros                                   |
//! | 0x030   | 4    | VMPL                          | 2 (the real agent's default `AGENT_VMPL`)|
//! | 0x034   | 4    | SIGNATURE_ALGO                | 1 = ECDSA P-384 with SHA-384            |
//! | 0x038   | 8    | CURRENT_TCB                   | [`TCB`]                                 |
//! | 0x040   | 8    | PLATFORM_INFO                 | 1 (SMT enabled)                         |
//! | 0x048   | 4    | AUTHOR_KEY_EN/MASK_CHIP_KEY/SIGNING_KEY | 0 (signed with the VCEK)     |
//! | 0x050   | 64   | REPORT_DATA                   | the 64 bytes asked for                  |
//! | 0x090   | 48   | MEASUREMENT                   | [`FAKE_MEASUREMENT`]                    |
//! | 0x0C0   | 32   | HOST_DATA                     | zeros                                   |
//! | 0x0E0   | 48   | ID_KEY_DIGEST                 | zeros                                   |
//! | 0x110   | 48   | AUTHOR_KEY_DIGEST             | zeros                                   |
//! | 0x140   | 32   | REPORT_ID                     | random                                  |
//! | 0x160   | 32   | REPORT_ID_MA                  | 0xFF… (no migration agent)              |
//! | 0x180   | 8    | REPORTED_TCB                  | [`TCB`]                                 |
//! | 0x188   | 3    | CPUID_FAM_ID/MOD_ID/STEP      | 0x19/0x01/0x01 (Milan)                  |
//! | 0x1A0   | 64   | CHIP_ID                       | [`FAKE_CHIP_ID`]                        |
//! | 0x1E0   | 8    | COMMITTED_TCB                 | [`TCB`]                                 |
//! | 0x1E8   | 3    | CURRENT_BUILD/MINOR/MAJOR     | 21/55/1                                 |
//! | 0x1EC   | 3    | COMMITTED_BUILD/MINOR/MAJOR   | 21/55/1                                 |
//! | 0x1F0   | 8    | LAUNCH_TCB                    | [`TCB`]                                 |
//! | 0x2A0   | 512  | SIGNATURE: R (72, LE), S (72, LE), zeros | over bytes 0x000–0x29F       |
//!
//! It is signed by a certificate chain generated in this process — ARK → ASK → VCEK, all ECDSA P-384,
//! every subject saying "TEST ONLY — NOT AMD" — so the platform's verifier (`prism-attestation`,
//! trusting [`TestChain::ark_pem`] in insecure development mode) checks the signature and the
//! chain, and refuses it against AMD's real roots. (AMD's real
//! ARK and ASK sign with RSA-PSS; only the VCEK's report signature is ECDSA P-384 there too.)
//! Nothing here proves anything about the machine it runs on.
//!
//! # The evidence on the wire
//!
//! The real agent never sends a bare report: its attestation-service wraps the provider's evidence
//! in an EAT ([`crate::eat`]). The emulator plays an SEV-SNP guest without a vTPM — upstream's
//! platform `SNP`, provider `vtpm.NewProvider(false, vmpl)` (`cmd/attestation-service/main.go:163-165`)
//! — so its evidence takes that machine's shape ([`evidence`]):
//!
//! - the start-up `vTPMattestationReport` (`cmd/agent/main.go:280-355`) asks for platform `SNP` with
//!   report data SHA-512 and nonce SHA-256 of the client certificate's PEM file bytes;
//! - an `Attestation` RPC of type 0 (`SNP`) asks with the request's `teeNonce` and `vtpmNonce`,
//!   each zero-padded (`agent/api/grpc/server.go:156-174`);
//! - either way the answer is an EAT with `platform_type` `"SNP"`, `eat_nonce` the 32-byte vTPM
//!   nonce (`cmd/attestation-service/gpu.go:65-71`) and `raw_report` the marshalled go-sev-guest
//!   `Attestation` ([`crate::sevsnp`]): the report's fields and the ARK, ASK and VCEK DER
//!   (`pkg/attestation/vtpm/sev.go:40-85`), the product taken from the report's CPUID bytes.
//!
//! Upstream on a machine without a TEE (NoCC) instead answers the start-up request with a 96-byte
//! fake (report data ‖ nonce) under `platform_type` `"NoCC"`, which nothing can verify. The emulator
//! deliberately plays an SNP machine with a test chain instead, so that the platform's verification
//! path has real, checkable evidence to work on.
//!
//! Differences that remain from a real SNP guest: the chain is the TEST ONLY one above, not AMD's
//! (all ECDSA P-384 where AMD's ARK and ASK are RSA-PSS); the certificate chain's `extras` are
//! empty, as on a host that puts no extra certificates in the extended report; the EAT's public key
//! is written to `test-attestation-chain/eat-key.pem`, which upstream publishes nowhere; and the
//! vTPM, SNP-vTPM, Azure and TDX types fail with this emulator's own error text rather than the
//! exact text of upstream's failing TPM or TDX calls.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384, SigningKey as _,
};

use crate::eat::{self, EatError};
use crate::sevsnp::{self, ReportError};

/// Length of an `ATTESTATION_REPORT`.
pub const REPORT_LEN: usize = 0x4A0;
/// The bytes the signature covers: 0x000–0x29F.
pub const SIGNED_LEN: usize = 0x2A0;
pub const REPORT_DATA_OFFSET: usize = 0x50;
pub const MEASUREMENT_OFFSET: usize = 0x90;
pub const CHIP_ID_OFFSET: usize = 0x1A0;
pub const SIGNATURE_OFFSET: usize = 0x2A0;
/// Report version written (versions 2 and 3 share this layout; 3 fills the CPUID bytes).
pub const REPORT_VERSION: u32 = 3;
/// `SIGNATURE_ALGO` 1: ECDSA P-384 with SHA-384.
pub const SIGNATURE_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// A fixed launch measurement, recognisably fake: "TEST-ONLY-NOT-AMD" repeated.
pub const FAKE_MEASUREMENT: [u8; 48] = *b"TEST-ONLY-NOT-AMD-TEST-ONLY-NOT-AMD-TEST-ONLY-NO";
/// A fixed chip id, recognisably fake.
pub const FAKE_CHIP_ID: [u8; 64] = *b"TEST-ONLY-NOT-AMD-CHIP-ID-TEST-ONLY-NOT-AMD-CHIP-ID-TEST-ONLY-NO";
/// TCB_VERSION: boot loader 3, TEE 0, SNP 8, microcode 115 (a Milan-like, plausible value).
pub const TCB: u64 = u64::from_le_bytes([3, 0, 0, 0, 0, 0, 8, 115]);
/// The organisation of every certificate of the test chain.
pub const TEST_ONLY_ORGANISATION: &str = "TEST ONLY — NOT AMD";

/// The process's test-only ARK → ASK → VCEK chain and the VCEK's signing key.
#[derive(Debug)]
pub struct TestChain {
    pub ark_pem: String,
    pub ask_pem: String,
    pub vcek_pem: String,
    pub ark_der: Vec<u8>,
    pub ask_der: Vec<u8>,
    pub vcek_der: Vec<u8>,
    vcek_key: KeyPair,
}

/// Why evidence could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("cannot make the test attestation chain: {0}")]
    Chain(#[from] rcgen::Error),
    #[error("cannot parse the report: {0}")]
    Report(#[from] ReportError),
    #[error("cannot make the EAT: {0}")]
    Eat(#[from] EatError),
}

static CHAIN: OnceLock<TestChain> = OnceLock::new();
static EAT_KEY: OnceLock<eat::SigningKey> = OnceLock::new();

/// The chain this process signs reports with (made on first use, then the same for its lifetime).
pub fn test_chain() -> Result<&'static TestChain, rcgen::Error> {
    if let Some(chain) = CHAIN.get() {
        return Ok(chain);
    }
    let chain = TestChain::generate()?;
    Ok(CHAIN.get_or_init(|| chain))
}

/// The test chain's root (ARK) in PEM, for verifiers under test.
pub fn test_root_pem() -> Result<&'static str, rcgen::Error> {
    Ok(test_chain()?.ark_pem.as_str())
}

/// The EAT signing key, made on first use and kept for the process's lifetime, as upstream's
/// attestation-service makes one at each start.
pub fn eat_signing_key() -> Result<&'static eat::SigningKey, EatError> {
    if let Some(key) = EAT_KEY.get() {
        return Ok(key);
    }
    let key = eat::SigningKey::generate()?;
    Ok(EAT_KEY.get_or_init(|| key))
}

/// The evidence upstream's attestation-service returns on an SEV-SNP guest for a `SNP` request:
/// an EAT over the marshalled `sevsnp.Attestation` whose report carries `report_data`, with
/// `eat_nonce` = `nonce`.
pub fn evidence(report_data: &[u8; 64], nonce: &[u8; 32]) -> Result<Vec<u8>, EvidenceError> {
    let chain = test_chain()?;
    let attestation = chain.attestation(report_data)?;
    let report = attestation.report.as_ref().expect("made with a report");
    let claims = eat::Claims::snp(report, attestation.encode_to_vec(), nonce.to_vec())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    Ok(eat::encode(claims, eat_signing_key()?, eat::DEFAULT_ISSUER, now)?)
}

fn params(common_name: &str, is_ca: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, TEST_ONLY_ORGANISATION);
    params.distinguished_name.push(DnType::CommonName, common_name);
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    params
}

impl TestChain {
    fn generate() -> Result<Self, rcgen::Error> {
        let ark = CertifiedIssuer::self_signed(
            params("TEST ONLY — NOT AMD ARK", true),
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?,
        )?;
        let ask = CertifiedIssuer::signed_by(
            params("TEST ONLY — NOT AMD ASK", true),
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?,
            &ark,
        )?;
        let vcek_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let vcek = params("TEST ONLY — NOT AMD VCEK", false).signed_by(&vcek_key, &ask)?;
        Ok(TestChain {
            ark_pem: ark.pem(),
            ask_pem: ask.pem(),
            vcek_pem: vcek.pem(),
            ark_der: ark.der().to_vec(),
            ask_der: ask.der().to_vec(),
            vcek_der: vcek.der().to_vec(),
            vcek_key,
        })
    }

    /// What Cocos's SEV-SNP provider returns (`pkg/attestation/vtpm/sev.go:40-85`): a
    /// `sevsnp.Attestation` of a report carrying `report_data`, with this chain's DER certificates
    /// and the product the report's CPUID bytes name (go-sev-guest reads it from the CPU).
    pub fn attestation(&self, report_data: &[u8; 64]) -> Result<sevsnp::Attestation, EvidenceError> {
        let report = sevsnp::Report::from_abi_bytes(&self.report(report_data)?)?;
        let product = sevsnp::sev_product_from_cpuid1_eax(report.cpuid1eax_fms);
        Ok(sevsnp::Attestation {
            report: Some(report),
            certificate_chain: Some(sevsnp::CertificateChain {
                vcek_cert: self.vcek_der.clone(),
                ask_cert: self.ask_der.clone(),
                ark_cert: self.ark_der.clone(),
                ..sevsnp::CertificateChain::default()
            }),
            product: Some(product),
        })
    }

    /// An `ATTESTATION_REPORT` carrying `report_data`, signed by the VCEK.
    pub fn report(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, rcgen::Error> {
        let mut report = vec![0u8; REPORT_LEN];
        let mut put = |offset: usize, bytes: &[u8]| {
            report[offset..offset + bytes.len()].copy_from_slice(bytes);
        };
        put(0x000, &REPORT_VERSION.to_le_bytes());
        put(0x008, &0x3_0000u64.to_le_bytes());
        put(0x030, &2u32.to_le_bytes());
        put(0x034, &SIGNATURE_ALGO_ECDSA_P384_SHA384.to_le_bytes());
        put(0x038, &TCB.to_le_bytes());
        put(0x040, &1u64.to_le_bytes());
        put(REPORT_DATA_OFFSET, report_data);
        put(MEASUREMENT_OFFSET, &FAKE_MEASUREMENT);
        let mut report_id = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut report_id)
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        put(0x140, &report_id);
        put(0x160, &[0xFF; 32]);
        put(0x180, &TCB.to_le_bytes());
        put(0x188, &[0x19, 0x01, 0x01]);
        put(CHIP_ID_OFFSET, &FAKE_CHIP_ID);
        put(0x1E0, &TCB.to_le_bytes());
        put(0x1E8, &[21, 55, 1]);
        put(0x1EC, &[21, 55, 1]);
        put(0x1F0, &TCB.to_le_bytes());

        let der = self.vcek_key.sign(&report[..SIGNED_LEN])?;
        let (r, s) = ecdsa_der_to_scalars(&der).ok_or(rcgen::Error::RingUnspecified)?;
        // The firmware writes each scalar little-endian in a 72-byte field.
        let mut put_scalar = |offset: usize, big_endian: &[u8]| {
            for (i, byte) in big_endian.iter().rev().enumerate() {
                report[offset + i] = *byte;
            }
        };
        put_scalar(SIGNATURE_OFFSET, &r);
        put_scalar(SIGNATURE_OFFSET + 72, &s);
        Ok(report)
    }
}

/// r and s (big-endian, no leading zeros) of a DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
fn ecdsa_der_to_scalars(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    fn length(bytes: &[u8]) -> Option<(usize, &[u8])> {
        let (&first, rest) = bytes.split_first()?;
        if first < 0x80 {
            return Some((first as usize, rest));
        }
        let count = (first & 0x7F) as usize;
        if count == 0 || count > 2 || rest.len() < count {
            return None;
        }
        let value = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        Some((value, &rest[count..]))
    }
    fn integer(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
        let (&tag, rest) = bytes.split_first()?;
        if tag != 0x02 {
            return None;
        }
        let (len, rest) = length(rest)?;
        let (value, rest) = (rest.get(..len)?, rest.get(len..)?);
        let trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
        Some((trimmed, rest))
    }
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (len, rest) = length(rest)?;
    let body = rest.get(..len)?;
    let (r, body) = integer(body)?;
    let (s, _) = integer(body)?;
    (r.len() <= 72 && s.len() <= 72).then_some((r, s))
}
