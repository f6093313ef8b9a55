//! The Entity Attestation Token in which Cocos v0.10.2's attestation-service hands the agent its
//! evidence, encoded here and decoded back (a reference for verifiers of the platform).
//!
//! Upstream's layout (`ultravioletrs/cocos` at v0.10.2):
//! - `cmd/attestation-service/main.go:295-391` (`FetchAttestation`): the provider's binary report
//!   goes into `eat.NewEATClaims(report, nonce, platform)`, then `eat.EncodeToCBOR` (default
//!   `ATTESTATION_EAT_FORMAT=CBOR`, issuer `ATTESTATION_EAT_ISSUER=cocos-attestation-service`,
//!   `main.go:46-47`). The nonce is the request's vTPM nonce when it is non-empty, else its report
//!   data (`gpu.go:65-71`); the agent always sends its 32-byte vTPM nonce
//!   (`pkg/clients/grpc/attestation/client.go:69-73`), so `eat_nonce` is that nonce.
//! - `pkg/attestation/eat/cbor_encoder.go:31-68`: `iss` = issuer, `iat` = now, `exp` = now + 5 min
//!   (Unix seconds); the claims marshalled by fxamacker/cbor v2.9.0 with default options are the
//!   payload of a tagged COSE_Sign1 (go-cose v1.3.0, tag 18) whose protected header is
//!   `{1: -7}` (alg ES256) and unprotected header `{4: issuer bytes}` (kid); ES256 signature,
//!   64 bytes r‖s, over the `Signature1` structure with empty external AAD.
//! - `pkg/attestation/eat/eat.go:13-46`: the claims map. fxamacker/cbor without sorting writes the
//!   struct's fields in declaration order, integer keys for `keyasint` tags, the `json` name as a
//!   text key where there is no `cbor` tag, drops `omitempty` fields that are zero, writes a nil
//!   byte slice without `omitempty` as `null`, Go integers as CBOR integers and `[]byte` as byte
//!   strings. So: `1` iss (text), `2` sub, `6` iat, `4` exp (ints), `10` eat_nonce, `256` ueid
//!   (bytes), `258` oemid (int), `259` hwmodel (bytes), `260` hwversion, `270` swname,
//!   `271` swversion (text), `263` dbgstat, `262` intuse (ints), `265` measurements (bytes),
//!   `"platform_type"` (text), `266` submods, `"x-cocos-sevsnp"`, `"x-cocos-tdx"`,
//!   `"x-cocos-vtpm"`, `"x-cocos-gpu"` (maps), `"raw_report"` (bytes).
//! - `eat.go:146-210` and `extractor.go:27-88`: for SNP, `platform_type` is `"SNP"`, `dbgstat` 2,
//!   `intuse` 1, `ueid` = chip id, `oemid` 3704 (AMD), `hwmodel` = `"SEV-SNP-<version>"`,
//!   `measurements` = the measurement, and `"x-cocos-sevsnp"` (`eat.go:49-64`) a text-keyed map in
//!   declaration order: measurement, tcb (`"current:<n>,reported:<n>"`), platform_info, policy,
//!   then, when non-zero, family_id, image_id, vmpl, signature_algo, current_tcb, reported_tcb,
//!   chip_id, committed_tcb, launch_tcb, signature.
//!
//! Upstream does not convey the token's verification key: the key is generated at each start
//! (`main.go:230-236`, `jwt_encoder.go:97-100`, ECDSA P-256), the only header naming it is the kid
//! (the issuer string), and upstream's own consumers decode without checking the signature
//! (`pkg/atls/evidence_verifier.go:46`, `pkg/attestation/tdx/tdx.go:155`). The emulated agent
//! offers its public key outside the wire for tests ([`SigningKey::public_key`]).

use ciborium::Value;
use coset::{
    CborSerializable as _, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable as _, iana,
};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey,
};

use crate::sevsnp::Report;

/// Upstream's default issuer, also the COSE kid.
pub const DEFAULT_ISSUER: &str = "cocos-attestation-service";
/// Token lifetime: `exp` = `iat` + 5 minutes.
pub const VALIDITY_SECONDS: i64 = 5 * 60;
/// `eat.MinNonceLength`.
pub const MIN_NONCE_LENGTH: usize = 8;
/// The CBOR tag of a COSE_Sign1 message.
pub const COSE_SIGN1_TAG: u64 = 18;

