//! `prism projections rebuild|status` against a real nats-server and PostgreSQL.

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

#[tokio::test]
async fn a_rebuild_replays_the_log_into_empty_read_models() {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let config = || PlatformConfig::new(nats.url(), db.url.clone(), "127.0.0.1:0".parse().unwrap());
    let http = reqwest::Client::new();

    let platform = Platform::start(config()).await.unwrap();
    let base = format!("http://{}", platform.addr());
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
