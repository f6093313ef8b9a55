//! Revoking a certificate closes the connections made with it, within a second, while other
//! clients' connections stay open: over HTTP/2 with an axum router, and over gRPC with the Cocos
//! CVMS bidirectional stream.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{H2, H2Client, Pki, Running, app, client_config, eventually, listener};
use futures::Stream;
use http_body_util::BodyExt;
use prism_proto::cvms::server_stream_message::Message;
use prism_proto::cvms::service_client::ServiceClient;
use prism_proto::cvms::service_server::{Service, ServiceServer};
use prism_proto::cvms::{AgentStateReq, ClientStreamMessage, ServerStreamMessage};
use prism_tls::{Alpn, PeerCertificate, RevokedSerials, Server};
use tonic::transport::{Channel, Endpoint};

const CUT_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn revoking_closes_that_clients_open_http2_stream_and_connection_only() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = Running::start(
        Server::new(listener().await, pki.mtls(&revoked, Alpn::Http2)),
        app(),
    );
    let (doomed, bystander) = (pki.client("cvm-1"), pki.client("cvm-2"));

    let mut doomed_client = H2Client::connect(server.addr, client_config(&pki, Some(&doomed), H2))
        .await
        .unwrap();
    let mut bystander_client = H2Client::connect(server.addr, client_config(&pki, Some(&bystander), H2))
        .await
        .unwrap();
    let mut doomed_stream = doomed_client.get("/stream").await.unwrap().into_body();
    let mut bystander_stream = bystander_client.get("/stream").await.unwrap().into_body();
    for stream in [&mut doomed_stream, &mut bystander_stream] {
        assert!(stream.frame().await.unwrap().is_ok());
    }
    assert_eq!(revoked.live_connections(), 2);

    let revoked_at = Instant::now();
    assert_eq!(revoked.revoke([doomed.serial.clone()]), 1);
    let cut = tokio::time::timeout(CUT_WITHIN, async {
        // Frames until the stream fails or ends.
        while let Some(Ok(_)) = doomed_stream.frame().await {}
    })
    .await;
    assert!(
        cut.is_ok(),
        "the revoked client's stream still runs after {CUT_WITHIN:?}"
    );
    let cut_after = revoked_at.elapsed();

    // Not just the stream: the connection is gone, so no new request can go over it.
    assert!(doomed_client.get("/whoami").await.is_err());
    // The other client keeps receiving over its connection.
    for _ in 0..5 {
        let frame = tokio::time::timeout(Duration::from_secs(1), bystander_stream.frame())
            .await
            .expect("the other client's stream still flows");
        assert!(frame.unwrap().is_ok());
    }
    assert_eq!(
        bystander_client.text("/whoami").await.unwrap(),
        bystander.serial.to_string()
    );
    assert_eq!(revoked.live_connections(), 1);
    eprintln!("HTTP/2 stream cut {cut_after:?} after the revocation");

    drop((bystander_stream, bystander_client, doomed_client));
    assert!(eventually(Duration::from_secs(2), || revoked.live_connections() == 0).await);
    server.shutdown().await;
}

/// The platform's side of the agent channel, reduced to what the test needs: it answers the agent's
/// stream with an `AgentStateReq` naming the agent's certificate serial every 100 ms, forever.
struct Cvms;

type Outbound = Pin<Box<dyn Stream<Item = Result<ServerStreamMessage, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Service for Cvms {
    type ProcessStream = Outbound;

    async fn process(
        &self,
        request: tonic::Request<tonic::Streaming<ClientStreamMessage>>,
    ) -> Result<tonic::Response<Outbound>, tonic::Status> {
        let serial = request
            .extensions()
            .get::<PeerCertificate>()
            .map(|peer| peer.serial().to_string())
            .ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
        let ticks = futures::stream::unfold(serial, |serial| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let message = ServerStreamMessage {
                message: Some(Message::AgentStateReq(AgentStateReq { id: serial.clone() })),
            };
            Some((Ok(message), serial))
        });
        Ok(tonic::Response::new(Box::pin(ticks)))
    }
}

/// A tonic channel over our rustls client (no tonic TLS feature needed).
async fn channel(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Channel {
    let connector = tower::service_fn(move |_: http::Uri| {
        let config = config.clone();
        async move {
            let tls = common::connect(addr, config).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .unwrap()
}

/// Opens the agent's `Process` stream (the agent side never ends it) and returns the inbound half.
async fn process(channel: Channel) -> tonic::Streaming<ServerStreamMessage> {
    let outbound = futures::stream::pending::<ClientStreamMessage>();
    ServiceClient::new(channel)
        .process(outbound)
        .await
        .unwrap()
        .into_inner()
}

fn id_of(message: ServerStreamMessage) -> String {
    match message.message {
        Some(Message::AgentStateReq(request)) => request.id,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn revoking_cuts_an_agents_grpc_stream_while_another_agent_stays_connected() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    // A short grace: the bystander's stream never ends (its outbound half stays open in the client
    // even after the inbound half is dropped), so shutdown waits the grace out.
    let server = Running::start(
        Server::new(listener().await, pki.mtls(&revoked, Alpn::Http2))
            .shutdown_grace(Duration::from_millis(500)),
        ServiceServer::new(Cvms),
    );
    let (doomed, bystander) = (pki.client("cvm-1"), pki.client("cvm-2"));

    let doomed_channel = channel(server.addr, client_config(&pki, Some(&doomed), H2)).await;
    let mut doomed_stream = process(doomed_channel.clone()).await;
    let mut bystander_stream =
        process(channel(server.addr, client_config(&pki, Some(&bystander), H2)).await).await;
    // Each agent is told its own serial: the handler identified it by its certificate.
    assert_eq!(
        id_of(doomed_stream.message().await.unwrap().unwrap()),
        doomed.serial.to_string()
    );
    assert_eq!(
        id_of(bystander_stream.message().await.unwrap().unwrap()),
        bystander.serial.to_string()
    );

    let revoked_at = Instant::now();
    assert_eq!(revoked.revoke([doomed.serial.clone()]), 1);
    let cut = tokio::time::timeout(CUT_WITHIN, async {
        // Messages until the stream fails or ends.
        while let Ok(Some(_)) = doomed_stream.message().await {}
    })
    .await;
    assert!(
        cut.is_ok(),
        "the revoked agent's stream still runs after {CUT_WITHIN:?}"
    );
    eprintln!("gRPC stream cut {:?} after the revocation", revoked_at.elapsed());

    // The channel reconnects for a new call, and the handshake refuses the revoked certificate.
    let mut again = ServiceClient::new(doomed_channel);
    let retry = tokio::time::timeout(
        Duration::from_secs(5),
        again.process(futures::stream::pending::<ClientStreamMessage>()),
    )
    .await
    .expect("the retry is answered");
    match retry {
        Err(_) => {}
        Ok(response) => {
            let mut inbound = response.into_inner();
            assert!(
                !matches!(inbound.message().await, Ok(Some(_))),
                "a revoked agent must not get a new stream"
            );
        }
    }

    // The other agent's stream flows on.
    for _ in 0..5 {
        let message = tokio::time::timeout(Duration::from_secs(1), bystander_stream.message())
            .await
            .expect("the other agent still hears from the server")
            .unwrap()
            .unwrap();
        assert_eq!(id_of(message), bystander.serial.to_string());
    }
    assert_eq!(revoked.live_connections(), 1);
    drop(bystander_stream);
    server.shutdown().await;
    assert_eq!(revoked.live_connections(), 0);
}
