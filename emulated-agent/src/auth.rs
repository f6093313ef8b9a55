//! Participant authentication: Prism's signed challenge by default, upstream's replayable scheme
//! (`agent/auth/auth.go:49-160`) only when the configuration asks for it.
//!
//! **Upstream's scheme.** A participant sends metadata `signature` = base64 of its signature over
//! the *role string* of the method it calls (`algorithm-provider` for Algo, `data-provider` for
//! Data, `consumer` for Result), made with the key registered for it in the run request (DER
//! SubjectPublicKeyInfo). RSA is PKCS#1 v1.5 over SHA-256, ECDSA is ASN.1 over SHA-256 (P-256,
//! P-384), Ed25519 signs the raw bytes. Upstream never reads the `user-id` metadata cocos-cli sends;
//! neither does this. The signature never changes, so whoever sees it once can replay it, and an
//! agent it was sent to can relay it to another agent of the same participants: the emulated agent
//! accepts it only with `PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH` ([`crate::config`]).
//!
//! **Prism's scheme** (`proto/prism/agent/v1/participant_auth.proto`). The participant first asks
//! `prism.agent.v1.ParticipantAuth/Challenge` for a challenge for its role ([`ChallengeStore`]:
//! 32 random bytes, single-use, good for a minute, at most [`MAX_OUTSTANDING_CHALLENGES`] at once),
//! then signs [`prism_proto::prism_agent::signed_message`] — the role, the challenge and the SHA-256
//! of the agent's own TLS key — with the same schemes, and sends `prism-challenge` and `signature`.
//! The challenge is consumed by the first call that presents it, whether that call is let in or not,
//! so a captured (challenge, signature) pair opens nothing; a signature made for another agent's key
//! does not verify here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prism_proto::prism_agent::{CHALLENGE_LEN, signed_message};
use ring::rand::{SecureRandom as _, SystemRandom};
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
    pub const ALL: [Role; 3] = [Role::AlgorithmProvider, Role::DataProvider, Role::Consumer];

    pub fn wire_name(self) -> &'static str {
        match self {
            Role::AlgorithmProvider => "algorithm-provider",
            Role::DataProvider => "data-provider",
            Role::Consumer => "consumer",
        }
    }

    /// The role a wire name names, if any.
    pub fn from_wire_name(name: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|role| role.wire_name() == name)
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

/// Why a call was refused; each becomes `Unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    InvalidMetadata,
    SignatureVerificationFailed,
    /// No `prism-challenge`, and upstream's scheme is not accepted.
    ChallengeRequired,
    /// A challenge this agent did not issue, has already seen used, or that has expired.
    UnknownChallenge,
    /// A challenge issued for another role than the call's.
    ChallengeForAnotherRole,
}

impl AuthError {
    pub fn message(&self) -> &'static str {
        match self {
            AuthError::InvalidMetadata => INVALID_METADATA,
            AuthError::SignatureVerificationFailed => SIGNATURE_VERIFICATION_FAILED,
            AuthError::ChallengeRequired => {
                "this agent requires a signed challenge: ask prism.agent.v1.ParticipantAuth/Challenge \
                 for one and sign `prism-agent-auth-v1:<role>:<hex challenge>:<hex SHA-256 of the agent's \
                 TLS key>`; a signature over the role alone can be replayed and is refused"
            }
            AuthError::UnknownChallenge => {
                "the challenge is unknown, already used or expired: ask for a fresh one for each call"
            }
            AuthError::ChallengeForAnotherRole => "the challenge was issued for another role",
        }
    }
}

impl Participants {
    /// Who `signatures` (every `signature` metadata value) proves to be in `role` by upstream's
    /// scheme, a signature over the role string: for a consumer, the index of the first key that
    /// verifies (upstream's manifest index).
    pub fn authenticate(&self, role: Role, signatures: &[&str]) -> Result<usize, AuthError> {
        self.authenticate_message(role, role.wire_name().as_bytes(), signatures)
    }

