//! The authority judged by an independent implementation: the `openssl` command line verifies the
//! chains it issues, reads its CRLs, makes the CSRs it signs, and checks its OCSP answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use prism_ca::{Authority, CaError, CaUrls, KeySource, OcspStatus, RevokedEntry, read_csr};
use prism_domain::certificate::{Profile, Serial, Subject};

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// A scratch directory for one test's files.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("prism-ca-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `openssl` with `args`; its standard output and error together, and whether it succeeded.
fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line (infra/install-deps.sh installs it)");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn authority() -> Authority {
    Authority::create(CaUrls::under("https://prism.example.org"), Utc::now())
        .unwrap()
        .0
}

fn cvm() -> Subject {
    Subject {
        common_name: "cvm-7".into(),
        dns_names: vec!["cvm-7.prism.internal".into()],
        ip_addresses: vec!["10.0.0.7".parse().unwrap()],
        ..Default::default()
    }
}

#[test]
fn openssl_verifies_an_issued_chain_and_reads_the_profile() {
    let ca = authority();
    let dir = Scratch::new();
    let root = dir.write("root.pem", ca.root_pem());
    let chain = dir.write("chain.pem", ca.chain_pem());
    let issued = ca
        .issue(
            Profile::AgentServer,
            &cvm(),
            WEEK,
            KeySource::Generate,
            Utc::now(),
        )
        .unwrap();
    let leaf = dir.write("leaf.pem", &issued.pem);
    let key = dir.write("leaf.key", issued.private_key_pem.as_ref().unwrap().as_bytes());

    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&root),
        "-untrusted",
        p(&chain),
        "-purpose",
        "sslserver",
        p(&leaf),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&root),
        "-untrusted",
        p(&chain),
        "-purpose",
        "sslclient",
        p(&leaf),
    ]);
    assert!(!ok, "a server certificate is no client certificate: {out}");
    let (ok, text) = openssl(&["x509", "-in", p(&leaf), "-noout", "-text"]);
    assert!(ok, "{text}");
    for expected in [
        "DNS:cvm-7.prism.internal",
        "IP Address:10.0.0.7",
        "TLS Web Server Authentication",
        "CA:FALSE",
        "URI:https://prism.example.org/certs/crl",
        "OCSP - URI:https://prism.example.org/certs/ocsp",
        "CA Issuers - URI:https://prism.example.org/certs/ca/issuer.der",
        "Subject: O = Prism, CN = cvm-7",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let (ok, serial) = openssl(&["x509", "-in", p(&leaf), "-noout", "-serial"]);
    assert!(ok);
    assert_eq!(
        Serial::parse(serial.trim().trim_start_matches("serial=")),
        Ok(issued.serial)
    );
    // The key handed out is the certificate's.
    let (_, from_cert) = openssl(&["x509", "-in", p(&leaf), "-noout", "-pubkey"]);
    let (_, from_key) = openssl(&["pkey", "-in", p(&key), "-pubout"]);
    assert_eq!(from_cert, from_key);
}

#[test]
fn a_csr_made_by_openssl_is_signed_for_its_key_within_the_profile() {
    let ca = authority();
    let dir = Scratch::new();
    let key = dir.path("participant.key");
    let csr = dir.path("participant.csr");
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=Ada",
        "-addext",
        "subjectAltName=email:ada@example.org",
    ]);
    assert!(ok, "{out}");
    let request = read_csr(&std::fs::read(&csr).unwrap(), Profile::Participant).unwrap();
    assert_eq!(request.subject.common_name, "Ada");
    assert_eq!(request.subject.emails[0].as_str(), "ada@example.org");
    let issued = ca
        .issue(
            Profile::Participant,
            &request.subject,
            WEEK,
            KeySource::PublicKey(&request.public_key),
            Utc::now(),
        )
        .unwrap();
    assert!(issued.private_key_pem.is_none());
    let leaf = dir.write("leaf.pem", &issued.pem);
    let root = dir.write("root.pem", ca.root_pem());
    let chain = dir.write("chain.pem", ca.chain_pem());
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        p(&root),
        "-untrusted",
        p(&chain),
        "-purpose",
        "sslclient",
        p(&leaf),
    ]);
    assert!(ok, "{out}");
    let (_, from_cert) = openssl(&["x509", "-in", p(&leaf), "-noout", "-pubkey"]);
    let (_, from_key) = openssl(&["pkey", "-in", p(&key), "-pubout"]);
    assert_eq!(from_cert, from_key, "signed for the requester's key");
}

