//! Participant authentication, as upstream's `agent/auth/auth.go:49-160`.
//!
//! A participant sends metadata `signature` = base64 of its signature over the *role string* of the
//! method it calls (`algorithm-provider` for Algo, `data-provider` for Data, `consumer` for Result),
//! made with the key registered for it in the run request (DER SubjectPublicKeyInfo). RSA is
//! PKCS#1 v1.5 over SHA-256, ECDSA is ASN.1 over SHA-256 (P-256, P-384), Ed25519 signs the raw
//! bytes. Upstream never reads the `user-id` metadata cocos-cli sends; neither does this. The
//! signature does not change between calls, so it can be replayed — exactly as upstream.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The roles of `agent/auth/auth.go:25-31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    AlgorithmProvider,
    DataProvider,
    Consumer,
}

impl Role {
    pub fn wire_name(self) -> &'static str {
        match self {
            Role::AlgorithmProvider => "algorithm-provider",
            Role::DataProvider => "data-provider",
            Role::Consumer => "consumer",
        }
    }
}

/// `ErrSignatureVerificationFailed`.
pub const SIGNATURE_VERIFICATION_FAILED: &str = "signature verification failed";
/// What upstream answers when `signature` is missing or repeated: a status error wrapped in
/// `ErrInvalidMetadata` by magistrala's `errors.Wrap`, then put in an Unauthenticated status.
pub const INVALID_METADATA: &str =
    "rpc error: code = Unauthenticated desc = invalid metadata : invalid metadata";

/// A participant's public key, ready to verify.
#[derive(Debug, Clone)]
pub struct ParticipantKey {
    algorithm: &'static dyn VerificationAlgorithm,
    key: Vec<u8>,
}

/// Why a registered key is unusable (upstream refuses the run request then).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("x509: malformed public key: {0}")]
    Malformed(String),
    #[error("unsupported public key type")]
    Unsupported,
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

impl ParticipantKey {
    /// Parses a DER SubjectPublicKeyInfo, as Go's `x509.ParsePKIXPublicKey`.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let key = spki.subject_public_key.data.to_vec();
        let algorithm: &'static dyn VerificationAlgorithm =
            match spki.algorithm.algorithm.to_id_string().as_str() {
                OID_RSA => &signature::RSA_PKCS1_2048_8192_SHA256,
                OID_ED25519 => &signature::ED25519,
                OID_EC => {
                    let curve = spki
                        .algorithm
                        .parameters
                        .as_ref()
                        .and_then(|p| p.as_oid().ok())
                        .map(|oid| oid.to_id_string());
                    match curve.as_deref() {
                        Some(OID_P256) => &signature::ECDSA_P256_SHA256_ASN1,
                        Some(OID_P384) => &signature::ECDSA_P384_SHA256_ASN1,
                        // Go also reads P-224 and P-521 keys; ring verifies neither.
                        _ => return Err(KeyError::Unsupported),
                    }
                }
                _ => return Err(KeyError::Unsupported),
            };
        Ok(ParticipantKey { algorithm, key })
    }

    fn verifies(&self, role: Role, signature: &[u8]) -> bool {
        self.verifies_message(role.wire_name().as_bytes(), signature)
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies_message(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

/// The keys of one run request, by role.
#[derive(Debug, Clone, Default)]
pub struct Participants {
    pub algorithm_provider: Option<ParticipantKey>,
    pub data_providers: Vec<ParticipantKey>,
    pub consumers: Vec<ParticipantKey>,
}

/// Why a call was refused; both become `Unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    InvalidMetadata,
    SignatureVerificationFailed,
}

impl AuthError {
    pub fn message(&self) -> &'static str {
        match self {
            AuthError::InvalidMetadata => INVALID_METADATA,
            AuthError::SignatureVerificationFailed => SIGNATURE_VERIFICATION_FAILED,
        }
    }
}

