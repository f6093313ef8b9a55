//! The manifest a run executes, content-addressed: everything the participants consent to — the
//! algorithm and dataset digests with their file names, the participants with their roles and keys,
//! who receives the result, the attestation policy's digest and the run's limits — in one canonical
//! encoding whose SHA-256 is the **manifest id**. Any change to the definition yields another id,
//! which needs new signatures.
//!
//! **Canonical encoding** (version `prism-manifest-v1`): UTF-8 JSON with no insignificant whitespace,
//! object members in code-point order of their names, non-ASCII characters written as themselves,
//! integers only; lists in the order below. The same bytes as Python's
//! `json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()`
//! (`domain/tests/manifest_vectors.rs` checks it against Python):
//!
//! ```text
//! {"algorithm":{"file_name":…,"provider":…,"sha3_256":…}|null,
//!  "attestation_policy_sha256":<hex>,"computation":<uuid>,
//!  "datasets":[{"file_name":…,"provider":…,"sha3_256":…}, …]   sorted by sha3_256,
//!  "format":"prism-manifest-v1",
//!  "limits":{"max_run_seconds":<int>},
//!  "participants":[{"id":…,"public_key":<base64 DER SubjectPublicKeyInfo>|null,"roles":[…]}, …]
//!                                                              sorted by id, roles sorted,
//!  "result_consumers":[<participant id>, …]}                   sorted
//! ```

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::computation::{Definition, Role};
use crate::ids::ComputationId;

/// The encoding's name and version, inside every manifest.
pub const FORMAT: &str = "prism-manifest-v1";

/// What bounds a run: set per computation (its definition's `limits`), part of the manifest the
/// participants consent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// The longest a run may take from its request to its results.
    pub max_run_seconds: u64,
}

impl RunLimits {
    /// The limits of a computation that sets none: one hour.
    pub const DEFAULT: RunLimits = RunLimits {
        max_run_seconds: 3600,
    };
    /// The shortest limit a computation may set: a run has to be provisioned, attested and fed
    /// its inputs within it.
    pub const MIN_RUN_SECONDS: u64 = 10;
    /// The longest limit a computation may set: a CVM lives at most thirty days
    /// ([`crate::cvm::TTL_MAX_SECONDS`]), and the run's CVM outlives its deadline by
    /// [`RunLimits::CLEANUP_SECONDS`].
    pub const MAX_RUN_SECONDS: u64 = crate::cvm::TTL_MAX_SECONDS - Self::CLEANUP_SECONDS;
    /// How long a run's CVM outlives the run's deadline when the request names no CVM of its own:
    /// time to fetch results and clean up.
    pub const CLEANUP_SECONDS: u64 = 600;

    /// The CVM a run gets when its request names none: one vCPU, 1 GiB, no TEE, any backend, living
    /// until [`RunLimits::CLEANUP_SECONDS`] after the run's deadline.
    pub fn default_cvm(self) -> crate::cvm::CvmSpec {
        crate::cvm::CvmSpec {
            provider: crate::cvm::ANY_PROVIDER.into(),
            vcpus: 1,
            memory_mib: 1024,
            platform: crate::cvm::ConfidentialPlatform::None,
            ttl_seconds: self.max_run_seconds.saturating_add(Self::CLEANUP_SECONDS),
            labels: Default::default(),
        }
    }
}

impl Default for RunLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The prefix of what a participant signs to consent: `prism-consent-v1:` followed by the manifest
/// id in lower-case hex (81 ASCII bytes), so a consent signature can never be mistaken for a
/// signature over anything else.
pub const CONSENT_PREFIX: &str = "prism-consent-v1:";

/// What a participant signs to consent to runs of the manifest `manifest_id`.
pub fn consent_message(manifest_id: &str) -> Vec<u8> {
    format!("{CONSENT_PREFIX}{manifest_id}").into_bytes()
}

/// An asset the manifest names: its SHA3-256 (hex), its file name, who provides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestAsset {
    pub file_name: String,
    pub provider: String,
    pub sha3_256: String,
}

/// A participant as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestParticipant {
    pub id: String,
    pub public_key: Option<String>,
    pub roles: Vec<String>,
}

/// The manifest. Its fields are declared in the canonical order, so serialising it writes them so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub algorithm: Option<ManifestAsset>,
    pub attestation_policy_sha256: String,
    pub computation: String,
    pub datasets: Vec<ManifestAsset>,
    pub format: String,
    pub limits: RunLimits,
    pub participants: Vec<ManifestParticipant>,
    pub result_consumers: Vec<String>,
}

fn asset(asset: &crate::computation::ExpectedAsset) -> ManifestAsset {
    ManifestAsset {
        file_name: asset.name.clone(),
        provider: asset.provider.to_string(),
        sha3_256: asset.hash.to_string(),
    }
}

impl Manifest {
    /// The manifest of a run of `computation` as `definition` defines it (its limits included),
    /// under the policy with digest `attestation_policy_sha256` (hex).
    pub fn of(computation: ComputationId, definition: &Definition, attestation_policy_sha256: &str) -> Self {
        let mut datasets: Vec<ManifestAsset> = definition.datasets.iter().map(asset).collect();
        datasets.sort_by(|a, b| a.sha3_256.cmp(&b.sha3_256));
        let mut participants: Vec<ManifestParticipant> = definition
            .participants
            .iter()
            .map(|participant| {
                let mut roles: Vec<String> = participant.roles.iter().map(ToString::to_string).collect();
                roles.sort();
                ManifestParticipant {
                    id: participant.id.to_string(),
                    public_key: participant
                        .public_key
                        .as_ref()
                        .map(|key| base64::engine::general_purpose::STANDARD.encode(key.der())),
                    roles,
                }
            })
            .collect();
        participants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut result_consumers: Vec<String> = definition
            .participants
            .iter()
            .filter(|participant| participant.roles.contains(&Role::ResultConsumer))
            .map(|participant| participant.id.to_string())
            .collect();
        result_consumers.sort();
        Manifest {
            algorithm: definition.algorithm.as_ref().map(asset),
            attestation_policy_sha256: attestation_policy_sha256.to_owned(),
            computation: computation.to_string(),
            datasets,
            format: FORMAT.to_owned(),
            limits: definition.limits,
            participants,
            result_consumers,
        }
    }

    /// The canonical encoding.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// The manifest id: SHA-256 (hex) of the canonical encoding.
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }
}
