//! Intel TDX verification: genuine quotes against Intel's real root, quotes from a test-only
//! chain for what genuine ones cannot show, and each way a quote must be refused, with the failing
//! field named.
#![cfg(feature = "tdx")]

mod common;

use common::Rng;
use prism_attestation::binding::{Binding, Expected};
use prism_attestation::claims::{Claims, Root, TdxClaims};
use prism_attestation::evidence::{Evidence, EvidenceKind};
use prism_attestation::policy::{Policy, TdxPolicy};
use prism_attestation::tdx::{self, TdxVerifier};
use prism_attestation::{Failure, Verifier as _};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

/// A genuine version-4 quote (TDX 1.0 TD report), PCK chain to Intel's SGX root CA.
const QUOTE_V4: &[u8] = include_bytes!("fixtures/tdx_quote_v4.dat");
/// A genuine version-4 quote from a debuggable TD (TDATTRIBUTES.DEBUG set), signed by Intel's
/// chain like any other.
const QUOTE_V4_DEBUG: &[u8] = include_bytes!("fixtures/tdx_quote_v4_debug.dat");
/// A genuine version-5 quote (TDX 1.5 TD report).
const QUOTE_V5: &[u8] = include_bytes!("fixtures/tdx_quote_v5.dat");

const V4_MR_TD: &str =
    "21e8dead92d6c69d7cbba79816686c03a48485c7df0c11f6f04792d5e1d378f6b8c46615ba6946adccac6becffbb1e88";
const V4_MR_SEAM: &str =
    "476a2997c62bccc78370913d0a80b956e3721b24272bc66c4d6307ced4be2865c40e26afac75f12df3425b03eb59ea7c";
const V4_RTMR0: &str =
    "395aefe7bac15b24c40f1cd7ba6f8fa48732be5c56c61485ed3cd9c8b16cce8ece64c331b99ce36d96605135c753aaa2";
const DEBUG_MR_TD: &str =
    "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031";

/// Offsets in a version-4 quote.
const BODY: usize = 48;
const MR_TD: usize = BODY + 136;
const TD_ATTRIBUTES: usize = BODY + 120;
const REPORT_DATA: usize = BODY + 520;
const SIGNED_LEN: usize = BODY + 584;

fn intel() -> TdxVerifier {
    TdxVerifier::intel().expect("Intel's SGX root CA loads")
}

fn evidence(quote: &[u8], eat_nonce: Option<Vec<u8>>) -> Evidence {
    Evidence {
        kind: EvidenceKind::Tdx,
        eat_nonce,
        report: quote.to_vec(),
        snp_certificates: None,
    }
}

/// What a quote carries, taken as what was asked for: the genuine quotes were made for other
/// verifiers' requests, so the binding here is the quote's own report data.
fn expected_for(quote: &[u8]) -> Expected {
    Expected {
        binding: Binding::StartupCertificate {
            certificate_sha256: Default::default(),
        },
        report_data: quote[REPORT_DATA..REPORT_DATA + 64].try_into().unwrap(),
        eat_nonce: vec![0x5A; 32],
    }
}

fn verify(verifier: &TdxVerifier, quote: &[u8]) -> Result<TdxClaims, Failure> {
    verifier.verify(&evidence(quote, None), &expected_for(quote))
}

fn refusal(result: Result<TdxClaims, Failure>) -> Failure {
    match result {
        Ok(claims) => panic!("accepted: {claims:?}"),
        Err(failure) => failure,
    }
}

#[test]
fn a_genuine_quote_verifies_to_intels_root() {
    let claims = verify(&intel(), QUOTE_V4).expect("verifies");
    assert_eq!(claims.root, Root::Manufacturer);
    assert_eq!(claims.mr_td.to_string(), V4_MR_TD);
    assert_eq!(claims.mr_seam.to_string(), V4_MR_SEAM);
    assert_eq!(claims.rtmr0.to_string(), V4_RTMR0);
    assert_eq!(claims.rtmr3.0, vec![0; 48]);
    assert_eq!(claims.tee_tcb_svn.to_string(), "05030200000000000000000000000000");
    assert_eq!(claims.td_attributes.to_string(), "0000001000000000");
    assert_eq!(claims.xfam.to_string(), "e702060000000000");
    assert_eq!(claims.report_data.0, QUOTE_V4[REPORT_DATA..REPORT_DATA + 64]);
    assert!(!claims.debug);

    // Through the trait, and the default policy has nothing against it.
    let claims = intel()
        .evaluate(&evidence(QUOTE_V4, None), &expected_for(QUOTE_V4))
        .expect("verifies");
    assert_eq!(Policy::default().appraise(&claims), Vec::new());
}

