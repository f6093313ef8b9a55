use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::ComputationChanges;
use super::governance::{Change, ChangeThreshold};
use super::state::{Definition, LinkedAsset};
use crate::aggregate::DomainEvent;
use crate::asset::AssetKind;
use prism_attestation::Policy;

use crate::ids::{Actor, AssetId, BackendId, ComputationId, ParticipantId, UserId, WorkspaceId};
use crate::values::Email;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ComputationEvent {
    Created(ComputationCreated),
    Updated(ComputationUpdated),
    Archived(ComputationArchived),
    ParticipantLinked(ParticipantLinked),
    AttestationPolicySet(Box<AttestationPolicySet>),
    ConsentSigned(ConsentSigned),
    ChangeProposed(Box<ChangeProposed>),
    ChangeApproved(ChangeApproved),
    ChangeVetoed(ChangeVetoed),
    ChangeAdopted(ChangeAdopted),
    ChangeSuperseded(ChangeSuperseded),
    ChangeThresholdSet(ChangeThresholdSet),
    ExecutionHalted(ExecutionHalted),
    HaltLifted(HaltLifted),
    AssetLinked(AssetLinked),
    AssetUnlinked(AssetUnlinked),
}

/// An asset of the workspace was linked: it is the computation's algorithm now (replacing the one
/// before it), or one more of its datasets, provided by the asset's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetLinked {
    pub asset: LinkedAsset,
    pub linked_by: Actor,
    pub linked_at: DateTime<Utc>,
}

/// A linked asset was taken out: the computation has no algorithm any more, or one dataset less.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetUnlinked {
    pub asset: AssetId,
    pub kind: AssetKind,
    pub unlinked_by: Actor,
    pub unlinked_at: DateTime<Utc>,
}

/// A change of an approved computation that would change its manifest (or its change threshold) was
/// asked for: it waits for the participants' approval instead of being applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeProposed {
    /// The proposal's number within the computation, from 1.
    pub proposal: u32,
    /// The change, as it will be applied when adopted.
    pub change: Change,
    /// SHA-256 (hex) of the manifest it was proposed for; it can be adopted only while that manifest is
    /// the current one.
    pub manifest_id: String,
    /// The participant whose proposal it is, which counts as its approval; absent when it was proposed
    /// by someone without a say (no participant holding a public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer: Option<ParticipantId>,
    pub proposed_by: Actor,
    pub proposed_at: DateTime<Utc>,
}

/// A participant approved a proposed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeApproved {
    pub proposal: u32,
    pub participant: ParticipantId,
    pub approved_by: Actor,
    pub approved_at: DateTime<Utc>,
}

/// A participant refused a proposed change, which ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeVetoed {
    pub proposal: u32,
    pub participant: ParticipantId,
    pub reason: String,
    pub vetoed_by: Actor,
    pub vetoed_at: DateTime<Utc>,
}

/// A proposed change reached its threshold and is applied: the change's own events follow in the same
/// commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeAdopted {
    pub proposal: u32,
    /// The participants whose approvals counted.
    pub approvals: Vec<ParticipantId>,
    /// How many approvals it needed.
    pub required: u32,
    pub adopted_at: DateTime<Utc>,
}

/// The manifest changed before a proposal was adopted: what its voters agreed to is no longer what it
/// would change, so it can no longer be adopted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSuperseded {
    pub proposal: u32,
    /// SHA-256 (hex) of the manifest that is current now.
    pub manifest_id: String,
    pub superseded_at: DateTime<Utc>,
}

/// How many participants must approve a change of the computation once it is approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeThresholdSet {
    pub threshold: ChangeThreshold,
    pub set_by: Actor,
    pub set_at: DateTime<Utc>,
}

/// A participant halted the computation's execution: no run is requested while any participant's halt
/// holds. It names the computation so that a process manager of runs can act on it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionHalted {
    /// The computation halted (also the event's subject).
    pub computation: ComputationId,
    pub participant: ParticipantId,
    pub reason: String,
    pub halted_by: Actor,
    pub halted_at: DateTime<Utc>,
}

/// A participant lifted its own halt; the computation runs again once no halt remains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HaltLifted {
    pub computation: ComputationId,
    pub participant: ParticipantId,
    pub lifted_by: Actor,
    pub lifted_at: DateTime<Utc>,
}

/// A participant consented to runs of one manifest: its signature over the manifest id verified
/// with its registered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentSigned {
    /// SHA-256 (hex) of the manifest's canonical encoding.
    pub manifest_id: String,
    pub participant: ParticipantId,
    /// The signature, base64.
    pub signature: String,
    pub signed_by: Actor,
    pub signed_at: DateTime<Utc>,
}

/// A new version of the attestation policy: the computation's own, or the override for runs on one
/// backend. Versions count up from 1 across both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestationPolicySet {
    pub version: u32,
    pub policy: Policy,
    /// The backend whose runs this policy applies to instead of the computation's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendId>,
    /// SHA-256 (hex) of the policy's canonical JSON, as verdicts name it.
    pub policy_sha256: String,
    pub set_by: Actor,
    pub set_at: DateTime<Utc>,
}

/// A computation was defined in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputationCreated {
    pub id: ComputationId,
    pub workspace_id: WorkspaceId,
    pub definition: Definition,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
}

/// Part of a computation's definition changed; only the changed fields are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputationUpdated {
    pub changes: ComputationChanges,
    pub updated_by: Actor,
    pub updated_at: DateTime<Utc>,
}

/// A computation was archived, by a user or by the archiving of its workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputationArchived {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub archived_by: Actor,
    pub archived_at: DateTime<Utc>,
}

/// A participant named by e-mail address is now the user who verified that address: the pending
/// invitation is taken up, and the participant (and any asset it provides) names the user from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantLinked {
    pub email: Email,
    pub user: UserId,
    pub linked_at: DateTime<Utc>,
}

impl DomainEvent for ComputationEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Updated(_) => "updated",
            Self::Archived(_) => "archived",
            Self::ParticipantLinked(_) => "participant_linked",
            Self::AttestationPolicySet(_) => "attestation_policy_set",
            Self::ConsentSigned(_) => "consent_signed",
            Self::ChangeProposed(_) => "change_proposed",
            Self::ChangeApproved(_) => "change_approved",
            Self::ChangeVetoed(_) => "change_vetoed",
            Self::ChangeAdopted(_) => "change_adopted",
            Self::ChangeSuperseded(_) => "change_superseded",
            Self::ChangeThresholdSet(_) => "change_threshold_set",
            Self::ExecutionHalted(_) => "execution_halted",
            Self::HaltLifted(_) => "halt_lifted",
            Self::AssetLinked(_) => "asset_linked",
            Self::AssetUnlinked(_) => "asset_unlinked",
        }
    }
}
