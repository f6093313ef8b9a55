//! Runs end to end, against a real nats-server and PostgreSQL with the local backend's emulated
//! agent: consent over HTTP (a stale manifest id and a bad signature refused), the dry run naming
//! what is lacking, a run refused until every signer has consented, then a run the process manager
//! drives — CVM made for it, agent online, run request sent, fresh evidence appraised — to
//! `awaiting_inputs`; stopped there, it is cleaned up: CVM destroyed, certificates revoked, closed.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::agent::admin_workspace;
use common::{Prism, json, problem};
use prism_app::AttestationConfig;
use prism_attestation::Mode;
use prism_cli::{LocalBackendConfig, ProvisioningSettings};
use prism_domain::run::manifest::consent_message;
use prism_domain::testing::keys::{ED25519_BASE64_DER, sign_ed25519};
use prism_domain::{CvmId, RunId, WorkspaceId};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn platform(root: &std::path::Path) -> Prism {
    Prism::builder()
        .provisioning(ProvisioningSettings {
            local: Some(LocalBackendConfig {
                program: common::emulated_agent(),
                root: root.to_owned(),
                capacity: 2,
            }),
            reap_every: Duration::from_secs(3600),
            check_every: Duration::from_secs(3600),
            agent_log_level: "info".into(),
        })
        .attestation(AttestationConfig {
            mode: Mode::InsecureDevelopment,
            vcek_cache: None,
        })
        .start()
        .await
}

fn signature(manifest_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sign_ed25519(&consent_message(manifest_id)))
}

/// Polls the run until `done` says so (within two minutes), printing its state on timeout.
async fn until(prism: &Prism, ws: WorkspaceId, run: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = prism
            .admin()
            .get(prism.url(&format!("/{ws}/runs/{run}")))
            .send()
            .await
            .unwrap();
        let state = json(r, StatusCode::OK).await;
        if done(&state) {
            return state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run is stuck: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consented_run_is_provisioned_attested_stopped_and_cleaned_up() {
    let root = tempfile::tempdir().unwrap();
    let prism = platform(root.path()).await;
    let (admin, ws) = admin_workspace(&prism, "Runs").await;
    let me = admin.user().unwrap().id.to_string();
    let hash = "ab".repeat(32);
    // The administrator takes every part, holding the RFC 8410 key whose private half the test has.
    let created = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({
            "name": "Sum",
            "participants": [{
                "id": me,
                "roles": ["owner", "algorithm_provider", "dataset_provider", "result_consumer"],
                "public_key": ED25519_BASE64_DER
            }],
            "algorithm": {"provider": me, "hash": hash, "name": "sum.py"},
            "datasets": [{"provider": me, "hash": "cd".repeat(32), "name": "numbers.txt"}]
        }))
        .send()
        .await
        .unwrap();
    let computation = json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/{ws}/computations/{computation}");

    let manifest = json(
        prism
            .admin()
            .get(prism.url(&format!("{base}/manifest")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let manifest_id = manifest["manifest_id"].as_str().unwrap().to_owned();
    assert_eq!(
        manifest["consent_message"],
        format!("prism-consent-v1:{manifest_id}")
    );
    assert_eq!(manifest["consent"]["missing"], json!([me]));

    // Not yet consented: the dry run says so, and the run is refused.
    let dry = json(
        prism
            .admin()
            .post(prism.url(&format!("{base}/dry-run")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(dry["ready"], false);
    let lacks: Vec<&str> = dry["lacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["what"].as_str().unwrap())
        .collect();
    assert_eq!(lacks, ["consent"], "{dry:#}");
    let refused = prism
        .admin()
        .post(prism.url(&format!("{base}/runs")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let refused = problem(refused, StatusCode::CONFLICT).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("has not consented"),
        "{refused:#}"
    );

    // A stale manifest id names the current one; a signature over something else is refused.
    let consents = prism.url(&format!("{base}/consents"));
    let stale = "00".repeat(32);
    let r = prism
        .admin()
        .post(&consents)
        .json(&json!({"manifest_id": stale, "signature": signature(&stale)}))
        .send()
        .await
        .unwrap();
    let stale_problem = problem(r, StatusCode::CONFLICT).await;
    assert!(stale_problem["detail"].as_str().unwrap().contains(&manifest_id));
    let r = prism
        .admin()
        .post(&consents)
        .json(&json!({"manifest_id": manifest_id, "signature": signature(&stale)}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;

    let r = prism
        .admin()
        .post(&consents)
        .json(&json!({"manifest_id": manifest_id, "signature": signature(&manifest_id)}))
        .send()
        .await
        .unwrap();
    let consented = json(r, StatusCode::OK).await;
    assert_eq!(consented["consent"]["missing"], json!([]));
    assert_eq!(consented["consent"]["signed"][&me], signature(&manifest_id));

    let dry = json(
        prism
            .admin()
            .post(prism.url(&format!("{base}/dry-run")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(dry["ready"], true, "{dry:#}");

    let r = prism
        .admin()
        .post(prism.url(&format!("{base}/runs")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let run = json(r, StatusCode::CREATED).await;
    assert_eq!(run["status"], "requested");
    assert_eq!(run["manifest_id"], manifest_id);
    let run_id = run["id"].as_str().unwrap().to_owned();

    // The process manager makes the CVM, waits for its agent, sends it the run request and has
    // fresh evidence appraised (accepted as insecure: the local backend has no TEE).
    let attested = until(&prism, ws, &run_id, |run| {
        run["status"] != "requested"
            && !["provisioning", "agent_connecting", "attesting"].contains(&run["status"].as_str().unwrap())
    })
    .await;
    assert_eq!(attested["status"], "awaiting_inputs", "{attested:#}");
    let cvm: CvmId = attested["cvm"].as_str().unwrap().parse().unwrap();
    assert_eq!(cvm, prism_domain::run::cvm_of(run_id.parse::<RunId>().unwrap()));
    let app = prism.platform().app();
    let machine = app.cvms().state(cvm).await.unwrap();
    assert_eq!(machine.run.map(|r| r.to_string()), Some(run_id.clone()));

    // The workspace's runs list it.
    let listed = until(&prism, ws, &run_id, |_| true).await;
    assert_eq!(listed["id"], run_id);

    // Stopped while it awaits its inputs: cleaned up and closed.
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/runs/{run_id}/stop")))
        .json(&json!({"reason": "changed our minds"}))
        .send()
        .await
        .unwrap();
    let stopping = json(r, StatusCode::OK).await;
    assert_eq!(stopping["status"], "stopping");
    let closed = until(&prism, ws, &run_id, |run| run["status"] == "closed").await;
    assert_eq!(closed["ending"], json!(["awaiting_inputs", "changed our minds"]));
    let machine = app.cvms().state(cvm).await.unwrap();
    assert_eq!(machine.status, prism_domain::cvm::CvmStatus::Destroyed);

    // The run's events, in order, are the whole story.
    let subject = app.log().subjects().aggregate("run", &run_id).unwrap();
    let events: Vec<String> = app
        .log()
        .load(&subject)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|commit| commit.events.into_iter().map(|e| e.ty))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|t| t.trim_start_matches("io.prism.run.").trim_end_matches(".v1"))
        .collect();
    assert_eq!(
        names,
        [
            "requested",
            "provisioning_started",
            "agent_awaited",
            "attesting_started",
            "attested",
            "stop_requested",
            "cleanup_started",
            "closed"
        ]
    );

    let page = json(
        prism
            .admin()
            .get(prism.url(&format!("/{ws}/runs?computation={computation}")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["id"], run_id);
}
