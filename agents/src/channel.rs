//! The `cvms.Service/Process` server and the registry of connected agents.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::{Stream, StreamExt as _};
use prism_app::{AgentIdentity, App, AppError, ErrorKind};
use prism_domain::CvmId;
use prism_domain::cvm::{AgentStream, ReceivedMessage};
use prism_proto::chunks::run_request_chunks_with;
use prism_proto::cvms::service_server::Service;
use prism_proto::cvms::{
    AgentStateReq, ClientStreamMessage, ComputationRunReq, DisconnectReq, ServerStreamMessage,
    StopComputation, server_stream_message::Message,
};
use prism_proto::prism::RunConsent;
use prism_tls::PeerCertificate;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

/// How the channel behaves.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// How long an agent may be away (its stream closed) before its CVM is recorded Offline.
    pub heartbeat_gap: Duration,
    /// The most messages recorded in one command (one commit): what arrived while the last one was
    /// being written.
    pub batch: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            heartbeat_gap: Duration::from_secs(30),
            batch: 64,
        }
    }
}

/// What a worker asks an agent. Every request is a message with its `oneof` set: the real agent
/// drops a stream that sends it an empty one.
#[derive(Debug, Clone)]
pub enum ServerRequest {
    /// Run a computation: sent in 1 MiB chunks ending with an empty `is_last` one, with the run's
    /// manifest and consents in Prism's extension field when given ([`prism_proto::prism`]).
    Run {
        request: Box<ComputationRunReq>,
        consent: Option<Box<RunConsent>>,
    },
    State {
        id: String,
    },
    Stop {
        computation_id: String,
    },
    /// Close the connection (the agent reconnects about five seconds later).
    Disconnect {
        id: String,
    },
}

/// Why a request did not reach an agent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the agent of CVM {0} is not connected")]
    NotConnected(CvmId),
}

/// A connected agent's outbound stream, and which connection it is (a reconnection replaces it).
#[derive(Debug)]
struct Connected {
    generation: u64,
    outbound: mpsc::Sender<ServerStreamMessage>,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    agents: HashMap<CvmId, Connected>,
}

/// The agents' channel: a tonic `cvms.Service` ([`AgentChannel::service`]) and the sender of
/// requests to connected agents. Clones share the registry.
#[derive(Debug, Clone)]
pub struct AgentChannel {
    app: App,
    config: ChannelConfig,
    registry: Arc<Mutex<Registry>>,
}

impl AgentChannel {
    pub fn new(app: App, config: ChannelConfig) -> Self {
        Self {
            app,
            config,
            registry: Arc::default(),
        }
    }

    /// The gRPC service to serve (over `prism_tls` with client certificates required).
    pub fn service(&self) -> prism_proto::cvms::service_server::ServiceServer<Self> {
        prism_proto::cvms::service_server::ServiceServer::new(self.clone())
    }

    /// Whether the agent of `cvm` is connected here.
    pub fn is_connected(&self, cvm: CvmId) -> bool {
        self.registry().agents.contains_key(&cvm)
    }

    /// Sends `request` to the agent of `cvm` on its own stream.
    pub async fn send(&self, cvm: CvmId, request: ServerRequest) -> Result<(), SendError> {
        let outbound = self
            .registry()
            .agents
            .get(&cvm)
            .map(|c| c.outbound.clone())
            .ok_or(SendError::NotConnected(cvm))?;
        let messages = match request {
            ServerRequest::Run { request, consent } => run_request_chunks_with(&request, consent.as_deref()),
            ServerRequest::State { id } => vec![message(Message::AgentStateReq(AgentStateReq { id }))],
            ServerRequest::Stop { computation_id } => {
                vec![message(Message::StopComputation(StopComputation {
                    computation_id,
                }))]
            }
            ServerRequest::Disconnect { id } => vec![message(Message::DisconnectReq(DisconnectReq { id }))],
        };
        for message in messages {
            outbound
                .send(message)
                .await
                .map_err(|_| SendError::NotConnected(cvm))?;
        }
        Ok(())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `outbound` the agent's stream; answers which connection it is.
    fn connect(&self, cvm: CvmId, outbound: mpsc::Sender<ServerStreamMessage>) -> u64 {
        let mut registry = self.registry();
        registry.next += 1;
        let generation = registry.next;
        registry.agents.insert(cvm, Connected { generation, outbound });
        generation
    }

    /// Forgets connection `generation` of `cvm` unless a newer one replaced it; answers whether it did.
    fn disconnect(&self, cvm: CvmId, generation: u64) -> bool {
        let mut registry = self.registry();
        if registry
            .agents
            .get(&cvm)
            .is_some_and(|c| c.generation == generation)
        {
            registry.agents.remove(&cvm);
            true
        } else {
            false
        }
    }

    /// Who is at the other end of `request`.
    async fn identify<T>(&self, request: &Request<T>) -> Result<(AgentIdentity, AgentStream), Status> {
        let peer = request
            .extensions()
            .get::<PeerCertificate>()
            .ok_or_else(|| Status::unauthenticated("a client certificate of the platform is required"))?;
        let metadata = request.metadata();
        let job_id = metadata
            .get("job-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::permission_denied("the job-id metadata is required"))?;
        let stream = match metadata.get("connection-type").and_then(|v| v.to_str().ok()) {
            Some("log-forwarder") => AgentStream::LogForwarder,
            _ => AgentStream::Agent,
        };
        let identity = self
            .app
            .cvms()
            .agent_identity(peer.serial(), job_id)
            .await
            .map_err(|e| status(&e))?;
        Ok((identity, stream))
    }

    /// Records what arrives on `inbound` until it ends, in batches of what has arrived meanwhile.
    async fn record(
        &self,
        agent: AgentIdentity,
        stream: AgentStream,
        mut inbound: Streaming<ClientStreamMessage>,
    ) -> Result<(), Status> {
        while let Some(first) = inbound.next().await {
            let mut batch: Vec<ReceivedMessage> = Vec::new();
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Ok(message) => batch.extend(crate::received(&message)),
                    Err(e) => {
                        warn!(cvm = %agent.cvm, ?stream, error = %e, "the agent's stream broke");
                        self.write(agent, stream, batch).await?;
                        return Err(e);
                    }
                }
                if batch.len() < self.config.batch {
                    next = futures::FutureExt::now_or_never(inbound.next()).flatten();
                }
            }
            self.write(agent, stream, batch).await?;
        }
        Ok(())
    }

