//! Replay for investigators, against real NATS JetStream and PostgreSQL: an aggregate's history
//! event by event with the state after each, up to a sequence or a time, over HTTP for operators
//! (`GET /operations/replay/{type}/{id}`) and with `prism replay` from the command line.

mod common;

use common::agent::admin_workspace;
use common::parties::{admin_id, party};
use common::{Prism, client_with, json, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The `prism` program, built beside the test executables.
fn prism_program() -> std::path::PathBuf {
    let program = common::emulated_agent().with_file_name("prism");
    assert!(
        program.exists(),
        "{} is missing: build prism-cli first",
        program.display()
    );
    program
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregates_history_replays_with_the_state_after_each_event() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Investigated").await;
    let me = admin_id(&prism).await;
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({"name": "Before", "participants": [{"id": me, "roles": ["owner"]}]}))
        .send()
        .await
        .unwrap();
    let id = json(r, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/{ws}/computations/{id}");
    let r = prism
        .admin()
        .patch(prism.url(&base))
        .json(&json!({"name": "After"}))
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await;
    let r = prism.admin().delete(prism.url(&base)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let replay = |query: String| {
        let url = prism.url(&format!("/operations/replay/computation/{id}{query}"));
        let client = prism.admin().clone();
        async move { json(client.get(url).send().await.unwrap(), StatusCode::OK).await }
    };
    let whole = replay(String::new()).await;
    let steps = whole["steps"].as_array().unwrap();
    let types: Vec<&str> = steps.iter().map(|s| s["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "io.prism.computation.created.v1",
            "io.prism.computation.updated.v1",
            "io.prism.computation.archived.v1"
        ]
    );
    // The state after each event, as the domain folds it.
    assert_eq!(steps[0]["state"]["definition"]["name"], "Before");
    assert_eq!(steps[1]["state"]["definition"]["name"], "After");
    assert_eq!(steps[2]["state"]["status"], "archived", "{:#}", steps[2]["state"]);
    let versions: Vec<u64> = steps.iter().map(|s| s["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 2, 3]);
    // How each changed it, when asked: an RFC 6902 patch from the state before.
    assert!(steps.iter().all(|s| s.get("diff").is_none()), "{whole:#}");
    let diffed = replay("?diff=true".into()).await;
    let diffs = diffed["steps"].as_array().unwrap();
    assert_eq!(diffs.len(), 3);
    assert!(
        diffs[1]["diff"]
            .as_array()
            .unwrap()
            .contains(&json!({"op": "replace", "path": "/definition/name", "value": "After"})),
        "{:#}",
        diffs[1]["diff"]
    );
    assert_eq!(steps[1]["event"]["event"], "updated");

    // Up to a sequence, up to a time.
    let second = steps[1]["sequence"].as_u64().unwrap();
    let upto = replay(format!("?until_sequence={second}")).await;
    assert_eq!(upto["steps"].as_array().unwrap().len(), 2);
    let first_time = steps[0]["time"].as_str().unwrap();
    let upto = replay(format!("?until_time={}", urlencode(first_time))).await;
    assert_eq!(upto["steps"].as_array().unwrap().len(), 1);
    let upto = replay(format!(
        "?until_sequence={second}&until_time={}",
        urlencode(first_time)
    ))
    .await;
    assert_eq!(upto["steps"].as_array().unwrap().len(), 1);

    // The same from the command line, as an operator with the servers' addresses.
    let (nats_url, database_url) = prism.server_urls();
    let output = tokio::process::Command::new(prism_program())
        .args(["replay", "computation", &id, "--diff"])
        .env("NATS_URL", &nats_url)
        .env("DATABASE_URL", &database_url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("io.prism.computation.updated.v1"), "{stdout}");
    assert!(stdout.contains("\"path\": \"/definition/name\""), "{stdout}");
    assert!(
        stdout.ends_with(&format!("computation {id}: 3 event(s)\n")),
        "{stdout}"
    );
    let output = tokio::process::Command::new(prism_program())
        .args([
            "replay",
            "computation",
            &id,
            "--json",
            "--until",
            &second.to_string(),
        ])
        .env("NATS_URL", &nats_url)
        .env("DATABASE_URL", &database_url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["steps"].as_array().unwrap().len(), 2);
    assert_eq!(document["steps"][1]["state"]["definition"]["name"], "After");

    // Operators only; a type or an aggregate that is not there is not found; a bad bound is 400.
    let member = party(&prism, ws, "mallory", &rcgen::PKCS_ED25519).await;
    let url = prism.url(&format!("/operations/replay/computation/{id}"));
    let r = client_with(&member.token).get(url).send().await.unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    for path in [
        format!("/operations/replay/nothing/{id}"),
        "/operations/replay/computation/01930000-0000-7000-8000-000000000000".to_owned(),
    ] {
        let r = prism.admin().get(prism.url(&path)).send().await.unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
    }
    let url = prism.url(&format!(
        "/operations/replay/computation/{id}?until_time=yesterday"
    ));
    let refused = problem(
        prism.admin().get(url).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["errors"][0]["pointer"], "until_time");
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}