/// Claim keys of upstream's `EATClaims` (CWT and EAT labels, RFC 8392 and RFC 9711).
pub mod label {
    pub const ISS: i64 = 1;
    pub const SUB: i64 = 2;
    pub const EXP: i64 = 4;
    pub const IAT: i64 = 6;
    pub const EAT_NONCE: i64 = 10;
    pub const UEID: i64 = 256;
    pub const OEMID: i64 = 258;
    pub const HWMODEL: i64 = 259;
    pub const HWVERSION: i64 = 260;
    pub const INTUSE: i64 = 262;
    pub const DBGSTAT: i64 = 263;
    pub const MEASUREMENTS: i64 = 265;
    pub const SUBMODS: i64 = 266;
    pub const SWNAME: i64 = 270;
    pub const SWVERSION: i64 = 271;
    /// Text keys: upstream's fields without a `cbor` tag take their `json` name.
    pub const PLATFORM_TYPE: &str = "platform_type";
    pub const SNP_EXTENSIONS: &str = "x-cocos-sevsnp";
    pub const RAW_REPORT: &str = "raw_report";
}

/// `platform_type` of SEV-SNP evidence (`eat.go:195-196`).
pub const PLATFORM_SNP: &str = "SNP";
/// `platform_type` of Intel TDX evidence (`eat.go:197-198`).
pub const PLATFORM_TDX: &str = "TDX";
/// `platform_type` of a machine without a TEE (`eat.go:205-206`).
pub const PLATFORM_NOCC: &str = "NoCC";
/// AMD's private enterprise number, `oemid` of SNP evidence.
pub const OEMID_AMD: i64 = 3704;
/// `eat.DebugDisabledSinceBoot`, upstream's fixed `dbgstat`.
pub const DEBUG_DISABLED_SINCE_BOOT: i64 = 2;
/// `eat.IntUseGenericFresh`, upstream's fixed `intuse`.
pub const INTUSE_GENERIC_FRESH: i64 = 1;

/// Why a token could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum EatError {
    #[error("eat_nonce must be at least {MIN_NONCE_LENGTH} bytes long")]
    ShortNonce,
    #[error("cannot make the ES256 signing key")]
    Key,
    #[error("cannot sign the token")]
    Sign,
    #[error("malformed COSE_Sign1: {0}")]
    Cose(#[from] coset::CoseError),
    #[error("malformed CBOR claims: {0}")]
    Cbor(String),
    #[error("the protected header's algorithm is not ES256")]
    Algorithm,
    #[error("the token has no payload")]
    NoPayload,
    #[error("claim {claim}: {reason}")]
    Claim { claim: String, reason: &'static str },
    #[error("the COSE signature does not verify with that key")]
    Signature,
}

/// `SNPExtensions` (`eat.go:49-64`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnpExtensions {
    pub measurement: Vec<u8>,
    pub tcb: String,
    pub platform_info: u64,
    pub policy: u64,
    pub family_id: Vec<u8>,
    pub image_id: Vec<u8>,
    pub vmpl: u64,
    pub signature_algo: u64,
    pub current_tcb: u64,
    pub reported_tcb: u64,
    pub chip_id: Vec<u8>,
    pub committed_tcb: u64,
    pub launch_tcb: u64,
    pub signature: Vec<u8>,
}

/// The claims of upstream's `EATClaims` that SNP and NoCC evidence carry. `None` stands for a
/// claim written as CBOR `null` (a nil byte slice upstream); an empty string or zero stands for an
/// absent `omitempty` claim. The TDX, vTPM, GPU and submodule claims are not modelled: a decoded
/// token's ones are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub issuer: String,
    pub subject: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub nonce: Option<Vec<u8>>,
    pub ueid: Option<Vec<u8>>,
    pub oemid: i64,
    pub hw_model: Vec<u8>,
    pub hw_version: String,
    pub sw_name: String,
    pub sw_version: String,
    pub debug_status: i64,
    pub int_use: i64,
    pub measurements: Option<Vec<u8>>,
    pub platform_type: String,
    pub snp: Option<SnpExtensions>,
    pub raw_report: Vec<u8>,
}

