//! Governance of an approved computation: who has a say, how many must agree to a change, vetoes, and
//! halts of execution.
//!
//! A computation is **approved** from the first time every participant holding a public key has signed
//! its manifest. Before that, whoever may change it changes it directly: nobody has agreed to anything
//! yet. From then on, a change that would give the manifest another id — or a new change threshold —
//! is no longer applied when it is asked for: it becomes a **proposal**, which the participants decide
//! on. The participants who decide are the ones who consent: those holding a public key (the
//! algorithm and dataset providers, the result consumers, and anyone else registered with a key). A
//! change to an approved computation is a change to what they signed, so it is theirs to agree to;
//! a viewer, an editor or an administrator who holds no key may propose (with the permission the
//! change needs) but has no vote.
//!
//! A proposal is adopted, in the commit of the vote that reaches the threshold, with the change's own
//! events after `change_adopted`; the new manifest then needs everyone's consent again before a run, as
//! any new manifest does. Any one participant's veto ends it. A proposal made for a manifest that has
//! since changed is superseded (the same commit that changed the manifest records it), since what its
//! voters agreed to is no longer what it would change.
//!
//! Any participant may **halt** execution at any time; the computation stays halted while any
//! participant who halted has not lifted their own halt. Nobody lifts another's halt: a halt is how one
//! party withdraws, and only that party can take it back. Halting twice is refused, so the first reason
//! stays the one on record until it is lifted.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::ComputationChanges;
use super::error::ComputationError;
use super::event::{
    AssetLinked, AssetUnlinked, AttestationPolicySet, ChangeAdopted, ChangeApproved, ChangeProposed,
    ChangeSuperseded, ChangeThresholdSet, ChangeVetoed, ComputationEvent, ComputationUpdated,
    ExecutionHalted, HaltLifted,
};
use super::state::{Computation, ExpectedAsset, LinkedAsset};
use super::{PARTICIPANTS_MAX, REASON_MAX};
use crate::aggregate::{Aggregate, CommandContext};
use crate::asset::AssetKind;
use crate::ids::{Actor, AssetId, BackendId, ParticipantId};
use crate::values::check_text;
use prism_attestation::Policy;

/// How many of the computation's participants must approve a change once it is approved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ThresholdRepr", into = "ThresholdRepr")]
pub enum ChangeThreshold {
    /// Every participant holding a public key (`"all"`).
    #[default]
    All,
    /// At least this many of them (at least 1). When fewer participants remain, all of them.
    AtLeast(u32),
}

impl ChangeThreshold {
    /// The approvals a change needs among `participants` participants: never more than there are,
    /// never fewer than one.
    pub fn required(self, participants: usize) -> usize {
        let wanted = match self {
            Self::All => participants,
            Self::AtLeast(n) => participants.min(n as usize),
        };
        wanted.max(1)
    }
}

impl fmt::Display for ChangeThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

/// How a threshold is written: `"all"` or a number.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ThresholdRepr {
    Count(u32),
    Word(String),
}

impl TryFrom<ThresholdRepr> for ChangeThreshold {
    type Error = String;

    fn try_from(repr: ThresholdRepr) -> Result<Self, Self::Error> {
        match repr {
            ThresholdRepr::Word(word) if word == "all" => Ok(Self::All),
            ThresholdRepr::Word(word) => Err(format!(
                "`{word}` is no change threshold: `all` or a number of participants"
            )),
            ThresholdRepr::Count(0) => Err("a change threshold is at least 1".into()),
            ThresholdRepr::Count(n) => Ok(Self::AtLeast(n)),
        }
    }
}

impl From<ChangeThreshold> for ThresholdRepr {
    fn from(threshold: ChangeThreshold) -> Self {
        match threshold {
            ChangeThreshold::All => Self::Word("all".into()),
            ChangeThreshold::AtLeast(n) => Self::Count(n),
        }
    }
}

impl JsonSchema for ChangeThreshold {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ChangeThreshold".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "How many participants holding a public key must approve a change: `all`, or at least this many.",
            "oneOf": [
                {"type": "string", "const": "all"},
                {"type": "integer", "minimum": 1, "maximum": PARTICIPANTS_MAX}
            ]
        })
    }
}

/// A change of the computation, as it is asked for and, once the computation is approved, as its
/// proposal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// A change of the definition; absent fields keep their value.
    Update(ComputationChanges),
    /// A new attestation policy: the computation's own, or with `backend` the override for runs
    /// placed on that backend.
    AttestationPolicy {
        policy: Box<Policy>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<BackendId>,
    },
    /// A new change threshold.
    ChangeThreshold(ChangeThreshold),
    /// An asset of the workspace linked: the algorithm (in place of its provider's earlier one) or one
    /// more dataset. Asked for by its provider only.
    LinkAsset(LinkedAsset),
    /// A linked asset taken out. Asked for by its provider only.
    UnlinkAsset { asset: AssetId },
}

