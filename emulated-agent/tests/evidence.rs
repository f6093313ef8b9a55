//! The emulated agent's evidence in isolation: the EAT's byte layout against upstream's encoders
//! (fxamacker/cbor, go-cose), the go-sev-guest `Attestation` inside it, and the decoder.

mod common;

use ciborium::Value;
use common::evidence::{assert_snp_evidence, expected_token_prefix};
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable as _, iana};
use prism_emulated_agent::attestation::{self, FAKE_CHIP_ID, FAKE_MEASUREMENT};
use prism_emulated_agent::eat::{self, Claims, EatError};
use prism_emulated_agent::participants;
use prism_emulated_agent::sevsnp::{self, Report};
use prost::Message as _;

fn payload(token: &[u8]) -> Value {
    let sign1 = coset::CoseSign1::from_tagged_slice(token).unwrap();
    ciborium::from_reader(sign1.payload.unwrap().as_slice()).unwrap()
}

fn entries(value: &Value) -> &[(Value, Value)] {
    match value {
        Value::Map(entries) => entries,
        other => panic!("not a map: {other:?}"),
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::Integer(int) => i128::from(*int).to_string(),
        Value::Text(text) => text.clone(),
        other => panic!("unexpected key {other:?}"),
    }
}

/// 'b' byte string, 't' text, 'i' integer, 'm' map, 'n' null.
fn kind(value: &Value) -> char {
    match value {
        Value::Bytes(_) => 'b',
        Value::Text(_) => 't',
        Value::Integer(_) => 'i',
        Value::Map(_) => 'm',
        Value::Null => 'n',
        other => panic!("unexpected value {other:?}"),
    }
}

fn layout(value: &Value) -> Vec<(String, char)> {
    entries(value)
        .iter()
        .map(|(key, value)| (key_name(key), kind(value)))
        .collect()
}

fn owned(layout: &[(&str, char)]) -> Vec<(String, char)> {
    layout
        .iter()
        .map(|(key, kind)| ((*key).to_owned(), *kind))
        .collect()
}

#[test]
fn the_token_carries_upstreams_claims_in_upstreams_order_and_types() {
    let token = attestation::evidence(&[1; 64], &[2; 32]).unwrap();
    assert!(token.starts_with(&expected_token_prefix()));
    let claims = payload(&token);
    // `EATClaims` in declaration order, omitempty claims that are zero left out (eat.go:13-46).
    assert_eq!(
        layout(&claims),
        owned(&[
            ("1", 't'),
            ("6", 'i'),
            ("4", 'i'),
            ("10", 'b'),
            ("256", 'b'),
            ("258", 'i'),
            ("259", 'b'),
            ("263", 'i'),
            ("262", 'i'),
            ("265", 'b'),
            ("platform_type", 't'),
            ("x-cocos-sevsnp", 'm'),
            ("raw_report", 'b'),
        ])
    );
    let snp = &entries(&claims)[11].1;
    assert_eq!(
        layout(snp),
        owned(&[
            ("measurement", 'b'),
            ("tcb", 't'),
            ("platform_info", 'i'),
            ("policy", 'i'),
            ("family_id", 'b'),
            ("image_id", 'b'),
            ("vmpl", 'i'),
            ("signature_algo", 'i'),
            ("current_tcb", 'i'),
            ("reported_tcb", 'i'),
            ("chip_id", 'b'),
            ("committed_tcb", 'i'),
            ("launch_tcb", 'i'),
            ("signature", 'b'),
        ])
    );
    assert_eq!(entries(&claims)[10].1, Value::Text("SNP".into()));
}

#[test]
fn the_evidence_verifies_and_binds_report_data_and_nonce() {
    let (token, report) = assert_snp_evidence(
        &attestation::evidence(&[3; 64], &[4; 32]).unwrap(),
        &[3; 64],
        &[4; 32],
    );
    assert_eq!(token.claims.ueid.as_deref(), Some(&FAKE_CHIP_ID[..]));
    assert_eq!(report.measurement, FAKE_MEASUREMENT);
    // Each request gets a fresh report id, as the firmware gives.
    let again = eat::decode(&attestation::evidence(&[3; 64], &[4; 32]).unwrap()).unwrap();
    assert_ne!(again.claims.raw_report, token.claims.raw_report);
}

#[test]
fn the_report_survives_the_go_sev_guest_conversions() {
    let chain = attestation::test_chain().unwrap();
    let bytes = chain.report(&[5; 64]).unwrap();
    let report = Report::from_abi_bytes(&bytes).unwrap();
    assert_eq!(report.to_abi_bytes().unwrap(), bytes);
    assert_eq!(report.version, 3);
    assert_eq!(report.vmpl, 2);
    assert_eq!(report.signature.len(), 512);
    // Family 0x19, model 0x01, stepping 1 (Milan B1) as CPUID[1].EAX.
    assert_eq!(report.cpuid1eax_fms, 0x00A0_0F11);
    assert_eq!(
        sevsnp::fms_from_cpuid1_eax(report.cpuid1eax_fms),
        (0x19, 0x01, 0x01)
    );

    let mut reserved = bytes.clone();
    reserved[0x4C] = 1;
    assert!(matches!(
        Report::from_abi_bytes(&reserved),
        Err(sevsnp::ReportError::MustBeZero { lo: 0x4C, hi: 0x50 })
    ));
    assert!(Report::from_abi_bytes(&bytes[..0x49F]).is_err());
}

