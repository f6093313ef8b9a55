//! Security events, per workspace and for the platform: refused requests, failed sign-ins and
//! lock-outs of a workspace's members, client certificates refused at the TLS handshake. (Refused
//! attestations are checked where a run's evidence fails its policy, in `runs.rs`.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::agent::admin_workspace;
use common::parties::party;
use common::{Prism, client_with, json, problem};
use prism_domain::WorkspaceId;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The security events at `path` (read as the administrator) once `ready` holds of them, within 10 s:
/// they are a read model, which follows the log.
async fn until_security_events(prism: &Prism, path: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = prism.admin().get(prism.url(path)).send().await.unwrap();
        let page = json(r, StatusCode::OK).await;
        let items = page["items"].as_array().unwrap().clone();
        if ready(&items) {
            return items;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path}: {page:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kinds(items: &[Value]) -> Vec<&str> {
    items.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_workspaces_security_events_hold_its_refusals_and_its_members_failed_sign_ins_only() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Hospitals").await;
    let member = party(&prism, ws, "mallory", &rcgen::PKCS_ED25519).await;
    // Another workspace, with a member of its own.
    let r = prism
        .admin()
        .post(prism.url("/workspaces"))
        .json(&json!({"name": "Elsewhere"}))
        .send()
        .await
        .unwrap();
    let other: WorkspaceId = json(r, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stranger = party(&prism, other, "trent", &rcgen::PKCS_ED25519).await;

    // The member asks for what its role does not grant: inviting, and reading the security events.
    let r = client_with(&member.token)
        .post(prism.url(&format!("/workspaces/{ws}/invitations")))
        .json(&json!({"user_id": member.id, "role": "member"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let r = client_with(&member.token)
        .get(prism.url(&format!("/{ws}/security-events")))
        .send()
        .await
        .unwrap();
    let refused = problem(r, StatusCode::FORBIDDEN).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("audit.read"),
        "{refused:#}"
    );
    // Wrong passwords, for the member and for the other workspace's.
    let r = prism.sign_in(&member.email, "not the password at all").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = prism.sign_in(&stranger.email, "not the password either").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let path = format!("/{ws}/security-events");
    let events = until_security_events(&prism, &path, |items| {
        kinds(items)
            .iter()
            .filter(|k| **k == "missing_permission")
            .count()
            == 2
            && kinds(items).contains(&"sign_in_failed")
    })
    .await;
    let actor = format!("user:{}", member.id);
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "missing_permission")
        .collect();
    assert!(denied.iter().all(|e| e["actor"] == actor.as_str()
        && e["subject"] == format!("workspaces/{ws}")
        && e["type"] == "io.prism.access.denied.v1"));
    assert!(
        denied
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("members.invite"))
    );
    let failed: Vec<&Value> = events.iter().filter(|e| e["kind"] == "sign_in_failed").collect();
    assert_eq!(
        failed.len(),
        1,
        "only the member's own failed sign-in: {events:#?}"
    );
    assert_eq!(failed[0]["subject"], format!("users/{}", member.id));
    assert_eq!(failed[0]["detail"], "wrong_password");
    assert_eq!(failed[0]["source"], "127.0.0.1");
    // In the log's order, each once.
    let sequences: Vec<u64> = events.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert!(sequences.is_sorted());

    // Narrowed by kind, and paged.
    let only = until_security_events(&prism, &format!("{path}?kind=sign_in_failed"), |items| {
        !items.is_empty()
    })
    .await;
    assert_eq!(kinds(&only), ["sign_in_failed"]);
    let r = prism
        .admin()
        .get(prism.url(&format!("{path}?limit=1")))
        .send()
        .await
        .unwrap();
    let first = json(r, StatusCode::OK).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let after = first["next_after"].as_u64().expect("more than one page");
    let r = prism
        .admin()
        .get(prism.url(&format!("{path}?after={after}")))
        .send()
        .await
        .unwrap();
    let rest = json(r, StatusCode::OK).await;
    assert_eq!(
        rest["items"].as_array().unwrap().len() + 1,
        events.len(),
        "the pages hold every event once"
    );
    let r = prism
        .admin()
        .get(prism.url(&format!("{path}?kind=everything")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;

    // The other workspace sees its own member's failed sign-in, and nothing of the first's.
    let theirs = until_security_events(&prism, &format!("/{other}/security-events"), |items| {
        !items.is_empty()
    })
    .await;
    assert_eq!(kinds(&theirs), ["sign_in_failed"]);
    assert_eq!(theirs[0]["subject"], format!("users/{}", stranger.id));

    // The platform's list is the operators': a member is refused, the administrator sees all.
    let r = client_with(&member.token)
        .get(prism.url("/operations/security-events"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let all = until_security_events(&prism, "/operations/security-events", |items| {
        kinds(items).iter().filter(|k| **k == "sign_in_failed").count() >= 2
    })
    .await;
    assert!(all.len() > events.len());
}

#[tokio::test]
async fn a_client_certificate_refused_by_the_agents_channel_is_a_security_event_of_the_platform() {
    let prism = Prism::start().await;
    let (agents, _) = prism.platform().agents().expect("the agents' channel is served");
    // A TLS client that trusts the platform and speaks h2, as an agent does, but has no certificate
    // to show: the server refuses the handshake.
    let root = prism
        .platform()
        .app()
        .certificates()
        .authority()
        .await
        .unwrap()
        .root_pem();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap())
        .unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(agents).await.unwrap();
    let connected = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    // Under TLS 1.3 the client finishes first; the server's refusal reaches it on its next read.
    if let Ok(mut tls) = connected {
        let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buffer = [0u8; 64];
        let read = tls.read(&mut buffer).await;
        assert!(
            !matches!(read, Ok(n) if n > 0),
            "served without a client certificate"
        );
    }

    let events = until_security_events(
        &prism,
        "/operations/security-events?kind=certificate_refused",
        |items| !items.is_empty(),
    )
    .await;
    assert_eq!(events[0]["subject"], "agents' channel");
    assert_eq!(events[0]["actor"], "anonymous");
    assert_eq!(events[0]["source"], "127.0.0.1");
    assert!(
        events[0]["detail"].as_str().unwrap().contains("certificate"),
        "{events:#?}"
    );
    // It concerns no workspace.
    let (_, ws) = admin_workspace(&prism, "Hospitals").await;
    let r = prism
        .admin()
        .get(prism.url(&format!("/{ws}/security-events?kind=certificate_refused")))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r, StatusCode::OK).await["items"], json!([]));
}
