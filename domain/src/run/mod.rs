//! The run aggregate: one execution of a computation, from the request through provisioning, the
//! agent's arrival, attestation, the participants' inputs, execution and results to cleanup. The
//! state machine is one table, [`transitions`]: deciding consults it, so a step it does not list is
//! a domain rejection, and `docs/run-states.md` is rendered from it ([`state_diagram`]).

mod command;
mod error;
mod event;
pub mod manifest;
mod state;

pub use command::RunCommand;
pub use error::RunError;
pub use event::{
    ReceiptKind, RunAttested, RunClosed, RunEnding, RunEvent, RunProvisioningStarted, RunReceipt,
    RunRequested, RunResultsReady, RunStep, RunUsage,
};
pub use manifest::{Manifest, RunLimits};
pub use state::{Run, RunStatus};

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::aggregate::{Aggregate, CommandContext};
use crate::ids::{CvmId, RunId};
use crate::values::{PublicKey, check_text};

pub const REASON_MAX: usize = 1024;

/// The id of the CVM made for `run`: derived from the run's, so that asking for it again (a
/// redelivered event) meets the same CVM instead of making a second one.
pub fn cvm_of(run: RunId) -> CvmId {
    CvmId(uuid::Uuid::new_v5(&run.0, b"cvm"))
}

/// One step of the machine: from a state, an event (by name) leads to a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: RunStatus,
    pub event: &'static str,
    pub to: RunStatus,
}

/// The whole state machine.
pub fn transitions() -> Vec<Transition> {
    use RunStatus as S;
    let step = |from, event, to| Transition { from, event, to };
    let mut all = vec![
        step(S::New, "requested", S::Requested),
        step(S::Requested, "provisioning_started", S::Provisioning),
        step(S::Provisioning, "agent_awaited", S::AgentConnecting),
        step(S::AgentConnecting, "attesting_started", S::Attesting),
        step(S::Attesting, "attested", S::AwaitingInputs),
        step(S::AwaitingInputs, "running_started", S::Running),
        step(S::Running, "results_ready", S::ResultsReady),
        step(S::ResultsReady, "completed", S::Completed),
    ];
    let active = RunStatus::ALL.into_iter().filter(|s| s.is_active());
    for from in active {
        all.push(step(from, "stop_requested", S::Stopping));
        all.push(step(from, "failed", S::Failed));
        // Every step waits on something that may never come.
        all.push(step(from, "timed_out", S::TimedOut));
    }
    for from in RunStatus::ALL.into_iter().filter(|s| s.is_ending()) {
        all.push(step(from, "cleanup_started", S::CleaningUp));
    }
    all.push(step(S::CleaningUp, "closed", S::Closed));
    // Receipts change nothing but the record: inputs while the agent takes or runs them, results
    // while they may be fetched.
    for state in [S::AwaitingInputs, S::Running, S::ResultsReady] {
        all.push(step(state, "receipt_recorded", state));
    }
    all
}

/// Where `event` leads from `from`, if the machine has that step.
pub fn next(from: RunStatus, event: &str) -> Option<RunStatus> {
    transitions()
        .into_iter()
        .find(|t| t.from == from && t.event == event)
        .map(|t| t.to)
}

/// The machine as a Mermaid state diagram.
pub fn state_diagram() -> String {
    let mut diagram = String::from("stateDiagram-v2\n    [*] --> requested\n");
    for t in transitions().into_iter().filter(|t| t.from != RunStatus::New) {
        diagram.push_str(&format!("    {} --> {}: {}\n", t.from, t.to, t.event));
    }
    diagram.push_str("    closed --> [*]\n");
    diagram
}

