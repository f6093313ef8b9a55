//! Another JWT library accepts our attestation results (EAR JWTs) from the JWK Set alone, reads
//! the claims a relying party acts on, and refuses what it must.
//!
//! The other library is PyJWT, installed by `infra/install-deps.sh`; the script it runs is
//! [`VERIFY_EAR_PY`]. These tests fail, rather than skip, when Python or PyJWT is missing: a skipped
//! interoperability test would let a result format that only our own reader accepts go unnoticed.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use prism_attestation::binding::{Expected, Nonce};
use prism_attestation::ear::{self, EarSigner, Subject};
use prism_attestation::eat;
use prism_attestation::none::NoneVerifier;
use prism_attestation::snp::{SnpVerifier, VcekCache};
use prism_attestation::verdict::INSECURE_WARNING;
use prism_attestation::{Appraiser, Hex, Mode, Outcome, Platform, Policy, Verdict};
use serde_json::Value;

/// Verifies an EAR JWT the way a relying party would: PyJWT and nothing but the JWK Set.
///
/// Usage: `python3 -c VERIFY_EAR_PY JWKS_FILE TOKEN_FILE`. Prints `{"header", "key_id", "claims"}` as
/// JSON and exits 0 if the token verifies; exits 1 if it is refused, 2 on wrong usage, 3 if PyJWT
/// (with its crypto extra) is missing, so that the caller can tell a refusal from a broken
/// environment.
const VERIFY_EAR_PY: &str = r#"
import json
import sys

try:
    import jwt
    from jwt.algorithms import has_crypto
except ImportError as e:
    print(f"PyJWT is not installed ({e}); run infra/install-deps.sh", file=sys.stderr)
    sys.exit(3)
if not has_crypto:
    print("PyJWT lacks its crypto extra (cryptography); run infra/install-deps.sh", file=sys.stderr)
    sys.exit(3)

if len(sys.argv) != 3:
    print("usage: JWKS_FILE TOKEN_FILE", file=sys.stderr)
    sys.exit(2)
_, jwks_file, token_file = sys.argv
with open(jwks_file, encoding="utf-8") as f:
    jwks = jwt.PyJWKSet.from_dict(json.load(f))
with open(token_file, encoding="ascii") as f:
    token = f.read().strip()
try:
    header = jwt.get_unverified_header(token)
    try:
        key = jwks[header.get("kid")]
    except KeyError:
        print(f"refused: no key with kid {header.get('kid')!r} in the JWK Set", file=sys.stderr)
        sys.exit(1)
    # The key object itself, which every PyJWT 2.x takes (2.6 does not take a PyJWK).
    claims = jwt.decode(token, key=key.key, algorithms=["ES256"], options={"require": ["exp", "iat"]})
except jwt.PyJWTError as e:
    print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"header": header, "key_id": key.key_id, "claims": claims}))
"#;

/// Exit codes of [`VERIFY_EAR_PY`].
const REFUSED: i32 = 1;
const MISSING_PYJWT: i32 = 3;