#[test]
fn a_csr_asking_for_more_than_its_profile_is_refused_naming_it() {
    let dir = Scratch::new();
    let make = |name: &str, extra: &[&str]| {
        let csr = dir.path(name);
        let key = dir.path(&format!("{name}.key"));
        let mut args = vec![
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            p(&key),
            "-out",
            p(&csr),
            "-subj",
            "/CN=cvm-7",
        ];
        args.extend_from_slice(extra);
        let (ok, out) = openssl(&args);
        assert!(ok, "{out}");
        std::fs::read(&csr).unwrap()
    };
    let ca_request = make("ca.csr", &["-addext", "basicConstraints=critical,CA:TRUE"]);
    let refused = read_csr(&ca_request, Profile::AgentClient).unwrap_err();
    assert!(refused.to_string().contains("certificate authority"), "{refused}");
    let server = make("server.csr", &["-addext", "extendedKeyUsage=serverAuth"]);
    let refused = read_csr(&server, Profile::AgentClient).unwrap_err();
    assert!(refused.to_string().contains("serverAuth"), "{refused}");
    let signing = make("signing.csr", &["-addext", "extendedKeyUsage=codeSigning"]);
    assert!(read_csr(&signing, Profile::Service).is_err());

    // Names are the profile's to judge when signing: a client certificate names no host.
    let ca = authority();
    let host = make(
        "host.csr",
        &["-addext", "subjectAltName=DNS:cvm-7.prism.internal"],
    );
    let request = read_csr(&host, Profile::AgentClient).unwrap();
    let refused = ca
        .issue(
            Profile::AgentClient,
            &request.subject,
            WEEK,
            KeySource::PublicKey(&request.public_key),
            Utc::now(),
        )
        .unwrap_err();
    assert!(matches!(refused, CaError::Profile(_)), "{refused}");

    // A CSR whose signature does not verify: one byte of the signed part changed.
    let mut der = der_of_csr(&host);
    let at = der.len() / 2;
    der[at] ^= 0x01;
    assert!(read_csr(&der, Profile::AgentClient).is_err());
    assert!(read_csr(b"not a CSR", Profile::AgentClient).is_err());
}

/// The DER inside a PEM CSR, through openssl.
fn der_of_csr(pem: &[u8]) -> Vec<u8> {
    let dir = Scratch::new();
    let input = dir.write("in.csr", pem);
    let output = dir.path("out.der");
    let (ok, out) = openssl(&["req", "-in", p(&input), "-outform", "DER", "-out", p(&output)]);
    assert!(ok, "{out}");
    std::fs::read(output).unwrap()
}

#[test]
fn openssl_reads_the_crl_and_refuses_a_revoked_certificate() {
    let ca = authority();
    let dir = Scratch::new();
    let now = Utc::now();
    let good = ca
        .issue(Profile::AgentServer, &cvm(), WEEK, KeySource::Generate, now)
        .unwrap();
    let revoked = ca
        .issue(Profile::AgentServer, &cvm(), WEEK, KeySource::Generate, now)
        .unwrap();
    let crl = ca
        .crl(
            &[RevokedEntry {
                serial: revoked.serial.clone(),
                revoked_at: now,
                reason: Some(1),
            }],
            42,
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
    let crl_pem = dir.write("crl.pem", &crl.pem);
    let crl_der = dir.write("crl.der", &crl.der);
    let (ok, text) = openssl(&["crl", "-in", p(&crl_der), "-inform", "DER", "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(
        text.contains(&revoked.serial.to_string().to_uppercase()),
        "{text}"
    );
    assert!(
        text.contains("X509v3 CRL Number: \n                42") || text.contains("42"),
        "{text}"
    );
    let root = dir.write("root.pem", ca.root_pem());
    let chain = dir.write("chain.pem", ca.chain_pem());
    let (ok, out) = openssl(&["crl", "-in", p(&crl_pem), "-noout", "-CAfile", p(&chain)]);
    assert!(ok && out.contains("verify OK"), "{out}");
    for (issued, expected_ok) in [(&good, true), (&revoked, false)] {
        let leaf = dir.write("leaf.pem", &issued.pem);
        let (ok, out) = openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            p(&root),
            "-untrusted",
            p(&chain),
            "-CRLfile",
            p(&crl_pem),
            p(&leaf),
        ]);
        assert_eq!(ok, expected_ok, "{out}");
        if !expected_ok {
            assert!(out.contains("certificate revoked"), "{out}");
        }
    }
}

