//! SEV-SNP verification: AMD's genuine evidence against AMD's real roots, and each way evidence
//! must be refused, with the failing field named.

mod common;

use common::*;
use prism_attestation::binding::{Expected, Nonce, fresh_report_data};
use prism_attestation::claims::{Claims, Root, Tcb};
use prism_attestation::evidence::Evidence;
use prism_attestation::none::NoneVerifier;
use prism_attestation::policy::{GuestPolicyRule, Policy, VersionFloor};
use prism_attestation::snp::{SnpVerifier, VcekCache};
use prism_attestation::{Appraiser, Hex, Mode, Outcome, Platform, Verifier as _};

const MILAN_MEASUREMENT: &str =
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const MILAN_CHIP_ID: &str = "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6";

fn amd() -> SnpVerifier {
    SnpVerifier::amd().expect("AMD's built-in roots load")
}

fn appraiser() -> Appraiser {
    Appraiser::new(Mode::Secure, amd(), NoneVerifier::new([]).unwrap())
}

fn verify(report: Vec<u8>, vcek: &[u8], policy: &Policy) -> prism_attestation::Verdict {
    let expected = expected_for(&report);
    let evidence = snp_evidence(report, vcek);
    let claims = amd().evaluate(&evidence, &expected);
    match claims {
        Ok(claims) => {
            let failures = policy.appraise(&claims);
            let outcome = if failures.is_empty() {
                Outcome::Verified
            } else {
                Outcome::Refused
            };
            prism_attestation::Verdict {
                outcome,
                platform: Platform::SevSnp,
                binding: expected.binding,
                failures,
                claims: Some(claims),
                evidence_sha256: Default::default(),
                policy_sha256: Default::default(),
                warnings: Vec::new(),
            }
        }
        Err(failure) => prism_attestation::Verdict {
            outcome: Outcome::Refused,
            platform: Platform::SevSnp,
            binding: expected.binding,
            failures: vec![failure],
            claims: None,
            evidence_sha256: Default::default(),
            policy_sha256: Default::default(),
            warnings: Vec::new(),
        },
    }
}

fn reason(verdict: &prism_attestation::Verdict) -> (&str, &str, &str) {
    let failure = verdict.reason().unwrap_or_else(|| panic!("refused: {verdict:?}"));
    (&failure.field, &failure.expected, &failure.actual)
}

