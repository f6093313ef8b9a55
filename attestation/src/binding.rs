//! What a report must carry to count for *this* request on *this* connection.
//!
//! **Fresh evidence.** The platform draws a [`Nonce`] (32 random bytes, single-use, expiring; the
//! platform records it and refuses a second use) and asks the agent for evidence whose report data
//! is
//!
//! ```text
//! report_data = SHA-512( "prism attestation v1" ‖ 0x00 ‖ nonce ‖ SHA-256(agent TLS SubjectPublicKeyInfo, DER) )
//! ```
//!
//! passed as the agent.proto `Attestation` request's `tee_nonce` (64 bytes), with the nonce itself
//! as its `vtpm_nonce` (Cocos's attestation-service returns it as the EAT's `eat_nonce`). Evidence
//! therefore cannot be replayed (the nonce is spent) nor moved to another connection (the key is
//! the one the participant's TLS session sees). [`fresh_report_data`] is the only implementation;
//! participants recompute it from the nonce and the certificate they were shown.
//!
//! **Start-up evidence.** A real Cocos agent attests once when it dials in, over SHA-512 (report
//! data) and SHA-256 (`eat_nonce`) of its client certificate's PEM file bytes. That proves which
//! certificate the attested machine holds, not when: [`Binding::StartupCertificate`] says so in
//! every verdict built on it.

use ring::rand::{SecureRandom as _, SystemRandom};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

use crate::hexbytes::HexBytes;

/// The domain separator of [`fresh_report_data`].
pub const FRESH_DOMAIN: &[u8] = b"prism attestation v1\0";
/// Length of a platform nonce.
pub const NONCE_LEN: usize = 32;

/// A platform nonce: 32 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl Nonce {
    /// 32 bytes from the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the operating system's random source is available");
        Nonce(bytes)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        hex::decode(text).ok()?.try_into().ok().map(Nonce)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nonce({})", self.to_hex())
    }
}

/// The report data a fresh request asks for (see the module's documentation).
pub fn fresh_report_data(nonce: &Nonce, agent_spki_der: &[u8]) -> [u8; 64] {
    let mut hash = Sha512::new();
    hash.update(FRESH_DOMAIN);
    hash.update(nonce.0);
    hash.update(Sha256::digest(agent_spki_der));
    hash.finalize().into()
}

/// What the evidence was asked to be bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    /// A single-use platform nonce and the agent's TLS key: fresh and tied to the connection.
    Fresh {
        nonce: HexBytes,
        /// SHA-256 of the agent's TLS SubjectPublicKeyInfo (DER).
        agent_key_sha256: HexBytes,
    },
    /// The agent's start-up report over its client certificate's PEM bytes: it proves the attested
    /// machine holds that certificate, not that the report is fresh.
    StartupCertificate {
        /// SHA-256 of the certificate's PEM file bytes.
        certificate_sha256: HexBytes,
    },
}

/// What a verifier expects the evidence to carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub binding: Binding,
    /// The report's REPORT_DATA (SEV-SNP) or REPORTDATA (TDX).
    pub report_data: [u8; 64],
    /// The EAT's `eat_nonce`, when the evidence comes in an EAT.
    pub eat_nonce: Vec<u8>,
}

impl Expected {
    /// A fresh request: `nonce` bound to the agent's TLS key.
    pub fn fresh(nonce: &Nonce, agent_spki_der: &[u8]) -> Self {
        Expected {
            binding: Binding::Fresh {
                nonce: HexBytes(nonce.0.to_vec()),
                agent_key_sha256: HexBytes(Sha256::digest(agent_spki_der).to_vec()),
            },
            report_data: fresh_report_data(nonce, agent_spki_der),
            eat_nonce: nonce.0.to_vec(),
        }
    }

    /// A Cocos agent's start-up report over `certificate_pem` (the PEM file's exact bytes).
    pub fn startup(certificate_pem: &[u8]) -> Self {
        let sha256 = Sha256::digest(certificate_pem).to_vec();
        Expected {
            binding: Binding::StartupCertificate {
                certificate_sha256: HexBytes(sha256.clone()),
            },
            report_data: Sha512::digest(certificate_pem).into(),
            eat_nonce: sha256,
        }
    }

    /// Whether the evidence this expects is fresh.
    pub fn is_fresh(&self) -> bool {
        matches!(self.binding, Binding::Fresh { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fresh_report_data_matches_its_documented_test_vector() {
        // docs/attestation.md: nonce 00 01 … 1f, SubjectPublicKeyInfo the bytes "spki"; computed
        // independently with Python's hashlib.
        let nonce = Nonce(std::array::from_fn(|i| i as u8));
        assert_eq!(
            hex::encode(fresh_report_data(&nonce, b"spki")),
            "e7c0791c934dddf719d4d2cb87dd314464b1b5aee12fb6452869a4dd0a703fa4\
             4d17ffe68250f6af0e9e762ca7a538bb618cda08e5ef490177e9c5476a6a9a75"
        );
    }

    #[test]
    fn another_key_or_nonce_gives_other_report_data() {
        let nonce = Nonce::random();
        let report_data = fresh_report_data(&nonce, b"key a");
        assert_ne!(report_data, fresh_report_data(&nonce, b"key b"));
        assert_ne!(report_data, fresh_report_data(&Nonce::random(), b"key a"));
    }

    #[test]
    fn a_start_up_report_is_bound_to_the_certificate_bytes_and_not_fresh() {
        let expected = Expected::startup(b"-----BEGIN CERTIFICATE-----\n");
        assert!(!expected.is_fresh());
        assert_eq!(
            expected.report_data.to_vec(),
            Sha512::digest(b"-----BEGIN CERTIFICATE-----\n").to_vec()
        );
        assert_eq!(
            expected.eat_nonce,
            Sha256::digest(b"-----BEGIN CERTIFICATE-----\n").to_vec()
        );
    }
}
