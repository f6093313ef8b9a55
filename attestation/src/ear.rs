//! A verdict as an IETF RATS attestation result: an EAR (draft-ietf-rats-ear-04) in a JWT signed
//! with the platform's ES256 key, so participants and third-party tools consume it with any JWT
//! library and the platform's JWKS, without this code.
//!
//! Claims: `eat_profile` `tag:ietf.org,2026:rats/ear#04`, `iat`, `exp` (= `iat` + [`VALIDITY`]:
//! minutes, not hours), `ear_verifier_id`, `eat_nonce` (the platform nonce, base64url, when the
//! evidence was fresh), and one submodule per attested machine with `ear_status`,
//! `ear_trustworthiness_vector` (AR4SI) and `ear_appraisal_policy_ids` (the policy digest as
//! `urn:prism:policy:sha256:<hex>`). Prism adds `prism_manifest_id`, `prism_evidence_sha256`,
//! `prism_platform` and, for a refusal, `prism_failures`.
//!
//! Written by hand over `jsonwebtoken` rather than with Veraison's `ear` crate because that crate
//! requires OpenSSL (a system library this platform does not otherwise need); the claim names and
//! AR4SI values follow the draft and that crate's tables.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::binding::Binding;
use crate::verdict::{Outcome, Verdict};

/// The EAR profile this module writes.
pub const PROFILE: &str = "tag:ietf.org,2026:rats/ear#04";
/// How long a result is valid.
pub const VALIDITY: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// The developer named in `ear_verifier_id`.
pub const DEVELOPER: &str = "Prism control plane";

/// AR4SI trustworthiness claim values (draft-ietf-rats-ar4si, "Trustworthiness Claims").
pub mod ar4si {
    pub const NO_CLAIM: i8 = 0;
    pub const UNEXPECTED_EVIDENCE: i8 = 1;
    pub const AFFIRMING: i8 = 2;
    pub const CRYPTO_VALIDATION_FAILED: i8 = 99;
    /// instance-identity 96, configuration 96, executables 96, hardware 96.
    pub const CONTRAINDICATED: i8 = 96;
    /// instance-identity 97 "not recognized", hardware 97 "unrecognized".
    pub const UNRECOGNIZED: i8 = 97;
    /// runtime-opaque 96: memory visible to the host.
    pub const VISIBLE_MEMORY: i8 = 96;
}

/// Why a result could not be signed or read.
#[derive(Debug, thiserror::Error)]
pub enum EarError {
    #[error("the EAR signing key is not a P-256 PKCS#8 key, or no key of the JWK Set signed it")]
    Key,
    #[error("cannot sign or read the EAR: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// The platform's EAR signing key (ECDSA P-256).
pub struct EarSigner {
    key_id: String,
    encoding: EncodingKey,
    public_point: Vec<u8>,
}

impl std::fmt::Debug for EarSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What goes into a result besides the verdict.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The submodule name: the attested machine (a CVM id).
    pub name: String,
    /// The run's manifest id, when the evidence was taken for a run.
    pub manifest_id: Option<String>,
}

