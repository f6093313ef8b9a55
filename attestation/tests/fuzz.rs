//! Deterministic mutation fuzzing of everything that reads untrusted bytes: `Evidence::decode`,
//! `Appraiser::appraise` on every platform in both modes, and `Policy::from_json`.
//!
//! Seeds: AMD's genuine Milan report, bare and in a Cocos EAT with its VCEK; a Cocos EAT around a
//! go-sev-guest `Attestation` of a report signed by a test-only chain; a NoCC EAT; random bytes;
//! and the JSON of a policy that sets every field. Each input stacks one to three mutations (bit
//! flips, byte overwrites, truncations, insertions, splices from another seed). An EAT is also
//! mutated one layer down — the `Attestation` protobuf, or one field of its report — and signed
//! again, so that the mutation reaches the verifier instead of stopping at the CBOR decoder.
//!
//! Properties, checked on every input and collected, so that one run reports every kind of
//! violation with the iteration and mutation that showed it:
//! - nothing panics;
//! - a refusal names at least one failure, an acceptance none;
//! - only SEV-SNP evidence verified to AMD's root is `Verified`; only a machine without a TEE in
//!   insecure development mode is `AcceptedInsecure`;
//! - a mutated input is never accepted unless what it attests is the seed's: for a bare report, its
//!   bytes; for an EAT, the report inside (an EAT's envelope is signed by no key the verifier
//!   knows: upstream conveys none, so a changed envelope around the same report is accepted, and
//!   counted).
//!
//! The mutations — which, where, how long — are fixed by the seeds below. The bytes of the test
//! chain and of the EATs' COSE signatures are new on each run, and so are splices taken from them,
//! so counts vary a little between runs; a violation is reported with its iteration, its mutation
//! and the offsets at which the input and the report it attests differ from the seed's.

mod common;

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use prism_attestation::binding::{Expected, Nonce};
use prism_attestation::claims::{Claims, Root, Tcb, TdxClaims};
use prism_attestation::eat;
use prism_attestation::evidence::{Evidence, EvidenceError, EvidenceKind, MAX_EVIDENCE_LEN, SNP_REPORT_LEN};
use prism_attestation::none::NoneVerifier;
use prism_attestation::policy::{GuestPolicyRule, PlatformInfoRule, SnpPolicy, TdxPolicy, VersionFloor};
use prism_attestation::sevsnp::{
    self, Attestation, CertificateChain, SevProduct, SevProductName, UInt32Value,
};
use prism_attestation::snp::{SnpVerifier, VcekCache};
use prism_attestation::verdict::INSECURE_WARNING;
use prism_attestation::{Appraiser, Hex, HexBytes, Mode, Outcome, Platform, Policy, Verdict};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

/// When the EATs were issued: nothing checks an EAT's time, so any fixed instant does.
const ISSUED_AT: i64 = 1_750_000_000;
/// The nonce the EAT seeds were asked for (32 bytes, as the agent's vTPM nonce).
const EAT_NONCE: [u8; 32] = [0x5A; 32];
/// The CBOR tag of a COSE_Sign1 (18) as a tagged item's first byte.
const COSE_SIGN1: u8 = 0xD2;
/// The report's signature: r and s in 72-byte fields, then bytes AMD's ABI reserves.
const SIGNATURE: usize = 0x2A0;
const AFTER_R_AND_S: usize = SIGNATURE + 2 * 72;

/// A foreign VCEK (the test chain's, or a mutated one) costs ~50 ms against AMD's roots in an
/// unoptimised build — RSA-4096 ARK and ASK signatures for each of Milan, Genoa and Turin — and a
/// refusal is not remembered, so only one in this many such inputs is appraised on `SevSnp`. Every
/// other appraisal runs on every input.
const FOREIGN_VCEK_SAMPLE: usize = 64;

const MILAN: &str = "the genuine Milan report";
const MILAN_EAT: &str = "a Cocos EAT of the genuine Milan report";
const TEST_CHAIN_EAT: &str = "a Cocos EAT of a test-chain report";
const NOCC_EAT: &str = "a NoCC EAT";
const RANDOM: &str = "random bytes";

/// The appraisers every input goes through, one per mode: AMD's roots, with the Milan VCEK in a
/// certificate cache so that the bare report reaches its signature check, and the test chain's ARK
/// as the one root of machines without a TEE.
struct Appraisers {
    secure: Appraiser,
    development: Appraiser,
    _cache: tempfile::TempDir,
}

impl Appraisers {
    fn new(test_ark: &[u8]) -> Self {
        let cache = tempfile::tempdir().unwrap();
        let report = milan_report();
        let vcek_cache = VcekCache::new(cache.path());
        let path = vcek_cache.path(&report[0x1A0..0x1E0], &report[0x180..0x188]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, MILAN_VCEK).unwrap();
        let appraiser = |mode| {
            Appraiser::new(
                mode,
                SnpVerifier::amd().unwrap().with_cache(vcek_cache.clone()),
                NoneVerifier::new([test_ark.to_vec()]).unwrap(),
            )
        };
        Appraisers {
            secure: appraiser(Mode::Secure),
            development: appraiser(Mode::InsecureDevelopment),
            _cache: cache,
        }
    }

    fn get(&self, mode: Mode) -> &Appraiser {
        match mode {
            Mode::Secure => &self.secure,
            Mode::InsecureDevelopment => &self.development,
        }
    }
}

/// An EAT seed taken apart, to be mutated one layer down and signed again.
struct EatParts {
    /// The claims as first signed, `raw_report` included.
    claims: eat::Claims,
    /// SEV-SNP: the go-sev-guest `Attestation` in `raw_report`.
    attestation: Option<Attestation>,
    key: eat::SigningKey,
}

impl EatParts {
    fn sign(&self, raw_report: Vec<u8>) -> Vec<u8> {
        let claims = eat::Claims {
            raw_report,
            ..self.claims.clone()
        };
        eat::encode(claims, &self.key, eat::DEFAULT_ISSUER, ISSUED_AT).expect("the claims sign")
    }
}

/// Where a seed's inputs come from.
enum Source {
    Bare,
    Eat(Box<EatParts>),
    Random,
}

/// An input the fuzzer starts from.
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    /// What the request asked the evidence to be bound to.
    expected: Expected,
    /// The report the seed attests: an SEV-SNP report, or NoCC's 96 bytes; empty for none.
    report: Vec<u8>,
    /// The platform on which the unmutated seed is accepted.
    accepted_on: Option<Platform>,
    source: Source,
}

fn fresh_request() -> Expected {
    Expected::fresh(&Nonce(EAT_NONCE), b"agent key")
}

