//! The agent's side of `cvms.Service/Process`: two streams, as a Cocos agent VM opens them.
//!
//! * The agent's stream (`agent/cvms/api/grpc/client.go`): metadata `job-id` when `AGENT_CVM_ID` is
//!   set; first the messages left in `pending_messages.json`, then the start-up attestation
//!   (`vTPMattestationReport`), then only answers — `RunRes`, `AgentStateRes`, `StopComputationRes`.
//!   After a loss it dials again every 5 s; what is to be sent while it is away is written to the
//!   pending file and sent first once it is back.
//! * The log forwarder's stream (`cmd/log-forwarder/main.go`): metadata `job-id` and
//!   `connection-type: log-forwarder` (both only when `AGENT_CVM_ID` is set), every `AgentLog` and
//!   `AgentEvent`, never reconnected; what it receives is ignored.
//!
//! Both dial `AGENT_CVM_GRPC_URL` with h2c, TLS (CA only) or mutual TLS (CA, certificate and key),
//! ALPN `h2`, verifying the server's certificate for the URL's host (an IP address against an IP SAN).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prism_proto::chunks::RunRequestAssembler;
use prism_proto::cvms::service_client::ServiceClient;
use prism_proto::cvms::{
    AgentStateRes, ClientStreamMessage, ComputationRunReq, RunResponse, ServerStreamMessage,
    StopComputationResponse, client_stream_message, server_stream_message,
};
use prism_proto::prism::RunConsent;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::{Mutex, mpsc, watch};
use tonic::transport::{Channel, Endpoint};

use crate::Error;
use crate::auth::{ParticipantKey, Participants};
use crate::computation::{Agent, AgentState};
use crate::config::Config;
use crate::participants::{Listener, ParticipantService, tls_config};
use crate::pending::PendingMessages;

/// The largest run request put together (upstream sets none; a bound keeps memory in check).
const RUN_REQUEST_LIMIT: usize = 1024 * 1024 * 1024;

/// How the agent dials the control plane.
#[derive(Debug, Clone)]
pub struct Dialer {
    address: String,
    server_name: ServerName<'static>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })
}

impl Dialer {
    pub fn new(config: &Config) -> Result<Self, Error> {
        let target = config
            .cvm_url
            .split_once("://")
            .map_or(config.cvm_url.as_str(), |(_, rest)| rest.trim_start_matches('/'));
        let (host, _port) = target.rsplit_once(':').ok_or_else(|| {
            Error::Config(format!("AGENT_CVM_GRPC_URL={} is not host:port", config.cvm_url))
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| Error::Config(format!("AGENT_CVM_GRPC_URL host {host}: {e}")))?;
        let tls = match (&config.server_ca_certs, &config.client_cert, &config.client_key) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(Error::Config(
                    "AGENT_CVM_GRPC_CLIENT_CERT/KEY need AGENT_CVM_GRPC_SERVER_CA_CERTS (the system's roots are not used)"
                        .into(),
                ));
            }
            (Some(ca), cert, key) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in CertificateDer::pem_slice_iter(&read(ca)?) {
                    let certificate =
                        certificate.map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
                    roots
                        .add(certificate)
                        .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
                }
                let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .with_root_certificates(roots);
                let mut client = match (cert, key) {
                    (None, None) => builder.with_no_client_auth(),
                    (Some(cert), Some(key)) => {
                        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?;
                        let key = PrivateKeyDer::from_pem_slice(&read(key)?)
                            .map_err(|e| Error::Tls(format!("{}: {e}", key.display())))?;
                        builder
                            .with_client_auth_cert(chain, key)
                            .map_err(|e| Error::Tls(e.to_string()))?
                    }
                    _ => {
                        return Err(Error::Config(
                            "AGENT_CVM_GRPC_CLIENT_CERT and AGENT_CVM_GRPC_CLIENT_KEY go together".into(),
                        ));
                    }
                };
                // grpc-go offers and requires h2.
                client.alpn_protocols = vec![b"h2".to_vec()];
                Some(Arc::new(client))
            }
        };
        Ok(Dialer {
            address: target.to_owned(),
            server_name,
            tls,
        })
    }

    async fn channel(&self) -> Result<Channel, Error> {
        let dialer = self.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let dialer = dialer.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(dialer.address.as_str()).await?;
                tcp.set_nodelay(true)?;
                let io: Box<dyn Io> = match &dialer.tls {
                    None => Box::new(tcp),
                    Some(config) => Box::new(
                        tokio_rustls::TlsConnector::from(config.clone())
                            .connect(dialer.server_name.clone(), tcp)
                            .await?,
                    ),
                };
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(io))
            }
        });
        Endpoint::from_static("http://cvms.invalid")
            .connect_timeout(Duration::from_secs(10))
            .connect_with_connector(connector)
            .await
            .map_err(|source| Error::Connect {
                url: self.address.clone(),
                source,
            })
    }

    /// Opens one stream; `log_forwarder` marks the log forwarder's.
    pub async fn open(&self, cvm_id: &str, log_forwarder: bool) -> Result<Stream, Error> {
        let channel = self.channel().await?;
        let (sender, receiver) = mpsc::channel::<ClientStreamMessage>(64);
        let outbound = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|message| (message, receiver))
        });
        let mut request = tonic::Request::new(outbound);
        if !cvm_id.is_empty() {
            let job_id = cvm_id
                .parse()
                .map_err(|_| Error::Config(format!("AGENT_CVM_ID={cvm_id} cannot be gRPC metadata")))?;
            request.metadata_mut().insert("job-id", job_id);
            if log_forwarder {
                request.metadata_mut().insert(
                    "connection-type",
                    tonic::metadata::MetadataValue::from_static("log-forwarder"),
                );
            }
        }
        let inbound = ServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .process(request)
            .await?
            .into_inner();
        Ok(Stream { sender, inbound })
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// One open `Process` stream.
#[derive(Debug)]
pub struct Stream {
    sender: mpsc::Sender<ClientStreamMessage>,
    inbound: tonic::Streaming<ServerStreamMessage>,
}

