use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::DefinitionError;
use super::governance::{ChangeThreshold, Halt, Proposal};
use super::{ASSET_NAME_MAX, DATASETS_MAX, DESCRIPTION_MAX, NAME_MAX, PARTICIPANTS_MAX};
use crate::access::RoleName;
use prism_attestation::Policy;

use crate::asset::AssetKind;
use crate::ids::{AssetId, BackendId, ComputationId, ParticipantId, UserId, WorkspaceId};
use crate::run::{Manifest, RunLimits};
use crate::values::{Email, FileName, PublicKey, Sha3Digest, check_text};
use sha2::{Digest as _, Sha256};

/// A participant's role in one computation (Prism's computation roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Editor,
    Runner,
    Viewer,
    AlgorithmProvider,
    DatasetProvider,
    ResultConsumer,
}

impl Role {
    /// Roles whose holder exchanges data with the enclave and so must be identified by a key.
    pub fn needs_public_key(self) -> bool {
        matches!(
            self,
            Self::AlgorithmProvider | Self::DatasetProvider | Self::ResultConsumer
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Owner => "owner",
            Self::Editor => "editor",
            Self::Runner => "runner",
            Self::Viewer => "viewer",
            Self::AlgorithmProvider => "algorithm_provider",
            Self::DatasetProvider => "dataset_provider",
            Self::ResultConsumer => "result_consumer",
        };
        f.write_str(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    pub id: ParticipantId,
    pub roles: BTreeSet<Role>,
    /// Custom roles of the computation's workspace, granted on this computation only (their
    /// permissions of computation scope). A role deleted from the workspace is no longer granted.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub custom_roles: BTreeSet<RoleName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKey>,
}

/// An asset (the algorithm or one dataset) the enclave will accept only if its SHA3-256 digest matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAsset {
    pub provider: ParticipantId,
    pub hash: Sha3Digest,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The asset of the workspace it was linked from (provider, digest and name are the asset's); absent
    /// for one declared in the definition itself. Only linking sets it ([`super::Change::LinkAsset`]);
    /// it is not part of the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetId>,
}

impl ExpectedAsset {
    /// What the computation takes in when `linked` is linked to it.
    pub fn linked(linked: &LinkedAsset) -> Self {
        Self {
            provider: linked.provider.clone(),
            hash: linked.hash.clone(),
            name: linked.name.to_string(),
            asset: Some(linked.asset),
        }
    }
}

/// An asset of the workspace as a link takes it into a computation: the algorithm (replacing the one
/// before it, if its own provider's) or one more dataset, provided by the asset's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedAsset {
    pub asset: AssetId,
    pub kind: AssetKind,
    /// The asset's owner, who will send its file to the agent.
    pub provider: ParticipantId,
    /// The asset's SHA3-256 digest.
    pub hash: Sha3Digest,
    /// The asset's file name.
    pub name: FileName,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub participants: Vec<Participant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<ExpectedAsset>,
    #[serde(default)]
    pub datasets: Vec<ExpectedAsset>,
    /// What bounds each run; absent in what was recorded before computations set their own, which
    /// had the default.
    #[serde(default)]
    pub limits: RunLimits,
}

impl Definition {
    pub(crate) fn normalised(mut self) -> Self {
        self.name = self.name.trim().to_owned();
        self
    }

    pub fn participant(&self, id: &ParticipantId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == *id)
    }

    pub fn has_role(&self, id: &ParticipantId, role: Role) -> bool {
        self.participant(id).is_some_and(|p| p.roles.contains(&role))
    }

    /// The participant named by `email` is now `user`, and so is the provider of the assets it provides.
    pub(crate) fn link(&mut self, email: &Email, user: UserId) {
        let invited = ParticipantId::Invited(email.clone());
        let linked = ParticipantId::User(user);
        for p in self.participants.iter_mut().filter(|p| p.id == invited) {
            p.id = linked.clone();
        }
        let assets = self.algorithm.iter_mut().chain(self.datasets.iter_mut());
        for asset in assets.filter(|a| a.provider == invited) {
            asset.provider = linked.clone();
        }
    }

    /// Where asset `asset` is linked: as the algorithm or as a dataset, and the entry it made.
    pub fn linked(&self, asset: AssetId) -> Option<(AssetKind, &ExpectedAsset)> {
        self.linked_assets().find(|(_, entry)| entry.asset == Some(asset))
    }

