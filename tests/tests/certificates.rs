//! The certificate service against a real nats-server and PostgreSQL, judged by the `openssl` command
//! line: issuance by profile (generated key, CSR), renewal, revocation seen by the CRL and by OCSP,
//! one-time downloads, and the refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Prism;
use prism_app::{App, Caller, CertificateRequest, CommandOptions, CsrSigning, ErrorKind, NewWorkspace};
use prism_domain::WorkspaceId;
use prism_domain::certificate::{Entity, EntityKind, Profile, RevocationReason, Subject};

struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("prism-certs-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl").args(args).output().expect("openssl");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn admin(prism: &Prism) -> Caller {
    prism
        .platform()
        .app()
        .identity()
        .authenticate(Caller::anonymous(), prism.admin_token())
        .await
        .unwrap()
}

async fn workspace(app: &App, by: &Caller) -> WorkspaceId {
    app.workspaces()
        .create(
            by,
            &CommandOptions::default(),
            NewWorkspace {
                name: "Hospitals".into(),
                description: String::new(),
            },
        )
        .await
        .unwrap()
        .id
        .parse()
        .unwrap()
}

fn cvm_request(profile: Profile) -> CertificateRequest {
    CertificateRequest {
        entity: Entity {
            kind: EntityKind::Cvm,
            id: "cvm-7".into(),
        },
        profile,
        subject: Subject {
            common_name: "cvm-7".into(),
            ip_addresses: vec!["10.0.0.7".parse().unwrap()],
            ..Default::default()
        },
        ttl: Some(Duration::from_secs(24 * 3600)),
    }
}

/// Polls `check` until it holds (the read models follow the log a moment later).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn issued_renewed_and_revoked_certificates_as_openssl_sees_them() {
    let prism = Prism::start().await;
    let app = prism.platform().app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    let certificates = app.certificates();
    let dir = Scratch::new();

    // The authority is established on first use and stays the same.
    let chain = certificates.chain().await.unwrap();
    assert_eq!(certificates.chain().await.unwrap(), chain);
    let chain_path = dir.write("chain.pem", &chain);

    let issued = certificates
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            cvm_request(Profile::AgentServer),
        )
        .await
        .unwrap();
    let leaf = dir.write("leaf.pem", &issued.certificate);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&chain_path),
        "-purpose",
        "sslserver",
        p(&leaf),
    ]);
    assert!(ok, "{out}");
    let key = dir.write(
        "leaf.key",
        issued
            .private_key
            .as_deref()
            .expect("a generated key, shown once"),
    );
    let (_, from_cert) = openssl(&["x509", "-in", p(&leaf), "-noout", "-pubkey"]);
    let (_, from_key) = openssl(&["pkey", "-in", p(&key), "-pubout"]);
    assert_eq!(from_cert, from_key);

    // A CSR made by openssl: the holder keeps its key.
    let csr_key = dir.0.join("participant.key");
    let csr = dir.0.join("participant.csr");
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&csr_key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=Ada",
        "-addext",
        "subjectAltName=email:ada@example.org",
    ]);
    assert!(ok, "{out}");
    let signed = certificates
        .sign_csr(
            &admin,
            &CommandOptions::default(),
            ws,
            CsrSigning {
                entity: Entity {
                    kind: EntityKind::User,
                    id: "ada".into(),
                },
                profile: Profile::Participant,
                csr: std::fs::read_to_string(&csr).unwrap(),
                ttl: None,
            },
        )
        .await
        .unwrap();
    assert!(signed.private_key.is_none());
    let participant = dir.write("participant.pem", &signed.certificate);
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&chain_path),
        "-purpose",
        "sslclient",
        p(&participant),
    ]);
    assert!(ok, "{out}");

    // Renewal: a new serial for the same key; the lookups by serial need the read model.
    eventually("the issued certificate in the read model", || async {
        certificates
            .get(&admin, ws, &issued.serial, Default::default())
            .await
            .is_ok()
    })
    .await;
    let renewed = certificates
        .renew(&admin, &CommandOptions::default(), ws, &issued.serial)
        .await
        .unwrap();
    assert_ne!(renewed.serial, issued.serial);
    let renewed_leaf = dir.write("renewed.pem", &renewed.certificate);
    let (_, renewed_key) = openssl(&["x509", "-in", p(&renewed_leaf), "-noout", "-pubkey"]);
    assert_eq!(renewed_key, from_cert, "a renewal keeps the key");

    // Revoking the lineage revokes both of its certificates: the CRL lists them, OCSP says so.
    let after_renewal = prism_app::ReadOptions::at_least(renewed.sequence);
    certificates
        .get(&admin, ws, &renewed.serial, after_renewal)
        .await
        .unwrap();
    certificates
        .revoke(
            &admin,
            &CommandOptions::default(),
            ws,
            &renewed.serial,
            RevocationReason::KeyCompromise,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let crl = loop {
        let made = certificates.crl().await.unwrap();
        let path = dir.write("crl.pem", &made.pem);
        let (_, text) = openssl(&["crl", "-in", p(&path), "-noout", "-text"]);
        if text.contains(&issued.serial.to_string().to_uppercase()) {
            break made;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation never reached the CRL: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let crl = dir.write("crl.pem", &crl.pem);
    let (_, text) = openssl(&[
        "crl",
        "-in",
        p(&crl),
        "-noout",
        "-text",
        "-CAfile",
        p(&chain_path),
    ]);
    assert!(
        text.contains(&renewed.serial.to_string().to_uppercase()),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    for (leaf, revoked) in [(&leaf, true), (&renewed_leaf, true), (&participant, false)] {
        let (ok, out) = openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            p(&chain_path),
            "-CRLfile",
            p(&crl),
            p(leaf),
        ]);
        assert_eq!(ok, !revoked, "{out}");
    }
    let issuer = dir.write(
        "issuer.pem",
        prism_ca::pem("CERTIFICATE", &certificates.issuer().await.unwrap()),
    );
    for (leaf, expected) in [(&renewed_leaf, "revoked"), (&participant, "good")] {
        let request = dir.0.join("ocsp.req");
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            p(&issuer),
            "-cert",
            p(leaf),
            "-reqout",
            p(&request),
        ]);
        assert!(ok, "{out}");
        let response = certificates
            .ocsp(&std::fs::read(&request).unwrap())
            .await
            .unwrap();
        let response = dir.write("ocsp.resp", response);
        let (ok, out) = openssl(&[
            "ocsp",
            "-respin",
            p(&response),
            "-issuer",
            p(&issuer),
            "-cert",
            p(leaf),
            "-no_nonce",
            "-CAfile",
            p(&chain_path),
        ]);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!(": {expected}")), "{out}");
    }
    // A revoked lineage is not renewed.
    let refused = certificates
        .renew(&admin, &CommandOptions::default(), ws, &issued.serial)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::StateConflict);
    prism.stop().await;
}

