//! The compliance report end to end, against a real nats-server and PostgreSQL with the local
//! backend's emulated agent: three organisations run a computation to `closed`, then its report and
//! the run's — as JSON and as an HTML page — state who defined it, the participants and their key
//! fingerprints, the algorithm and datasets by digest, the consents, the attestation verdict with the
//! digest of the evidence the CVM recorded, who delivered and received what and when, when the CVM
//! was destroyed and that its certificates are revoked and on the CRL, and how the run went; every
//! fact names an event that is where it says in the log. Someone with no part in the workspace is
//! told nothing exists, and a computation whose name is markup is shown as text.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::agent::{admin_workspace, with_local_backend};
use common::parties::{
    Consortium, Party, admin_id, agent_of, consent_all, receipt, request_run, sha3, until_attested,
    until_certificates_revoked, until_run,
};
use common::{Prism, header, json, problem};
use prism_agents::participant::Progress;
use prism_attestation::Mode;
use prism_domain::{RunId, WorkspaceId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;

const COMBINE: &[u8] = b"import csv, pathlib
total = 0
for name in ('a.csv', 'b.csv'):
    with open(pathlib.Path('datasets') / name) as f:
        total += sum(int(row['value']) for row in csv.DictReader(f))
pathlib.Path('results/total.txt').write_text(str(total))
";
const A_CSV: &[u8] = b"id,value\n1,10\n2,20\n";
const B_CSV: &[u8] = b"id,value\n3,5\n4,7\n";

/// A name an attacker would like a browser to run.
const HOSTILE_NAME: &str = "Totals <script>alert(1)</script>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_of_a_closed_run_and_its_computation_state_every_fact_with_its_place_in_the_log() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Audited").await;
    let Consortium {
        alice,
        bob,
        carol,
        computation,
    } = Consortium::define(
        &prism,
        ws,
        HOSTILE_NAME,
        (COMBINE, "combine.py"),
        [(A_CSV, "a.csv"), (B_CSV, "b.csv")],
    )
    .await;
    let base = format!("/{ws}/computations/{computation}");
    let manifest_id = consent_all(&prism, &base, &[&alice, &bob, &carol]).await;
    let run = request_run(&prism, &base).await;
    until_attested(&prism, ws, &run).await;
    let result = deliver_and_fetch(&prism, ws, &run, [&alice, &bob, &carol]).await;
    let closed = until_run(&prism, ws, &run, |r| r["status"] == "closed").await;
    assert_eq!(closed["ending"], Value::Null, "{closed:#}");
    let cvm = prism_domain::run::cvm_of(run.parse::<RunId>().unwrap());
    assert!(until_certificates_revoked(&prism, ws, cvm).await >= 2);

    // The run's report, as a participant reads it.
    let report = get_json(&prism, &carol.token, &format!("/{ws}/runs/{run}/report")).await;
    assert_eq!(report["format"], "prism.compliance-report.v1");
    assert_eq!(report["scope"], "run");
    assert_eq!(report["workspace"], ws.to_string());
    let position = report["log_position"].as_u64().unwrap();

    // Who defined the computation, and when.
    let admin = admin_id(&prism).await;
    assert_eq!(report["computation"]["id"], computation);
    assert_eq!(report["computation"]["name"], HOSTILE_NAME);
    assert_eq!(report["computation"]["defined_by"], format!("user:{admin}"));
    assert!(report["computation"]["defined_at"].is_string());
    assert_eq!(
        report["computation"]["defined"]["aggregate"],
        format!("computation/{computation}")
    );

    // The participants, their roles and their keys' fingerprints.
    let participants = report["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 4, "{participants:#?}");
    let participant = |id: &str| {
        participants
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no participant {id}: {participants:#?}"))
            .clone()
    };
    assert_eq!(participant(&admin)["roles"], json!(["owner"]));
    assert_eq!(participant(&admin)["public_key"], Value::Null);
    for (party, roles, algorithm) in [
        (&alice, json!(["algorithm_provider"]), "Ed25519"),
        (&bob, json!(["dataset_provider"]), "EC P-256"),
        (&carol, json!(["dataset_provider", "result_consumer"]), "EC P-384"),
    ] {
        let facts = participant(&party.id);
        assert_eq!(facts["roles"], roles);
        let der = base64::engine::general_purpose::STANDARD
            .decode(&party.spki_base64)
            .unwrap();
        assert_eq!(
            facts["public_key"],
            json!({"spki_sha256": hex::encode(sha2::Sha256::digest(&der)), "algorithm": algorithm})
        );
    }

    // The algorithm and the datasets, by digest and file name, from the manifest the run executed.
    let manifest = &report["manifest"];
    assert_eq!(manifest["id"], manifest_id);
    assert_eq!(
        manifest["algorithm"],
        json!({"file_name": "combine.py", "provider": alice.id, "sha3_256": sha3(COMBINE)})
    );
    let mut datasets: Vec<(String, String, String)> = manifest["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["file_name"].as_str().unwrap().to_owned(),
                d["provider"].as_str().unwrap().to_owned(),
                d["sha3_256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    datasets.sort();
    assert_eq!(
        datasets,
        [
            ("a.csv".into(), bob.id.clone(), sha3(A_CSV)),
            ("b.csv".into(), carol.id.clone(), sha3(B_CSV))
        ]
    );
    assert_eq!(manifest["result_consumers"], json!([carol.id]));

    // The consents: who signed, when, over which manifest.
    let consents = report["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 3, "{consents:#?}");
    for party in [&alice, &bob, &carol] {
        let consent = consents
            .iter()
            .find(|c| c["participant"] == party.id.as_str())
            .unwrap_or_else(|| panic!("no consent of {}: {consents:#?}", party.id));
        assert_eq!(consent["manifest_id"], manifest_id);
        assert_eq!(consent["signed"]["actor"], format!("user:{}", party.id));
        assert!(consent["signed"]["at"].is_string());
        assert_eq!(
            consent["signed"]["recorded"]["aggregate"],
            format!("computation/{computation}")
        );
        assert_eq!(
            consent["signed"]["recorded"]["event_type"],
            "io.prism.computation.consent_signed.v1"
        );
    }

    // The attestation: the verdict, and the digest of the evidence the CVM recorded.
    let facts = &report["run"];
    assert_eq!(facts["id"], run);
    assert_eq!(facts["status"], "closed");
    assert_eq!(facts["manifest_id"], manifest_id);
    assert_eq!(facts["ending"], Value::Null);
    let attestation = &facts["attestation"];
    assert_eq!(attestation["outcome"], "accepted_insecure", "{attestation:#}");
    assert_eq!(attestation["admitted_inputs"], true);
    assert_eq!(attestation["verdict_names_evidence"], true);
    assert!(
        attestation["nonce"].is_string(),
        "fresh evidence: {attestation:#}"
    );
    assert!(attestation["ear"].as_str().unwrap().split('.').count() == 3);
    let appraisals = get_json(
        &prism,
        prism.admin_token(),
        &format!("/{ws}/cvms/{cvm}/attestations"),
    )
    .await;
    let evidence_digests: Vec<String> = appraisals["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let evidence = base64::engine::general_purpose::STANDARD
                .decode(a["evidence_base64"].as_str().unwrap())
                .unwrap();
            hex::encode(sha2::Sha256::digest(evidence))
        })
        .collect();
    assert!(
        evidence_digests.contains(&attestation["evidence_sha256"].as_str().unwrap().to_owned()),
        "{attestation:#}"
    );
    assert_eq!(attestation["evidence_sha256"], closed["evidence_sha256"]);
    assert_eq!(
        attestation["appraised"]["recorded"]["event_type"],
        "io.prism.cvm.attestation_appraised.v1"
    );
    assert_eq!(attestation["attested"]["event_type"], "io.prism.run.attested.v1");

    // What was delivered, and who received the result, when, with the digest of what they received.
    let uploads = facts["uploads"].as_array().unwrap();
    let mut delivered: Vec<(&str, &str, &str, &str)> = uploads
        .iter()
        .map(|u| {
            assert_eq!(u["as_declared"], true, "{u:#}");
            (
                u["participant"].as_str().unwrap(),
                u["kind"].as_str().unwrap(),
                u["file_name"].as_str().unwrap(),
                u["sha3_256"].as_str().unwrap(),
            )
        })
        .collect();
    delivered.sort();
    let mut expected = [
        (alice.id.as_str(), "algorithm", "combine.py", sha3(COMBINE)),
        (bob.id.as_str(), "dataset", "a.csv", sha3(A_CSV)),
        (carol.id.as_str(), "dataset", "b.csv", sha3(B_CSV)),
    ];
    expected.sort();
    let expected: Vec<(&str, &str, &str, &str)> = expected
        .iter()
        .map(|(p, k, f, d)| (*p, *k, *f, d.as_str()))
        .collect();
    assert_eq!(delivered, expected);
    let results = facts["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["participant"], carol.id);
    assert_eq!(results[0]["sha3_256"], sha3(&result));
    assert_eq!(results[0]["as_declared"], true);
    assert_eq!(results[0]["recorded"]["actor"], format!("user:{}", carol.id));
    let received_at: chrono::DateTime<chrono::Utc> =
        results[0]["recorded"]["at"].as_str().unwrap().parse().unwrap();

    // The CVM, destroyed after the result was received.
    let machine = &facts["cvm"];
    assert_eq!(machine["id"], cvm.to_string());
    assert_eq!(machine["status"], "destroyed");
    assert_eq!(machine["platform"], "none");
    let destroyed_at: chrono::DateTime<chrono::Utc> =
        machine["destroyed"]["at"].as_str().unwrap().parse().unwrap();
    assert!(destroyed_at >= received_at, "{machine:#}");
    assert_eq!(
        machine["destroyed"]["recorded"]["event_type"],
        "io.prism.cvm.destroyed.v1"
    );

    // Its certificates, each revoked and on the CRL.
    let certificates = facts["certificates"].as_array().unwrap();
    let mut profiles: Vec<&str> = certificates
        .iter()
        .map(|c| c["profile"].as_str().unwrap())
        .collect();
    profiles.sort();
    assert_eq!(profiles, ["agent_client", "agent_server"], "{certificates:#?}");
    for certificate in certificates {
        assert_eq!(certificate["status"], "revoked", "{certificate:#}");
        assert_eq!(certificate["common_name"], cvm.to_string());
        assert!(certificate["revoked"]["recorded"]["at"].is_string());
        for serial in certificate["serials"].as_array().unwrap() {
            assert_eq!(serial["on_crl"], true, "{certificate:#}");
        }
    }

    // How the run went: every change of its state, the last its closing.
    let timeline = facts["timeline"].as_array().unwrap();
    let steps: Vec<&str> = timeline.iter().map(|t| t["to"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "requested",
            "provisioning",
            "agent_connecting",
            "attesting",
            "awaiting_inputs",
            "running",
            "results_ready",
            "completed",
            "cleaning_up",
            "closed"
        ]
    );
    assert_eq!(timeline[0]["from"], "new");
    assert_eq!(facts["closed"], timeline[9]["recorded"]);

    // Every fact's place in the log holds the event it names, no later than the report's position.
    let mut places = Vec::new();
    collect_places(&report, &mut places);
    assert!(places.len() > 20, "{}", places.len());
    let log = prism.platform().app().log().clone();
    for place in places {
        let sequence = place["sequence"].as_u64().unwrap();
        assert!(sequence <= position, "{place} is past {position}");
        let commit = log.commit_at(sequence).await.unwrap().unwrap();
        let (kind, id) = place["aggregate"].as_str().unwrap().split_once('/').unwrap();
        assert_eq!(commit.subject, format!("prism.ev.{kind}.{id}"), "{place}");
        let event = &commit.events[place["index"].as_u64().unwrap() as usize];
        assert_eq!(event.id, place["event_id"].as_str().unwrap(), "{place}");
        assert_eq!(event.ty, place["event_type"].as_str().unwrap(), "{place}");
    }

    // The computation's report: its current manifest, every consent, and the run in brief.
    let overall = get_json(&prism, &alice.token, &format!("{base}/report")).await;
    assert_eq!(overall["scope"], "computation");
    assert_eq!(overall["run"], Value::Null);
    assert_eq!(overall["computation"]["current_manifest_id"], manifest_id);
    assert_eq!(overall["computation"]["approved"], true);
    assert_eq!(overall["manifest"]["id"], manifest_id);
    assert_eq!(overall["consents"].as_array().unwrap().len(), 3);
    assert_eq!(overall["participants"].as_array().unwrap().len(), 4);
    let runs = overall["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["id"], run);
    assert_eq!(runs[0]["manifest_id"], manifest_id);
    assert_eq!(runs[0]["status"], "closed");
    assert_eq!(runs[0]["requested"]["actor"], format!("user:{admin}"));

    // The readable page: chosen by `Accept` or `?format=html`, self-contained, every value escaped.
    for (path, accept) in [
        (
            format!("/{ws}/runs/{run}/report"),
            "text/html,application/xhtml+xml,*/*;q=0.8",
        ),
        (format!("{base}/report?format=html"), "application/json"),
    ] {
        let page = common::client_with(&carol.token)
            .get(prism.url(&path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        let policy = header(&page, "content-security-policy");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        let body = page.text().await.unwrap();
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(
            body.contains("Totals &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: the name is not shown escaped"
        );
        assert!(
            !body.to_ascii_lowercase().contains("<script"),
            "{path}: the page has a script"
        );
        for fact in [manifest_id.as_str(), &sha3(COMBINE), &sha3(A_CSV), &sha3(B_CSV)] {
            assert!(body.contains(fact), "{path}: {fact} is missing");
        }
    }
    let page = common::client_with(&carol.token)
        .get(prism.url(&format!("/{ws}/runs/{run}/report?format=html")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for fact in [
        attestation["evidence_sha256"].as_str().unwrap(),
        results[0]["sha3_256"].as_str().unwrap(),
        certificates[0]["serials"][0]["serial"].as_str().unwrap(),
        &cvm.to_string(),
    ] {
        assert!(page.contains(fact), "the run's page lacks {fact}");
    }
    // Without a preference for HTML, JSON.
    let plain = common::client_with(&carol.token)
        .get(prism.url(&format!("/{ws}/runs/{run}/report")))
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert!(header(&plain, "content-type").starts_with("application/json"));

    // Someone with no part in the workspace is told nothing exists, as on every other route.
    let outsider = outsider(&prism).await;
    for path in [format!("/{ws}/runs/{run}/report"), format!("{base}/report")] {
        let r = common::client_with(&outsider)
            .get(prism.url(&path))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
    }
    // Nor is a run of this workspace found under another.
    let (_, elsewhere) = admin_workspace(&prism, "Elsewhere").await;
    let r = prism
        .admin()
        .get(prism.url(&format!("/{elsewhere}/runs/{run}/report")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    // Malformed ids and formats are the caller's mistakes.
    for path in [
        format!("/{ws}/runs/not-a-run/report"),
        format!("/{ws}/computations/42/report"),
        format!("{base}/report?format=pdf"),
        format!("{base}/report?colour=blue"),
    ] {
        let r = prism.admin().get(prism.url(&path)).send().await.unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    prism.stop().await;
}

/// Each provider sends its input straight to the agent and gives its receipt; the consumer fetches
/// the result and gives its receipt: the result's bytes.
async fn deliver_and_fetch(
    prism: &Prism,
    ws: WorkspaceId,
    run: &str,
    [alice, bob, carol]: [&Party; 3],
) -> Vec<u8> {
    let quiet: Progress = std::sync::Arc::new(|_| {});
    let connect = |party: &Party| agent_of(prism, common::client_with(&party.token), ws, run);
    let mut agent = connect(alice).await;
    agent
        .upload_algorithm(&alice.key, COMBINE.to_vec(), "python", Vec::new(), quiet.clone())
        .await
        .unwrap();
    let given = receipt(prism, ws, run, alice, "algorithm", "combine.py", sha3(COMBINE)).await;
    json(given, StatusCode::OK).await;
    for (party, bytes, name) in [(bob, A_CSV, "a.csv"), (carol, B_CSV, "b.csv")] {
        let mut agent = connect(party).await;
        agent
            .upload_dataset(&party.key, bytes.to_vec(), name, quiet.clone())
            .await
            .unwrap();
        let given = receipt(prism, ws, run, party, "dataset", name, sha3(bytes)).await;
        json(given, StatusCode::OK).await;
    }
    let ready = until_run(prism, ws, run, |r| {
        ["results_ready", "failed", "timed_out", "cleaning_up", "closed"]
            .contains(&r["status"].as_str().unwrap())
    })
    .await;
    assert_eq!(ready["status"], "results_ready", "{ready:#}");
    let mut agent = connect(carol).await;
    let result = agent.fetch_result(&carol.key, quiet).await.unwrap();
    let given = receipt(prism, ws, run, carol, "result", "", sha3(&result)).await;
    json(given, StatusCode::OK).await;
    result
}

/// A registered user who is a member of no workspace of the test's: their access token.
async fn outsider(prism: &Prism) -> String {
    let (email, password) = ("mallory@example.org", "mallory's long password");
    let registered = prism
        .request(reqwest::Method::POST, "/users", None)
        .json(&json!({"email": email, "display_name": "Mallory", "password": password}))
        .send()
        .await
        .unwrap();
    json(registered, StatusCode::CREATED).await;
    let signed_in = json(prism.sign_in(email, password).await, StatusCode::OK).await;
    signed_in["access_token"].as_str().unwrap().to_owned()
}

/// `GET path` with `token`: the JSON body of a 200, once the read models have caught up with the
/// run's last events (a report waits for them only up to the log's end when it was asked).
async fn get_json(prism: &Prism, token: &str, path: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = common::client_with(token)
            .get(prism.url(path))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return json(r, StatusCode::OK).await;
    }
}

/// Every log reference in `value`: objects with an aggregate, a sequence and an event id.
fn collect_places(value: &Value, places: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("aggregate") && map.contains_key("sequence") && map.contains_key("event_id") {
                places.push(value.clone());
            }
            map.values().for_each(|v| collect_places(v, places));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_places(v, places)),
        _ => {}
    }
}