/// The log forwarder: sends every record on its stream until the stream fails, then drops them,
/// as the real forwarder (which exits then) does.
pub async fn forward_logs(
    stream: Stream,
    mut records: mpsc::UnboundedReceiver<ClientStreamMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Stream { sender, mut inbound } = stream;
    let (lost, mut is_lost) = watch::channel(false);
    tokio::spawn(async move {
        // What the control plane sends here is read and ignored.
        while let Ok(Some(_)) = inbound.message().await {}
        let _ = lost.send(true);
    });
    let mut alive = true;
    loop {
        tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { return };
                if alive && sender.send(record).await.is_err() {
                    alive = false;
                }
            }
            _ = is_lost.changed(), if alive => {
                tracing::error!("log forwarder: stream connection lost; logs and events are no longer forwarded");
                alive = false;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// What the participants' listener is doing; it starts once and cannot start again after a stop,
/// like upstream's ingress proxy (`pkg/ingress/proxy.go:70-75`).
#[derive(Debug)]
enum Ingress {
    NotStarted,
    Running(Listener),
    Stopped,
}

/// The agent's stream and what answers on it.
#[derive(Debug, Clone)]
pub struct AgentLink {
    pub agent: Agent,
    pub dialer: Dialer,
    pub config: Config,
    pub pending: PendingMessages,
    /// Messages for the agent's stream.
    pub outbox: mpsc::UnboundedSender<ClientStreamMessage>,
    ingress: Arc<Mutex<Ingress>>,
}

enum Ended {
    Shutdown,
    Lost(String),
}

impl AgentLink {
    pub fn new(
        agent: Agent,
        dialer: Dialer,
        config: Config,
        pending: PendingMessages,
        outbox: mpsc::UnboundedSender<ClientStreamMessage>,
    ) -> Self {
        AgentLink {
            agent,
            dialer,
            config,
            pending,
            outbox,
            ingress: Arc::new(Mutex::new(Ingress::NotStarted)),
        }
    }

    fn answer(&self, message: client_stream_message::Message) {
        let _ = self.outbox.send(ClientStreamMessage {
            message: Some(message),
        });
    }

    /// Runs the agent's stream, starting with `first`, until `shutdown`.
    pub async fn run(
        &self,
        first: Stream,
        mut queue: mpsc::UnboundedReceiver<ClientStreamMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut stream = first;
        loop {
            match self.session(stream, &mut queue, &mut shutdown).await {
                Ended::Shutdown => return,
                Ended::Lost(reason) => self.agent.telemetry().info(&format!(
                    "Connection lost, attempting to reconnect... error={reason}"
                )),
            }
            stream = loop {
                if self.wait_persisting(&mut queue, &mut shutdown).await {
                    return;
                }
                match self.dialer.open(&self.config.cvm_id, false).await {
                    Ok(stream) => break stream,
                    Err(e) => self
                        .agent
                        .telemetry()
                        .error(&format!("Failed to reconnect error={e}")),
                }
            };
        }
    }

    /// Waits the reconnect interval, writing what is to be sent meanwhile to the pending file;
    /// `true` when shutting down.
    async fn wait_persisting(
        &self,
        queue: &mut mpsc::UnboundedReceiver<ClientStreamMessage>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let deadline = tokio::time::sleep(self.config.reconnect_interval);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return false,
                _ = shutdown.changed() => return true,
                Some(message) = queue.recv() => self.put_aside(&message),
            }
        }
    }

    fn put_aside(&self, message: &ClientStreamMessage) {
        if let Err(e) = self.pending.add(message) {
            self.agent
                .telemetry()
                .error(&format!("Failed to store pending message error={e}"));
        }
    }

    async fn session(
        &self,
        stream: Stream,
        queue: &mut mpsc::UnboundedReceiver<ClientStreamMessage>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let Stream { sender, mut inbound } = stream;
        match self.pending.load() {
            Err(e) => self
                .agent
                .telemetry()
                .error(&format!("Failed to load pending messages error={e}")),
            Ok(pending) => {
                for message in pending {
                    if sender.send(message.clone()).await.is_err() {
                        self.put_aside(&message);
                    } else {
                        self.agent.telemetry().info("Successfully resent pending message");
                    }
                }
                if let Err(e) = self.pending.clear() {
                    self.agent
                        .telemetry()
                        .error(&format!("Failed to clear pending messages error={e}"));
                }
            }
        }
        let mut assembler = RunRequestAssembler::new(RUN_REQUEST_LIMIT);
        loop {
            tokio::select! {
                received = inbound.message() => match received {
                    Ok(Some(message)) => {
                        if let Err(reason) = self.handle(message, &mut assembler) {
                            return Ended::Lost(reason);
                        }
                    }
                    Ok(None) => return Ended::Lost("the stream was closed".into()),
                    Err(status) => return Ended::Lost(status.to_string()),
                },
                Some(message) = queue.recv() => {
                    if sender.send(message.clone()).await.is_err() {
                        self.put_aside(&message);
                        self.agent.telemetry().error("Failed to send message, stored for retry");
                    }
                }
                _ = shutdown.changed() => return Ended::Shutdown,
            }
        }
    }

    /// One message from the control plane; `Err` drops the stream (`client.go:177-199`).
    fn handle(
        &self,
        message: ServerStreamMessage,
        assembler: &mut RunRequestAssembler,
    ) -> Result<(), String> {
        use server_stream_message::Message;
        match message.message {
            Some(Message::RunReqChunks(chunk)) => {
                let id = chunk.id.clone();
                match assembler.add_with_consent(chunk, Instant::now()) {
                    Ok(None) => {}
                    Ok(Some((request, consent))) => {
                        self.agent
                            .telemetry()
                            .info(&format!("Received complete computation run request id={id}"));
                        let link = self.clone();
                        tokio::spawn(async move { link.execute_run(request, consent).await });
                    }
                    Err(e) => return Err(format!("received manifest may be corrupted : {e}")),
                }
            }
            Some(Message::RunReq(request)) => {
                let link = self.clone();
                tokio::spawn(async move { link.execute_run(request, None).await });
            }
            Some(Message::StopComputation(stop)) => {
                let link = self.clone();
                tokio::spawn(async move { link.stop(stop.computation_id).await });
            }
            Some(Message::AgentStateReq(request)) => {
                self.answer(client_stream_message::Message::AgentStateRes(AgentStateRes {
                    id: request.id,
                    state: self.agent.state().wire_name().into(),
                }));
            }
            Some(Message::DisconnectReq(_)) => {
                self.agent.telemetry().info("Received disconnect request");
                return Err("disconnect requested".into());
            }
            None => return Err("unknown message type".into()),
        }
        Ok(())
    }

    /// `executeRun` (`client.go:232-363`).
    async fn execute_run(&self, request: ComputationRunReq, consent: Option<RunConsent>) {
        let telemetry = self.agent.telemetry();
        let state = self.agent.state();
        if state != AgentState::ReceivingManifest {
            telemetry.info(&format!(
                "Agent already processing computation, skipping initialization state={} computationId={}",
                state.wire_name(),
                request.id
            ));
            return;
        }
        telemetry.info(&format!(
            "Starting computation execution computationId={} name={}",
            request.id, request.name
        ));
        // Prism's check, before anything of the request is taken (see `consent`).
        let refusal = match &consent {
            Some(consent) => crate::consent::check(&request, consent).err(),
            None if self.config.require_consent => {
                Some("the run request carries no consent of its participants".to_owned())
            }
            None => None,
        };
        if let Some(error) = refusal {
            telemetry.warn(&format!("refusing the run request: {error}"));
            self.answer(client_stream_message::Message::RunRes(RunResponse {
                computation_id: request.id.clone(),
                error,
            }));
            return;
        }
        if consent.is_some() {
            telemetry.info("every participant has consented to the run's manifest");
        }
        if let Err(e) = self.agent.init_computation(&request) {
            telemetry.warn(&e.to_string());
            return;
        }
        let mut response = RunResponse {
            computation_id: request.id.clone(),
            error: String::new(),
        };
        match participants(&request) {
            Err(e) => {
                telemetry.error(&format!("failed to create auth service {e}"));
                response.error = e;
            }
            Ok(participants) => self.start_ingress(&request, participants).await,
        }
        self.answer(client_stream_message::Message::RunRes(response));
    }

    async fn start_ingress(&self, request: &ComputationRunReq, participants: Participants) {
        let telemetry = self.agent.telemetry();
        let config = request.agent_config.clone().unwrap_or_default();
        let mut ingress = self.ingress.lock().await;
        match &*ingress {
            Ingress::Running(_) => {
                telemetry.warn("failed to start ingress proxy: proxy server already started");
                return;
            }
            Ingress::Stopped => {
                telemetry.warn("failed to start ingress proxy: proxy server already stopped");
                return;
            }
            Ingress::NotStarted => {}
        }
        if config.attested_tls {
            // No attestation provider backs attested TLS here, as in a NoCC VM.
            telemetry.warn("failed to start ingress proxy: attested TLS requested but no certificate provider is available");
            return;
        }
        let tls = match tls_config(&config) {
            Ok(tls) => tls,
            Err(e) => {
                telemetry.warn(&format!("failed to start ingress proxy: {e}"));
                return;
            }
        };
        let secure = if tls.is_some() { "with TLS" } else { "without TLS" };
        let service = ParticipantService::new(self.agent.clone(), participants, &self.config);
        match Listener::start(self.config.listen, tls, service).await {
            Ok(listener) => {
                telemetry.info(&format!(
                    "agent service gRPC server listening at {} {secure}",
                    listener.address
                ));
                *ingress = Ingress::Running(listener);
            }
            Err(e) => telemetry.error(&format!("failed to start ingress proxy: {e}")),
        }
    }

    /// `handleStopComputation` (`client.go:365-388`).
    async fn stop(&self, computation_id: String) {
        self.agent.stop().await;
        let mut ingress = self.ingress.lock().await;
        if let Ingress::Running(listener) = std::mem::replace(&mut *ingress, Ingress::Stopped) {
            listener.stop().await;
        }
        drop(ingress);
        self.answer(client_stream_message::Message::StopComputationRes(
            StopComputationResponse {
                computation_id,
                message: String::new(),
            },
        ));
    }

    /// Stops the participants' listener at exit.
    pub async fn stop_ingress(&self) {
        let mut ingress = self.ingress.lock().await;
        if let Ingress::Running(listener) = std::mem::replace(&mut *ingress, Ingress::Stopped) {
            listener.stop().await;
        }
    }
}

/// The participants' keys, as `auth.New` reads them (`agent/auth/auth.go:49-91`).
fn participants(request: &ComputationRunReq) -> Result<Participants, String> {
    let parse = |der: &[u8]| ParticipantKey::from_spki_der(der).map_err(|e| e.to_string());
    Ok(Participants {
        consumers: request
            .result_consumers
            .iter()
            .map(|c| parse(&c.user_key))
            .collect::<Result<_, _>>()?,
        data_providers: request
            .datasets
            .iter()
            .map(|d| parse(&d.user_key))
            .collect::<Result<_, _>>()?,
        algorithm_provider: request
            .algorithm
            .as_ref()
            .map(|a| parse(&a.user_key))
            .transpose()?,
    })
}
