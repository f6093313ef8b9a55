//! Governance of a computation once its participants have approved it: proposed changes and the
//! participants' approvals and vetoes, the change threshold, and halts of execution. The rules are the
//! aggregate's (`prism_domain::computation::governance`); this service authorises, says who the
//! caller is as a participant, and answers from the aggregate's state, which is where the votes are
//! counted.
//!
//! Voting, vetoing and halting ask for `computation.consent`, the permission of those who sign the
//! manifest: the domain then accepts them only from a participant holding a key, so a role that grants
//! the permission without a key (a workspace or platform administrator) gives no vote. Proposing asks
//! for what the change itself asks for.

use chrono::{DateTime, Utc};
use prism_domain::access::Permission;
use prism_domain::computation::{
    Change, ChangeThreshold, Computation, ComputationCommand, ComputationEvent, Proposal, ProposalStatus,
};
use prism_domain::{Actor, Aggregate, ComputationId, ParticipantId, WorkspaceId};
use serde::Serialize;

use crate::{App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, Target};

const WHAT: &str = "computation";

#[derive(Debug, Clone, Copy)]
pub struct Governance<'a> {
    app: &'a App,
}

/// Who decides on a computation's changes, how many must agree, what is proposed and who halted.
#[derive(Debug, Clone, Serialize)]
pub struct GovernanceView {
    pub computation: ComputationId,
    /// Whether every participant with a key has signed a manifest once: from then on, changes of the
    /// manifest are proposals.
    pub approved: bool,
    pub threshold: ChangeThreshold,
    /// How many approvals a change needs now.
    pub required_approvals: usize,
    /// The participants with a say: those holding a public key.
    pub participants: Vec<ParticipantId>,
    pub manifest_id: String,
    pub halted: bool,
    pub halts: Vec<HaltView>,
    /// The numbers of the proposals waiting for approvals.
    pub open_proposals: Vec<u32>,
}

/// One participant's halt.
#[derive(Debug, Clone, Serialize)]
pub struct HaltView {
    pub participant: ParticipantId,
    pub reason: String,
    pub halted_by: Actor,
    pub since: DateTime<Utc>,
}

/// A proposed change, its votes and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct ProposalView {
    pub id: u32,
    /// `open`, `adopted`, `vetoed` or `superseded`.
    pub status: &'static str,
    pub change: Change,
    /// The manifest it was proposed for.
    pub manifest_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposer: Option<ParticipantId>,
    pub proposed_by: Actor,
    pub proposed_at: DateTime<Utc>,
    pub approvals: Vec<ParticipantId>,
    /// How many approvals it needs (now, while it is open).
    pub required_approvals: usize,
    /// The participants whose approval it still lacks, while it is open.
    pub awaiting: Vec<ParticipantId>,
    /// When it was adopted, vetoed or superseded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vetoed_by: Option<ParticipantId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub veto_reason: Option<String>,
    /// The manifest that superseded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