impl Claims {
    /// `eat.NewEATClaims(raw_report, nonce, SNP)`: `report` is the `Report` inside `raw_report`.
    pub fn snp(report: &Report, raw_report: Vec<u8>, nonce: Vec<u8>) -> Result<Self, EatError> {
        if nonce.len() < MIN_NONCE_LENGTH {
            return Err(EatError::ShortNonce);
        }
        Ok(Claims {
            nonce: Some(nonce),
            ueid: Some(report.chip_id.clone()),
            oemid: OEMID_AMD,
            hw_model: format!("SEV-SNP-{}", report.version).into_bytes(),
            debug_status: DEBUG_DISABLED_SINCE_BOOT,
            int_use: INTUSE_GENERIC_FRESH,
            measurements: Some(report.measurement.clone()),
            platform_type: PLATFORM_SNP.to_owned(),
            snp: Some(SnpExtensions {
                measurement: report.measurement.clone(),
                tcb: format!("current:{},reported:{}", report.current_tcb, report.reported_tcb),
                platform_info: report.platform_info,
                policy: report.policy,
                family_id: report.family_id.clone(),
                image_id: report.image_id.clone(),
                vmpl: u64::from(report.vmpl),
                signature_algo: u64::from(report.signature_algo),
                current_tcb: report.current_tcb,
                reported_tcb: report.reported_tcb,
                chip_id: report.chip_id.clone(),
                committed_tcb: report.committed_tcb,
                launch_tcb: report.launch_tcb,
                signature: report.signature.clone(),
            }),
            raw_report,
            ..Claims::default()
        })
    }

    /// The claims as upstream's fxamacker/cbor marshal writes them: fields in `EATClaims`'s order,
    /// `omitempty` ones left out when empty.
    pub fn to_cbor(&self) -> Value {
        let mut map = Entries::default();
        map.text(label::ISS, &self.issuer);
        map.text(label::SUB, &self.subject);
        map.int(label::IAT, self.issued_at);
        map.int(label::EXP, self.expires_at);
        map.nullable_bytes(label::EAT_NONCE, self.nonce.as_deref());
        map.nullable_bytes(label::UEID, self.ueid.as_deref());
        map.int(label::OEMID, self.oemid);
        map.bytes(label::HWMODEL, &self.hw_model);
        map.text(label::HWVERSION, &self.hw_version);
        map.text(label::SWNAME, &self.sw_name);
        map.text(label::SWVERSION, &self.sw_version);
        map.always(label::DBGSTAT.into(), self.debug_status.into());
        map.int(label::INTUSE, self.int_use);
        map.nullable_bytes(label::MEASUREMENTS, self.measurements.as_deref());
        map.always(
            Value::Text(label::PLATFORM_TYPE.to_owned()),
            Value::Text(self.platform_type.clone()),
        );
        if let Some(snp) = &self.snp {
            map.always(Value::Text(label::SNP_EXTENSIONS.to_owned()), snp.to_cbor());
        }
        if !self.raw_report.is_empty() {
            map.always(
                Value::Text(label::RAW_REPORT.to_owned()),
                Value::Bytes(self.raw_report.clone()),
            );
        }
        Value::Map(map.0)
    }

    /// Reads the claims from a decoded payload, checking each known claim's CBOR type and skipping
    /// claims not modelled here (as upstream's decoder skips unknown keys).
    pub fn from_cbor(value: &Value) -> Result<Self, EatError> {
        let Value::Map(entries) = value else {
            return Err(claim_error("payload", "is not a map"));
        };
        let mut claims = Claims::default();
        for (key, value) in entries {
            match key {
                Value::Integer(key) => match i64::try_from(*key).unwrap_or(i64::MIN) {
                    label::ISS => claims.issuer = text("iss", value)?,
                    label::SUB => claims.subject = text("sub", value)?,
                    label::IAT => claims.issued_at = int("iat", value)?,
                    label::EXP => claims.expires_at = int("exp", value)?,
                    label::EAT_NONCE => claims.nonce = nullable_bytes("eat_nonce", value)?,
                    label::UEID => claims.ueid = nullable_bytes("ueid", value)?,
                    label::OEMID => claims.oemid = int("oemid", value)?,
                    label::HWMODEL => claims.hw_model = nullable_bytes("hwmodel", value)?.unwrap_or_default(),
                    label::HWVERSION => claims.hw_version = text("hwversion", value)?,
                    label::SWNAME => claims.sw_name = text("swname", value)?,
                    label::SWVERSION => claims.sw_version = text("swversion", value)?,
                    label::DBGSTAT => claims.debug_status = int("dbgstat", value)?,
                    label::INTUSE => claims.int_use = int("intuse", value)?,
                    label::MEASUREMENTS => claims.measurements = nullable_bytes("measurements", value)?,
                    _ => {}
                },
                Value::Text(key) => match key.as_str() {
                    label::PLATFORM_TYPE => claims.platform_type = text(label::PLATFORM_TYPE, value)?,
                    label::SNP_EXTENSIONS => claims.snp = Some(SnpExtensions::from_cbor(value)?),
                    label::RAW_REPORT => {
                        claims.raw_report = nullable_bytes(label::RAW_REPORT, value)?.unwrap_or_default()
                    }
                    _ => {}
                },
                _ => {
                    return Err(claim_error(
                        "payload",
                        "has a key that is neither an integer nor text",
                    ));
                }
            }
        }
        Ok(claims)
    }
}

