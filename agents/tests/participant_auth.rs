//! How `ParticipantClient` authenticates its calls, against small agents of this test's served over
//! TLS with a certificate of the platform's authority: one that offers Prism's
//! `prism.agent.v1.ParticipantAuth` gets a fresh challenge signed for the call's role and bound to
//! the key of the certificate the connection saw; one without it (as the unmodified Cocos agent)
//! gets Cocos's signature over the role string; one whose challenge service fails gets no call at
//! all. The message format is spelt out here, so that these tests pin it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use futures::Stream;
use prism_agents::AgentEndpoint;
use prism_agents::participant::{ParticipantClient, ParticipantKey, Progress};
use prism_ca::{Authority, CaUrls, KeySource};
use prism_domain::certificate::{Profile, Subject};
use prism_proto::agent::agent_service_server::{AgentService, AgentServiceServer};
use prism_proto::agent::{
    AlgoRequest, AlgoResponse, AttestationRequest, AttestationResponse, AttestationTokenRequest,
    AttestationTokenResponse, DataRequest, DataResponse, ImaMeasurementsRequest, ImaMeasurementsResponse,
    ResultRequest, ResultResponse,
};
use prism_proto::prism_agent::v1::participant_auth_server::{ParticipantAuth, ParticipantAuthServer};
use prism_proto::prism_agent::v1::{ChallengeRequest, ChallengeResponse};
use prism_tls::{Alpn, ClientAuth, ServerIdentity, TlsServerConfig};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use sha2::{Digest as _, Sha256};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

type Answer<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What the agent saw of each call of its `AgentService`: the role of the method, and the metadata.
type Calls = Arc<Mutex<Vec<(&'static str, MetadataMap)>>>;

/// The challenges an agent gave out: for which role, and which.
type Issued = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An `AgentService` that takes everything and notes who called.
#[derive(Clone, Default)]
struct Recorder {
    calls: Calls,
}

impl Recorder {
    fn note(&self, role: &'static str, metadata: &MetadataMap) {
        self.calls.lock().unwrap().push((role, metadata.clone()));
    }
}

#[tonic::async_trait]
impl AgentService for Recorder {
    async fn algo(&self, request: Request<Streaming<AlgoRequest>>) -> Result<Response<AlgoResponse>, Status> {
        self.note("algorithm-provider", request.metadata());
        let mut stream = request.into_inner();
        while stream.message().await?.is_some() {}
        Ok(Response::new(AlgoResponse {}))
    }

    async fn data(&self, request: Request<Streaming<DataRequest>>) -> Result<Response<DataResponse>, Status> {
        self.note("data-provider", request.metadata());
        let mut stream = request.into_inner();
        while stream.message().await?.is_some() {}
        Ok(Response::new(DataResponse {}))
    }

    type ResultStream = Answer<ResultResponse>;

    async fn result(&self, request: Request<ResultRequest>) -> Result<Response<Self::ResultStream>, Status> {
        self.note("consumer", request.metadata());
        let file = ResultResponse {
            file: b"result".to_vec(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(file)]))))
    }

    type AttestationStream = Answer<AttestationResponse>;

    async fn attestation(
        &self,
        _: Request<AttestationRequest>,
    ) -> Result<Response<Self::AttestationStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type IMAMeasurementsStream = Answer<ImaMeasurementsResponse>;

    async fn ima_measurements(
        &self,
        _: Request<ImaMeasurementsRequest>,
    ) -> Result<Response<Self::IMAMeasurementsStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn azure_attestation_token(
        &self,
        _: Request<AttestationTokenRequest>,
    ) -> Result<Response<AttestationTokenResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// A `ParticipantAuth` that hands out a new challenge each time (or fails, when told to), noting
/// which it gave for which role.
#[derive(Clone, Default)]
struct Challenger {
    issued: Issued,
    failing: bool,
}

#[tonic::async_trait]
impl ParticipantAuth for Challenger {
    async fn challenge(
        &self,
        request: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        if self.failing {
            return Err(Status::resource_exhausted("too many outstanding challenges"));
        }
        let mut issued = self.issued.lock().unwrap();
        let challenge = vec![u8::try_from(issued.len()).unwrap() + 1; 32];
        issued.push((request.into_inner().role, challenge.clone()));
        Ok(Response::new(ChallengeResponse {
            challenge,
            expires_in_seconds: 60,
        }))
    }
}

/// The agent's services on one port, by path, as the emulated agent routes them.
#[derive(Clone)]
struct Agent {
    agent: AgentServiceServer<Recorder>,
    auth: Option<ParticipantAuthServer<Challenger>>,
}

impl<B> tower::Service<http::Request<B>> for Agent
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match &self.auth {
            Some(auth)
                if request
                    .uri()
                    .path()
                    .starts_with("/prism.agent.v1.ParticipantAuth/") =>
            {
                let mut auth = auth.clone();
                Box::pin(async move { auth.call(request).await })
            }
            // Without the service, its calls reach `AgentService`, which knows no such method: as
            // on the real agent, the answer is UNIMPLEMENTED.
            _ => {
                let mut agent = self.agent.clone();
                Box::pin(async move { agent.call(request).await })
            }
        }
    }
}

