//! `agent.AgentService` for participants, with the gRPC health service, as the real agent serves
//! it once a run request arrives (`agent/cvms/server/cvm.go:50-110`, `agent/api/grpc/server.go`),
//! on the address of its ingress (`pkg/ingress/proxy.go`, port 7002): plain HTTP/2 when the run
//! request's `agent_config` has no certificate, TLS when it has `cert_file`/`key_file`, mutual TLS
//! when it also has `client_ca_file` (each a path or inline PEM, `pkg/ingress/tls.go:36-45`).
//!
//! Differences from upstream: no gRPC reflection service; `AlgoRequest` without `algo_type`
//! metadata runs as `bin` (upstream indexes the missing value and panics); a dataset is written to
//! disk as it arrives ([`crate::computation`]), so the first `DataRequest` must name its file
//! (upstream takes the last name given; cocos-cli and Prism name it in every message), a later
//! one naming another file is refused, and a dataset the agent cannot take now is refused at its
//! first message rather than once all of it is in; Prism's
//! `prism.agent.v1.ParticipantAuth` is served on the same port, and a call must carry a signed
//! challenge of it unless upstream's replayable scheme is turned on ([`crate::auth`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prism_proto::agent::agent_service_server::{AgentService, AgentServiceServer};
use prism_proto::agent::{
    AlgoRequest, AlgoResponse, AttestationRequest, AttestationResponse, AttestationTokenRequest,
    AttestationTokenResponse, DataRequest, DataResponse, ImaMeasurementsRequest, ImaMeasurementsResponse,
    ResultRequest, ResultResponse,
};
use prism_proto::cvms::AgentConfig;
use prism_proto::prism_agent::v1::participant_auth_server::{ParticipantAuth, ParticipantAuthServer};
use prism_proto::prism_agent::v1::{ChallengeRequest, ChallengeResponse};
use prism_proto::prism_agent::{CHALLENGE_METADATA, SIGNATURE_METADATA};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::pb::health_server::HealthServer;

use crate::attestation;
use crate::auth::{
    AuthError, ChallengeError, ChallengeStore, MAX_OUTSTANDING_CHALLENGES, Participants, Role,
};
use crate::computation::{Agent, ServiceError};
use crate::config::Config;

/// Upstream streams files in 1 MiB messages (`agent/api/grpc/server.go:24`).
const FILE_CHUNK: usize = 1024 * 1024;
/// Where upstream reads IMA measurements (`agent/service.go:89`).
const IMA_MEASUREMENTS_PATH: &str = "/sys/kernel/security/integrity/ima/ascii_runtime_measurements";
/// The platform types of `pkg/attestation/attestation.go:19-26`.
const PLATFORM_SNP: i32 = 0;
const PLATFORM_VTPM: i32 = 1;
const PLATFORM_SNP_VTPM: i32 = 2;
const PLATFORM_AZURE: i32 = 3;
const PLATFORM_TDX: i32 = 4;

type FileStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The service behind the listener: `agent.AgentService` and `prism.agent.v1.ParticipantAuth`,
/// sharing the challenges one issues and the other consumes.
#[derive(Debug, Clone)]
pub struct ParticipantService {
    agent: Agent,
    participants: Arc<Participants>,
    challenges: Arc<Mutex<ChallengeStore>>,
    /// Whether upstream's signature over the role alone is also accepted.
    accept_cocos_auth: bool,
    /// The SHA-256 of the SubjectPublicKeyInfo of the certificate this agent serves with, which
    /// signed challenges must name; `None` without TLS. Set by [`Listener::start`].
    agent_key_sha256: Option<[u8; 32]>,
}

fn unknown(error: ServiceError) -> Status {
    Status::unknown(error.to_string())
}

impl ParticipantService {
    /// The participants' service of one run request, authenticating as `config` says
    /// (`accept_cocos_auth`, `challenge_lifetime`).
    pub fn new(agent: Agent, participants: Participants, config: &Config) -> Self {
        ParticipantService {
            agent,
            participants: Arc::new(participants),
            challenges: Arc::new(Mutex::new(ChallengeStore::new(
                config.challenge_lifetime,
                MAX_OUTSTANDING_CHALLENGES,
            ))),
            accept_cocos_auth: config.accept_cocos_auth,
            agent_key_sha256: None,
        }
    }