#[tokio::test]
async fn a_download_token_hands_the_key_out_once_and_requests_beyond_the_rules_are_refused() {
    let prism = Prism::start().await;
    let app = prism.platform().app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    let other = workspace(app, &admin).await;
    let certificates = app.certificates();

    let issued = certificates
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            cvm_request(Profile::AgentClient).with_no_hosts(),
        )
        .await
        .unwrap();
    eventually("the issued certificate in the read model", || async {
        certificates
            .get(&admin, ws, &issued.serial, Default::default())
            .await
            .is_ok()
    })
    .await;
    let (token, _) = certificates
        .download_token(&admin, ws, &issued.serial)
        .await
        .unwrap();
    let bundle = certificates.download(&Caller::anonymous(), &token).await.unwrap();
    assert_eq!(bundle.certificate, issued.certificate);
    assert_eq!(Some(bundle.private_key.as_str()), issued.private_key.as_deref());
    let spent = certificates
        .download(&Caller::anonymous(), &token)
        .await
        .unwrap_err();
    assert_eq!(spent.kind, ErrorKind::Unauthenticated);
    assert_eq!(
        certificates
            .download(&Caller::anonymous(), "cdt_garbage")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Unauthenticated
    );

    // A serial of another workspace is not found there.
    let elsewhere = certificates
        .revoke(
            &admin,
            &CommandOptions::default(),
            other,
            &issued.serial,
            RevocationReason::Unspecified,
        )
        .await
        .unwrap_err();
    assert_eq!(elsewhere.kind, ErrorKind::NotFound);
    // A lifetime beyond the profile, a host in a client certificate: refused, naming the rule.
    let mut long = cvm_request(Profile::AgentServer);
    long.ttl = Some(Duration::from_secs(60 * 24 * 3600));
    let refused = certificates
        .issue(&admin, &CommandOptions::default(), ws, long)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    assert!(refused.detail.contains("at most 30 days"), "{}", refused.detail);
    let refused = certificates
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            cvm_request(Profile::AgentClient),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    let refused = certificates
        .sign_csr(
            &admin,
            &CommandOptions::default(),
            ws,
            CsrSigning {
                entity: Entity {
                    kind: EntityKind::Cvm,
                    id: "cvm-7".into(),
                },
                profile: Profile::AgentClient,
                csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
                ttl: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);

    // Revoking every certificate of an entity; an entity with none is not found.
    let revoked = certificates
        .revoke_entity(
            &admin,
            &CommandOptions::default(),
            ws,
            "cvm-7",
            RevocationReason::CessationOfOperation,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    eventually("the revocation in the read model", || async {
        certificates
            .revoke_entity(
                &admin,
                &CommandOptions::default(),
                ws,
                "cvm-7",
                RevocationReason::CessationOfOperation,
                Default::default(),
            )
            .await
            .is_err_and(|e| e.kind == ErrorKind::NotFound)
    })
    .await;
    prism.stop().await;
}

trait NoHosts {
    fn with_no_hosts(self) -> Self;
}

impl NoHosts for CertificateRequest {
    /// The request for a client certificate, which names no host.
    fn with_no_hosts(mut self) -> Self {
        self.subject.ip_addresses.clear();
        self.subject.uris = vec!["urn:prism:cvm:cvm-7".into()];
        self
    }
}

// openssl blocks the thread it runs on while it asks the platform, which answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_endpoints_answer_openssl_as_a_relying_party_asks() {
    let prism = Prism::start().await;
    let app = prism.platform().app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    let certificates = app.certificates();
    let dir = Scratch::new();
    let good = certificates
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            cvm_request(Profile::AgentServer),
        )
        .await
        .unwrap();
    let revoked = certificates
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            cvm_request(Profile::AgentServer),
        )
        .await
        .unwrap();
    let after = prism_app::ReadOptions::at_least(revoked.sequence);
    certificates
        .get(&admin, ws, &revoked.serial, after)
        .await
        .unwrap();
    let revocation = certificates
        .revoke(
            &admin,
            &CommandOptions::default(),
            ws,
            &revoked.serial,
            RevocationReason::Superseded,
        )
        .await
        .unwrap();
    certificates
        .get(
            &admin,
            ws,
            &revoked.serial,
            prism_app::ReadOptions::at_least(revocation.outcome.sequence),
        )
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let get = |path: &str| http.get(prism.url(path)).send();
    let chain = get("/certs/ca").await.unwrap();
    assert_eq!(chain.status(), reqwest::StatusCode::OK);
    assert_eq!(
        chain.headers()["content-type"],
        "application/pem-certificate-chain"
    );
    let chain = dir.write("chain.pem", chain.bytes().await.unwrap());
    let issuer = get("/certs/ca/issuer.der").await.unwrap().bytes().await.unwrap();
    let issuer = dir.write("issuer.pem", prism_ca::pem("CERTIFICATE", &issuer));
    let crl = get("/certs/crl").await.unwrap();
    assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
    let crl = dir.write("crl.der", crl.bytes().await.unwrap());
    let (ok, text) = openssl(&[
        "crl",
        "-in",
        p(&crl),
        "-inform",
        "DER",
        "-noout",
        "-text",
        "-CAfile",
        p(&chain),
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(
        text.contains(&revoked.serial.to_string().to_uppercase()) && text.contains("Superseded"),
        "{text}"
    );
    let crl_pem = get("/certs/crl.pem").await.unwrap().text().await.unwrap();
    assert!(crl_pem.starts_with("-----BEGIN X509 CRL-----"), "{crl_pem}");

    // A real OCSP client over HTTP (POST, with a nonce).
    let url = prism.url("/certs/ocsp");
    for (issued, expected) in [(&good, "good"), (&revoked, "revoked")] {
        let leaf = dir.write("leaf.pem", &issued.certificate);
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            p(&issuer),
            "-cert",
            p(&leaf),
            "-url",
            &url,
            "-CAfile",
            p(&chain),
        ]);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!(": {expected}")), "{out}");
    }
    // The GET form (RFC 6960 A.1): the request, base64 then URL-encoded, at the end of the path.
    let leaf = dir.write("leaf.pem", &revoked.certificate);
    let request = dir.0.join("req.der");
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        p(&issuer),
        "-cert",
        p(&leaf),
        "-no_nonce",
        "-reqout",
        p(&request),
    ]);
    assert!(ok, "{out}");
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&request).unwrap());
    let escaped: String = encoded
        .chars()
        .map(|c| match c {
            '/' => "%2F".to_owned(),
            '+' => "%2B".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let response = get(&format!("/certs/ocsp/{escaped}")).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/ocsp-response");
    let response = dir.write("resp.der", response.bytes().await.unwrap());
    let (ok, out) = openssl(&[
        "ocsp",
        "-respin",
        p(&response),
        "-issuer",
        p(&issuer),
        "-cert",
        p(&leaf),
        "-no_nonce",
        "-CAfile",
        p(&chain),
    ]);
    assert!(ok && out.contains(": revoked"), "{out}");
    // Not an OCSP request: 415; garbage of the right type: 200 with malformedRequest inside.
    let wrong = http.post(&url).body("x").send().await.unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let garbage = http
        .post(&url)
        .header("content-type", "application/ocsp-request")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), reqwest::StatusCode::OK);
    let garbage = dir.write("garbage.der", garbage.bytes().await.unwrap());
    let (_, out) = openssl(&["ocsp", "-respin", p(&garbage), "-resp_text", "-noverify"]);
    assert!(out.contains("malformedrequest"), "{out}");
    prism.stop().await;
}