#[test]
fn amds_genuine_milan_report_verifies_to_amds_root() {
    let verdict = verify(milan_report(), MILAN_VCEK, &Policy::default());
    assert_eq!(verdict.outcome, Outcome::Verified, "{:?}", verdict.failures);
    let Some(Claims::SevSnp(claims)) = verdict.claims else {
        panic!("SEV-SNP claims")
    };
    assert_eq!(claims.root, Root::Manufacturer);
    assert_eq!(claims.product, "Milan");
    assert_eq!(claims.version, 2);
    assert_eq!(claims.measurement.to_string(), MILAN_MEASUREMENT);
    assert_eq!(claims.chip_id.to_string(), MILAN_CHIP_ID);
    assert_eq!(claims.vmpl, 0);
    assert_eq!(claims.guest_policy, 0x30000);
    let tcb = Tcb {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    assert_eq!(claims.reported_tcb, tcb);
}

#[test]
fn the_appraiser_verifies_the_genuine_report_from_the_certificate_cache() {
    let report = milan_report();
    let cache = tempfile::tempdir().unwrap();
    let vcek_cache = VcekCache::new(cache.path());
    let path = vcek_cache.path(&report[0x1A0..0x1E0], &report[0x180..0x188]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, MILAN_VCEK).unwrap();
    let cached = Appraiser::new(
        Mode::Secure,
        amd().with_cache(vcek_cache),
        NoneVerifier::new([]).unwrap(),
    );
    let verdict = cached.appraise(
        Platform::SevSnp,
        &report,
        &expected_for(&report),
        &Policy::default(),
    );
    assert_eq!(verdict.outcome, Outcome::Verified, "{:?}", verdict.failures);
    assert!(verdict.warnings.iter().any(|w| w.starts_with("not fresh")));

    let without_cache = appraiser().appraise(
        Platform::SevSnp,
        &report,
        &expected_for(&report),
        &Policy::default(),
    );
    assert_eq!(reason(&without_cache).0, "vcek");
}

#[test]
fn a_flipped_byte_anywhere_in_the_signed_report_is_refused() {
    for offset in [0x00, 0x08, 0x50, 0x90, 0x180, 0x1A0, 0x29F] {
        let mut report = milan_report();
        report[offset] ^= 0x01;
        let verdict = verify(report, MILAN_VCEK, &Policy::default());
        let (field, ..) = reason(&verdict);
        assert!(
            field == "signature" || field == "report" || field.starts_with("vcek"),
            "offset {offset:#x}: {verdict:?}"
        );
    }
    let mut report = milan_report();
    report[0x2A0] ^= 0x01;
    assert_eq!(
        reason(&verify(report, MILAN_VCEK, &Policy::default())).0,
        "signature"
    );
}

#[test]
fn a_vcek_not_signed_by_amd_is_refused() {
    let mut vcek = MILAN_VCEK.to_vec();
    vcek[40] ^= 0xFF;
    let verdict = verify(milan_report(), &vcek, &Policy::default());
    assert!(reason(&verdict).0.starts_with("vcek"), "{verdict:?}");

    // A well-formed chain of another root is refused too, whatever ARK and ASK it sends.
    let other = TestChain::new(Some([3, 0, 8, 115]), None);
    let verdict = verify(milan_report(), &other.vcek_der, &Policy::default());
    assert_eq!(reason(&verdict).0, "vcek.chain");
}

#[test]
fn a_measurement_the_policy_does_not_accept_is_refused_with_both_values() {
    let mut policy = Policy::default();
    policy.sev_snp.measurements = vec![Hex([0x11; 48])];
    let verdict = verify(milan_report(), MILAN_VCEK, &policy);
    let (field, expected, actual) = reason(&verdict);
    assert_eq!(field, "measurement");
    assert!(expected.contains(&"11".repeat(48)));
    assert_eq!(actual, MILAN_MEASUREMENT);

    policy
        .sev_snp
        .measurements
        .push(Hex(hex::decode(MILAN_MEASUREMENT).unwrap().try_into().unwrap()));
    assert_eq!(
        verify(milan_report(), MILAN_VCEK, &policy).outcome,
        Outcome::Verified
    );
}

#[test]
fn a_tcb_below_the_minimum_is_refused() {
    let mut policy = Policy::default();
    policy.sev_snp.minimum_tcb = Some(Tcb {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 9,
        microcode: 115,
    });
    let verdict = verify(milan_report(), MILAN_VCEK, &policy);
    let fields: Vec<&str> = verdict.failures.iter().map(|f| f.field.as_str()).collect();
    assert!(fields.contains(&"reported_tcb"), "{fields:?}");
    assert!(verdict.failures[0].expected.contains("snp 9"));

    policy.sev_snp.minimum_tcb = Some(Tcb {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    });
    assert_eq!(
        verify(milan_report(), MILAN_VCEK, &policy).outcome,
        Outcome::Verified
    );
}

#[test]
fn a_chip_id_the_policy_does_not_accept_is_refused() {
    let mut policy = Policy::default();
    policy.sev_snp.chip_ids = vec![Hex([0x22; 64])];
    let verdict = verify(milan_report(), MILAN_VCEK, &policy);
    assert_eq!(reason(&verdict).0, "chip_id");
    assert_eq!(reason(&verdict).2, MILAN_CHIP_ID);
}

#[test]
fn firmware_version_vmpl_and_svn_floors_are_checked() {
    let mut policy = Policy::default();
    policy.sev_snp.minimum_version = Some(VersionFloor { major: 1, minor: 55 });
    policy.sev_snp.minimum_build = 5;
    policy.sev_snp.vmpl = Some(2);
    policy.sev_snp.minimum_guest_svn = 1;
    let verdict = verify(milan_report(), MILAN_VCEK, &policy);
    let fields: Vec<&str> = verdict.failures.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["guest_svn", "current_build", "current_version", "vmpl"]);
}

/// A report signed by a test chain whose VCEK carries AMD's extensions: the checks that need a
/// report AMD would never sign (debug, a wrong hwID) are exercised with it.
fn test_signed(chain: &TestChain, edit: impl FnOnce(&mut Vec<u8>)) -> (Evidence, Expected) {
    let nonce = Nonce::random();
    let expected = Expected::fresh(&nonce, b"agent key");
    let mut report = report_template(&expected.report_data);
    edit(&mut report);
    chain.sign(&mut report);
    (chain.evidence(report, Some(nonce.0.to_vec())), expected)
}