    fn challenges(&self) -> std::sync::MutexGuard<'_, ChallengeStore> {
        // The store is consistent after any panic (each operation is one map call).
        self.challenges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Who the call's metadata proves to be in `role`: by a signed challenge when it carries
    /// `prism-challenge`, by upstream's signature over the role only when that is turned on.
    fn authenticate(&self, metadata: &tonic::metadata::MetadataMap, role: Role) -> Result<usize, Status> {
        let signatures: Vec<&str> = metadata
            .get_all(SIGNATURE_METADATA)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let challenges: Vec<Option<&str>> = metadata
            .get_all(CHALLENGE_METADATA)
            .iter()
            .map(|value| value.to_str().ok())
            .collect();
        let outcome = match challenges.as_slice() {
            [] if self.accept_cocos_auth => self.participants.authenticate(role, &signatures),
            [] => Err(AuthError::ChallengeRequired),
            [Some(encoded)] => match STANDARD.decode(encoded) {
                Ok(challenge) => {
                    // Consumed before anything is checked: a challenge gets one try.
                    let issued_for = self.challenges().take(&challenge, Instant::now());
                    self.participants.authenticate_challenge(
                        role,
                        &challenge,
                        issued_for,
                        &signatures,
                        self.agent_key_sha256.as_ref(),
                    )
                }
                Err(_) => Err(AuthError::InvalidMetadata),
            },
            _ => Err(AuthError::InvalidMetadata),
        };
        outcome.map_err(|e| Status::unauthenticated(e.message()))
    }
}

#[tonic::async_trait]
impl ParticipantAuth for ParticipantService {
    async fn challenge(
        &self,
        request: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        let name = request.into_inner().role;
        let role = Role::from_wire_name(&name).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown role `{name}`: one of algorithm-provider, data-provider, consumer"
            ))
        })?;
        let mut challenges = self.challenges();
        let challenge = challenges.issue(role, Instant::now()).map_err(|e| match e {
            ChallengeError::TooMany => Status::resource_exhausted(e.to_string()),
            ChallengeError::Random => Status::internal(e.to_string()),
        })?;
        let expires_in_seconds = u32::try_from(challenges.lifetime().as_secs()).unwrap_or(u32::MAX);
        Ok(Response::new(ChallengeResponse {
            challenge: challenge.to_vec(),
            expires_in_seconds,
        }))
    }
}

/// A file in 1 MiB messages, with the `file-size` header upstream sets.
fn file_response<T: Send + 'static>(file: Vec<u8>, wrap: fn(Vec<u8>) -> T) -> Response<FileStream<T>> {
    let size = file.len();
    let chunks: Vec<Result<T, Status>> = file.chunks(FILE_CHUNK).map(|c| Ok(wrap(c.to_vec()))).collect();
    let mut response = Response::new(Box::pin(futures::stream::iter(chunks)) as FileStream<T>);
    if let Ok(value) = size.to_string().parse() {
        response.metadata_mut().insert("file-size", value);
    }
    response
}

#[tonic::async_trait]
impl AgentService for ParticipantService {
    async fn algo(&self, request: Request<Streaming<AlgoRequest>>) -> Result<Response<AlgoResponse>, Status> {
        self.authenticate(request.metadata(), Role::AlgorithmProvider)?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let (mut algorithm, mut requirements) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| Status::internal(s.message().to_owned()))?
        {
            algorithm.extend_from_slice(&chunk.algorithm);
            requirements.extend_from_slice(&chunk.requirements);
        }
        if algorithm.is_empty() {
            return Err(Status::unknown("algorithm binary is required"));
        }
        let algo_type = metadata
            .get("algo_type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let args = metadata
            .get_all("algo_args")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        self.agent
            .algo(&algorithm, &requirements, &algo_type, args)
            .map_err(unknown)?;
        Ok(Response::new(AlgoResponse {}))
    }

    async fn data(&self, request: Request<Streaming<DataRequest>>) -> Result<Response<DataResponse>, Status> {
        self.authenticate(request.metadata(), Role::DataProvider)?;
        let decompress = request
            .metadata()
            .get("decompress")
            .is_some_and(|v| v.as_bytes() == b"true");
        let mut stream = request.into_inner();
        let failed = |s: Status| Status::internal(s.message().to_owned());
        let Some(first) = stream.message().await.map_err(failed)? else {
            return Err(Status::unknown("dataset is required"));
        };
        // The dataset goes to disk as it arrives, so its name must be known from the start; the
        // next message is read only once the writer has room for it. Dropped by a failed stream
        // or a cancelled call, the upload keeps nothing.
        let mut upload = self
            .agent
            .begin_data(&first.filename, decompress)
            .map_err(unknown)?;
        upload.write(first.dataset).await.map_err(unknown)?;
        while let Some(chunk) = stream.message().await.map_err(failed)? {
            if !chunk.filename.is_empty() && chunk.filename != first.filename {
                return Err(unknown(ServiceError::FilenameChanged));
            }
            upload.write(chunk.dataset).await.map_err(unknown)?;
        }
        if upload.is_empty() {
            return Err(Status::unknown("dataset is required"));
        }
        upload.finish().await.map_err(unknown)?;
        Ok(Response::new(DataResponse {}))
    }