/// A Cocos EAT of `report` in a go-sev-guest `Attestation`, as the real agent sends SEV-SNP
/// evidence.
fn snp_eat(report: &[u8], certificates: CertificateChain) -> (Vec<u8>, EatParts) {
    let proto = sevsnp::Report::from_abi_bytes(report).expect("the report converts");
    assert_eq!(
        proto.to_abi_bytes().unwrap(),
        report,
        "the conversion round-trips"
    );
    let attestation = Attestation {
        report: Some(proto.clone()),
        certificate_chain: Some(certificates),
        product: Some(SevProduct {
            name: SevProductName::Milan as i32,
            stepping: 0,
            machine_stepping: Some(UInt32Value { value: 1 }),
        }),
    };
    let claims = eat::Claims::snp(&proto, attestation.encode_to_vec(), EAT_NONCE.to_vec()).unwrap();
    let parts = EatParts {
        claims,
        attestation: Some(attestation),
        key: eat::SigningKey::generate().unwrap(),
    };
    (parts.sign(parts.claims.raw_report.clone()), parts)
}

fn seeds(chain: &TestChain) -> Vec<Seed> {
    let milan = milan_report();

    let mut milan_eat_expected = expected_for(&milan);
    milan_eat_expected.eat_nonce = EAT_NONCE.to_vec();
    let (milan_eat, milan_eat_parts) = snp_eat(
        &milan,
        CertificateChain {
            vcek_cert: MILAN_VCEK.to_vec(),
            ..CertificateChain::default()
        },
    );

    let fresh = fresh_request();
    let mut test_report = report_template(&fresh.report_data);
    chain.sign(&mut test_report);
    let (test_eat, test_eat_parts) = snp_eat(
        &test_report,
        CertificateChain {
            vcek_cert: chain.vcek_der.clone(),
            ask_cert: chain.ask_der.clone(),
            ark_cert: chain.ark_der.clone(),
            ..CertificateChain::default()
        },
    );

    // Upstream's NoCC report: the report data, then the nonce.
    let mut nocc_report = fresh.report_data.to_vec();
    nocc_report.extend_from_slice(&EAT_NONCE);
    let nocc_parts = EatParts {
        claims: eat::Claims {
            nonce: Some(EAT_NONCE.to_vec()),
            platform_type: eat::PLATFORM_NOCC.to_owned(),
            raw_report: nocc_report.clone(),
            ..eat::Claims::default()
        },
        attestation: None,
        key: eat::SigningKey::generate().unwrap(),
    };

    vec![
        Seed {
            name: MILAN,
            bytes: milan.clone(),
            expected: expected_for(&milan),
            report: milan.clone(),
            accepted_on: Some(Platform::SevSnp),
            source: Source::Bare,
        },
        Seed {
            name: MILAN_EAT,
            bytes: milan_eat,
            expected: milan_eat_expected,
            report: milan,
            accepted_on: Some(Platform::SevSnp),
            source: Source::Eat(Box::new(milan_eat_parts)),
        },
        Seed {
            name: TEST_CHAIN_EAT,
            bytes: test_eat,
            expected: fresh.clone(),
            report: test_report,
            accepted_on: Some(Platform::None),
            source: Source::Eat(Box::new(test_eat_parts)),
        },
        Seed {
            name: NOCC_EAT,
            bytes: nocc_parts.sign(nocc_report.clone()),
            expected: fresh.clone(),
            report: nocc_report,
            accepted_on: Some(Platform::None),
            source: Source::Eat(Box::new(nocc_parts)),
        },
        Seed {
            name: RANDOM,
            bytes: Vec::new(),
            expected: fresh,
            report: Vec::new(),
            accepted_on: None,
            source: Source::Random,
        },
    ]
}

/// Bytes with a meaning to the decoders: CBOR's COSE_Sign1 tag, heads with 8-byte lengths and
/// counts, null and the empty byte string; the limits of a byte and a protobuf varint's
/// continuation bit.
const INTERESTING_BYTES: [u8; 12] = [
    0x00, 0x01, 0x7F, 0x80, 0xFF, 0xD2, 0x5B, 0x9B, 0xBB, 0xF6, 0x40, 0x18,
];

fn random_byte(rng: &mut Rng) -> u8 {
    // xorshift64*'s high bits are its best.
    (rng.next() >> 56) as u8
}

/// Applies one mutation to `bytes` and says what it did.
fn mutate_once(rng: &mut Rng, bytes: &mut Vec<u8>, donors: &[&[u8]]) -> String {
    let kind = if bytes.is_empty() {
        7 + rng.below(3)
    } else {
        rng.below(10)
    };
    match kind {
        0..=2 => {
            let at = rng.below(bytes.len());
            let bit = rng.below(8);
            bytes[at] ^= 1 << bit;
            format!("flip bit {bit} at {at:#x}")
        }
        3..=5 => {
            let at = rng.below(bytes.len());
            let count = (1 + rng.below(4)).min(bytes.len() - at);
            for byte in &mut bytes[at..at + count] {
                *byte = if rng.below(2) == 0 {
                    INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
                } else {
                    random_byte(rng)
                };
            }
            format!("overwrite {count} bytes at {at:#x}")
        }
        6 => {
            let len = rng.below(bytes.len());
            bytes.truncate(len);
            format!("truncate to {len} bytes")
        }
        7 => {
            let count = 1 + rng.below(64);
            let at = if rng.below(2) == 0 {
                bytes.len()
            } else {
                rng.below(bytes.len() + 1)
            };
            let zeros = rng.below(2) == 0;
            let chunk: Vec<u8> = (0..count)
                .map(|_| if zeros { 0 } else { random_byte(rng) })
                .collect();
            bytes.splice(at..at, chunk);
            format!("insert {count} bytes at {at:#x}")
        }
        _ => {
            let donor = donors[rng.below(donors.len())];
            let from = rng.below(donor.len());
            let count = 1 + rng.below((donor.len() - from).min(256));
            let chunk = donor[from..from + count].iter().copied();
            let at = rng.below(bytes.len() + 1);
            if rng.below(2) == 0 {
                let end = (at + count).min(bytes.len());
                bytes.splice(at..end, chunk);
                format!("splice {count} donor bytes over {at:#x}")
            } else {
                bytes.splice(at..at, chunk);
                format!("splice {count} donor bytes in at {at:#x}")
            }
        }
    }
}

/// Applies one to three mutations, mostly one, so that most inputs are near the seed.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, donors: &[&[u8]], log: &mut Vec<String>) {
    let count = [1, 1, 1, 1, 2, 2, 3][rng.below(7)];
    for _ in 0..count {
        log.push(mutate_once(rng, bytes, donors));
    }
}

