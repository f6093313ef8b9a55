//! Garbage never stops the agents' channel. Against the whole platform (a real nats-server and
//! PostgreSQL: identifying an agent reads the certificates read model), a peer sends what no Cocos
//! agent would: random bytes where HTTP/2 frames belong, gRPC messages that are not protobuf, a length
//! prefix of 4 GiB, a compressed message with no compression agreed, truncated messages, a message
//! with nothing set, one larger than the channel accepts, a call of another method, and garbage with
//! no client certificate or no TLS at all. Each check asserts the protection that caught it (the gRPC
//! status the decoder met, the HTTP/2 GOAWAY, the TLS alert), that nothing of it was recorded, that no
//! task of the server panicked, and then that a well-behaved agent of another CVM still connects and
//! has its message recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_app::{App, Caller, CertificateRequest, CommandOptions, IssuedCertificate, NewWorkspace};
use prism_cli::{AgentsConfig, Platform, PlatformConfig};
use prism_domain::CvmId;
use prism_domain::backend::{BackendSettings, Driver};
use prism_domain::cvm::{ConfidentialPlatform, Cvm, CvmSpec, CvmStatus};
use prism_embedded::{NatsServer, TestDatabase};
use prism_proto::cvms::service_client::ServiceClient;
use prism_proto::cvms::{AgentLog, ClientStreamMessage, client_stream_message};
use prism_proto::prost::Message as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::Code;
use tonic::transport::Endpoint;

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: what a client sends right after the preface.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// The largest gRPC message tonic decodes unless told otherwise (the channel does not change it).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// How long an outcome may take: far more than any of them needs, far less than "never".
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------
// What the server says and does, seen from inside the test process.

/// Everything the platform logs at WARN and above, to read which gRPC status a stream broke with: the
/// channel logs the decoder's status when an agent's stream breaks, and answers the agent with no
/// status of its own (see `ended_after`).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Panics on the runtime's worker threads, where the server's connections and the channel's tasks
/// run: tokio would catch them and go on, so without this a crash of one connection would pass.
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn watch_the_server() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .init();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

fn log_len() -> usize {
    LOG.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// The lines logged since `from` that mention `cvm` and say its stream broke.
fn broken_streams_since(from: usize, cvm: CvmId) -> Vec<String> {
    let log = LOG.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&log[from.min(log.len())..])
        .lines()
        .filter(|l| l.contains("the agent's stream broke") && l.contains(&cvm.to_string()))
        .map(str::to_owned)
        .collect()
}