impl Participants {
    /// Who `signatures` (every `signature` metadata value) proves to be in `role`: for a consumer,
    /// the index of the first key that verifies (upstream's manifest index).
    pub fn authenticate(&self, role: Role, signatures: &[&str]) -> Result<usize, AuthError> {
        let [encoded] = signatures else {
            return Err(AuthError::InvalidMetadata);
        };
        // A signature that is not base64 verifies against no key.
        let signature = STANDARD
            .decode(encoded)
            .map_err(|_| AuthError::SignatureVerificationFailed)?;
        let candidates: Vec<&ParticipantKey> = match role {
            Role::AlgorithmProvider => self.algorithm_provider.iter().collect(),
            Role::DataProvider => self.data_providers.iter().collect(),
            Role::Consumer => self.consumers.iter().collect(),
        };
        candidates
            .iter()
            .position(|key| key.verifies(role, &signature))
            .ok_or(AuthError::SignatureVerificationFailed)
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PublicKeyData as _, SigningKey as _};

    use super::*;

    fn signed(key: &KeyPair, role: Role) -> String {
        STANDARD.encode(key.sign(role.wire_name().as_bytes()).unwrap())
    }

    fn registered(key: &KeyPair) -> ParticipantKey {
        ParticipantKey::from_spki_der(&key.subject_public_key_info()).unwrap()
    }

    #[test]
    fn ed25519_and_ecdsa_p256_signatures_over_the_role_authenticate() {
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let participants = Participants {
            algorithm_provider: Some(registered(&ed)),
            data_providers: vec![],
            consumers: vec![registered(&ed), registered(&ec)],
        };
        assert_eq!(
            participants.authenticate(Role::AlgorithmProvider, &[&signed(&ed, Role::AlgorithmProvider)]),
            Ok(0)
        );
        // The consumer's index is the first key that verifies.
        assert_eq!(
            participants.authenticate(Role::Consumer, &[&signed(&ec, Role::Consumer)]),
            Ok(1)
        );
    }

    #[test]
    fn ecdsa_p384_keys_verify_over_sha256_as_go_does() {
        use p384::ecdsa::signature::hazmat::PrehashSigner as _;
        let secret = p384::ecdsa::SigningKey::from_slice(&[0x42; 48]).unwrap();
        let point = secret.verifying_key().to_encoded_point(false);
        // SubjectPublicKeyInfo { id-ecPublicKey, secp384r1 } around the uncompressed point.
        let mut spki = hex::decode("3076301006072a8648ce3d020106052b81040022036200").unwrap();
        spki.extend_from_slice(point.as_bytes());
        let digest = <sha2::Sha256 as sha2::Digest>::digest(Role::DataProvider.wire_name().as_bytes());
        let signature: p384::ecdsa::Signature = secret.sign_prehash(&digest).unwrap();
        let participants = Participants {
            data_providers: vec![ParticipantKey::from_spki_der(&spki).unwrap()],
            ..Participants::default()
        };
        let encoded = STANDARD.encode(signature.to_der().as_bytes());
        assert_eq!(participants.authenticate(Role::DataProvider, &[&encoded]), Ok(0));
        assert_eq!(
            participants.authenticate(Role::Consumer, &[&encoded]),
            Err(AuthError::SignatureVerificationFailed)
        );
    }

    #[test]
    fn a_missing_or_repeated_signature_is_invalid_metadata() {
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let participants = Participants {
            algorithm_provider: Some(registered(&ed)),
            ..Participants::default()
        };
        let signature = signed(&ed, Role::AlgorithmProvider);
        assert_eq!(
            participants.authenticate(Role::AlgorithmProvider, &[]),
            Err(AuthError::InvalidMetadata)
        );
        assert_eq!(
            participants.authenticate(Role::AlgorithmProvider, &[&signature, &signature]),
            Err(AuthError::InvalidMetadata)
        );
    }

    #[test]
    fn a_signature_over_another_role_is_refused() {
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let participants = Participants {
            algorithm_provider: Some(registered(&ed)),
            ..Participants::default()
        };
        assert_eq!(
            participants.authenticate(Role::AlgorithmProvider, &[&signed(&ed, Role::Consumer)]),
            Err(AuthError::SignatureVerificationFailed)
        );
    }
}
