//! Checks of the emulated agent's evidence: the EAT as upstream's attestation-service shapes it,
//! its COSE signature, the nonce and report-data binding, and the SEV-SNP report inside it against
//! the TEST ONLY chain — once with the library's verifier and once independently with p384.

use p384::ecdsa::signature::Verifier as _;
use prism_attestation::binding::{Binding, Expected};
use prism_attestation::claims::{Claims, Root};
use prism_attestation::none::NoneVerifier;
use prism_attestation::{Evidence, Verifier as _};
use prism_emulated_agent::attestation::{
    self, CHIP_ID_OFFSET, FAKE_CHIP_ID, FAKE_MEASUREMENT, MEASUREMENT_OFFSET, REPORT_DATA_OFFSET, REPORT_LEN,
    SIGNATURE_OFFSET, SIGNED_LEN,
};
use prism_emulated_agent::eat::{self, Token};
use prism_emulated_agent::sevsnp;
use prost::Message as _;

/// The first bytes of every token: COSE_Sign1 tag (18), a 4-array, protected header `{1: -7}` as a
/// 3-byte string, unprotected header `{4: h'cocos-attestation-service'}` — go-cose's encoding.
pub fn expected_token_prefix() -> Vec<u8> {
    let mut prefix = vec![0xD2, 0x84, 0x43, 0xA1, 0x01, 0x26, 0xA1, 0x04, 0x58, 0x19];
    prefix.extend_from_slice(b"cocos-attestation-service");
    prefix
}

/// Decodes `token`, checks it end to end and returns it with the report inside.
pub fn assert_snp_evidence(
    token: &[u8],
    report_data: &[u8; 64],
    nonce: &[u8; 32],
) -> (Token, sevsnp::Report) {
    assert!(
        token.starts_with(&expected_token_prefix()),
        "COSE_Sign1 header as upstream's"
    );
    let decoded = eat::decode(token).expect("the token decodes");
    assert_eq!(decoded.protected_header().unwrap(), [0xA1, 0x01, 0x26]);
    assert_eq!(decoded.key_id, b"cocos-attestation-service");

    // The signature verifies with the run's key (upstream conveys none on the wire), and with no other.
    let key = attestation::eat_signing_key().unwrap();
    decoded
        .verify(key.public_key())
        .expect("the COSE signature verifies");
    let other = eat::SigningKey::generate().unwrap();
    assert!(decoded.verify(other.public_key()).is_err());
    let mut forged = token.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(eat::decode(&forged).unwrap().verify(key.public_key()).is_err());

    let claims = &decoded.claims;
    assert_eq!(claims.issuer, "cocos-attestation-service");
    assert_eq!(claims.expires_at - claims.issued_at, 300);
    let now = chrono::Utc::now().timestamp();
    assert!((claims.issued_at - now).abs() < 120, "iat is now");
    assert_eq!(claims.platform_type, "SNP");
    // eat_nonce is the vTPM nonce; the report data is bound inside the signed report.
    assert_eq!(claims.nonce.as_deref(), Some(&nonce[..]));
    assert_eq!(claims.ueid.as_deref(), Some(&FAKE_CHIP_ID[..]));
    assert_eq!(claims.oemid, 3704);
    assert_eq!(claims.hw_model, b"SEV-SNP-3");
    assert_eq!(claims.debug_status, 2);
    assert_eq!(claims.int_use, 1);
    assert_eq!(claims.measurements.as_deref(), Some(&FAKE_MEASUREMENT[..]));

    // raw_report: the go-sev-guest Attestation, verified by the platform's verifier against the
    // TEST ONLY root, bound to the report data and nonce asked for.
    let chain = attestation::test_chain().unwrap();
    let expected = Expected {
        binding: Binding::StartupCertificate {
            certificate_sha256: Default::default(),
        },
        report_data: *report_data,
        eat_nonce: nonce.to_vec(),
    };
    let verifier = NoneVerifier::new([chain.ark_der.clone()]).unwrap();
    let evidence = Evidence::decode(token).expect("the platform decodes the evidence");
    let Ok(Claims::None(verified)) = verifier.evaluate(&evidence, &expected) else {
        panic!("the report verifies against the test chain")
    };
    assert_eq!(verified.emulated_snp.unwrap().root, Root::TestOnly);
    let report = sevsnp::Attestation::decode(claims.raw_report.as_slice())
        .unwrap()
        .report
        .unwrap();
    assert_eq!(report.report_data, report_data);
    let snp = claims.snp.as_ref().expect("x-cocos-sevsnp");
    assert_eq!(snp.measurement, report.measurement);
    assert_eq!(snp.chip_id, report.chip_id);
    assert_eq!(snp.signature, report.signature);
    assert_eq!(snp.vmpl, 2);
    assert_eq!(snp.policy, report.policy);
    assert_eq!(
        snp.tcb,
        format!("current:{},reported:{}", report.current_tcb, report.reported_tcb)
    );

    let attestation = sevsnp::Attestation::decode(claims.raw_report.as_slice()).unwrap();
    let certificates = attestation.certificate_chain.as_ref().unwrap();
    assert_eq!(certificates.vcek_cert, chain.vcek_der);
    assert_eq!(certificates.ask_cert, chain.ask_der);
    assert_eq!(certificates.ark_cert, chain.ark_der);
    let product = attestation.product.as_ref().unwrap();
    assert_eq!(product.name, sevsnp::SevProductName::Milan as i32);
    assert_eq!(product.machine_stepping.as_ref().map(|s| s.value), Some(1));

    // A flipped byte in the report, or another root, and it no longer verifies.
    let mut tampered = evidence.clone();
    tampered.report[0x90] ^= 1;
    assert_eq!(
        verifier.evaluate(&tampered, &expected).unwrap_err().field,
        "signature"
    );
    let other_root = NoneVerifier::new([chain.ask_der.clone()]).unwrap();
    assert_eq!(
        other_root.evaluate(&evidence, &expected).unwrap_err().field,
        "vcek.chain"
    );

    assert_signed_snp_report(&report.to_abi_bytes().unwrap(), report_data);
    (decoded, report)
}

