//! A participant's public key is checked down to its number or point: one test per rule, each with a
//! vector that breaks that rule only (see `prism_domain::testing::keys` for how each was made).

use prism_domain::testing::keys::{self, refused};
use prism_domain::values::{PublicKey, ValueError};

#[track_caller]
fn assert_refused(key: &str, reason: &str) {
    assert_eq!(
        PublicKey::parse(key),
        Err(ValueError::PublicKey(reason.into())),
        "for key\n{key}"
    );
}

const SUPPORTED: &str = "use RSA (2048 to 16384 bits), EC on P-256, P-384 or P-521, or Ed25519";
const NAME_THE_CURVE: &str = "name the curve instead (P-256, P-384 or P-521)";

// --- what is accepted ------------------------------------------------------------------------------

#[test]
fn a_valid_key_of_every_kind_is_kept_as_canonical_pem() {
    for (kind, pem) in keys::VALID {
        let key = PublicKey::parse(pem).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(key.as_pem(), pem, "{kind}");
    }
}

#[test]
fn base64_der_gives_the_same_key_as_pem() {
    for (kind, pem) in keys::VALID {
        let from_der = PublicKey::parse(&keys::base64_der(pem)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(from_der.as_pem(), pem, "{kind}");
    }
    assert_eq!(
        PublicKey::parse(keys::ED25519_BASE64_DER).unwrap(),
        keys::ed25519()
    );
}

#[test]
fn base64_der_may_be_wrapped_and_pem_may_be_surrounded_by_whitespace() {
    let wrapped = keys::base64_der(keys::P384)
        .as_bytes()
        .chunks(20)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(PublicKey::parse(&wrapped).unwrap().as_pem(), keys::P384);
    let padded = format!("\n  {}  \n", keys::RSA_2048);
    assert_eq!(PublicKey::parse(&padded).unwrap().as_pem(), keys::RSA_2048);
}

#[test]
fn a_key_travels_through_json_as_its_pem() {
    let json = serde_json::to_value(keys::ed25519()).unwrap();
    assert_eq!(json, keys::ED25519);
    assert!(serde_json::from_value::<PublicKey>(serde_json::json!(refused::EC_SECP256K1)).is_err());
}

// --- the envelope ------------------------------------------------------------------------------------

#[test]
fn garbage_is_refused() {
    assert_refused("hello", "neither PEM nor base64 DER");
    assert!(matches!(
        PublicKey::parse("aGVsbG8="),
        Err(ValueError::PublicKey(reason)) if reason.starts_with("not a DER SubjectPublicKeyInfo")
    ));
}

#[test]
fn a_pem_block_other_than_a_public_key_is_refused() {
    assert_refused(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "PEM label is `CERTIFICATE`; expected `PUBLIC KEY` (SubjectPublicKeyInfo)",
    );
    assert_refused(
        &keys::P256.replace("PUBLIC KEY", "RSA PUBLIC KEY"),
        "PEM label is `RSA PUBLIC KEY`; expected `PUBLIC KEY` (SubjectPublicKeyInfo)",
    );
}

#[test]
fn a_pem_block_ends_with_its_own_label() {
    assert_refused(
        &keys::P256.replace("-----END PUBLIC KEY-----", "-----END CERTIFICATE-----"),
        "the PEM block must end with `-----END PUBLIC KEY-----`",
    );
}

#[test]
fn text_after_the_pem_block_is_refused() {
    assert_refused(
        &format!("{}{}", keys::P256, keys::P384),
        "text after the PEM block",
    );
}

#[test]
fn bytes_after_the_key_are_refused() {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut der = base64.decode(keys::ED25519_BASE64_DER).unwrap();
    der.push(0);
    assert_refused(&base64.encode(der), "trailing bytes after the key");
}

#[test]
fn a_truncated_key_is_refused() {
    assert!(matches!(
        PublicKey::parse(&keys::ED25519_BASE64_DER[..36]),
        Err(ValueError::PublicKey(reason)) if reason.starts_with("not a DER SubjectPublicKeyInfo")
    ));
}

#[test]
fn a_key_is_a_whole_number_of_bytes() {
    assert_refused(
        refused::ED25519_UNUSED_BITS,
        "the key's BIT STRING declares 1 unused bits; a key is a whole number of bytes",
    );
}

#[test]
fn a_dsa_key_is_refused_by_name() {
    assert_refused(refused::DSA, &format!("DSA keys are not supported; {SUPPORTED}"));
}

#[test]
fn an_rsa_pss_key_is_refused_by_name() {
    assert_refused(
        refused::RSA_PSS,
        &format!("RSASSA-PSS keys are not supported; {SUPPORTED}"),
    );
}

// --- RSA -------------------------------------------------------------------------------------------

#[test]
fn an_rsa_modulus_of_1024_bits_is_refused() {
    assert_refused(
        refused::RSA_1024,
        "RSA modulus of 1024 bits; 2048 to 16384 bits are accepted",
    );
}

#[test]
fn an_rsa_modulus_above_16384_bits_is_refused() {
    assert_refused(
        refused::RSA_16392_BITS,
        "RSA modulus of 16392 bits; 2048 to 16384 bits are accepted",
    );
}

#[test]
fn an_even_rsa_modulus_is_refused() {
    assert_refused(
        refused::RSA_EVEN_MODULUS,
        "RSA modulus is even, so it is not a product of two odd primes",
    );
}

#[test]
fn a_negative_rsa_modulus_is_refused() {
    assert_refused(refused::RSA_NEGATIVE_MODULUS, "RSA modulus is negative");
}

#[test]
fn an_rsa_key_with_exponent_3_is_refused() {
    assert_refused(
        refused::RSA_EXPONENT_3,
        "RSA public exponent 3 is too small; it must be at least 65537",
    );
}

#[test]
fn an_even_rsa_exponent_is_refused() {
    assert_refused(
        refused::RSA_EVEN_EXPONENT,
        "RSA public exponent 65538 is even; it must be odd",
    );
}

#[test]
fn an_rsa_exponent_of_2_to_the_256_or_more_is_refused() {
    assert_refused(
        refused::RSA_EXPONENT_OF_257_BITS,
        "RSA public exponent of 257 bits is too large; it must be below 2^256",
    );
}

#[test]
fn bytes_after_the_rsa_public_key_are_refused() {
    assert_refused(
        refused::RSA_TRAILING_BYTES,
        "trailing bytes after the RSA public key",
    );
}

// --- EC: the curve ---------------------------------------------------------------------------------

#[test]
fn an_ec_key_on_secp256k1_is_refused() {
    assert_refused(
        refused::EC_SECP256K1,
        "EC curve secp256k1 is not supported; use P-256, P-384 or P-521",
    );
}

#[test]
fn an_ec_key_on_a_brainpool_curve_is_refused() {
    assert_refused(
        refused::EC_BRAINPOOL_P256R1,
        "EC curve brainpoolP256r1 is not supported; use P-256, P-384 or P-521",
    );
}

#[test]
fn an_ec_key_on_p224_is_refused() {
    assert_refused(
        refused::EC_P224,
        "EC curve P-224 is not supported; use P-256, P-384 or P-521",
    );
}

#[test]
fn an_ec_key_with_explicit_curve_parameters_is_refused() {
    assert_refused(
        refused::EC_EXPLICIT_PARAMETERS,
        &format!("the EC key spells out its curve parameters; {NAME_THE_CURVE}"),
    );
}

#[test]
fn an_ec_key_with_an_implicit_curve_is_refused() {
    assert_refused(
        refused::EC_IMPLICIT_CURVE,
        &format!("the EC key inherits its curve from elsewhere; {NAME_THE_CURVE}"),
    );
}

#[test]
fn an_ec_key_without_curve_parameters_is_refused() {
    assert_refused(
        refused::EC_NO_PARAMETERS,
        &format!("the EC key names no curve; {NAME_THE_CURVE}"),
    );
}

// --- EC: the point -----------------------------------------------------------------------------------

#[test]
fn an_ec_point_at_infinity_is_refused() {
    assert_refused(
        refused::EC_POINT_AT_INFINITY,
        "the EC point is the point at infinity",
    );
}

#[test]
fn an_ec_point_off_the_curve_is_refused() {
    assert_refused(refused::EC_POINT_OFF_THE_CURVE, "the EC point is not on P-256");
}

#[test]
fn an_ec_point_coordinate_must_be_below_the_field_prime() {
    for (key, curve) in [
        (refused::EC_P256_X_OUT_OF_RANGE, "P-256"),
        (refused::EC_P384_X_OUT_OF_RANGE, "P-384"),
        (refused::EC_P521_X_OUT_OF_RANGE, "P-521"),
    ] {
        assert_refused(
            key,
            &format!("an EC point coordinate is not below the {curve} field prime"),
        );
    }
}

#[test]
fn a_compressed_ec_point_needs_an_x_on_the_curve() {
    assert_refused(
        refused::EC_COMPRESSED_X_WITHOUT_POINT,
        "no P-256 point has this x coordinate",
    );
}

#[test]
fn an_ec_point_is_sec1_compressed_or_uncompressed() {
    assert_refused(
        refused::EC_UNKNOWN_POINT_ENCODING,
        "EC point encoding 0x05 is unknown; expected 0x02 or 0x03 (compressed) or 0x04 (uncompressed)",
    );
}

#[test]
fn an_ec_point_has_the_length_of_its_curve() {
    assert_refused(
        refused::EC_P384_WITH_A_P256_POINT,
        "a P-384 point is 49 bytes compressed or 97 uncompressed; this one is 65",
    );
}

// --- Ed25519 and its relatives -----------------------------------------------------------------------

#[test]
fn an_ed25519_key_is_32_bytes() {
    assert_refused(
        refused::ED25519_31_BYTES,
        "an Ed25519 key is 32 bytes; this one is 31",
    );
}

#[test]
fn an_ed25519_key_has_no_algorithm_parameters() {
    assert_refused(
        refused::ED25519_WITH_PARAMETERS,
        "an Ed25519 key has no algorithm parameters (RFC 8410)",
    );
}

#[test]
fn an_ed25519_point_off_the_curve_is_refused() {
    assert_refused(
        refused::ED25519_OFF_THE_CURVE,
        "the Ed25519 key is not a point on the curve",
    );
}

#[test]
fn a_non_canonical_ed25519_encoding_is_refused() {
    assert_refused(
        refused::ED25519_NON_CANONICAL,
        "the Ed25519 key is not canonically encoded (RFC 8032)",
    );
}

#[test]
fn an_ed25519_point_of_small_order_is_refused() {
    assert_refused(
        refused::ED25519_SMALL_ORDER,
        "the Ed25519 key is a point of small order",
    );
}

#[test]
fn an_ed448_key_is_refused_by_name() {
    assert_refused(
        refused::ED448,
        &format!("Ed448 keys are not supported; {SUPPORTED}"),
    );
}

#[test]
fn an_x25519_key_is_refused_by_name() {
    assert_refused(
        refused::X25519,
        &format!("X25519 keys are not supported; {SUPPORTED}"),
    );
}

#[test]
fn an_x448_key_is_refused_by_name() {
    assert_refused(
        refused::X448,
        &format!("X448 keys are not supported; {SUPPORTED}"),
    );
}