    /// Every entry that was linked from an asset of the workspace, with its kind.
    pub fn linked_assets(&self) -> impl Iterator<Item = (AssetKind, &ExpectedAsset)> {
        let algorithm = self.algorithm.iter().map(|a| (AssetKind::Algorithm, a));
        let datasets = self.datasets.iter().map(|d| (AssetKind::Dataset, d));
        algorithm
            .chain(datasets)
            .filter(|(_, entry)| entry.asset.is_some())
    }

    /// `linked` becomes the algorithm (in place of the one before) or one more dataset.
    pub(crate) fn link_asset(&mut self, linked: &LinkedAsset) {
        let entry = ExpectedAsset::linked(linked);
        match linked.kind {
            AssetKind::Algorithm => self.algorithm = Some(entry),
            AssetKind::Dataset => self.datasets.push(entry),
        }
    }

    /// What was linked from `asset` is taken out.
    pub(crate) fn unlink_asset(&mut self, asset: AssetId) {
        if self.algorithm.as_ref().is_some_and(|a| a.asset == Some(asset)) {
            self.algorithm = None;
        }
        self.datasets.retain(|d| d.asset != Some(asset));
    }

    /// The participants who may receive the result.
    pub fn result_consumers(&self) -> impl Iterator<Item = &Participant> {
        self.participants
            .iter()
            .filter(|p| p.roles.contains(&Role::ResultConsumer))
    }

    /// Every rule a complete definition must satisfy, checked in a fixed order so errors are stable.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        check_text("name", &self.name, NAME_MAX, true)?;
        check_text("description", &self.description, DESCRIPTION_MAX, false)?;
        bounded("participants", self.participants.len(), PARTICIPANTS_MAX)?;
        bounded("datasets", self.datasets.len(), DATASETS_MAX)?;
        let seconds = self.limits.max_run_seconds;
        if !(RunLimits::MIN_RUN_SECONDS..=RunLimits::MAX_RUN_SECONDS).contains(&seconds) {
            return Err(DefinitionError::RunLimit(seconds));
        }

        // An address and its account's id name the same person: listed once, whichever way.
        let mut seen = HashSet::new();
        for p in &self.participants {
            if !seen.insert(p.id.person()) {
                return Err(DefinitionError::DuplicateParticipant(p.id.clone()));
            }
            if p.roles.is_empty() && p.custom_roles.is_empty() {
                return Err(DefinitionError::NoRole(p.id.clone()));
            }
            if p.public_key.is_none()
                && let Some(role) = p.roles.iter().copied().find(|r| r.needs_public_key())
            {
                return Err(DefinitionError::PublicKeyRequired {
                    participant: p.id.clone(),
                    role,
                });
            }
        }
        if !self.participants.iter().any(|p| p.roles.contains(&Role::Owner)) {
            return Err(DefinitionError::NoOwner);
        }

        if let Some(algorithm) = &self.algorithm {
            check_text("algorithm name", &algorithm.name, ASSET_NAME_MAX, false)?;
            self.check_provider(&algorithm.provider, Role::AlgorithmProvider)?;
        }
        let mut digests = HashSet::new();
        let mut names = HashSet::new();
        for dataset in &self.datasets {
            check_text("dataset name", &dataset.name, ASSET_NAME_MAX, false)?;
            self.check_provider(&dataset.provider, Role::DatasetProvider)?;
            if !digests.insert(&dataset.hash) {
                return Err(DefinitionError::DuplicateDataset(dataset.hash.clone()));
            }
            // The agent tells datasets apart by file name: two of one name could not both arrive.
            if !dataset.name.is_empty() && !names.insert(&dataset.name) {
                return Err(DefinitionError::DuplicateDatasetName(dataset.name.clone()));
            }
        }
        Ok(())
    }

    fn check_provider(&self, provider: &ParticipantId, role: Role) -> Result<(), DefinitionError> {
        match self.participant(provider) {
            None => Err(DefinitionError::UnknownProvider {
                provider: provider.clone(),
            }),
            Some(p) if !p.roles.contains(&role) => Err(DefinitionError::ProviderLacksRole {
                provider: provider.clone(),
                role,
            }),
            Some(_) => Ok(()),
        }
    }
}

