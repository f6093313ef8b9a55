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
