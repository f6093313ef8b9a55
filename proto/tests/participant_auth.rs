//! Prism's `prism.agent.v1.ParticipantAuth` contract: its gRPC name, its field numbers, and the
//! message a participant signs, pinned byte for byte (a change breaks every deployed client).

use prism_proto::prism_agent::v1::participant_auth_server::SERVICE_NAME;
use prism_proto::prism_agent::v1::{ChallengeRequest, ChallengeResponse};
use prism_proto::prism_agent::{CHALLENGE_LEN, CHALLENGE_METADATA, SIGNATURE_METADATA, signed_message};
use prism_proto::prost::Message as _;

#[test]
fn the_service_has_its_own_package_apart_from_upstreams() {
    assert_eq!(SERVICE_NAME, "prism.agent.v1.ParticipantAuth");
}

#[test]
fn messages_are_laid_out_as_the_proto_says() {
    let request = ChallengeRequest {
        role: "consumer".into(),
    };
    // Field 1, length-delimited.
    assert_eq!(request.encode_to_vec(), [&[0x0a, 8][..], b"consumer"].concat());
    let response = ChallengeResponse {
        challenge: vec![0xab; 2],
        expires_in_seconds: 60,
    };
    // Field 1 bytes, field 2 varint.
    assert_eq!(response.encode_to_vec(), [0x0a, 2, 0xab, 0xab, 0x10, 60]);
}

#[test]
fn the_signed_message_names_the_scheme_role_challenge_and_agent_key_in_lowercase_hex() {
    let challenge: Vec<u8> = (0..CHALLENGE_LEN as u8).collect();
    let agent_key = [0xf0; 32];
    assert_eq!(
        String::from_utf8(signed_message("data-provider", &challenge, Some(&agent_key))).unwrap(),
        "prism-agent-auth-v1:data-provider:\
         000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f:\
         f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"
    );
    // An agent without TLS has no key to name.
    assert_eq!(
        signed_message("consumer", &[0x0f], None),
        b"prism-agent-auth-v1:consumer:0f:"
    );
    assert_eq!(
        (CHALLENGE_METADATA, SIGNATURE_METADATA),
        ("prism-challenge", "signature")
    );
}