    type ResultStream = FileStream<ResultResponse>;

    async fn result(&self, request: Request<ResultRequest>) -> Result<Response<Self::ResultStream>, Status> {
        let consumer = self.authenticate(request.metadata(), Role::Consumer)?;
        let file = self.agent.result(consumer).map_err(unknown)?;
        Ok(file_response(file, |file| ResultResponse { file }))
    }

    type AttestationStream = FileStream<AttestationResponse>;

    async fn attestation(
        &self,
        request: Request<AttestationRequest>,
    ) -> Result<Response<Self::AttestationStream>, Status> {
        let request = request.into_inner();
        let report_data = padded::<64>(&request.tee_nonce)
            .ok_or_else(|| Status::unknown("malformed report data, expect less or equal to 64 bytes"))?;
        let nonce = padded::<32>(&request.vtpm_nonce)
            .ok_or_else(|| Status::unknown("malformed vTPM nonce, expect less or equal to 32 bytes"))?;
        let file = evidence(request.r#type, &report_data, &nonce)?;
        Ok(file_response(file, |file| AttestationResponse { file }))
    }

    type IMAMeasurementsStream = FileStream<ImaMeasurementsResponse>;

    async fn ima_measurements(
        &self,
        _request: Request<ImaMeasurementsRequest>,
    ) -> Result<Response<Self::IMAMeasurementsStream>, Status> {
        // A machine without IMA: the real agent fails reading the file, as here.
        Err(Status::unknown(format!(
            "error reading Linux IMA measurements file: open {IMA_MEASUREMENTS_PATH}: no such file or directory"
        )))
    }

    async fn azure_attestation_token(
        &self,
        _request: Request<AttestationTokenRequest>,
    ) -> Result<Response<AttestationTokenResponse>, Status> {
        // An SNP guest's attestation provider has no Azure token (`pkg/attestation/vtpm/vtpm.go`).
        Err(Status::unknown("Azure attestation token is not supported"))
    }
}

/// `bytes` zero-padded to `N`, or `None` when longer (`agent/api/grpc/server.go:133-154`).
pub fn padded<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    out.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Some(out)
}

/// What an `Attestation` request of `platform` type gets from the emulated SNP guest: for `SNP`,
/// the attestation-service's EAT over the SEV-SNP evidence ([`attestation::evidence`]); the
/// other valid types need a vTPM or a TDX module this guest lacks, so they fail as upstream's do
/// on such a machine (`NoCC` and unknown types are refused before, `agent/api/grpc/requests.go:61-68`).
pub fn evidence(platform: i32, report_data: &[u8; 64], nonce: &[u8; 32]) -> Result<Vec<u8>, Status> {
    match platform {
        PLATFORM_SNP => attestation::evidence(report_data, nonce)
            .map_err(|e| Status::unknown(format!("failed to get raw quote : {e}"))),
        PLATFORM_VTPM | PLATFORM_SNP_VTPM | PLATFORM_AZURE | PLATFORM_TDX => Err(Status::unknown(
            "failed to get raw quote : the emulated SEV-SNP guest has no vTPM, Azure or TDX evidence",
        )),
        _ => Err(Status::unknown("invalid attestation type")),
    }
}

/// The services on one listener, chosen by path. tonic's own `Routes` needs its `router`
/// feature, which brings axum in for this one `match`.
#[derive(Debug, Clone)]
struct Routes {
    agent: AgentServiceServer<ParticipantService>,
    auth: ParticipantAuthServer<ParticipantService>,
    health: HealthServer<HealthService>,
}

/// The path prefix of Prism's `ParticipantAuth` calls.
const PARTICIPANT_AUTH_PATH: &str = "/prism.agent.v1.ParticipantAuth/";

type HealthService = tonic_health::server::HealthService;