/// Every participant the manifest names with a key has signed its id, and each signature verifies.
fn check_consents(
    manifest: &Manifest,
    manifest_id: &str,
    consents: &BTreeMap<String, String>,
) -> Result<(), RunError> {
    let message = manifest::consent_message(manifest_id);
    for participant in &manifest.participants {
        let Some(key) = &participant.public_key else {
            continue;
        };
        let missing = |reason: &str| RunError::ConsentMissing {
            participant: participant.id.clone(),
            manifest_id: manifest_id.to_owned(),
            reason: reason.to_owned(),
        };
        let signature = consents
            .get(&participant.id)
            .ok_or_else(|| missing("no signature"))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| missing("the signature is not base64"))?;
        let key = PublicKey::parse(key).map_err(|e| missing(&e.to_string()))?;
        key.verify(&message, &signature)
            .map_err(|e| missing(&e.to_string()))?;
    }
    Ok(())
}

impl Run {
    /// A receipt must name what the manifest declares: the algorithm or a dataset with its file
    /// name and digest, delivered by its provider; the result, received by a declared consumer.
    fn check_receipt(&self, receipt: &RunReceipt) -> Result<(), RunError> {
        let manifest = self.manifest.as_ref().ok_or(RunError::NotFound)?;
        check_text(
            "file_name",
            &receipt.file_name,
            crate::computation::ASSET_NAME_MAX,
            false,
        )?;
        let refuse = |why: String| Err(RunError::Receipt(why));
        if !manifest.participants.iter().any(|p| p.id == receipt.participant) {
            return refuse(format!(
                "`{}` is not a participant of the run",
                receipt.participant
            ));
        }
        let declared = |asset: &manifest::ManifestAsset| {
            asset.provider == receipt.participant
                && asset.file_name == receipt.file_name
                && asset.sha3_256 == receipt.sha3_256
        };
        match receipt.kind {
            ReceiptKind::Algorithm if !manifest.algorithm.as_ref().is_some_and(declared) => refuse(format!(
                "the manifest declares no algorithm `{}` with SHA3-256 {} provided by `{}`",
                receipt.file_name, receipt.sha3_256, receipt.participant
            )),
            ReceiptKind::Dataset if !manifest.datasets.iter().any(declared) => refuse(format!(
                "the manifest declares no dataset `{}` with SHA3-256 {} provided by `{}`",
                receipt.file_name, receipt.sha3_256, receipt.participant
            )),
            ReceiptKind::Result if !manifest.result_consumers.contains(&receipt.participant) => refuse(
                format!("`{}` is not a result consumer of the run", receipt.participant),
            ),
            ReceiptKind::Result if !is_hex_digest(&receipt.sha3_256) => Err(RunError::Digest("sha3_256")),
            _ => Ok(()),
        }
    }
}