#[test]
fn the_built_in_root_is_the_one_genuine_quotes_end_with() {
    let quote = String::from_utf8_lossy(QUOTE_V4);
    let begin = quote
        .rfind("-----BEGIN CERTIFICATE-----")
        .expect("the quote carries its root");
    let end = begin
        + quote[begin..]
            .find("-----END CERTIFICATE-----")
            .expect("a whole PEM block");
    let in_quote: String = quote[begin..end].split_whitespace().collect();
    let built_in = tdx::INTEL_SGX_ROOT_CA_PEM;
    let built_in: String = built_in[..built_in.find("-----END").unwrap()]
        .split_whitespace()
        .collect();
    assert_eq!(in_quote, built_in);
}

#[test]
fn an_intel_signed_debug_td_verifies_and_the_default_policy_refuses_it() {
    let claims = verify(&intel(), QUOTE_V4_DEBUG).expect("signature and chain verify");
    assert!(claims.debug);
    assert_eq!(claims.mr_td.to_string(), DEBUG_MR_TD);
    assert_eq!(claims.td_attributes.to_string(), "0100001000000000");

    let failures = Policy::default().appraise(&Claims::Tdx(claims.clone()));
    assert_eq!(
        failures,
        vec![Failure::new("td_attributes.debug", "not allowed", "allowed")]
    );
    let allowing = Policy {
        tdx: TdxPolicy {
            allow_debug: true,
            ..TdxPolicy::default()
        },
        ..Policy::default()
    };
    assert_eq!(allowing.appraise(&Claims::Tdx(claims)), Vec::new());
}

#[test]
fn a_flipped_byte_in_the_signed_header_or_td_report_is_refused_with_the_signature_field() {
    let verifier = intel();
    // Bytes 0–7 are the version, key type and TEE type, refused by name before the signature;
    // every other signed byte is covered by it.
    for offset in (8..SIGNED_LEN)
        .step_by(37)
        .chain([MR_TD, TD_ATTRIBUTES, REPORT_DATA, SIGNED_LEN - 1])
    {
        let mut quote = QUOTE_V4.to_vec();
        quote[offset] ^= 0x01;
        let failure = refusal(verifier.verify(&evidence(&quote, None), &expected_for(&quote)));
        assert_eq!(failure.field, "quote.signature", "byte {offset}: {failure}");
        assert_eq!(failure.actual, "the signature does not verify");
    }
}

#[test]
fn the_header_must_say_version_4_ecdsa_p256_and_tdx() {
    let verifier = intel();
    let edited = |offset: usize, bytes: &[u8]| {
        let mut quote = QUOTE_V4.to_vec();
        quote[offset..offset + bytes.len()].copy_from_slice(bytes);
        refusal(verify(&verifier, &quote))
    };
    let failure = edited(0, &3u16.to_le_bytes());
    assert_eq!(
        (failure.field.as_str(), failure.actual.as_str()),
        ("quote.version", "3")
    );
    let failure = edited(2, &3u16.to_le_bytes());
    assert_eq!(
        (failure.field.as_str(), failure.actual.as_str()),
        ("quote.attestation_key_type", "3")
    );
    // An SGX quote's enclave report must not be read as a TD report.
    let failure = edited(4, &0u32.to_le_bytes());
    assert_eq!(
        (failure.field.as_str(), failure.actual.as_str()),
        ("quote.tee_type", "0x0")
    );
    let failure = refusal(verifier.verify(&evidence(&QUOTE_V4[..20], None), &expected_for(QUOTE_V4)));
    assert_eq!(
        (failure.field.as_str(), failure.actual.as_str()),
        ("quote", "20 bytes")
    );
}

