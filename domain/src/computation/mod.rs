//! The computation aggregate: who takes part in which role, which algorithm and datasets (by SHA3-256
//! digest) are expected, and who receives the result; the participants' consent to its manifest, and
//! once they have all consented, their governance of its changes and execution ([`governance`]).
//! The algorithm and datasets are declared in the definition, or linked by their providers from the
//! workspace's assets ([`crate::asset`], [`Change::LinkAsset`]).
//! Runs are an aggregate of their own; the definition rules live here.

mod command;
mod error;
mod event;
pub mod governance;
mod state;

pub use command::{ComputationChanges, ComputationCommand, ComputationImport, WorkspaceStanding};
pub use error::{ComputationError, DefinitionError};
pub use event::{
    AssetLinked, AssetUnlinked, AttestationPolicySet, ChangeAdopted, ChangeApproved, ChangeProposed,
    ChangeSuperseded, ChangeThresholdSet, ChangeVetoed, ComputationArchived, ComputationCreated,
    ComputationEvent, ComputationUpdated, ConsentSigned, ExecutionHalted, HaltLifted, ParticipantLinked,
};
pub use governance::{Change, ChangeThreshold, Halt, Proposal, ProposalStatus};
pub use state::{
    Computation, ComputationStatus, ConsentStatus, Definition, ExpectedAsset, LinkedAsset, Participant, Role,
    VersionedPolicy,
};

use base64::Engine as _;

use crate::aggregate::{Aggregate, CommandContext};
use crate::asset::AssetKind;
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
    // 2: the state carries whether the computation is approved, which is folded from its consents.
    const SNAPSHOT_VERSION: u32 = 2;
    type Command = ComputationCommand;
    type Event = ComputationEvent;
    type Error = ComputationError;

    fn decide(
        &self,
        command: ComputationCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        let events = self.decide_command(command, ctx)?;
        // Whatever changed the manifest or the approvals, its consequences for open proposals are
        // recorded in the same commit, so no reader ever sees a stale proposal still open.
        self.settled(events, ctx)
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
            ComputationEvent::AssetLinked(e) => self.definition.link_asset(&e.asset),
            ComputationEvent::AssetUnlinked(e) => self.definition.unlink_asset(e.asset),
            ComputationEvent::ConsentSigned(e) => {
                self.consents
                    .entry(e.manifest_id.clone())
                    .or_default()
                    .insert(e.participant.clone(), e.signature.clone());
                if !self.approved
                    && self
                        .consent_status()
                        .is_some_and(|status| status.manifest_id == e.manifest_id && status.is_complete())
                {
                    self.approved = true;
                }
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
            ComputationEvent::ChangeProposed(_)
            | ComputationEvent::ChangeApproved(_)
            | ComputationEvent::ChangeVetoed(_)
            | ComputationEvent::ChangeAdopted(_)
            | ComputationEvent::ChangeSuperseded(_)
            | ComputationEvent::ChangeThresholdSet(_)
            | ComputationEvent::ExecutionHalted(_)
            | ComputationEvent::HaltLifted(_) => self.apply_governance(event),
        }
    }
}

impl Computation {
    fn decide_command(
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
                // Nothing is linked yet: an asset is linked by its provider once the computation exists.
                if let Some((_, entry)) = definition.linked_assets().next() {
                    return Err(ComputationError::AssetNotAsLinked(
                        entry.asset.expect("a linked entry names its asset"),
                    ));
                }
                definition.validate()?;
                Ok(vec![ComputationEvent::Created(ComputationCreated {
                    id,
                    workspace_id,
                    definition,
                    created_by: ctx.actor.clone(),
                    created_at: ctx.now,
                })])
            }
            (
                S::New,
                C::Import {
                    id,
                    workspace_id,
                    workspace,
                    import,
                },
            ) => {
                // Each part as its own command would record it, on the state the parts before it
                // leave: the same rules, and one commit.
                let ComputationImport {
                    definition,
                    attestation_policy,
                    backend_policies,
                    change_threshold,
                    linked,
                } = *import;
                // An entry linked from an asset must be what linking that very asset makes it (of
                // its kind, its provider, digest and name); created without the links, it then
                // keeps them — a link a document claims is checked, never taken on its word.
                let algorithm = definition
                    .algorithm
                    .iter()
                    .map(|entry| (AssetKind::Algorithm, entry));
                let datasets = definition
                    .datasets
                    .iter()
                    .map(|entry| (AssetKind::Dataset, entry));
                for (kind, entry) in algorithm.chain(datasets) {
                    if let Some(asset) = entry.asset {
                        let record = linked.iter().find(|l| l.asset == asset && l.kind == kind);
                        if record.is_none_or(|record| ExpectedAsset::linked(record) != *entry) {
                            return Err(ComputationError::AssetNotAsLinked(asset));
                        }
                    }
                }
                let mut unlinked = definition.clone();
                for entry in unlinked.algorithm.iter_mut().chain(unlinked.datasets.iter_mut()) {
                    entry.asset = None;
                }
                let mut state = self.clone();
                let mut events = Vec::new();
                let create = C::Create {
                    id,
                    workspace_id,
                    workspace,
                    definition: unlinked,
                };
                let policies = attestation_policy.map(|policy| (None, policy)).into_iter().chain(
                    backend_policies
                        .into_iter()
                        .map(|(backend, policy)| (Some(backend), policy)),
                );
                let settings = policies
                    .map(|(backend, policy)| C::SetAttestationPolicy {
                        policy: Box::new(policy),
                        backend,
                    })
                    .chain(
                        (change_threshold != ChangeThreshold::default()).then_some(C::Change {
                            change: Change::ChangeThreshold(change_threshold),
                            by: None,
                        }),
                    );
                for command in std::iter::once(create).chain(settings) {
                    for event in state.decide_command(command, ctx)? {
                        state.apply(&event);
                        events.push(event);
                    }
                }
                if let Some(ComputationEvent::Created(created)) = events.first_mut() {
                    created.definition = definition.normalised();
                }
                Ok(events)
            }
            (S::New, _) => Err(ComputationError::NotFound),
            (_, C::Create { .. } | C::Import { .. }) => Err(ComputationError::AlreadyExists),
            (S::Archived, C::Archive { .. }) => Err(ComputationError::AlreadyArchived),
            (
                S::Archived,
                C::Update(_)
                | C::SetAttestationPolicy { .. }
                | C::SignConsent { .. }
                | C::Change { .. }
                | C::ApproveChange { .. }
                | C::VetoChange { .. }
                | C::HaltExecution { .. }
                | C::LiftHalt { .. },
            ) => Err(ComputationError::Archived),
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
            (S::Active, C::Update(changes)) => self.change(Change::Update(changes), None, ctx),
            (S::Active, C::SetAttestationPolicy { policy, backend }) => {
                self.change(Change::AttestationPolicy { policy, backend }, None, ctx)
            }
            (S::Active, C::Change { change, by }) => self.change(change, by, ctx),
            (
                S::Active,
                C::ApproveChange {
                    proposal,
                    participant,
                },
            ) => self.approve(proposal, participant, ctx),
            (
                S::Active,
                C::VetoChange {
                    proposal,
                    participant,
                    reason,
                },
            ) => self.veto(proposal, participant, reason, ctx),
            (S::Active, C::HaltExecution { participant, reason }) => self.halt(participant, reason, ctx),
            (S::Active, C::LiftHalt { participant }) => self.lift_halt(participant, ctx),
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
}

#[cfg(test)]
mod tests;