/// Checks an SNP report's layout and its signature with the test chain's VCEK, without the
/// library's verifier.
pub fn assert_signed_snp_report(report: &[u8], report_data: &[u8; 64]) {
    assert_eq!(report.len(), REPORT_LEN);
    let version = u32::from_le_bytes(report[0..4].try_into().unwrap());
    assert!(version == 2 || version == 3, "version {version}");
    assert_eq!(
        u32::from_le_bytes(report[0x34..0x38].try_into().unwrap()),
        1,
        "ECDSA P-384 SHA-384"
    );
    assert_eq!(&report[REPORT_DATA_OFFSET..REPORT_DATA_OFFSET + 64], report_data);
    assert_eq!(
        &report[MEASUREMENT_OFFSET..MEASUREMENT_OFFSET + 48],
        &FAKE_MEASUREMENT
    );
    assert_eq!(&report[CHIP_ID_OFFSET..CHIP_ID_OFFSET + 64], &FAKE_CHIP_ID);

    let chain = attestation::test_chain().unwrap();
    let (_, vcek) = x509_parser::pem::parse_x509_pem(chain.vcek_pem.as_bytes()).unwrap();
    let vcek = vcek.parse_x509().unwrap();
    assert!(vcek.subject().to_string().contains("TEST ONLY — NOT AMD"));
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&vcek.public_key().subject_public_key.data).unwrap();
    // r and s are little-endian in 72-byte fields; p384 wants 48 big-endian bytes each.
    let scalar = |offset: usize| {
        let mut be: Vec<u8> = report[offset..offset + 48].to_vec();
        be.reverse();
        assert!(report[offset + 48..offset + 72].iter().all(|b| *b == 0));
        be
    };
    let signature = p384::ecdsa::Signature::from_scalars(
        *p384::FieldBytes::from_slice(&scalar(SIGNATURE_OFFSET)),
        *p384::FieldBytes::from_slice(&scalar(SIGNATURE_OFFSET + 72)),
    )
    .unwrap();
    key.verify(&report[..SIGNED_LEN], &signature)
        .expect("the VCEK signed the report");
    let mut tampered = report[..SIGNED_LEN].to_vec();
    tampered[REPORT_DATA_OFFSET] ^= 1;
    assert!(
        key.verify(&tampered, &signature).is_err(),
        "a changed report must not verify"
    );
}
