//! Consent signatures made by an independent implementation — the `openssl` command line, as a
//! participant would sign — verify with [`PublicKey::verify`] for every kind of key Prism accepts;
//! a signature over anything else does not.

use std::path::{Path, PathBuf};
use std::process::Command;

use prism_domain::run::manifest::consent_message;
use prism_domain::values::{PublicKey, SignatureError};

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line is installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prism-consent-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Makes a key with `genpkey` options, signs `message` with it, and returns the public key and the
/// signature.
fn key_and_signature(name: &str, genpkey: &[&str], message: &[u8]) -> (PublicKey, Vec<u8>) {
    let dir = scratch(name);
    std::fs::write(dir.join("message"), message).unwrap();
    let mut args = vec!["genpkey", "-out", "key.pem"];
    args.extend_from_slice(genpkey);
    openssl(&dir, &args);
    openssl(&dir, &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
    if name == "ed25519" {
        openssl(
            &dir,
            &[
                "pkeyutl", "-sign", "-rawin", "-inkey", "key.pem", "-in", "message", "-out", "sig",
            ],
        );
    } else {
        openssl(
            &dir,
            &["dgst", "-sha256", "-sign", "key.pem", "-out", "sig", "message"],
        );
    }
    let key = PublicKey::parse(&std::fs::read_to_string(dir.join("pub.pem")).unwrap()).unwrap();
    let signature = std::fs::read(dir.join("sig")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (key, signature)
}

#[test]
fn openssl_signatures_verify_for_every_kind_of_key() {
    let manifest_id = "da06594a".repeat(8);
    let message = consent_message(&manifest_id);
    assert_eq!(message.len(), 81);
    let kinds: [(&str, &[&str]); 5] = [
        ("ed25519", &["-algorithm", "ED25519"]),
        ("rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
        (
            "p521",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
        ),
    ];
    for (name, genpkey) in kinds {
        let (key, signature) = key_and_signature(name, genpkey, &message);
        assert_eq!(key.verify(&message, &signature), Ok(()), "{name}");
        let other = consent_message(&"00".repeat(32));
        assert_eq!(
            key.verify(&other, &signature),
            Err(SignatureError::Invalid),
            "{name}: another manifest"
        );
        let mut tampered = signature.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            key.verify(&message, &tampered),
            Err(SignatureError::Invalid),
            "{name}: tampered"
        );
        assert_eq!(
            key.verify(&message, b""),
            Err(SignatureError::Invalid),
            "{name}: empty"
        );
    }
}
