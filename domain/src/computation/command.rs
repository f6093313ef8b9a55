use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::governance::{Change, ChangeThreshold};
use super::state::{Definition, ExpectedAsset, LinkedAsset, Participant};
use prism_attestation::Policy;

use crate::ids::{BackendId, ComputationId, ParticipantId, WorkspaceId};
use crate::run::RunLimits;
use crate::values::Email;

/// What the application layer found out about the workspace before asking: computations can only be
/// created in an active workspace. (A workspace archived concurrently is caught by the archive reaction.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceStanding {
    Active,
    Archived,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputationCommand {
    Create {
        id: ComputationId,
        workspace_id: WorkspaceId,
        workspace: WorkspaceStanding,
        definition: Definition,
    },
    /// Defines a computation from an exported one ([`ComputationImport`]): its definition, attestation
    /// policies and change threshold, in one commit, as [`ComputationCommand::Create`] followed by
    /// each setting would record them. It starts unapproved: consent is to this computation's manifest.
    Import {
        id: ComputationId,
        workspace_id: WorkspaceId,
        workspace: WorkspaceStanding,
        import: Box<ComputationImport>,
    },
    /// [`ComputationCommand::Change`] of the definition by no participant.
    Update(ComputationChanges),
    Archive {
        reason: Option<String>,
    },
    /// The holder of `email` has verified it: a participant named by that address becomes their user.
    /// Nothing happens when no participant is named by it (any more).
    LinkParticipant {
        email: Email,
    },
    /// Sets the attestation policy its runs' evidence is appraised against: the computation's own
    /// (`backend` absent), or the one that overrides it for runs placed on `backend`. The same as
    /// [`ComputationCommand::Change`] of the policy by no participant.
    SetAttestationPolicy {
        policy: Box<Policy>,
        backend: Option<BackendId>,
    },
    /// `participant` consents to runs of the manifest with id `manifest_id` — which must be the
    /// computation's current one — by `signature` over [`crate::run::manifest::consent_message`]
    /// made with its registered key.
    SignConsent {
        participant: ParticipantId,
        manifest_id: String,
        signature: Vec<u8>,
    },
    /// A change asked for by `by`, the caller as the participant it is (`None` when it is none):
    /// applied at once while the computation is not approved or when it leaves the manifest as it is;
    /// otherwise proposed, the proposal counting as `by`'s approval when `by` has a say (see
    /// [`super::governance`]).
    Change {
        change: Change,
        by: Option<ParticipantId>,
    },
    /// `participant` approves proposal `proposal`.
    ApproveChange {
        proposal: u32,
        participant: ParticipantId,
    },
    /// `participant` refuses proposal `proposal`, which ends it.
    VetoChange {
        proposal: u32,
        participant: ParticipantId,
        reason: String,
    },
    /// `participant` halts the computation's execution until it lifts its halt.
    HaltExecution {
        participant: ParticipantId,
        reason: String,
    },
    /// `participant` lifts its own halt.
    LiftHalt {
        participant: ParticipantId,
    },
}

/// A partial change of the definition; `None` keeps the current value. Lists replace the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputationChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<Participant>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<ExpectedAsset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasets: Option<Vec<ExpectedAsset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RunLimits>,
}

impl ComputationChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub(crate) fn normalised(mut self) -> Self {
        self.name = self.name.map(|n| n.trim().to_owned());
        self
    }

    /// Drops fields whose new value equals the current one, so the event records real changes only.
    pub(crate) fn without_unchanged(mut self, current: &Definition) -> Self {
        self.name = self.name.filter(|v| *v != current.name);
        self.description = self.description.filter(|v| *v != current.description);
        self.participants = self.participants.filter(|v| *v != current.participants);
        self.algorithm = self.algorithm.filter(|v| Some(v) != current.algorithm.as_ref());
        self.datasets = self.datasets.filter(|v| *v != current.datasets);
        self.limits = self.limits.filter(|v| *v != current.limits);
        self
    }

    pub(crate) fn applied_to(self, mut definition: Definition) -> Definition {
        if let Some(v) = self.name {
            definition.name = v;
        }
        if let Some(v) = self.description {
            definition.description = v;
        }
        if let Some(v) = self.participants {
            definition.participants = v;
        }
        if let Some(v) = self.algorithm {
            definition.algorithm = Some(v);
        }
        if let Some(v) = self.datasets {
            definition.datasets = v;
        }
        if let Some(v) = self.limits {
            definition.limits = v;
        }
        definition
    }
}

/// What defines a computation, as it travels between workspaces (exported by one, imported by
/// another): everything the participants consent to, nothing of its history. Consents, proposals,
/// halts and runs stay with the computation they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputationImport {
    pub definition: Definition,
    /// The computation's own attestation policy; `None`: the platform's default.
    pub attestation_policy: Option<Policy>,
    /// The policies that replace it for runs placed on a backend.
    pub backend_policies: BTreeMap<BackendId, Policy>,
    pub change_threshold: ChangeThreshold,
    /// The records of the workspace's assets the definition's entries name as linked: each such
    /// entry must be exactly what linking that asset would make it.
    pub linked: Vec<LinkedAsset>,
}