fn test_verifier(chain: &TestChain) -> SnpVerifier {
    SnpVerifier::test_only([chain.ark_der.clone()]).unwrap()
}

#[test]
fn a_debuggable_guest_is_refused_by_default() {
    let chain = TestChain::new(Some([3, 0, 8, 115]), Some([0xC1; 64]));
    let (evidence, expected) = test_signed(&chain, |report| {
        report[0x08..0x10].copy_from_slice(&(0x3_0000u64 | 1 << 19).to_le_bytes());
    });
    let claims = test_verifier(&chain)
        .evaluate(&evidence, &expected)
        .expect("signed by the test chain");
    let failures = Policy::default().appraise(&claims);
    assert_eq!(failures[0].field, "guest_policy.debug");
    assert_eq!(
        (failures[0].expected.as_str(), failures[0].actual.as_str()),
        ("not allowed", "allowed")
    );

    let mut permissive = Policy::default();
    permissive.sev_snp.guest_policy = GuestPolicyRule {
        allow_debug: true,
        ..GuestPolicyRule::default()
    };
    assert!(permissive.appraise(&claims).is_empty());
}

#[test]
fn a_vcek_whose_hardware_id_or_tcb_differs_from_the_report_is_refused() {
    let chain = TestChain::new(Some([3, 0, 8, 115]), Some([0xEE; 64]));
    let (evidence, expected) = test_signed(&chain, |_| {});
    let failure = test_verifier(&chain).evaluate(&evidence, &expected).unwrap_err();
    assert_eq!(failure.field, "vcek.hardware_id");

    let chain = TestChain::new(Some([3, 0, 7, 115]), Some([0xC1; 64]));
    let (evidence, expected) = test_signed(&chain, |_| {});
    let failure = test_verifier(&chain).evaluate(&evidence, &expected).unwrap_err();
    assert_eq!(failure.field, "vcek.tcb");
    assert!(failure.actual.contains("snp 7"), "{failure:?}");
}

#[test]
fn evidence_bound_to_another_key_or_nonce_is_refused() {
    let chain = TestChain::new(None, None);
    let verifier = test_verifier(&chain);
    let (evidence, expected) = test_signed(&chain, |_| {});
    assert!(verifier.evaluate(&evidence, &expected).is_ok());

    // The same evidence presented for another connection (another agent key).
    let Expected {
        binding: _,
        eat_nonce,
        ..
    } = expected.clone();
    let nonce = Nonce(eat_nonce.clone().try_into().unwrap());
    let other_connection = Expected::fresh(&nonce, b"another agent key");
    let failure = verifier.evaluate(&evidence, &other_connection).unwrap_err();
    assert_eq!(failure.field, "report_data");
    assert_eq!(
        failure.expected,
        hex::encode(fresh_report_data(&nonce, b"another agent key"))
    );

    // The same evidence replayed for a new request (a new nonce).
    let new_request = Expected::fresh(&Nonce::random(), b"agent key");
    assert_eq!(
        verifier.evaluate(&evidence, &new_request).unwrap_err().field,
        "report_data"
    );

    // Right report data, wrong EAT nonce.
    let mut tampered = evidence.clone();
    tampered.eat_nonce = Some(vec![0; 32]);
    assert_eq!(
        verifier.evaluate(&tampered, &expected).unwrap_err().field,
        "eat_nonce"
    );
}

#[test]
fn a_test_only_root_never_passes_as_amds() {
    let chain = TestChain::new(Some([3, 0, 8, 115]), Some([0xC1; 64]));
    let (evidence, expected) = test_signed(&chain, |_| {});
    assert_eq!(
        amd().evaluate(&evidence, &expected).unwrap_err().field,
        "vcek.chain"
    );
    let Ok(Claims::SevSnp(claims)) = test_verifier(&chain).evaluate(&evidence, &expected) else {
        panic!("verifies to its own root")
    };
    assert_eq!(claims.root, Root::TestOnly);
}

#[test]
fn cocos_genuine_report_parses_and_is_refused_without_its_vcek() {
    let report = COCOS_REPORT[..REPORT_LEN].to_vec();
    let decoded = Evidence::decode(&report).expect("a bare report decodes");
    let verdict = appraiser().appraise(
        Platform::SevSnp,
        &report,
        &expected_for(&report),
        &Policy::default(),
    );
    assert_eq!(reason(&verdict).0, "vcek");
    assert_eq!(hex::encode(&decoded.report[0x90..0x94]), "a03628e1");
}
