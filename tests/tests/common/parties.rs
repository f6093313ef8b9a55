//! The participants of the end-to-end runs: registered users, members of a workspace, each with a
//! key of its own; the `prism` CLI as one of them uses it; and a wait for a run's state.

use std::time::Duration;

use base64::Engine as _;

use prism_agents::participant::ParticipantKey;
use prism_domain::WorkspaceId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Prism, json};

/// Polls the run until `done` says so (within two minutes), printing its state on timeout.
pub async fn until_run(prism: &Prism, ws: WorkspaceId, run: &str, done: impl Fn(&Value) -> bool) -> Value {
    until_run_explained(prism, ws, run, String::new, done).await
}

/// [`until_run`], adding what `explain` says on timeout (the logs of what should have moved it).
pub async fn until_run_explained(
    prism: &Prism,
    ws: WorkspaceId,
    run: &str,
    explain: impl Fn() -> String,
    done: impl Fn(&Value) -> bool,
) -> Value {
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
            "the run is stuck in {}: {state:#}\n{}",
            state["status"],
            explain()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A participant: a registered user, a member of the workspace, with a key of its own.
pub struct Party {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub key: ParticipantKey,
    /// The private key as PKCS #8 PEM, for the `prism` CLI.
    pub pem: String,
    pub spki_base64: String,
}

pub async fn party(
    prism: &Prism,
    ws: WorkspaceId,
    name: &str,
    algorithm: &'static rcgen::SignatureAlgorithm,
) -> Party {
    let email = format!("{name}@example.org");
    let password = format!("{name}'s long password");
    let registered = prism
        .request(reqwest::Method::POST, "/users", None)
        .json(&json!({"email": email, "display_name": name, "password": password}))
        .send()
        .await
        .unwrap();
    let id = json(registered, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let signed_in = json(prism.sign_in(&email, &password).await, StatusCode::OK).await;
    let token = signed_in["access_token"].as_str().unwrap().to_owned();
    let invited = prism
        .admin()
        .post(prism.url(&format!("/workspaces/{ws}/invitations")))
        .json(&json!({"user_id": id, "role": "member"}))
        .send()
        .await
        .unwrap();
    let invitation = json(invited, StatusCode::CREATED).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let accepted = super::client_with(&token)
        .post(prism.url("/invitations/accept"))
        .json(&json!({"token": invitation}))
        .send()
        .await
        .unwrap();
    json(accepted, StatusCode::OK).await;
    use rcgen::PublicKeyData as _;
    let pair = rcgen::KeyPair::generate_for(algorithm).unwrap();
    Party {
        id,
        email,
        password,
        token,
        key: ParticipantKey::from_pkcs8_der(&pair.serialize_der()).unwrap(),
        pem: pair.serialize_pem(),
        spki_base64: base64::engine::general_purpose::STANDARD.encode(pair.subject_public_key_info()),
    }
}

pub fn sha3(bytes: &[u8]) -> String {
    use sha3::Digest as _;
    hex::encode(sha3::Sha3_256::digest(bytes))
}

/// The `prism` CLI as one participant uses it: signed in, with a key file, in a directory of its own.
pub struct Cli {
    pub program: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

impl Cli {
    pub async fn new(prism: &Prism, party: &Party) -> Self {
        let cli = Cli {
            program: super::emulated_agent().with_file_name("prism"),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(cli.dir.path().join("key.pem"), &party.pem).unwrap();
        let url = prism.url("");
        let login = [
            "login",
            "--url",
            url.trim_end_matches('/'),
            "--email",
            &party.email,
            "--password",
            &party.password,
        ];
        let (ok, said) = cli.run(&login, &[]).await;
        assert!(ok, "{said}");
        cli
    }

    pub fn key(&self) -> String {
        self.dir.path().join("key.pem").display().to_string()
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    /// Runs `prism` with `args` then `more`; answers whether it succeeded and what it printed.
    pub async fn run(&self, args: &[&str], more: &[String]) -> (bool, String) {
        let output = tokio::process::Command::new(&self.program)
            .args(args)
            .args(more)
            .env("PRISM_CREDENTIALS", self.dir.path().join("credentials.json"))
            .env_remove("PRISM_URL")
            .env_remove("PRISM_TOKEN")
            .env_remove("PRISM_PASSWORD")
            .output()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.program.display()));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), said)
    }
}

/// The platform administrator's user id.
pub async fn admin_id(prism: &Prism) -> String {
    let app = prism.platform().app();
    let admin = app
        .identity()
        .authenticate(prism_app::Caller::anonymous(), prism.admin_token())
        .await
        .unwrap();
    admin.user().unwrap().id.to_string()
}

/// `party` consents, with its own key, to the computation's current manifest (`base` is the
/// computation's path): the manifest's id.
pub async fn consent(prism: &Prism, party: &Party, base: &str) -> String {
    let client = super::client_with(&party.token);
    let manifest = json(
        client
            .get(prism.url(&format!("{base}/manifest")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let manifest_id = manifest["manifest_id"].as_str().unwrap().to_owned();
    let signature = party
        .key
        .sign(&prism_domain::run::manifest::consent_message(&manifest_id))
        .unwrap();
    let consented = client
        .post(prism.url(&format!("{base}/consents")))
        .json(&json!({
            "manifest_id": manifest_id,
            "signature": base64::engine::general_purpose::STANDARD.encode(signature)
        }))
        .send()
        .await
        .unwrap();
    json(consented, StatusCode::OK).await;
    manifest_id
}

/// `party`'s receipt for what it gave (`algorithm`, `dataset`) or got (`result`); the answer.
pub async fn receipt(
    prism: &Prism,
    ws: WorkspaceId,
    run: &str,
    party: &Party,
    kind: &str,
    file_name: &str,
    digest: String,
) -> reqwest::Response {
    super::client_with(&party.token)
        .post(prism.url(&format!("/{ws}/runs/{run}/receipts")))
        .json(&json!({"kind": kind, "file_name": file_name, "sha3_256": digest}))
        .send()
        .await
        .unwrap()
}

/// Three organisations and the computation they define together, administered by the platform's
/// administrator: alice provides the algorithm (Ed25519 key), bob the first dataset (P-256), carol
/// the second (P-384) and receives the result.
pub struct Consortium {
    pub alice: Party,
    pub bob: Party,
    pub carol: Party,
    pub computation: String,
}

impl Consortium {
    /// Registers the three, and defines the computation `name` with the algorithm and the two
    /// datasets, each given as its bytes and file name.
    pub async fn define(
        prism: &Prism,
        ws: WorkspaceId,
        name: &str,
        algorithm: (&[u8], &str),
        datasets: [(&[u8], &str); 2],
    ) -> Self {
        let alice = party(prism, ws, "alice", &rcgen::PKCS_ED25519).await;
        let bob = party(prism, ws, "bob", &rcgen::PKCS_ECDSA_P256_SHA256).await;
        let carol = party(prism, ws, "carol", &rcgen::PKCS_ECDSA_P384_SHA384).await;
        let admin = admin_id(prism).await;
        let [(a, a_name), (b, b_name)] = datasets;
        let created = prism
            .admin()
            .post(prism.url(&format!("/{ws}/computations")))
            .json(&json!({
                "name": name,
                "participants": [
                    {"id": admin, "roles": ["owner"]},
                    {"id": alice.id, "roles": ["algorithm_provider"], "public_key": alice.spki_base64},
                    {"id": bob.id, "roles": ["dataset_provider"], "public_key": bob.spki_base64},
                    {"id": carol.id, "roles": ["dataset_provider", "result_consumer"], "public_key": carol.spki_base64}
                ],
                "algorithm": {"provider": alice.id, "hash": sha3(algorithm.0), "name": algorithm.1},
                "datasets": [
                    {"provider": bob.id, "hash": sha3(a), "name": a_name},
                    {"provider": carol.id, "hash": sha3(b), "name": b_name}
                ]
            }))
            .send()
            .await
            .unwrap();
        let computation = json(created, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        Consortium {
            alice,
            bob,
            carol,
            computation,
        }
    }
}

/// Whether the run is past its attestation: taking inputs, or ended.
pub fn past_attestation(run: &Value) -> bool {
    !["requested", "provisioning", "agent_connecting", "attesting"].contains(&run["status"].as_str().unwrap())
}

/// Waits until the run is past its attestation, which must have let it take inputs.
pub async fn until_attested(prism: &Prism, ws: WorkspaceId, run: &str) {
    let attested = until_run(prism, ws, run, past_attestation).await;
    assert_eq!(attested["status"], "awaiting_inputs", "{attested:#}");
}

/// The administrator asks for a run of the computation at `base` (its path): the run's id.
pub async fn request_run(prism: &Prism, base: &str) -> String {
    let requested = prism
        .admin()
        .post(prism.url(&format!("{base}/runs")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    json(requested, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `method path` with `client`, and `body` as JSON when given: the answer.
pub async fn call(
    prism: &Prism,
    client: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client.request(method, prism.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// `method path` as `party` with `body`: the body of the answer, which must have `status`.
pub async fn as_party(
    prism: &Prism,
    party: &Party,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let answer = call(prism, &super::client_with(&party.token), method, path, body).await;
    if status.is_success() {
        json(answer, status).await
    } else {
        super::problem(answer, status).await
    }
}

/// Each of `parties` consents to the computation's current manifest (`base` is its path): the
/// manifest's id.
pub async fn consent_all(prism: &Prism, base: &str, parties: &[&Party]) -> String {
    let mut id = String::new();
    for party in parties {
        id = consent(prism, party, base).await;
    }
    id
}

/// `client`'s connection to the run's agent, from the run's connection details, once their
/// appraisal says the agent was accepted (as insecure: the local backend has no TEE).
pub async fn agent_of(
    prism: &Prism,
    client: reqwest::Client,
    ws: WorkspaceId,
    run: &str,
) -> prism_agents::participant::ParticipantClient {
    let url = prism.url(&format!("/{ws}/runs/{run}/connection"));
    let connection = json(client.get(url).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        connection["attestation"]["verdict"]["outcome"],
        "accepted_insecure"
    );
    let endpoint = prism_agents::AgentEndpoint {
        address: connection["agent_address"].as_str().unwrap().to_owned(),
        server_name: connection["server_name"].as_str().unwrap().to_owned(),
        roots_pem: connection["ca_pem"].as_str().unwrap().to_owned(),
        client: None,
    };
    prism_agents::participant::ParticipantClient::connect(&endpoint)
        .await
        .unwrap()
}

/// Waits until no certificate issued for `cvm` is left unrevoked: how many there are.
pub async fn until_certificates_revoked(prism: &Prism, ws: WorkspaceId, cvm: prism_domain::CvmId) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = prism.url(&format!("/{ws}/certs?entity_id={cvm}"));
        let certificates = json(prism.admin().get(url).send().await.unwrap(), StatusCode::OK).await;
        let items = certificates["items"].as_array().cloned().unwrap_or_default();
        if items.iter().all(|c| c["status"] == "revoked") {
            return items.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificates not revoked: {certificates:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
