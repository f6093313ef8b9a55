//! A whole run on the real Cocos v0.10.2 stack: the real manager (as a child process) makes the
//! run's CVM, whose "VM" is the NoCC agent stack as processes (`infra/cocos/qemu-as-processes.sh`);
//! the real agent dials in, takes the run request the platform builds from the consented manifest,
//! and the participants send their inputs with the real `cocos-cli` — and one of them with the
//! `prism` CLI, which speaks cocos-cli's scheme to a real agent. A `bin` algorithm (a POSIX shell
//! script) sums two CSV datasets; the result reaches only the declared consumer; receipts complete
//! the run, and cleanup destroys the VM and revokes its certificates.
//!
//! A real agent without a TEE cannot answer a nonce (upstream's NoCC attestation service refuses
//! every evidence request that would carry one), so the run is let in on its start-up report, which
//! the platform accepts only when it runs for development: the verdict says it proves nothing.
//!
//! Built from source with Go (`infra/cocos/build.sh`, cached); without Go, or not as root, the test
//! says so loudly and passes — unless `PRISM_REQUIRE_COCOS` is set, as CI sets it.

mod common;
#[path = "common/manager.rs"]
mod manager;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::agent::admin_workspace;
use common::parties::{
    Cli, Consortium, Party, consent, past_attestation, receipt, request_run, sha3, until_run_explained,
};
use common::peers::cocos_programs_or_skip;
use common::{Prism, json, problem};
use prism_attestation::Mode;
use prism_domain::RunId;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A `bin` algorithm: the real agent runs the file it is given, in its working directory, where
/// the datasets are under `datasets/` and the results go to `results/`. Shell built-ins only: the
/// agent's environment has little on its PATH.
const SUM: &[u8] = b"#!/bin/sh
# Sums the `value` column (the second) of every dataset.
set -eu
total=0
for dataset in datasets/*; do
  {
    read -r header
    while IFS=, read -r id value; do
      total=$((total + value))
    done
  } < \"$dataset\"
done
echo \"$total\" > results/total.txt
";
const A_CSV: &[u8] = b"id,value\n1,10\n2,20\n";
const B_CSV: &[u8] = b"id,value\n3,5\n4,7\n";

/// The real `cocos-cli` as one participant runs it, against the run's agent.
struct CocosCli {
    program: PathBuf,
    dir: tempfile::TempDir,
    address: String,
    ca: PathBuf,
}

impl CocosCli {
    fn new(programs: &Path, party: &Party, connection: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.pem"), &party.pem).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, connection["ca_pem"].as_str().unwrap()).unwrap();
        CocosCli {
            program: programs.join("cli"),
            dir,
            address: connection["agent_address"].as_str().unwrap().to_owned(),
            ca,
        }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `cli` with `args` then the participant's key file; whether it succeeded, and what it said.
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let output = tokio::process::Command::new(&self.program)
            .args(args)
            .arg(self.dir.path().join("key.pem"))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AGENT_GRPC_URL", &self.address)
            .env("AGENT_GRPC_SERVER_CA_CERTS", &self.ca)
            .env("AGENT_GRPC_TIMEOUT", "30s")
            .output()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.program.display()));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // cocos-cli reports a refusal with a ❌ and exits 0 all the same.
        (output.status.success() && !said.contains('❌'), said)
    }
}

/// The run's events, by name, in the order they were recorded.
async fn run_event_names(prism: &Prism, run: &str) -> Vec<String> {
    let log = prism.platform().app().log();
    let subject = log.subjects().aggregate("run", run).unwrap();
    log.load(&subject)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|commit| commit.events.into_iter().map(|e| e.ty))
        .map(|ty| {
            ty.trim_start_matches("io.prism.run.")
                .trim_end_matches(".v1")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_parties_run_a_bin_algorithm_on_the_real_cocos_agent_with_the_real_cocos_cli() {
    let Some(programs) = cocos_programs_or_skip("the run on the real Cocos agent stack") else {
        return;
    };
    let prism = Prism::builder()
        .provisioning(prism_cli::ProvisioningSettings {
            local: None,
            reap_every: Duration::from_secs(3600),
            check_every: Duration::from_secs(3600),
            agent_log_level: "info".into(),
        })
        .attestation(prism_app::AttestationConfig {
            mode: Mode::InsecureDevelopment,
            vcek_cache: None,
        })
        .start()
        .await;
    let (admin, ws) = admin_workspace(&prism, "Consortium on Cocos").await;
    let mut cocos_manager = manager::start_manager(&prism, &programs).await;
    let driver = manager::provisioner_driver(&prism, cocos_manager.addr().to_string()).await;
    manager::until_healthy(&driver, &mut cocos_manager).await;
    manager::register_backend(&prism, &admin, ws, &cocos_manager, "cocos-manager").await;

    // 1. Definition and consent.
    let Consortium {
        alice,
        bob,
        carol,
        computation,
    } = Consortium::define(
        &prism,
        ws,
        "Combined totals on Cocos",
        (SUM, "sum.sh"),
        [(A_CSV, "a.csv"), (B_CSV, "b.csv")],
    )
    .await;
    let base = format!("/{ws}/computations/{computation}");
    for party in [&alice, &bob, &carol] {
        consent(&prism, party, &base).await;
    }

    // 2–4. The manager makes the CVM, the real agent dials in, takes the run request and is
    // appraised on its start-up report.
    let run_id = request_run(&prism, &base).await;
    let attested = until_run_explained(&prism, ws, &run_id, || cocos_manager.logs(), past_attestation).await;
    assert_eq!(
        attested["status"],
        "awaiting_inputs",
        "{attested:#}\n{}",
        cocos_manager.logs()
    );
    let connection = json(
        common::client_with(&alice.token)
            .get(prism.url(&format!("/{ws}/runs/{run_id}/connection")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let verdict = &connection["attestation"]["verdict"];
    assert_eq!(verdict["outcome"], "accepted_insecure", "{connection:#}");
    assert_eq!(verdict["claims"]["source"], "NoCC", "{connection:#}");
    assert_eq!(
        verdict["binding"]["kind"], "startup_certificate",
        "a start-up report, not fresh evidence: {verdict:#}"
    );

    // 5. Ingestion with the real cocos-cli, straight to the agent; the agent checks every file
    // against the manifest the platform sent it.
    let alice_cli = CocosCli::new(&programs, &alice, &connection);
    let algorithm = alice_cli.file("sum.sh", SUM);
    let (ok, said) = alice_cli.run(&["algo", algorithm.to_str().unwrap()]).await;
    assert!(ok, "cocos-cli algo: {said}");
    json(
        receipt(&prism, ws, &run_id, &alice, "algorithm", "sum.sh", sha3(SUM)).await,
        StatusCode::OK,
    )
    .await;

    let bob_cli = CocosCli::new(&programs, &bob, &connection);
    let tampered = bob_cli.file("a.csv", b"id,value\n1,999\n");
    let (ok, said) = bob_cli.run(&["data", tampered.to_str().unwrap()]).await;
    assert!(
        !ok && said.contains("hash does not match manifest"),
        "the agent takes a dataset that is not the manifest's: {said}"
    );
    let dataset = bob_cli.file("a.csv", A_CSV);
    let (ok, said) = bob_cli.run(&["data", dataset.to_str().unwrap()]).await;
    assert!(ok, "cocos-cli data: {said}");
    json(
        receipt(&prism, ws, &run_id, &bob, "dataset", "a.csv", sha3(A_CSV)).await,
        StatusCode::OK,
    )
    .await;

    // Carol uses the `prism` CLI: it checks the file and the run's appraisal, then speaks
    // cocos-cli's scheme to the real agent. The appraisal of a machine without a TEE holds only
    // when she says she develops.
    let cli = Cli::new(&prism, &carol).await;
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
    let file = cli.file("b.csv", B_CSV);
    let (ok, said) = cli
        .run(&upload, &[cli.key(), "--file".into(), file.clone()])
        .await;
    assert!(!ok && said.contains("nothing was sent"), "{said}");
    let (ok, said) = cli
        .run(
            &upload,
            &[cli.key(), "--insecure-development".into(), "--file".into(), file],
        )
        .await;
    assert!(ok, "prism data upload: {said}");
    assert!(said.contains("INSECURE"), "{said}");

    // 6. Execution: the agent runs the algorithm and reports results ready.
    let ready = until_run_explained(
        &prism,
        ws,
        &run_id,
        || cocos_manager.logs(),
        |run| {
            ["results_ready", "failed", "timed_out", "cleaning_up", "closed"]
                .contains(&run["status"].as_str().unwrap())
        },
    )
    .await;
    assert_eq!(ready["status"], "results_ready", "{ready:#}");

    // 7. Results: bob is no consumer; carol fetches with cocos-cli.
    let (ok, said) = bob_cli.run(&["result"]).await;
    assert!(!ok, "a non-consumer got the result: {said}");
    let carol_cli = CocosCli::new(&programs, &carol, &connection);
    let (ok, said) = carol_cli.run(&["result"]).await;
    assert!(ok, "cocos-cli result: {said}");
    let zip_bytes = std::fs::read(carol_cli.dir.path().join("results.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.clone())).unwrap();
    let mut total = String::new();
    let name = (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().to_owned())
        .find(|name| name.ends_with("total.txt"))
        .unwrap_or_else(|| panic!("no total.txt in the result"));
    std::io::Read::read_to_string(&mut archive.by_name(&name).unwrap(), &mut total).unwrap();
    assert_eq!(total.trim(), "42");
    let given = receipt(
        &prism,
        ws,
        &run_id,
        &carol,
        "result",
        "results.zip",
        sha3(&zip_bytes),
    );
    json(given.await, StatusCode::OK).await;

    // 8. Every consumer has it: the run completes, the VM is removed, the certificates revoked.
    let closed = until_run_explained(
        &prism,
        ws,
        &run_id,
        || cocos_manager.logs(),
        |run| run["status"] == "closed",
    )
    .await;
    assert_eq!(closed["ending"], Value::Null, "{closed:#}");
    let app = prism.platform().app();
    let cvm = prism_domain::run::cvm_of(run_id.parse::<RunId>().unwrap());
    assert_eq!(closed["usage"]["cvm"], cvm.to_string(), "{closed:#}");
    assert_eq!(
        app.cvms().state(cvm).await.unwrap().status,
        prism_domain::cvm::CvmStatus::Destroyed
    );
    common::peers::until(
        "the CVM's certificates revoked",
        Duration::from_secs(30),
        async || {
            let certificates = json(
                prism
                    .admin()
                    .get(prism.url(&format!("/{ws}/certs?entity_id={cvm}")))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::OK,
            )
            .await;
            let items = certificates["items"].as_array().cloned().unwrap_or_default();
            items.len() >= 2 && items.iter().all(|c| c["status"] == "revoked")
        },
    )
    .await;
    let vm = app.cvms().state(cvm).await.unwrap().backend_ref.unwrap();
    let vm_dir = cocos_manager.vm_dir(&vm).expect("the VM's working directory");
    common::peers::until("the agent stack stopped", Duration::from_secs(30), async || {
        manager::processes_in(&vm_dir).is_empty()
    })
    .await;

    // The last input's receipt and the agent's start race each other: the middle is a set.
    let names = run_event_names(&prism, &run_id).await;
    assert_eq!(
        names[..5],
        [
            "requested",
            "provisioning_started",
            "agent_awaited",
            "attesting_started",
            "attested"
        ],
        "{names:?}"
    );
    let mut middle = names[5..9].to_vec();
    middle.sort_unstable();
    assert_eq!(
        middle,
        [
            "receipt_recorded",
            "receipt_recorded",
            "receipt_recorded",
            "running_started"
        ],
        "{names:?}"
    );
    assert_eq!(
        names[9..],
        [
            "results_ready",
            "receipt_recorded",
            "completed",
            "cleanup_started",
            "closed"
        ],
        "{names:?}"
    );
    // A closed run stays closed.
    problem(
        prism
            .admin()
            .post(prism.url(&format!("/{ws}/runs/{run_id}/stop")))
            .json(&json!({"reason": "too late"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
}