fn boundary_number(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => 0,
        1 => 1,
        2 => 0xFF,
        3 => 0x100,
        4 => u64::MAX,
        _ => rng.next(),
    }
}

/// Sets one field of a go-sev-guest report to a value at or past its limits, or changes one bit of
/// it, and says which.
fn mutate_report_field(rng: &mut Rng, report: &mut sevsnp::Report) -> String {
    match rng.below(10) {
        0 => {
            report.version = boundary_number(rng) as u32;
            format!("version = {:#x}", report.version)
        }
        1 => {
            let bit = rng.below(64);
            report.policy ^= 1 << bit;
            format!("policy bit {bit} flipped")
        }
        2 => {
            report.signer_info = boundary_number(rng) as u32;
            format!("signer_info = {:#x}", report.signer_info)
        }
        3 => {
            report.signature_algo = boundary_number(rng) as u32;
            format!("signature_algo = {:#x}", report.signature_algo)
        }
        4 => {
            report.vmpl = boundary_number(rng) as u32;
            format!("vmpl = {:#x}", report.vmpl)
        }
        5 => {
            let value = boundary_number(rng) as u32;
            let (name, field) = match rng.below(4) {
                0 => ("current_build", &mut report.current_build),
                1 => ("current_major", &mut report.current_major),
                2 => ("committed_minor", &mut report.committed_minor),
                _ => ("cpuid1eax_fms", &mut report.cpuid1eax_fms),
            };
            *field = value;
            format!("{name} = {value:#x}")
        }
        6 => {
            let bit = rng.below(64);
            let (name, field) = match rng.below(4) {
                0 => ("current_tcb", &mut report.current_tcb),
                1 => ("reported_tcb", &mut report.reported_tcb),
                2 => ("committed_tcb", &mut report.committed_tcb),
                _ => ("launch_tcb", &mut report.launch_tcb),
            };
            *field ^= 1 << bit;
            format!("{name} bit {bit} flipped")
        }
        7 => {
            let (name, field) = match rng.below(5) {
                0 => ("report_data", &mut report.report_data),
                1 => ("measurement", &mut report.measurement),
                2 => ("chip_id", &mut report.chip_id),
                3 => ("family_id", &mut report.family_id),
                _ => ("signature", &mut report.signature),
            };
            let len = match rng.below(3) {
                0 => 0,
                1 => field.len() + 1,
                _ => field.len().saturating_sub(1),
            };
            field.resize(len, 0);
            format!("{name} resized to {len} bytes")
        }
        _ => {
            // The signature field is the report's 512 bytes from 0x2A0: r, s and reserved bytes.
            let at = rng.below(report.signature.len().max(1));
            if let Some(byte) = report.signature.get_mut(at) {
                *byte ^= 1 << rng.below(8);
            }
            format!(
                "signature byte {at:#x} (report offset {:#x}) changed",
                SIGNATURE + at
            )
        }
    }
}

/// Random bytes shaped to reach past the first checks now and then: a report's length, the
/// COSE_Sign1 tag, a plausible report version and signature algorithm.
fn random_input(rng: &mut Rng, log: &mut Vec<String>) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => SNP_REPORT_LEN,
        1 => rng.below(64),
        _ => rng.below(4096),
    };
    let mut bytes: Vec<u8> = (0..len).map(|_| random_byte(rng)).collect();
    log.push(format!("{len} random bytes"));
    if !bytes.is_empty() && rng.below(3) == 0 {
        bytes[0] = COSE_SIGN1;
        log.push("led by the COSE_Sign1 tag".to_owned());
    } else if len == SNP_REPORT_LEN && rng.below(2) == 0 {
        bytes[0x00..0x04].copy_from_slice(&2u32.to_le_bytes());
        bytes[0x08..0x10].copy_from_slice(&0x3_0000u64.to_le_bytes());
        bytes[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
        bytes[0x48..0x50].fill(0);
        log.push("with version 2, policy 0x30000, signature algorithm 1, VCEK".to_owned());
    }
    bytes
}

/// A mutated input from `seed`: its bytes mutated or, for an EAT, one layer down and signed again.
fn mutated_input(rng: &mut Rng, seed: &Seed, donors: &[&[u8]], log: &mut Vec<String>) -> Vec<u8> {
    let parts = match &seed.source {
        Source::Random => return random_input(rng, log),
        Source::Eat(parts) => parts,
        Source::Bare => {
            let mut bytes = seed.bytes.clone();
            mutate(rng, &mut bytes, donors, log);
            return bytes;
        }
    };
    match (rng.below(10), &parts.attestation) {
        (4..=6, _) => {
            log.push("raw_report:".to_owned());
            let mut raw_report = parts.claims.raw_report.clone();
            mutate(rng, &mut raw_report, donors, log);
            parts.sign(raw_report)
        }
        (7..=9, Some(attestation)) => {
            let mut attestation = attestation.clone();
            let report = attestation.report.as_mut().expect("the seed has a report");
            log.push(format!("report field: {}", mutate_report_field(rng, report)));
            parts.sign(attestation.encode_to_vec())
        }
        _ => {
            log.push("token:".to_owned());
            let mut bytes = seed.bytes.clone();
            mutate(rng, &mut bytes, donors, log);
            bytes
        }
    }
}

/// `input`'s length and the first offsets at which it differs from `original`.
fn difference(original: &[u8], input: &[u8]) -> String {
    let differing: Vec<usize> = original
        .iter()
        .zip(input)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(offset, _)| offset)
        .collect();
    let shown: Vec<String> = differing
        .iter()
        .take(4)
        .map(|offset| format!("{offset:#x}"))
        .collect();
    format!(
        "{} bytes (seed's: {}), differing at [{}{}]",
        input.len(),
        original.len(),
        shown.join(", "),
        if differing.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    )
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Counts and violations of one fuzzing run.
#[derive(Default)]
struct Findings {
    inputs: usize,
    /// Mutated inputs that came out equal to their seed.
    unchanged: usize,
    appraisals: usize,
    /// Appraisals on `SevSnp` left out by [`FOREIGN_VCEK_SAMPLE`].
    foreign_vcek_skipped: usize,
    foreign_vcek_seen: usize,
    /// Acceptances of inputs equal to their seed, and of changed ones.
    accepted_unchanged: usize,
    accepted_changed: usize,
    /// Accepted changed inputs whose attested report is the seed's: a changed EAT envelope.
    accepted_envelope_changes: usize,
    /// Per platform and mode: the outcome, and for a refusal its first failure's field — how deep
    /// the inputs went.
    outcomes: BTreeMap<String, usize>,
    /// Violated properties, with how many inputs violated each and the first few of them.
    violations: BTreeMap<&'static str, (usize, Vec<String>)>,
}

