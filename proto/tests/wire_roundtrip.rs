//! Round-trip and wire-compatibility checks against the upstream Cocos contracts.
//!
//! Each "wire" test decodes a hand-built byte buffer whose tags follow the
//! upstream field numbers, so renumbering a field in the vendored `.proto`
//! files breaks these tests.

use prism_proto::prost::Message;
use prism_proto::{agent, attestation, cvms, manager};

/// Encodes `msg`, decodes it back and asserts equality; returns the bytes.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M) -> Vec<u8> {
    let bytes = msg.encode_to_vec();
    let back = M::decode(bytes.as_slice()).expect("decode");
    assert_eq!(&back, msg);
    bytes
}

#[test]
fn service_names_match_upstream() {
    assert_eq!(
        manager::manager_service_server::SERVICE_NAME,
        "manager.ManagerService"
    );
    assert_eq!(cvms::service_server::SERVICE_NAME, "cvms.Service");
    assert_eq!(agent::agent_service_server::SERVICE_NAME, "agent.AgentService");
    assert_eq!(
        attestation::v1::attestation_service_server::SERVICE_NAME,
        "attestation.v1.AttestationService"
    );
}

#[test]
fn manager_create_req_round_trip_and_field_numbers() {
    let req = manager::CreateReq {
        agent_log_level: "info".into(),
        agent_cvm_server_url: "cvms:7001".into(),
        ttl: "1h".into(),
        aa_kbs_params: "kbs".into(),
        ..Default::default()
    };
    let bytes = round_trip(&req);

    // agent_log_level = 1, agent_cvm_server_url = 5, ttl = 7, aa_kbs_params = 13 (all length-delimited).
    let mut wire = vec![0x0a, 4];
    wire.extend_from_slice(b"info");
    wire.extend_from_slice(&[(5 << 3) | 2, 9]);
    wire.extend_from_slice(b"cvms:7001");
    wire.extend_from_slice(&[(7 << 3) | 2, 2]);
    wire.extend_from_slice(b"1h");
    wire.extend_from_slice(&[(13 << 3) | 2, 3]);
    wire.extend_from_slice(b"kbs");
    assert_eq!(bytes, wire);
    assert_eq!(manager::CreateReq::decode(wire.as_slice()).unwrap(), req);

    // CreateRes: forwarded_port = 1, cvm_id = 2.
    let res =
        manager::CreateRes::decode(&[0x0a, 4, b'7', b'0', b'0', b'1', 0x12, 2, b'c', b'1'][..]).unwrap();
    assert_eq!(res.forwarded_port, "7001");
    assert_eq!(res.cvm_id, "c1");
    round_trip(&res);
}

#[test]
fn cvms_server_stream_run_req_chunks_wire() {
    use cvms::server_stream_message::Message as S;

    let msg = cvms::ServerStreamMessage {
        message: Some(S::RunReqChunks(cvms::RunReqChunks {
            data: b"abc".to_vec(),
            id: "id".into(),
            is_last: true,
        })),
    };
    let bytes = round_trip(&msg);

    // oneof runReqChunks = 1 { data = 1, id = 2, is_last = 3 }.
    let wire = [0x0a, 11, 0x0a, 3, b'a', b'b', b'c', 0x12, 2, b'i', b'd', 0x18, 1];
    assert_eq!(bytes, wire);
    assert_eq!(cvms::ServerStreamMessage::decode(&wire[..]).unwrap(), msg);

    // oneof disconnectReq = 5 { id = 1 }.
    let wire = [(5 << 3) | 2, 3, 0x0a, 1, b'x'];
    let decoded = cvms::ServerStreamMessage::decode(&wire[..]).unwrap();
    assert_eq!(
        decoded.message,
        Some(S::DisconnectReq(cvms::DisconnectReq { id: "x".into() }))
    );
}