#[test]
fn the_attestation_protobuf_is_laid_out_as_go_marshals_it() {
    let chain = attestation::test_chain().unwrap();
    let attestation = chain.attestation(&[6; 64]).unwrap();
    let encoded = attestation.encode_to_vec();
    // Field 1, the report, comes first; field 3, the product, last: Milan, machine_stepping {1}.
    assert_eq!(encoded[0], 0x0A);
    assert!(encoded.ends_with(&[0x1A, 0x06, 0x08, 0x01, 0x1A, 0x02, 0x08, 0x01]));
    // The certificate chain holds the VCEK (1), ASK (2) and ARK (3), in field order, and nothing else.
    let chain_message = attestation.certificate_chain.as_ref().unwrap().encode_to_vec();
    let mut expected = Vec::new();
    for (tag, der) in [
        (0x0A, &chain.vcek_der),
        (0x12, &chain.ask_der),
        (0x1A, &chain.ark_der),
    ] {
        expected.push(tag);
        prost::encoding::encode_varint(der.len() as u64, &mut expected);
        expected.extend_from_slice(der);
    }
    assert_eq!(chain_message, expected);
    assert_eq!(
        sevsnp::Attestation::decode(encoded.as_slice()).unwrap(),
        attestation
    );
}

#[test]
fn nil_byte_claims_are_written_as_null_as_upstream_does_for_nocc() {
    // Upstream's NoCC token: a 96-byte fake with no ueid or measurements.
    let claims = Claims {
        nonce: Some(vec![8; 32]),
        debug_status: eat::DEBUG_DISABLED_SINCE_BOOT,
        int_use: eat::INTUSE_GENERIC_FRESH,
        platform_type: eat::PLATFORM_NOCC.to_owned(),
        raw_report: vec![0; 96],
        ..Claims::default()
    };
    let key = eat::SigningKey::generate().unwrap();
    let token = eat::encode(claims.clone(), &key, eat::DEFAULT_ISSUER, 1_700_000_000).unwrap();
    assert_eq!(
        layout(&payload(&token)),
        owned(&[
            ("1", 't'),
            ("6", 'i'),
            ("4", 'i'),
            ("10", 'b'),
            ("256", 'n'),
            ("263", 'i'),
            ("262", 'i'),
            ("265", 'n'),
            ("platform_type", 't'),
            ("raw_report", 'b'),
        ])
    );
    let decoded = eat::decode(&token).unwrap();
    decoded.verify(key.public_key()).unwrap();
    assert_eq!(
        decoded.claims,
        Claims {
            issuer: "cocos-attestation-service".into(),
            issued_at: 1_700_000_000,
            expires_at: 1_700_000_300,
            ..claims
        }
    );
}

#[test]
fn a_token_not_shaped_as_upstreams_is_refused() {
    let token = attestation::evidence(&[0; 64], &[0; 32]).unwrap();
    // Untagged: go-cose requires the COSE_Sign1 tag.
    assert!(matches!(eat::decode(&token[1..]), Err(EatError::Cose(_))));

    let sign = |algorithm| {
        CoseSign1Builder::new()
            .protected(HeaderBuilder::new().algorithm(algorithm).build())
            .payload(payload_bytes(&token))
            .signature(vec![0; 64])
            .build()
            .to_tagged_vec()
            .unwrap()
    };
    assert!(matches!(
        eat::decode(&sign(iana::Algorithm::ES384)),
        Err(EatError::Algorithm)
    ));
    assert!(eat::decode(&sign(iana::Algorithm::ES256)).is_ok());

    let wrong_type = CoseSign1Builder::new()
        .protected(HeaderBuilder::new().algorithm(iana::Algorithm::ES256).build())
        .payload({
            let mut bytes = Vec::new();
            ciborium::into_writer(
                &Value::Map(vec![(Value::Integer(10.into()), Value::Text("nonce".into()))]),
                &mut bytes,
            )
            .unwrap();
            bytes
        })
        .build()
        .to_tagged_vec()
        .unwrap();
    assert!(matches!(eat::decode(&wrong_type), Err(EatError::Claim { .. })));
}

fn payload_bytes(token: &[u8]) -> Vec<u8> {
    coset::CoseSign1::from_tagged_slice(token)
        .unwrap()
        .payload
        .unwrap()
}

#[test]
fn each_attestation_type_answers_as_on_an_snp_guest_without_a_vtpm() {
    let token = participants::evidence(0, &[1; 64], &[2; 32]).unwrap();
    assert_snp_evidence(&token, &[1; 64], &[2; 32]);
    for platform in 1..=4 {
        let error = participants::evidence(platform, &[1; 64], &[2; 32]).unwrap_err();
        assert!(
            error.message().starts_with("failed to get raw quote"),
            "{platform}"
        );
    }
    for platform in [5, -1, 6] {
        let error = participants::evidence(platform, &[1; 64], &[2; 32]).unwrap_err();
        assert_eq!(error.message(), "invalid attestation type");
    }
}
