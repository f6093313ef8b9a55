//! Real certificates from `prism-ca`, a rustls client, and an HTTP/2 client over it.

#![allow(dead_code)]

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prism_ca::{Authority, CaUrls, KeySource};
use prism_domain::certificate::{Profile, Serial, Subject};
use prism_tls::{Alpn, ClientAuth, PeerCertificate, RevokedSerials, Server, ServerIdentity, TlsServerConfig};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub type BoxError = Box<dyn StdError + Send + Sync>;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// An authority of our own, as the platform has one.
pub struct Pki {
    pub authority: Authority,
}

/// A client certificate chain (leaf, intermediate) and its key.
pub struct ClientIdentity {
    pub serial: Serial,
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: String,
}

impl Pki {
    pub fn new() -> Self {
        let (authority, _) = Authority::create(CaUrls::under("https://prism.test"), Utc::now()).unwrap();
        Self { authority }
    }

    pub fn root(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.authority.root_der().to_vec())
    }

    /// The server's identity: a `service` certificate for `localhost`, with the intermediate.
    pub fn server_identity(&self) -> ServerIdentity {
        let (chain, key) = self.server_pem();
        ServerIdentity::from_pem(&chain, &key).unwrap()
    }

    /// A new server certificate with the intermediate, and its key, PEM.
    pub fn server_pem(&self) -> (String, String) {
        let subject = Subject {
            common_name: "prism-cvms".into(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        };
        let issued = self
            .authority
            .issue(
                Profile::Service,
                &subject,
                30 * DAY,
                KeySource::Generate,
                Utc::now(),
            )
            .unwrap();
        let chain = issued.pem.clone() + &self.authority.intermediate_pem();
        (chain, issued.private_key_pem.unwrap().to_string())
    }

    /// An agent's client certificate issued at `now` for `lifetime`.
    pub fn client_at(&self, name: &str, now: DateTime<Utc>, lifetime: Duration) -> ClientIdentity {
        let subject = Subject {
            common_name: name.into(),
            uris: vec![format!("urn:prism:cvm:{name}")],
            ..Default::default()
        };
        let issued = self
            .authority
            .issue(Profile::AgentClient, &subject, lifetime, KeySource::Generate, now)
            .unwrap();
        ClientIdentity {
            serial: issued.serial.clone(),
            chain: vec![
                CertificateDer::from(issued.der.clone()),
                CertificateDer::from(self.authority.intermediate_der().to_vec()),
            ],
            key_pem: issued.private_key_pem.as_ref().unwrap().to_string(),
        }
    }

    /// A valid agent client certificate.
    pub fn client(&self, name: &str) -> ClientIdentity {
        self.client_at(name, Utc::now(), 7 * DAY)
    }

    /// The server's TLS configuration, requiring client certificates from this authority.
    pub fn mtls(&self, revoked: &Arc<RevokedSerials>, alpn: Alpn) -> TlsServerConfig {
        TlsServerConfig::new(
            self.server_identity(),
            ClientAuth::Required {
                roots: vec![self.root()],
                revoked: Arc::clone(revoked),
            },
            alpn,
        )
        .unwrap()
    }
}

/// A rustls client trusting `pki`'s root, presenting `identity` if any, offering `alpn`.
pub fn client_config(pki: &Pki, identity: Option<&ClientIdentity>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                identity.chain.clone(),
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub const H2: &[&[u8]] = &[b"h2"];

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Starts `server` (bound to a loopback port) serving `service`.
    pub fn start<S, B>(server: Server, service: S) -> Self
    where
        S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(service, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops the server and waits until it has returned.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the server stops")
            .unwrap();
    }
}

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A TCP connection and TLS handshake (as far as the client can tell: in TLS 1.3 the server judges
/// the client's certificate after the client has finished).
pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Connects and waits for the server's verdict: `Ok` once the server has sent application data (an
/// HTTP/2 server speaks first, with its SETTINGS), the rustls error it refused with otherwise.
pub async fn verdict(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(), rustls::Error> {
    let attempt = async {
        let mut tls = connect(addr, config).await?;
        let mut buf = [0u8; 64];
        match tls.read(&mut buf).await? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without a word",
            )),
            _ => Ok(()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .expect("a verdict within 5 s")
    {
        Ok(()) => Ok(()),
        Err(error) => Err(error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned()
            .unwrap_or_else(|| panic!("not a TLS refusal: {error}"))),
    }
}

/// An HTTP/2 connection over TLS.
pub struct H2Client {
    pub send: http2::SendRequest<Empty<Bytes>>,
    pub connection: JoinHandle<Result<(), hyper::Error>>,
}

impl H2Client {
    pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Self, BoxError> {
        let tls = connect(addr, config).await?;
        let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        let connection = tokio::spawn(connection);
        Ok(Self { send, connection })
    }

    /// Sends a GET and returns the response with its body still streaming.
    pub async fn get(&mut self, path: &str) -> Result<http::Response<hyper::body::Incoming>, BoxError> {
        self.send.ready().await?;
        let request = http::Request::get(format!("https://localhost{path}"))
            .body(Empty::new())
            .unwrap();
        Ok(self.send.send_request(request).await?)
    }

    /// Sends a GET and reads the whole body as text.
    pub async fn text(&mut self, path: &str) -> Result<String, BoxError> {
        let response = self.get(path).await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(body.to_vec())?)
    }
}

/// The test application: `/whoami` answers the caller's certificate serial, `/stream` sends a chunk
/// every 100 ms and never ends.
pub fn app() -> axum::Router {
    use axum::Extension;
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/whoami",
            get(|peer: Option<Extension<PeerCertificate>>| async move {
                peer.map(|Extension(peer)| peer.serial().to_string())
                    .unwrap_or_else(|| "anonymous".into())
            }),
        )
        .route(
            "/stream",
            get(|| async {
                let ticks = futures::stream::unfold(0u64, |n| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from(format!("tick {n}\n"))), n + 1))
                });
                axum::body::Body::from_stream(ticks)
            }),
        )
}

/// Waits up to `limit` for `condition`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