impl Findings {
    fn violation(&mut self, property: &'static str, detail: impl FnOnce() -> String) {
        let (count, examples) = self.violations.entry(property).or_default();
        *count += 1;
        if examples.len() < 3 {
            examples.push(detail());
        }
    }

    fn print(&self, seed: &str, elapsed: Duration) {
        println!(
            "{seed}: {} inputs ({} unchanged by their mutations), {} appraisals ({} on SevSnp left out: foreign VCEK); accepted: {} unchanged, {} changed ({} of them only in the EAT's envelope); in {:.2} s",
            self.inputs,
            self.unchanged,
            self.appraisals,
            self.foreign_vcek_skipped,
            self.accepted_unchanged,
            self.accepted_changed,
            self.accepted_envelope_changes,
            elapsed.as_secs_f64()
        );
        for (outcome, count) in &self.outcomes {
            println!("  {count:>6}  {outcome}");
        }
    }

    fn assert_none(&self, seed: &str) {
        if self.violations.is_empty() {
            return;
        }
        let mut message = format!("{seed}: properties violated\n");
        for (property, (count, examples)) in &self.violations {
            message += &format!("- {property}: {count} times, first:\n");
            for example in examples {
                message += &format!("    {example}\n");
            }
        }
        panic!("{message}");
    }
}

/// The platforms and modes each input is appraised in: `SevSnp` and `Tdx` in one mode, alternating
/// between iterations (the mode changes nothing on them but is an input all the same), and
/// `None`, where the mode decides, in both.
fn appraisals(iteration: usize) -> [(Platform, Mode); 4] {
    let mode = if iteration.is_multiple_of(2) {
        Mode::Secure
    } else {
        Mode::InsecureDevelopment
    };
    [
        (Platform::SevSnp, mode),
        (Platform::Tdx, mode),
        (Platform::None, Mode::Secure),
        (Platform::None, Mode::InsecureDevelopment),
    ]
}

struct Corpus {
    chain: TestChain,
    appraisers: Appraisers,
    seeds: Vec<Seed>,
}

impl Corpus {
    fn new() -> Self {
        let chain = TestChain::new(Some([3, 0, 8, 115]), Some([0xC1; 64]));
        let appraisers = Appraisers::new(&chain.ark_der);
        let seeds = seeds(&chain);
        Corpus {
            chain,
            appraisers,
            seeds,
        }
    }

    fn seed(&self, name: &str) -> &Seed {
        self.seeds
            .iter()
            .find(|seed| seed.name == name)
            .expect("a known seed")
    }

    /// What splices take bytes from: every seed and certificate.
    fn donors(&self) -> Vec<&[u8]> {
        let mut donors: Vec<&[u8]> = self
            .seeds
            .iter()
            .map(|seed| seed.bytes.as_slice())
            .filter(|bytes| !bytes.is_empty())
            .collect();
        donors.extend([
            MILAN_VCEK,
            self.chain.vcek_der.as_slice(),
            self.chain.ark_der.as_slice(),
        ]);
        donors
    }

    fn appraise(&self, seed: &Seed, platform: Platform, mode: Mode, input: &[u8]) -> Verdict {
        self.appraisers
            .get(mode)
            .appraise(platform, input, &seed.expected, &Policy::default())
    }

    /// The unmutated seed's outcome in each platform and mode; it must be accepted where it is
    /// meant to be, or the mutations would only exercise refusals.
    fn seed_outcomes(&self, seed: &Seed) -> Vec<(Platform, Mode, Outcome)> {
        let mut outcomes = Vec::new();
        for platform in [Platform::SevSnp, Platform::Tdx, Platform::None] {
            for mode in [Mode::Secure, Mode::InsecureDevelopment] {
                let verdict = self.appraise(seed, platform, mode, &seed.bytes);
                let meant = match seed.accepted_on {
                    Some(Platform::SevSnp) if platform == Platform::SevSnp => Some(Outcome::Verified),
                    Some(Platform::None)
                        if platform == Platform::None && mode == Mode::InsecureDevelopment =>
                    {
                        Some(Outcome::AcceptedInsecure)
                    }
                    _ => None,
                };
                if let Some(meant) = meant {
                    assert_eq!(
                        verdict.outcome, meant,
                        "{}: the unmutated seed on {platform} in {mode:?}: {:?}",
                        seed.name, verdict.failures
                    );
                }
                outcomes.push((platform, mode, verdict.outcome));
            }
        }
        outcomes
    }

    fn fuzz(&self, name: &str, iterations: usize, rng_seed: u64) -> Findings {
        let seed = self.seed(name);
        let seed_outcomes = self.seed_outcomes(seed);
        let donors = self.donors();
        let mut rng = Rng(rng_seed);
        let mut findings = Findings::default();
        let started = Instant::now();
        for iteration in 0..iterations {
            let mut log = Vec::new();
            let input = mutated_input(&mut rng, seed, &donors, &mut log);
            let mutation = format!("iteration {iteration}: {}", log.join(" "));
            self.check(seed, &seed_outcomes, iteration, &input, &mutation, &mut findings);
        }
        findings.print(seed.name, started.elapsed());
        findings
    }

    /// Decodes and appraises one input, checking every property.
    fn check(
        &self,
        seed: &Seed,
        seed_outcomes: &[(Platform, Mode, Outcome)],
        iteration: usize,
        input: &[u8],
        mutation: &str,
        findings: &mut Findings,
    ) {
        findings.inputs += 1;
        let unchanged = seed.accepted_on.is_some() && input == seed.bytes;
        if unchanged {
            findings.unchanged += 1;
        }
        let what = || format!("{mutation} → {}", difference(&seed.bytes, input));

        let decoded = match catch_unwind(AssertUnwindSafe(|| Evidence::decode(input))) {
            Ok(decoded) => decoded,
            Err(panic) => {
                findings.violation("Evidence::decode never panics", || {
                    format!("{}: {}", what(), panic_message(&*panic))
                });
                return;
            }
        };
        check_decoded(input, &decoded, findings, &what);
        let decoded = decoded.ok();

        let foreign_vcek = decoded
            .as_ref()
            .and_then(|evidence| evidence.snp_certificates.as_ref())
            .is_some_and(|certificates| certificates.vcek != MILAN_VCEK);
        if foreign_vcek {
            findings.foreign_vcek_seen += 1;
        }
        for (platform, mode) in appraisals(iteration) {
            if platform == Platform::SevSnp
                && foreign_vcek
                && findings.foreign_vcek_seen % FOREIGN_VCEK_SAMPLE != 1
            {
                findings.foreign_vcek_skipped += 1;
                continue;
            }
            findings.appraisals += 1;
            let verdict = match catch_unwind(AssertUnwindSafe(|| self.appraise(seed, platform, mode, input)))
            {
                Ok(verdict) => verdict,
                Err(panic) => {
                    findings.violation("Appraiser::appraise never panics", || {
                        format!("{platform} in {mode:?}, {}: {}", what(), panic_message(&*panic))
                    });
                    continue;
                }
            };
            let context = || format!("{platform} in {mode:?}, {}", what());
            check_verdict(
                seed,
                platform,
                mode,
                input,
                decoded.as_ref(),
                &verdict,
                findings,
                &context,
            );
            if unchanged {
                let seed_outcome = seed_outcomes
                    .iter()
                    .find(|(p, m, _)| *p == platform && *m == mode)
                    .map(|(.., outcome)| *outcome);
                if seed_outcome != Some(verdict.outcome) {
                    findings.violation("the same bytes get the same verdict", || {
                        format!("{}: {:?}, the seed {seed_outcome:?}", context(), verdict.outcome)
                    });
                }
            }
            let first = verdict
                .reason()
                .map(|failure| format!(" at {}", failure.field))
                .unwrap_or_default();
            *findings
                .outcomes
                .entry(format!("{platform} {mode:?}: {:?}{first}", verdict.outcome))
                .or_default() += 1;
        }
    }
}

