//! The emulated agent against a minimal control plane, through its public surface: the two CVMS
//! streams, the participants' `AgentService`, and its directory. Participants here speak as
//! cocos-cli speaks to the real agent (a signature over the role alone), so the agents that serve
//! them are started with `PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH`; Prism's signed challenge, the
//! default, is `challenge_auth.rs`'s.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::evidence::assert_snp_evidence;
use common::{ACCEPT_COCOS_AUTH, Pki, Server, agent_config, agent_config_with, free_port, start_agent};
use prism_emulated_agent::attestation;
use prism_emulated_agent::{COMPUTATION_DIR, run};
use prism_proto::agent::agent_service_client::AgentServiceClient;
use prism_proto::agent::{AlgoRequest, AttestationRequest, DataRequest, ResultRequest};
use prism_proto::chunks::{CHUNK_SIZE, run_request_chunks};
use prism_proto::cvms::{
    AgentStateReq, Algorithm, ClientStreamMessage, ComputationRunReq, Dataset, ResultConsumer,
    ServerStreamMessage, StopComputation, client_stream_message, server_stream_message,
};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PublicKeyData as _, SigningKey as _};
use sha2::{Digest as _, Sha256, Sha512};
use sha3::Sha3_256;
use tonic::transport::Channel;

fn message(received: ClientStreamMessage) -> client_stream_message::Message {
    received.message.expect("a message with its oneof set")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_opens_two_streams_and_first_sends_its_attestation_bound_to_its_certificate() {
    let pki = Pki::new();
    let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let (stop, task) = start_agent(agent_config(&pki, server.addr, work.path(), free_port()));

    let (mut agent, mut logs) = server.agent_streams().await;
    assert_eq!(agent.metadata.get("job-id").unwrap(), "cvm-7");
    assert!(agent.metadata.get("connection-type").is_none());
    assert_eq!(logs.metadata.get("job-id").unwrap(), "cvm-7");
    assert_eq!(logs.metadata.get("connection-type").unwrap(), "log-forwarder");

    let client_stream_message::Message::VTpMattestationReport(startup) = message(agent.next().await) else {
        panic!("the first message is not the start-up attestation");
    };
    // 0x0102030405 in decimal.
    assert_eq!(startup.cert_serial_number, "4328719365");
    let pem = std::fs::read(pki.path("cert.pem")).unwrap();
    let report_data: [u8; 64] = Sha512::digest(&pem).into();
    let nonce: [u8; 32] = Sha256::digest(&pem).into();
    assert_snp_evidence(&startup.file, &report_data, &nonce);

    // The log forwarder carries logs; the agent's stream carried nothing but its answer.
    let client_stream_message::Message::AgentLog(log) = message(logs.next().await) else {
        panic!("the log forwarder's first message is not a log");
    };
    assert!(log.message.contains("INSECURE"));
    assert_eq!(log.level, "WARN");

    // The test root is on disk, and it is the chain's root.
    let root = std::fs::read_to_string(work.path().join("test-attestation-chain/ark.pem")).unwrap();
    assert_eq!(root, attestation::test_root_pem().unwrap());
    // So is the EAT's public key, which upstream publishes nowhere.
    let eat_key = std::fs::read_to_string(work.path().join("test-attestation-chain/eat-key.pem")).unwrap();
    assert_eq!(eat_key, attestation::eat_signing_key().unwrap().public_key_pem());

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_connection_failing_is_an_error() {
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let nobody = free_port();
    let outcome = run(
        agent_config(&pki, nobody, work.path(), free_port()),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(outcome, Err(prism_emulated_agent::Error::Connect { .. })),
        "{outcome:?}"
    );
}

struct Participant {
    key: KeyPair,
}

impl Participant {
    fn new(algorithm: &'static rcgen::SignatureAlgorithm) -> Self {
        Participant {
            key: KeyPair::generate_for(algorithm).unwrap(),
        }
    }

    fn spki(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }

    fn signature(&self, role: &str) -> String {
        STANDARD.encode(self.key.sign(role.as_bytes()).unwrap())
    }

    fn request<T>(&self, role: &str, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        request.metadata_mut().insert("user-id", role.parse().unwrap());
        request
            .metadata_mut()
            .insert("signature", self.signature(role).parse().unwrap());
        request
    }
}

async fn upload_algo(
    client: &mut AgentServiceClient<Channel>,
    request: tonic::Request<()>,
    algorithm: &[u8],
) -> Result<(), tonic::Status> {
    upload_algo_of_type(client, request, algorithm, "bin").await
}

async fn upload_algo_of_type(
    client: &mut AgentServiceClient<Channel>,
    request: tonic::Request<()>,
    algorithm: &[u8],
    algo_type: &str,
) -> Result<(), tonic::Status> {
    let (metadata, extensions, ()) = request.into_parts();
    let mut request = tonic::Request::from_parts(
        metadata,
        extensions,
        futures::stream::iter([AlgoRequest {
            algorithm: algorithm.to_vec(),
            requirements: Vec::new(),
        }]),
    );
    request
        .metadata_mut()
        .insert("algo_type", algo_type.parse().unwrap());
    client.algo(request).await.map(|_| ())
}

async fn upload_data(
    client: &mut AgentServiceClient<Channel>,
    request: tonic::Request<()>,
    dataset: &[u8],
    filename: &str,
) -> Result<(), tonic::Status> {
    let (metadata, extensions, ()) = request.into_parts();
    let request = tonic::Request::from_parts(
        metadata,
        extensions,
        futures::stream::iter([DataRequest {
            dataset: dataset.to_vec(),
            filename: filename.into(),
        }]),
    );
    client.data(request).await.map(|_| ())
}

/// Sends `request` to the agent in chunks, as the platform does, and waits for its answer, which
/// must accept it; then opens the participants' API that the agent starts: its client.
async fn run_and_connect(
    agent: &mut common::Opened,
    request: &ComputationRunReq,
    listen: &std::net::SocketAddr,
) -> AgentServiceClient<Channel> {
    for chunk in run_request_chunks(request) {
        agent.send(chunk).await;
    }
    let client_stream_message::Message::RunRes(run_res) = message(agent.next().await) else {
        panic!("no RunRes");
    };
    assert_eq!(run_res.error, "");
    let channel = Channel::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AgentServiceClient::new(channel)
}

async fn state(agent: &mut common::Opened, id: &str) -> String {
    agent
        .send(ServerStreamMessage {
            message: Some(server_stream_message::Message::AgentStateReq(AgentStateReq {
                id: id.into(),
            })),
        })
        .await;
    loop {
        if let client_stream_message::Message::AgentStateRes(res) = message(agent.next().await) {
            assert_eq!(res.id, id);
            return res.state;
        }
    }
}

const ALGORITHM: &[u8] = b"#!/bin/sh\nset -e\ncat datasets/numbers.txt > results/copy.txt\nwc -l < datasets/numbers.txt > results/count.txt\n";
const DATASET: &[u8] = b"1\n2\n3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_runs_from_a_chunked_run_request_to_a_consumed_zip_with_upstreams_checks() {
    let pki = Pki::new();
    let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let listen = free_port();
    // These calls speak as cocos-cli speaks to the real agent: a signature over the role alone.
    let (stop, task) = start_agent(agent_config_with(
        &pki,
        server.addr,
        work.path(),
        listen,
        &[ACCEPT_COCOS_AUTH],
    ));
    let (mut agent, mut logs) = server.agent_streams().await;
    let _startup = agent.next().await;
    assert_eq!(state(&mut agent, "s-1").await, "ReceivingManifest");

    let provider = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let data_provider = Participant::new(&PKCS_ED25519);
    let consumer = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let request = ComputationRunReq {
        id: "run-1".into(),
        name: "copy".into(),
        // Big enough to need three 1 MiB chunks.
        description: "d".repeat(2 * CHUNK_SIZE + 10),
        datasets: vec![Dataset {
            hash: Sha3_256::digest(DATASET).to_vec(),
            user_key: data_provider.spki(),
            filename: "numbers.txt".into(),
            ..Default::default()
        }],
        algorithm: Some(Algorithm {
            hash: Sha3_256::digest(ALGORITHM).to_vec(),
            user_key: provider.spki(),
            ..Default::default()
        }),
        result_consumers: vec![ResultConsumer {
            user_key: consumer.spki(),
        }],
        agent_config: None,
    };
    let chunks = run_request_chunks(&request);
    assert!(chunks.len() > 2);
    for chunk in chunks {
        agent.send(chunk).await;
    }
    let client_stream_message::Message::RunRes(run_res) = message(agent.next().await) else {
        panic!("no RunRes");
    };
    assert_eq!(run_res.computation_id, "run-1");
    assert_eq!(run_res.error, "");
    assert_eq!(state(&mut agent, "s-2").await, "ReceivingAlgorithm");

    let channel = Channel::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // cocos-cli asks the health service first.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "agent".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut client = AgentServiceClient::new(channel);

    // A key registered for another role, and a signature over another role, are refused.
    let refused = upload_algo(&mut client, consumer.request("algorithm-provider", ()), ALGORITHM)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(refused.message(), "signature verification failed");
    let refused = upload_algo(&mut client, provider.request("consumer", ()), ALGORITHM)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (tonic::Code::Unauthenticated, "signature verification failed")
    );
    // Data before the algorithm is out of order.
    let early = upload_data(
        &mut client,
        data_provider.request("data-provider", ()),
        DATASET,
        "numbers.txt",
    )
    .await
    .unwrap_err();
    assert_eq!(
        early.message(),
        "agent not expecting this operation in the current state"
    );
    // Another algorithm than the manifest's.
    let wrong = upload_algo(
        &mut client,
        provider.request("algorithm-provider", ()),
        b"#!/bin/sh\nexit 0\n",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (wrong.code(), wrong.message()),
        (
            tonic::Code::Unknown,
            "malformed data, hash does not match manifest"
        )
    );
    upload_algo(&mut client, provider.request("algorithm-provider", ()), ALGORITHM)
        .await
        .unwrap();
    assert_eq!(state(&mut agent, "s-3").await, "ReceivingData");

    let wrong_name = upload_data(
        &mut client,
        data_provider.request("data-provider", ()),
        DATASET,
        "Numbers.txt",
    )
    .await
    .unwrap_err();
    assert_eq!(
        wrong_name.message(),
        "dataset not declared in computation manifest"
    );
    let wrong_hash = upload_data(
        &mut client,
        data_provider.request("data-provider", ()),
        b"4\n",
        "numbers.txt",
    )
    .await
    .unwrap_err();
    assert_eq!(
        wrong_hash.message(),
        "malformed data, hash does not match manifest"
    );
    let not_yet = client
        .result(consumer.request("consumer", ResultRequest {}))
        .await
        .unwrap_err();
    assert_eq!(not_yet.message(), "computation results are not yet ready");
    upload_data(
        &mut client,
        data_provider.request("data-provider", ()),
        DATASET,
        "numbers.txt",
    )
    .await
    .unwrap();

    // The run ends in ConsumingResults; the consumer's download completes the computation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = state(&mut agent, "s-4").await;
        if now == "ConsumingResults" {
            break;
        }
        assert_ne!(now, "Failed");
        assert!(tokio::time::Instant::now() < deadline, "stuck in {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = client
        .result(data_provider.request("consumer", ResultRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let response = client
        .result(consumer.request("consumer", ResultRequest {}))
        .await
        .unwrap();
    let size: usize = response
        .metadata()
        .get("file-size")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut stream = response.into_inner();
    let mut zip_bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        zip_bytes.extend_from_slice(&chunk.file);
    }
    assert_eq!(zip_bytes.len(), size);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    assert_eq!(
        archive.file_names().collect::<std::collections::BTreeSet<_>>(),
        ["copy.txt", "count.txt"].into()
    );
    let mut copy = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("copy.txt").unwrap(), &mut copy).unwrap();
    assert_eq!(copy.as_bytes(), DATASET);
    assert_eq!(state(&mut agent, "s-5").await, "Complete");
    assert!(
        !work.path().join(COMPUTATION_DIR).exists(),
        "the computation's files are wiped"
    );

    // Attestation for a participant: the report data is its TEE nonce, eat_nonce its vTPM nonce,
    // each zero-padded.
    let mut attestation = client
        .attestation(AttestationRequest {
            tee_nonce: vec![7u8; 40],
            vtpm_nonce: vec![9u8; 20],
            r#type: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut token = Vec::new();
    while let Some(chunk) = attestation.message().await.unwrap() {
        token.extend_from_slice(&chunk.file);
    }
    let mut report_data = [0u8; 64];
    report_data[..40].fill(7);
    let mut vtpm_nonce = [0u8; 32];
    vtpm_nonce[..20].fill(9);
    assert_snp_evidence(&token, &report_data, &vtpm_nonce);
    let too_long = client
        .attestation(AttestationRequest {
            tee_nonce: vec![0; 65],
            vtpm_nonce: Vec::new(),
            r#type: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        too_long.message(),
        "malformed report data, expect less or equal to 64 bytes"
    );

    // The log forwarder carried the state machine's events, named and ordered as upstream's.
    let mut events = Vec::new();
    while events
        .last()
        .map(|(t, s): &(String, String)| (t.as_str(), s.as_str()))
        != Some(("Complete", "Completed"))
    {
        if let client_stream_message::Message::AgentEvent(event) = message(logs.next().await) {
            assert_eq!(event.computation_id, "run-1");
            assert_eq!(event.originator, "agent");
            events.push((event.event_type, event.status));
        }
    }
    let expected = [
        ("ReceivingAlgorithm", "InProgress"),
        ("ReceivingData", "InProgress"),
        ("Running", "Starting"),
        ("Running", "InProgress"),
        ("Running", "Completed"),
        ("ConsumingResults", "Ready"),
        ("Complete", "Completed"),
    ];
    assert_eq!(events, expected.map(|(t, s)| (t.to_string(), s.to_string())));

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_made_while_the_stream_is_down_is_kept_on_disk_and_sent_first_after_reconnecting() {
    let pki = Pki::new();
    let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let mut config = agent_config(&pki, server.addr, work.path(), free_port());
    config.reconnect_interval = Duration::from_secs(2);
    let (stop, task) = start_agent(config);
    let (agent, _logs) = server.agent_streams().await;
    let mut agent = agent;
    let _startup = agent.next().await;

    // The stop takes a moment (upstream pauses 200 ms); the stream ends before it answers.
    agent
        .send(ServerStreamMessage {
            message: Some(server_stream_message::Message::StopComputation(StopComputation {
                computation_id: "run-9".into(),
            })),
        })
        .await;
    drop(agent);
    let pending_file = work.path().join("pending_messages.json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&pending_file).is_ok_and(|text| text.contains("message")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answer was never put aside"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut again = server.next_stream().await;
    assert!(!again.is_log_forwarder());
    let client_stream_message::Message::StopComputationRes(res) = message(again.next().await) else {
        panic!("the pending answer is not the first message after reconnecting");
    };
    assert_eq!(res.computation_id, "run-9");
    assert_eq!(res.message, "");
    // Sent, it is struck from the file (written just after the send, so looked for a little).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pending_file).unwrap() != "[]" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sent answer stays in {}",
            pending_file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_its_oneof_drops_the_stream_and_the_agent_dials_again() {
    let pki = Pki::new();
    let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let mut config = agent_config(&pki, server.addr, work.path(), free_port());
    config.reconnect_interval = Duration::from_millis(500);
    let (stop, task) = start_agent(config);
    let (mut agent, _logs) = server.agent_streams().await;
    let _startup = agent.next().await;

    agent.send(ServerStreamMessage { message: None }).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), agent.inbound.message())
        .await
        .unwrap();
    assert!(
        !matches!(ended, Ok(Some(_))),
        "the agent kept the stream: {ended:?}"
    );
    let mut again = server.next_stream().await;
    assert_eq!(again.metadata.get("job-id").unwrap(), "cvm-7");
    assert_eq!(state(&mut again, "after").await, "ReceivingManifest");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_the_run_kills_the_algorithm_wipes_its_files_and_closes_the_participants_door() {
    let pki = Pki::new();
    let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let listen = free_port();
    // These calls speak as cocos-cli speaks to the real agent: a signature over the role alone.
    let (stop, task) = start_agent(agent_config_with(
        &pki,
        server.addr,
        work.path(),
        listen,
        &[ACCEPT_COCOS_AUTH],
    ));
    let (mut agent, _logs) = server.agent_streams().await;
    let _startup = agent.next().await;

    let slow: &[u8] = b"#!/bin/sh\nsleep 30\n";
    let provider = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let consumer = Participant::new(&PKCS_ED25519);
    let request = ComputationRunReq {
        id: "run-2".into(),
        algorithm: Some(Algorithm {
            hash: Sha3_256::digest(slow).to_vec(),
            user_key: provider.spki(),
            ..Default::default()
        }),
        result_consumers: vec![ResultConsumer {
            user_key: consumer.spki(),
        }],
        ..Default::default()
    };
    let mut client = run_and_connect(&mut agent, &request, &listen).await;
    upload_algo(&mut client, provider.request("algorithm-provider", ()), slow)
        .await
        .unwrap();
    assert_eq!(state(&mut agent, "running").await, "Running");
    assert!(work.path().join(COMPUTATION_DIR).join("algo").exists());

    agent
        .send(ServerStreamMessage {
            message: Some(server_stream_message::Message::StopComputation(StopComputation {
                computation_id: "run-2".into(),
            })),
        })
        .await;
    let stopped = loop {
        if let client_stream_message::Message::StopComputationRes(res) = message(agent.next().await) {
            break res;
        }
    };
    assert_eq!(stopped.computation_id, "run-2");
    assert!(
        !work.path().join(COMPUTATION_DIR).exists(),
        "the stop wipes the computation's files"
    );
    assert_eq!(state(&mut agent, "after").await, "ReceivingManifest");
    // The ingress does not come back after a stop, as upstream's.
    assert!(tokio::net::TcpStream::connect(listen).await.is_err());

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// A `python` algorithm without requirements runs with the system's `python3`, in the computation's
/// directory, with `datasets/` to read and `results/` to write, as upstream's runner lays them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_algorithm_runs_over_the_datasets_and_its_results_reach_the_consumer() {
    const SUM: &[u8] = b"import pathlib\nnumbers = pathlib.Path('datasets/numbers.txt').read_text().split()\npathlib.Path('results/sum.txt').write_text(str(sum(int(n) for n in numbers)))\n";
    let pki = Pki::new();
    let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let listen = free_port();
    // These calls speak as cocos-cli speaks to the real agent: a signature over the role alone.
    let (stop, task) = start_agent(agent_config_with(
        &pki,
        server.addr,
        work.path(),
        listen,
        &[ACCEPT_COCOS_AUTH],
    ));
    let (mut agent, _logs) = server.agent_streams().await;
    let _startup = agent.next().await;
    let provider = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let consumer = Participant::new(&PKCS_ED25519);
    let request = ComputationRunReq {
        id: "run-python".into(),
        name: "sum".into(),
        datasets: vec![Dataset {
            hash: Sha3_256::digest(DATASET).to_vec(),
            user_key: provider.spki(),
            filename: "numbers.txt".into(),
            ..Default::default()
        }],
        algorithm: Some(Algorithm {
            hash: Sha3_256::digest(SUM).to_vec(),
            user_key: provider.spki(),
            ..Default::default()
        }),
        result_consumers: vec![ResultConsumer {
            user_key: consumer.spki(),
        }],
        ..Default::default()
    };
    let mut client = run_and_connect(&mut agent, &request, &listen).await;
    upload_algo_of_type(
        &mut client,
        provider.request("algorithm-provider", ()),
        SUM,
        "python",
    )
    .await
    .unwrap();
    upload_data(
        &mut client,
        provider.request("data-provider", ()),
        DATASET,
        "numbers.txt",
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = state(&mut agent, "p").await;
        if now == "ConsumingResults" {
            break;
        }
        assert_ne!(now, "Failed", "the python algorithm failed");
        assert!(tokio::time::Instant::now() < deadline, "stuck in {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream = client
        .result(consumer.request("consumer", ResultRequest {}))
        .await
        .unwrap()
        .into_inner();
    let mut zip_bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        zip_bytes.extend_from_slice(&chunk.file);
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut sum = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("sum.txt").unwrap(), &mut sum).unwrap();
    assert_eq!(sum, "6");
    assert!(
        !work.path().join(COMPUTATION_DIR).exists(),
        "the computation's files are wiped"
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// An agent that has its algorithm and awaits datasets, with a data provider dialled to it.
struct ReceivingData {
    work: tempfile::TempDir,
    client: AgentServiceClient<Channel>,
    data_provider: Participant,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), prism_emulated_agent::Error>>,
    // Kept for the agent's streams and certificates.
    _control_plane: (Pki, Server, common::Opened, common::Opened),
}

impl ReceivingData {
    /// The agent awaits `datasets` (file name, bytes).
    async fn start(datasets: &[(&str, &[u8])]) -> Self {
        let pki = Pki::new();
        let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
        let work = tempfile::tempdir().unwrap();
        let listen = free_port();
        let (stop, task) = start_agent(agent_config_with(
            &pki,
            server.addr,
            work.path(),
            listen,
            &[ACCEPT_COCOS_AUTH],
        ));
        let (mut agent, logs) = server.agent_streams().await;
        let _startup = agent.next().await;
        let provider = Participant::new(&PKCS_ECDSA_P256_SHA256);
        let data_provider = Participant::new(&PKCS_ED25519);
        let request = ComputationRunReq {
            id: "run-data".into(),
            datasets: datasets
                .iter()
                .map(|(filename, bytes)| Dataset {
                    hash: Sha3_256::digest(bytes).to_vec(),
                    user_key: data_provider.spki(),
                    filename: (*filename).into(),
                    ..Default::default()
                })
                .collect(),
            algorithm: Some(Algorithm {
                hash: Sha3_256::digest(ALGORITHM).to_vec(),
                user_key: provider.spki(),
                ..Default::default()
            }),
            result_consumers: vec![ResultConsumer {
                user_key: provider.spki(),
            }],
            ..Default::default()
        };
        let mut client = run_and_connect(&mut agent, &request, &listen).await;
        upload_algo(&mut client, provider.request("algorithm-provider", ()), ALGORITHM)
            .await
            .unwrap();
        assert_eq!(state(&mut agent, "data").await, "ReceivingData");
        ReceivingData {
            work,
            client,
            data_provider,
            stop,
            task,
            _control_plane: (pki, server, agent, logs),
        }
    }

    /// A file or directory of the computation's directory.
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.work.path().join(COMPUTATION_DIR).join(name)
    }

    /// `dataset` in `chunk`-byte messages, each naming `filename`.
    async fn upload(&mut self, dataset: &[u8], filename: &str, chunk: usize) -> Result<(), tonic::Status> {
        let messages: Vec<DataRequest> = dataset
            .chunks(chunk)
            .map(|piece| DataRequest {
                dataset: piece.to_vec(),
                filename: filename.into(),
            })
            .collect();
        let request = self
            .data_provider
            .request("data-provider", futures::stream::iter(messages));
        self.client.data(request).await.map(|_| ())
    }

    async fn end(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// The names of the files in `dir`, none when it is missing.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits up to 5 s for `dir` to hold as many files as `count` wants.
async fn until_files(dir: &std::path::Path, count: impl Fn(usize) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !count(files_in(dir).len()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} holds {:?}",
            dir.display(),
            files_in(dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `len` bytes that differ from one another (xorshift), so a misplaced chunk shows.
fn varied_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_streamed_in_1_mib_chunks_arrives_byte_exact_and_a_tampered_one_leaves_nothing() {
    let big = varied_bytes(5 * MIB);
    let mut agent = ReceivingData::start(&[("big.bin", &big), ("numbers.txt", DATASET)]).await;

    let mut tampered = big.clone();
    tampered[4 * MIB + 17] ^= 0x80;
    let refused = agent.upload(&tampered, "big.bin", MIB).await.unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (
            tonic::Code::Unknown,
            "malformed data, hash does not match manifest"
        )
    );
    assert_eq!(files_in(&agent.path("datasets")), Vec::<String>::new());
    assert_eq!(files_in(&agent.path("incoming")), Vec::<String>::new());

    agent.upload(&big, "big.bin", MIB).await.unwrap();
    assert!(
        std::fs::read(agent.path("datasets/big.bin")).unwrap() == big,
        "the dataset in datasets/ differs from the one sent"
    );
    assert_eq!(files_in(&agent.path("incoming")), Vec::<String>::new());
    agent.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_mid_stream_leaves_no_temporary_file() {
    let big = varied_bytes(8 * MIB);
    let mut agent = ReceivingData::start(&[("big.bin", &big)]).await;
    let incoming = agent.path("incoming");
    let chunk = |range: std::ops::Range<usize>| DataRequest {
        dataset: big[range].to_vec(),
        filename: "big.bin".into(),
    };

    // The call dropped while its stream is open: the agent sees the stream reset.
    let (mut sender, body) = futures::channel::mpsc::channel::<DataRequest>(0);
    let mut client = agent.client.clone();
    let request = agent.data_provider.request("data-provider", body);
    let call = tokio::spawn(async move { client.data(request).await });
    futures::SinkExt::send(&mut sender, chunk(0..MIB)).await.unwrap();
    futures::SinkExt::send(&mut sender, chunk(MIB..2 * MIB))
        .await
        .unwrap();
    until_files(&incoming, |n| n == 1).await;
    call.abort();
    until_files(&incoming, |n| n == 0).await;
    drop(sender);

    // The stream failing: a message over the agent's 4 MiB limit.
    let (mut sender, body) = futures::channel::mpsc::channel::<DataRequest>(0);
    let mut client = agent.client.clone();
    let request = agent.data_provider.request("data-provider", body);
    let call = tokio::spawn(async move { client.data(request).await });
    futures::SinkExt::send(&mut sender, chunk(0..MIB)).await.unwrap();
    until_files(&incoming, |n| n == 1).await;
    futures::SinkExt::send(&mut sender, chunk(MIB..7 * MIB))
        .await
        .unwrap();
    let failed = call.await.unwrap().unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Internal, "{failed:?}");
    until_files(&incoming, |n| n == 0).await;

    // The stream ended early: what came is not the dataset.
    let (mut sender, body) = futures::channel::mpsc::channel::<DataRequest>(0);
    let mut client = agent.client.clone();
    let request = agent.data_provider.request("data-provider", body);
    let call = tokio::spawn(async move { client.data(request).await });
    futures::SinkExt::send(&mut sender, chunk(0..MIB)).await.unwrap();
    drop(sender);
    let short = call.await.unwrap().unwrap_err();
    assert_eq!(short.message(), "malformed data, hash does not match manifest");
    assert_eq!(files_in(&incoming), Vec::<String>::new());

    assert_eq!(files_in(&agent.path("datasets")), Vec::<String>::new());
    // Still expected: it arrives whole.
    agent.upload(&big, "big.bin", MIB).await.unwrap();
    agent.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_file_name_is_refused_at_the_first_chunk_before_the_dataset_is_sent() {
    let mut agent = ReceivingData::start(&[("numbers.txt", DATASET)]).await;

    // A client stream that would go on for ever after its first chunk.
    let body = futures::StreamExt::chain(
        futures::stream::iter([DataRequest {
            dataset: vec![7; MIB],
            filename: "other.txt".into(),
        }]),
        futures::stream::pending(),
    );
    let request = agent.data_provider.request("data-provider", body);
    let refused = tokio::time::timeout(Duration::from_secs(10), agent.client.data(request))
        .await
        .expect("the agent waited for the rest of an undeclared dataset")
        .unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (
            tonic::Code::Unknown,
            "dataset not declared in computation manifest"
        )
    );
    assert_eq!(files_in(&agent.path("incoming")), Vec::<String>::new());

    // A later message naming another file is refused too.
    let request = agent.data_provider.request(
        "data-provider",
        futures::stream::iter([
            DataRequest {
                dataset: DATASET[..2].to_vec(),
                filename: "numbers.txt".into(),
            },
            DataRequest {
                dataset: DATASET[2..].to_vec(),
                filename: "other.txt".into(),
            },
        ]),
    );
    let renamed = agent.client.data(request).await.unwrap_err();
    assert_eq!(renamed.message(), "dataset file name changed during the upload");
    until_files(&agent.path("incoming"), |n| n == 0).await;
    assert_eq!(files_in(&agent.path("datasets")), Vec::<String>::new());
    agent.end().await;
}