#[test]
fn openssl_checks_the_ocsp_answers_good_revoked_and_unknown() {
    let ca = authority();
    let dir = Scratch::new();
    let now = Utc::now();
    let good = ca
        .issue(Profile::AgentServer, &cvm(), WEEK, KeySource::Generate, now)
        .unwrap();
    let revoked = ca
        .issue(Profile::AgentServer, &cvm(), WEEK, KeySource::Generate, now)
        .unwrap();
    let issuer = dir.write("issuer.pem", prism_ca_pem(ca.intermediate_der()));
    let root = dir.write("root.pem", ca.root_pem());
    let lookup = |serial: &Serial| {
        if *serial == good.serial {
            OcspStatus::Good
        } else if *serial == revoked.serial {
            OcspStatus::Revoked {
                at: now,
                reason: Some(5),
            }
        } else {
            OcspStatus::Unknown
        }
    };
    for (name, issued, digest, expected) in [
        ("good", &good, "-sha1", "good"),
        ("revoked", &revoked, "-sha256", "revoked"),
    ] {
        let leaf = dir.write(&format!("{name}.pem"), &issued.pem);
        let request = dir.path(&format!("{name}.req"));
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            p(&issuer),
            digest,
            "-cert",
            p(&leaf),
            "-reqout",
            p(&request),
        ]);
        assert!(ok, "{out}");
        let response = ca
            .respond_ocsp(&std::fs::read(&request).unwrap(), lookup, now)
            .unwrap();
        let response_path = dir.write(&format!("{name}.resp"), response);
        // The response answers this request (its nonce) and verifies up to the root alone...
        let (ok, out) = openssl(&[
            "ocsp",
            "-respin",
            p(&response_path),
            "-reqin",
            p(&request),
            "-CAfile",
            p(&root),
        ]);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        assert!(!out.contains("Nonce"), "{out}");
        // ...and says what it says of this certificate (openssl makes its own request for the names,
        // with another nonce: not compared here).
        let (ok, out) = openssl(&[
            "ocsp",
            "-respin",
            p(&response_path),
            "-issuer",
            p(&issuer),
            digest,
            "-cert",
            p(&leaf),
            "-no_nonce",
            "-CAfile",
            p(&root),
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!(": {expected}")), "{out}");
        if expected == "revoked" {
            assert!(out.contains("cessationOfOperation"), "{out}");
        }
    }

    // A certificate of another authority is unknown here; garbage is a malformed request.
    let other = authority();
    let foreign = other
        .issue(Profile::AgentServer, &cvm(), WEEK, KeySource::Generate, now)
        .unwrap();
    let foreign_leaf = dir.write("foreign.pem", &foreign.pem);
    let foreign_issuer = dir.write("foreign-issuer.pem", prism_ca_pem(other.intermediate_der()));
    let request = dir.path("foreign.req");
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        p(&foreign_issuer),
        "-cert",
        p(&foreign_leaf),
        "-reqout",
        p(&request),
    ]);
    assert!(ok, "{out}");
    let response = ca
        .respond_ocsp(&std::fs::read(&request).unwrap(), lookup, now)
        .unwrap();
    let response_path = dir.write("foreign.resp", response);
    let (_, out) = openssl(&["ocsp", "-respin", p(&response_path), "-resp_text", "-noverify"]);
    assert!(out.contains("Cert Status: unknown"), "{out}");
    let malformed = dir.write(
        "malformed.resp",
        ca.respond_ocsp(b"garbage", lookup, now).unwrap(),
    );
    let (_, out) = openssl(&["ocsp", "-respin", p(&malformed), "-resp_text", "-noverify"]);
    assert!(out.contains("malformedrequest"), "{out}");
}

fn prism_ca_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der))
}

#[test]
fn an_authority_loads_from_its_material_and_keeps_signing_the_same_chain() {
    let (ca, material) = Authority::create(CaUrls::under("https://prism.example.org"), Utc::now()).unwrap();
    let loaded = Authority::load(&material, CaUrls::under("https://prism.example.org")).unwrap();
    assert_eq!(loaded.chain_pem(), ca.chain_pem());
    let dir = Scratch::new();
    let root = dir.write("root.pem", ca.root_pem());
    let chain = dir.write("chain.pem", ca.chain_pem());
    let issued = loaded
        .issue(Profile::Service, &cvm(), WEEK, KeySource::Generate, Utc::now())
        .unwrap();
    let leaf = dir.write("leaf.pem", &issued.pem);
    let (ok, out) = openssl(&["verify", "-CAfile", p(&root), "-untrusted", p(&chain), p(&leaf)]);
    assert!(ok, "{out}");
    assert!(!ca.responder_due(Utc::now()).unwrap());
    assert!(ca.responder_due(Utc::now() + chrono::Duration::days(25)).unwrap());
}