#[test]
fn a_genuine_version_5_quote_is_refused_by_name_because_tdx_quote_checks_the_wrong_bytes() {
    let failure = refusal(intel().verify(
        &evidence(QUOTE_V5, None),
        &Expected {
            report_data: [0; 64],
            ..expected_for(QUOTE_V4)
        },
    ));
    assert_eq!(failure.field, "quote.version");
    assert_eq!(failure.expected, "4");
    assert!(failure.actual.starts_with("5 (not supported"), "{failure}");

    // The quote is genuine: its attestation key signed the header, the 6-byte body descriptor
    // and the TDX 1.5 TD report (48 + 6 + 648 bytes)...
    let signed = 48 + 6 + 648;
    let mut key = vec![0x04];
    key.extend_from_slice(&QUOTE_V5[signed + 4 + 64..signed + 4 + 128]);
    ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key)
        .verify(&QUOTE_V5[..signed], &QUOTE_V5[signed + 4..signed + 4 + 64])
        .expect("Intel's layout: the signature covers the body descriptor");
    // ...but tdx-quote 0.0.5 checks it over the header and TD report without the descriptor. When
    // this starts to pass, version 5 can be enabled in the module.
    assert_eq!(
        tdx_quote::Quote::from_bytes(QUOTE_V5).err(),
        Some(tdx_quote::QuoteParseError::Verification)
    );
}

#[test]
fn evidence_bound_to_other_report_data_or_another_nonce_is_refused() {
    let verifier = intel();
    let mut expected = expected_for(QUOTE_V4);
    expected.report_data[0] ^= 0xFF;
    let failure = refusal(verifier.verify(&evidence(QUOTE_V4, None), &expected));
    assert_eq!(failure.field, "report_data");
    assert_eq!(failure.expected, hex::encode(expected.report_data));
    assert_eq!(
        failure.actual,
        hex::encode(&QUOTE_V4[REPORT_DATA..REPORT_DATA + 64])
    );

    let expected = expected_for(QUOTE_V4);
    let failure = refusal(verifier.verify(&evidence(QUOTE_V4, Some(vec![0xA5; 32])), &expected));
    assert_eq!(failure.field, "eat_nonce");
    assert_eq!(failure.expected, hex::encode(&expected.eat_nonce));
    assert_eq!(failure.actual, hex::encode([0xA5; 32]));

    // The EAT's nonce, when it is the one asked for, passes.
    verifier
        .verify(&evidence(QUOTE_V4, Some(expected.eat_nonce.clone())), &expected)
        .expect("verifies");
}

#[test]
fn evidence_of_another_platform_is_refused() {
    let mut snp = evidence(QUOTE_V4, None);
    snp.kind = EvidenceKind::Snp;
    let failure = refusal(intel().verify(&snp, &expected_for(QUOTE_V4)));
    assert_eq!(
        (
            failure.field.as_str(),
            failure.expected.as_str(),
            failure.actual.as_str()
        ),
        ("evidence.platform", "TDX", "SNP")
    );
}

// A test-only platform: root → PCK CA → PCK, a quoting enclave's attestation key, and quotes
// laid out as Intel's (version 4, certification data type 6 carrying a type-5 PEM chain).

struct TestPlatform {
    root_der: Vec<u8>,
    chain_pem: String,
    pck: EcdsaKeyPair,
    attestation_key: EcdsaKeyPair,
}

/// How a test quote departs from a well-formed one.
#[derive(Default)]
struct Quirks {
    /// The QE report is signed by another key than the PCK.
    qe_signed_by_another_key: bool,
    /// The QE report's REPORTDATA does not hold the attestation key's digest.
    wrong_attestation_key_digest: bool,
    /// The QE report's REPORTDATA padding is not zeros.
    non_zero_padding: bool,
}

fn params(name: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    }
    params
}

fn ring_key(key: &KeyPair) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap()
}

fn sign(key: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    key.sign(&SystemRandom::new(), message).unwrap().as_ref().to_vec()
}