impl EarSigner {
    /// A new key; returns the signer and its PKCS#8 document, for the caller to keep sealed.
    pub fn generate() -> Result<(Self, Vec<u8>), EarError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| EarError::Key)?;
        let signer = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    /// The signer of a kept PKCS#8 key. Its key id is derived from the public key (RFC 7638
    /// thumbprint), so the same key always has the same id.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, EarError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|_| EarError::Key)?;
        let public_point = pair.public_key().as_ref().to_vec();
        let (x, y) = coordinates(&public_point);
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes());
        Ok(EarSigner {
            key_id: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            encoding: EncodingKey::from_ec_der(pkcs8),
            public_point,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let (x, y) = coordinates(&self.public_point);
        json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.key_id, "alg": "ES256", "use": "sig" })
    }

    /// The JWK Set relying parties verify results with.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }

    /// Signs `verdict` as an EAR JWT issued at `issued_at` (Unix seconds).
    pub fn sign(&self, verdict: &Verdict, subject: &Subject, issued_at: i64) -> Result<String, EarError> {
        let claims = claims(verdict, subject, issued_at);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

fn coordinates(point: &[u8]) -> (String, String) {
    // An uncompressed SEC1 point: 0x04 ‖ x (32) ‖ y (32).
    (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    )
}

/// The EAR claims of a verdict.
pub fn claims(verdict: &Verdict, subject: &Subject, issued_at: i64) -> Value {
    let (status, vector) = appraisal(verdict);
    let mut submodule = Map::new();
    submodule.insert("ear_status".into(), json!(status));
    submodule.insert("ear_trustworthiness_vector".into(), vector);
    submodule.insert(
        "ear_appraisal_policy_ids".into(),
        json!([format!("urn:prism:policy:sha256:{}", verdict.policy_sha256)]),
    );
    submodule.insert("prism_platform".into(), json!(verdict.platform));
    submodule.insert(
        "prism_evidence_sha256".into(),
        json!(verdict.evidence_sha256.to_string()),
    );
    if !verdict.failures.is_empty() {
        submodule.insert("prism_failures".into(), json!(verdict.failures));
    }
    if !verdict.warnings.is_empty() {
        submodule.insert("prism_warnings".into(), json!(verdict.warnings));
    }
    let mut submods = Map::new();
    submods.insert(subject.name.clone(), Value::Object(submodule));

    let mut claims = Map::new();
    claims.insert("eat_profile".into(), json!(PROFILE));
    claims.insert("iat".into(), json!(issued_at));
    claims.insert("exp".into(), json!(issued_at + VALIDITY.as_secs() as i64));
    claims.insert(
        "ear_verifier_id".into(),
        json!({ "developer": DEVELOPER, "build": concat!("prism ", env!("CARGO_PKG_VERSION")) }),
    );
    if let Binding::Fresh { nonce, .. } = &verdict.binding {
        claims.insert("eat_nonce".into(), json!(URL_SAFE_NO_PAD.encode(&nonce.0)));
    }
    if let Some(manifest_id) = &subject.manifest_id {
        claims.insert("prism_manifest_id".into(), json!(manifest_id));
    }
    claims.insert("submods".into(), Value::Object(submods));
    Value::Object(claims)
}

/// The AR4SI status and trustworthiness vector of a verdict.
fn appraisal(verdict: &Verdict) -> (&'static str, Value) {
    use ar4si::*;
    match verdict.outcome {
        Outcome::Verified => (
            "affirming",
            json!({
                "instance-identity": AFFIRMING,
                "configuration": AFFIRMING,
                "hardware": AFFIRMING,
                "runtime-opaque": AFFIRMING,
            }),
        ),
        Outcome::AcceptedInsecure => (
            "warning",
            json!({
                "instance-identity": UNRECOGNIZED,
                "configuration": AFFIRMING,
                "hardware": UNRECOGNIZED,
                "runtime-opaque": VISIBLE_MEMORY,
            }),
        ),
        Outcome::Refused => {
            let field = verdict
                .reason()
                .map(|failure| failure.field.as_str())
                .unwrap_or_default();
            let (claim, value) =
                if field.contains("signature") || field.contains("chain") || field.starts_with("vcek") {
                    ("hardware", CRYPTO_VALIDATION_FAILED)
                } else if matches!(field, "report_data" | "eat_nonce" | "nonce") {
                    ("instance-identity", UNEXPECTED_EVIDENCE)
                } else if field == "measurement" || field == "mr_td" || field.starts_with("rtmr") {
                    ("executables", CONTRAINDICATED)
                } else if matches!(field, "platform" | "evidence" | "evidence.platform" | "report") {
                    ("hardware", UNRECOGNIZED)
                } else {
                    ("configuration", CONTRAINDICATED)
                };
            let mut vector = Map::new();
            vector.insert(claim.into(), json!(value));
            ("contraindicated", Value::Object(vector))
        }
    }
}

/// A result as read back (for the platform's own checks; relying parties use their own library).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResult {
    pub eat_profile: String,
    pub iat: i64,
    pub exp: i64,
    pub submods: Map<String, Value>,
    #[serde(default)]
    pub eat_nonce: Option<String>,
}

/// Verifies an EAR JWT with a JWK (the platform's, from its JWKS) and reads its claims; an expired
/// result is refused.
pub fn verify(token: &str, jwk: &Value) -> Result<ReadResult, EarError> {
    decode(token, jwk, true)
}

/// Verifies an EAR JWT's signature with a JWK and reads its claims, whatever its expiry: for
/// re-checking a recorded result long after it was issued.
pub fn verify_signature(token: &str, jwk: &Value) -> Result<ReadResult, EarError> {
    decode(token, jwk, false)
}

/// The key of `jwks` (a JWK Set) that signed `token`, by its `kid`.
pub fn jwk_for<'a>(token: &str, jwks: &'a Value) -> Result<&'a Value, EarError> {
    let header = jsonwebtoken::decode_header(token)?;
    jwks["keys"]
        .as_array()
        .and_then(|keys| {
            keys.iter()
                .find(|key| key["kid"].as_str() == header.kid.as_deref())
        })
        .ok_or(EarError::Key)
}

fn decode(token: &str, jwk: &Value, check_expiry: bool) -> Result<ReadResult, EarError> {
    let component = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(EarError::Key);
    let key = DecodingKey::from_ec_components(component("x")?, component("y")?)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.validate_exp = check_expiry;
    validation.leeway = 0;
    Ok(jsonwebtoken::decode::<ReadResult>(token, &key, &validation)?.claims)
}
