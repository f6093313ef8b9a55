//! The computation aggregate: who takes part in which role, which algorithm and datasets (by SHA3-256
//! digest) are expected, and who receives the result. Later capabilities (runs, uploads, results) extend
//! this state machine; the definition rules live here.

mod command;
mod error;
mod event;
mod state;

pub use command::{ComputationChanges, ComputationCommand, WorkspaceStanding};
pub use error::{ComputationError, DefinitionError};
pub use event::{
    AttestationPolicySet, ComputationArchived, ComputationCreated, ComputationEvent, ComputationUpdated,
    ConsentSigned, ParticipantLinked,
};
pub use state::{
    Computation, ComputationStatus, ConsentStatus, Definition, ExpectedAsset, Participant, Role,
    VersionedPolicy,
};

use base64::Engine as _;

use crate::aggregate::{Aggregate, CommandContext};
use crate::ids::{ParticipantId, UserId};
use crate::run::manifest::consent_message;
use crate::values::check_text;

pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 4096;
pub const PARTICIPANTS_MAX: usize = 256;
pub const DATASETS_MAX: usize = 256;
pub const ASSET_NAME_MAX: usize = 256;
pub const REASON_MAX: usize = 1024;

impl Aggregate for Computation {
    const TYPE: &'static str = "computation";
    type Command = ComputationCommand;
    type Event = ComputationEvent;
    type Error = ComputationError;

    fn decide(
        &self,
        command: ComputationCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        use ComputationCommand as C;
        use ComputationStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Create {
                    id,
                    workspace_id,
                    workspace,
                    definition,
                },
            ) => {
                match workspace {
                    WorkspaceStanding::Missing => return Err(ComputationError::WorkspaceNotFound),
                    WorkspaceStanding::Archived => return Err(ComputationError::WorkspaceArchived),
                    WorkspaceStanding::Active => {}
                }
                let definition = definition.normalised();
                definition.validate()?;
                Ok(vec![ComputationEvent::Created(ComputationCreated {
                    id,
                    workspace_id,
                    definition,
                    created_by: ctx.actor.clone(),
                    created_at: ctx.now,
                })])
            }
            (S::New, _) => Err(ComputationError::NotFound),
            (_, C::Create { .. }) => Err(ComputationError::AlreadyExists),
            (S::Archived, C::Archive { .. }) => Err(ComputationError::AlreadyArchived),
            (S::Archived, C::Update(_) | C::SetAttestationPolicy { .. } | C::SignConsent { .. }) => {
                Err(ComputationError::Archived)
            }
            (
                S::Active,
                C::SignConsent {
                    participant,
                    manifest_id,
                    signature,
                },
            ) => {
                let current = self
                    .manifest()
                    .expect("an active computation has a manifest")
                    .id();
                if manifest_id != current {
                    return Err(ComputationError::ManifestChanged { current });
                }
                let key = self
                    .definition
                    .participant(&participant)
                    .and_then(|p| p.public_key.as_ref())
                    .ok_or_else(|| ComputationError::NotASigner(participant.clone()))?;
                key.verify(&consent_message(&manifest_id), &signature)?;
                let signature = base64::engine::general_purpose::STANDARD.encode(signature);
                let already = self.consents.get(&manifest_id).and_then(|c| c.get(&participant));
                if already == Some(&signature) {
                    return Ok(vec![]);
                }
                Ok(vec![ComputationEvent::ConsentSigned(ConsentSigned {
                    manifest_id,
                    participant,
                    signature,
                    signed_by: ctx.actor.clone(),
                    signed_at: ctx.now,
                })])
            }
            // An archived computation keeps the record of who was invited; there is nothing to join.
            (S::Archived, C::LinkParticipant { .. }) => Ok(vec![]),
            (S::Active, C::LinkParticipant { email }) => {
                let invited = ParticipantId::Invited(email.clone());
                if self.definition.participant(&invited).is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![ComputationEvent::ParticipantLinked(ParticipantLinked {
                    user: UserId::for_email(&email),
                    email,
                    linked_at: ctx.now,
                })])
            }
            (S::Active, C::Update(changes)) => {
                let changes = changes.normalised().without_unchanged(&self.definition);
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                changes.clone().applied_to(self.definition.clone()).validate()?;
                Ok(vec![ComputationEvent::Updated(ComputationUpdated {
                    changes,
                    updated_by: ctx.actor.clone(),
                    updated_at: ctx.now,
                })])
            }
            (S::Active, C::SetAttestationPolicy { policy, backend }) => {
                // A policy's values are checked by its types (exact byte lengths, ranges): any
                // policy that exists is one the platform can apply.
                let current = match backend {
                    Some(backend) => self.backend_policies.get(&backend),
                    None => self.attestation_policy.as_ref(),
                };
                if current.is_some_and(|current| current.policy == *policy) {
                    return Ok(vec![]);
                }
                Ok(vec![ComputationEvent::AttestationPolicySet(Box::new(
                    AttestationPolicySet {
                        version: self.policy_version + 1,
                        policy_sha256: hex::encode(policy.digest()),
                        policy: *policy,
                        backend,
                        set_by: ctx.actor.clone(),
                        set_at: ctx.now,
                    },
                ))])
            }
            (S::Active, C::Archive { reason }) => {
                if let Some(reason) = &reason {
                    check_text("reason", reason, REASON_MAX, false)?;
                }
                Ok(vec![ComputationEvent::Archived(ComputationArchived {
                    reason,
                    archived_by: ctx.actor.clone(),
                    archived_at: ctx.now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &ComputationEvent) {
        match event {
            ComputationEvent::Created(e) => {
                self.status = ComputationStatus::Active;
                self.id = Some(e.id);
                self.workspace_id = Some(e.workspace_id);
                self.definition = e.definition.clone();
            }
            ComputationEvent::Updated(e) => {
                self.definition = e.changes.clone().applied_to(std::mem::take(&mut self.definition));
            }
            ComputationEvent::Archived(_) => self.status = ComputationStatus::Archived,
            ComputationEvent::ParticipantLinked(e) => self.definition.link(&e.email, e.user),
            ComputationEvent::ConsentSigned(e) => {
                self.consents
                    .entry(e.manifest_id.clone())
                    .or_default()
                    .insert(e.participant.clone(), e.signature.clone());
            }
            ComputationEvent::AttestationPolicySet(e) => {
                self.policy_version = e.version;
                let versioned = VersionedPolicy {
                    version: e.version,
                    policy: e.policy.clone(),
                };
                match e.backend {
                    Some(backend) => {
                        self.backend_policies.insert(backend, versioned);
                    }
                    None => self.attestation_policy = Some(versioned),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
