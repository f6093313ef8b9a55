//! `prism up` as a user runs it: the real binary, embedded nats-server and PostgreSQL, Ctrl-C, and a
//! second start on the same data.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["up", "--http", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env_remove("NATS_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("prism starts")
}

async fn wait_healthy(http: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("prism up exited early: {status}");
        }
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "prism up did not become healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ctrl-C, then a clean exit within a bounded time.
fn interrupt(mut child: Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "prism up exited with {status} after Ctrl-C");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("prism up did not stop after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn prism_up_serves_stops_cleanly_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded PostgreSQL runs as an unprivileged user when started by root: let it in.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    let http = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = start(&data_dir, port);
    wait_healthy(&http, &base, &mut first).await;
    let r = http
        .post(format!("{base}/workspaces"))
        .json(&json!({"name": "Kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    interrupt(first);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = start(&data_dir, port);
    wait_healthy(&http, &base, &mut second).await;
    let r = http.get(format!("{base}/workspaces/{id}")).send().await.unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::OK,
        "the second start lost the data"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Kept");
    interrupt(second);
}