fn is_hex_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Aggregate for Run {
    const TYPE: &'static str = "run";
    type Command = RunCommand;
    type Event = RunEvent;
    type Error = RunError;

    fn decide(&self, command: RunCommand, ctx: &CommandContext) -> Result<Vec<RunEvent>, RunError> {
        let at = ctx.now;
        let step = || RunStep { at };
        let ending = |reason: String| -> Result<RunEnding, RunError> {
            check_text("reason", &reason, REASON_MAX, true)?;
            Ok(RunEnding {
                during: self.status,
                reason,
                by: ctx.actor.clone(),
                at,
            })
        };
        let event = match command {
            RunCommand::Request {
                id,
                workspace,
                computation,
                manifest,
                consents,
                cvm,
                retry_of,
            } => {
                if self.status != RunStatus::New {
                    return Err(RunError::AlreadyExists);
                }
                let manifest_id = manifest.id();
                check_consents(&manifest, &manifest_id, &consents)?;
                let seconds = i64::try_from(manifest.limits.max_run_seconds).unwrap_or(i64::MAX);
                let deadline = at
                    .checked_add_signed(chrono::Duration::seconds(seconds))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
                RunEvent::Requested(Box::new(RunRequested {
                    id,
                    workspace,
                    computation,
                    manifest_id,
                    manifest: *manifest,
                    consents,
                    cvm,
                    retry_of,
                    deadline,
                    requested_by: ctx.actor.clone(),
                    at,
                }))
            }
            _ if self.status == RunStatus::New => return Err(RunError::NotFound),
            // Asking a stopping run to stop again changes nothing.
            RunCommand::Stop { .. } if self.status == RunStatus::Stopping => return Ok(vec![]),
            RunCommand::StartProvisioning { cvm } => {
                RunEvent::ProvisioningStarted(RunProvisioningStarted { cvm, at })
            }
            RunCommand::AwaitAgent => RunEvent::AgentAwaited(step()),
            RunCommand::StartAttesting => RunEvent::AttestingStarted(step()),
            RunCommand::RecordAttested {
                evidence_sha256,
                policy_sha256,
            } => {
                for (field, digest) in [
                    ("evidence_sha256", &evidence_sha256),
                    ("policy_sha256", &policy_sha256),
                ] {
                    if !is_hex_digest(digest) {
                        return Err(RunError::Digest(field));
                    }
                }
                RunEvent::Attested(RunAttested {
                    evidence_sha256,
                    policy_sha256,
                    at,
                })
            }
            RunCommand::StartRunning => RunEvent::RunningStarted(step()),
            RunCommand::MarkResultsReady { fetch_until } => {
                RunEvent::ResultsReady(RunResultsReady { fetch_until, at })
            }
            RunCommand::RecordReceipt {
                participant,
                kind,
                file_name,
                sha3_256,
            } => {
                let receipt = RunReceipt {
                    participant,
                    kind,
                    file_name,
                    sha3_256,
                    at,
                };
                self.check_receipt(&receipt)?;
                let same = |r: &RunReceipt| {
                    (&r.participant, r.kind, &r.file_name, &r.sha3_256)
                        == (
                            &receipt.participant,
                            receipt.kind,
                            &receipt.file_name,
                            &receipt.sha3_256,
                        )
                };
                if self.receipts.iter().any(same) {
                    return Ok(vec![]);
                }
                RunEvent::ReceiptRecorded(receipt)
            }
            RunCommand::Complete => RunEvent::Completed(step()),
            RunCommand::Stop { reason } => RunEvent::StopRequested(ending(reason)?),
            RunCommand::Fail { reason } => RunEvent::Failed(ending(reason)?),
            RunCommand::TimeOut => RunEvent::TimedOut(ending(format!("{} took too long", self.status))?),
            RunCommand::StartCleanup => RunEvent::CleanupStarted(step()),
            RunCommand::Close { usage } => RunEvent::Closed(RunClosed { usage, at }),
        };
        use crate::aggregate::DomainEvent as _;
        if next(self.status, event.name()).is_none() {
            return Err(RunError::IllegalTransition {
                from: self.status,
                event: event.name(),
            });
        }
        Ok(vec![event])
    }

    fn apply(&mut self, event: &RunEvent) {
        use crate::aggregate::DomainEvent as _;
        if let Some(to) = next(self.status, event.name()) {
            self.status = to;
        }
        match event {
            RunEvent::Requested(e) => {
                self.id = Some(e.id);
                self.workspace = Some(e.workspace);
                self.computation = Some(e.computation);
                self.manifest_id = Some(e.manifest_id.clone());
                self.manifest = Some(e.manifest.clone());
                self.cvm_spec = Some(e.cvm.clone());
                self.deadline = Some(e.deadline);
                self.retry_of = e.retry_of;
                self.consents = e.consents.clone();
                self.requested_at = Some(e.at);
            }
            RunEvent::ProvisioningStarted(e) => self.cvm = Some(e.cvm),
            RunEvent::Attested(e) => self.evidence_sha256 = Some(e.evidence_sha256.clone()),
            RunEvent::ResultsReady(e) => self.fetch_until = Some(e.fetch_until),
            RunEvent::Closed(e) => self.usage = e.usage.clone(),
            RunEvent::ReceiptRecorded(e) => self.receipts.push(e.clone()),
            RunEvent::StopRequested(e) | RunEvent::Failed(e) | RunEvent::TimedOut(e) => {
                self.ending = Some((e.during, e.reason.clone()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