    /// Who `signatures` proves to be in `role` by a signature over `message`, with upstream's rules
    /// for the metadata (exactly one value, base64) and for which key answers.
    pub fn authenticate_message(
        &self,
        role: Role,
        message: &[u8],
        signatures: &[&str],
    ) -> Result<usize, AuthError> {
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
            .position(|key| key.verifies_message(message, &signature))
            .ok_or(AuthError::SignatureVerificationFailed)
    }

    /// Who `signatures` proves to be in `role` by Prism's scheme: `challenge` (the decoded
    /// `prism-challenge`) was issued for `issued_for` — what [`ChallengeStore::take`] answered,
    /// `None` for one unknown, used or expired — which must be `role`, and the signature must be
    /// over [`signed_message`] with this agent's TLS key digest (`None` without TLS).
    pub fn authenticate_challenge(
        &self,
        role: Role,
        challenge: &[u8],
        issued_for: Option<Role>,
        signatures: &[&str],
        agent_key_sha256: Option<&[u8; 32]>,
    ) -> Result<usize, AuthError> {
        match issued_for {
            None => Err(AuthError::UnknownChallenge),
            Some(issued_for) if issued_for != role => Err(AuthError::ChallengeForAnotherRole),
            Some(_) => {
                let message = signed_message(role.wire_name(), challenge, agent_key_sha256);
                self.authenticate_message(role, &message, signatures)
            }
        }
    }
}

/// How many challenges may be outstanding at once: asking for one needs no authentication, so
/// without a bound anyone who reaches the port could fill the agent's memory.
pub const MAX_OUTSTANDING_CHALLENGES: usize = 1024;

/// Why no challenge was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("too many outstanding challenges; try again when some have been used or have expired")]
    TooMany,
    #[error("the system's random number generator failed")]
    Random,
}

/// The challenges issued and not yet used: each good for one call of the role it was issued for,
/// until it expires. Time comes in from the caller, so expiry can be tested without waiting.
#[derive(Debug)]
pub struct ChallengeStore {
    lifetime: Duration,
    capacity: usize,
    outstanding: HashMap<[u8; CHALLENGE_LEN], (Role, Instant)>,
    random: SystemRandom,
}

