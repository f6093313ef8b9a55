//! Public keys for tests, as SubjectPublicKeyInfo PEM: a valid key of every supported kind, and in
//! [`refused`] keys that each break exactly one rule of [`PublicKey::parse`].
//!
//! The keys are the files in `domain/tests/fixtures/keys/`; `make_keys.py` there made them (real keys
//! with the `openssl` command line, broken ones by editing a real key's DER) and can make new ones.

use crate::values::PublicKey;

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!("../../tests/fixtures/keys/", $path))
    };
}

/// The example Ed25519 key of RFC 8410 (§10.1).
pub const ED25519: &str = fixture!("valid/ed25519.pem");
/// [`ED25519`] as base64 DER on one line, the other form a client may send.
pub const ED25519_BASE64_DER: &str = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (exponent 65537).
pub const RSA_2048: &str = fixture!("valid/rsa-2048.pem");
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072` (exponent 65537).
pub const RSA_3072: &str = fixture!("valid/rsa-3072.pem");
/// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`: an uncompressed point.
pub const P256: &str = fixture!("valid/p256.pem");
/// [`P256`] re-encoded by `openssl ec -pubin -pubout -conv_form compressed`.
pub const P256_COMPRESSED: &str = fixture!("valid/p256-compressed.pem");
/// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384`: an uncompressed point.
pub const P384: &str = fixture!("valid/p384.pem");
/// [`P384`] re-encoded by `openssl ec -pubin -pubout -conv_form compressed`.
pub const P384_COMPRESSED: &str = fixture!("valid/p384-compressed.pem");
/// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521`: an uncompressed point.
pub const P521: &str = fixture!("valid/p521.pem");
/// [`P521`] re-encoded by `openssl ec -pubin -pubout -conv_form compressed`.
pub const P521_COMPRESSED: &str = fixture!("valid/p521-compressed.pem");

/// Every valid key above, with a name for assertion messages.
pub const VALID: [(&str, &str); 9] = [
    ("Ed25519", ED25519),
    ("RSA 2048", RSA_2048),
    ("RSA 3072", RSA_3072),
    ("P-256", P256),
    ("P-256 compressed", P256_COMPRESSED),
    ("P-384", P384),
    ("P-384 compressed", P384_COMPRESSED),
    ("P-521", P521),
    ("P-521 compressed", P521_COMPRESSED),
];

/// The sample key of participants in [`super::samples`]: [`ED25519`], parsed.
pub fn ed25519() -> PublicKey {
    PublicKey::parse(ED25519).expect("the RFC 8410 example key is valid")
}

/// The private half of [`ED25519`]: the seed of RFC 8410's example private key (§10.3).
pub const ED25519_SEED: &str = "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842";

/// [`ED25519_SEED`] as the PKCS #8 PEM private key RFC 8410 prints (§10.3), as a participant's key
/// file holds it.
pub const ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";

/// `message` signed with [`ED25519_SEED`], as the sample participants sign.
pub fn sign_ed25519(message: &[u8]) -> Vec<u8> {
    let seed = hex::decode(ED25519_SEED).expect("hex");
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .expect("a 32-byte seed")
        .sign(message)
        .as_ref()
        .to_vec()
}

/// A PEM key as base64 DER: the armour lines dropped and the rest joined.
pub fn base64_der(pem: &str) -> String {
    pem.lines().filter(|line| !line.starts_with("-----")).collect()
}

/// Keys [`PublicKey::parse`] refuses, one broken rule each. "Crafted" means written by
/// `make_keys.py` as DER, from a real key with one thing changed.
pub mod refused {
    // --- the envelope --------------------------------------------------------------------------------

    /// `openssl genpkey -algorithm DSA` (2048-bit parameters): an algorithm Prism does not take.
    pub const DSA: &str = fixture!("refused/dsa.pem");
    /// `openssl genpkey -algorithm RSA-PSS`: an RSA key restricted to RSASSA-PSS (OID 1.2.840.113549.1.1.10).
    pub const RSA_PSS: &str = fixture!("refused/rsa-pss.pem");

    // --- RSA -------------------------------------------------------------------------------------

    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024`.
    pub const RSA_1024: &str = fixture!("refused/rsa-1024.pem");
    /// Crafted: a 16,392-bit odd modulus (the byte 0xc5 repeated), exponent 65537.
    pub const RSA_16392_BITS: &str = fixture!("refused/rsa-16392-bits.pem");
    /// Crafted: the modulus of a real 2048-bit key minus one, so even.
    pub const RSA_EVEN_MODULUS: &str = fixture!("refused/rsa-even-modulus.pem");
    /// Crafted: a real 2048-bit modulus without the 0x00 byte that keeps its DER INTEGER positive.
    pub const RSA_NEGATIVE_MODULUS: &str = fixture!("refused/rsa-negative-modulus.pem");
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3`.
    pub const RSA_EXPONENT_3: &str = fixture!("refused/rsa-exponent-3.pem");
    /// Crafted: a real 2048-bit modulus with exponent 65538.
    pub const RSA_EVEN_EXPONENT: &str = fixture!("refused/rsa-even-exponent.pem");
    /// Crafted: a real 2048-bit modulus with exponent 2^256 + 1 (odd, but 257 bits).
    pub const RSA_EXPONENT_OF_257_BITS: &str = fixture!("refused/rsa-exponent-2-256-plus-1.pem");
    /// Crafted: a valid RSAPublicKey followed by a DER NULL inside the key's BIT STRING.
    pub const RSA_TRAILING_BYTES: &str = fixture!("refused/rsa-trailing-bytes.pem");

