//! Prism's participant authentication on the emulated agent, over the TLS its run request asks for.
//! A participant asks `prism.agent.v1.ParticipantAuth/Challenge` for a challenge for its role and
//! signs `prism-agent-auth-v1:<role>:<hex challenge>:<hex SHA-256 of the agent's TLS key>` (spelt
//! out here rather than taken from `prism_proto`, so that these tests pin the format). A challenge
//! opens one call of its role, on this agent, before it expires; upstream's signature over the role
//! alone is refused unless `PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH` is set.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{ACCEPT_COCOS_AUTH, Opened, Pki, Server, agent_config_with, free_port, start_agent};
use prism_proto::agent::agent_service_client::AgentServiceClient;
use prism_proto::agent::{AlgoRequest, DataRequest, ResultRequest};
use prism_proto::chunks::run_request_chunks;
use prism_proto::cvms::{
    AgentConfig, Algorithm, ComputationRunReq, Dataset, ResultConsumer, client_stream_message,
};
use prism_proto::prism_agent::v1::participant_auth_client::ParticipantAuthClient;
use prism_proto::prism_agent::v1::{ChallengeRequest, ChallengeResponse};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ED25519, PublicKeyData as _, SanType, SigningKey as _,
};
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest as _, Sha256};
use sha3::Sha3_256;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

const ALGORITHM: &[u8] = b"#!/bin/sh\nset -e\ncat datasets/numbers.txt > results/copy.txt\n";
const DATASET: &[u8] = b"1\n2\n3\n";
const ALGORITHM_PROVIDER: &str = "algorithm-provider";
const DATA_PROVIDER: &str = "data-provider";
const CONSUMER: &str = "consumer";

/// What a participant signs for one call.
fn signed_message(role: &str, challenge: &[u8], agent_key_sha256: &[u8; 32]) -> Vec<u8> {
    format!(
        "prism-agent-auth-v1:{role}:{}:{}",
        hex::encode(challenge),
        hex::encode(agent_key_sha256)
    )
    .into_bytes()
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

    fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.key.sign(message).unwrap())
    }
}

/// The certificate the agent's participants' listener serves with, from a CA of the test's.
struct AgentTls {
    ca: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    /// The SHA-256 of the certificate's SubjectPublicKeyInfo.
    key_sha256: [u8; 32],
}

impl AgentTls {
    fn new() -> Self {
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test agent CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &ca).unwrap();
        AgentTls {
            ca: ca.der().clone(),
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            key_sha256: Sha256::digest(key.subject_public_key_info()).into(),
        }
    }
}

/// An emulated agent that has taken a run request and serves its participants over TLS.
struct Agent {
    _pki: Pki,
    _server: Server,
    _streams: (Opened, Opened),
    _work: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), prism_emulated_agent::Error>>>,
    listen: SocketAddr,
    tls: AgentTls,
}

impl Agent {
    /// Starts an agent with `env` besides the usual environment (and `challenge_lifetime` when
    /// given), and sends it `request` with an `agent_config` for TLS.
    async fn start(
        env: &[(&str, &str)],
        challenge_lifetime: Option<Duration>,
        mut request: ComputationRunReq,
    ) -> Self {
        let pki = Pki::new();
        let mut server = Server::start(&pki, "127.0.0.1:0".parse().unwrap()).await;
        let work = tempfile::tempdir().unwrap();
        let listen = free_port();
        let mut config = agent_config_with(&pki, server.addr, work.path(), listen, env);
        if let Some(lifetime) = challenge_lifetime {
            config.challenge_lifetime = lifetime;
        }
        let (stop, task) = start_agent(config);
        let (mut agent, logs) = server.agent_streams().await;
        let _startup = agent.next().await;
        let tls = AgentTls::new();
        request.agent_config = Some(AgentConfig {
            cert_file: tls.cert_pem.clone(),
            key_file: tls.key_pem.clone(),
            ..Default::default()
        });
        for chunk in run_request_chunks(&request) {
            agent.send(chunk).await;
        }
        let answer = loop {
            if let Some(client_stream_message::Message::RunRes(answer)) = agent.next().await.message {
                break answer;
            }
        };
        assert_eq!(answer.error, "");
        Agent {
            _pki: pki,
            _server: server,
            _streams: (agent, logs),
            _work: work,
            stop: Some(stop),
            task: Some(task),
            listen,
            tls,
        }
    }