    /// Records `batch`, trying again a few times while the store is away: a message lost here is lost
    /// from the audit trail.
    async fn write(
        &self,
        agent: AgentIdentity,
        stream: AgentStream,
        batch: Vec<ReceivedMessage>,
    ) -> Result<(), Status> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            match self
                .app
                .cvms()
                .record_agent_messages(agent, stream, batch.clone())
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 5 && matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Contended) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    warn!(cvm = %agent.cvm, ?stream, count = batch.len(), error = %e, "could not record the agent's messages");
                    // The call ends with this status: the agent keeps what it could not deliver
                    // and sends it again after reconnecting — unless its CVM takes no more.
                    return Err(match e.kind {
                        ErrorKind::StateConflict => Status::failed_precondition(e.detail),
                        _ => {
                            Status::unavailable("the platform could not record the messages; send them again")
                        }
                    });
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}

fn message(message: Message) -> ServerStreamMessage {
    ServerStreamMessage {
        message: Some(message),
    }
}

fn status(error: &AppError) -> Status {
    match error.kind {
        // A CVM that does not exist is refused like any other the certificate is not for.
        ErrorKind::Forbidden | ErrorKind::NotFound => Status::permission_denied(error.detail.clone()),
        ErrorKind::Unavailable => Status::unavailable(error.detail.clone()),
        _ => Status::internal("the agent could not be identified"),
    }
}

type Outbound = Pin<Box<dyn Stream<Item = Result<ServerStreamMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Service for AgentChannel {
    type ProcessStream = Outbound;

    async fn process(
        &self,
        request: Request<Streaming<ClientStreamMessage>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let (agent, stream) = self.identify(&request).await?;
        let inbound = request.into_inner();
        info!(cvm = %agent.cvm, ?stream, "an agent connected");
        // The call ends when the agent's side does, with the status of what broke it, if anything.
        let (finished, outcome) = oneshot::channel::<Result<(), Status>>();
        let ending = futures::stream::once(outcome).filter_map(|outcome| async move {
            match outcome {
                Ok(Err(status)) => Some(Err(status)),
                _ => None,
            }
        });
        if stream == AgentStream::LogForwarder {
            // It ignores what it is sent: it is sent nothing until its call ends.
            let channel = self.clone();
            tokio::spawn(async move {
                let _ = finished.send(channel.record(agent, stream, inbound).await);
            });
            return Ok(Response::new(Box::pin(ending)));
        }
        if let Err(e) = self.app.cvms().mark_online(agent).await {
            warn!(cvm = %agent.cvm, error = %e, "could not record the CVM online");
        }
        let (outbound, receiver) = mpsc::channel(16);
        let generation = self.connect(agent.cvm, outbound);
        let channel = self.clone();
        tokio::spawn(async move {
            let _ = finished.send(channel.record(agent, stream, inbound).await);
            let last_heard = Utc::now();
            if !channel.disconnect(agent.cvm, generation) {
                return;
            }
            info!(cvm = %agent.cvm, "an agent disconnected");
            // Offline only if it stays away: the real agent reconnects within about five seconds.
            tokio::time::sleep(channel.config.heartbeat_gap).await;
            if !channel.is_connected(agent.cvm)
                && let Err(e) = channel.app.cvms().mark_offline(agent, last_heard).await
            {
                warn!(cvm = %agent.cvm, error = %e, "could not record the CVM offline");
            }
        });
        let outbound = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|message| (Ok(message), receiver))
        });
        Ok(Response::new(Box::pin(outbound.chain(ending))))
    }
}
