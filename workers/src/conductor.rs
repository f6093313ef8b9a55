//! The run's process manager, in two reactors that share one rule: every step is a run command
//! named after the event that caused it, and a step the run's state machine does not allow from
//! where the run is now is skipped, so a redelivered or late event changes nothing.
//!
//! * [`RunConductor`] reacts to a run's own events. Requested: it asks for the run's CVM (its id
//!   derived from the run's, [`cvm_of`]). Attesting: it issues the agent's TLS server certificate,
//!   sends the agent the run request built from the manifest (which starts the agent's
//!   participants' API, where evidence is asked for), then asks for fresh evidence bound to a
//!   nonce and the agent's key ([`prism_agents::attest_fresh`]); an accepted verdict lets the
//!   participants send their inputs, any other fails the run. Any ending: cleanup, which stops the
//!   computation on the agent (the agent wipes its data) and destroys the CVM (the provisioner
//!   then revokes the CVM's certificates); the run closes once the CVM is destroyed.
//! * [`RunCvmWatcher`] reacts to the events of CVMs made for runs: started, online, offline (the
//!   agent vanished), failed, destroyed, and what the agent reports about the computation
//!   (running, results ready, failed, a refused run request) become the run's steps.
//! * [`RunHaltWatcher`] stops every run of a computation not yet ended when a participant halts
//!   its execution; the conductor also stops a run whose computation is halted before it makes
//!   its CVM and before it gives the agent the run.
//! * [`RunTimer`] times out, every so often, the runs past their deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use prism_agents::{
    AgentChannel, AgentEndpoint, AttestError, ServerRequest, attest::evidence_type, attest_fresh,
};
use prism_app::{App, AppError, Caller, CertificateRequest, CommandOptions, ErrorKind, ReadOptions};
use prism_attestation::{Claims, EvidenceKind};
use prism_domain::computation::{Computation, ComputationEvent};
use prism_domain::cvm::{
    AgentMessage, ConfidentialPlatform, Cvm, CvmAttestationAppraised, CvmCommand, CvmEvent, CvmStatus,
    DestroyReason,
};
use prism_domain::run::{Manifest, REASON_MAX, ReceiptKind, Run, RunCommand, RunEvent, RunStatus, cvm_of};
use prism_domain::{ComputationId, CvmId, RunId, WorkspaceId};
use prism_proto::cvms::{AgentConfig, Algorithm, ComputationRunReq, Dataset, ResultConsumer};
use prism_proto::prism::{ParticipantConsent, RunConsent};
use prism_store::{EventMeta, Recorded};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::runtime::{ReactionError, Reactor, aggregate_id, caused_by, every};

/// How long the agent's participants' API may take to come up after the run request.
const AGENT_API_WAIT: Duration = Duration::from_secs(30);

/// How long an agent's start-up report may take to be appraised once the agent is online.
const STARTUP_REPORT_WAIT: Duration = Duration::from_secs(10);

