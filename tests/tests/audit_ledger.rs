//! The audit ledger against real NATS JetStream and PostgreSQL: the auditor seals every commit into
//! signed checkpoints; `prism audit verify` finds the log intact, then — after the stream has been
//! rewritten directly in the store, as only someone in control of it could — names the first
//! altered, missing or moved commit, even where every hash chain was recomputed to hide it; an
//! exported bundle verifies offline with the public key alone, and an altered one does not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::agent::admin_workspace;
use common::parties::admin_id;
use common::{Prism, json};
use prism_store::tamper::{RawMessage, rewrite};
use prism_store::{EventEnvelope, EventStore, StoreConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The `prism` program, built beside the test executables.
fn prism_program() -> PathBuf {
    let program = common::emulated_agent().with_file_name("prism");
    assert!(
        program.exists(),
        "{} is missing: build prism-cli first",
        program.display()
    );
    program
}

/// `prism audit <args>` against the platform's servers.
fn prism_audit(prism: &Prism, args: &[&str]) -> Output {
    let (nats, database) = prism.server_urls();
    std::process::Command::new(prism_program())
        .arg("audit")
        .args(args)
        .env("NATS_URL", nats)
        .env("DATABASE_URL", database)
        .env_remove("PRISM_CA_KEK")
        .env_remove("PRISM_CA_KEYS")
        .output()
        .unwrap()
}

/// `prism audit verify --json` with the key in `key`: the report, and whether it exited 0.
fn verify(prism: &Prism, key: &Path, bundle: Option<&Path>) -> (Value, bool) {
    let mut args = vec!["verify", "--json", "--public-key", key.to_str().unwrap()];
    if let Some(bundle) = bundle {
        args.extend(["--bundle", bundle.to_str().unwrap()]);
    }
    let out = prism_audit(prism, &args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.success())
}

fn first_finding(report: &Value) -> (u64, &str) {
    let first = &report["findings"][0];
    (
        first["sequence"].as_u64().unwrap(),
        first["kind"].as_str().unwrap(),
    )
}

/// Waits until the ledger covers every commit that is not its own.
async fn until_covered(prism: &Prism) -> u64 {
    let app = prism.platform().app();
    let ledger_subject = app.log().subjects().aggregate("ledger", "platform").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = app.log().last_sequence().await.unwrap();
        let last_own = app.log().subject_last_sequence(&ledger_subject).await.unwrap();
        let covered = app.ledger().state().await.unwrap().covered_through;
        // Everything but the ledger's own last checkpoint, which waits for the next commit.
        if covered >= last || (last == last_own && covered + 1 >= last) {
            return covered;
        }
        assert!(
            Instant::now() < deadline,
            "the ledger covers {covered} of {last} commits"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The commit's events, and the same with `edit` applied to its first event and that event's hash
/// recomputed: a change that the event's own hash does not reveal.
fn rewritten(message: &RawMessage, edit: impl FnOnce(&mut Value)) -> RawMessage {
    let mut events: Vec<EventEnvelope> = serde_json::from_slice(&message.payload).unwrap();
    edit(&mut events[0].data);
    events[0].hash = events[0].compute_hash();
    let mut changed = message.clone();
    changed.payload = serde_json::to_vec(&events).unwrap().into();
    changed
}

fn subject_of(messages: &[RawMessage], sequence: u64) -> &str {
    &messages.iter().find(|m| m.sequence == sequence).unwrap().subject
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_vouches_for_every_commit_and_names_the_first_rewritten_one() {
    let mut prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Audited").await;
    let me = admin_id(&prism).await;
    // Computations made one at a time, each created then renamed: two commits of one aggregate.
    let mut computations = Vec::new();
    for n in 0..4 {
        let r = prism
            .admin()
            .post(prism.url(&format!("/{ws}/computations")))
            .json(&json!({"name": format!("Computation {n}"), "participants": [{"id": me, "roles": ["owner"]}]}))
            .send()
            .await
            .unwrap();
        let id = json(r, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = prism
            .admin()
            .patch(prism.url(&format!("/{ws}/computations/{id}")))
            .json(&json!({"name": format!("Renamed {n}")}))
            .send()
            .await
            .unwrap();
        json(r, StatusCode::OK).await;
        computations.push(id);
    }
    let covered = until_covered(&prism).await;

    // The key anyone may fetch, without credentials, is the one the platform signs with.
    let r = reqwest::get(prism.url("/audit/public-key")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let pem = r.text().await.unwrap();
    let key_of_platform = prism.platform().app().ledger().public_key().await.unwrap();
    assert_eq!(pem, key_of_platform.as_pem());
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ledger.pem");
    std::fs::write(&key, &pem).unwrap();

    let (report, ok) = verify(&prism, &key, None);
    assert!(ok, "{report:#}");
    assert_eq!(report["findings"], json!([]));
    assert!(report["checkpoints"].as_u64().unwrap() >= 1);
    assert_eq!(report["covered_through"].as_u64().unwrap(), covered);

    // A bundle of a range verifies offline with the key alone.
    let bundle = dir.path().join("bundle.json");
    let out = prism_audit(
        &prism,
        &[
            "export",
            "--from",
            "2",
            "--to",
            &covered.to_string(),
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let missing = dir.path().join("none.pem");
    let out = prism_audit(
        &prism,
        &[
            "verify",
            "--bundle",
            bundle.to_str().unwrap(),
            "--public-key",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "a missing key file is an error");
    let (report, ok) = verify(&prism, &key, Some(&bundle));
    assert!(ok, "{report:#}");
    assert_eq!(
        (report["from"].as_u64(), report["to"].as_u64()),
        (Some(2), Some(covered))
    );

    // An altered bundle does not: an event's data changed (and its hash left as it was) …
    let original: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let at = |bundle: &Value, sequence: u64| {
        bundle["commits"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["sequence"] == sequence)
            .unwrap()
    };
    let target = original["commits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"].as_str().unwrap().contains(".computation."))
        .unwrap()["sequence"]
        .as_u64()
        .unwrap();
    let mut altered = original.clone();
    let i = at(&altered, target);
    altered["commits"][i]["events"][0]["data"]["data"]["definition"]["name"] = json!("Forged");
    let altered_path = dir.path().join("altered.json");
    std::fs::write(&altered_path, serde_json::to_vec(&altered).unwrap()).unwrap();
    let (report, ok) = verify(&prism, &key, Some(&altered_path));
    assert!(!ok);
    assert_eq!(first_finding(&report), (target, "altered"), "{report:#}");
    // … a commit left out …
    let mut shortened = original.clone();
    shortened["commits"].as_array_mut().unwrap().remove(i);
    std::fs::write(&altered_path, serde_json::to_vec(&shortened).unwrap()).unwrap();
    let (report, ok) = verify(&prism, &key, Some(&altered_path));
    assert!(!ok);
    assert_eq!(first_finding(&report), (target, "missing"), "{report:#}");
    // … or a checkpoint checked with another key.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, prism_domain::testing::keys::ED25519).unwrap();
    let (report, ok) = verify(&prism, &other, Some(&bundle));
    assert!(!ok);
    assert_eq!(first_finding(&report).1, "bad_checkpoint", "{report:#}");

    // Now the store itself is rewritten, with the platform stopped.
    prism.stop_platform().await;
    let (nats, _) = prism.server_urls();
    let store = EventStore::connect(&nats, StoreConfig::default()).await.unwrap();
    let mut kept = Vec::new();
    rewrite(&store, |messages| {
        kept = messages.clone();
        messages
    })
    .await
    .unwrap();
    // Read back unchanged, the log is intact: the rewriting itself changes nothing the ledger sees.
    let (report, ok) = verify(&prism, &key, None);
    assert!(ok, "{report:#}");

    // The last event of a computation renamed, its hash recomputed: every hash chain still holds,
    // the ledger's leaf does not.
    let renamed = kept
        .iter()
        .filter(|m| m.subject.ends_with(&computations[1]))
        .max_by_key(|m| m.sequence)
        .unwrap()
        .sequence;
    assert!(renamed <= covered);
    let variant = kept
        .iter()
        .map(|m| {
            if m.sequence == renamed {
                rewritten(m, |data| data["data"]["name"] = json!("Forged"))
            } else {
                m.clone()
            }
        })
        .collect::<Vec<_>>();
    rewrite(&store, |_| variant).await.unwrap();
    let (report, ok) = verify(&prism, &key, None);
    assert!(!ok);
    assert_eq!(first_finding(&report), (renamed, "altered"), "{report:#}");
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        1,
        "only that commit: {report:#}"
    );
    assert!(
        report["findings"][0]["subject"]
            .as_str()
            .unwrap()
            .ends_with(&computations[1])
    );

    // A commit removed: the one sealed there is gone, and every later one moved up.
    let removed = renamed;
    let variant: Vec<RawMessage> = kept.iter().filter(|m| m.sequence != removed).cloned().collect();
    rewrite(&store, |_| variant).await.unwrap();
    let (report, ok) = verify(&prism, &key, None);
    assert!(!ok);
    assert_eq!(first_finding(&report), (removed, "missing"), "{report:#}");

    // Two commits of different aggregates swapped.
    let swapped = (1..covered)
        .find(|&s| s > 1 && subject_of(&kept, s) != subject_of(&kept, s + 1))
        .unwrap();
    let mut variant = kept.clone();
    let (a, b) = (
        variant.iter().position(|m| m.sequence == swapped).unwrap(),
        variant.iter().position(|m| m.sequence == swapped + 1).unwrap(),
    );
    variant.swap(a, b);
    rewrite(&store, |_| variant).await.unwrap();
    let (report, ok) = verify(&prism, &key, None);
    assert!(!ok);
    assert_eq!(first_finding(&report), (swapped, "reordered"), "{report:#}");

    // Put back as it was, the log is intact again.
    rewrite(&store, |_| kept).await.unwrap();
    let (report, ok) = verify(&prism, &key, None);
    assert!(ok, "{report:#}");
}