    /// A participant's connection: TLS to the agent's certificate, ALPN h2.
    async fn connect(&self) -> Door {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.tls.ca.clone()).unwrap();
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let listen = self.listen;
        let channel = Endpoint::from_shared(format!("http://{listen}"))
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_| {
                let connector = connector.clone();
                async move {
                    let tcp = tokio::net::TcpStream::connect(listen).await?;
                    tcp.set_nodelay(true)?;
                    let server_name = ServerName::try_from("127.0.0.1").unwrap();
                    let tls = connector.connect(server_name, tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                }
            }))
            .await
            .unwrap();
        Door {
            auth: ParticipantAuthClient::new(channel.clone()),
            agent: AgentServiceClient::new(channel),
            agent_key: self.tls.key_sha256,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// One participant's connection to the agent's two services.
struct Door {
    auth: ParticipantAuthClient<Channel>,
    agent: AgentServiceClient<Channel>,
    /// The SHA-256 of the key of the certificate the agent showed.
    agent_key: [u8; 32],
}

/// The metadata of a call: `prism-challenge` when given, and `signature`.
fn metadata(challenge: Option<&[u8]>, signature: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    if let Some(challenge) = challenge {
        metadata.insert("prism-challenge", STANDARD.encode(challenge).parse().unwrap());
    }
    metadata.insert("signature", signature.parse().unwrap());
    metadata
}

impl Door {
    async fn ask(&mut self, role: &str) -> Result<ChallengeResponse, tonic::Status> {
        self.auth
            .challenge(ChallengeRequest { role: role.into() })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn challenge(&mut self, role: &str) -> Vec<u8> {
        let answer = self.ask(role).await.unwrap();
        assert_eq!(answer.challenge.len(), 32);
        answer.challenge
    }

    /// The metadata of a call of `role` by `who`, signed over a fresh challenge as it should be.
    async fn signed(&mut self, who: &Participant, role: &str) -> MetadataMap {
        let challenge = self.challenge(role).await;
        let signature = who.sign(&signed_message(role, &challenge, &self.agent_key));
        metadata(Some(&challenge), &signature)
    }

    async fn algo(&mut self, metadata: MetadataMap) -> Result<(), tonic::Status> {
        let body = futures::stream::iter([AlgoRequest {
            algorithm: ALGORITHM.to_vec(),
            requirements: Vec::new(),
        }]);
        let mut request = tonic::Request::from_parts(metadata, Default::default(), body);
        request.metadata_mut().insert("algo_type", "bin".parse().unwrap());
        self.agent.algo(request).await.map(|_| ())
    }

    async fn data(&mut self, metadata: MetadataMap) -> Result<(), tonic::Status> {
        let body = futures::stream::iter([DataRequest {
            dataset: DATASET.to_vec(),
            filename: "numbers.txt".into(),
        }]);
        let request = tonic::Request::from_parts(metadata, Default::default(), body);
        self.agent.data(request).await.map(|_| ())
    }

    async fn result(&mut self, metadata: MetadataMap) -> Result<Vec<u8>, tonic::Status> {
        let request = tonic::Request::from_parts(metadata, Default::default(), ResultRequest {});
        let mut stream = self.agent.result(request).await?.into_inner();
        let mut file = Vec::new();
        while let Some(chunk) = stream.message().await? {
            file.extend_from_slice(&chunk.file);
        }
        Ok(file)
    }
}

fn run_request(
    provider: &Participant,
    data_provider: &Participant,
    consumer: &Participant,
) -> ComputationRunReq {
    ComputationRunReq {
        id: "run-1".into(),
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
        ..Default::default()
    }
}

#[track_caller]
fn assert_refused(outcome: Result<(), tonic::Status>, message: &str) {
    let status = outcome.expect_err("the call is refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains(message), "{status:?}");
}

const USED: &str = "the challenge is unknown, already used or expired";
const BAD_SIGNATURE: &str = "signature verification failed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_challenge_opens_one_call_of_its_role_on_this_agent_only() {
    let provider = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let data_provider = Participant::new(&PKCS_ED25519);
    let consumer = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let agent = Agent::start(&[], None, run_request(&provider, &data_provider, &consumer)).await;
    let mut door = agent.connect().await;
    let agent_key = door.agent_key;

    // Asking needs no key, but names a role the agent knows.
    let answer = door.ask(ALGORITHM_PROVIDER).await.unwrap();
    assert_eq!(answer.expires_in_seconds, 60);
    let unknown = door.ask("administrator").await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");

    // Upstream's signature over the role alone is refused by default, saying what is wanted.
    let role_only = provider.sign(ALGORITHM_PROVIDER.as_bytes());
    assert_refused(
        door.algo(metadata(None, &role_only)).await,
        "requires a signed challenge",
    );

    // A challenge issued for another role opens nothing, even signed for this call's role.
    let for_consumer = door.challenge(CONSUMER).await;
    let signature = provider.sign(&signed_message(ALGORITHM_PROVIDER, &for_consumer, &agent_key));
    assert_refused(
        door.algo(metadata(Some(&for_consumer), &signature)).await,
        "issued for another role",
    );

    // A signature made for another agent's key (relayed to this one) is refused, and the challenge
    // it came with is spent: the right signature over it no longer works either.
    let challenge = door.challenge(ALGORITHM_PROVIDER).await;
    let another_agent: [u8; 32] =
        Sha256::digest(KeyPair::generate().unwrap().subject_public_key_info()).into();
    let relayed = provider.sign(&signed_message(ALGORITHM_PROVIDER, &challenge, &another_agent));
    assert_refused(
        door.algo(metadata(Some(&challenge), &relayed)).await,
        BAD_SIGNATURE,
    );
    let right = provider.sign(&signed_message(ALGORITHM_PROVIDER, &challenge, &agent_key));
    assert_refused(door.algo(metadata(Some(&challenge), &right)).await, USED);

    // Signed over another role's message, or with a key registered for another role: refused.
    let challenge = door.challenge(ALGORITHM_PROVIDER).await;
    let other_role = provider.sign(&signed_message(CONSUMER, &challenge, &agent_key));
    assert_refused(
        door.algo(metadata(Some(&challenge), &other_role)).await,
        BAD_SIGNATURE,
    );
    let challenge = door.challenge(ALGORITHM_PROVIDER).await;
    let other_key = consumer.sign(&signed_message(ALGORITHM_PROVIDER, &challenge, &agent_key));
    assert_refused(
        door.algo(metadata(Some(&challenge), &other_key)).await,
        BAD_SIGNATURE,
    );
    // A challenge the agent never issued.
    let made_up = [9u8; 32];
    let signature = provider.sign(&signed_message(ALGORITHM_PROVIDER, &made_up, &agent_key));
    assert_refused(door.algo(metadata(Some(&made_up), &signature)).await, USED);

    // The right signature over a fresh challenge opens the call — once.
    let good = door.signed(&provider, ALGORITHM_PROVIDER).await;
    door.algo(good.clone()).await.unwrap();
    assert_refused(door.algo(good).await, USED);

    let signed = door.signed(&data_provider, DATA_PROVIDER).await;
    door.data(signed).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let result = loop {
        let signed = door.signed(&consumer, CONSUMER).await;
        match door.result(signed).await {
            Ok(result) => break result,
            Err(status) => {
                assert_eq!(status.message(), "computation results are not yet ready");
                assert!(tokio::time::Instant::now() < deadline, "no result");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(result)).unwrap();
    let mut copy = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("copy.txt").unwrap(), &mut copy).unwrap();
    assert_eq!(copy.as_bytes(), DATASET);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_challenge_is_refused() {
    let provider = Participant::new(&PKCS_ED25519);
    let data_provider = Participant::new(&PKCS_ED25519);
    let consumer = Participant::new(&PKCS_ED25519);
    let agent = Agent::start(
        &[],
        Some(Duration::from_secs(1)),
        run_request(&provider, &data_provider, &consumer),
    )
    .await;
    let mut door = agent.connect().await;
    let answer = door.ask(ALGORITHM_PROVIDER).await.unwrap();
    assert_eq!(answer.expires_in_seconds, 1);
    let signature = provider.sign(&signed_message(
        ALGORITHM_PROVIDER,
        &answer.challenge,
        &door.agent_key,
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_refused(
        door.algo(metadata(Some(&answer.challenge), &signature)).await,
        USED,
    );
    // What was refused was the age alone: the same, fresh, is let in.
    let fresh = door.signed(&provider, ALGORITHM_PROVIDER).await;
    door.algo(fresh).await.unwrap();
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_signature_over_the_role_is_accepted_only_with_the_variable_set() {
    let provider = Participant::new(&PKCS_ECDSA_P256_SHA256);
    let data_provider = Participant::new(&PKCS_ED25519);
    let consumer = Participant::new(&PKCS_ED25519);
    let agent = Agent::start(
        &[ACCEPT_COCOS_AUTH],
        None,
        run_request(&provider, &data_provider, &consumer),
    )
    .await;
    let mut door = agent.connect().await;
    // As cocos-cli sends it to the real agent — and it could be sent again.
    let role_only = provider.sign(ALGORITHM_PROVIDER.as_bytes());
    door.algo(metadata(None, &role_only)).await.unwrap();
    // Still only with a registered key, over the call's role.
    let wrong_role = data_provider.sign(ALGORITHM_PROVIDER.as_bytes());
    assert_refused(door.data(metadata(None, &wrong_role)).await, BAD_SIGNATURE);
    // A signed challenge works beside it, and is still single-use.
    let signed = door.signed(&data_provider, DATA_PROVIDER).await;
    door.data(signed.clone()).await.unwrap();
    assert_refused(door.data(signed).await, USED);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outstanding_challenges_are_bounded() {
    let provider = Participant::new(&PKCS_ED25519);
    let data_provider = Participant::new(&PKCS_ED25519);
    let consumer = Participant::new(&PKCS_ED25519);
    let agent = Agent::start(&[], None, run_request(&provider, &data_provider, &consumer)).await;
    let mut door = agent.connect().await;
    let mut first = None;
    for _ in 0..prism_emulated_agent::auth::MAX_OUTSTANDING_CHALLENGES {
        let challenge = door.challenge(CONSUMER).await;
        first.get_or_insert(challenge);
    }
    let refused = door.ask(ALGORITHM_PROVIDER).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Presenting one spends it, which makes room for another.
    let first = first.unwrap();
    let signature = consumer.sign(&signed_message(CONSUMER, &first, &door.agent_key));
    let not_yet = door.result(metadata(Some(&first), &signature)).await.unwrap_err();
    assert_eq!(not_yet.message(), "computation results are not yet ready");
    door.challenge(ALGORITHM_PROVIDER).await;
    agent.stop().await;
}
