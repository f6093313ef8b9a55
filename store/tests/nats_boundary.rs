//! **Architecture Invariant:** `prism-store` is the only crate that knows NATS. No other package of the
//! workspace depends on `async-nats`, for its code or its tests; this test reads the manifests with
//! `cargo metadata`, as `domain/tests/purity.rs` does for the domain.

use std::process::Command;

#[test]
fn only_the_event_store_depends_on_async_nats() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    assert!(packages.len() > 5, "unexpected metadata: {metadata}");
    let offending: Vec<String> = packages
        .iter()
        .filter(|p| p["name"] != "prism-store")
        .filter(|p| {
            p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["name"] == "async-nats")
        })
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        offending.is_empty(),
        "only prism-store may depend on async-nats; also found in: {offending:?}"
    );
}