impl ProposalView {
    pub fn of(state: &Computation, proposal: &Proposal) -> Self {
        let open = proposal.status == ProposalStatus::Open;
        let awaiting = if open {
            state
                .governing_participants()
                .filter(|p| !proposal.approvals.contains(*p))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let (decided_at, vetoed_by, veto_reason, superseded_by) = match &proposal.status {
            ProposalStatus::Open => (None, None, None, None),
            ProposalStatus::Adopted { at } => (Some(*at), None, None, None),
            ProposalStatus::Vetoed { by, reason, at } => {
                (Some(*at), Some(by.clone()), Some(reason.clone()), None)
            }
            ProposalStatus::Superseded { manifest_id, at } => {
                (Some(*at), None, None, Some(manifest_id.clone()))
            }
        };
        Self {
            id: proposal.id,
            status: proposal.status.as_str(),
            change: proposal.change.clone(),
            manifest_id: proposal.manifest_id.clone(),
            proposer: proposal.proposer.clone(),
            proposed_by: proposal.proposed_by.clone(),
            proposed_at: proposal.proposed_at,
            approvals: proposal.approvals.iter().cloned().collect(),
            required_approvals: state.required_approvals(),
            awaiting,
            decided_at,
            vetoed_by,
            veto_reason,
            superseded_by,
        }
    }
}

impl GovernanceView {
    pub fn of(state: &Computation) -> Self {
        Self {
            computation: state.id.expect("an existing computation has an id"),
            approved: state.approved,
            threshold: state.change_threshold,
            required_approvals: state.required_approvals(),
            participants: state.governing_participants().cloned().collect(),
            manifest_id: state
                .manifest()
                .expect("an existing computation has a manifest")
                .id(),
            halted: !state.halts.is_empty(),
            halts: state
                .halts
                .iter()
                .map(|(participant, halt)| HaltView {
                    participant: participant.clone(),
                    reason: halt.reason.clone(),
                    halted_by: halt.halted_by.clone(),
                    since: halt.since,
                })
                .collect(),
            open_proposals: state.open_proposals().map(|p| p.id).collect(),
        }
    }
}

/// What became of a change asked for.
#[derive(Debug, Clone)]
pub enum ChangeOutcome {
    /// Applied at once: the computation is not approved yet, or the manifest stays as it was.
    Applied(Executed<Computation>),
    /// It changes nothing.
    Unchanged(Executed<Computation>),
    /// It waits for the participants' approval (or was adopted at once, when the proposer's own
    /// approval was enough).
    Proposed(Executed<Computation>, Box<ProposalView>),
}

impl ChangeOutcome {
    pub fn executed(&self) -> &Executed<Computation> {
        match self {
            Self::Applied(e) | Self::Unchanged(e) | Self::Proposed(e, _) => e,
        }
    }
}

/// Which proposals a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalFilter {
    All,
    Open,
    Adopted,
    Vetoed,
    Superseded,
}

impl ProposalFilter {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "open" => Self::Open,
            "adopted" => Self::Adopted,
            "vetoed" => Self::Vetoed,
            "superseded" => Self::Superseded,
            _ => return None,
        })
    }

    fn admits(self, status: &ProposalStatus) -> bool {
        match self {
            Self::All => true,
            Self::Open => status.as_str() == "open",
            Self::Adopted => status.as_str() == "adopted",
            Self::Vetoed => status.as_str() == "vetoed",
            Self::Superseded => status.as_str() == "superseded",
        }
    }
}

