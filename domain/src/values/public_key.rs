//! A participant's public key: an X.509 SubjectPublicKeyInfo holding an RSA, EC (P-256, P-384, P-521) or
//! Ed25519 key, checked down to the number or point it carries, so a key Prism accepts is one that a
//! verifier will accept too.

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use sha2::{Digest as _, Sha256};

use super::ValueError;

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";
const SUPPORTED: &str = "use RSA (2048 to 16384 bits), EC on P-256, P-384 or P-521, or Ed25519";

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";

/// Key algorithms refused by name, so the message says what was sent.
const REFUSED_ALGORITHMS: &[(&str, &str)] = &[
    ("1.3.101.113", "Ed448"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    ("1.2.840.10040.4.1", "DSA"),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS"),
    ("1.2.840.113549.1.1.7", "RSAES-OAEP"),
    ("1.2.840.10046.2.1", "Diffie-Hellman"),
    ("1.2.840.113549.1.3.1", "Diffie-Hellman"),
    ("1.2.643.2.2.19", "GOST R 34.10-2001"),
    ("1.2.643.7.1.1.1.1", "GOST R 34.10-2012"),
    ("1.2.643.7.1.1.1.2", "GOST R 34.10-2012"),
];

/// Named curves refused by name (SEC 2, RFC 5639, GB/T 32918).
const REFUSED_CURVES: &[(&str, &str)] = &[
    ("1.3.132.0.10", "secp256k1"),
    ("1.2.840.10045.3.1.1", "P-192"),
    ("1.3.132.0.33", "P-224"),
    ("1.3.132.0.31", "secp192k1"),
    ("1.3.132.0.32", "secp224k1"),
    ("1.3.36.3.3.2.8.1.1.1", "brainpoolP160r1"),
    ("1.3.36.3.3.2.8.1.1.2", "brainpoolP160t1"),
    ("1.3.36.3.3.2.8.1.1.3", "brainpoolP192r1"),
    ("1.3.36.3.3.2.8.1.1.4", "brainpoolP192t1"),
    ("1.3.36.3.3.2.8.1.1.5", "brainpoolP224r1"),
    ("1.3.36.3.3.2.8.1.1.6", "brainpoolP224t1"),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
    ("1.3.36.3.3.2.8.1.1.8", "brainpoolP256t1"),
    ("1.3.36.3.3.2.8.1.1.9", "brainpoolP320r1"),
    ("1.3.36.3.3.2.8.1.1.10", "brainpoolP320t1"),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1"),
    ("1.3.36.3.3.2.8.1.1.12", "brainpoolP384t1"),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1"),
    ("1.3.36.3.3.2.8.1.1.14", "brainpoolP512t1"),
    ("1.2.156.10197.1.301", "SM2"),
];

/// RSA limits: FIPS 186-5 sets the floors and the exponent's ceiling (2^16 < e < 2^256, e odd); the
/// modulus ceiling keeps a verification affordable.
const RSA_MODULUS_BITS: std::ops::RangeInclusive<usize> = 2048..=16384;
const RSA_EXPONENT_MIN: u64 = 65537;
const RSA_EXPONENT_MAX_BITS: usize = 256;

/// A participant's public key (X.509 SubjectPublicKeyInfo: RSA, EC or Ed25519), accepted as PEM
/// (`-----BEGIN PUBLIC KEY-----`) or as base64 DER, and kept as canonical PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct PublicKey(String);

impl PublicKey {
    /// Accepts:
    /// * RSA (`rsaEncryption`): a positive, odd modulus of 2048 to 16384 bits, and an odd public
    ///   exponent of at least 65537 and below 2^256;
    /// * EC (`id-ecPublicKey`) on a curve named by OID — P-256, P-384 or P-521 — with a point on that
    ///   curve other than the point at infinity, compressed or uncompressed (SEC 1);
    /// * Ed25519: a canonically encoded curve point that is not of small order (RFC 8032, RFC 8410).
    ///
    /// Anything else, and any byte after the key, is refused with a message saying which rule failed.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let der = decode(value.trim())?;
        let (rest, spki) = SubjectPublicKeyInfo::from_der(&der)
            .map_err(|e| invalid(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        if !rest.is_empty() {
            return Err(invalid("trailing bytes after the key"));
        }
        check(&spki).map_err(ValueError::PublicKey)?;
        Ok(Self(to_pem(&der)))
    }

    pub fn as_pem(&self) -> &str {
        &self.0
    }

    /// Whether this is an Ed25519 key.
    pub fn is_ed25519(&self) -> bool {
        let der = self.der();
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der).expect("a parsed key is a SubjectPublicKeyInfo");
        spki.algorithm.algorithm.to_id_string() == ED25519
    }

    /// The SubjectPublicKeyInfo, DER (what Cocos's run request carries as a user key).
    pub fn der(&self) -> Vec<u8> {
        decode(self.0.trim()).expect("a parsed key is kept as valid PEM")
    }

    /// Checks `signature` over `message` made with this key's private half, in the schemes Cocos
    /// uses for its participants: RSA PKCS #1 v1.5 with SHA-256; ECDSA with SHA-256 whatever the
    /// curve, the signature ASN.1 DER (as `openssl dgst -sha256 -sign` writes it); Ed25519 over the
    /// message itself.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let der = self.der();
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der).expect("a parsed key is a SubjectPublicKeyInfo");
        let key = &spki.subject_public_key.data;
        let valid = match spki.algorithm.algorithm.to_id_string().as_str() {
            RSA_ENCRYPTION => {
                // ring verifies moduli of 2048 to 8192 bits with exponents below 2^33 — every key an
                // RSA implementation in common use makes. A larger key registered here is refused
                // by name rather than reported as a bad signature.
                let rsa = RSAPublicKey::from_der(key).expect("a parsed RSA key").1;
                let bits = bit_length(magnitude("", rsa.modulus).unwrap_or_default());
                let exponent = to_u64(magnitude("", rsa.exponent).unwrap_or_default());
                if bits > 8192 || exponent.is_none_or(|e| e >= 1 << 33) {
                    return Err(SignatureError::Unsupported(
                        "RSA keys over 8192 bits or with a public exponent of 2^33 or more cannot sign",
                    ));
                }
                ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
                    .verify(message, signature)
                    .is_ok()
            }
            EC_PUBLIC_KEY => {
                let curve = named_curve(spki.algorithm.parameters.as_ref()).expect("a parsed EC key");
                curve.verifies(key, &Sha256::digest(message), signature)
            }
            ED25519 => ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                .verify(message, signature)
                .is_ok(),
            _ => unreachable!("a parsed key is RSA, EC or Ed25519"),
        };
        if valid {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature does not verify with the participant's registered public key")]
    Invalid,
    #[error("{0}")]
    Unsupported(&'static str),
}

fn invalid(reason: impl Into<String>) -> ValueError {
    ValueError::PublicKey(reason.into())
}

fn decode(text: &str) -> Result<Vec<u8>, ValueError> {
    if !text.starts_with("-----BEGIN") {
        let compact: String = text.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| invalid("neither PEM nor base64 DER"));
    }
    let (rest, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes())
        .map_err(|e| invalid(format!("not valid PEM: {e}")))?;
    if pem.label != "PUBLIC KEY" {
        return Err(invalid(format!(
            "PEM label is `{}`; expected `PUBLIC KEY` (SubjectPublicKeyInfo)",
            pem.label
        )));
    }
    // The PEM reader stops at the first `-----END ` line: what follows, or a different label on that
    // line, would otherwise pass unseen.
    if !rest.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("text after the PEM block"));
    }
    if !text.ends_with(PEM_END) {
        return Err(invalid(format!("the PEM block must end with `{PEM_END}`")));
    }
    Ok(pem.contents)
}

