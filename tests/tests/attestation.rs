//! Attestation end to end, against a real nats-server and PostgreSQL: the local backend's emulated
//! agent dials in and sends its start-up report; the attestor appraises it and records the verdict
//! on the CVM; the API lists it with the evidence and an EAR that verifies with the public JWKS
//! alone, and `prism attestation verify` re-verifies it offline. In secure mode a machine without a
//! TEE is refused, naming why; in insecure development mode it is accepted as insecure, never
//! verified. Fresh evidence is bound to a single-use nonce and the agent's TLS key: a replay and
//! evidence moved to another request or connection are refused. Computations' attestation policies are
//! versioned over HTTP, and malformed ones refused with a problem.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::agent::{admin_workspace, with_local_backend};
use common::{Prism, json};
use prism_app::CommandOptions;
use prism_attestation::{Mode, ear};
use prism_domain::cvm::{ConfidentialPlatform, CvmSpec};
use prism_domain::testing::keys::ED25519_BASE64_DER as ED25519;
use prism_domain::{CvmId, WorkspaceId};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn local_cvm(prism: &Prism, ws: WorkspaceId) -> CvmId {
    let app = prism.platform().app();
    let admin = app
        .identity()
        .authenticate(prism_app::Caller::anonymous(), prism.admin_token())
        .await
        .unwrap();
    let spec = CvmSpec {
        provider: "local".into(),
        vcpus: 1,
        memory_mib: 512,
        platform: ConfidentialPlatform::None,
        ttl_seconds: 3600,
        labels: BTreeMap::new(),
    };
    app.cvms()
        .create(&admin, &CommandOptions::default(), ws, spec)
        .await
        .unwrap()
        .id
        .parse()
        .unwrap()
}