/// A running agent of this test, and how a participant reaches it.
struct Served {
    endpoint: AgentEndpoint,
    /// The SHA-256 of the SubjectPublicKeyInfo of the agent's certificate.
    agent_key: [u8; 32],
    calls: Calls,
    issued: Issued,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves an agent over TLS with an `agent_server` certificate of a fresh authority; with the
/// challenge service when `challenger` is given.
async fn serve(challenger: Option<Challenger>) -> Served {
    let now = Utc::now();
    let (authority, _) = Authority::create(CaUrls::under("https://prism.test"), now).unwrap();
    let subject = Subject {
        common_name: "agent".into(),
        ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    };
    let issued = authority
        .issue(
            Profile::AgentServer,
            &subject,
            Duration::from_secs(24 * 3600),
            KeySource::Generate,
            now,
        )
        .unwrap();
    let chain = issued.pem.clone() + &authority.intermediate_pem();
    let key = issued.private_key_pem.clone().unwrap();
    let tls = TlsServerConfig::new(
        ServerIdentity::from_pem(&chain, &key).unwrap(),
        ClientAuth::None,
        Alpn::Http2,
    )
    .unwrap();
    let agent_key = Sha256::digest(prism_ca::public_key_of_certificate(&issued.pem).unwrap()).into();

    let recorder = Recorder::default();
    let calls = recorder.calls.clone();
    let issued_challenges = challenger.as_ref().map(|c| c.issued.clone()).unwrap_or_default();
    let service = Agent {
        agent: AgentServiceServer::new(recorder),
        auth: challenger.map(ParticipantAuthServer::new),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(prism_tls::serve(listener, tls, service, async move {
        let _ = stopped.await;
    }));
    Served {
        endpoint: AgentEndpoint {
            address: address.to_string(),
            server_name: "127.0.0.1".into(),
            roots_pem: authority.root_pem(),
            client: None,
        },
        agent_key,
        calls,
        issued: issued_challenges,
        _stop: stop,
    }
}

/// A participant's Ed25519 key, and its public half to verify with.
fn participant() -> (ParticipantKey, Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    (ParticipantKey::from_pkcs8_der(pkcs8.as_ref()).unwrap(), public)
}

fn quiet() -> Progress {
    Arc::new(|_| {})
}

/// Makes one call of each role.
async fn call_each_role(client: &mut ParticipantClient, key: &ParticipantKey) {
    client
        .upload_algorithm(key, b"#!/bin/sh\n".to_vec(), "bin", Vec::new(), quiet())
        .await
        .unwrap();
    client
        .upload_dataset(key, b"1\n".to_vec(), "numbers.txt", quiet())
        .await
        .unwrap();
    assert_eq!(client.fetch_result(key, quiet()).await.unwrap(), b"result");
}

fn text<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).map(|value| value.to_str().unwrap())
}

fn verifies(public: &[u8], message: &[u8], signature: &str) -> bool {
    let signature = STANDARD.decode(signature).unwrap();
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &signature)
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_the_challenge_service_gets_a_fresh_challenge_signed_for_the_role_and_its_key() {
    let served = serve(Some(Challenger::default())).await;
    let (key, public) = participant();
    let mut client = ParticipantClient::connect(&served.endpoint).await.unwrap();
    call_each_role(&mut client, &key).await;

    let calls = served.calls.lock().unwrap().clone();
    let issued = served.issued.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    assert_eq!(issued.len(), 3, "one challenge per call");
    for ((role, metadata), (asked_for, challenge)) in calls.iter().zip(&issued) {
        assert_eq!(asked_for, role, "the challenge is asked for the call's role");
        assert_eq!(
            STANDARD
                .decode(text(metadata, "prism-challenge").unwrap())
                .unwrap(),
            *challenge
        );
        let signature = text(metadata, "signature").unwrap();
        let message = format!(
            "prism-agent-auth-v1:{role}:{}:{}",
            hex::encode(challenge),
            hex::encode(served.agent_key)
        );
        assert!(verifies(&public, message.as_bytes(), signature), "{message}");
        assert!(
            !verifies(&public, role.as_bytes(), signature),
            "not Cocos's replayable signature"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_it_gets_cocos_signature_over_the_role() {
    let served = serve(None).await;
    let (key, public) = participant();
    let mut client = ParticipantClient::connect(&served.endpoint).await.unwrap();
    call_each_role(&mut client, &key).await;

    let calls = served.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().map(|(role, _)| *role).collect::<Vec<_>>(),
        ["algorithm-provider", "data-provider", "consumer"]
    );
    for (role, metadata) in &calls {
        assert_eq!(text(metadata, "prism-challenge"), None);
        assert!(verifies(
            &public,
            role.as_bytes(),
            text(metadata, "signature").unwrap()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_challenge_service_fails_gets_no_call() {
    let served = serve(Some(Challenger {
        failing: true,
        ..Challenger::default()
    }))
    .await;
    let (key, _) = participant();
    let mut client = ParticipantClient::connect(&served.endpoint).await.unwrap();
    let refused = client
        .upload_algorithm(&key, b"#!/bin/sh\n".to_vec(), "bin", Vec::new(), quiet())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("too many outstanding challenges"),
        "{refused}"
    );
    assert!(
        served.calls.lock().unwrap().is_empty(),
        "no fallback to the replayable signature"
    );
}