    // --- EC: the curve -----------------------------------------------------------------------------

    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1`.
    pub const EC_SECP256K1: &str = fixture!("refused/ec-secp256k1.pem");
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:brainpoolP256r1`.
    pub const EC_BRAINPOOL_P256R1: &str = fixture!("refused/ec-brainpoolp256r1.pem");
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-224`.
    pub const EC_P224: &str = fixture!("refused/ec-p224.pem");
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:explicit`:
    /// P-256 spelled out as explicit parameters (specifiedCurve) instead of named.
    pub const EC_EXPLICIT_PARAMETERS: &str = fixture!("refused/ec-explicit-parameters.pem");
    /// Crafted: the point of [`super::P256`] with NULL (implicitCurve) as ECParameters.
    pub const EC_IMPLICIT_CURVE: &str = fixture!("refused/ec-implicit-curve.pem");
    /// Crafted: the point of [`super::P256`] with no ECParameters at all.
    pub const EC_NO_PARAMETERS: &str = fixture!("refused/ec-no-parameters.pem");

    // --- EC: the point (all named P-256 unless said otherwise) ---------------------------------------

    /// Crafted: the SEC 1 encoding of the point at infinity, the single byte 0x00.
    pub const EC_POINT_AT_INFINITY: &str = fixture!("refused/ec-p256-point-at-infinity.pem");
    /// Crafted: the point of [`super::P256`] with y + 1 for y.
    pub const EC_POINT_OFF_THE_CURVE: &str = fixture!("refused/ec-p256-off-curve.pem");
    /// Crafted: the point of [`super::P256`] with x replaced by the field prime p.
    pub const EC_P256_X_OUT_OF_RANGE: &str = fixture!("refused/ec-p256-x-out-of-range.pem");
    /// Crafted: the point of [`super::P384`] with x replaced by the field prime p.
    pub const EC_P384_X_OUT_OF_RANGE: &str = fixture!("refused/ec-p384-x-out-of-range.pem");
    /// Crafted: the point of [`super::P521`] with x replaced by the field prime p.
    pub const EC_P521_X_OUT_OF_RANGE: &str = fixture!("refused/ec-p521-x-out-of-range.pem");
    /// Crafted: a compressed point whose x (the smallest one) gives no square x³ − 3x + b mod p.
    pub const EC_COMPRESSED_X_WITHOUT_POINT: &str =
        fixture!("refused/ec-p256-compressed-x-without-point.pem");
    /// Crafted: the point of [`super::P256`] with its 0x04 tag changed to 0x05.
    pub const EC_UNKNOWN_POINT_ENCODING: &str = fixture!("refused/ec-p256-unknown-encoding.pem");
    /// Crafted: the 65-byte point of [`super::P256`] named as a P-384 key.
    pub const EC_P384_WITH_A_P256_POINT: &str = fixture!("refused/ec-p384-with-a-p256-point.pem");

    // --- Ed25519 and its relatives ---------------------------------------------------------------------

    /// Crafted: the first 31 bytes of [`super::ED25519`].
    pub const ED25519_31_BYTES: &str = fixture!("refused/ed25519-31-bytes.pem");
    /// Crafted: [`super::ED25519`] with a NULL algorithm parameter, which RFC 8410 forbids.
    pub const ED25519_WITH_PARAMETERS: &str = fixture!("refused/ed25519-with-parameters.pem");
    /// Crafted: [`super::ED25519`] with the BIT STRING's unused-bits count set to 1 (and the last bit
    /// cleared, as DER requires).
    pub const ED25519_UNUSED_BITS: &str = fixture!("refused/ed25519-unused-bits.pem");
    /// Crafted: y = 1, the encoding of the neutral element (order 1).
    pub const ED25519_SMALL_ORDER: &str = fixture!("refused/ed25519-small-order.pem");
    /// Crafted: the smallest y for which no x is on the curve (RFC 8032 §5.1.3 decoding fails).
    pub const ED25519_OFF_THE_CURVE: &str = fixture!("refused/ed25519-off-curve.pem");
    /// Crafted: y + p for the smallest valid y below 19: the same point, encoded with y ≥ p.
    pub const ED25519_NON_CANONICAL: &str = fixture!("refused/ed25519-non-canonical.pem");
    /// `openssl genpkey -algorithm ED448`.
    pub const ED448: &str = fixture!("refused/ed448.pem");
    /// `openssl genpkey -algorithm X25519`.
    pub const X25519: &str = fixture!("refused/x25519.pem");
    /// `openssl genpkey -algorithm X448`.
    pub const X448: &str = fixture!("refused/x448.pem");
}