impl TestPlatform {
    fn new(ca_is_ca: bool) -> Self {
        let root = CertifiedIssuer::self_signed(
            params("TEST TDX Root CA", true),
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        )
        .unwrap();
        let ca = CertifiedIssuer::signed_by(
            params("TEST TDX PCK Platform CA", ca_is_ca),
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            &root,
        )
        .unwrap();
        let pck_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let pck = params("TEST TDX PCK Certificate", false)
            .signed_by(&pck_key, &ca)
            .unwrap();
        let attestation_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        TestPlatform {
            root_der: root.der().to_vec(),
            chain_pem: format!("{}{}{}", pck.pem(), ca.pem(), root.pem()),
            pck: ring_key(&pck_key),
            attestation_key: ring_key(&attestation_key),
        }
    }

    fn verifier(&self) -> TdxVerifier {
        TdxVerifier::test_only(self.root_der.clone()).expect("a P-256 CA root")
    }

    /// A quote over a TD report with `td_attributes` and `report_data`.
    fn quote(&self, td_attributes: [u8; 8], report_data: [u8; 64], quirks: &Quirks) -> Vec<u8> {
        let mut quote = Vec::new();
        quote.extend_from_slice(&4u16.to_le_bytes());
        quote.extend_from_slice(&2u16.to_le_bytes());
        quote.extend_from_slice(&0x81u32.to_le_bytes());
        quote.extend_from_slice(&[0; 4]);
        quote.extend_from_slice(&hex::decode("939a7233f79c4ca9940a0db3957f0607").unwrap());
        quote.extend_from_slice(&[0; 20]);
        let mut body = [0u8; 584];
        body[0] = 5;
        body[120..128].copy_from_slice(&td_attributes);
        body[136..184].copy_from_slice(&[0x7D; 48]);
        body[520..584].copy_from_slice(&report_data);
        quote.extend_from_slice(&body);
        let signature = sign(&self.attestation_key, &quote);
        let attestation_key = &self.attestation_key.public_key().as_ref()[1..];

        let authentication = [0xA7u8; 32];
        let mut qe_report = [0u8; 384];
        let digest = Sha256::digest([attestation_key, &authentication[..]].concat());
        qe_report[320..352].copy_from_slice(&digest);
        if quirks.wrong_attestation_key_digest {
            qe_report[320] ^= 1;
        }
        if quirks.non_zero_padding {
            qe_report[383] = 1;
        }
        let qe_signature = if quirks.qe_signed_by_another_key {
            sign(
                &ring_key(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()),
                &qe_report,
            )
        } else {
            sign(&self.pck, &qe_report)
        };
        let mut qe_data = qe_report.to_vec();
        qe_data.extend_from_slice(&qe_signature);
        qe_data.extend_from_slice(&(authentication.len() as i16).to_le_bytes());
        qe_data.extend_from_slice(&authentication);
        qe_data.extend_from_slice(&5i16.to_le_bytes());
        qe_data.extend_from_slice(&(self.chain_pem.len() as i32).to_le_bytes());
        qe_data.extend_from_slice(self.chain_pem.as_bytes());

        let signature_data_len = 64 + 64 + 6 + qe_data.len();
        quote.extend_from_slice(&(signature_data_len as i32).to_le_bytes());
        quote.extend_from_slice(&signature);
        quote.extend_from_slice(attestation_key);
        quote.extend_from_slice(&6i16.to_le_bytes());
        quote.extend_from_slice(&(qe_data.len() as i32).to_le_bytes());
        quote.extend_from_slice(&qe_data);
        quote
    }
}

#[test]
fn a_quote_from_a_test_chain_verifies_only_to_its_test_root_and_says_so() {
    let platform = TestPlatform::new(true);
    let quote = platform.quote([0; 8], [0x42; 64], &Quirks::default());
    let claims = verify(&platform.verifier(), &quote).expect("verifies to the test root");
    assert_eq!(claims.root, Root::TestOnly);
    assert_eq!(claims.report_data.0, vec![0x42; 64]);
    assert_eq!(claims.mr_td.0, vec![0x7D; 48]);
    assert!(!claims.debug);

    let failure = refusal(verify(&intel(), &quote));
    assert_eq!(failure.field, "pck.chain");
    assert!(
        failure
            .expected
            .ends_with("issued by CN=Intel SGX Root CA, O=Intel Corporation, L=Santa Clara, ST=CA, C=US"),
        "{failure}"
    );
    assert_eq!(failure.actual, "another root: CN=TEST TDX Root CA");

    // And a genuine quote is not taken for one of the test root's.
    let failure = refusal(verify(&platform.verifier(), QUOTE_V4));
    assert_eq!(failure.field, "pck.chain");
    assert!(
        failure.actual.starts_with("another root: CN=Intel SGX Root CA"),
        "{failure}"
    );
}