/// Records `command` on `run` as the step `step` caused by `meta`'s event; a step the run's state
/// machine does not allow now is skipped (it was taken already, or the run has moved on).
async fn step(
    app: &App,
    meta: &EventMeta,
    worker: &str,
    run: RunId,
    command: RunCommand,
    step: &str,
) -> Result<(), ReactionError> {
    let recorded = app
        .runs()
        .record(
            &caused_by(meta, worker),
            run,
            command,
            &format!("{}:{step}", meta.id),
        )
        .await;
    match recorded {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::StateConflict => {
            info!(%run, step, reason = %e, "run step skipped");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn clip(reason: String) -> String {
    crate::runtime::clip(reason, REASON_MAX)
}

async fn fail(
    app: &App,
    meta: &EventMeta,
    worker: &str,
    run: RunId,
    reason: String,
) -> Result<(), ReactionError> {
    warn!(%run, %reason, "run failed");
    step(
        app,
        meta,
        worker,
        run,
        RunCommand::Fail { reason: clip(reason) },
        "fail",
    )
    .await
}

/// Drives a run through its steps.
#[derive(Debug, Clone)]
pub struct RunConductor {
    app: App,
    agents: Option<AgentChannel>,
}

impl RunConductor {
    pub const NAME: &'static str = "run-conductor";

    pub fn new(app: App, agents: Option<AgentChannel>) -> Self {
        Self { app, agents }
    }

    /// Stops the run when its computation is halted now; whether it did.
    async fn stopped_by_halt(
        &self,
        meta: &EventMeta,
        run: RunId,
        workspace: WorkspaceId,
        computation: ComputationId,
    ) -> Result<bool, ReactionError> {
        let Some(halted) = self.app.runs().halted(workspace, computation).await? else {
            return Ok(false);
        };
        let stop = RunCommand::Stop {
            reason: clip(format!("execution halted: {halted}")),
        };
        step(&self.app, meta, Self::NAME, run, stop, "halted").await?;
        Ok(true)
    }

    /// Records the step first, then asks for the CVM only while the run is provisioning: a run
    /// stopped meanwhile gets no CVM, and the CVM's own events find the run ready for them.
    async fn provision(
        &self,
        meta: &EventMeta,
        run: RunId,
        requested: &prism_domain::run::RunRequested,
    ) -> Result<(), ReactionError> {
        let cvm = cvm_of(run);
        let provisioning = RunCommand::StartProvisioning { cvm };
        step(&self.app, meta, Self::NAME, run, provisioning, "provision").await?;
        if self.app.runs().state(run).await?.status != RunStatus::Provisioning {
            return Ok(());
        }
        let asked = self
            .app
            .cvms()
            .record(
                &caused_by(meta, Self::NAME),
                cvm,
                requested.workspace,
                CvmCommand::Request {
                    id: cvm,
                    workspace: requested.workspace,
                    spec: requested.cvm.clone(),
                    run: Some(run),
                },
                Some(&format!("{}:cvm", meta.id)),
            )
            .await;
        match asked {
            // Asked for before this delivery, when it exists already: the same CVM.
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
            Err(e) if e.kind == ErrorKind::Invalid => {
                let reason = format!("the CVM cannot be asked for: {}", e.detail);
                fail(&self.app, meta, Self::NAME, run, reason).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends the agent the run request and appraises fresh evidence of the CVM — unless the
    /// computation is halted by now, which stops the run instead.
    async fn start_on_agent(&self, meta: &EventMeta, run: RunId) -> Result<(), ReactionError> {
        let state = self.app.runs().state(run).await?;
        if state.status != RunStatus::Attesting {
            return Ok(());
        }
        let (Some(workspace), Some(computation), Some(manifest), Some(cvm)) = (
            state.workspace,
            state.computation,
            state.manifest.as_ref(),
            state.cvm,
        ) else {
            return Err(ReactionError::Fatal(AppError::internal(
                "an attesting run has its computation, manifest and CVM",
            )));
        };
        if self.stopped_by_halt(meta, run, workspace, computation).await? {
            return Ok(());
        }
        match self
            .attest(meta, run, workspace, manifest, &state.consents, cvm)
            .await
        {
            Ok(command) => step(&self.app, meta, Self::NAME, run, command, "attested").await,
            Err(Failure::Run(reason)) => fail(&self.app, meta, Self::NAME, run, reason).await,
            Err(Failure::Reaction(e)) => Err(e),
        }
    }

    async fn attest(
        &self,
        meta: &EventMeta,
        run: RunId,
        workspace: WorkspaceId,
        manifest: &Manifest,
        consents: &BTreeMap<String, String>,
        cvm: CvmId,
    ) -> Result<RunCommand, Failure> {
        let caller = caused_by(meta, Self::NAME);
        let machine = self.app.cvms().state(cvm).await?;
        let address = machine
            .agent_address
            .clone()
            .ok_or_else(|| Failure::Run("the CVM's agent announced no address for participants".into()))?;
        let channel = self
            .agents
            .as_ref()
            .ok_or_else(|| Failure::Run("the platform runs no agents' channel".into()))?;
        let host = prism_app::agent_host(&address);
        let server = self
            .app
            .certificates()
            .issue(
                &caller,
                &CommandOptions::default(),
                workspace,
                CertificateRequest::agent_server(cvm, &host),
            )
            .await?;
        let key = server.private_key.clone().ok_or_else(|| {
            Failure::Reaction(ReactionError::Fatal(AppError::internal(
                "a new certificate comes with its key",
            )))
        })?;
        let request = run_request(
            run,
            manifest,
            AgentConfig {
                cert_file: format!("{}{}", server.certificate, server.chain),
                key_file: key,
                ..Default::default()
            },
        )
        .map_err(Failure::Run)?;
        let consent = run_consent(manifest, consents).map_err(Failure::Run)?;
        channel
            .send(
                cvm,
                ServerRequest::Run {
                    request: Box::new(request),
                    consent: Some(Box::new(consent)),
                },
            )
            .await
            .map_err(|e| Failure::Run(format!("the run request did not reach the agent: {e}")))?;
        // From here on a retry would send the run request again, which an agent refuses: every
        // failure fails the run, with its reason.
        let roots_pem = self
            .app
            .certificates()
            .chain()
            .await
            .map_err(|e| Failure::Run(format!("the platform's certificate chain is unavailable: {e}")))?;
        let endpoint = AgentEndpoint {
            address,
            server_name: host,
            roots_pem,
            client: None,
        };
        let platform = machine
            .spec
            .as_ref()
            .map_or(ConfidentialPlatform::None, |spec| spec.platform);
        let kind = match platform {
            ConfidentialPlatform::Tdx => evidence_type::TDX,
            // An emulated agent answers in the SEV-SNP format, signed by its test root.
            _ => evidence_type::SNP,
        };
        let deadline = tokio::time::Instant::now() + AGENT_API_WAIT;
        // The agent's participants' API starts once it has taken the run request, usually within
        // milliseconds of it: the first retries come soon, later ones back off.
        let mut pause = Duration::from_millis(5);
        let appraisal = loop {
            match attest_fresh(&self.app, &caller, cvm, &endpoint, kind).await {
                Ok(appraisal) => break appraisal,
                Err(AttestError::Connect(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(AttestError::Agent(refusal)) if platform == ConfidentialPlatform::None => {
                    break self
                        .nocc_startup_appraisal(&caller, workspace, cvm)
                        .await?
                        .ok_or_else(|| {
                            Failure::Run(format!(
                                "no fresh evidence from the agent ({refusal}), and no start-up report \
                                 of a machine without a TEE to fall back on"
                            ))
                        })?;
                }
                Err(e) => return Err(Failure::Run(format!("no fresh evidence from the agent: {e}"))),
            }
        };
        let verdict = &appraisal.verdict;
        if !verdict.outcome.accepted() {
            let reason = verdict
                .reason()
                .map_or_else(|| "the evidence was refused".to_owned(), ToString::to_string);
            return Err(Failure::Run(format!("attestation refused: {reason}")));
        }
        info!(%run, %cvm, outcome = ?verdict.outcome, "run attested");
        Ok(RunCommand::RecordAttested {
            evidence_sha256: hex::encode(&verdict.evidence_sha256.0),
            policy_sha256: hex::encode(&verdict.policy_sha256.0),
        })
    }

    /// The appraisal of the start-up report of a real Cocos agent on a machine without a TEE
    /// (`NoCC`), waiting a little for it to be recorded; `None` when there is none.
    ///
    /// Such an agent cannot answer a nonce at all: upstream's attestation service serves every
    /// evidence request there from a provider that refuses, so its start-up report — over its
    /// client certificate, not fresh, and proving nothing — is all there is. Its verdict was taken
    /// against the run's policy and is accepted only when the platform runs for development, so a
    /// secure platform still refuses the run.
    async fn nocc_startup_appraisal(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        cvm: CvmId,
    ) -> Result<Option<CvmAttestationAppraised>, Failure> {
        let deadline = tokio::time::Instant::now() + STARTUP_REPORT_WAIT;
        loop {
            let appraisals = self
                .app
                .attestations()
                .list(caller, workspace, cvm, ReadOptions::default())
                .await?;
            let nocc = appraisals.into_iter().rev().find(|appraisal| {
                appraisal.nonce.is_none()
                    && matches!(&appraisal.verdict.claims, Some(Claims::None(claims)) if claims.source == EvidenceKind::NoCc.to_string())
            });
            if nocc.is_some() || tokio::time::Instant::now() >= deadline {
                return Ok(nocc);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the computation on the agent, which wipes what it holds, and destroys the CVM; the
    /// run closes when the CVM is destroyed (or now, when there is none left).
    async fn clean_up(&self, meta: &EventMeta, run: RunId) -> Result<(), ReactionError> {
        // The run's CVM by its derived id rather than the one the run recorded: a CVM asked for
        // just before the run was stopped is cleaned up too.
        let cvm = cvm_of(run);
        let machine = match self.app.cvms().state(cvm).await {
            Ok(machine) => Some((cvm, machine)),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let (cvm, machine) = match machine {
            Some((cvm, machine)) if machine.status != CvmStatus::Destroyed => (cvm, machine),
            gone => {
                let close = RunCommand::Close {
                    usage: gone.and_then(|(_, machine)| machine.usage()),
                };
                return step(&self.app, meta, Self::NAME, run, close, "close").await;
            }
        };
        if let Some(channel) = &self.agents
            && channel.is_connected(cvm)
            && let Err(e) = channel
                .send(
                    cvm,
                    ServerRequest::Stop {
                        computation_id: run.to_string(),
                    },
                )
                .await
        {
            warn!(%run, %cvm, error = %e, "the agent could not be told to stop; destroying its CVM wipes it");
        }
        let workspace = machine.workspace.expect("a requested CVM has a workspace");
        let destroyed = self
            .app
            .cvms()
            .record(
                &caused_by(meta, Self::NAME),
                cvm,
                workspace,
                CvmCommand::Destroy {
                    reason: DestroyReason::RunEnded,
                },
                Some(&format!("{}:destroy", meta.id)),
            )
            .await;
        match destroyed {
            Ok(_) => Ok(()),
            // Being destroyed already: the watcher closes the run when it is.
            Err(e) if e.kind == ErrorKind::StateConflict => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Why a step could not be taken: the run fails (with a reason for its participants), or the
/// reaction is retried or recorded as failed.
enum Failure {
    Run(String),
    Reaction(ReactionError),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self::Reaction(e.into())
    }
}

/// What the agent is given to check the run against: the manifest's canonical encoding and every
/// consent to it ([`prism_proto::prism`]).
pub fn run_consent(manifest: &Manifest, consents: &BTreeMap<String, String>) -> Result<RunConsent, String> {
    let consents = consents
        .iter()
        .map(|(participant, signature)| {
            let signature = base64::engine::general_purpose::STANDARD
                .decode(signature)
                .map_err(|_| format!("`{participant}`'s consent is not base64"))?;
            Ok(ParticipantConsent {
                participant: participant.clone(),
                signature,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(RunConsent {
        manifest: manifest.canonical_bytes(),
        consents,
    })
}

/// The agent's run request for `manifest`: the algorithm's and datasets' SHA3-256 digests and file
/// names, each with its provider's key, the result consumers' keys, and how to serve participants.
pub fn run_request(
    run: RunId,
    manifest: &Manifest,
    agent_config: AgentConfig,
) -> Result<ComputationRunReq, String> {
    let key_of = |participant: &str| -> Result<Vec<u8>, String> {
        let key = manifest
            .participants
            .iter()
            .find(|p| p.id == participant)
            .and_then(|p| p.public_key.as_ref())
            .ok_or_else(|| format!("`{participant}` holds no key"))?;
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| format!("`{participant}`'s key is not base64"))
    };
    let digest =
        |hex_digest: &str| hex::decode(hex_digest).map_err(|_| format!("{hex_digest} is not a digest"));
    let algorithm = manifest
        .algorithm
        .as_ref()
        .ok_or("the manifest declares no algorithm")?;
    Ok(ComputationRunReq {
        id: run.to_string(),
        name: manifest.computation.clone(),
        description: format!("manifest {}", manifest.id()),
        datasets: manifest
            .datasets
            .iter()
            .map(|dataset| {
                Ok(Dataset {
                    hash: digest(&dataset.sha3_256)?,
                    user_key: key_of(&dataset.provider)?,
                    filename: dataset.file_name.clone(),
                    ..Default::default()
                })
            })
            .collect::<Result<_, String>>()?,
        algorithm: Some(Algorithm {
            hash: digest(&algorithm.sha3_256)?,
            user_key: key_of(&algorithm.provider)?,
            ..Default::default()
        }),
        result_consumers: manifest
            .result_consumers
            .iter()
            .map(|consumer| {
                Ok(ResultConsumer {
                    user_key: key_of(consumer)?,
                })
            })
            .collect::<Result<_, String>>()?,
        agent_config: Some(agent_config),
    })
}

impl Reactor for RunConductor {
    type Aggregate = Run;
    const NAME: &'static str = RunConductor::NAME;

    async fn react<'a>(&'a self, recorded: &'a Recorded<RunEvent>) -> Result<(), ReactionError> {
        let meta = &recorded.meta;
        let run: RunId = aggregate_id(meta)?;
        match &recorded.event {
            // A halt recorded after the run was asked for holds it back before a CVM is made and
            // before the agent is given the run (the halt watcher stops the runs it finds; these
            // checks cover a run the read model did not show it yet).
            RunEvent::Requested(requested) => {
                let (workspace, computation) = (requested.workspace, requested.computation);
                if !self.stopped_by_halt(meta, run, workspace, computation).await? {
                    self.provision(meta, run, requested).await?;
                }
                Ok(())
            }
            RunEvent::AttestingStarted(_) => self.start_on_agent(meta, run).await,
            RunEvent::Completed(_)
            | RunEvent::StopRequested(_)
            | RunEvent::Failed(_)
            | RunEvent::TimedOut(_) => {
                step(
                    &self.app,
                    meta,
                    Self::NAME,
                    run,
                    RunCommand::StartCleanup,
                    "cleanup",
                )
                .await
            }
            RunEvent::CleanupStarted(_) => self.clean_up(meta, run).await,
            RunEvent::ReceiptRecorded(receipt) if receipt.kind == ReceiptKind::Result => {
                if self.app.runs().state(run).await?.every_consumer_has_the_result() {
                    step(&self.app, meta, Self::NAME, run, RunCommand::Complete, "complete").await
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// Turns what happens to a run's CVM, and what its agent reports, into the run's steps.
#[derive(Debug, Clone)]
pub struct RunCvmWatcher {
    app: App,
}

impl RunCvmWatcher {
    pub const NAME: &'static str = "run-cvm-watcher";

    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// The run step an agent's message calls for, if any.
    fn step_for(
        message: &AgentMessage,
        run: RunId,
        result_window: chrono::Duration,
    ) -> Option<(RunCommand, &'static str)> {
        match message {
            AgentMessage::Event {
                event_type,
                computation_id,
                status,
                ..
            } if *computation_id == run.to_string() => match (event_type.as_str(), status.as_str()) {
                ("Running", "Starting" | "InProgress") => Some((RunCommand::StartRunning, "running")),
                ("ConsumingResults", _) => Some((
                    RunCommand::MarkResultsReady {
                        fetch_until: chrono::Utc::now() + result_window,
                    },
                    "results-ready",
                )),
                // The agent completes at the first consumer's fetch; the run completes when every
                // consumer has said it has the result, or its window closes.
                ("Failed", _) | ("Running", "Failed") => Some((
                    RunCommand::Fail {
                        reason: "the algorithm failed on the agent; see the run's logs".into(),
                    },
                    "agent-failed",
                )),
                _ => None,
            },
            AgentMessage::RunResult {
                computation_id,
                error,
            } if *computation_id == run.to_string() && !error.is_empty() => Some((
                RunCommand::Fail {
                    reason: clip(format!("the agent refused the run request: {error}")),
                },
                "agent-refused",
            )),
            _ => None,
        }
    }
}

impl Reactor for RunCvmWatcher {
    type Aggregate = Cvm;
    const NAME: &'static str = RunCvmWatcher::NAME;

    async fn react<'a>(&'a self, recorded: &'a Recorded<CvmEvent>) -> Result<(), ReactionError> {
        let meta = &recorded.meta;
        // Most of a CVM's events are its agent's log lines: those say nothing to the run.
        let relevant = match &recorded.event {
            CvmEvent::Started(_)
            | CvmEvent::Online(_)
            | CvmEvent::Offline(_)
            | CvmEvent::Failed(_)
            | CvmEvent::Destroyed(_) => true,
            CvmEvent::AgentMessageReceived(received) => {
                matches!(
                    received.message,
                    AgentMessage::Event { .. } | AgentMessage::RunResult { .. }
                )
            }
            _ => false,
        };
        if !relevant {
            return Ok(());
        }
        let cvm: CvmId = aggregate_id(meta)?;
        let machine = match self.app.cvms().state(cvm).await {
            Ok(machine) => machine,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(run) = machine.run else {
            return Ok(());
        };
        let (command, name) = match &recorded.event {
            CvmEvent::Started(_) => (RunCommand::AwaitAgent, "agent-awaited"),
            CvmEvent::Online(_) => (RunCommand::StartAttesting, "attesting"),
            // Offline is recorded once the agent has been away longer than the heartbeat gap: what
            // it held for the run (inputs, a computation under way) cannot be trusted to resume.
            CvmEvent::Offline(_) => (
                RunCommand::Fail {
                    reason: "the agent vanished: its CVM went offline during the run".into(),
                },
                "agent-vanished",
            ),
            CvmEvent::Failed(failed) => (
                RunCommand::Fail {
                    reason: clip(format!("the CVM failed: {}", failed.reason)),
                },
                "cvm-failed",
            ),
            CvmEvent::Destroyed(_) => {
                let status = self.app.runs().state(run).await?.status;
                if status == RunStatus::CleaningUp {
                    let usage = machine.usage();
                    (RunCommand::Close { usage }, "close")
                } else {
                    (
                        RunCommand::Fail {
                            reason: "the CVM was destroyed before the run ended".into(),
                        },
                        "cvm-destroyed",
                    )
                }
            }
            CvmEvent::AgentMessageReceived(received) => match Self::step_for(
                &received.message,
                run,
                chrono::Duration::from_std(self.app.config().result_window)
                    .unwrap_or(chrono::Duration::hours(1)),
            ) {
                Some(step) => step,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        step(&self.app, meta, Self::NAME, run, command, name).await
    }
}

/// Stops every run of a computation that has not ended when a participant halts its execution:
/// no CVM is made for it, no input is taken, no result is handed out any more. Cleanup follows
/// as for any stop.
#[derive(Debug, Clone)]
pub struct RunHaltWatcher {
    app: App,
}

impl RunHaltWatcher {
    pub const NAME: &'static str = "run-halt-watcher";

    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl Reactor for RunHaltWatcher {
    type Aggregate = Computation;
    const NAME: &'static str = RunHaltWatcher::NAME;

    async fn react<'a>(&'a self, recorded: &'a Recorded<ComputationEvent>) -> Result<(), ReactionError> {
        let ComputationEvent::ExecutionHalted(halted) = &recorded.event else {
            return Ok(());
        };
        let reason = clip(format!(
            "execution halted by participant {}: {}",
            halted.participant, halted.reason
        ));
        for run in self.app.runs().unended_of(halted.computation).await? {
            let stop = RunCommand::Stop {
                reason: reason.clone(),
            };
            step(
                &self.app,
                &recorded.meta,
                Self::NAME,
                run,
                stop,
                &format!("halted:{run}"),
            )
            .await?;
        }
        Ok(())
    }
}

/// Times out the runs past their deadline.
#[derive(Debug, Clone)]
pub struct RunTimer {
    app: App,
    every: Duration,
}

impl RunTimer {
    pub const NAME: &'static str = "run-timer";

    pub fn new(app: App, every: Duration) -> Self {
        Self { app, every }
    }

    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        every(self.every, shutdown, "timing out runs", || {
            self.time_out_overdue()
        })
        .await;
    }

    /// Times out every run past its deadline and completes every run whose result window has
    /// closed; answers how many runs it moved.
    pub async fn time_out_overdue(&self) -> Result<usize, AppError> {
        let now = chrono::Utc::now();
        let read = self.app.read_models()?;
        let overdue = read.overdue_runs(now).await?;
        let finished = read.runs_past_their_result_window(now).await?;
        let mut moved = 0;
        let steps = overdue
            .into_iter()
            .map(|run| (run, RunCommand::TimeOut, "time-out"))
            .chain(
                finished
                    .into_iter()
                    .map(|run| (run, RunCommand::Complete, "window-closed")),
            );
        for (run, command, name) in steps {
            let key = format!("{}:{run}:{name}", Self::NAME);
            match self
                .app
                .runs()
                .record(&Caller::service(Self::NAME), run, command, &key)
                .await
            {
                Ok(_) => moved += 1,
                Err(e) if e.kind == ErrorKind::StateConflict => {}
                Err(e) => warn!(%run, error = %e, "could not move the run past its time"),
            }
        }
        Ok(moved)
    }
}