/// A JSON request of the workspace API as the platform's administrator.
struct Http<'p> {
    prism: &'p Prism,
    client: reqwest::Client,
}

impl Http<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.prism.url(path))
            .bearer_auth(self.prism.admin_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        status: u16,
    ) -> serde_json::Value {
        let response = self.send(method.clone(), path, body).await;
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

#[tokio::test]
async fn the_http_api_issues_signs_renews_revokes_and_downloads_in_prisms_shape() {
    use reqwest::Method;
    let prism = Prism::start().await;
    let app = prism.platform().app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    let other = workspace(app, &admin).await;
    let http = Http {
        prism: &prism,
        client: reqwest::Client::new(),
    };
    let dir = Scratch::new();

    // Issue for a CVM with the address it serves at: the key is in the answer, once, never cached.
    let response = http
        .send(
            Method::POST,
            &format!("/{ws}/certs/issue/cvm/cvm-9"),
            Some(serde_json::json!({ "ip_addresses": ["10.0.0.9"], "dns_names": ["cvm-9.example.org"], "ttl": "24h" })),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let issued: serde_json::Value = response.json().await.unwrap();
    let serial = issued["serial_number"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/{ws}/certs/{serial}"));
    assert_eq!(issued["profile"], "agent_server");
    assert_eq!(issued["entity_kind"], "cvm");
    let ca = dir.write("ca.pem", issued["ca"].as_str().unwrap());
    let leaf = dir.write("leaf.pem", issued["certificate"].as_str().unwrap());
    let key = dir.write("leaf.key", issued["private_key"].as_str().unwrap());
    let (ok, out) = openssl(&["verify", "-purpose", "sslserver", "-CAfile", p(&ca), p(&leaf)]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", p(&leaf), "-noout", "-text"]);
    assert!(
        text.contains("IP Address:10.0.0.9") && text.contains("DNS:cvm-9.example.org"),
        "{text}"
    );
    let (_, of_key) = openssl(&["pkey", "-in", p(&key), "-pubout"]);
    let (_, of_cert) = openssl(&["x509", "-in", p(&leaf), "-noout", "-pubkey"]);
    assert_eq!(of_key, of_cert, "the key handed out is the certificate's");

    // Sign a participant's CSR: the holder keeps the key.
    let csr = common::openssl_csr("/CN=ada", &["subjectAltName=email:ada@example.org"]);
    let signed = http
        .json(
            Method::POST,
            &format!("/{ws}/certs/csrs/user/ada"),
            Some(serde_json::json!({ "csr": csr })),
            201,
        )
        .await;
    assert_eq!(signed["profile"], "participant");
    assert!(signed.get("private_key").is_none());
    let signed_leaf = dir.write("ada.pem", signed["certificate"].as_str().unwrap());
    let (ok, out) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&ca),
        p(&signed_leaf),
    ]);
    assert!(ok, "{out}");

    // Requests beyond the rules: a precise 4xx, and nothing stored.
    let refusals: Vec<(String, serde_json::Value, u16, &str)> = vec![
        (
            format!("/{ws}/certs/csrs/user/ada"),
            serde_json::json!({ "csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n" }),
            422,
            "/csr",
        ),
        (
            format!("/{ws}/certs/csrs/service/api"),
            serde_json::json!({ "csr": common::openssl_csr("/CN=evil", &["subjectAltName=DNS:api.example.org", "basicConstraints=critical,CA:TRUE"]) }),
            422,
            "/csr",
        ),
        (
            format!("/{ws}/certs/csrs/user/eve"),
            serde_json::json!({ "csr": common::openssl_csr("/CN=eve", &["extendedKeyUsage=serverAuth"]) }),
            422,
            "/csr",
        ),
        (
            format!("/{ws}/certs/issue/cvm/cvm-9"),
            serde_json::json!({ "profile": "root_ca" }),
            422,
            "/profile",
        ),
        (
            format!("/{ws}/certs/issue/cvm/cvm-9"),
            serde_json::json!({}),
            422,
            "",
        ),
        (
            format!("/{ws}/certs/issue/cvm/cvm-9"),
            serde_json::json!({ "ip_addresses": ["10.0.0.9"], "ttl": "2000h" }),
            422,
            "",
        ),
        (
            format!("/{ws}/certs/issue/cvm/cvm-9"),
            serde_json::json!({ "ip_addresses": ["300.1.2.3"] }),
            422,
            "/ip_addresses/0",
        ),
        (
            format!("/{ws}/certs/issue/user/ada"),
            serde_json::json!({ "ip_addresses": ["10.0.0.9"] }),
            422,
            "",
        ),
        (
            format!("/{ws}/certs/issue/robot/r2"),
            serde_json::json!({}),
            404,
            "",
        ),
        (
            format!("/{ws}/certs/issue/cvm/a%20b"),
            serde_json::json!({}),
            400,
            "",
        ),
        (
            format!("/{ws}/certs/csrs/user/ada"),
            serde_json::json!({ "csr": "x".repeat(3 << 20) }),
            413,
            "",
        ),
    ];
    for (path, body, status, pointer) in refusals {
        let problem = http.json(Method::POST, &path, Some(body), status).await;
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{path}: {problem}"
        );
        if !pointer.is_empty() {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{path}: {problem}");
        }
    }
    // Another workspace's serial is not found there, whatever is asked of it; a malformed one is 400.
    for (method, path) in [
        (Method::GET, format!("/{other}/certs/{serial}")),
        (Method::PATCH, format!("/{other}/certs/{serial}/renew")),
        (Method::PATCH, format!("/{other}/certs/{serial}/revoke")),
        (Method::POST, format!("/{other}/certs/{serial}/download/token")),
    ] {
        http.json(method, &path, None, 404).await;
    }
    http.json(Method::GET, &format!("/{ws}/certs/not-a-serial"), None, 400)
        .await;

    // The list holds exactly what was issued; filters narrow it.
    let sequence = signed["sequence"].as_u64().unwrap();
    let list = http
        .json(
            Method::GET,
            &format!("/{ws}/certs?min_sequence={sequence}"),
            None,
            200,
        )
        .await;
    let entities: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entity_id"].as_str().unwrap())
        .collect();
    assert_eq!(entities, ["cvm-9", "ada"]);
    let of_cvm = http
        .json(
            Method::GET,
            &format!("/{ws}/certs?entity_id=cvm-9&status=active"),
            None,
            200,
        )
        .await;
    assert_eq!(of_cvm["items"].as_array().unwrap().len(), 1);
    let none = http
        .json(Method::GET, &format!("/{other}/certs"), None, 200)
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());

    // Get by serial (colon-separated and upper case too), renew: a new serial, the same key.
    let colons = serial
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let got = http
        .json(Method::GET, &format!("/{ws}/certs/{colons}"), None, 200)
        .await;
    assert_eq!(got["serial_number"], serial.as_str());
    assert_eq!(got["certificate"], issued["certificate"]);
    assert_eq!(got["status"], "active");
    let renewed = http
        .json(Method::PATCH, &format!("/{ws}/certs/{serial}/renew"), None, 200)
        .await;
    let renewed_serial = renewed["serial_number"].as_str().unwrap().to_owned();
    assert_ne!(renewed_serial, serial);
    let renewed_leaf = dir.write("renewed.pem", renewed["certificate"].as_str().unwrap());
    let (_, of_renewed) = openssl(&["x509", "-in", p(&renewed_leaf), "-noout", "-pubkey"]);
    assert_eq!(of_renewed, of_key);

    // A one-time download of the certificate and its key, without signing in (once the read model
    // knows the new serial).
    let sequence = renewed["sequence"].as_u64().unwrap();
    http.json(
        Method::GET,
        &format!("/{ws}/certs/{renewed_serial}?min_sequence={sequence}"),
        None,
        200,
    )
    .await;
    let token = http
        .json(
            Method::POST,
            &format!("/{ws}/certs/{renewed_serial}/download/token"),
            None,
            201,
        )
        .await;
    let redeem = |token: serde_json::Value| {
        http.client
            .post(prism.url("/certs/download"))
            .json(&serde_json::json!({ "token": token }))
            .send()
    };
    let bundle = redeem(token["token"].clone()).await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert_eq!(bundle.headers()["cache-control"], "no-store");
    let bundle: serde_json::Value = bundle.json().await.unwrap();
    assert_eq!(bundle["private_key"], issued["private_key"]);
    assert_eq!(bundle["certificate"], renewed["certificate"]);
    assert_eq!(bundle["ca"], issued["ca"]);
    assert_eq!(redeem(token["token"].clone()).await.unwrap().status(), 401);

    // Revoke by serial with a reason; revoke all of an entity's; then it has none.
    let revoked = http
        .send(
            Method::PATCH,
            &format!("/{ws}/certs/{serial}/revoke?reason=key_compromise"),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    let after: u64 = revoked.headers()["prism-sequence"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let got = http
        .json(
            Method::GET,
            &format!("/{ws}/certs/{renewed_serial}?min_sequence={after}"),
            None,
            200,
        )
        .await;
    assert_eq!(got["status"], "revoked");
    assert_eq!(got["revoked"], true);
    assert_eq!(got["reason"], "key_compromise");
    http.json(
        Method::PATCH,
        &format!("/{ws}/certs/{serial}/revoke?reason=because"),
        None,
        400,
    )
    .await;
    let revoke_ada_path = format!("/{ws}/certs?entity_id=ada");
    let revoke_ada = || http.send(Method::DELETE, &revoke_ada_path, None);
    assert_eq!(revoke_ada().await.status(), 204);
    eventually("ada's certificate revoked in the read model", || async {
        revoke_ada().await.status() == 404
    })
    .await;
    prism.stop().await;
}

/// An agent's client certificate that lives `seconds`.
fn short_lived(seconds: u64) -> CertificateRequest {
    let mut request = cvm_request(Profile::AgentClient).with_no_hosts();
    request.ttl = Some(Duration::from_secs(seconds));
    request
}

#[tokio::test]
async fn the_renewal_worker_renews_due_certificates_once_and_records_it() {
    let prism = Prism::start().await;
    let app = prism.platform().app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    let certificates = app.certificates();

    // Nine seconds of life: due in its last three, which the worker (looking every second) sees.
    let short = certificates
        .issue(&admin, &CommandOptions::default(), ws, short_lived(9))
        .await
        .unwrap();
    let lineage = |id| async move {
        app.repository::<prism_domain::certificate::Certificate>()
            .load(&id)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let loaded = lineage(short.id).await;
        if loaded.state.issuances.len() > 1 {
            assert_eq!(loaded.state.issuances[0].serial, short.serial);
            assert!(loaded.state.current().unwrap().not_after > short.not_after);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never renewed the certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two processes looking at the same moment renew a lineage once.
    let long = certificates
        .issue(
            &admin,
            &CommandOptions::default(),
            ws,
            cvm_request(Profile::AgentServer),
        )
        .await
        .unwrap();
    eventually("the certificate in the read model", || async {
        certificates
            .get(&admin, ws, &long.serial, Default::default())
            .await
            .is_ok()
    })
    .await;
    let worker = Caller::service("certificate-renewer");
    let later = chrono::Utc::now() + chrono::Duration::hours(23);
    let (first, second) = tokio::join!(
        certificates.maintain(&worker, later),
        certificates.maintain(&worker, later)
    );
    assert_eq!(first.unwrap().failed + second.unwrap().failed, 0);
    let loaded = lineage(long.id).await;
    assert_eq!(loaded.state.issuances.len(), 2, "renewed exactly once");
    assert_ne!(loaded.state.current().unwrap().serial, long.serial);
    prism.stop().await;
}

#[tokio::test]
async fn an_ended_certificate_is_recorded_expired_and_an_archived_computation_loses_its_certificates() {
    // Never renew (no window): a certificate that ends is recorded as expired.
    let prism = Prism::builder()
        .renewal(prism_app::RenewalPolicy {
            before: Duration::ZERO,
            every: Duration::from_secs(1),
        })
        .start()
        .await;
    let app = prism.platform().app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    let certificates = app.certificates();
    let short = certificates
        .issue(&admin, &CommandOptions::default(), ws, short_lived(1))
        .await
        .unwrap();
    eventually("the certificate recorded as expired", || async {
        certificates
            .list(
                &admin,
                ws,
                &prism_projections::CertificateFilter {
                    entity_id: None,
                    status: Some("expired".into()),
                },
                prism_projections::PageRequest {
                    after: None,
                    limit: 10,
                },
                Default::default(),
            )
            .await
            .unwrap()
            .items
            .iter()
            .any(|c| c.id == short.id)
    })
    .await;

    // A computation is archived: the certificates issued for it are revoked by the platform.
    let computation = app
        .computations()
        .create(
            &admin,
            &CommandOptions::default(),
            ws,
            prism_domain::testing::samples::minimal_definition(),
        )
        .await
        .unwrap();
    let request = CertificateRequest {
        entity: Entity {
            kind: EntityKind::Computation,
            id: computation.id.clone(),
        },
        ..cvm_request(Profile::AgentServer)
    };
    let issued = certificates
        .issue(&admin, &CommandOptions::default(), ws, request)
        .await
        .unwrap();
    app.computations()
        .archive(
            &admin,
            &CommandOptions::default(),
            ws,
            computation.id.parse().unwrap(),
            None,
        )
        .await
        .unwrap();
    eventually("the archived computation's certificate revoked", || async {
        let loaded = app
            .repository::<prism_domain::certificate::Certificate>()
            .load(&issued.id)
            .await
            .unwrap();
        loaded.state.revoked.map(|(reason, _)| reason) == Some(RevocationReason::CessationOfOperation)
    })
    .await;
    prism.stop().await;
}

/// The serial number of the certificate the TLS server at `addr` presents, as openssl sees it after
/// verifying it against `root` (a file).
fn presented_serial(addr: std::net::SocketAddr, root: &Path) -> String {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
            p(root),
            "-verify_return_error",
            "-alpn",
            "h2",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        text.contains("Verify return code: 0 (ok)") && text.contains("ALPN protocol: h2"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let start = text.find("-----BEGIN CERTIFICATE-----").expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").expect("a certificate") + 25;
    let leaf = Scratch::new();
    let file = leaf.write("leaf.pem", &text[start..end]);
    let (ok, serial) = openssl(&["x509", "-in", p(&file), "-noout", "-serial"]);
    assert!(ok, "{serial}");
    serial.trim().trim_start_matches("serial=").to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_https_with_a_platform_certificate_that_is_renewed_in_place() {
    let prism = Prism::builder().https().start().await;
    let platform = prism.platform();
    assert!(platform.base_url().starts_with("https://"));
    let dir = Scratch::new();
    let root = dir.write("root.pem", platform.https_root().unwrap());

    // Over HTTPS the API works as before: sign-in, a workspace; plain HTTP gets no answer.
    let app = platform.app();
    let admin = admin(&prism).await;
    let ws = workspace(app, &admin).await;
    eventually("the workspace read over HTTPS", || async {
        let read = prism
            .admin()
            .get(prism.url(&format!("/workspaces/{ws}")))
            .send()
            .await
            .unwrap();
        read.status() == 200
    })
    .await;
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health", platform.addr()))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // The certificate is the platform's own (no workspace lists it), chains to the root, names
    // localhost and the loopback address, and speaks h2.
    let first = presented_serial(platform.addr(), &root);
    let serial = prism_domain::certificate::Serial::parse(&first).unwrap();
    let found = app
        .read_models()
        .unwrap()
        .certificate_serial(&serial)
        .await
        .unwrap()
        .expect("the API's certificate is recorded");
    assert_eq!(found.workspace_id, None);

    // Renewed (as the worker does when it is due): the server presents the renewal, no restart.
    let later = chrono::Utc::now() + chrono::Duration::days(29);
    let done = app
        .certificates()
        .maintain(&Caller::service("certificate-renewer"), later)
        .await
        .unwrap();
    assert!(done.renewed >= 1, "{done:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = presented_serial(platform.addr(), &root);
        if now != first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is never presented"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    prism.stop().await;
}

/// A client of `addr` presenting `issued` (certificate, key) and trusting `root`.
fn agent_client(issued: &prism_app::IssuedCertificate, root: &str) -> reqwest::Client {
    let identity =
        format!("{}{}", issued.private_key.as_deref().unwrap(), issued.certificate) + &issued.chain;
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_the_api_closes_an_agents_open_connection_within_a_second() {
    let prism = Prism::start().await;
    let app = prism.platform().app().clone();
    let admin = admin(&prism).await;
    let ws = workspace(&app, &admin).await;
    let agent = |id: &str| {
        let mut request = cvm_request(Profile::AgentClient).with_no_hosts();
        request.entity.id = id.into();
        request
    };
    let certificates = app.certificates();
    let mut issued = Vec::new();
    for id in ["cvm-a", "cvm-b", "cvm-c"] {
        issued.push(
            certificates
                .issue(&admin, &CommandOptions::default(), ws, agent(id))
                .await
                .unwrap(),
        );
    }
    let (a, b, c) = (&issued[0], &issued[1], &issued[2]);
    eventually("the certificates in the read model", || async {
        certificates
            .get(&admin, ws, &c.serial, Default::default())
            .await
            .is_ok()
    })
    .await;
    certificates
        .revoke(
            &admin,
            &CommandOptions::default(),
            ws,
            &c.serial,
            RevocationReason::KeyCompromise,
        )
        .await
        .unwrap();

    // A service of the platform's requiring client certificates, serving a stream that never ends.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let subject = Subject {
        common_name: "prism-agents".into(),
        dns_names: vec!["localhost".into()],
        ..Default::default()
    };
    let tls = prism_cli::mutual_tls(
        &app,
        "prism-agents",
        subject,
        prism_tls::Alpn::Http2AndHttp1,
        stopped.clone(),
        &mut tasks,
    )
    .await
    .unwrap();
    let router = axum::Router::new().route(
        "/stream",
        axum::routing::get(|| async {
            let ticks = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Ok::<_, std::io::Error>(bytes_of("tick\n")), ()))
            });
            axum::body::Body::from_stream(ticks)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(prism_tls::Server::new(listener, tls).serve(router, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    let root = certificates.authority().await.unwrap().root_pem();
    let url = format!("https://localhost:{}/stream", addr.port());

    // Revoked before the server started: refused.
    assert!(agent_client(c, &root).get(&url).send().await.is_err());
    // Two agents stream.
    let mut a_stream = agent_client(a, &root).get(&url).send().await.unwrap();
    let mut b_stream = agent_client(b, &root).get(&url).send().await.unwrap();
    assert!(a_stream.chunk().await.unwrap().is_some());
    assert!(b_stream.chunk().await.unwrap().is_some());

    // Agent a's certificate is revoked through the HTTP API: its connection ends within a second.
    let revoked = prism
        .admin()
        .patch(prism.url(&format!("/{ws}/certs/{}/revoke?reason=key_compromise", a.serial)))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let revoked_at = Instant::now();
    loop {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "agent a still streams after its revocation"
        );
        match tokio::time::timeout(Duration::from_secs(2), a_stream.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => break,
            Err(_) => panic!("agent a's stream went silent but was not closed"),
        }
    }
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the connection was closed after {took:?}"
    );
    // Agent b streams on; agent a cannot come back.
    for _ in 0..5 {
        assert!(b_stream.chunk().await.unwrap().is_some());
    }
    assert!(agent_client(a, &root).get(&url).send().await.is_err());

    stop.send(true).unwrap();
    drop(b_stream);
    server.await.unwrap();
    while let Some(task) = tasks.join_next().await {
        task.unwrap().unwrap();
    }
    prism.stop().await;
}

fn bytes_of(text: &'static str) -> axum::body::Bytes {
    axum::body::Bytes::from_static(text.as_bytes())
}