impl Change {
    /// The change as it would be recorded: a definition change trimmed to the fields it really changes.
    fn minimal(self, current: &Computation) -> Self {
        match self {
            Self::Update(changes) => {
                Self::Update(changes.normalised().without_unchanged(&current.definition))
            }
            other => other,
        }
    }
}

/// One proposed change and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Numbered from 1 within the computation.
    pub id: u32,
    pub change: Change,
    /// The manifest it was proposed for: it can be adopted only while that is the current one.
    pub manifest_id: String,
    /// The participant whose proposal it is, counted as approving it; `None` when it was proposed by
    /// someone without a vote.
    pub proposer: Option<ParticipantId>,
    pub proposed_by: Actor,
    pub proposed_at: DateTime<Utc>,
    /// The participants who approved it (the proposer first among them).
    pub approvals: BTreeSet<ParticipantId>,
    pub status: ProposalStatus,
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waiting for approvals.
    Open,
    /// Approved by enough participants and applied.
    Adopted { at: DateTime<Utc> },
    /// A participant refused it.
    Vetoed {
        by: ParticipantId,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The manifest changed before it was adopted, to this one.
    Superseded { manifest_id: String, at: DateTime<Utc> },
}

impl ProposalStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Adopted { .. } => "adopted",
            Self::Vetoed { .. } => "vetoed",
            Self::Superseded { .. } => "superseded",
        }
    }
}

/// A participant's halt of the computation's execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    pub reason: String,
    pub halted_by: Actor,
    pub since: DateTime<Utc>,
}

impl Computation {
    /// The participants who have a say in changes and execution: those holding a public key, the
    /// same who sign the manifest.
    pub fn governing_participants(&self) -> impl Iterator<Item = &ParticipantId> {
        self.definition
            .participants
            .iter()
            .filter(|p| p.public_key.is_some())
            .map(|p| &p.id)
    }

    pub fn has_say(&self, participant: &ParticipantId) -> bool {
        self.governing_participants().any(|p| p == participant)
    }

    /// How many approvals a change needs now.
    pub fn required_approvals(&self) -> usize {
        self.change_threshold
            .required(self.governing_participants().count())
    }

    /// The approvals of `proposal` that count now: those of participants who still have a say.
    pub fn approvals_counted(&self, proposal: &Proposal) -> usize {
        proposal.approvals.iter().filter(|p| self.has_say(p)).count()
    }