fn check_decoded(
    input: &[u8],
    decoded: &Result<Evidence, EvidenceError>,
    findings: &mut Findings,
    what: &dyn Fn() -> String,
) {
    if input.len() > MAX_EVIDENCE_LEN && !matches!(decoded, Err(EvidenceError::TooLarge(_))) {
        findings.violation("evidence over MAX_EVIDENCE_LEN is refused as too large", what);
    }
    if input.len() <= MAX_EVIDENCE_LEN
        && input.first() != Some(&COSE_SIGN1)
        && decoded.is_ok() != (input.len() == SNP_REPORT_LEN)
    {
        findings.violation(
            "bytes not led by the COSE_Sign1 tag decode exactly when they are a report's length",
            what,
        );
    }
    if let Ok(evidence) = decoded
        && evidence.kind == EvidenceKind::Snp
        && evidence.report.len() != SNP_REPORT_LEN
    {
        findings.violation("decoded SEV-SNP evidence is a whole report", what);
    }
}

#[allow(clippy::too_many_arguments)]
fn check_verdict(
    seed: &Seed,
    platform: Platform,
    mode: Mode,
    input: &[u8],
    decoded: Option<&Evidence>,
    verdict: &Verdict,
    findings: &mut Findings,
    context: &dyn Fn() -> String,
) {
    let accepted = verdict.outcome.accepted();
    if verdict.outcome == Outcome::Refused && verdict.failures.is_empty() {
        findings.violation("a refusal names at least one failure", context);
    }
    if accepted && !verdict.failures.is_empty() {
        findings.violation("an acceptance names no failure", || {
            format!("{}: {:?}", context(), verdict.failures)
        });
    }
    if verdict.failures.iter().any(|failure| failure.field.is_empty()) {
        findings.violation("every failure names its field", || {
            format!("{}: {:?}", context(), verdict.failures)
        });
    }
    let verified_to_amd =
        matches!(&verdict.claims, Some(Claims::SevSnp(claims)) if claims.root == Root::Manufacturer);
    if verdict.outcome == Outcome::Verified && !(platform == Platform::SevSnp && verified_to_amd) {
        findings.violation(
            "only SEV-SNP evidence verified to AMD's root is Verified",
            context,
        );
    }
    if verdict.outcome == Outcome::AcceptedInsecure
        && !(platform == Platform::None
            && mode == Mode::InsecureDevelopment
            && verdict.warnings.iter().any(|warning| warning == INSECURE_WARNING))
    {
        findings.violation(
            "only a machine without a TEE in insecure development mode is AcceptedInsecure, with the warning",
            context,
        );
    }
    if platform == Platform::None && mode == Mode::Secure && accepted {
        findings.violation("a machine without a TEE is refused in secure mode", context);
    }
    if verdict.evidence_sha256.as_slice() != Sha256::digest(input).as_slice() {
        findings.violation("evidence_sha256 is the input's SHA-256", context);
    }
    if accepted && input == seed.bytes {
        findings.accepted_unchanged += 1;
    }
    if accepted && input != seed.bytes {
        findings.accepted_changed += 1;
        let attested = decoded.map(|evidence| evidence.report.as_slice());
        let attests_the_seed = match seed.source {
            // An unsigned envelope around the same report may change; the report may not.
            Source::Eat(_) => attested == Some(seed.report.as_slice()),
            Source::Bare | Source::Random => false,
        };
        let detail = || {
            format!(
                "{}: {:?}; attested report {}",
                context(),
                verdict.outcome,
                attested.map_or_else(
                    || "not decoded".to_owned(),
                    |report| difference(&seed.report, report)
                )
            )
        };
        if attests_the_seed {
            findings.accepted_envelope_changes += 1;
        } else if attested.is_some_and(|report| differs_only_after_r_and_s(&seed.report, report)) {
            // Told apart from other changes so that this one known gap hides no other.
            findings.violation(
                "a report whose reserved bytes after r and s (0x330–0x49F) differ from the seed's is not accepted",
                detail,
            );
        } else {
            findings.violation(
                "a mutated input is accepted only if it attests the seed's report (a bare report: only if its bytes are the seed's)",
                detail,
            );
        }
    }
}

/// Whether `report` is an SEV-SNP report equal to `original` up to the end of the signature's r and
/// s, where the bytes AMD's ABI reserves begin.
fn differs_only_after_r_and_s(original: &[u8], report: &[u8]) -> bool {
    original.len() == SNP_REPORT_LEN
        && report.len() == SNP_REPORT_LEN
        && original[..AFTER_R_AND_S] == report[..AFTER_R_AND_S]
}

// One test per seed, so that the test harness runs them on every core.

#[test]
fn the_genuine_milan_report_mutated_is_never_verified() {
    let corpus = Corpus::new();
    let findings = corpus.fuzz(MILAN, 3_000, 0x9E37_79B9_7F4A_7C15);
    findings.assert_none(MILAN);
    // The same, as counts: every verified input was the seed itself.
    assert_eq!(findings.accepted_changed, 0);
    assert_eq!(findings.accepted_unchanged, findings.unchanged);
}

#[test]
fn a_cocos_eat_of_the_genuine_milan_report_mutated_is_verified_only_with_the_same_report() {
    let corpus = Corpus::new();
    corpus
        .fuzz(MILAN_EAT, 2_000, 0xD1B5_4A32_D192_ED03)
        .assert_none(MILAN_EAT);
}