/// Waits until the channel logs that `cvm`'s stream broke (after log position `from`) and asserts it
/// broke on a status with `code` whose message says `why`.
async fn assert_stream_broke(from: usize, cvm: CvmId, code: Code, why: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines = broken_streams_since(from, cvm);
        if let Some(line) = lines.first() {
            assert_eq!(lines.len(), 1, "one stream, one break: {lines:#?}");
            assert!(
                line.contains(&format!("code: '{}'", code.description())) && line.contains(why),
                "expected {code:?} ({why:?}), the channel logged: {line}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the channel never said the stream of CVM {cvm} broke ({code:?}: {why})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_no_server_panic() {
    assert_eq!(
        SERVER_PANICS.load(Ordering::SeqCst),
        0,
        "a task of the server panicked (see the output above)"
    );
}

// ---------------------------------------------------------------------------------------------------
// The platform, a CVM whose agent misbehaves, and one whose agent behaves.

struct Fixture {
    _nats: NatsServer,
    _db: TestDatabase,
    platform: Option<Platform>,
    app: App,
    addr: SocketAddr,
    root: String,
    /// The CVM whose certificate garbage is sent with.
    victim: CvmId,
    victim_certificate: IssuedCertificate,
    /// Another CVM, whose agent behaves.
    witness: CvmId,
    witness_certificate: IssuedCertificate,
    witnessed: usize,
}

impl Fixture {
    async fn start() -> Self {
        watch_the_server();
        let nats = NatsServer::start_temp().await.unwrap();
        let db = TestDatabase::create().await.unwrap();
        let mut config = PlatformConfig::new(nats.url(), db.url.clone(), "127.0.0.1:0".parse().unwrap());
        let kek: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x5a);
        config.certificate_authority = Some(prism_app::CertificateAuthorityConfig {
            urls: prism_ca::CaUrls::under("http://prism.test"),
            keys: Arc::new(prism_ca::SealedKeys::new(
                prism_ca::Sealer::new(&kek).unwrap(),
                prism_ca::MemoryKeyStore::default(),
            )),
            renewal: prism_app::RenewalPolicy::default(),
        });
        config.agents = Some(AgentsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            names: Vec::new(),
            // Long enough that no CVM turns Offline while a test runs.
            heartbeat_gap: Duration::from_secs(300),
            dial: None,
        });
        let platform = Platform::start(config).await.unwrap();
        let app = platform.app().clone();
        let (addr, _) = platform.agents().expect("the agents' channel runs");
        let root = app.certificates().authority().await.unwrap().root_pem();

        let caller = Caller::service("garbage-test");
        let options = CommandOptions::default();
        let workspace = app
            .workspaces()
            .create(
                &caller,
                &options,
                NewWorkspace {
                    name: "Garbage".into(),
                    description: String::new(),
                },
            )
            .await
            .unwrap()
            .id
            .parse()
            .unwrap();
        let backend = app
            .backends()
            .register(
                &caller,
                &options,
                Some(workspace),
                BackendSettings {
                    name: "test-machines".into(),
                    driver: Driver::Byo { agent_address: None },
                    platforms: vec![ConfidentialPlatform::None],
                    capacity: 10,
                    labels: BTreeMap::new(),
                    price: None,
                },
            )
            .await
            .unwrap()
            .id;
        // The provisioner places CVMs on the backends its read model knows.
        until("the backend in the read model", async || {
            app.read_models()
                .unwrap()
                .backends(Some(workspace))
                .await
                .unwrap()
                .iter()
                .any(|b| b.id.to_string() == backend)
        })
        .await;
        let mut cvms = Vec::new();
        for _ in 0..2 {
            let spec = CvmSpec {
                provider: "byo".into(),
                vcpus: 1,
                memory_mib: 512,
                platform: ConfidentialPlatform::None,
                ttl_seconds: 3600,
                labels: BTreeMap::new(),
            };
            let cvm: CvmId = app
                .cvms()
                .create(&caller, &options, workspace, spec)
                .await
                .unwrap()
                .id
                .parse()
                .unwrap();
            until("the CVM started", async || {
                let state = app.repository::<Cvm>().load(&cvm).await.unwrap().state;
                assert!(
                    matches!(state.status, CvmStatus::Creating | CvmStatus::Starting),
                    "the CVM is {:?}: {:?}",
                    state.status,
                    state.failure
                );
                state.status == CvmStatus::Starting
            })
            .await;
            let issued = app
                .certificates()
                .issue(
                    &caller,
                    &options,
                    workspace,
                    CertificateRequest::agent_client(cvm),
                )
                .await
                .unwrap();
            // The channel looks the certificate up in the read model.
            until("the certificate in the read model", async || {
                app.read_models()
                    .unwrap()
                    .certificate_serial(&issued.serial)
                    .await
                    .unwrap()
                    .is_some()
            })
            .await;
            cvms.push((cvm, issued));
        }
        let (witness, witness_certificate) = cvms.pop().unwrap();
        let (victim, victim_certificate) = cvms.pop().unwrap();
        Self {
            _nats: nats,
            _db: db,
            platform: Some(platform),
            app,
            addr,
            root,
            victim,
            victim_certificate,
            witness,
            witness_certificate,
            witnessed: 0,
        }
    }

    /// The agent messages `cvm` has recorded.
    async fn recorded(&self, cvm: CvmId) -> usize {
        self.app
            .repository::<Cvm>()
            .load(&cvm)
            .await
            .unwrap()
            .state
            .recent_messages
            .len()
    }

    /// Whether `cvm` has recorded `message`.
    async fn has_recorded(&self, cvm: CvmId, message: &ClientStreamMessage) -> bool {
        let digest = prism_agents::received(message).unwrap().digest;
        self.app
            .repository::<Cvm>()
            .load(&cvm)
            .await
            .unwrap()
            .state
            .recent_messages
            .contains(&digest)
    }

    /// After `what`: no task of the server panicked, and the agent of another CVM connects afresh,
    /// as a real agent would (tonic over rustls, both streams), and has a new message recorded.
    async fn still_serving(&mut self, what: &str) {
        assert_no_server_panic();
        self.witnessed += 1;
        let channel = tonic_channel(self.addr, &self.witness_certificate, &self.root).await;
        let text = format!("still serving after {what} ({})", self.witnessed);
        let message = log_message(&text);
        let (outbound, receiver) = tokio::sync::mpsc::channel(4);
        let mut request = tonic::Request::new(futures::stream::unfold(receiver, |mut r| async move {
            r.recv().await.map(|m| (m, r))
        }));
        request
            .metadata_mut()
            .insert("job-id", self.witness.to_string().parse().unwrap());
        request
            .metadata_mut()
            .insert("connection-type", "log-forwarder".parse().unwrap());
        let _response = ServiceClient::new(channel)
            .process(request)
            .await
            .unwrap_or_else(|e| panic!("after {what}, a well-behaved agent was refused: {e}"));
        outbound.send(message.clone()).await.unwrap();
        let deadline = Instant::now() + PATIENCE;
        while !self.has_recorded(self.witness, &message).await {
            assert!(
                Instant::now() < deadline,
                "after {what}, a well-behaved agent's message was never recorded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_no_server_panic();
    }

    async fn stop(mut self) {
        self.platform.take().unwrap().shutdown().await.unwrap();
    }
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_message(text: &str) -> ClientStreamMessage {
    ClientStreamMessage {
        message: Some(client_stream_message::Message::AgentLog(AgentLog {
            message: text.into(),
            computation_id: "run-1".into(),
            level: "INFO".into(),
            timestamp: Some(prism_proto::prost_types::Timestamp {
                seconds: 1_790_000_000,
                nanos: 0,
            }),
        })),
    }
}

// ---------------------------------------------------------------------------------------------------
// Connections.

fn tls_config(client: Option<&IssuedCertificate>, root: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap())
        .unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match client {
        Some(issued) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(format!("{}{}", issued.certificate, issued.chain).as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key =
                PrivateKeyDer::from_pem_slice(issued.private_key.as_deref().unwrap().as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A TLS 1.3 connection to the channel, presenting `client` if any.
async fn tls(addr: SocketAddr, client: Option<&IssuedCertificate>, root: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(tls_config(client, root))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// A tonic channel over rustls presenting `issued`, as the agents' tests connect.
async fn tonic_channel(
    addr: SocketAddr,
    issued: &IssuedCertificate,
    root: &str,
) -> tonic::transport::Channel {
    let config = tls_config(Some(issued), root);
    let connector = tower::service_fn(move |_: http::Uri| {
        let config = config.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .unwrap()
}

/// An HTTP/2 connection (h2, which sends whatever DATA it is given) over mutual TLS as `cvm`'s agent.
async fn h2_connection(fixture: &Fixture) -> h2::client::SendRequest<Bytes> {
    let io = tls(fixture.addr, Some(&fixture.victim_certificate), &fixture.root).await;
    let (send, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    send
}

/// Opens a call of `path` as the victim's agent (its own stream, not the log forwarder's: that one
/// is never answered, while the agent's stream ends when the channel stops reading it).
async fn call(fixture: &Fixture, path: &str) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut send = h2_connection(fixture).await.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("job-id", fixture.victim.to_string())
        .body(())
        .unwrap();
    send.send_request(request, false).unwrap()
}

/// A gRPC length-prefixed message: the compressed flag, the length it claims, and `body`.
fn frame(compressed: u8, claimed: u32, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(compressed);
    out.extend_from_slice(&claimed.to_be_bytes());
    out.extend_from_slice(body);
    out.into()
}

fn encoded(message: &ClientStreamMessage) -> Bytes {
    let body = message.encode_to_vec();
    frame(0, body.len() as u32, &body)
}

/// How a call ended, as its client sees it.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The response ended; the `grpc-status` of its trailers (or of a trailers-only answer).
    Status(i32),
    /// The stream was reset or the connection went away.
    Reset(String),
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Waits (at most [`PATIENCE`]) for the call to end; panics if it does not, which is what happens
/// when the server waits for more of a message instead of refusing it.
async fn ended_after(response: h2::client::ResponseFuture, what: &str) -> Ended {
    let outcome = tokio::time::timeout(PATIENCE, async move {
        let response = match response.await {
            Ok(response) => response,
            Err(e) => return Ended::Reset(e.to_string()),
        };
        if let Some(status) = grpc_status(response.headers()) {
            return Ended::Status(status);
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            match chunk {
                Ok(chunk) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Err(e) => return Ended::Reset(e.to_string()),
            }
        }
        match body.trailers().await {
            Ok(Some(trailers)) => Ended::Status(grpc_status(&trailers).unwrap_or(-1)),
            Ok(None) => Ended::Status(-1),
            Err(e) => Ended::Reset(e.to_string()),
        }
    })
    .await;
    outcome.unwrap_or_else(|_| panic!("after {what}, the server kept the call open: it is waiting for more"))
}

/// The channel answers a stream it could not read by ending the call with the status of what broke
/// it, so that the agent learns its message was refused.
fn assert_call_ended(ended: &Ended, failure: Code, what: &str) {
    assert_eq!(ended, &Ended::Status(failure as i32), "after {what}");
}

/// Deterministic bytes that look random (xorshift), so a failure can be replayed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Everything the server sends on `io` until it closes the connection (or [`PATIENCE`] passes: then
/// it panics, because the server did not close it). A read error after data counts as the close.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
    what: &str,
) -> (Vec<u8>, Option<std::io::Error>) {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => return None,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => return Some(e),
            }
        }
    })
    .await;
    match outcome {
        Ok(error) => (received, error),
        Err(_) => panic!("after {what}, the server kept the connection open"),
    }
}

/// The HTTP/2 frames in `bytes` (type, payload), as far as they are whole.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes.len() < 9 + len {
            break;
        }
        out.push((bytes[3], bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    out
}

/// The error code of the GOAWAY frame among `bytes` (RFC 9113, section 6.8).
fn goaway_code(bytes: &[u8]) -> Option<u32> {
    frames(bytes)
        .into_iter()
        .find(|(ty, payload)| *ty == 7 && payload.len() >= 8)
        .map(|(_, p)| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
}

// ---------------------------------------------------------------------------------------------------
// The checks.

/// Random bytes where HTTP/2 frames belong, on a connection with a valid agent certificate: the
/// server's HTTP/2 layer answers with GOAWAY and a connection error code, and closes that connection
/// only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_after_the_http2_preface_end_only_that_connection() {
    let mut fixture = Fixture::start().await;
    for (what, garbage) in [
        (
            "random bytes right after the preface",
            [PREFACE, &noise(4096, 7)].concat(),
        ),
        (
            "random bytes after the preface and SETTINGS",
            [PREFACE, SETTINGS, &noise(4096, 11)].concat(),
        ),
        (
            "a frame header claiming 16 MiB after the preface and SETTINGS",
            [
                PREFACE,
                SETTINGS,
                &[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1],
                &noise(512, 13),
            ]
            .concat(),
        ),
    ] {
        let mut io = tls(fixture.addr, Some(&fixture.victim_certificate), &fixture.root).await;
        io.write_all(&garbage).await.unwrap();
        io.flush().await.unwrap();
        let (received, _) = read_until_closed(&mut io, what).await;
        let code = goaway_code(&received)
            .unwrap_or_else(|| panic!("after {what}, no GOAWAY among {:?}", frames(&received)));
        // PROTOCOL_ERROR (1) or FRAME_SIZE_ERROR (6): a connection error, not a graceful NO_ERROR.
        assert!(
            matches!(code, 1 | 6),
            "after {what}, GOAWAY with error code {code}"
        );
        fixture.still_serving(what).await;
    }
    fixture.stop().await;
}

/// gRPC messages the decoder refuses, on a valid HTTP/2 call with a valid agent certificate: each
/// ends that call, with the status the refusal should have, records nothing of the garbage (and
/// keeps what the agent sent before it), and leaves the channel serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grpc_messages_end_only_their_call() {
    let mut fixture = Fixture::start().await;
    let cvm = fixture.victim;
    let enormous = encoded(&log_message(&"x".repeat(MAX_MESSAGE + 1024)));
    let cases: Vec<(&str, Vec<Bytes>, Code, String)> = vec![
        (
            // Field 1 with wire type 7, which does not exist, then noise.
            "garbage protobuf",
            vec![frame(0, 256, &[&[0x0f][..], &noise(255, 3)].concat())],
            Code::Internal,
            "failed to decode Protobuf message".into(),
        ),
        (
            "a length prefix claiming 4 GiB",
            vec![frame(0, u32::MAX, &noise(64, 5))],
            Code::OutOfRange,
            format!("found {} bytes, the limit is: {MAX_MESSAGE} bytes", u32::MAX),
        ),
        (
            "a compressed message with no grpc-encoding",
            vec![frame(1, 32, &noise(32, 9))],
            Code::Internal,
            "compressed-flag but no grpc-encoding was specified".into(),
        ),
        (
            "a compressed flag that is neither 0 nor 1",
            vec![frame(0x80, 8, &noise(8, 10))],
            Code::Internal,
            "invalid compression flag: 128".into(),
        ),
        (
            "a message cut short before the stream ends",
            vec![frame(0, 100, &noise(10, 12))],
            Code::Internal,
            "Unexpected EOF decoding stream".into(),
        ),
        (
            "a length prefix cut short before the stream ends",
            vec![Bytes::from_static(&[0, 0, 0])],
            Code::Internal,
            "Unexpected EOF decoding stream".into(),
        ),
        (
            "a log message larger than the channel accepts",
            vec![enormous.clone()],
            Code::OutOfRange,
            format!(
                "found {} bytes, the limit is: {MAX_MESSAGE} bytes",
                enormous.len() - 5
            ),
        ),
    ];
    for (n, (what, data, code, why)) in cases.into_iter().enumerate() {
        // A valid message first: the channel keeps what it read before the garbage.
        let before = log_message(&format!("before garbage {n}"));
        let recorded = fixture.recorded(cvm).await;
        let from = log_len();
        let (response, mut stream) = call(&fixture, "/cvms.Service/Process").await;
        stream.send_data(encoded(&before), false).unwrap();
        let last = data.len() - 1;
        for (i, chunk) in data.into_iter().enumerate() {
            stream.send_data(chunk, i == last).unwrap();
        }
        let ended = ended_after(response, what).await;
        assert_call_ended(&ended, code, what);
        assert_stream_broke(from, cvm, code, &why).await;
        until("the message before the garbage recorded", async || {
            fixture.has_recorded(cvm, &before).await
        })
        .await;
        assert_eq!(
            fixture.recorded(cvm).await,
            recorded + 1,
            "after {what}: only the valid message is recorded"
        );
        fixture.still_serving(what).await;
    }
    fixture.stop().await;
}

/// A message whose `oneof` is unset says nothing: it is not recorded, and the stream goes on (the
/// next message on it is recorded, the stream did not break).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_nothing_set_is_skipped_and_its_stream_goes_on() {
    let mut fixture = Fixture::start().await;
    let cvm = fixture.victim;
    let recorded = fixture.recorded(cvm).await;
    let from = log_len();
    let (response, mut stream) = call(&fixture, "/cvms.Service/Process").await;
    let empty = ClientStreamMessage { message: None };
    assert_eq!(encoded(&empty).len(), 5, "an empty message is its prefix alone");
    stream.send_data(encoded(&empty), false).unwrap();
    // A field the channel does not know (number 15, a string), as a newer agent might send.
    stream
        .send_data(frame(0, 6, &[0x7a, 4, b'n', b'e', b'x', b't']), false)
        .unwrap();
    let after = log_message("after the empty ones");
    stream.send_data(encoded(&after), false).unwrap();
    until("the message after the empty ones recorded", async || {
        fixture.has_recorded(cvm, &after).await
    })
    .await;
    assert_eq!(
        fixture.recorded(cvm).await,
        recorded + 1,
        "the empty messages are not recorded"
    );
    assert!(broken_streams_since(from, cvm).is_empty(), "the stream broke");
    // The call is still open: the agent's stream lasts while the agent wants it.
    let response = tokio::time::timeout(Duration::from_millis(300), response).await;
    match response {
        Err(_) => {}
        Ok(Ok(response)) => {
            assert_eq!(response.status(), 200);
            assert_eq!(grpc_status(response.headers()), None, "the call ended");
        }
        Ok(Err(e)) => panic!("the call was reset: {e}"),
    }
    fixture.still_serving("messages with nothing set").await;
    drop(stream);
    fixture.stop().await;
}

/// A call of any other method, on a valid agent connection, is answered UNIMPLEMENTED at once and
/// reaches nothing of the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_method_is_unimplemented() {
    let mut fixture = Fixture::start().await;
    let cvm = fixture.victim;
    let recorded = fixture.recorded(cvm).await;
    for path in [
        "/cvms.Service/Other",
        "/manager.ManagerService/Process",
        "/cvms.Service/Process/extra",
        "/",
    ] {
        let (response, mut stream) = call(&fixture, path).await;
        // A message the channel would record, had the call reached it.
        stream
            .send_data(encoded(&log_message(&format!("sent to {path}"))), true)
            .unwrap();
        let ended = ended_after(response, path).await;
        assert_eq!(ended, Ended::Status(Code::Unimplemented as i32), "{path}");
        fixture.still_serving(&format!("a call of {path}")).await;
    }
    assert_eq!(
        fixture.recorded(cvm).await,
        recorded,
        "a call of another method recorded something"
    );
    fixture.stop().await;
}

/// Without a client certificate, or without TLS, garbage never reaches HTTP/2: the handshake refuses
/// it (a TLS alert) and the server closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_garbage_never_reaches_http2() {
    let mut fixture = Fixture::start().await;

    // TLS 1.3 without a client certificate: the client's side of the handshake completes, then the
    // server refuses the empty certificate with `certificate_required` and closes.
    let what = "TLS without a client certificate";
    let mut io = tls(fixture.addr, None, &fixture.root).await;
    // Writing may already fail once the alert has arrived; what is read says why.
    let _ = io
        .write_all(&[PREFACE, SETTINGS, &noise(1024, 17)].concat())
        .await;
    let _ = io.flush().await;
    let (received, error) = read_until_closed(&mut io, what).await;
    assert!(received.is_empty(), "after {what}, the server sent {received:?}");
    let error = error.unwrap_or_else(|| panic!("after {what}, the connection closed without an alert"));
    let alert = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("after {what}: {error}"));
    assert_eq!(
        alert,
        &rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        "after {what}"
    );
    fixture.still_serving(what).await;

    // No TLS at all: an HTTP/2 client speaking in clear, then noise.
    for (what, garbage) in [
        ("HTTP/2 in clear", [PREFACE, SETTINGS].concat()),
        ("random bytes in clear", noise(4096, 19)),
    ] {
        let mut tcp = TcpStream::connect(fixture.addr).await.unwrap();
        tcp.write_all(&garbage).await.unwrap();
        let (received, _) = read_until_closed(&mut tcp, what).await;
        // At most a TLS alert record (content type 21), never an HTTP/2 frame.
        assert!(
            received.is_empty() || received[0] == 21,
            "after {what}, the server sent {received:?}"
        );
        assert!(goaway_code(&received).is_none() && !received.starts_with(&[0, 0]));
        fixture.still_serving(what).await;
    }
    fixture.stop().await;
}
