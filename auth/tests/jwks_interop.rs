//! Another JWT library accepts our access tokens from the JWK Set alone, and refuses what it must.
//!
//! The other library is PyJWT (`tests/verify_jwt.py`), installed by `infra/install-deps.sh`. This test
//! fails, rather than skips, when Python or PyJWT is missing: a skipped interoperability test would
//! let a token format that only our own verifier reads go unnoticed.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use prism_auth::{SigningKeys, TokenIssuer};
use prism_domain::UserId;
use uuid::Uuid;

const ISSUER: &str = "https://prism.example.org";
const AUDIENCE: &str = "prism-api";

/// Exit codes of verify_jwt.py.
const REFUSED: i32 = 1;
const MISSING_PYJWT: i32 = 3;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs the Python verifier on `token` against `keys`' JWK Set.
fn pyjwt(dir: &Path, keys: &SigningKeys, token: &str, audience: &str) -> Output {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, serde_json::to_vec_pretty(&keys.jwks()).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_jwt.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(&jwks)
        .arg(token)
        .arg(ISSUER)
        .arg(audience)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; this test needs Python 3 with PyJWT (infra/install-deps.sh)",
                python()
            )
        });
    assert_ne!(
        output.status.code(),
        Some(MISSING_PYJWT),
        "PyJWT is missing: run infra/install-deps.sh\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_accepted(output: &Output, user: UserId) {
    assert!(
        output.status.success(),
        "PyJWT refused a valid token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), user.to_string());
}

fn assert_refused(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(REFUSED),
        "PyJWT should have refused {what}; stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn pyjwt_verifies_our_tokens_from_the_jwks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = TokenIssuer::new(ISSUER, AUDIENCE);
    let user = UserId(Uuid::now_v7());
    let now = Utc::now();
    let mut keys = SigningKeys::generate(now).unwrap();

    let token = issuer.issue(&keys, &issuer.claims(user, now)).unwrap();
    assert_accepted(&pyjwt(dir.path(), &keys, &token, AUDIENCE), user);

    // After a rotation the JWKS carries both keys: old and new tokens verify.
    keys.rotate(now).unwrap();
    assert_accepted(&pyjwt(dir.path(), &keys, &token, AUDIENCE), user);
    let new_token = issuer.issue(&keys, &issuer.claims(user, now)).unwrap();
    assert_accepted(&pyjwt(dir.path(), &keys, &new_token, AUDIENCE), user);
}

#[test]
fn pyjwt_refuses_tokens_our_jwks_does_not_vouch_for() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = TokenIssuer::new(ISSUER, AUDIENCE);
    let user = UserId(Uuid::now_v7());
    let now = Utc::now();
    let keys = SigningKeys::generate(now).unwrap();
    let stranger = SigningKeys::generate(now).unwrap();

    // Signed by a key that is not in the JWKS.
    let foreign = issuer.issue(&stranger, &issuer.claims(user, now)).unwrap();
    assert_refused(
        &pyjwt(dir.path(), &keys, &foreign, AUDIENCE),
        "a token of an unknown key",
    );

    // The same, claiming the kid of a key that is.
    let mut parts: Vec<String> = foreign.split('.').map(str::to_owned).collect();
    let mut header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
    header["kid"] = keys.current_kid().into();
    parts[0] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let forged = parts.join(".");
    assert_refused(
        &pyjwt(dir.path(), &keys, &forged, AUDIENCE),
        "a token signed by another key under our kid",
    );

    // Ours, but expired, or for another audience: PyJWT checks the claims too.
    let expired = issuer
        .issue(&keys, &issuer.claims(user, now - TimeDelta::hours(1)))
        .unwrap();
    assert_refused(&pyjwt(dir.path(), &keys, &expired, AUDIENCE), "an expired token");
    let token = issuer.issue(&keys, &issuer.claims(user, now)).unwrap();
    assert_refused(
        &pyjwt(dir.path(), &keys, &token, "another-api"),
        "a token for another audience",
    );
}