/// The CVM's appraisals over HTTP, once there is one (within a minute).
async fn appraisals(prism: &Prism, ws: WorkspaceId, cvm: CvmId) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let response = prism
            .admin()
            .get(prism.url(&format!("/{ws}/cvms/{cvm}/attestations")))
            .send()
            .await
            .unwrap();
        // Until the CVMs read model has it, the CVM is not found.
        if response.status() != StatusCode::NOT_FOUND {
            let body = json(response, StatusCode::OK).await;
            let items = body["items"].as_array().unwrap().clone();
            if !items.is_empty() {
                return items;
            }
        }
        if std::time::Instant::now() > deadline {
            // Say what the CVM went through, so that a slow or failed start tells why.
            let app = prism.platform().app();
            let subject = app.log().subjects().aggregate("cvm", &cvm.to_string()).unwrap();
            let events: Vec<String> = app
                .log()
                .load(&subject)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|commit| commit.events)
                .map(|e| format!("{} {}", e.ty, e.data))
                .collect();
            panic!(
                "no appraisal of CVM {cvm} within two minutes; its events:\n{}",
                events.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The platform's EAR key, from the public JWKS.
async fn jwk(prism: &Prism) -> Value {
    let response = reqwest::get(prism.url("/attestation/jwks.json")).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/jwk-set+json");
    let jwks = json(response, StatusCode::OK).await;
    jwks["keys"][0].clone()
}

/// Runs `prism attestation verify` on saved records; answers whether it succeeded and what it printed.
fn verify_offline(records: &std::path::Path, jwks: &std::path::Path, insecure: bool) -> (bool, String) {
    let prism = common::emulated_agent().with_file_name("prism");
    let mut command = std::process::Command::new(&prism);
    command
        .args(["attestation", "verify", "--file"])
        .arg(records)
        .arg("--jwks")
        .arg(jwks);
    if insecure {
        command.arg("--insecure-development");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", prism.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_development_mode_the_emulated_agents_start_up_report_is_accepted_as_insecure_never_verified() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Attested").await;
    let cvm = local_cvm(&prism, ws).await;

    let appraisal = appraisals(&prism, ws, cvm).await.remove(0);
    let verdict = &appraisal["verdict"];
    assert_eq!(verdict["outcome"], "accepted_insecure", "{appraisal:#}");
    assert_eq!(verdict["platform"], "none");
    assert_eq!(verdict["failures"], json!([]));
    assert_eq!(verdict["binding"]["kind"], "startup_certificate");
    let warnings = verdict["warnings"].to_string();
    assert!(
        warnings.contains("INSECURE") && warnings.contains("not fresh"),
        "{warnings}"
    );
    // The emulated agent's report went through the SEV-SNP checks against its test-only root.
    let claims = &verdict["claims"];
    assert_eq!(claims["platform"], "none");
    assert_eq!(claims["source"], "SNP");
    assert_eq!(claims["emulated_snp"]["root"], "test_only");
    assert_eq!(appraisal["policy_source"]["kind"], "platform_default");
    assert!(!appraisal["evidence_base64"].as_str().unwrap().is_empty());

    // The EAR says the same, and verifies with the public JWKS alone.
    let token = appraisal["ear"].as_str().unwrap();
    let result = ear::verify(token, &jwk(&prism).await).expect("the EAR verifies with the JWKS");
    let submodule = &result.submods[&cvm.to_string()];
    assert_eq!(submodule["ear_status"], "warning");
    assert_eq!(
        submodule["ear_appraisal_policy_ids"][0],
        format!(
            "urn:prism:policy:sha256:{}",
            verdict["policy_sha256"].as_str().unwrap()
        )
    );
    assert!(result.exp - result.iat <= 600);

    // Anyone holding the records re-verifies them offline with `prism attestation verify`.
    let dir = tempfile::tempdir().unwrap();
    let list = prism
        .admin()
        .get(prism.url(&format!("/{ws}/cvms/{cvm}/attestations")))
        .send()
        .await
        .unwrap();
    let list = json(list, StatusCode::OK).await;
    let records = dir.path().join("appraisals.json");
    std::fs::write(&records, list.to_string()).unwrap();
    let jwks = dir.path().join("jwks.json");
    let keys = reqwest::get(prism.url("/attestation/jwks.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(&jwks, keys).unwrap();
    let (ok, out) = verify_offline(&records, &jwks, true);
    assert!(
        ok && out.contains("hold") && out.contains("EAR verifies"),
        "{out}"
    );
    // In secure mode the same records do not hold: the machine has no TEE.
    let (ok, out) = verify_offline(&records, &jwks, false);
    assert!(!ok && out.contains("platform: expected"), "{out}");
    // Evidence altered in the records does not hold either.
    let mut altered = list.clone();
    let evidence = altered["items"][0]["evidence_base64"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = base64_decode(&evidence);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    altered["items"][0]["evidence_base64"] = json!(base64_encode(&bytes));
    std::fs::write(&records, altered.to_string()).unwrap();
    let (ok, out) = verify_offline(&records, &jwks, true);
    assert!(!ok, "{out}");

    // The CVM's read model carries the latest outcome.
    let got = prism
        .admin()
        .get(prism.url(&format!("/{ws}/cvms/{cvm}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json(got, StatusCode::OK).await["status"], "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_secure_mode_a_machine_without_a_tee_is_refused_saying_why() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::Secure).await;
    let (_, ws) = admin_workspace(&prism, "Secure").await;
    let cvm = local_cvm(&prism, ws).await;

    let appraisal = appraisals(&prism, ws, cvm).await.remove(0);
    let verdict = &appraisal["verdict"];
    assert_eq!(verdict["outcome"], "refused");
    assert_eq!(verdict["failures"][0]["field"], "platform");
    assert_eq!(verdict["failures"][0]["actual"], "none");
    let token = appraisal["ear"].as_str().unwrap();
    let result = ear::verify(token, &jwk(&prism).await).unwrap();
    assert_eq!(result.submods[&cvm.to_string()]["ear_status"], "contraindicated");

    // A workspace that is not the CVM's sees no such CVM.
    let (_, other) = admin_workspace(&prism, "Other").await;
    let response = prism
        .admin()
        .get(prism.url(&format!("/{other}/cvms/{cvm}/attestations")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computations_attestation_policy_is_versioned_and_a_malformed_one_refused() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Policies").await;
    let created = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({
            "name": "Study",
            "participants": [
                {"id": "alice@example.org", "roles": ["owner", "algorithm_provider"], "public_key": ED25519},
                {"id": "bob@example.org", "roles": ["dataset_provider", "result_consumer"], "public_key": ED25519}
            ]
        }))
        .send()
        .await
        .unwrap();
    let id = json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = prism.url(&format!("/{ws}/computations/{id}/attestation-policy"));

    let none = json(prism.admin().get(&url).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(none, json!({"version": 0, "policy": null, "backends": {}}));

    let measurement = "ab".repeat(48);
    let policy = json!({"sev_snp": {"measurements": [measurement], "vmpl": 2}});
    let set = prism.admin().put(&url).json(&policy).send().await.unwrap();
    let set = json(set, StatusCode::OK).await;
    assert_eq!(set["version"], 1);
    assert_eq!(set["policy"]["version"], 1);
    assert_eq!(set["policy"]["policy"]["sev_snp"]["measurements"][0], measurement);
    assert_eq!(
        set["policy"]["policy"]["sev_snp"]["guest_policy"]["allow_debug"],
        false
    );
    let digest = set["policy"]["policy_sha256"].as_str().unwrap().to_owned();

    // The same again is no new version; an override for a backend is the next.
    let again = json(
        prism.admin().put(&url).json(&policy).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["version"], 1);
    assert_eq!(again["policy"]["policy_sha256"], digest);
    let backend = uuid::Uuid::now_v7();
    let overridden = prism
        .admin()
        .put(format!("{url}?backend={backend}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let overridden = json(overridden, StatusCode::OK).await;
    assert_eq!(overridden["version"], 2);
    assert_eq!(overridden["backends"][backend.to_string()]["version"], 2);
    assert_eq!(overridden["policy"]["version"], 1);

    // A measurement of the wrong length and an unknown field are refused, and change nothing.
    let short = prism
        .admin()
        .put(&url)
        .json(&json!({"sev_snp": {"measurements": ["abcd"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(short.headers()["content-type"], "application/problem+json");
    let problem: Value = short.json().await.unwrap();
    assert_eq!(
        problem["errors"][0]["pointer"], "/sev_snp/measurements/0",
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("48 bytes"),
        "{problem}"
    );
    let unknown = prism
        .admin()
        .put(&url)
        .json(&json!({"sev_snp": {"allow_everything": true}}))
        .send()
        .await
        .unwrap();
    assert!(unknown.status().is_client_error(), "{}", unknown.status());
    let after = json(prism.admin().get(&url).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(after["version"], 2);

    // Without credentials: 401; the public JWKS needs none.
    let anonymous = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let jwks = reqwest::get(prism.url("/attestation/jwks.json")).await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_evidence_is_bound_to_a_single_use_nonce_and_the_agents_tls_key() {
    use prism_agents::{AgentEndpoint, ServerRequest, attest::evidence_type, attest_fresh};
    use prism_app::CertificateRequest;
    use prism_attestation::{Expected, Nonce};
    use prism_domain::certificate::{Entity, EntityKind, Profile, Subject};
    use prism_proto::cvms::{AgentConfig, Algorithm, ComputationRunReq, ResultConsumer};

    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (admin, ws) = admin_workspace(&prism, "Fresh").await;
    let cvm = local_cvm(&prism, ws).await;
    appraisals(&prism, ws, cvm).await; // Online, its start-up report appraised.
    let app = prism.platform().app().clone();
    let address = app.cvms().state(cvm).await.unwrap().agent_address.unwrap();

    // What a run's start does: the agent's server certificate from the platform's authority, in
    // the run request that starts the agent's participants' API.
    let issued = app
        .certificates()
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            CertificateRequest {
                entity: Entity {
                    kind: EntityKind::Cvm,
                    id: cvm.to_string(),
                },
                profile: Profile::AgentServer,
                subject: Subject {
                    common_name: cvm.to_string(),
                    ip_addresses: vec!["127.0.0.1".parse().unwrap()],
                    ..Default::default()
                },
                ttl: None,
            },
        )
        .await
        .unwrap();
    let key = base64_decode(ED25519);
    let run = ComputationRunReq {
        id: "run-1".into(),
        name: "fresh".into(),
        algorithm: Some(Algorithm {
            hash: vec![7; 32],
            user_key: key.clone(),
            ..Default::default()
        }),
        result_consumers: vec![ResultConsumer { user_key: key }],
        agent_config: Some(AgentConfig {
            cert_file: format!("{}{}", issued.certificate, issued.chain),
            key_file: issued.private_key.clone().unwrap(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // The local backend's agent takes only a request its participants consented to: the manifest
    // of this request, signed with the sample key's private half.
    use prism_domain::run::manifest::{ManifestAsset, ManifestParticipant, consent_message};
    let manifest = prism_domain::run::Manifest {
        algorithm: Some(ManifestAsset {
            file_name: String::new(),
            provider: "p".into(),
            sha3_256: hex::encode([7; 32]),
        }),
        attestation_policy_sha256: "00".repeat(32),
        computation: uuid::Uuid::nil().to_string(),
        datasets: Vec::new(),
        format: prism_domain::run::manifest::FORMAT.into(),
        limits: prism_domain::run::RunLimits::DEFAULT,
        participants: vec![ManifestParticipant {
            id: "p".into(),
            public_key: Some(ED25519.into()),
            roles: vec!["algorithm_provider".into(), "result_consumer".into()],
        }],
        result_consumers: vec!["p".into()],
    };
    let signature = prism_domain::testing::keys::sign_ed25519(&consent_message(&manifest.id()));
    let consents = [("p".to_owned(), base64_encode(&signature))].into();
    let consent = prism_workers::run_consent(&manifest, &consents).unwrap();
    let (_, channel) = prism.platform().agents().unwrap();
    channel
        .send(
            cvm,
            ServerRequest::Run {
                request: Box::new(run),
                consent: Some(Box::new(consent)),
            },
        )
        .await
        .unwrap();

    let endpoint = AgentEndpoint {
        address: address.clone(),
        server_name: "127.0.0.1".into(),
        roots_pem: app.certificates().chain().await.unwrap(),
        client: None,
    };
    let caller = prism_app::Caller::service("attestation-test");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let appraisal = loop {
        match attest_fresh(&app, &caller, cvm, &endpoint, evidence_type::SNP).await {
            Ok(appraisal) => break appraisal,
            // The agent's participants' API starts once it has taken the run request.
            Err(prism_agents::AttestError::Connect(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("fresh attestation failed: {e}"),
        }
    };
    assert_eq!(
        appraisal.verdict.outcome,
        prism_attestation::Outcome::AcceptedInsecure,
        "{:?}",
        appraisal.verdict.failures
    );
    let nonce = Nonce::from_hex(appraisal.nonce.as_deref().unwrap()).unwrap();
    let prism_attestation::Binding::Fresh { agent_key_sha256, .. } = &appraisal.verdict.binding else {
        panic!("a fresh binding")
    };
    // Bound to the key of the certificate the platform issued and the agent served.
    let (_, served) = x509_parser::pem::parse_x509_pem(issued.certificate.as_bytes()).unwrap();
    let served = served.parse_x509().unwrap();
    let spki = served.tbs_certificate.subject_pki.raw;
    use sha2::Digest as _;
    assert_eq!(agent_key_sha256.0, sha2::Sha256::digest(spki).to_vec());
    let expected = Expected::fresh(&nonce, spki);
    assert_eq!(appraisal.expected_report_data, hex::encode(expected.report_data));

    // The same evidence again, for the same nonce: a replay, refused, nothing recorded.
    let evidence = base64_decode(&appraisal.evidence_base64);
    let replay = app
        .attestations()
        .appraise_fresh(&caller, cvm, &nonce, &expected, &evidence)
        .await
        .unwrap_err();
    assert_eq!(replay.kind, prism_app::ErrorKind::StateConflict, "{replay}");
    assert!(replay.to_string().contains("already been used"), "{replay}");
    // The same evidence for a new request (a new nonce), or moved to another connection: refused
    // by the verifier, and recorded as such.
    let (new_nonce, new_expected) = app.attestations().issue_nonce(&caller, cvm, spki).await.unwrap();
    let moved = app
        .attestations()
        .appraise_fresh(&caller, cvm, &new_nonce, &new_expected, &evidence)
        .await
        .unwrap();
    assert_eq!(moved.verdict.outcome, prism_attestation::Outcome::Refused);
    assert_eq!(moved.verdict.failures[0].field, "report_data");
    let other_key = b"another connection's key";
    let (other_nonce, other_expected) = app
        .attestations()
        .issue_nonce(&caller, cvm, other_key)
        .await
        .unwrap();
    let moved = app
        .attestations()
        .appraise_fresh(&caller, cvm, &other_nonce, &other_expected, &evidence)
        .await
        .unwrap();
    assert_eq!(moved.verdict.failures[0].field, "report_data");
}