#[test]
fn a_cocos_eat_of_a_test_chain_report_mutated_is_accepted_only_with_the_same_report() {
    let corpus = Corpus::new();
    corpus
        .fuzz(TEST_CHAIN_EAT, 2_000, 0x2545_F491_4F6C_DD1D)
        .assert_none(TEST_CHAIN_EAT);
}

#[test]
fn a_nocc_eat_mutated_is_accepted_only_with_the_same_report() {
    let corpus = Corpus::new();
    corpus
        .fuzz(NOCC_EAT, 3_000, 0x94D0_49BB_1331_11EB)
        .assert_none(NOCC_EAT);
}

#[test]
fn random_bytes_are_refused_on_every_platform() {
    let corpus = Corpus::new();
    corpus
        .fuzz(RANDOM, 6_000, 0xBF58_476D_1CE4_E5B9)
        .assert_none(RANDOM);
}

/// AMD's ABI reserves the 368 bytes after the signature's r and s (0x330–0x49F). They are not
/// signed, so a report with them changed is not the report AMD signed, and must not verify — as
/// go-sev-guest refuses it (`abi.ReportToProto`: "mbz range … not all zero").
#[test]
fn a_report_changed_after_its_signature_is_not_verified() {
    let corpus = Corpus::new();
    let milan = corpus.seed(MILAN);
    let mut verified = Vec::new();
    for offset in [AFTER_R_AND_S, 0x400, SNP_REPORT_LEN - 1] {
        let mut report = milan.bytes.clone();
        report[offset] = 0x01;
        let verdict = corpus.appraise(milan, Platform::SevSnp, Mode::Secure, &report);
        if verdict.outcome == Outcome::Verified {
            verified.push(format!(
                "the bare report with byte {offset:#x} set to 01 (SHA-256 {})",
                verdict.evidence_sha256
            ));
        }
    }

    // The same in a Cocos EAT: go-sev-guest's Report carries the 512 bytes from 0x2A0 as its
    // signature.
    let milan_eat = corpus.seed(MILAN_EAT);
    let Source::Eat(parts) = &milan_eat.source else {
        panic!("an EAT seed")
    };
    let mut attestation = parts.attestation.clone().expect("an SEV-SNP EAT");
    attestation.report.as_mut().unwrap().signature[AFTER_R_AND_S - SIGNATURE] = 0x01;
    let token = parts.sign(attestation.encode_to_vec());
    let verdict = corpus.appraise(milan_eat, Platform::SevSnp, Mode::Secure, &token);
    if verdict.outcome == Outcome::Verified {
        verified.push(format!(
            "a Cocos EAT whose go-sev-guest Report has signature[{:#x}] = 01",
            AFTER_R_AND_S - SIGNATURE
        ));
    }
    assert!(
        verified.is_empty(),
        "Verified although bytes 0x330–0x49F of the report are not all zero (they are neither \
         signed nor checked: the sev crate's parser skips them and the signature check reads only \
         r and s):\n{}",
        verified.join("\n")
    );
}

/// A COSE_Sign1 (ES256 protected header, empty unprotected header) followed by `rest`.
fn cose_sign1_then(rest: &[u8]) -> Vec<u8> {
    let mut bytes = vec![COSE_SIGN1, 0x84, 0x43, 0xA1, 0x01, 0x26, 0xA0];
    bytes.extend_from_slice(rest);
    bytes
}