const SUBMODULE: &str = "cvm-01890a5d-ac96-774b-bcce-b302099a8057";
const MANIFEST: &str = "manifest-7";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Runs PyJWT on `token` against `jwks`, both written to `dir` as a relying party would receive
/// them.
fn pyjwt(dir: &Path, jwks: &Value, token: &str) -> Output {
    let jwks_file = dir.join("jwks.json");
    let token_file = dir.join("ear.jwt");
    std::fs::write(&jwks_file, serde_json::to_vec_pretty(jwks).unwrap()).unwrap();
    std::fs::write(&token_file, token).unwrap();
    let output = Command::new(python())
        .arg("-c")
        .arg(VERIFY_EAR_PY)
        .arg(&jwks_file)
        .arg(&token_file)
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

/// What PyJWT read from a token it accepted: its header, the JWKS key's kid and the claims.
fn accepted(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "PyJWT refused a valid result: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "PyJWT printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Asserts that PyJWT refused, and returns its reason.
fn refused(output: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(REFUSED),
        "PyJWT should have refused {what}; stdout {:?}, stderr {stderr:?}",
        String::from_utf8_lossy(&output.stdout),
    );
    stderr
}

/// The verdict on AMD's genuine Milan report, its VCEK taken from a certificate cache, under
/// `policy`.
fn genuine_milan_verdict(policy: &Policy) -> Verdict {
    let report = milan_report();
    let cache = tempfile::tempdir().unwrap();
    let vcek_cache = VcekCache::new(cache.path());
    let path = vcek_cache.path(&report[0x1A0..0x1E0], &report[0x180..0x188]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, MILAN_VCEK).unwrap();
    let appraiser = Appraiser::new(
        Mode::Secure,
        SnpVerifier::amd().unwrap().with_cache(vcek_cache),
        NoneVerifier::new([]).unwrap(),
    );
    appraiser.appraise(Platform::SevSnp, &report, &expected_for(&report), policy)
}

fn subject() -> Subject {
    Subject {
        name: SUBMODULE.to_owned(),
        manifest_id: Some(MANIFEST.to_owned()),
    }
}

fn submodule_of(claims: &Value) -> &Value {
    &claims["submods"][SUBMODULE]
}

fn policy_id(verdict: &Verdict) -> Value {
    serde_json::json!([format!("urn:prism:policy:sha256:{}", verdict.policy_sha256)])
}

/// `token` with one byte of its payload changed and the header and signature kept: the result's
/// validity pushed ten seconds further, a forgery a relying party must not accept.
fn with_later_expiry(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let exp = serde_json::from_slice::<Value>(&payload).unwrap()["exp"]
        .as_i64()
        .unwrap()
        .to_string();
    let at = payload
        .windows(6)
        .position(|window| window == b"\"exp\":")
        .expect("the payload has exp")
        + 6;
    assert_eq!(&payload[at..at + exp.len()], exp.as_bytes());
    // The tens digit, so that the JSON stays valid and the change is one byte.
    let tens = at + exp.len() - 2;
    payload[tens] = if payload[tens] == b'9' {
        b'8'
    } else {
        payload[tens] + 1
    };
    serde_json::from_slice::<Value>(&payload).expect("still JSON");
    [parts[0], &URL_SAFE_NO_PAD.encode(&payload), parts[2]].join(".")
}

#[test]
fn pyjwt_verifies_a_verified_result_from_the_jwks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let verdict = genuine_milan_verdict(&Policy::default());
    assert_eq!(verdict.outcome, Outcome::Verified, "{:?}", verdict.failures);
    let (signer, _) = EarSigner::generate().unwrap();
    let issued_at = now();
    let token = signer.sign(&verdict, &subject(), issued_at).unwrap();
    let jwks = signer.jwks();

    let read = accepted(&pyjwt(dir.path(), &jwks, &token));
    let claims = &read["claims"];
    assert_eq!(claims["eat_profile"], ear::PROFILE);
    assert_eq!(claims["iat"], issued_at);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(claims["ear_verifier_id"]["developer"], ear::DEVELOPER);
    assert_eq!(claims["prism_manifest_id"], MANIFEST);
    // The genuine report was taken as a start-up report, not for a platform nonce.
    assert!(claims.get("eat_nonce").is_none(), "{claims}");

    let submodule = submodule_of(claims);
    assert_eq!(submodule["ear_status"], "affirming");
    let vector = &submodule["ear_trustworthiness_vector"];
    assert_eq!(vector["hardware"], ear::ar4si::AFFIRMING);
    assert_eq!(vector["hardware"], 2);
    assert_eq!(vector["instance-identity"], 2);
    assert_eq!(submodule["ear_appraisal_policy_ids"], policy_id(&verdict));
    assert_eq!(submodule["prism_platform"], "sev_snp");
    assert_eq!(
        submodule["prism_evidence_sha256"],
        verdict.evidence_sha256.to_string()
    );
    assert!(submodule.get("prism_failures").is_none(), "{submodule}");

    let jwks_kid = &jwks["keys"][0]["kid"];
    assert_eq!(read["header"]["kid"], *jwks_kid);
    assert_eq!(read["key_id"], *jwks_kid);
    assert_eq!(read["header"]["alg"], "ES256");
    assert_eq!(jwks_kid.as_str(), Some(signer.key_id()));

    // Our own reader, with the signer's JWK, reads the same claims.
    let ours = ear::verify(&token, &signer.jwk()).expect("the Rust reader accepts the result");
    assert_eq!(ours.eat_profile, ear::PROFILE);
    assert_eq!((ours.iat, ours.exp), (issued_at, issued_at + 600));
    assert_eq!(
        Value::Object(ours.submods),
        claims["submods"],
        "both readers see the same submodules"
    );
}