impl ChallengeStore {
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        ChallengeStore {
            lifetime,
            capacity,
            outstanding: HashMap::new(),
            random: SystemRandom::new(),
        }
    }

    /// How long a challenge is accepted after it is issued.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A fresh challenge for one call of `role`, accepted until `now` + the lifetime. At capacity,
    /// expired challenges are dropped first; if none has expired, none is issued.
    pub fn issue(&mut self, role: Role, now: Instant) -> Result<[u8; CHALLENGE_LEN], ChallengeError> {
        if self.outstanding.len() >= self.capacity {
            self.outstanding.retain(|_, (_, deadline)| *deadline > now);
            if self.outstanding.len() >= self.capacity {
                return Err(ChallengeError::TooMany);
            }
        }
        let mut challenge = [0u8; CHALLENGE_LEN];
        self.random
            .fill(&mut challenge)
            .map_err(|_| ChallengeError::Random)?;
        self.outstanding.insert(challenge, (role, now + self.lifetime));
        Ok(challenge)
    }

    /// Takes `challenge` out: the role it was issued for if it was outstanding and has not expired
    /// at `now`. Either way it is gone, so it is never accepted twice.
    pub fn take(&mut self, challenge: &[u8], now: Instant) -> Option<Role> {
        let key: [u8; CHALLENGE_LEN] = challenge.try_into().ok()?;
        let (role, deadline) = self.outstanding.remove(&key)?;
        (now < deadline).then_some(role)
    }

    /// How many challenges are outstanding (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
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

    const MINUTE: Duration = Duration::from_secs(60);

    fn signed_challenge(key: &KeyPair, role: Role, challenge: &[u8], agent_key: Option<&[u8; 32]>) -> String {
        STANDARD.encode(
            key.sign(&signed_message(role.wire_name(), challenge, agent_key))
                .unwrap(),
        )
    }

    #[test]
    fn a_challenge_is_good_once_for_its_role_until_it_expires() {
        let start = Instant::now();
        let mut store = ChallengeStore::new(MINUTE, 8);
        let challenge = store.issue(Role::DataProvider, start).unwrap();
        assert_eq!(
            store.take(&challenge, start + Duration::from_secs(59)),
            Some(Role::DataProvider)
        );
        // Used: gone, even within its lifetime.
        assert_eq!(store.take(&challenge, start + Duration::from_secs(1)), None);

        let late = store.issue(Role::Consumer, start).unwrap();
        assert_eq!(store.take(&late, start + MINUTE), None, "expired at its deadline");
        assert!(store.is_empty(), "an expired challenge presented is consumed too");

        // Nothing that was not issued is accepted, whatever its length.
        assert_eq!(store.take(&[0; CHALLENGE_LEN], start), None);
        assert_eq!(store.take(b"short", start), None);
        // Each challenge is fresh.
        let (a, b) = (
            store.issue(Role::Consumer, start).unwrap(),
            store.issue(Role::Consumer, start).unwrap(),
        );
        assert_ne!(a, b);
    }

    #[test]
    fn outstanding_challenges_are_bounded_and_expired_ones_make_room_first() {
        let start = Instant::now();
        let mut store = ChallengeStore::new(MINUTE, 3);
        let first = store.issue(Role::Consumer, start).unwrap();
        store
            .issue(Role::Consumer, start + Duration::from_secs(30))
            .unwrap();
        store
            .issue(Role::Consumer, start + Duration::from_secs(30))
            .unwrap();
        assert_eq!(
            store.issue(Role::Consumer, start + Duration::from_secs(59)),
            Err(ChallengeError::TooMany)
        );
        // The first has expired: it is dropped to make room, and the others are kept.
        let fourth = store.issue(Role::Consumer, start + MINUTE).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(store.take(&first, start + MINUTE), None);
        assert_eq!(store.take(&fourth, start + MINUTE), Some(Role::Consumer));
    }

    #[test]
    fn a_signed_challenge_authenticates_only_for_its_role_this_agents_key_and_a_registered_key() {
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let participants = Participants {
            algorithm_provider: Some(registered(&ed)),
            consumers: vec![registered(&other), registered(&ed)],
            ..Participants::default()
        };
        let challenge = [7u8; CHALLENGE_LEN];
        let this_agent = [1u8; 32];
        let another_agent = [2u8; 32];
        let good = signed_challenge(&ed, Role::Consumer, &challenge, Some(&this_agent));
        let authenticate = |issued_for, signature: &str| {
            participants.authenticate_challenge(
                Role::Consumer,
                &challenge,
                issued_for,
                &[signature],
                Some(&this_agent),
            )
        };
        assert_eq!(authenticate(Some(Role::Consumer), &good), Ok(1));
        assert_eq!(
            authenticate(None, &good),
            Err(AuthError::UnknownChallenge),
            "unknown, used or expired"
        );
        assert_eq!(
            authenticate(Some(Role::AlgorithmProvider), &good),
            Err(AuthError::ChallengeForAnotherRole)
        );
        for refused in [
            // Made for another agent's key: relayed.
            signed_challenge(&ed, Role::Consumer, &challenge, Some(&another_agent)),
            // Made without the agent's key, as for an agent without TLS.
            signed_challenge(&ed, Role::Consumer, &challenge, None),
            // Made for another role.
            signed_challenge(&ed, Role::AlgorithmProvider, &challenge, Some(&this_agent)),
            // Made over another challenge.
            signed_challenge(&ed, Role::Consumer, &[8u8; CHALLENGE_LEN], Some(&this_agent)),
            // Upstream's signature over the role alone.
            signed(&ed, Role::Consumer),
        ] {
            assert_eq!(
                authenticate(Some(Role::Consumer), &refused),
                Err(AuthError::SignatureVerificationFailed)
            );
        }
        // A key that is not registered for the role.
        let stranger = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        assert_eq!(
            authenticate(
                Some(Role::Consumer),
                &signed_challenge(&stranger, Role::Consumer, &challenge, Some(&this_agent))
            ),
            Err(AuthError::SignatureVerificationFailed)
        );
    }
}