#[test]
fn cvms_server_stream_run_req_round_trip() {
    use cvms::server_stream_message::Message as S;

    let run = cvms::ComputationRunReq {
        id: "comp-1".into(),
        name: "demo".into(),
        description: "d".into(),
        datasets: vec![cvms::Dataset {
            hash: vec![0x11; 32],
            user_key: b"pem".to_vec(),
            filename: "data.csv".into(),
            source: Some(cvms::Source {
                r#type: "s3".into(),
                url: "s3://b/k".into(),
                kbs_resource_path: "default/key/k".into(),
                encrypted: true,
            }),
            decompress: true,
            kbs: Some(cvms::KbsConfig {
                url: "https://kbs".into(),
                enabled: true,
            }),
        }],
        algorithm: Some(cvms::Algorithm {
            hash: vec![0x22; 32],
            user_key: b"pem".to_vec(),
            source: None,
            algo_type: "python".into(),
            algo_args: vec!["--x".into()],
            kbs: None,
        }),
        result_consumers: vec![cvms::ResultConsumer {
            user_key: b"rc".to_vec(),
        }],
        agent_config: Some(cvms::AgentConfig {
            port: "7002".into(),
            log_level: "debug".into(),
            attested_tls: true,
            ..Default::default()
        }),
    };
    let msg = cvms::ServerStreamMessage {
        message: Some(S::RunReq(run)),
    };
    let bytes = round_trip(&msg);
    // runReq is oneof field 2 (length-delimited).
    assert_eq!(bytes[0], (2 << 3) | 2);

    // agent_config = 7 { attested_tls = 7 } inside runReq = 2.
    let wire = [(2 << 3) | 2, 4, (7 << 3) | 2, 2, 7 << 3, 1];
    let Some(S::RunReq(decoded)) = cvms::ServerStreamMessage::decode(&wire[..]).unwrap().message else {
        panic!("expected runReq");
    };
    assert!(decoded.agent_config.unwrap().attested_tls);
}

#[test]
fn cvms_client_stream_message_wire() {
    use cvms::client_stream_message::Message as C;

    // oneof agentStateRes = 5 { id = 1, state = 2 }.
    let wire = [(5 << 3) | 2, 8, 0x0a, 1, b'c', 0x12, 3, b'r', b'u', b'n'];
    let decoded = cvms::ClientStreamMessage::decode(&wire[..]).unwrap();
    let expected = cvms::ClientStreamMessage {
        message: Some(C::AgentStateRes(cvms::AgentStateRes {
            id: "c".into(),
            state: "run".into(),
        })),
    };
    assert_eq!(decoded, expected);
    assert_eq!(round_trip(&expected), wire);

    // oneof azureAttestationToken = 7 { file = 1, certSerialNumber = 2 }.
    let wire = [(7 << 3) | 2, 5, 0x0a, 1, 0xff, 0x12, 0];
    let Some(C::AzureAttestationToken(tok)) = cvms::ClientStreamMessage::decode(&wire[..]).unwrap().message
    else {
        panic!("expected azureAttestationToken");
    };
    assert_eq!(tok.file, vec![0xff]);

    // agent_event = 2 with a google.protobuf.Timestamp at field 2.
    let event = cvms::ClientStreamMessage {
        message: Some(C::AgentEvent(cvms::AgentEvent {
            event_type: "algorithm-run".into(),
            timestamp: Some(prism_proto::prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            computation_id: "comp-1".into(),
            details: b"{}".to_vec(),
            originator: "agent".into(),
            status: "completed".into(),
        })),
    };
    let bytes = round_trip(&event);
    assert_eq!(bytes[0], (2 << 3) | 2);
}

#[test]
fn agent_algo_request_wire() {
    let req = agent::AlgoRequest {
        algorithm: b"print(1)".to_vec(),
        requirements: b"numpy".to_vec(),
    };
    let bytes = round_trip(&req);

    // algorithm = 1, requirements = 2.
    let mut wire = vec![0x0a, 8];
    wire.extend_from_slice(b"print(1)");
    wire.extend_from_slice(&[0x12, 5]);
    wire.extend_from_slice(b"numpy");
    assert_eq!(bytes, wire);
    assert_eq!(agent::AlgoRequest::decode(wire.as_slice()).unwrap(), req);

    // AttestationRequest: teeNonce = 1, vtpmNonce = 2, type = 3 (varint).
    let att = agent::AttestationRequest::decode(&[0x0a, 1, 0xaa, 0x12, 1, 0xbb, 0x18, 2][..]).unwrap();
    assert_eq!(att.tee_nonce, vec![0xaa]);
    assert_eq!(att.vtpm_nonce, vec![0xbb]);
    assert_eq!(att.r#type, 2);
    round_trip(&att);
}

#[test]
fn attestation_v1_request_wire() {
    use attestation::v1::{AttestationRequest, PlatformType};

    let req = AttestationRequest {
        report_data: vec![0x01; 64],
        nonce: vec![0x02; 32],
        platform_type: PlatformType::Tdx as i32,
    };
    let bytes = round_trip(&req);
    // platform_type = 3 (varint), last field on the wire; TDX = 2.
    assert_eq!(&bytes[bytes.len() - 2..], &[0x18, 2]);

    let decoded = AttestationRequest::decode(&[0x18, 4][..]).unwrap();
    assert_eq!(decoded.platform_type(), PlatformType::SnpVtpm);
    assert_eq!(PlatformType::NoCc as i32, 6);
}