fn check(spki: &SubjectPublicKeyInfo<'_>) -> Result<(), String> {
    let key = &spki.subject_public_key;
    if key.unused_bits != 0 {
        return Err(format!(
            "the key's BIT STRING declares {} unused bits; a key is a whole number of bytes",
            key.unused_bits
        ));
    }
    let parameters = spki.algorithm.parameters.as_ref();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        RSA_ENCRYPTION => check_rsa(&key.data),
        EC_PUBLIC_KEY => check_ec(named_curve(parameters)?, &key.data),
        ED25519 if parameters.is_some() => {
            Err("an Ed25519 key has no algorithm parameters (RFC 8410)".into())
        }
        ED25519 => check_ed25519(&key.data),
        oid => match REFUSED_ALGORITHMS.iter().find(|(known, _)| *known == oid) {
            Some((_, name)) => Err(format!("{name} keys are not supported; {SUPPORTED}")),
            None => Err(format!("key algorithm {oid} is not supported; {SUPPORTED}")),
        },
    }
}

// --- RSA ------------------------------------------------------------------------------------------

fn check_rsa(key: &[u8]) -> Result<(), String> {
    let (rest, rsa) = RSAPublicKey::from_der(key)
        .map_err(|_| "the RSA key is not a PKCS #1 RSAPublicKey (modulus, exponent)".to_owned())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the RSA public key".into());
    }
    let modulus = magnitude("RSA modulus", rsa.modulus)?;
    let bits = bit_length(modulus);
    if !RSA_MODULUS_BITS.contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits; {} to {} bits are accepted",
            RSA_MODULUS_BITS.start(),
            RSA_MODULUS_BITS.end()
        ));
    }
    if is_even(modulus) {
        return Err("RSA modulus is even, so it is not a product of two odd primes".into());
    }
    let exponent = magnitude("RSA public exponent", rsa.exponent)?;
    let describe = || match to_u64(exponent) {
        Some(e) => format!("RSA public exponent {e}"),
        None => format!("RSA public exponent of {} bits", bit_length(exponent)),
    };
    if is_even(exponent) {
        return Err(format!("{} is even; it must be odd", describe()));
    }
    if to_u64(exponent).is_some_and(|e| e < RSA_EXPONENT_MIN) {
        return Err(format!(
            "{} is too small; it must be at least {RSA_EXPONENT_MIN}",
            describe()
        ));
    }
    if bit_length(exponent) > RSA_EXPONENT_MAX_BITS {
        return Err(format!(
            "{} is too large; it must be below 2^{RSA_EXPONENT_MAX_BITS}",
            describe()
        ));
    }
    Ok(())
}