impl<'a> Governance<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The computation of `workspace`, as the log has it now (the votes are counted on it).
    async fn state(&self, workspace: WorkspaceId, id: ComputationId) -> Result<Computation, AppError> {
        let state = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().load(&id).await?.state) })
            .await?;
        if state.workspace_id != Some(workspace) {
            return Err(not_found(id));
        }
        Ok(state)
    }

    async fn read(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<Computation, AppError> {
        self.app
            .authorize(
                caller,
                crate::Action::on_computation(Permission::ComputationRead, workspace, id),
            )
            .await?;
        self.state(workspace, id).await
    }

    /// Who decides, the threshold, open proposals and halts (`computation.read`).
    pub async fn overview(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<GovernanceView, AppError> {
        Ok(GovernanceView::of(&self.read(caller, workspace, id).await?))
    }

    /// The computation's proposals, oldest first (`computation.read`).
    pub async fn proposals(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
        filter: ProposalFilter,
    ) -> Result<Vec<ProposalView>, AppError> {
        let state = self.read(caller, workspace, id).await?;
        Ok(state
            .proposals
            .values()
            .filter(|p| filter.admits(&p.status))
            .map(|p| ProposalView::of(&state, p))
            .collect())
    }

    /// One proposal (`computation.read`).
    pub async fn proposal(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
        proposal: u32,
    ) -> Result<ProposalView, AppError> {
        let state = self.read(caller, workspace, id).await?;
        view_of(&state, id, proposal)
    }

    /// Asks for `change`: applied at once, or proposed once the computation is approved. Asks for the
    /// permissions the change itself needs (`computation.update`, and for participants
    /// `computation.participants.manage`).
    pub async fn propose(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        change: Change,
    ) -> Result<ChangeOutcome, AppError> {
        let computations = self.app.computations();
        let executed = match change {
            Change::Update(changes) => {
                computations
                    .update(caller, options, workspace, id, changes)
                    .await?
            }
            Change::AttestationPolicy { policy, backend } => {
                computations
                    .set_attestation_policy(caller, options, workspace, id, *policy, backend)
                    .await?
            }
            Change::ChangeThreshold(threshold) => {
                return self
                    .set_threshold(caller, options, workspace, id, threshold)
                    .await;
            }
            // What is linked is read from the asset itself, never taken from the request.
            Change::LinkAsset(linked) => {
                return self
                    .app
                    .assets()
                    .link(caller, options, workspace, id, linked.asset)
                    .await;
            }
            Change::UnlinkAsset { asset } => {
                return self
                    .app
                    .assets()
                    .unlink(caller, options, workspace, id, asset)
                    .await;
            }
        };
        self.outcome(caller, executed).await
    }

    /// Sets how many participants must approve a change (`computation.update`): directly before the
    /// computation is approved, as a proposal after.
    pub async fn set_threshold(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        threshold: ChangeThreshold,
    ) -> Result<ChangeOutcome, AppError> {
        #[derive(Serialize)]
        struct Input {
            threshold: ChangeThreshold,
        }
        let command = Command {
            what: WHAT,
            operation: "set_change_threshold",
            permission: Permission::ComputationUpdate,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &Input { threshold },
        };
        self.app
            .authorize_command::<Computation, _>(caller, &command)
            .await?;
        let before = self.state(workspace, id).await?;
        let by = participant(caller);
        let executed = self
            .app
            .execute_authorized(caller, options, command, |_| ComputationCommand::Change {
                change: Change::ChangeThreshold(threshold),
                by: by.clone(),
            })
            .await?;
        // A lower threshold may adopt a proposal that already meets it, which may name new participants.
        let named_before: Vec<ParticipantId> =
            before.definition.participants.into_iter().map(|p| p.id).collect();
        self.app.computations().invite(&executed, &named_before);
        self.outcome(caller, executed).await
    }

    /// The caller, as the participant it is, approves proposal `proposal` (`computation.consent`);
    /// the approval that reaches the threshold adopts it.
    pub async fn approve(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        proposal: u32,
    ) -> Result<ProposalView, AppError> {
        #[derive(Serialize)]
        struct Input {
            proposal: u32,
        }
        let input = Input { proposal };
        let (participant, before) = self
            .as_participant(caller, workspace, id, "approve", &input)
            .await?;
        let executed = self
            .app
            .execute_authorized(
                caller,
                options,
                command("approve_change", id, workspace, &input),
                |_| ComputationCommand::ApproveChange {
                    proposal,
                    participant,
                },
            )
            .await?;
        // An adopted change that names new participants invites them, as a direct change does.
        let named_before: Vec<ParticipantId> =
            before.definition.participants.into_iter().map(|p| p.id).collect();
        self.app.computations().invite(&executed, &named_before);
        view_of(&executed.outcome.state, id, proposal)
    }

    /// The caller, as the participant it is, refuses proposal `proposal` (`computation.consent`).
    pub async fn veto(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        proposal: u32,
        reason: String,
    ) -> Result<ProposalView, AppError> {
        #[derive(Serialize)]
        struct Input<'a> {
            proposal: u32,
            reason: &'a str,
        }
        let input = Input {
            proposal,
            reason: &reason,
        };
        let (participant, _) = self.as_participant(caller, workspace, id, "veto", &input).await?;
        let executed = self
            .app
            .execute_authorized(
                caller,
                options,
                command("veto_change", id, workspace, &input),
                |_| ComputationCommand::VetoChange {
                    proposal,
                    participant,
                    reason: reason.clone(),
                },
            )
            .await?;
        view_of(&executed.outcome.state, id, proposal)
    }

    /// The caller, as the participant it is, halts the computation's execution
    /// (`computation.consent`): no run is requested until it, and every other participant who
    /// halted, has lifted its halt.
    pub async fn halt(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        reason: String,
    ) -> Result<GovernanceView, AppError> {
        #[derive(Serialize)]
        struct Input<'a> {
            reason: &'a str,
        }
        let input = Input { reason: &reason };
        let (participant, _) = self.as_participant(caller, workspace, id, "halt", &input).await?;
        let executed = self
            .app
            .execute_authorized(
                caller,
                options,
                command("halt_execution", id, workspace, &input),
                |_| ComputationCommand::HaltExecution {
                    participant,
                    reason: reason.clone(),
                },
            )
            .await?;
        Ok(GovernanceView::of(&executed.outcome.state))
    }

    /// The caller lifts its own halt (`computation.consent`).
    pub async fn lift_halt(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<GovernanceView, AppError> {
        let (participant, _) = self.as_participant(caller, workspace, id, "lift", &()).await?;
        let executed = self
            .app
            .execute_authorized(caller, options, command("lift_halt", id, workspace, &()), |_| {
                ComputationCommand::LiftHalt { participant }
            })
            .await?;
        Ok(GovernanceView::of(&executed.outcome.state))
    }

    /// Authorises a participant's act (`computation.consent`) and names the caller as the participant
    /// it is; the computation as it is now.
    async fn as_participant<I: Serialize>(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
        what: &str,
        input: &I,
    ) -> Result<(ParticipantId, Computation), AppError> {
        self.app
            .authorize_command::<Computation, _>(caller, &command("participate", id, workspace, input))
            .await?;
        // After authorising, so that a caller without a credential is told to sign in (401).
        let Some(by) = participant(caller) else {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                format!("only a participant signed in as a user can {what}"),
            ));
        };
        let state = self.state(workspace, id).await?;
        Ok((by, state))
    }

    /// What `executed` did with the change: for a retry answered with the first result, read from
    /// that commit, as a retry records nothing itself.
    pub(crate) async fn outcome(
        &self,
        caller: &Caller,
        executed: Executed<Computation>,
    ) -> Result<ChangeOutcome, AppError> {
        let outcome = &executed.outcome;
        let proposed = if outcome.replayed {
            self.proposed_in_commit(caller, &executed).await?
        } else {
            outcome.events.iter().find_map(|e| match e {
                ComputationEvent::ChangeProposed(p) => Some(p.proposal),
                _ => None,
            })
        };
        if let Some(number) = proposed {
            let id = executed.id.parse().map_err(AppError::internal)?;
            let view = view_of(&outcome.state, id, number)?;
            return Ok(ChangeOutcome::Proposed(executed, Box::new(view)));
        }
        if outcome.events.is_empty() && !outcome.replayed {
            Ok(ChangeOutcome::Unchanged(executed))
        } else {
            Ok(ChangeOutcome::Applied(executed))
        }
    }

    /// The proposal the commit a retry names made, if it made one: the computation's commits are read
    /// (and verified) from the log, and only a keyed commit whose proposal this caller made counts.
    async fn proposed_in_commit(
        &self,
        caller: &Caller,
        executed: &Executed<Computation>,
    ) -> Result<Option<u32>, AppError> {
        let log = self.app.log();
        let subject = log
            .subjects()
            .aggregate(Computation::TYPE, &executed.id)
            .map_err(AppError::internal)?;
        let commits = self.app.bounded(async { Ok(log.load(&subject).await?) }).await?;
        let Some(commit) = commits
            .into_iter()
            .find(|c| c.sequence == executed.outcome.sequence && c.fingerprint.is_some())
        else {
            return Ok(None);
        };
        Ok(commit.events.iter().find_map(|envelope| {
            (envelope.ty.starts_with("io.prism.computation.change_proposed.")
                && envelope.actor == caller.actor.0)
                .then(|| envelope.data["proposal"].as_u64())
                .flatten()
                .and_then(|n| u32::try_from(n).ok())
        }))
    }
}

/// The caller as a participant: the user it is (through a session or one of its API keys).
fn participant(caller: &Caller) -> Option<ParticipantId> {
    caller.user().map(|user| ParticipantId::User(user.id))
}

fn command<'a, I: Serialize>(
    operation: &'static str,
    id: ComputationId,
    workspace: WorkspaceId,
    input: &'a I,
) -> Command<'a, I> {
    Command {
        what: WHAT,
        operation,
        permission: Permission::ComputationConsent,
        target: Target::Existing(id.to_string()),
        workspace: Some(workspace),
        input,
    }
}

fn view_of(state: &Computation, id: ComputationId, proposal: u32) -> Result<ProposalView, AppError> {
    state
        .proposals
        .get(&proposal)
        .map(|p| ProposalView::of(state, p))
        .ok_or_else(|| AppError::not_found(format!("proposal {proposal} of computation {id} not found")))
}

fn not_found(id: ComputationId) -> AppError {
    AppError::not_found(format!("computation {id} not found"))
}