impl SnpExtensions {
    fn to_cbor(&self) -> Value {
        let mut map = Entries::default();
        map.always("measurement".into(), Value::Bytes(self.measurement.clone()));
        map.always("tcb".into(), Value::Text(self.tcb.clone()));
        map.always("platform_info".into(), self.platform_info.into());
        map.always("policy".into(), self.policy.into());
        map.bytes("family_id", &self.family_id);
        map.bytes("image_id", &self.image_id);
        map.uint("vmpl", self.vmpl);
        map.uint("signature_algo", self.signature_algo);
        map.uint("current_tcb", self.current_tcb);
        map.uint("reported_tcb", self.reported_tcb);
        map.bytes("chip_id", &self.chip_id);
        map.uint("committed_tcb", self.committed_tcb);
        map.uint("launch_tcb", self.launch_tcb);
        map.bytes("signature", &self.signature);
        Value::Map(map.0)
    }

    fn from_cbor(value: &Value) -> Result<Self, EatError> {
        let Value::Map(entries) = value else {
            return Err(claim_error(label::SNP_EXTENSIONS, "is not a map"));
        };
        let mut snp = SnpExtensions::default();
        for (key, value) in entries {
            let Value::Text(key) = key else {
                return Err(claim_error(label::SNP_EXTENSIONS, "has a key that is not text"));
            };
            let bytes = |name| nullable_bytes(name, value).map(Option::unwrap_or_default);
            match key.as_str() {
                "measurement" => snp.measurement = bytes("measurement")?,
                "tcb" => snp.tcb = text("tcb", value)?,
                "platform_info" => snp.platform_info = uint("platform_info", value)?,
                "policy" => snp.policy = uint("policy", value)?,
                "family_id" => snp.family_id = bytes("family_id")?,
                "image_id" => snp.image_id = bytes("image_id")?,
                "vmpl" => snp.vmpl = uint("vmpl", value)?,
                "signature_algo" => snp.signature_algo = uint("signature_algo", value)?,
                "current_tcb" => snp.current_tcb = uint("current_tcb", value)?,
                "reported_tcb" => snp.reported_tcb = uint("reported_tcb", value)?,
                "chip_id" => snp.chip_id = bytes("chip_id")?,
                "committed_tcb" => snp.committed_tcb = uint("committed_tcb", value)?,
                "launch_tcb" => snp.launch_tcb = uint("launch_tcb", value)?,
                "signature" => snp.signature = bytes("signature")?,
                _ => {}
            }
        }
        Ok(snp)
    }
}

/// Map entries in insertion order, with fxamacker/cbor's `omitempty` rule per kind.
#[derive(Default)]
struct Entries(Vec<(Value, Value)>);

impl Entries {
    fn always(&mut self, key: Value, value: Value) {
        self.0.push((key, value));
    }
    fn text(&mut self, key: i64, value: &str) {
        if !value.is_empty() {
            self.always(key.into(), Value::Text(value.to_owned()));
        }
    }
    fn int(&mut self, key: i64, value: i64) {
        if value != 0 {
            self.always(key.into(), value.into());
        }
    }
    fn uint(&mut self, key: &str, value: u64) {
        if value != 0 {
            self.always(key.into(), value.into());
        }
    }
    fn bytes<K: Into<Value>>(&mut self, key: K, value: &[u8]) {
        if !value.is_empty() {
            self.always(key.into(), Value::Bytes(value.to_vec()));
        }
    }
    /// A byte-slice claim without `omitempty`: nil is written as `null`.
    fn nullable_bytes(&mut self, key: i64, value: Option<&[u8]>) {
        let value = value.map_or(Value::Null, |bytes| Value::Bytes(bytes.to_vec()));
        self.always(key.into(), value);
    }
}

fn claim_error(claim: &str, reason: &'static str) -> EatError {
    EatError::Claim {
        claim: claim.to_owned(),
        reason,
    }
}