/// The big-endian magnitude of a DER INTEGER's content, without leading zero bytes; refuses negatives.
fn magnitude<'a>(what: &str, integer: &'a [u8]) -> Result<&'a [u8], String> {
    if integer.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(format!("{what} is negative"));
    }
    let start = integer.iter().position(|&b| b != 0).unwrap_or(integer.len());
    Ok(&integer[start..])
}

fn bit_length(magnitude: &[u8]) -> usize {
    match magnitude.first() {
        None => 0,
        Some(first) => magnitude.len() * 8 - first.leading_zeros() as usize,
    }
}

fn is_even(magnitude: &[u8]) -> bool {
    magnitude.last().is_none_or(|b| b & 1 == 0)
}

fn to_u64(magnitude: &[u8]) -> Option<u64> {
    (magnitude.len() <= 8).then(|| magnitude.iter().fold(0, |n, &b| (n << 8) | u64::from(b)))
}

// --- EC -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.840.10045.3.1.7" => Some(Self::P256),
            "1.3.132.0.34" => Some(Self::P384),
            "1.3.132.0.35" => Some(Self::P521),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// The field prime p (FIPS 186-5, SEC 2) as lowercase hex, one coordinate long.
    fn prime_hex(self) -> &'static str {
        match self {
            // 2^256 − 2^224 + 2^192 + 2^96 − 1
            Self::P256 => "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
            // 2^384 − 2^128 − 2^96 + 2^32 − 1
            Self::P384 => concat!(
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "fffffffeffffffff0000000000000000ffffffff"
            ),
            // 2^521 − 1
            Self::P521 => concat!(
                "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            ),
        }
    }

    fn coordinate_len(self) -> usize {
        self.prime_hex().len() / 2
    }

    /// Whether `signature` (ASN.1 DER) is an ECDSA signature of the SHA-256 digest `prehash` by the key
    /// `sec1`.
    fn verifies(self, sec1: &[u8], prehash: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match self {
            Self::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1).is_ok_and(|key| {
                p256::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok())
            }),
            Self::P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1).is_ok_and(|key| {
                p384::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| key.verify_prehash(prehash, &s).is_ok())
            }),
            Self::P521 => p521::ecdsa::VerifyingKey::from_sec1_bytes(sec1).is_ok_and(|key| {
                // The ecdsa crate refuses a digest shorter than half the field (66 bytes for
                // P-521); zeros in front leave the number it stands for — all ECDSA signs — as is.
                let mut widened = [0u8; 66];
                widened[66 - prehash.len()..].copy_from_slice(prehash);
                p521::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|s| key.verify_prehash(&widened, &s).is_ok())
            }),
        }
    }

    /// Whether the SEC 1 encoding is a point of this curve's group. Every curve here has cofactor 1,
    /// so a point on the curve other than the point at infinity is in the group.
    fn has_point(self, sec1: &[u8]) -> bool {
        match self {
            Self::P256 => p256::PublicKey::from_sec1_bytes(sec1).is_ok(),
            Self::P384 => p384::PublicKey::from_sec1_bytes(sec1).is_ok(),
            Self::P521 => p521::PublicKey::from_sec1_bytes(sec1).is_ok(),
        }
    }
}