#[test]
fn pyjwt_refuses_a_result_the_jwks_does_not_vouch_for_an_altered_one_and_an_expired_one() {
    let dir = tempfile::tempdir().unwrap();
    let verdict = genuine_milan_verdict(&Policy::default());
    let (signer, _) = EarSigner::generate().unwrap();
    let (stranger, _) = EarSigner::generate().unwrap();
    let jwks = signer.jwks();
    let issued_at = now();
    let token = signer.sign(&verdict, &subject(), issued_at).unwrap();
    accepted(&pyjwt(dir.path(), &jwks, &token));

    // Signed by a key that is not in the JWKS.
    let foreign = stranger.sign(&verdict, &subject(), issued_at).unwrap();
    refused(
        &pyjwt(dir.path(), &jwks, &foreign),
        "a result signed by another key",
    );
    // The same, claiming the kid of the key that is.
    let mut parts: Vec<String> = foreign.split('.').map(str::to_owned).collect();
    let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[0]).unwrap()).unwrap();
    header["kid"] = signer.key_id().into();
    parts[0] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let forged = parts.join(".");
    let reason = refused(
        &pyjwt(dir.path(), &jwks, &forged),
        "a result signed by another key under our kid",
    );
    assert!(reason.contains("InvalidSignatureError"), "{reason}");

    // Ours, with one byte of the payload changed.
    let altered = with_later_expiry(&token);
    assert_ne!(altered, token);
    let reason = refused(
        &pyjwt(dir.path(), &jwks, &altered),
        "a result with an altered payload",
    );
    assert!(reason.contains("InvalidSignatureError"), "{reason}");

    // Ours, issued an hour ago: its ten minutes are over.
    let expired = signer.sign(&verdict, &subject(), issued_at - 3600).unwrap();
    let reason = refused(&pyjwt(dir.path(), &jwks, &expired), "an expired result");
    assert!(reason.contains("ExpiredSignatureError"), "{reason}");

    // Our own reader refuses the same ones.
    let jwk = signer.jwk();
    assert!(ear::verify(&token, &jwk).is_ok());
    assert!(ear::verify(&altered, &jwk).is_err(), "altered payload");
    assert!(ear::verify(&foreign, &jwk).is_err(), "another key");
    assert!(ear::verify(&forged, &jwk).is_err(), "another key under our kid");
    assert!(ear::verify(&expired, &jwk).is_err(), "expired");
}

#[test]
fn a_refused_result_is_contraindicated_with_its_failures_and_an_insecure_one_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = EarSigner::generate().unwrap();
    let jwks = signer.jwks();

    // A policy that demands another measurement refuses the genuine report.
    let mut policy = Policy::default();
    policy.sev_snp.measurements = vec![Hex([0x11; 48])];
    let verdict = genuine_milan_verdict(&policy);
    assert_eq!(verdict.outcome, Outcome::Refused);
    let token = signer.sign(&verdict, &subject(), now()).unwrap();
    let claims = &accepted(&pyjwt(dir.path(), &jwks, &token))["claims"];
    let submodule = submodule_of(claims);
    assert_eq!(submodule["ear_status"], "contraindicated");
    assert_eq!(
        submodule["ear_trustworthiness_vector"],
        serde_json::json!({ "executables": ear::ar4si::CONTRAINDICATED })
    );
    assert_eq!(submodule["ear_appraisal_policy_ids"], policy_id(&verdict));
    assert_ne!(
        submodule["ear_appraisal_policy_ids"],
        policy_id(&genuine_milan_verdict(&Policy::default())),
        "the policy id names the policy that refused"
    );
    let failures = submodule["prism_failures"].as_array().expect("failures listed");
    assert_eq!(failures[0]["field"], "measurement");
    assert!(
        failures[0]["expected"]
            .as_str()
            .unwrap()
            .contains(&"11".repeat(48)),
        "{failures:?}"
    );

    // A machine without a TEE, accepted in insecure development mode, for a fresh request.
    let nonce = Nonce([0x4E; 32]);
    let expected = Expected::fresh(&nonce, b"agent key");
    let mut raw_report = expected.report_data.to_vec();
    raw_report.extend_from_slice(&nonce.0);
    let claims = eat::Claims {
        nonce: Some(nonce.0.to_vec()),
        platform_type: eat::PLATFORM_NOCC.to_owned(),
        raw_report,
        ..eat::Claims::default()
    };
    let key = eat::SigningKey::generate().unwrap();
    let evidence = eat::encode(claims, &key, eat::DEFAULT_ISSUER, now()).unwrap();
    let development = Appraiser::new(
        Mode::InsecureDevelopment,
        SnpVerifier::amd().unwrap(),
        NoneVerifier::new([]).unwrap(),
    );
    let verdict = development.appraise(Platform::None, &evidence, &expected, &Policy::default());
    assert_eq!(
        verdict.outcome,
        Outcome::AcceptedInsecure,
        "{:?}",
        verdict.failures
    );
    let token = signer.sign(&verdict, &subject(), now()).unwrap();
    let claims = &accepted(&pyjwt(dir.path(), &jwks, &token))["claims"];
    assert_eq!(claims["eat_nonce"], URL_SAFE_NO_PAD.encode(nonce.0));
    let submodule = submodule_of(claims);
    assert_eq!(submodule["ear_status"], "warning");
    assert_eq!(
        submodule["ear_trustworthiness_vector"]["hardware"],
        ear::ar4si::UNRECOGNIZED
    );
    assert_eq!(submodule["prism_platform"], "none");
    assert!(
        submodule["prism_warnings"]
            .as_array()
            .expect("warnings listed")
            .contains(&Value::from(INSECURE_WARNING)),
        "{submodule}"
    );
    assert!(submodule.get("prism_failures").is_none(), "{submodule}");
}
