use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::ComputationChanges;
use super::state::Definition;
use crate::aggregate::DomainEvent;
use prism_attestation::Policy;

use crate::ids::{Actor, BackendId, ComputationId, ParticipantId, UserId, WorkspaceId};
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
        }
    }
}