/// The curve of an `id-ecPublicKey` key: ECParameters must be a namedCurve (RFC 5480), one of ours.
fn named_curve(parameters: Option<&x509_parser::der_parser::asn1_rs::Any<'_>>) -> Result<Curve, String> {
    use x509_parser::der_parser::asn1_rs::Tag;

    const NAME_IT: &str = "name the curve instead (P-256, P-384 or P-521)";
    let Some(parameters) = parameters else {
        return Err(format!("the EC key names no curve; {NAME_IT}"));
    };
    match parameters.tag() {
        Tag::Sequence => return Err(format!("the EC key spells out its curve parameters; {NAME_IT}")),
        Tag::Null => return Err(format!("the EC key inherits its curve from elsewhere; {NAME_IT}")),
        _ => {}
    }
    let oid = parameters
        .as_oid()
        .map_err(|_| "the EC key's curve is neither a named curve nor parameters".to_owned())?
        .to_id_string();
    if let Some(curve) = Curve::from_oid(&oid) {
        return Ok(curve);
    }
    let name = REFUSED_CURVES
        .iter()
        .find(|(known, _)| *known == oid)
        .map_or(oid.as_str(), |(_, name)| name);
    Err(format!(
        "EC curve {name} is not supported; use P-256, P-384 or P-521"
    ))
}

fn check_ec(curve: Curve, point: &[u8]) -> Result<(), String> {
    let name = curve.name();
    let len = curve.coordinate_len();
    let (x, y) = match point {
        [] => return Err("the EC point is empty".into()),
        [0x00] => return Err("the EC point is the point at infinity".into()),
        [0x02 | 0x03, x @ ..] if x.len() == len => (x, None),
        [0x04, xy @ ..] if xy.len() == 2 * len => {
            let (x, y) = xy.split_at(len);
            (x, Some(y))
        }
        [0x02..=0x04, ..] => {
            return Err(format!(
                "a {name} point is {} bytes compressed or {} uncompressed; this one is {}",
                1 + len,
                1 + 2 * len,
                point.len()
            ));
        }
        [tag, ..] => {
            return Err(format!(
                "EC point encoding 0x{tag:02x} is unknown; expected 0x02 or 0x03 (compressed) or 0x04 \
                 (uncompressed)"
            ));
        }
    };
    // Equal-length lowercase hex compares like the numbers it spells.
    let in_field = |coordinate: &[u8]| hex::encode(coordinate).as_str() < curve.prime_hex();
    if !in_field(x) || y.is_some_and(|y| !in_field(y)) {
        return Err(format!(
            "an EC point coordinate is not below the {name} field prime"
        ));
    }
    if !curve.has_point(point) {
        return Err(match y {
            None => format!("no {name} point has this x coordinate"),
            Some(_) => format!("the EC point is not on {name}"),
        });
    }
    Ok(())
}

// --- Ed25519 --------------------------------------------------------------------------------------

fn check_ed25519(key: &[u8]) -> Result<(), String> {
    use curve25519_dalek::edwards::CompressedEdwardsY;

    let encoded = CompressedEdwardsY::from_slice(key)
        .map_err(|_| format!("an Ed25519 key is 32 bytes; this one is {}", key.len()))?;
    let point = encoded
        .decompress()
        .ok_or_else(|| "the Ed25519 key is not a point on the curve".to_owned())?;
    // Decompression reduces y modulo p and ignores a sign bit on x = 0; RFC 8032 (§5.1.3) refuses
    // both, and re-encoding the point shows either.
    if point.compress() != encoded {
        return Err("the Ed25519 key is not canonically encoded (RFC 8032)".into());
    }
    // Under one of the 8 points of small order, signatures can be forged without any private key;
    // no real key is one of them.
    if point.is_small_order() {
        return Err("the Ed25519 key is a point of small order".into());
    }
    Ok(())
}

fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("{PEM_BEGIN}\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

impl TryFrom<String> for PublicKey {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> Self {
        k.0
    }
}
