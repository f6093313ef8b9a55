//! `prism projections rebuild|status` against a real nats-server and PostgreSQL.

mod common;

use std::process::Command;

use prism_cli::{Platform, PlatformConfig};
use prism_embedded::{NatsServer, TestDatabase};
use serde_json::{Value, json};

fn prism(args: &[&str], nats: &NatsServer, db: &TestDatabase) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(args)
        .env("NATS_URL", nats.url())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "prism {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A client signed in as the platform administrator (made on the first start).
async fn signed_in(platform: &Platform) -> reqwest::Client {
    const ADMIN: &str = "admin@prism.test";
    const PASSWORD: &str = "an administrator's test password";
    platform
        .app()
        .identity()
        .bootstrap_admin(ADMIN, Some(PASSWORD.into()))
        .await
        .unwrap();
    common::signed_in_as(&format!("http://{}", platform.addr()), ADMIN, PASSWORD).await
}

#[tokio::test]
async fn a_rebuild_replays_the_log_into_empty_read_models() {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let config = || PlatformConfig::new(nats.url(), db.url.clone(), "127.0.0.1:0".parse().unwrap());

    let platform = Platform::start(config()).await.unwrap();
    let base = format!("http://{}", platform.addr());
    let http = signed_in(&platform).await;
    let r = http
        .post(format!("{base}/workspaces"))
        .json(&json!({"name": "Kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let sequence = r.headers()["prism-sequence"].to_str().unwrap().to_owned();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    platform.shutdown().await.unwrap();

    let rebuilt = prism(&["projections", "rebuild", "all"], &nats, &db);
    assert!(
        rebuilt.contains(&format!("workspaces: rebuilt up to sequence {sequence}")),
        "{rebuilt}"
    );
    assert!(
        rebuilt.contains("computations: rebuilt up to sequence"),
        "{rebuilt}"
    );
    let status = prism(&["projections", "status"], &nats, &db);
    assert!(status.contains("(0 behind)"), "{status}");

    let platform = Platform::start(config()).await.unwrap();
    let base = format!("http://{}", platform.addr());
    let http = signed_in(&platform).await;
    let r = http
        .get(format!("{base}/workspaces/{id}?min_sequence={sequence}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Kept");
    platform.shutdown().await.unwrap();

    let unknown = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["projections", "rebuild", "nonsense"])
        .env("NATS_URL", nats.url())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown projection"));
}

/// An operator tool uses the stream as it is: `prism projections status` with the default settings must
/// not bring a stream configured otherwise to them.
#[tokio::test]
async fn projections_status_never_changes_the_streams_settings() {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let window = std::time::Duration::from_secs(7);
    let config = prism_store::StoreConfig {
        duplicate_window: window,
        ..Default::default()
    };
    let store = prism_store::EventStore::connect(&nats.url(), config)
        .await
        .unwrap();
    assert_eq!(store.duplicate_window().await.unwrap(), window);

    let status = prism(&["projections", "status"], &nats, &db);
    assert!(status.contains("event log ends at sequence 0"), "{status}");
    assert_eq!(store.duplicate_window().await.unwrap(), window);

    // On a server without the stream it says so instead of creating it.
    let empty = NatsServer::start_temp().await.unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["projections", "status"])
        .env("NATS_URL", empty.url())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}