impl tower::Service<http::Request<hyper::body::Incoming>> for Routes {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            let mut health = self.health.clone();
            Box::pin(async move { health.call(request).await })
        } else if request.uri().path().starts_with(PARTICIPANT_AUTH_PATH) {
            let mut auth = self.auth.clone();
            Box::pin(async move { auth.call(request).await })
        } else {
            let mut agent = self.agent.clone();
            Box::pin(async move { agent.call(request).await })
        }
    }
}

/// Why the participants' listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("failed to load auth certificates: {0}")]
    Certificates(String),
    #[error("failed to listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a path, or takes the text itself as PEM, by upstream's rule (`pkg/ingress/tls.go:36-45`):
/// under 1000 characters without a newline is a path.
fn file_or_inline(input: &str) -> Result<Vec<u8>, ListenError> {
    if input.len() < 1000 && !input.contains('\n') {
        std::fs::read(input).map_err(|e| ListenError::Certificates(format!("{input}: {e}")))
    } else {
        Ok(input.as_bytes().to_vec())
    }
}

/// The TLS the participants' listener serves with.
#[derive(Debug, Clone)]
pub struct IngressTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The SHA-256 of the SubjectPublicKeyInfo (DER) of the certificate it presents: what a
    /// participant's signed challenge must name, so that it is good for this agent only.
    pub key_sha256: [u8; 32],
}

/// The TLS configuration `agent_config` asks for, or `None` for plain HTTP/2.
pub fn tls_config(config: &AgentConfig) -> Result<Option<IngressTls>, ListenError> {
    if config.cert_file.is_empty() && config.key_file.is_empty() {
        return Ok(None);
    }
    let bad = |e: &dyn std::fmt::Display| ListenError::Certificates(e.to_string());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&file_or_inline(&config.cert_file)?)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(&file_or_inline(&config.key_file)?).map_err(|e| bad(&e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| ListenError::Certificates("no certificate in cert_file".into()))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf).map_err(|e| bad(&e))?;
    let key_sha256: [u8; 32] = Sha256::digest(certificate.tbs_certificate.subject_pki.raw).into();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?;
    let builder = if config.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&file_or_inline(&config.client_ca_file)?) {
            roots.add(ca.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| bad(&e))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut server = builder.with_single_cert(chain, key).map_err(|e| bad(&e))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(IngressTls {
        config: Arc::new(server),
        key_sha256,
    }))
}

/// The running listener; dropping it or calling [`Listener::stop`] stops it.
#[derive(Debug)]
pub struct Listener {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    pub address: SocketAddr,
}

impl Listener {
    /// Serves `service` (with `ParticipantAuth`, and health for `agent`) on `address`; signed
    /// challenges must name the key of `tls`'s certificate.
    pub async fn start(
        address: SocketAddr,
        tls: Option<IngressTls>,
        mut service: ParticipantService,
    ) -> Result<Self, ListenError> {
        service.agent_key_sha256 = tls.as_ref().map(|tls| tls.key_sha256);
        let tls = tls.map(|tls| tls.config);
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ListenError::Bind { address, source })?;
        let address = listener.local_addr().unwrap_or(address);
        let health = tonic_health::server::HealthReporter::new();
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        health
            .set_service_status("agent", tonic_health::ServingStatus::Serving)
            .await;
        let routes = Routes {
            agent: AgentServiceServer::new(service.clone()),
            auth: ParticipantAuthServer::new(service),
            health: health_service,
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, tls, routes, stopped));
        Ok(Listener { stop, task, address })
    }

    /// Stops accepting and gives open calls a moment to finish, as `GracefulStop` does.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    routes: Routes,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accepting a participant's connection failed: {e}");
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        // A call is a challenge request and then the call itself; without this, Nagle's algorithm
        // holds the second part of an answer until the client's delayed acknowledgement.
        let _ = tcp.set_nodelay(true);
        let routes = routes.clone();
        let tls = tls.clone();
        let mut stopping = stopped.clone();
        connections.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new()).http2_only();
            let service = TowerToHyperService::new(routes);
            let served = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(tcp), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => result,
                        _ = stopping.changed() => { connection.as_mut().graceful_shutdown(); connection.await }
                    }
                }
                Some(config) => {
                    let tls = match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            tracing::info!(%peer, "TLS handshake with a participant failed: {e}");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(tls), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => result,
                        _ = stopping.changed() => { connection.as_mut().graceful_shutdown(); connection.await }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "participant connection ended: {e}");
            }
        });
    }
    // Open calls get a few seconds to finish; then they are dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}
