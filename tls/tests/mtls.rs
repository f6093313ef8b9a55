//! Mutual TLS over loopback with certificates from the platform's authority: who is let in, which
//! protocol is spoken, and what a hostile or broken peer cannot do to the server.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{H2, H2Client, Pki, Running, app, client_config, connect, eventually, listener, verdict};
use prism_tls::{Alpn, ClientAuth, RevokedSerials, Server, TlsServerConfig};
use rustls::AlertDescription;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn grpc_server(pki: &Pki, revoked: &std::sync::Arc<RevokedSerials>) -> Running {
    let server = Server::new(listener().await, pki.mtls(revoked, Alpn::Http2));
    Running::start(server, app())
}

fn refused_with(result: Result<(), rustls::Error>, alert: AlertDescription) {
    match result {
        Err(rustls::Error::AlertReceived(received)) => assert_eq!(received, alert),
        other => panic!("expected the server to refuse with {alert:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_client_certificate_is_accepted_and_its_serial_reaches_the_handler() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;
    let agent = pki.client("cvm-1");

    let mut client = H2Client::connect(server.addr, client_config(&pki, Some(&agent), H2))
        .await
        .unwrap();
    assert_eq!(client.text("/whoami").await.unwrap(), agent.serial.to_string());
    assert_eq!(revoked.live_connections(), 1);

    // The registry forgets the connection once it is closed.
    drop(client);
    assert!(eventually(Duration::from_secs(2), || revoked.live_connections() == 0).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let agent = pki.client("cvm-1");
    let bystander = pki.client("cvm-2");
    let revoked = RevokedSerials::with([agent.serial.clone()]);
    let server = grpc_server(&pki, &revoked).await;

    refused_with(
        verdict(server.addr, client_config(&pki, Some(&agent), H2)).await,
        AlertDescription::CertificateRevoked,
    );
    assert_eq!(
        verdict(server.addr, client_config(&pki, Some(&bystander), H2)).await,
        Ok(())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_revoked_after_its_first_session_cannot_resume_it() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;
    let agent = pki.client("cvm-1");
    // One client configuration, so its session cache would offer the first session back.
    let config = client_config(&pki, Some(&agent), H2);

    let mut client = H2Client::connect(server.addr, config.clone()).await.unwrap();
    assert_eq!(client.text("/whoami").await.unwrap(), agent.serial.to_string());
    drop(client);
    revoked.revoke([agent.serial.clone()]);

    // A resumed session would skip the verifier; refused with `CertificateRevoked` means the
    // certificate was verified again.
    refused_with(
        verdict(server.addr, config).await,
        AlertDescription::CertificateRevoked,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;
    let expired = pki.client_at("cvm-1", Utc::now() - chrono::Duration::days(2), DAY);

    refused_with(
        verdict(server.addr, client_config(&pki, Some(&expired), H2)).await,
        AlertDescription::CertificateExpired,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_refused() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;
    let early = pki.client_at("cvm-1", Utc::now() + chrono::Duration::days(1), DAY);

    // rustls reports "not valid yet" with the same alert as "expired".
    refused_with(
        verdict(server.addr, client_config(&pki, Some(&early), H2)).await,
        AlertDescription::CertificateExpired,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_a_foreign_authority_is_refused() {
    let pki = Pki::new();
    let foreign = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;
    // The client trusts our server but presents a certificate the other authority issued.
    let stranger = foreign.client("cvm-1");

    // Both authorities name their root and intermediate alike ("Prism Root CA", "Prism Issuing
    // CA"), so WebPKI finds a path by name and then fails on its signature (`BadSignature`, sent as
    // `DecryptError`); with distinct names it is `UnknownIssuer` (`UnknownCA`). Either is a refusal
    // of the chain.
    match verdict(server.addr, client_config(&pki, Some(&stranger), H2)).await {
        Err(rustls::Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::DecryptError)) => {}
        other => panic!("expected the foreign chain to be refused, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;

    refused_with(
        verdict(server.addr, client_config(&pki, None, H2)).await,
        AlertDescription::CertificateRequired,
    );
    assert_eq!(revoked.live_connections(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn the_grpc_configuration_negotiates_h2_and_refuses_an_http1_only_client() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = grpc_server(&pki, &revoked).await;
    let agent = pki.client("cvm-1");

    let tls = connect(
        server.addr,
        client_config(&pki, Some(&agent), &[b"http/1.1", b"h2"]),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);

    // A client that offers no ALPN at all gets no HTTP/1.1 either: the listener speaks HTTP/2 only.
    let mut bare = connect(server.addr, client_config(&pki, Some(&agent), &[]))
        .await
        .unwrap();
    assert_eq!(bare.get_ref().1.alpn_protocol(), None);
    bare.write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), bare.read_to_end(&mut response)).await;
    assert!(
        !String::from_utf8_lossy(&response).contains("HTTP/1.1 200"),
        "HTTP/1.1 served on an h2-only listener"
    );

    let refused = connect(server.addr, client_config(&pki, Some(&agent), &[b"http/1.1"])).await;
    let error = refused.expect_err("no protocol in common");
    let alert = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(
        alert,
        Some(rustls::Error::AlertReceived(
            AlertDescription::NoApplicationProtocol
        ))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_https_configuration_serves_http1_and_h2_without_client_certificates() {
    let pki = Pki::new();
    let tls = TlsServerConfig::new(pki.server_identity(), ClientAuth::None, Alpn::Http2AndHttp1).unwrap();
    assert!(tls.revoked().is_none());
    let server = Running::start(Server::new(listener().await, tls), app());

    // HTTP/2: no certificate, so no identity in the request.
    let mut client = H2Client::connect(server.addr, client_config(&pki, None, H2))
        .await
        .unwrap();
    assert_eq!(client.text("/whoami").await.unwrap(), "anonymous");

    // HTTP/1.1, chosen by ALPN.
    let mut tls = connect(server.addr, client_config(&pki, None, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.ok();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("anonymous"), "{response}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_replaced_identity_is_presented_from_the_next_handshake_on() {
    let pki = Pki::new();
    let tls = TlsServerConfig::new(pki.server_identity(), ClientAuth::None, Alpn::Http2AndHttp1).unwrap();
    let handle = tls.identity().clone();
    let first = handle.chain()[0].clone();
    let server = Running::start(Server::new(listener().await, tls), app());
    let pki = &pki;
    let presented = |addr| async move {
        let tls = connect(addr, client_config(pki, None, H2)).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    assert_eq!(presented(server.addr).await, first);

    // A renewal: a new certificate for the same names.
    handle.replace(pki.server_identity()).unwrap();
    let second = handle.chain()[0].clone();
    assert_ne!(second, first);
    assert_eq!(presented(server.addr).await, second);

    // A key that is not the certificate's is refused, and the current identity stays.
    let other = Pki::new();
    let mismatched = prism_tls::ServerIdentity::from_pem(&pki.server_pem().0, &other.server_pem().1).unwrap();
    assert!(handle.replace(mismatched).is_err());
    assert_eq!(presented(server.addr).await, second);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_plain_http_and_silent_peers_do_not_stop_the_server() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = Server::new(listener().await, pki.mtls(&revoked, Alpn::Http2))
        .handshake_timeout(Duration::from_millis(500));
    let server = Running::start(server, app());
    let addr = server.addr;

    // Peers that connect and never say a word: each would hold a task and a socket forever without
    // the handshake timeout.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }

    // Garbage where a ClientHello should be.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage.write_all(&noise).await.ok();
    // A plain-HTTP client on the TLS port.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    for peer in [&mut garbage, &mut plain] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(2), peer.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the server hangs up on a peer that does not speak TLS"
        );
    }

    // While the silent peers still wait, a real client is served.
    let agent = pki.client("cvm-1");
    let mut client = H2Client::connect(addr, client_config(&pki, Some(&agent), H2))
        .await
        .unwrap();
    assert_eq!(client.text("/whoami").await.unwrap(), agent.serial.to_string());

    // The silent peers are dropped once the handshake timeout has passed.
    for mut peer in silent {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(3), peer.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a silent peer is dropped after the handshake timeout"
        );
    }

    // And the server still serves.
    assert_eq!(client.text("/whoami").await.unwrap(), agent.serial.to_string());
    assert!(!server.task.is_finished());
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_ends_open_ones_after_the_grace() {
    let pki = Pki::new();
    let revoked = RevokedSerials::new();
    let server = Server::new(listener().await, pki.mtls(&revoked, Alpn::Http2))
        .shutdown_grace(Duration::from_millis(300));
    let server = Running::start(server, app());
    let addr = server.addr;
    let agent = pki.client("cvm-1");

    let mut client = H2Client::connect(addr, client_config(&pki, Some(&agent), H2))
        .await
        .unwrap();
    let mut stream = client.get("/stream").await.unwrap().into_body();
    use http_body_util::BodyExt;
    assert!(stream.frame().await.unwrap().is_ok());

    let started = std::time::Instant::now();
    server.shutdown().await;
    // A stream that never ends holds the shutdown for the grace period only.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.frame().await {}
    })
    .await;
    assert!(ended.is_ok(), "the open stream ended with the server");
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
    assert_eq!(revoked.live_connections(), 0);
}
