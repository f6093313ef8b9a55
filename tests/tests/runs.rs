//! Runs end to end, against a real nats-server and PostgreSQL with the local backend's emulated
//! agent: consent over HTTP (a stale manifest id and a bad signature refused), the dry run naming
//! what is lacking, a run refused until every signer has consented, then a run the process manager
//! drives — CVM made for it, agent online, run request sent, fresh evidence appraised — to
//! `awaiting_inputs`; stopped there, it is cleaned up: CVM destroyed, certificates revoked, closed.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::agent::{admin_workspace, with_local_backend};
use common::parties::{
    Cli, Consortium, Party, admin_id, agent_of, call, consent, receipt, request_run, sha3, until_attested,
    until_certificates_revoked, until_run,
};
use common::{Prism, json, problem};
use prism_agents::participant::{ParticipantClient, ParticipantKey, Progress};
use prism_attestation::Mode;
use prism_domain::run::manifest::consent_message;
use prism_domain::testing::keys::{ED25519_BASE64_DER, sign_ed25519};
use prism_domain::{CvmId, RunId, WorkspaceId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn signature(manifest_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sign_ed25519(&consent_message(manifest_id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consented_run_is_provisioned_attested_stopped_and_cleaned_up() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (admin, ws) = admin_workspace(&prism, "Runs").await;
    let me = admin.user().unwrap().id.to_string();
    let computation = solo_computation(&prism, ws, b"sum", b"1 2 3").await;
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
    let attested = until_run(&prism, ws, &run_id, |run| {
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
    let listed = until_run(&prism, ws, &run_id, |_| true).await;
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
    let closed = until_run(&prism, ws, &run_id, |run| run["status"] == "closed").await;
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

const COMBINE: &[u8] = b"import csv, pathlib
total = 0
for name in ('a.csv', 'b.csv'):
    with open(pathlib.Path('datasets') / name) as f:
        total += sum(int(row['value']) for row in csv.DictReader(f))
pathlib.Path('results/total.txt').write_text(str(total))
";
const A_CSV: &[u8] = b"id,value\n1,10\n2,20\n";
const B_CSV: &[u8] = b"id,value\n3,5\n4,7\n";

/// The seed's eight steps with three organisations: an algorithm provider and two dataset
/// providers, one of whom also receives the result. Inputs go straight to the attested agent; the
/// platform records receipts and digests, never bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_parties_run_a_python_algorithm_over_two_csv_datasets_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Consortium").await;
    // 1. Definition.
    let Consortium {
        alice,
        bob,
        carol,
        computation,
    } = Consortium::define(
        &prism,
        ws,
        "Combined totals",
        (COMBINE, "combine.py"),
        [(A_CSV, "a.csv"), (B_CSV, "b.csv")],
    )
    .await;
    let base = format!("/{ws}/computations/{computation}");

    // Carol works with the `prism` CLI, signed in as herself.
    let cli = Cli::new(&prism, &carol).await;

    // Consent: each signs the manifest id with its own key.
    let out = cli
        .run(
            &[
                "consent",
                "sign",
                "--workspace",
                &ws.to_string(),
                "--computation",
                &computation,
                "--key",
            ],
            &[cli.key()],
        )
        .await;
    assert!(out.0, "{}", out.1);
    for party in [&alice, &bob] {
        consent(&prism, party, &base).await;
    }

    // 2–4. Provisioning, the agent, attestation.
    let run_id = request_run(&prism, &base).await;
    until_attested(&prism, ws, &run_id).await;

    // 5. Onboarding and ingestion: each checks the verdict, then sends straight to the agent.
    let connect = |party: &Party| agent_of(&prism, common::client_with(&party.token), ws, &run_id);
    let quiet: Progress = std::sync::Arc::new(|_| {});

    let mut agent = connect(&alice).await;
    agent
        .upload_algorithm(&alice.key, COMBINE.to_vec(), "python", Vec::new(), quiet.clone())
        .await
        .unwrap();
    json(
        receipt(
            &prism,
            ws,
            &run_id,
            &alice,
            "algorithm",
            "combine.py",
            sha3(COMBINE),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    let mut agent = connect(&bob).await;
    // Bytes that are not what the manifest declares are refused, and nothing is kept.
    let refused = agent
        .upload_dataset(&bob.key, b"id,value\n1,999\n".to_vec(), "a.csv", quiet.clone())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("hash"), "{refused}");
    // A receipt for what the manifest does not declare is refused too.
    problem(
        receipt(&prism, ws, &run_id, &bob, "dataset", "a.csv", "00".repeat(32)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    agent
        .upload_dataset(&bob.key, A_CSV.to_vec(), "a.csv", quiet.clone())
        .await
        .unwrap();
    json(
        receipt(&prism, ws, &run_id, &bob, "dataset", "a.csv", sha3(A_CSV)).await,
        StatusCode::OK,
    )
    .await;

    // The CLI checks the file against the manifest and the run's attestation before it sends.
    let ws_text = ws.to_string();
    let upload = [
        "data",
        "upload",
        "--workspace",
        &ws_text,
        "--run",
        &run_id,
        "--key",
    ];
    let insecure = "--insecure-development".to_owned();
    let wrong = cli.file("wrong.csv", b"id,value\n3,6\n");
    let (ok, said) = cli
        .run(&upload, &[cli.key(), insecure.clone(), "--file".into(), wrong])
        .await;
    assert!(!ok && said.contains("nothing was sent"), "{said}");
    let b_csv = cli.file("b.csv", B_CSV);
    // A machine without a TEE does not pass this program's own appraisal unless asked to accept it.
    let (ok, said) = cli
        .run(&upload, &[cli.key(), "--file".into(), b_csv.clone()])
        .await;
    assert!(!ok && said.contains("does not hold"), "{said}");
    let (ok, said) = cli
        .run(&upload, &[cli.key(), insecure.clone(), "--file".into(), b_csv])
        .await;
    assert!(ok, "{said}");

    // 6. Execution.
    let ready = until_run(&prism, ws, &run_id, |run| {
        ["results_ready", "failed", "timed_out", "cleaning_up", "closed"]
            .contains(&run["status"].as_str().unwrap())
    })
    .await;
    assert_eq!(ready["status"], "results_ready", "{ready:#}");

    // 7. Result distribution: only the declared consumer can fetch it.
    let mut agent = connect(&bob).await;
    let refused = agent.fetch_result(&bob.key, quiet.clone()).await.unwrap_err();
    assert!(
        refused.to_string().contains("signature verification failed"),
        "{refused}"
    );
    let result_zip = cli.dir.path().join("result.zip").display().to_string();
    let fetch = [
        "result",
        "fetch",
        "--workspace",
        &ws_text,
        "--run",
        &run_id,
        "--key",
    ];
    let (ok, said) = cli
        .run(&fetch, &[cli.key(), insecure, "--out".into(), result_zip.clone()])
        .await;
    assert!(ok, "{said}");
    let zip_bytes = std::fs::read(&result_zip).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.clone())).unwrap();
    let mut total = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("total.txt").unwrap(), &mut total).unwrap();
    assert_eq!(total, "42");
    assert!(
        said.contains(&sha3(&zip_bytes)),
        "the CLI gave the receipt with the digest: {said}"
    );

    // 8. Cleanup: every consumer has the result, so the run completes, its CVM is destroyed and its
    // certificates revoked.
    let closed = until_run(&prism, ws, &run_id, |run| run["status"] == "closed").await;
    assert_eq!(closed["ending"], Value::Null, "{closed:#}");
    let app = prism.platform().app();
    let cvm = prism_domain::run::cvm_of(run_id.parse::<RunId>().unwrap());
    // What the run's machine used is recorded as it closes.
    let usage = &closed["usage"];
    assert_eq!(usage["cvm"], cvm.to_string(), "{closed:#}");
    assert_eq!(usage["vcpus"], closed["cvm_spec"]["vcpus"], "{closed:#}");
    assert!(usage["seconds"].as_u64().unwrap() < 120, "{closed:#}");
    assert_eq!(
        app.cvms().state(cvm).await.unwrap().status,
        prism_domain::cvm::CvmStatus::Destroyed
    );
    // The agent's client certificate and its TLS server certificate.
    assert!(until_certificates_revoked(&prism, ws, cvm).await >= 2);

    let subject = app.log().subjects().aggregate("run", &run_id).unwrap();
    let names: Vec<String> = app
        .log()
        .load(&subject)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|commit| commit.events.into_iter().map(|e| e.ty))
        .map(|ty| {
            ty.trim_start_matches("io.prism.run.")
                .trim_end_matches(".v1")
                .to_owned()
        })
        .collect();
    // The run's events and its CVM's over HTTP, narrowed by name, originator and page.
    let events = |query: &str| {
        let url = prism.url(&format!("/{ws}/runs/{run_id}/events?{query}"));
        let client = prism.admin().clone();
        async move { json(client.get(url).send().await.unwrap(), StatusCode::OK).await }
    };
    let ends = until_events(
        &prism,
        &format!("/{ws}/runs/{run_id}/events?type=requested,closed"),
        3,
    )
    .await;
    let named: Vec<(&str, &str)> = ends["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["source"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        named,
        [("run", "requested"), ("cvm", "requested"), ("run", "closed")]
    );
    let unknown = prism.url(&format!("/{ws}/runs/{run_id}/events?originator=someone"));
    problem(
        prism.admin().get(unknown).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let by_users = events("originator=user").await;
    let by_users = by_users["items"].as_array().unwrap();
    assert!(by_users.iter().all(|e| e["originator"] == "user"));
    assert_eq!(
        by_users
            .iter()
            .filter(|e| e["event"] == "receipt_recorded")
            .count(),
        4
    );
    let mut after = None;
    let mut paged = Vec::new();
    loop {
        let query = match after {
            Some(after) => format!("originator=platform&limit=3&after={after}"),
            None => "originator=platform&limit=3".to_owned(),
        };
        let page = events(&query).await;
        paged.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let all = events("originator=platform&limit=100").await;
    assert!(
        all["next_after"].is_null(),
        "fewer than 100 of the platform's events"
    );
    let everything: Vec<Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(paged, everything, "pages of 3 give every event once, in order");
    let url = prism.url(&format!(
        "/{ws}/runs/{run_id}/logs?level=INFO&contains=computation%20manifest"
    ));
    let logs = json(prism.admin().get(url).send().await.unwrap(), StatusCode::OK).await;
    let lines = logs["items"].as_array().unwrap();
    assert!(
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l["message"].as_str().unwrap().contains("computation manifest")),
        "{logs:#}"
    );

    // The same through the computation: its runs' events, narrowed by run, originator and state,
    // and its agents' log lines.
    let get = |path: String| {
        let (client, url) = (prism.admin().clone(), prism.url(&path));
        async move { json(client.get(url).send().await.unwrap(), StatusCode::OK).await }
    };
    let by_manager = get(format!("{base}/events?run={run_id}&originator=manager")).await;
    let by_manager = by_manager["items"].as_array().unwrap();
    assert!(
        by_manager.iter().all(|e| e["source"] == "cvm"
            && e["originator"] == "manager"
            && e["run_id"] == run_id.as_str()
            && e["cvm_id"] == cvm.to_string()),
        "{by_manager:#?}"
    );
    let destroyed = by_manager.iter().find(|e| e["event"] == "destroyed").unwrap();
    assert_eq!(destroyed["status"], "destroyed");
    assert_eq!(destroyed["type"], "io.prism.cvm.destroyed.v1");
    let attesting = get(format!("{base}/events?status=attesting&type=attesting_started")).await;
    assert_eq!(attesting["items"][0]["source"], "run", "{attesting:#}");
    assert!(
        attesting["items"][0]["details"]["at"].is_string(),
        "{attesting:#}"
    );
    let lines = get(format!("{base}/logs?level=info&contains=computation%20manifest")).await;
    assert_eq!(
        lines["items"], logs["items"],
        "one run: the computation's lines are the run's"
    );
    // A run the computation does not have is not found.
    let unknown = prism.url(&format!("{base}/events?run={}", uuid::Uuid::now_v7()));
    problem(
        prism.admin().get(unknown).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    // Receipts land as their senders send them, in whichever order the agent's own steps allow.
    let receipts = names.iter().filter(|name| *name == "receipt_recorded").count();
    assert_eq!(receipts, 4, "{names:?}");
    let steps: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| *name != "receipt_recorded")
        .collect();
    assert_eq!(
        steps,
        [
            "requested",
            "provisioning_started",
            "agent_awaited",
            "attesting_started",
            "attested",
            "running_started",
            "results_ready",
            "completed",
            "cleanup_started",
            "closed"
        ]
    );
    assert_eq!(names.last().map(String::as_str), Some("closed"));
}

/// A computation's own run limit is its runs' deadline: set by an update (a new manifest, which
/// needs consent again), it times out a run whose algorithm outlives it; the run is cleaned up, and
/// its CVM was asked to live the limit plus the cleanup time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_computations_limit_times_out_and_is_cleaned_up() {
    const SLOW: &[u8] = b"import time\ntime.sleep(300)\n";
    const DATA: &[u8] = b"id,value\n1,1\n";
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Limited").await;
    let computation = solo_computation(&prism, ws, SLOW, DATA).await;
    let base = format!("/{ws}/computations/{computation}");
    let defined = json(
        prism.admin().get(prism.url(&base)).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(defined["limits"], json!({"max_run_seconds": 3600}));

    for refused in [json!(9), json!(2_591_401), json!(-1), json!("ten")] {
        let r = call(
            &prism,
            prism.admin(),
            Method::PATCH,
            &base,
            Some(json!({"limits": {"max_run_seconds": refused}})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    }
    let r = call(
        &prism,
        prism.admin(),
        Method::PATCH,
        &base,
        // A whole number sent as a float is an integer to JSON Schema, and so here.
        Some(json!({"limits": {"max_run_seconds": 12.0}})),
    )
    .await;
    assert_eq!(
        json(r, StatusCode::OK).await["limits"],
        json!({"max_run_seconds": 12})
    );
    let run = consent_and_request(&prism, ws, &computation).await;
    until_attested(&prism, ws, &run).await;
    solo_inputs(&prism, ws, &run, SLOW, DATA).await;

    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(closed["manifest"]["limits"], json!({"max_run_seconds": 12}));
    assert_eq!(closed["ending"][0], "running", "{closed:#}");
    let requested: chrono::DateTime<chrono::Utc> = closed["requested_at"].as_str().unwrap().parse().unwrap();
    let deadline: chrono::DateTime<chrono::Utc> = closed["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - requested, chrono::Duration::seconds(12));
    assert_eq!(closed["cvm_spec"]["ttl_seconds"], 12 + 600);
    until_events(&prism, &format!("/{ws}/runs/{run}/events?type=timed_out"), 1).await;
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    let machine = prism.platform().app().cvms().state(cvm).await.unwrap();
    assert_eq!(machine.status, prism_domain::cvm::CvmStatus::Destroyed);
    assert!(agent_processes(cvm).is_empty(), "the CVM's agent still runs");
}

/// The events page at `path` once it holds `count` events (the events read model follows the log),
/// asserting that it does within 10 s.
async fn until_events(prism: &Prism, path: &str, count: usize) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = json(
            prism.admin().get(prism.url(path)).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        let held = page["items"].as_array().unwrap().len();
        if held == count {
            return page;
        }
        assert!(
            held < count && std::time::Instant::now() < deadline,
            "{path}: {page:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A computation of the administrator alone: every part, with the RFC 8410 key whose private half
/// the tests hold; the algorithm `algo.py` and the dataset `data.csv` by their digests. Its id.
async fn solo_computation(prism: &Prism, ws: WorkspaceId, algorithm: &[u8], dataset: &[u8]) -> String {
    let me = admin_id(prism).await;
    let created = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({
            "name": "Solo",
            "participants": [{
                "id": me,
                "roles": ["owner", "algorithm_provider", "dataset_provider", "result_consumer"],
                "public_key": ED25519_BASE64_DER
            }],
            "algorithm": {"provider": me, "hash": sha3(algorithm), "name": "algo.py"},
            "datasets": [{"provider": me, "hash": sha3(dataset), "name": "data.csv"}]
        }))
        .send()
        .await
        .unwrap();
    json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The administrator consents to the computation's current manifest and asks for a run: its id.
async fn consent_and_request(prism: &Prism, ws: WorkspaceId, computation: &str) -> String {
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
    let manifest_id = manifest["manifest_id"].as_str().unwrap();
    let consent = json!({"manifest_id": manifest_id, "signature": signature(manifest_id)});
    let r = prism
        .admin()
        .post(prism.url(&format!("{base}/consents")))
        .json(&consent)
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await;
    request_run(prism, &base).await
}

/// A computation of the administrator alone (every part, the RFC 8410 key), consented, run, and
/// attested: the run's id once it awaits its inputs.
async fn consented_run(prism: &Prism, ws: WorkspaceId, algorithm: &[u8], dataset: &[u8]) -> String {
    let computation = solo_computation(prism, ws, algorithm, dataset).await;
    let run = consent_and_request(prism, ws, &computation).await;
    until_attested(prism, ws, &run).await;
    run
}

/// The administrator's client of the run's agent.
async fn solo_agent(prism: &Prism, ws: WorkspaceId, run: &str) -> ParticipantClient {
    agent_of(prism, prism.admin().clone(), ws, run).await
}

/// The administrator sends the solo computation's algorithm (Python) and dataset to the run's agent.
async fn solo_inputs(prism: &Prism, ws: WorkspaceId, run: &str, algorithm: &[u8], dataset: &[u8]) {
    let key = ParticipantKey::from_pkcs8_pem(prism_domain::testing::keys::ED25519_PRIVATE_PEM).unwrap();
    let quiet: Progress = std::sync::Arc::new(|_| {});
    let mut agent = solo_agent(prism, ws, run).await;
    agent
        .upload_algorithm(&key, algorithm.to_vec(), "python", Vec::new(), quiet.clone())
        .await
        .unwrap();
    agent
        .upload_dataset(&key, dataset.to_vec(), "data.csv", quiet)
        .await
        .unwrap();
}

/// The appraisal of the fresh evidence the run's CVM gave (the one answering a nonce), once the
/// appraisals' read model shows it: the run may have moved on (failed, closed) before it does.
async fn fresh_appraisal(prism: &Prism, ws: WorkspaceId, run: &str) -> Value {
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    let url = prism.url(&format!("/{ws}/cvms/{cvm}/attestations"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let appraisals = json(prism.admin().get(&url).send().await.unwrap(), StatusCode::OK).await;
        let fresh = appraisals["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| !a["nonce"].is_null())
            .cloned();
        if let Some(fresh) = fresh {
            return fresh;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fresh appraisal: {appraisals:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An algorithm that crashes fails the run, with the state it failed in and why; the run is cleaned
/// up all the same: CVM destroyed, closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_that_crashes_fails_the_run_and_it_is_cleaned_up() {
    const CRASH: &[u8] = b"raise SystemExit('the algorithm gives up')\n";
    const DATA: &[u8] = b"id,value\n1,1\n";
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Crash").await;
    let run = consented_run(&prism, ws, CRASH, DATA).await;
    solo_inputs(&prism, ws, &run, CRASH, DATA).await;

    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(
        closed["ending"],
        json!(["running", "the algorithm failed on the agent; see the run's logs"]),
        "{closed:#}"
    );
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    let machine = prism.platform().app().cvms().state(cvm).await.unwrap();
    assert_eq!(machine.status, prism_domain::cvm::CvmStatus::Destroyed);

    // A failed run is tried again as a new run that names it; one still under way is not.
    let retry = |run: &str| {
        prism
            .admin()
            .post(prism.url(&format!("/{ws}/runs/{run}/retry")))
            .send()
    };
    let again = json(retry(&run).await.unwrap(), StatusCode::CREATED).await;
    assert_eq!(again["retry_of"], run.as_str());
    let again = again["id"].as_str().unwrap().to_owned();
    problem(retry(&again).await.unwrap(), StatusCode::CONFLICT).await;
    let stop = json!({"reason": "enough"});
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/runs/{again}/stop")))
        .json(&stop)
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await;
    until_run(&prism, ws, &again, |run| run["status"] == "closed").await;

    // The history counts both, by the day they were asked for and the state they are in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = prism.url(&format!("/{ws}/runs/history"));
        let history = json(prism.admin().get(url).send().await.unwrap(), StatusCode::OK).await;
        if history["days"]
            == json!([{"day": chrono::Utc::now().date_naive(), "status": "closed", "count": 2}])
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{history:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The local backend's agent takes only a run request that carries its manifest and every
/// participant's consent: a bare one (as upstream's server sends) is refused with a reason, and the
/// refusal is an event of the CVM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_agent_refuses_a_run_request_without_consent() {
    use prism_agents::ServerRequest;
    use prism_proto::cvms::{Algorithm, ComputationRunReq, ResultConsumer};

    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (admin, ws) = admin_workspace(&prism, "Bare").await;
    let app = prism.platform().app();
    let spec = prism_domain::cvm::CvmSpec {
        provider: "local".into(),
        vcpus: 1,
        memory_mib: 512,
        platform: prism_domain::cvm::ConfidentialPlatform::None,
        ttl_seconds: 3600,
        labels: Default::default(),
    };
    let cvm: CvmId = app
        .cvms()
        .create(&admin, &prism_app::CommandOptions::default(), ws, spec)
        .await
        .unwrap()
        .id
        .parse()
        .unwrap();
    let (_, channel) = prism.platform().agents().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !channel.is_connected(cvm) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never dialled in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(ED25519_BASE64_DER)
        .unwrap();
    let bare = ComputationRunReq {
        id: "bare".into(),
        algorithm: Some(Algorithm {
            hash: vec![7; 32],
            user_key: key.clone(),
            ..Default::default()
        }),
        result_consumers: vec![ResultConsumer { user_key: key }],
        ..Default::default()
    };
    channel
        .send(
            cvm,
            ServerRequest::Run {
                request: Box::new(bare),
                consent: None,
            },
        )
        .await
        .unwrap();

    let subject = app.log().subjects().aggregate("cvm", &cvm.to_string()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let refused = app
            .log()
            .load(&subject)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|commit| commit.events)
            .find_map(|event| {
                let message = &event.data["message"];
                (message["kind"] == "run_result" && message["computation_id"] == "bare")
                    .then(|| message["error"].as_str().unwrap_or_default().to_owned())
            });
        if let Some(error) = refused {
            assert_eq!(error, "the run request carries no consent of its participants");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer to the bare run request"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A run is appraised against its computation's policy — the one its participants consented to —
/// and an agent whose evidence does not meet it gets no inputs: the run fails while attesting,
/// saying which field failed, and is cleaned up. The EAR names the run's manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_evidence_fails_its_computations_policy_gets_no_inputs() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Strict").await;
    let computation = solo_computation(&prism, ws, b"algo", b"data").await;
    let policy = json!({"sev_snp": {"minimum_guest_svn": 4000}});
    let url = prism.url(&format!("/{ws}/computations/{computation}/attestation-policy"));
    json(
        prism.admin().put(url).json(&policy).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let run = consent_and_request(&prism, ws, &computation).await;

    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(closed["ending"][0], "attesting", "{closed:#}");
    let reason = closed["ending"][1].as_str().unwrap();
    assert!(
        reason.starts_with("attestation refused") && reason.contains("guest_svn"),
        "{reason}"
    );

    let fresh = fresh_appraisal(&prism, ws, &run).await;
    assert_eq!(
        fresh["policy_source"]["kind"], "computation",
        "{:#}",
        fresh["policy_source"]
    );
    assert_eq!(fresh["policy_source"]["version"], 1);
    assert_eq!(fresh["verdict"]["outcome"], "refused");
    let jwks = json(
        prism
            .admin()
            .get(prism.url("/attestation/jwks.json"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let ear = fresh["ear"].as_str().unwrap();
    let jwk = prism_attestation::ear::jwk_for(ear, &jwks).unwrap();
    prism_attestation::ear::verify_signature(ear, jwk).unwrap();
    let payload = ear.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["prism_manifest_id"], closed["manifest_id"], "{claims:#}");

    // The refusal is one of the workspace's security events, naming the CVM and the failed check.
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    let path = format!("/{ws}/security-events?kind=attestation_refused");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refusals = loop {
        let r = prism.admin().get(prism.url(&path)).send().await.unwrap();
        let page = json(r, StatusCode::OK).await;
        if !page["items"].as_array().unwrap().is_empty() {
            break page["items"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{page:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(refusals[0]["subject"], format!("cvms/{cvm}"), "{refusals:#}");
    assert_eq!(refusals[0]["type"], "io.prism.cvm.attestation_appraised.v1");
    let field = fresh["verdict"]["failures"][0]["field"].as_str().unwrap();
    assert!(
        refusals[0]["detail"].as_str().unwrap().starts_with(field),
        "{refusals:#}"
    );
}

/// A participant's halt stops a run under way: it is cleaned up like any stop, its ending names the
/// halt, and no run is let through until the halt is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_stops_the_run_under_way_and_holds_back_the_next_until_lifted() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Halted").await;
    let computation = solo_computation(&prism, ws, b"algo", b"data").await;
    let run = consent_and_request(&prism, ws, &computation).await;
    until_attested(&prism, ws, &run).await;

    let base = format!("/{ws}/computations/{computation}");
    let halted = prism
        .admin()
        .post(prism.url(&format!("{base}/halt")))
        .json(&json!({"reason": "the algorithm leaks rows"}))
        .send()
        .await
        .unwrap();
    json(halted, StatusCode::OK).await;
    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(closed["ending"][0], "awaiting_inputs", "{closed:#}");
    let reason = closed["ending"][1].as_str().unwrap();
    assert!(
        reason.contains("execution halted") && reason.contains("the algorithm leaks rows"),
        "{reason}"
    );
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    assert_eq!(
        prism.platform().app().cvms().state(cvm).await.unwrap().status,
        prism_domain::cvm::CvmStatus::Destroyed
    );

    let request = || {
        prism
            .admin()
            .post(prism.url(&format!("{base}/runs")))
            .json(&json!({}))
            .send()
    };
    let refused = problem(request().await.unwrap(), StatusCode::CONFLICT).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("halted"),
        "{refused:#}"
    );
    let lifted = prism
        .admin()
        .delete(prism.url(&format!("{base}/halt")))
        .send()
        .await
        .unwrap();
    json(lifted, StatusCode::OK).await;
    json(request().await.unwrap(), StatusCode::CREATED).await;
}

/// A stop lands whenever a participant sends it: in whichever state the run is then, it ends
/// cleanly — closed, with the state it was stopped in and the reason, its CVM (when one was made)
/// destroyed, no certificate of it left unrevoked, no agent process left. Stops sent after a
/// growing delay land in the run's early steps (which last milliseconds each, so which one is
/// hit varies); then one while it awaits its inputs, and one once the result is ready, before
/// anyone fetched it. (A stop while the algorithm runs has a test of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_at_any_moment_is_cleaned_up() {
    const ALGORITHM: &[u8] = b"import pathlib\npathlib.Path('results/out.txt').write_text('done')\n";
    const DATA: &[u8] = b"id,value\n1,1\n";
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Stopped at any moment").await;
    let computation = solo_computation(&prism, ws, ALGORITHM, DATA).await;
    let stop = |run: String, reason: String| {
        let prism = &prism;
        async move {
            let r = call(
                prism,
                prism.admin(),
                Method::POST,
                &format!("/{ws}/runs/{run}/stop"),
                Some(json!({"reason": reason})),
            )
            .await;
            json(r, StatusCode::OK).await;
            run
        }
    };

    let mut runs = Vec::new();
    for delay in [0, 10, 30, 60, 120, 250, 500, 1000] {
        let run = consent_and_request(&prism, ws, &computation).await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        runs.push(stop(run, format!("stopped after {delay} ms")).await);
    }
    let run = consent_and_request(&prism, ws, &computation).await;
    until_attested(&prism, ws, &run).await;
    runs.push(stop(run, "stopped awaiting inputs".into()).await);
    let run = consent_and_request(&prism, ws, &computation).await;
    until_attested(&prism, ws, &run).await;
    solo_inputs(&prism, ws, &run, ALGORITHM, DATA).await;
    until_run(&prism, ws, &run, |run| run["status"] == "results_ready").await;
    runs.push(stop(run, "stopped with the result ready".into()).await);

    let (mut stopped_in, mut ended) = (std::collections::BTreeSet::new(), Vec::new());
    for run in runs {
        let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
        let (state, reason) = (
            closed["ending"][0].as_str().unwrap().to_owned(),
            closed["ending"][1].as_str().unwrap(),
        );
        assert!(reason.starts_with("stopped "), "{closed:#}");
        stopped_in.insert(state.clone());
        ended.push((run, state));
    }
    eprintln!("runs were stopped in: {stopped_in:?}");
    // Looked at once every run has closed, so a CVM made late for a stopped run would show.
    for (run, state) in ended {
        let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
        match prism.platform().app().cvms().state(cvm).await {
            Ok(machine) => assert_eq!(
                machine.status,
                prism_domain::cvm::CvmStatus::Destroyed,
                "stopped in {state}"
            ),
            Err(e) => assert_eq!(e.kind, prism_app::ErrorKind::NotFound, "stopped in {state}: {e}"),
        }
        until_certificates_revoked(&prism, ws, cvm).await;
        assert!(
            agent_processes(cvm).is_empty(),
            "the agent of a run stopped in {state} still runs"
        );
    }
    assert!(
        stopped_in.contains("results_ready") && stopped_in.contains("awaiting_inputs"),
        "{stopped_in:?}"
    );
    assert!(stopped_in.len() >= 3, "the stops all landed in {stopped_in:?}");
}

/// The processes whose environment names `cvm` as theirs: the local backend's agent of that CVM.
fn agent_processes(cvm: CvmId) -> Vec<u32> {
    let wanted = format!("AGENT_CVM_ID={cvm}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == wanted.as_bytes()))
        })
        .collect()
}

/// An agent that vanishes in the middle of a run (its process killed, as a crashed VM would be)
/// fails the run in the state it was in, and the run is cleaned up all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_vanishes_fails_the_run_and_it_is_cleaned_up() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Vanishing").await;
    let run = consented_run(&prism, ws, b"algo", b"data").await;
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    let agents = agent_processes(cvm);
    assert!(!agents.is_empty(), "the CVM's agent runs as a process");
    for pid in agents {
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(closed["ending"][0], "awaiting_inputs", "{closed:#}");
    assert!(
        closed["ending"][1]
            .as_str()
            .unwrap()
            .starts_with("the agent vanished"),
        "{closed:#}"
    );
    assert_eq!(
        prism.platform().app().cvms().state(cvm).await.unwrap().status,
        prism_domain::cvm::CvmStatus::Destroyed
    );
}

/// A run stopped while its algorithm runs: the agent is told to stop (the algorithm is killed and
/// the inputs wiped), the CVM destroyed, and the run closed with the state it was stopped in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_while_its_algorithm_runs_is_cleaned_up() {
    const SLOW: &[u8] = b"import time\ntime.sleep(300)\n";
    const DATA: &[u8] = b"id,value\n1,1\n";
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Stopped running").await;
    let run = consented_run(&prism, ws, SLOW, DATA).await;
    solo_inputs(&prism, ws, &run, SLOW, DATA).await;
    let running = until_run(&prism, ws, &run, |run| run["status"] != "awaiting_inputs").await;
    assert_eq!(running["status"], "running", "{running:#}");

    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/runs/{run}/stop")))
        .json(&json!({"reason": "the question changed"}))
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await;
    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(
        closed["ending"],
        json!(["running", "the question changed"]),
        "{closed:#}"
    );
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    let machine = prism.platform().app().cvms().state(cvm).await.unwrap();
    assert_eq!(machine.status, prism_domain::cvm::CvmStatus::Destroyed);
    // The algorithm went with its machine.
    assert!(agent_processes(cvm).is_empty(), "the CVM's agent still runs");
}

/// A backend's override replaces the computation's own policy for the runs placed there: a lenient
/// computation policy and a strict override for the local backend fail the run while attesting,
/// and the appraisal names the override (backend and version) as its policy's source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_placed_on_a_backend_with_an_override_is_appraised_against_the_override() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Overridden").await;
    let computation = solo_computation(&prism, ws, b"algo", b"data").await;
    let backends = json(
        prism
            .admin()
            .get(prism.url(&format!("/{ws}/backends")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let local = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["driver"]["kind"] == "local")
        .unwrap_or_else(|| panic!("no local backend: {backends:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = prism.url(&format!("/{ws}/computations/{computation}/attestation-policy"));
    for (query, policy) in [
        (String::new(), json!({})),
        (
            format!("?backend={local}"),
            json!({"sev_snp": {"minimum_guest_svn": 4000}}),
        ),
    ] {
        let r = prism
            .admin()
            .put(format!("{url}{query}"))
            .json(&policy)
            .send()
            .await
            .unwrap();
        json(r, StatusCode::OK).await;
    }
    let run = consent_and_request(&prism, ws, &computation).await;
    let closed = until_run(&prism, ws, &run, |run| run["status"] == "closed").await;
    assert_eq!(closed["ending"][0], "attesting", "{closed:#}");

    let fresh = fresh_appraisal(&prism, ws, &run).await;
    assert_eq!(
        fresh["policy_source"],
        json!({"kind": "backend_override", "computation": computation, "backend": local, "version": 2})
    );
    assert_eq!(fresh["verdict"]["outcome"], "refused");
}

/// The platform's first administrator, named in a computation by address (as `prism up`'s banner
/// shows), is that participant: the address is the one the operator configured, so the computation
/// names the administrator's account, which consents as itself and runs the computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_administrator_named_by_address_consents_as_that_participant() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "By address").await;
    let created = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({
            "name": "Named by address",
            "participants": [{
                "id": common::ADMIN_EMAIL,
                "roles": ["owner", "algorithm_provider", "dataset_provider", "result_consumer"],
                "public_key": ED25519_BASE64_DER
            }],
            "algorithm": {"provider": common::ADMIN_EMAIL, "hash": sha3(b"algo"), "name": "algo.py"},
            "datasets": [{"provider": common::ADMIN_EMAIL, "hash": sha3(b"data"), "name": "data.csv"}]
        }))
        .send()
        .await
        .unwrap();
    let computation = json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Linked to the account as soon as it is defined (a reaction: consent may come first).
    let admin = admin_id(&prism).await;
    let url = prism.url(&format!("/{ws}/computations/{computation}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = json(prism.admin().get(&url).send().await.unwrap(), StatusCode::OK).await;
        if shown["participants"][0]["id"] == admin.as_str() {
            assert_eq!(shown["algorithm"]["provider"], admin.as_str());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never linked: {shown:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = consent_and_request(&prism, ws, &computation).await;
    until_attested(&prism, ws, &run).await;
}