    /// The proposals still waiting for approvals, oldest first.
    pub fn open_proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals
            .values()
            .filter(|p| p.status == ProposalStatus::Open)
    }

    /// Whether a run may be requested now as far as the computation's standing goes: not while it is
    /// archived, and not while any participant's halt holds (the error names every one who halted).
    pub fn execution_allowed(&self) -> Result<(), ComputationError> {
        match self.status {
            super::ComputationStatus::Archived => Err(ComputationError::Archived),
            _ if !self.halts.is_empty() => Err(ComputationError::Halted {
                by: self.halts.keys().cloned().collect(),
            }),
            _ => Ok(()),
        }
    }

    fn current_manifest_id(&self) -> String {
        self.manifest()
            .expect("an active computation has a manifest")
            .id()
    }

    /// What `change` records when applied as it is (nothing when it changes nothing), checked against
    /// the rules it must meet.
    fn applied(
        &self,
        change: &Change,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        match change {
            Change::Update(changes) => {
                let changes = changes.clone().normalised().without_unchanged(&self.definition);
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                self.keeps_links_as_they_are(&changes)?;
                changes.clone().applied_to(self.definition.clone()).validate()?;
                Ok(vec![ComputationEvent::Updated(ComputationUpdated {
                    changes,
                    updated_by: ctx.actor.clone(),
                    updated_at: ctx.now,
                })])
            }
            Change::AttestationPolicy { policy, backend } => {
                // A policy's values are checked by its types (exact byte lengths, ranges): any
                // policy that exists is one the platform can apply.
                let current = match backend {
                    Some(backend) => self.backend_policies.get(backend),
                    None => self.attestation_policy.as_ref(),
                };
                if current.is_some_and(|current| current.policy == **policy) {
                    return Ok(vec![]);
                }
                Ok(vec![ComputationEvent::AttestationPolicySet(Box::new(
                    AttestationPolicySet {
                        version: self.policy_version + 1,
                        policy_sha256: hex::encode(policy.digest()),
                        policy: (**policy).clone(),
                        backend: *backend,
                        set_by: ctx.actor.clone(),
                        set_at: ctx.now,
                    },
                ))])
            }
            Change::ChangeThreshold(threshold) => {
                let participants = self.governing_participants().count();
                if let ChangeThreshold::AtLeast(n) = threshold
                    && (*n == 0 || *n as usize > participants)
                {
                    return Err(ComputationError::ThresholdOutOfRange {
                        threshold: *n,
                        participants,
                    });
                }
                if *threshold == self.change_threshold {
                    return Ok(vec![]);
                }
                Ok(vec![ComputationEvent::ChangeThresholdSet(ChangeThresholdSet {
                    threshold: *threshold,
                    set_by: ctx.actor.clone(),
                    set_at: ctx.now,
                })])
            }
            Change::LinkAsset(link) => {
                if self.definition.linked(link.asset).is_some() {
                    return Err(ComputationError::AssetAlreadyLinked(link.asset));
                }
                match link.kind {
                    AssetKind::Algorithm => {
                        if let Some(current) = &self.definition.algorithm
                            && current.provider != link.provider
                        {
                            return Err(ComputationError::AlgorithmProvidedByAnother {
                                provider: current.provider.clone(),
                            });
                        }
                    }
                    AssetKind::Dataset => {
                        for dataset in &self.definition.datasets {
                            if dataset.name == link.name.as_str() {
                                return Err(ComputationError::DatasetNameTaken {
                                    name: dataset.name.clone(),
                                    provider: dataset.provider.clone(),
                                });
                            }
                            if dataset.hash == link.hash {
                                return Err(ComputationError::DatasetDigestTaken {
                                    hash: dataset.hash.clone(),
                                    provider: dataset.provider.clone(),
                                });
                            }
                        }
                    }
                }
                let events = vec![ComputationEvent::AssetLinked(AssetLinked {
                    asset: link.clone(),
                    linked_by: ctx.actor.clone(),
                    linked_at: ctx.now,
                })];
                self.after(&events).definition.validate()?;
                Ok(events)
            }
            Change::UnlinkAsset { asset } => {
                let (kind, _) = self
                    .definition
                    .linked(*asset)
                    .ok_or(ComputationError::AssetNotLinked(*asset))?;
                Ok(vec![ComputationEvent::AssetUnlinked(AssetUnlinked {
                    asset: *asset,
                    kind,
                    unlinked_by: ctx.actor.clone(),
                    unlinked_at: ctx.now,
                })])
            }
        }
    }

    /// A change of the definition names an asset only where a link put it, exactly as it put it: a
    /// link is made by its provider through [`Change::LinkAsset`], never claimed by an edit.
    fn keeps_links_as_they_are(&self, changes: &ComputationChanges) -> Result<(), ComputationError> {
        let current = &self.definition;
        let algorithm = changes
            .algorithm
            .iter()
            .map(|a| (a, current.algorithm.as_ref() == Some(a)));
        let datasets = changes
            .datasets
            .iter()
            .flatten()
            .map(|d| (d, current.datasets.contains(d)));
        for (entry, as_linked) in algorithm.chain(datasets) {
            if let Some(asset) = entry.asset
                && !as_linked
            {
                return Err(ComputationError::AssetNotAsLinked(asset));
            }
        }
        Ok(())
    }

    /// Whether `by` may ask for `change` as far as assets go: an asset is linked by a participant
    /// holding the role that provides its kind, and only by its provider (its owner, who will send its
    /// file); a linked asset is unlinked by its provider only.
    fn may_change_assets(&self, change: &Change, by: Option<&ParticipantId>) -> Result<(), ComputationError> {
        match change {
            Change::LinkAsset(link) => {
                let by = by.ok_or(ComputationError::NoParticipant)?;
                let role = link.kind.provider_role();
                if !self.definition.has_role(by, role) {
                    return Err(ComputationError::NotAProvider {
                        participant: by.clone(),
                        role,
                    });
                }
                if *by != link.provider {
                    return Err(ComputationError::NotTheProvider {
                        asset: link.asset,
                        provider: link.provider.clone(),
                    });
                }
                Ok(())
            }
            Change::UnlinkAsset { asset } => {
                let (_, entry): (AssetKind, &ExpectedAsset) = self
                    .definition
                    .linked(*asset)
                    .ok_or(ComputationError::AssetNotLinked(*asset))?;
                let by = by.ok_or(ComputationError::NoParticipant)?;
                if *by != entry.provider {
                    return Err(ComputationError::NotTheProvider {
                        asset: *asset,
                        provider: entry.provider.clone(),
                    });
                }
                Ok(())
            }
            Change::Update(_) | Change::AttestationPolicy { .. } | Change::ChangeThreshold(_) => Ok(()),
        }
    }

    /// A change asked for by `by` (the caller as the participant it is, when it is one): applied at
    /// once while the computation is not approved, or when it leaves the manifest as it is; otherwise
    /// proposed, the proposal counting as `by`'s approval when `by` has a say.
    pub(super) fn change(
        &self,
        change: Change,
        by: Option<ParticipantId>,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        let change = change.minimal(self);
        self.may_change_assets(&change, by.as_ref())?;
        let events = self.applied(&change, ctx)?;
        if events.is_empty() || !self.approved {
            return Ok(events);
        }
        // The threshold is not in the manifest, yet lowering it is how a minority would take over
        // every later decision: it needs the current threshold as much as the manifest does.
        let current = self.current_manifest_id();
        if !matches!(change, Change::ChangeThreshold(_))
            && self.after(&events).current_manifest_id() == current
        {
            return Ok(events);
        }
        let proposer = by.filter(|p| self.has_say(p));
        let id = self.proposals.keys().next_back().map_or(1, |last| last + 1);
        Ok(vec![ComputationEvent::ChangeProposed(Box::new(ChangeProposed {
            proposal: id,
            change,
            manifest_id: current,
            proposer,
            proposed_by: ctx.actor.clone(),
            proposed_at: ctx.now,
        }))])
    }

    /// The proposal `id`, if it may still be decided on.
    fn open_proposal(&self, id: u32) -> Result<&Proposal, ComputationError> {
        let proposal = self
            .proposals
            .get(&id)
            .ok_or(ComputationError::ProposalNotFound(id))?;
        if proposal.status != ProposalStatus::Open {
            return Err(ComputationError::ProposalClosed {
                proposal: id,
                status: proposal.status.as_str(),
            });
        }
        let current = self.current_manifest_id();
        if proposal.manifest_id != current {
            return Err(ComputationError::ProposalStale {
                proposal: id,
                proposed_for: proposal.manifest_id.clone(),
                current,
            });
        }
        Ok(proposal)
    }

    fn with_say(&self, participant: &ParticipantId) -> Result<(), ComputationError> {
        if self.has_say(participant) {
            Ok(())
        } else {
            Err(ComputationError::NotAParticipant(participant.clone()))
        }
    }

    /// `participant` approves proposal `id`; reaching the threshold adopts it (see [`Self::settled`]).
    /// The proposal's standing is checked before the voter, so that a closed one is closed for
    /// everyone who asks.
    pub(super) fn approve(
        &self,
        id: u32,
        participant: ParticipantId,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        let proposal = self.open_proposal(id)?;
        self.with_say(&participant)?;
        if proposal.approvals.contains(&participant) {
            return Err(ComputationError::AlreadyApproved {
                proposal: id,
                participant,
            });
        }
        Ok(vec![ComputationEvent::ChangeApproved(ChangeApproved {
            proposal: id,
            participant,
            approved_by: ctx.actor.clone(),
            approved_at: ctx.now,
        })])
    }

    /// `participant` refuses proposal `id`, which ends it. One who approved may still veto: nothing
    /// is agreed until the proposal is adopted.
    pub(super) fn veto(
        &self,
        id: u32,
        participant: ParticipantId,
        reason: String,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        self.open_proposal(id)?;
        let reason = reason.trim().to_owned();
        check_text("reason", &reason, REASON_MAX, true)?;
        self.with_say(&participant)?;
        Ok(vec![ComputationEvent::ChangeVetoed(ChangeVetoed {
            proposal: id,
            participant,
            reason,
            vetoed_by: ctx.actor.clone(),
            vetoed_at: ctx.now,
        })])
    }

    pub(super) fn halt(
        &self,
        participant: ParticipantId,
        reason: String,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        let reason = reason.trim().to_owned();
        check_text("reason", &reason, REASON_MAX, true)?;
        self.with_say(&participant)?;
        if self.halts.contains_key(&participant) {
            return Err(ComputationError::AlreadyHalted(participant));
        }
        Ok(vec![ComputationEvent::ExecutionHalted(ExecutionHalted {
            computation: self.id.expect("an active computation has an id"),
            participant,
            reason,
            halted_by: ctx.actor.clone(),
            halted_at: ctx.now,
        })])
    }

    /// Only the halt `participant` holds is lifted; whether it still has a say does not matter, so
    /// that one removed from the computation can still take back what it did.
    pub(super) fn lift_halt(
        &self,
        participant: ParticipantId,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        if !self.halts.contains_key(&participant) {
            return Err(ComputationError::NotHalted {
                participant,
                halted_by: self.halts.keys().cloned().collect(),
            });
        }
        Ok(vec![ComputationEvent::HaltLifted(HaltLifted {
            computation: self.id.expect("an active computation has an id"),
            participant,
            lifted_by: ctx.actor.clone(),
            lifted_at: ctx.now,
        })])
    }

    /// The state once `events` are applied.
    fn after(&self, events: &[ComputationEvent]) -> Computation {
        let mut state = self.clone();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// `events` followed by what they make follow in the same commit: every open proposal made for
    /// a manifest that is no longer current is superseded, and every open proposal whose approvals
    /// reach the threshold (a vote, a proposer's own approval, a lowered threshold) is adopted — its
    /// change's own events after `change_adopted` —, oldest first, each seeing what the previous did.
    pub(super) fn settled(
        &self,
        mut events: Vec<ComputationEvent>,
        ctx: &CommandContext,
    ) -> Result<Vec<ComputationEvent>, ComputationError> {
        if events.is_empty() {
            return Ok(events);
        }
        let mut state = self.after(&events);
        loop {
            if state.open_proposals().next().is_none() {
                return Ok(events);
            }
            let current = state.current_manifest_id();
            let mut follow: Vec<ComputationEvent> = state
                .open_proposals()
                .filter(|p| p.manifest_id != current)
                .map(|p| {
                    ComputationEvent::ChangeSuperseded(ChangeSuperseded {
                        proposal: p.id,
                        manifest_id: current.clone(),
                        superseded_at: ctx.now,
                    })
                })
                .collect();
            if follow.is_empty() {
                let required = state.required_approvals();
                let Some(ready) = state
                    .open_proposals()
                    .find(|p| state.approvals_counted(p) >= required)
                else {
                    return Ok(events);
                };
                let approvals = ready
                    .approvals
                    .iter()
                    .filter(|p| state.has_say(p))
                    .cloned()
                    .collect();
                follow.push(ComputationEvent::ChangeAdopted(ChangeAdopted {
                    proposal: ready.id,
                    approvals,
                    required: u32::try_from(required).unwrap_or(u32::MAX),
                    adopted_at: ctx.now,
                }));
                follow.extend(state.applied(&ready.change, ctx)?);
            }
            state = state.after(&follow);
            events.extend(follow);
        }
    }

    /// Folds the governance events into the state.
    pub(super) fn apply_governance(&mut self, event: &ComputationEvent) {
        match event {
            ComputationEvent::ChangeProposed(e) => {
                self.proposals.insert(
                    e.proposal,
                    Proposal {
                        id: e.proposal,
                        change: e.change.clone(),
                        manifest_id: e.manifest_id.clone(),
                        proposer: e.proposer.clone(),
                        proposed_by: e.proposed_by.clone(),
                        proposed_at: e.proposed_at,
                        approvals: e.proposer.iter().cloned().collect(),
                        status: ProposalStatus::Open,
                    },
                );
            }
            ComputationEvent::ChangeApproved(e) => {
                if let Some(p) = self.proposals.get_mut(&e.proposal) {
                    p.approvals.insert(e.participant.clone());
                }
            }
            ComputationEvent::ChangeVetoed(e) => {
                if let Some(p) = self.proposals.get_mut(&e.proposal) {
                    p.status = ProposalStatus::Vetoed {
                        by: e.participant.clone(),
                        reason: e.reason.clone(),
                        at: e.vetoed_at,
                    };
                }
            }
            ComputationEvent::ChangeAdopted(e) => {
                if let Some(p) = self.proposals.get_mut(&e.proposal) {
                    p.status = ProposalStatus::Adopted { at: e.adopted_at };
                }
            }
            ComputationEvent::ChangeSuperseded(e) => {
                if let Some(p) = self.proposals.get_mut(&e.proposal) {
                    p.status = ProposalStatus::Superseded {
                        manifest_id: e.manifest_id.clone(),
                        at: e.superseded_at,
                    };
                }
            }
            ComputationEvent::ChangeThresholdSet(e) => self.change_threshold = e.threshold,
            ComputationEvent::ExecutionHalted(e) => {
                self.halts.insert(
                    e.participant.clone(),
                    Halt {
                        reason: e.reason.clone(),
                        halted_by: e.halted_by.clone(),
                        since: e.halted_at,
                    },
                );
            }
            ComputationEvent::HaltLifted(e) => {
                self.halts.remove(&e.participant);
            }
            _ => {}
        }
    }
}
