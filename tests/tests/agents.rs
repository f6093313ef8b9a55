//! The agents' channel end to end, against a real nats-server and PostgreSQL: an agent dials in over
//! mutual TLS with a certificate the platform issued for its CVM, on two streams as a Cocos agent VM
//! does; what it says becomes the CVM's events (a resent message once); the platform's requests reach
//! it (a run request in 1 MiB chunks); a forged job-id or another CVM's certificate is refused; an
//! agent that stays away turns its CVM Offline.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Prism;
use common::agent::{admin_workspace, agent_certificate, started_cvm};
use prism_agents::ServerRequest;
use prism_app::IssuedCertificate;
use prism_domain::CvmId;
use prism_domain::cvm::{Cvm, CvmStatus};
use prism_proto::chunks::{CHUNK_SIZE, RunRequestAssembler};
use prism_proto::cvms::service_client::ServiceClient;
use prism_proto::cvms::{
    AgentLog, AttestationResponse, ClientStreamMessage, ComputationRunReq, ServerStreamMessage,
    client_stream_message, server_stream_message,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

/// A tonic channel to `addr` over rustls, presenting `issued` and trusting `root`, offering ALPN h2
/// as grpc-go does.
async fn connect(addr: std::net::SocketAddr, issued: &IssuedCertificate, root: &str) -> Channel {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap())
        .unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(format!("{}{}", issued.certificate, issued.chain).as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.private_key.as_deref().unwrap().as_bytes()).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let connector = tower::service_fn(move |_: http::Uri| {
        let config = config.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
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

/// One of the agent VM's streams: what it sends goes through `outbound`.
struct AgentStream {
    outbound: mpsc::Sender<ClientStreamMessage>,
    inbound: tonic::Streaming<ServerStreamMessage>,
}

async fn open(channel: Channel, job_id: &str, log_forwarder: bool) -> Result<AgentStream, tonic::Status> {
    let (outbound, receiver) = mpsc::channel(16);
    let messages = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|m| (m, receiver))
    });
    let mut request = tonic::Request::new(messages);
    request.metadata_mut().insert("job-id", job_id.parse().unwrap());
    if log_forwarder {
        request
            .metadata_mut()
            .insert("connection-type", "log-forwarder".parse().unwrap());
    }
    let inbound = ServiceClient::new(channel).process(request).await?.into_inner();
    Ok(AgentStream { outbound, inbound })
}

fn log(text: &str) -> ClientStreamMessage {
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

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_dials_in_on_two_streams_and_what_it_says_becomes_its_cvms_events() {
    let prism = Prism::start().await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Agents").await;
    let (one, other) = (started_cvm(&prism, ws).await, started_cvm(&prism, ws).await);
    let certificate = agent_certificate(&prism, &admin, ws, one).await;
    let other_certificate = agent_certificate(&prism, &admin, ws, other).await;

    // The platform's own agents' channel.
    let (addr, channel) = prism
        .platform()
        .agents()
        .expect("the test platform runs the agents' channel");
    let root = app.certificates().authority().await.unwrap().root_pem();
    let state = async |id: CvmId| app.repository::<Cvm>().load(&id).await.unwrap().state;

    // A forged job-id, and another CVM's certificate, are refused.
    let forged = open(
        connect(addr, &certificate, &root).await,
        &other.to_string(),
        false,
    )
    .await;
    assert_eq!(forged.err().unwrap().code(), tonic::Code::PermissionDenied);
    let borrowed = open(
        connect(addr, &other_certificate, &root).await,
        &one.to_string(),
        false,
    )
    .await;
    assert_eq!(borrowed.err().unwrap().code(), tonic::Code::PermissionDenied);

    // The agent's stream and the log forwarder's; the CVM is Online.
    let mut agent = open(connect(addr, &certificate, &root).await, &one.to_string(), false)
        .await
        .unwrap();
    let forwarder = open(connect(addr, &certificate, &root).await, &one.to_string(), true)
        .await
        .unwrap();
    until("the CVM online", async || {
        state(one).await.status == CvmStatus::Online
    })
    .await;
    let report = ClientStreamMessage {
        message: Some(client_stream_message::Message::VTpMattestationReport(
            AttestationResponse {
                file: vec![7; 96],
                cert_serial_number: certificate.serial.to_decimal(),
            },
        )),
    };
    agent.outbound.send(report).await.unwrap();
    for text in ["algorithm received", "running", "complete"] {
        forwarder.outbound.send(log(text)).await.unwrap();
    }
    until("four messages recorded", async || {
        state(one).await.recent_messages.len() == 4
    })
    .await;

    // The platform asks: a state request, and a run request of several megabytes in chunks.
    channel
        .send(one, ServerRequest::State { id: "s-1".into() })
        .await
        .unwrap();
    let asked = agent.inbound.message().await.unwrap().unwrap();
    assert!(matches!(
        asked.message,
        Some(server_stream_message::Message::AgentStateReq(ref r)) if r.id == "s-1"
    ));
    let run = ComputationRunReq {
        id: "run-1".into(),
        name: "study".into(),
        description: "x".repeat(CHUNK_SIZE * 2 + 17),
        ..Default::default()
    };
    channel
        .send(
            one,
            ServerRequest::Run {
                request: Box::new(run.clone()),
                consent: None,
            },
        )
        .await
        .unwrap();
    let mut assembler = RunRequestAssembler::new(16 * CHUNK_SIZE);
    let mut chunks = 0;
    let received = loop {
        let message = agent.inbound.message().await.unwrap().unwrap();
        let Some(server_stream_message::Message::RunReqChunks(chunk)) = message.message else {
            panic!("not a chunk: {message:?}");
        };
        chunks += 1;
        if let Some(done) = assembler.add(chunk, Instant::now()).unwrap() {
            break done;
        }
    };
    assert_eq!(received, run);
    assert_eq!(chunks, 4, "three chunks of data and the empty last one");

    // The log forwarder reconnects and resends a message it had pending: recorded once.
    drop(forwarder);
    let forwarder = open(connect(addr, &certificate, &root).await, &one.to_string(), true)
        .await
        .unwrap();
    forwarder.outbound.send(log("complete")).await.unwrap();
    forwarder.outbound.send(log("done for good")).await.unwrap();
    until("the new message recorded", async || {
        state(one).await.recent_messages.len() == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(one).await.recent_messages.len(), 5);

    // The agent goes away and stays away: Offline; it comes back: Online.
    drop(agent);
    until("the CVM offline", async || {
        state(one).await.status == CvmStatus::Offline
    })
    .await;
    let _back = open(connect(addr, &certificate, &root).await, &one.to_string(), false)
        .await
        .unwrap();
    until("the CVM online again", async || {
        state(one).await.status == CvmStatus::Online
    })
    .await;
    assert!(channel.is_connected(one));

    drop(forwarder);
    drop(_back);
    prism.stop().await;
}