fn text(claim: &str, value: &Value) -> Result<String, EatError> {
    match value {
        Value::Text(text) => Ok(text.clone()),
        _ => Err(claim_error(claim, "is not a text string")),
    }
}

fn int(claim: &str, value: &Value) -> Result<i64, EatError> {
    match value {
        Value::Integer(int) => i64::try_from(*int).map_err(|_| claim_error(claim, "is out of range")),
        _ => Err(claim_error(claim, "is not an integer")),
    }
}

fn uint(claim: &str, value: &Value) -> Result<u64, EatError> {
    match value {
        Value::Integer(int) => u64::try_from(*int).map_err(|_| claim_error(claim, "is out of range")),
        _ => Err(claim_error(claim, "is not an unsigned integer")),
    }
}

fn nullable_bytes(claim: &str, value: &Value) -> Result<Option<Vec<u8>>, EatError> {
    match value {
        Value::Bytes(bytes) => Ok(Some(bytes.clone())),
        Value::Null => Ok(None),
        _ => Err(claim_error(claim, "is not a byte string")),
    }
}

/// An ES256 (ECDSA P-256, SHA-256) key, as upstream generates one at each start.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// DER prefix of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1) before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl SigningKey {
    pub fn generate() -> Result<Self, EatError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| EatError::Key)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| EatError::Key)?;
        Ok(SigningKey { pair, rng })
    }

    /// The public key as an uncompressed SEC1 point (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> String {
        use base64::Engine as _;
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.public_key());
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EatError> {
        let signature = self.pair.sign(&self.rng, message).map_err(|_| EatError::Sign)?;
        Ok(signature.as_ref().to_vec())
    }
}

/// `eat.EncodeToCBOR`: stamps `iss`, `iat` = `now` and `exp` = `now` + 5 minutes, and signs the
/// claims into a tagged COSE_Sign1 with upstream's headers.
pub fn encode(mut claims: Claims, key: &SigningKey, issuer: &str, now: i64) -> Result<Vec<u8>, EatError> {
    claims.issuer = issuer.to_owned();
    claims.issued_at = now;
    claims.expires_at = now + VALIDITY_SECONDS;
    let mut payload = Vec::new();
    ciborium::into_writer(&claims.to_cbor(), &mut payload).map_err(|e| EatError::Cbor(e.to_string()))?;
    let sign1 = CoseSign1Builder::new()
        .protected(HeaderBuilder::new().algorithm(iana::Algorithm::ES256).build())
        .unprotected(HeaderBuilder::new().key_id(issuer.as_bytes().to_vec()).build())
        .payload(payload)
        .try_create_signature(&[], |tbs| key.sign(tbs))?
        .build();
    Ok(sign1.to_tagged_vec()?)
}

/// A decoded token: its claims and key id, with the signed message kept for [`Token::verify`].
#[derive(Debug, Clone)]
pub struct Token {
    pub claims: Claims,
    /// The unprotected header's kid (upstream: the issuer's bytes).
    pub key_id: Vec<u8>,
    sign1: CoseSign1,
}

/// Decodes a CBOR EAT as upstream's `eat.DecodeCBOR` reads it — tagged COSE_Sign1, ES256, claims
/// payload — without checking the signature, since upstream conveys no key; see [`Token::verify`].
pub fn decode(token: &[u8]) -> Result<Token, EatError> {
    let sign1 = CoseSign1::from_tagged_slice(token)?;
    if sign1.protected.header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) {
        return Err(EatError::Algorithm);
    }
    let payload = sign1.payload.as_deref().ok_or(EatError::NoPayload)?;
    let value: Value = ciborium::from_reader(payload).map_err(|e| EatError::Cbor(e.to_string()))?;
    Ok(Token {
        claims: Claims::from_cbor(&value)?,
        key_id: sign1.unprotected.key_id.clone(),
        sign1,
    })
}

impl Token {
    /// Checks the ES256 signature with a P-256 public key (uncompressed SEC1 point).
    pub fn verify(&self, public_key: &[u8]) -> Result<(), EatError> {
        self.sign1.verify_signature(&[], |signature, data| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
                .verify(data, signature)
                .map_err(|_| EatError::Signature)
        })
    }

    /// The serialised protected header, as signed.
    pub fn protected_header(&self) -> Result<Vec<u8>, EatError> {
        Ok(self.sign1.protected.clone().to_vec()?)
    }
}
