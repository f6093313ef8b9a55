//! **Architecture Invariant:** `prism-domain` performs no I/O. Its dependency graph must hold no async
//! runtime, network, database or file-system crate; this test reads the graph with `cargo tree`.

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "mio",
    "async-nats",
    "nats",
    "tokio-postgres",
    "postgres",
    "sqlx",
    "deadpool",
    "hyper",
    "reqwest",
    "axum",
    "tonic",
    "socket2",
    "rustls",
];

#[test]
fn the_domain_depends_on_nothing_that_does_io() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "prism-domain",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let offending: Vec<&str> = tree
        .lines()
        .filter(|line| FORBIDDEN.contains(&line.split_whitespace().next().unwrap_or_default()))
        .collect();
    assert!(
        tree.contains("prism-domain"),
        "unexpected cargo tree output: {tree}"
    );
    assert!(
        offending.is_empty(),
        "the domain crate pulls in I/O crates: {offending:?}"
    );
}