#[test]
fn edge_cases_are_refused_with_a_reason() {
    let corpus = Corpus::new();
    let nocc = corpus.seed(NOCC_EAT);
    let Source::Eat(nocc_parts) = &nocc.source else {
        panic!("an EAT seed")
    };
    let with_platform = |platform: &str| {
        let claims = eat::Claims {
            platform_type: platform.to_owned(),
            ..nocc_parts.claims.clone()
        };
        eat::encode(claims, &nocc_parts.key, eat::DEFAULT_ISSUER, ISSUED_AT).unwrap()
    };
    let mut nested_payload = vec![0x81; 100_000];
    nested_payload.push(0x00);
    let mut nested_in_payload = vec![0x5A];
    nested_in_payload.extend_from_slice(&(nested_payload.len() as u32).to_be_bytes());
    nested_in_payload.extend_from_slice(&nested_payload);
    nested_in_payload.push(0x40);
    let led_by_the_tag = |len: usize| {
        let mut bytes = vec![0; len];
        bytes[0] = COSE_SIGN1;
        bytes
    };

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no bytes", Vec::new()),
        ("one zero byte", vec![0x00]),
        ("the COSE_Sign1 tag alone", vec![COSE_SIGN1]),
        (
            "a COSE_Sign1 whose payload declares 2^64 - 1 bytes",
            cose_sign1_then(&[0x5B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        ),
        (
            "a COSE_Sign1 whose payload declares 4 GiB and carries 1 KiB",
            cose_sign1_then(&[[0x5A, 0xFF, 0xFF, 0xFF, 0xF0].as_slice(), &[0; 1024]].concat()),
        ),
        (
            "a COSE_Sign1 declaring 2^64 - 1 elements",
            vec![COSE_SIGN1, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ),
        (
            "a COSE_Sign1 whose unprotected header declares 2^64 - 1 entries",
            [
                [COSE_SIGN1, 0x84, 0x43, 0xA1, 0x01, 0x26, 0xBB].as_slice(),
                &[0xFF; 8],
            ]
            .concat(),
        ),
        (
            "a COSE_Sign1 of 200,000 nested arrays",
            [[COSE_SIGN1].as_slice(), &[0x81; 200_000]].concat(),
        ),
        (
            "a COSE_Sign1 whose payload is 100,000 nested arrays",
            cose_sign1_then(&nested_in_payload),
        ),
        ("1,184 zero bytes", vec![0; SNP_REPORT_LEN]),
        (
            "1,184 bytes led by the COSE_Sign1 tag",
            led_by_the_tag(SNP_REPORT_LEN),
        ),
        ("MAX_EVIDENCE_LEN + 1 zero bytes", vec![0; MAX_EVIDENCE_LEN + 1]),
        (
            "MAX_EVIDENCE_LEN + 1 bytes led by the COSE_Sign1 tag",
            led_by_the_tag(MAX_EVIDENCE_LEN + 1),
        ),
        (
            "MAX_EVIDENCE_LEN bytes led by the COSE_Sign1 tag",
            led_by_the_tag(MAX_EVIDENCE_LEN),
        ),
        ("a NoCC EAT of a 95-byte report", {
            nocc_parts.sign(nocc.report[..95].to_vec())
        }),
        ("a NoCC EAT of a 97-byte report", {
            nocc_parts.sign([nocc.report.as_slice(), &[0]].concat())
        }),
        ("a NoCC EAT of no report", nocc_parts.sign(Vec::new())),
        ("an EAT of an unknown platform", with_platform("SGX")),
        ("a TDX EAT", with_platform(eat::PLATFORM_TDX)),
    ];

    let random = corpus.seed(RANDOM);
    let seed_outcomes = corpus.seed_outcomes(random);
    let mut findings = Findings::default();
    for (iteration, (name, input)) in cases.iter().enumerate() {
        let started = Instant::now();
        // Both modes on SevSnp and Tdx: these are few.
        for offset in [0, 1] {
            corpus.check(
                random,
                &seed_outcomes,
                iteration * 2 + offset,
                input,
                name,
                &mut findings,
            );
        }
        let elapsed = started.elapsed();
        let decoded = Evidence::decode(input);
        let verdict = corpus.appraise(random, Platform::SevSnp, Mode::Secure, input);
        println!(
            "{name}: decode {:?}; SevSnp {:?} at {:?} in {elapsed:?}",
            decoded.as_ref().map(|evidence| evidence.kind),
            verdict.outcome,
            verdict.reason().map(|failure| failure.field.as_str()),
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "{name} took {elapsed:?} to refuse"
        );
    }
    findings.assert_none("edge cases");

    let reason = |input: &[u8], platform: Platform, mode: Mode| {
        let verdict = corpus.appraise(random, platform, mode, input);
        assert_eq!(verdict.outcome, Outcome::Refused);
        verdict.failures[0].field.clone()
    };
    for (name, input) in &cases[..9] {
        assert!(Evidence::decode(input).is_err(), "{name} decodes");
        assert_eq!(
            reason(input, Platform::SevSnp, Mode::Secure),
            "evidence",
            "{name}"
        );
    }
    for (_, input) in &cases[11..13] {
        assert!(matches!(
            Evidence::decode(input),
            Err(EvidenceError::TooLarge(len)) if len == MAX_EVIDENCE_LEN + 1
        ));
    }
    assert!(!matches!(
        Evidence::decode(&cases[13].1),
        Err(EvidenceError::TooLarge(_))
    ));
    let zeros = Evidence::decode(&cases[9].1).expect("a report's length decodes as a bare report");
    assert_eq!(zeros.kind, EvidenceKind::Snp);
    assert_eq!(reason(&cases[9].1, Platform::SevSnp, Mode::Secure), "report");
    for (name, input) in &cases[14..17] {
        assert_eq!(
            reason(input, Platform::None, Mode::InsecureDevelopment),
            "report",
            "{name}"
        );
    }
    assert!(matches!(
        Evidence::decode(&cases[17].1),
        Err(EvidenceError::UnknownPlatform(platform)) if platform == "SGX"
    ));
}

/// A policy that sets every field, each byte field at its length.
fn full_policy() -> Policy {
    let tcb = Tcb {
        fmc: Some(1),
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    Policy {
        sev_snp: SnpPolicy {
            products: vec!["Milan".to_owned(), "Genoa".to_owned()],
            guest_policy: GuestPolicyRule {
                allow_debug: false,
                allow_migration_agent: false,
                allow_smt: true,
                allow_cxl: false,
                require_single_socket: true,
                require_memory_aes_256_xts: true,
                require_rapl_disabled: true,
                require_ciphertext_hiding: true,
                require_page_swap_disabled: true,
                minimum_abi_major: 1,
                minimum_abi_minor: 51,
            },
            minimum_guest_svn: 1,
            report_data: Some(Hex([0x01; 64])),
            host_data: Some(Hex([0x02; 32])),
            image_id: Some(Hex([0x03; 16])),
            family_id: Some(Hex([0x04; 16])),
            report_id: Some(Hex([0x05; 32])),
            report_id_ma: Some(Hex([0x06; 32])),
            measurements: vec![Hex([0x07; 48]), Hex([0x08; 48])],
            chip_ids: vec![Hex([0x09; 64])],
            minimum_build: 4,
            minimum_version: Some(VersionFloor { major: 1, minor: 52 }),
            minimum_tcb: Some(tcb),
            minimum_launch_tcb: Some(tcb),
            permit_provisional_firmware: true,
            platform_info: PlatformInfoRule {
                allow_smt: false,
                require_tsme: true,
                require_ecc: true,
                require_rapl_disabled: true,
                require_ciphertext_hiding: true,
                require_alias_check_complete: true,
            },
            vmpl: Some(0),
            require_author_key: true,
            require_id_block: true,
            trusted_author_key_digests: vec![Hex([0x0A; 48])],
            trusted_id_key_digests: vec![Hex([0x0B; 48])],
        },
        tdx: TdxPolicy {
            allow_debug: true,
            mr_td: vec![Hex([0x0C; 48])],
            mr_seam: vec![Hex([0x0D; 48])],
            rtmr0: Some(Hex([0x0E; 48])),
            rtmr1: Some(Hex([0x0F; 48])),
            rtmr2: Some(Hex([0x10; 48])),
            rtmr3: Some(Hex([0x11; 48])),
            td_attributes: Some(Hex([0x12; 8])),
            xfam: Some(Hex([0x13; 8])),
            minimum_tee_tcb_svn: Some(Hex([0x14; 16])),
        },
    }
}

/// JSON values to put where a policy's values are: other types, numbers past every field's
/// range, strings that are not hex or are odd in length, empty and partial objects.
const JSON_VALUES: [&str; 26] = [
    "null",
    "true",
    "false",
    "0",
    "-1",
    "255",
    "256",
    "65535",
    "4294967296",
    "18446744073709551616",
    "1e400",
    "-0",
    "0.5",
    "\"\"",
    "\"0\"",
    "\"zz\"",
    "\"ABCD\"",
    "\"Milan\"",
    "[]",
    "{}",
    "[\"00\"]",
    "[null]",
    "{\"major\":1,\"minor\":2}",
    "{\"bootloader\":1,\"tee\":0,\"snp\":0}",
    "\"\\u0000\"",
    "\"\\ud800\"",
];

/// Members to put at the start of an object: a duplicate, an unknown field, a nested policy part.
const JSON_MEMBERS: [&str; 5] = [
    "\"allow_debug\": true,",
    "\"unknown\": 1,",
    "\"sev_snp\": {},",
    "\"vmpl\": 7,",
    "\"minimum_tcb\": {\"bootloader\": 1, \"tee\": 0, \"snp\": 0, \"microcode\": 0, \"fmc\": 300},",
];

/// Where the JSON value after the `:` at `colon` starts and ends.
fn value_span(text: &[u8], colon: usize) -> (usize, usize) {
    let mut start = colon + 1;
    while start < text.len() && text[start].is_ascii_whitespace() {
        start += 1;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (index, &byte) in text.iter().enumerate().skip(start) {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
                if depth == 0 {
                    return (start, index + 1);
                }
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth <= 1 => return (start, if depth == 0 { index } else { index + 1 }),
            b'}' | b']' => depth -= 1,
            b',' | b'\n' if depth == 0 => return (start, index),
            _ => {}
        }
    }
    (start, text.len())
}

/// The seed policy's JSON with one value replaced, a member added, or its bytes mutated.
fn mutated_policy_json(rng: &mut Rng, seed: &[u8], donors: &[&[u8]], log: &mut Vec<String>) -> Vec<u8> {
    let colons: Vec<usize> = seed
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b':')
        .map(|(index, _)| index)
        .collect();
    let braces: Vec<usize> = seed
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'{')
        .map(|(index, _)| index)
        .collect();
    let mut text = seed.to_vec();
    match rng.below(10) {
        0..=3 => {
            let (start, end) = value_span(&text, colons[rng.below(colons.len())]);
            let old = String::from_utf8_lossy(&text[start..end]).into_owned();
            let new = if old.starts_with('"') && rng.below(2) == 0 {
                // A hex string one character or one byte shorter or longer, or in capitals.
                let inner = &old[1..old.len() - 1];
                let changed = match rng.below(4) {
                    0 => inner[..inner.len().saturating_sub(1)].to_owned(),
                    1 => inner[..inner.len().saturating_sub(2)].to_owned(),
                    2 => format!("{inner}00"),
                    _ => inner.to_uppercase(),
                };
                format!("\"{changed}\"")
            } else {
                JSON_VALUES[rng.below(JSON_VALUES.len())].to_owned()
            };
            log.push(format!(
                "value at {start} replaced by {}",
                new.chars().take(24).collect::<String>()
            ));
            text.splice(start..end, new.bytes());
        }
        4 => {
            // Left out, a member takes its default; the comma after it goes too.
            let colon = colons[rng.below(colons.len())];
            let key_start = text[..colon - 1]
                .iter()
                .rposition(|byte| *byte == b'"')
                .expect("a key before every colon");
            let (_, mut end) = value_span(&text, colon);
            if text.get(end) == Some(&b',') {
                end += 1;
            }
            log.push(format!(
                "member {} removed",
                String::from_utf8_lossy(&text[key_start..colon])
            ));
            text.drain(key_start..end);
        }
        5 => {
            let at = braces[rng.below(braces.len())] + 1;
            let member = JSON_MEMBERS[rng.below(JSON_MEMBERS.len())];
            log.push(format!("{member} inserted at {at}"));
            text.splice(at..at, member.bytes());
        }
        _ => {}
    }
    if log.is_empty() || rng.below(4) == 0 {
        mutate(rng, &mut text, donors, log);
    }
    text
}

#[test]
fn a_full_policy_document_mutated_is_read_or_refused_never_half_read() {
    let corpus = Corpus::new();
    let policy = full_policy();
    let seed = serde_json::to_string_pretty(&policy).unwrap();
    assert_eq!(Policy::from_json(&seed).unwrap(), policy, "the seed reads back");
    let milan_claims = corpus
        .appraise(
            corpus.seed(MILAN),
            Platform::SevSnp,
            Mode::Secure,
            &corpus.seed(MILAN).bytes,
        )
        .claims
        .expect("the genuine report's claims");
    let test_chain_claims = corpus
        .appraise(
            corpus.seed(TEST_CHAIN_EAT),
            Platform::None,
            Mode::InsecureDevelopment,
            &corpus.seed(TEST_CHAIN_EAT).bytes,
        )
        .claims
        .expect("the emulated report's claims");
    let tdx_claims = Claims::Tdx(TdxClaims {
        root: Root::TestOnly,
        tee_tcb_svn: HexBytes(vec![0x14; 15]),
        mr_seam: HexBytes(vec![0x0D; 48]),
        mr_td: HexBytes(vec![0x0C; 48]),
        rtmr0: HexBytes(vec![0x0E; 48]),
        rtmr1: HexBytes(vec![0; 48]),
        rtmr2: HexBytes(vec![0x10; 48]),
        rtmr3: HexBytes(vec![0x11; 48]),
        td_attributes: HexBytes(vec![0x01; 8]),
        xfam: HexBytes(vec![0x13; 8]),
        report_data: HexBytes(vec![0; 64]),
        debug: true,
    });
    let all_claims = [milan_claims, test_chain_claims, tdx_claims];
    let donors: Vec<&[u8]> = vec![seed.as_bytes(), b"{\"sev_snp\":{\"measurements\":[\"00\"]}}"];

    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let mut findings = Findings::default();
    let (mut read, mut refused) = (0usize, 0usize);
    let started = Instant::now();
    for iteration in 0..5_000 {
        let mut log = Vec::new();
        let text = mutated_policy_json(&mut rng, seed.as_bytes(), &donors, &mut log);
        let text = String::from_utf8_lossy(&text).into_owned();
        let what = || format!("iteration {iteration}: {}", log.join(" "));
        findings.inputs += 1;
        let parsed = match catch_unwind(|| Policy::from_json(&text)) {
            Ok(parsed) => parsed,
            Err(panic) => {
                findings.violation("Policy::from_json never panics", || {
                    format!("{}: {}", what(), panic_message(&*panic))
                });
                continue;
            }
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                refused += 1;
                if error.to_string().is_empty() {
                    findings.violation("a refused policy says why", what);
                }
                continue;
            }
        };
        read += 1;
        let canonical = String::from_utf8(parsed.canonical_json()).expect("JSON is UTF-8");
        match Policy::from_json(&canonical) {
            Ok(again) if again == parsed && again.digest() == parsed.digest() => {}
            other => findings.violation("a policy's canonical JSON reads back as the same policy", || {
                format!("{}: {other:?}", what())
            }),
        }
        for claims in &all_claims {
            match catch_unwind(AssertUnwindSafe(|| parsed.appraise(claims))) {
                Ok(failures) if failures.iter().all(|failure| !failure.field.is_empty()) => {}
                Ok(failures) => findings.violation("every failure names its field", || {
                    format!("{}: {failures:?}", what())
                }),
                Err(panic) => findings.violation("Policy::appraise never panics", || {
                    format!("{}: {}", what(), panic_message(&*panic))
                }),
            }
        }
    }
    println!(
        "a full policy document: {} mutated documents, {read} read, {refused} refused, in {:.2} s",
        findings.inputs,
        started.elapsed().as_secs_f64()
    );
    assert!(
        read > 100 && refused > 100,
        "the mutations should both keep and break policies: {read} read, {refused} refused"
    );
    findings.assert_none("a full policy document");
}