#[test]
fn a_debug_td_from_the_test_chain_is_refused_by_the_default_policy() {
    let platform = TestPlatform::new(true);
    let quote = platform.quote([1, 0, 0, 0, 0, 0, 0, 0], [0; 64], &Quirks::default());
    let claims = platform
        .verifier()
        .evaluate(&evidence(&quote, None), &expected_for(&quote))
        .expect("verifies");
    let failures = Policy::default().appraise(&claims);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].field, "td_attributes.debug");
}

#[test]
fn a_qe_report_the_pck_did_not_sign_or_that_does_not_certify_the_key_is_refused() {
    let platform = TestPlatform::new(true);
    let cases = [
        (
            Quirks {
                qe_signed_by_another_key: true,
                ..Quirks::default()
            },
            "qe_report.signature",
        ),
        (
            Quirks {
                wrong_attestation_key_digest: true,
                ..Quirks::default()
            },
            "qe_report.report_data",
        ),
        (
            Quirks {
                non_zero_padding: true,
                ..Quirks::default()
            },
            "qe_report.report_data",
        ),
    ];
    for (quirks, field) in cases {
        let quote = platform.quote([0; 8], [0; 64], &quirks);
        let failure = refusal(verify(&platform.verifier(), &quote));
        assert_eq!(failure.field, field, "{failure}");
    }
}

#[test]
fn a_chain_whose_intermediate_is_not_a_ca_is_refused() {
    let platform = TestPlatform::new(false);
    let quote = platform.quote([0; 8], [0; 64], &Quirks::default());
    let failure = refusal(verify(&platform.verifier(), &quote));
    assert_eq!(failure.field, "pck.chain");
    assert_eq!(
        failure.expected,
        "CN=TEST TDX PCK Platform CA to be a CA certificate"
    );
}

#[test]
fn a_root_that_is_not_a_self_signed_p256_ca_is_not_accepted() {
    let leaf = params("not a CA", false)
        .self_signed(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap())
        .unwrap();
    assert!(TdxVerifier::test_only(leaf.der().to_vec()).is_err());
    assert!(TdxVerifier::test_only(b"not DER".to_vec()).is_err());
}

/// Bit flips, byte overwrites and truncations anywhere in a quote: never a panic, and a mutated
/// quote is either refused or says exactly what the original says (bytes no signature covers,
/// such as the padding after the certification data, may change).
#[test]
fn mutated_quotes_never_panic_and_never_change_what_is_claimed() {
    let platform = TestPlatform::new(true);
    let test_quote = platform.quote([0; 8], [0x42; 64], &Quirks::default());
    let cases = [(intel(), QUOTE_V4.to_vec()), (platform.verifier(), test_quote)];
    let mut rng = Rng(0x7D5E_C0DE_0000_0001);
    let mut refused = 0;
    for (verifier, original) in &cases {
        let genuine = verify(verifier, original).expect("the original verifies");
        let expected = expected_for(original);
        for _ in 0..1_500 {
            let mut quote = original.clone();
            for _ in 0..1 + rng.below(3) {
                match rng.below(8) {
                    0 => quote.truncate(rng.below(quote.len() + 1)),
                    1 => {
                        // Aim at the certification data, where the parser reads lengths.
                        let start = SIGNED_LEN.min(quote.len());
                        if start < quote.len() {
                            let at = start + rng.below(quote.len() - start);
                            quote[at] = rng.next() as u8;
                        }
                    }
                    _ if !quote.is_empty() => {
                        let at = rng.below(quote.len());
                        quote[at] ^= 1 << rng.below(8);
                    }
                    _ => {}
                }
            }
            match verifier.verify(&evidence(&quote, None), &expected) {
                Ok(claims) => assert_eq!(claims, genuine, "a mutation changed the claims"),
                Err(failure) => {
                    assert!(!failure.field.is_empty());
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 2_500, "only {refused} of 3000 mutations were refused");
}
