//! A minimal control plane for the emulated agent: `cvms.Service/Process` over mutual TLS (ALPN h2,
//! client certificates required), certificates made here with rcgen; every stream opened is handed
//! to the test with its metadata.

#![allow(dead_code)]

pub mod evidence;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prism_emulated_agent::Config;
use prism_proto::cvms::service_server::{Service, ServiceServer};
use prism_proto::cvms::{ClientStreamMessage, ServerStreamMessage};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

/// One stream the agent opened.
#[derive(Debug)]
pub struct Opened {
    pub metadata: tonic::metadata::MetadataMap,
    pub inbound: Streaming<ClientStreamMessage>,
    /// Dropping it ends the stream from the server's side.
    pub outbound: mpsc::Sender<Result<ServerStreamMessage, Status>>,
}

impl Opened {
    pub fn is_log_forwarder(&self) -> bool {
        self.metadata
            .get("connection-type")
            .is_some_and(|v| v == "log-forwarder")
    }

    pub async fn next(&mut self) -> ClientStreamMessage {
        tokio::time::timeout(Duration::from_secs(20), self.inbound.message())
            .await
            .expect("no message within 20 s")
            .expect("stream failed")
            .expect("stream ended")
    }

    pub async fn send(&self, message: ServerStreamMessage) {
        self.outbound.send(Ok(message)).await.expect("stream gone");
    }
}

struct ControlPlane {
    opened: mpsc::UnboundedSender<Opened>,
}

type Outbound = Pin<Box<dyn Stream<Item = Result<ServerStreamMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Service for ControlPlane {
    type ProcessStream = Outbound;

    async fn process(
        &self,
        request: Request<Streaming<ClientStreamMessage>>,
    ) -> Result<Response<Outbound>, Status> {
        let metadata = request.metadata().clone();
        let (outbound, receiver) = mpsc::channel(64);
        let _ = self.opened.send(Opened {
            metadata,
            inbound: request.into_inner(),
            outbound,
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|message| (message, receiver))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Certificates for one test: a CA, the control plane's server certificate (IP SAN 127.0.0.1),
/// the agent's client certificate, all written as PEM files.
#[derive(Debug)]
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test control plane CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut server_params = CertificateParams::default();
        server_params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let server_key = KeyPair::generate().unwrap();
        let server = server_params.signed_by(&server_key, &ca).unwrap();

        let mut client_params = CertificateParams::default();
        client_params.distinguished_name.push(DnType::CommonName, "agent");
        client_params.serial_number = Some(rcgen::SerialNumber::from(vec![0x01, 0x02, 0x03, 0x04, 0x05]));
        let client_key = KeyPair::generate().unwrap();
        let client = client_params.signed_by(&client_key, &ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), client.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), client_key.serialize_pem()).unwrap();
        Pki {
            ca_pem: ca.pem(),
            server_chain: vec![server.der().clone()],
            server_key: server_key.serialize_der(),
            ca_der: ca.der().clone(),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}

/// A running control plane; dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub opened: mpsc::UnboundedReceiver<Opened>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(pki: &Pki, addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (opened, receiver) = mpsc::unbounded_channel();
        let service = ServiceServer::new(ControlPlane { opened });
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let service = service.clone();
                // Connections live in this task's set, so aborting the task closes them.
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
        Server {
            addr,
            opened: receiver,
            task,
        }
    }

    pub async fn next_stream(&mut self) -> Opened {
        tokio::time::timeout(Duration::from_secs(20), self.opened.recv())
            .await
            .expect("no stream opened within 20 s")
            .expect("server gone")
    }

    /// The two streams of a starting agent: (agent's, log forwarder's).
    pub async fn agent_streams(&mut self) -> (Opened, Opened) {
        let first = self.next_stream().await;
        let second = self.next_stream().await;
        if first.is_log_forwarder() {
            (second, first)
        } else {
            (first, second)
        }
    }
}

/// A free local port (bound then released).
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn agent_config(pki: &Pki, server: SocketAddr, work_dir: &Path, listen: SocketAddr) -> Config {
    agent_config_with(pki, server, work_dir, listen, &[])
}

/// [`agent_config`] with more of the agent's environment variables (`extra` wins).
pub fn agent_config_with(
    pki: &Pki,
    server: SocketAddr,
    work_dir: &Path,
    listen: SocketAddr,
    extra: &[(&str, &str)],
) -> Config {
    let env = [
        ("AGENT_CVM_GRPC_URL", server.to_string()),
        (
            "AGENT_CVM_GRPC_CLIENT_CERT",
            pki.path("cert.pem").display().to_string(),
        ),
        (
            "AGENT_CVM_GRPC_CLIENT_KEY",
            pki.path("key.pem").display().to_string(),
        ),
        (
            "AGENT_CVM_GRPC_SERVER_CA_CERTS",
            pki.path("ca.pem").display().to_string(),
        ),
        ("AGENT_CVM_ID", "cvm-7".to_string()),
        ("AGENT_LOG_LEVEL", "info".to_string()),
        ("PRISM_EMULATED_AGENT_LISTEN", listen.to_string()),
        ("PRISM_EMULATED_AGENT_DIR", work_dir.display().to_string()),
    ];
    Config::from_lookup(|name| {
        extra
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
    })
    .unwrap()
}

/// The environment that has the emulated agent also accept upstream's participant signature over
/// the role alone, for scenarios that speak to it as cocos-cli speaks to the real agent.
pub const ACCEPT_COCOS_AUTH: (&str, &str) = ("PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH", "1");

/// The emulated agent in this process until the returned sender is used or dropped.
pub fn start_agent(
    config: Config,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), prism_emulated_agent::Error>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(prism_emulated_agent::run(config, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}