fn bounded(what: &'static str, count: usize, max: usize) -> Result<(), DefinitionError> {
    if count > max {
        return Err(DefinitionError::TooMany { what, count, max });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputationStatus {
    #[default]
    New,
    Active,
    Archived,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computation {
    pub status: ComputationStatus,
    pub id: Option<ComputationId>,
    pub workspace_id: Option<WorkspaceId>,
    pub definition: Definition,
    /// The latest attestation policy version (0: none set; the platform's default applies).
    #[serde(default)]
    pub policy_version: u32,
    /// The computation's own attestation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_policy: Option<VersionedPolicy>,
    /// Policies that replace it for runs placed on a backend.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backend_policies: BTreeMap<BackendId, VersionedPolicy>,
    /// Consents by manifest id: who signed which manifest, and the signature (base64). Those of
    /// earlier manifests stay, as the record of what each run was approved as.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consents: BTreeMap<String, BTreeMap<ParticipantId, String>>,
    /// Whether every participant with a key has signed one manifest: from then on, changes of the
    /// manifest need the participants' approval (see [`super::governance`]). It stays set when a
    /// new manifest awaits signatures: the parties have agreed once, and later changes are theirs.
    #[serde(default)]
    pub approved: bool,
    /// How many participants must approve a change once approved.
    #[serde(default)]
    pub change_threshold: ChangeThreshold,
    /// Every proposed change, open or decided, by number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proposals: BTreeMap<u32, Proposal>,
    /// The halts that hold, by the participant who halted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub halts: BTreeMap<ParticipantId, Halt>,
}

/// Who has consented to a manifest and who still has to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ConsentStatus {
    pub manifest_id: String,
    /// The participants who signed, with their signatures (base64).
    pub signed: BTreeMap<ParticipantId, String>,
    /// The participants whose signatures are still missing.
    pub missing: Vec<ParticipantId>,
}

impl ConsentStatus {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A policy and the version that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionedPolicy {
    pub version: u32,
    pub policy: Policy,
}

impl Computation {
    /// The manifest a run requested now would execute (`None` before the computation exists).
    pub fn manifest(&self) -> Option<Manifest> {
        Some(Manifest::of(
            self.id?,
            &self.definition,
            &self.attestation_policies_sha256(),
        ))
    }

    /// What the manifest's `attestation_policy_sha256` names: SHA-256 of the canonical JSON
    /// `{"backends":{<backend id>:<policy digest>,…},"computation":<policy digest>|null}` — every
    /// policy a run could be appraised against, so an override is consented to as much as the
    /// computation's own. `null`: the platform's default applies.
    pub fn attestation_policies_sha256(&self) -> String {
        let digest = |versioned: &VersionedPolicy| hex::encode(versioned.policy.digest());
        let set = serde_json::json!({
            "backends": self.backend_policies.iter()
                .map(|(backend, versioned)| (backend.to_string(), digest(versioned)))
                .collect::<BTreeMap<_, _>>(),
            "computation": self.attestation_policy.as_ref().map(digest),
        });
        // serde_json's maps are ordered by key (no `preserve_order` feature), so this is canonical.
        hex::encode(Sha256::digest(set.to_string()))
    }

    /// Who has signed the current manifest and who must still: every participant with a public key
    /// (those without one exchange nothing with the enclave and hold no key to sign with).
    pub fn consent_status(&self) -> Option<ConsentStatus> {
        let manifest_id = self.manifest()?.id();
        let signed = self.consents.get(&manifest_id).cloned().unwrap_or_default();
        let missing = self
            .definition
            .participants
            .iter()
            .filter(|p| p.public_key.is_some() && !signed.contains_key(&p.id))
            .map(|p| p.id.clone())
            .collect();
        Some(ConsentStatus {
            manifest_id,
            signed,
            missing,
        })
    }

    /// The policy a run on `backend` is appraised against: the backend's override, else the
    /// computation's own; `None` when neither is set (the platform's default applies).
    pub fn attestation_policy_for(&self, backend: Option<BackendId>) -> Option<&VersionedPolicy> {
        backend
            .and_then(|backend| self.backend_policies.get(&backend))
            .or(self.attestation_policy.as_ref())
    }
}
