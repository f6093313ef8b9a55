//! Runs of a computation: its manifest and the participants' consent to it, what a run still lacks
//! (the dry run), the request, the stop, and the steps the run's process manager records.

use std::collections::BTreeMap;

use base64::Engine as _;
use prism_domain::access::Permission;
use prism_domain::computation::{Computation, ComputationCommand, ComputationError, ConsentStatus, Role};
use prism_domain::cvm::CvmAttestationAppraised;
use prism_domain::cvm::{ANY_PROVIDER, CvmSpec};
use prism_domain::run::manifest::consent_message;
use prism_domain::run::{Manifest, ReceiptKind, Run, RunCommand, RunStatus};
use prism_domain::{ComputationId, ParticipantId, RunId, WorkspaceId};
use prism_projections::{
    ActivityFilter, ActivityView, CVM_ACTIVITY, LogFilter, LogLineView, Page, PageRequest, RUN_ACTIVITY,
    RunDayCount, RunFilter, RunView, SequencePage,
};
use serde::Serialize;

use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "run";

#[derive(Debug, Clone, Copy)]
pub struct Runs<'a> {
    app: &'a App,
}

/// A computation's current manifest, as participants read it before they sign.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestView {
    pub manifest_id: String,
    pub manifest: Manifest,
    /// The canonical encoding whose SHA-256 is the id (UTF-8 JSON).
    pub canonical: String,
    /// What a participant signs to consent: `prism-consent-v1:<manifest id>`.
    pub consent_message: String,
    pub consent: ConsentStatus,
}

/// How a participant reaches a run's attested agent: its address, the name its TLS certificate
/// carries and the certificates it chains to, and the appraisal (evidence, verdict, EAR) that let
/// the participants' inputs in — to be checked before anything is sent.
#[derive(Debug, Clone, Serialize)]
pub struct RunConnection {
    pub run: RunId,
    pub status: RunStatus,
    pub manifest_id: String,
    pub agent_address: String,
    pub server_name: String,
    pub ca_pem: String,
    pub attestation: CvmAttestationAppraised,
}

/// The host part of an agent's `host:port` address, without IPv6 brackets: the name its TLS
/// server certificate is issued for and checked against.
pub fn agent_host(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']').to_owned()
}

/// One thing a run of the computation would lack now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lack {
    /// `computation_archived`, `halted`, `participant_pending`, `algorithm`, `datasets`,
    /// `result_consumer`, `consent` or `backend`.
    pub what: &'static str,
    pub detail: String,
}

/// What the dry run found: the manifest a run would execute and everything it lacks.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub ready: bool,
    pub manifest_id: String,
    pub lacks: Vec<Lack>,
}

impl<'a> Runs<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The computation as the log has it now: a halt, a consent or a change recorded a moment ago
    /// (by this process or another) must count for the run asked for next.
    async fn computation(&self, workspace: WorkspaceId, id: ComputationId) -> Result<Computation, AppError> {
        let state = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().load(&id).await?.state) })
            .await?;
        if state.workspace_id != Some(workspace) {
            return Err(AppError::not_found(format!("computation {id} not found")));
        }
        Ok(state)
    }

    /// The computation's current manifest and who has consented to it.
    pub async fn manifest(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        computation: ComputationId,
    ) -> Result<ManifestView, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRead, workspace, computation),
            )
            .await?;
        let state = self.computation(workspace, computation).await?;
        let manifest = state.manifest().expect("an existing computation has a manifest");
        let manifest_id = manifest.id();
        Ok(ManifestView {
            canonical: String::from_utf8(manifest.canonical_bytes()).expect("canonical JSON is UTF-8"),
            consent_message: String::from_utf8(consent_message(&manifest_id)).expect("ASCII"),
            consent: state
                .consent_status()
                .expect("an existing computation has a manifest"),
            manifest_id,
            manifest,
        })
    }

    /// The caller consents, as the participant it is, to runs of the manifest `manifest_id` with
    /// `signature` over its consent message.
    pub async fn consent(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        computation: ComputationId,
        manifest_id: String,
        signature: Vec<u8>,
    ) -> Result<Executed<Computation>, AppError> {
        #[derive(Serialize)]
        struct Input<'a> {
            manifest_id: &'a str,
            signature: String,
        }
        let input = Input {
            manifest_id: &manifest_id,
            signature: base64::engine::general_purpose::STANDARD.encode(&signature),
        };
        let command = Command {
            what: "computation",
            operation: "consent",
            permission: Permission::ComputationConsent,
            target: Target::Existing(computation.to_string()),
            workspace: Some(workspace),
            input: &input,
        };
        self.app
            .authorize_command::<Computation, _>(caller, &command)
            .await?;
        // After authorising, so that a caller without a credential is told to sign in (401).
        let Some(user) = caller.user() else {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "only a participant signed in as a user can consent",
            ));
        };
        self.computation(workspace, computation).await?;
        let participant = ParticipantId::User(user.id);
        self.app
            .execute_authorized(caller, options, command, |_| ComputationCommand::SignConsent {
                participant,
                manifest_id: manifest_id.clone(),
                signature: signature.clone(),
            })
            .await
    }

    /// What a run of the computation requested now, on a CVM made as `cvm` asks (`None`: the
    /// default for the computation's limits, [`prism_domain::run::RunLimits::default_cvm`]), would lack.
    pub async fn dry_run(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        computation: ComputationId,
        cvm: Option<CvmSpec>,
    ) -> Result<DryRun, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRun, workspace, computation),
            )
            .await?;
        let state = self.computation(workspace, computation).await?;
        let manifest = state.manifest().expect("an existing computation has a manifest");
        let cvm = cvm.unwrap_or_else(|| manifest.limits.default_cvm());
        let mut lacks = lacks_of(&state);
        let backends = self.app.read_models()?.backends(Some(workspace)).await?;
        let usable = backends.iter().any(|backend| {
            backend.healthy
                && backend.settings.platforms.contains(&cvm.platform)
                && (cvm.provider == ANY_PROVIDER || backend.settings.driver.kind() == cvm.provider)
        });
        if !usable {
            lacks.push(Lack {
                what: "backend",
                detail: format!(
                    "no healthy backend of provider `{}` offers the platform `{}`",
                    cvm.provider,
                    cvm.platform.as_str()
                ),
            });
        }
        Ok(DryRun {
            ready: lacks.is_empty(),
            manifest_id: manifest.id(),
            lacks,
        })
    }

    /// Runs the computation's current manifest on a CVM made as `cvm` asks (`None`: the default for
    /// the computation's limits). Refused until every participant with a key has consented to that
    /// manifest, and while any participant's halt holds.
    pub async fn request(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        computation: ComputationId,
        cvm: Option<CvmSpec>,
    ) -> Result<Executed<Run>, AppError> {
        self.request_run(caller, options, workspace, computation, cvm, None)
            .await
    }

    async fn request_run(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        computation: ComputationId,
        cvm: Option<CvmSpec>,
        retry_of: Option<RunId>,
    ) -> Result<Executed<Run>, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRun, workspace, computation),
            )
            .await?;
        self.app.require_active_workspace(workspace, "runs").await?;
        let state = self.computation(workspace, computation).await?;
        if let Some(lack) = lacks_of(&state).into_iter().next() {
            return Err(AppError::new(ErrorKind::StateConflict, lack.detail));
        }
        let manifest = state.manifest().expect("an existing computation has a manifest");
        let cvm = cvm.unwrap_or_else(|| manifest.limits.default_cvm());
        let consents: BTreeMap<String, String> = state
            .consent_status()
            .expect("an existing computation has a manifest")
            .signed
            .into_iter()
            .map(|(participant, signature)| (participant.to_string(), signature))
            .collect();
        #[derive(Serialize)]
        struct Input<'a> {
            computation: ComputationId,
            cvm: &'a CvmSpec,
            retry_of: Option<RunId>,
        }
        let command = Command {
            what: WHAT,
            operation: "request",
            permission: Permission::ComputationRun,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input: &Input {
                computation,
                cvm: &cvm,
                retry_of,
            },
        };
        self.app
            .execute_authorized(caller, options, command, |id| RunCommand::Request {
                id: RunId(id.parse().expect("the service proposes UUIDs")),
                workspace,
                computation,
                manifest: Box::new(manifest.clone()),
                consents: consents.clone(),
                cvm: cvm.clone(),
                retry_of,
            })
            .await
    }

    /// Runs the computation of an ended run again (`computation.run`), on a CVM made as that
    /// one's was: its current manifest, so consents to it are needed as for any run.
    pub async fn retry(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: RunId,
    ) -> Result<Executed<Run>, AppError> {
        // Authorised before the run's state is told.
        let ended = self
            .authorized(caller, workspace, id, Permission::ComputationRun)
            .await?;
        let computation = ended.computation.expect("a requested run names its computation");
        if !matches!(ended.status, RunStatus::Closed | RunStatus::CleaningUp) || ended.ending.is_none() {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!(
                    "run {id} is {}: only a run that failed, timed out or was stopped is tried again",
                    ended.status
                ),
            ));
        }
        let cvm = ended.cvm_spec.expect("a requested run names its CVM");
        self.request_run(caller, options, workspace, computation, Some(cvm), Some(id))
            .await
    }

    /// How many of the workspace's runs (of one computation, when given) were requested on each
    /// day, by the state they are in now.
    pub async fn history(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        computation: Option<ComputationId>,
    ) -> Result<Vec<RunDayCount>, AppError> {
        self.app
            .authorize(caller, reading(workspace, computation))
            .await?;
        Ok(self
            .app
            .read_models()?
            .run_counts_by_day(workspace, computation)
            .await?)
    }

    /// The workspace's runs, newest first, as `filter` narrows them.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: &RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunView>, AppError> {
        self.app
            .authorize(caller, reading(workspace, filter.computation))
            .await?;
        let models = self.app.read_models()?;
        Ok(models.runs(workspace, filter, page).await?)
    }

    /// A run as the log has it now.
    pub async fn get(&self, caller: &Caller, workspace: WorkspaceId, id: RunId) -> Result<Run, AppError> {
        let run = self
            .authorized(caller, workspace, id, Permission::ComputationRead)
            .await?;
        Ok(run)
    }

    /// Asks a run to stop: whatever it is doing ends, and it is cleaned up.
    pub async fn stop(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: RunId,
        reason: String,
    ) -> Result<Executed<Run>, AppError> {
        self.authorized(caller, workspace, id, Permission::ComputationRun)
            .await?;
        #[derive(Serialize)]
        struct Input<'a> {
            reason: &'a str,
        }
        let command = Command {
            what: WHAT,
            operation: "stop",
            permission: Permission::ComputationRun,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &Input { reason: &reason },
        };
        self.app
            .execute_authorized(caller, options, command, |_| RunCommand::Stop {
                reason: reason.clone(),
            })
            .await
    }

    /// How the caller reaches the run's attested agent (`computation.read`); a run that is not
    /// attested, or no longer running, has none (409).
    pub async fn connection(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: RunId,
    ) -> Result<RunConnection, AppError> {
        let run = self.get(caller, workspace, id).await?;
        let (Some(evidence), Some(cvm), true) = (
            run.evidence_sha256.as_ref(),
            run.cvm,
            matches!(
                run.status,
                RunStatus::AwaitingInputs | RunStatus::Running | RunStatus::ResultsReady
            ),
        ) else {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!("run {id} is {}: its agent takes no participants now", run.status),
            ));
        };
        let machine = self.app.cvms().state(cvm).await?;
        let agent_address = machine
            .agent_address
            .ok_or_else(|| AppError::internal("an attested run's agent has an address"))?;
        // The appraisal was recorded before the run's `attested` event: once the CVMs read model has
        // reached the run's last commit, it holds the appraisal.
        let last_sequence = self
            .app
            .bounded(async {
                Ok(self
                    .app
                    .repository::<Run>()
                    .load(&id.to_string())
                    .await?
                    .last_sequence)
            })
            .await?;
        self.app
            .wait_read(
                &[prism_projections::CVMS],
                crate::ReadOptions::at_least(last_sequence),
            )
            .await?;
        let appraisals = self.app.read_models()?.cvm_attestations(workspace, cvm).await?;
        let attestation = appraisals
            .into_iter()
            .rev()
            .find(|appraisal| hex::encode(&appraisal.verdict.evidence_sha256.0) == *evidence)
            .ok_or_else(|| {
                AppError::new(
                    ErrorKind::Lagging,
                    "the run's appraisal is not in the read model yet; retry",
                )
            })?;
        Ok(RunConnection {
            run: id,
            status: run.status,
            manifest_id: run.manifest_id.unwrap_or_default(),
            server_name: agent_host(&agent_address),
            agent_address,
            ca_pem: self.app.certificates().chain().await?,
            attestation,
        })
    }

    /// The caller's receipt, as the participant it is, for what it delivered to the run's agent or
    /// received from it: `computation.algorithm.upload`, `computation.dataset.upload` or
    /// `computation.results.read` by kind. Checked against the run's manifest.
    #[allow(clippy::too_many_arguments)]
    pub async fn receipt(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: RunId,
        kind: ReceiptKind,
        file_name: String,
        sha3_256: String,
    ) -> Result<Executed<Run>, AppError> {
        let permission = match kind {
            ReceiptKind::Algorithm => Permission::ComputationAlgorithmUpload,
            ReceiptKind::Dataset => Permission::ComputationDatasetUpload,
            ReceiptKind::Result => Permission::ComputationResultsRead,
        };
        self.authorized(caller, workspace, id, permission).await?;
        // After authorising, so that a caller without a credential is told to sign in (401).
        let Some(user) = caller.user() else {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "only a participant signed in as a user gives receipts",
            ));
        };
        #[derive(Serialize)]
        struct Input<'a> {
            kind: ReceiptKind,
            file_name: &'a str,
            sha3_256: &'a str,
        }
        let command = Command {
            what: WHAT,
            operation: "receipt",
            permission,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &Input {
                kind,
                file_name: &file_name,
                sha3_256: &sha3_256,
            },
        };
        let participant = ParticipantId::User(user.id).to_string();
        self.app
            .execute_authorized(caller, options, command, |_| RunCommand::RecordReceipt {
                participant,
                kind,
                file_name: file_name.clone(),
                sha3_256: sha3_256.clone(),
            })
            .await
    }

    /// The events of the runs of a computation, or of one run, and of their CVMs, in the log's order,
    /// as `filter` narrows them (`computation.read`). `filter` names the computation or the run.
    pub async fn activity(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: &ActivityFilter,
        read: ReadOptions,
    ) -> Result<SequencePage<ActivityView>, AppError> {
        self.readable(caller, workspace, filter.computation, filter.run)
            .await?;
        self.app.wait_read(&[RUN_ACTIVITY, CVM_ACTIVITY], read).await?;
        Ok(self.app.read_models()?.activity(workspace, filter).await?)
    }

    /// The log lines of the agents of a computation's runs, or of one run, oldest first
    /// (`computation.read`).
    pub async fn log_lines(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: &LogFilter,
        read: ReadOptions,
    ) -> Result<SequencePage<LogLineView>, AppError> {
        self.readable(caller, workspace, filter.computation, filter.run)
            .await?;
        // The runs in scope are found in `run_activity`, the lines in `cvm_activity`.
        self.app.wait_read(&[RUN_ACTIVITY, CVM_ACTIVITY], read).await?;
        Ok(self.app.read_models()?.log_lines(workspace, filter).await?)
    }

    /// Authorises reading the activity of `run`, or of `computation`'s runs: 404 for one the caller
    /// has no part in, as for one that does not exist, and for a run of another computation.
    async fn readable(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        computation: Option<ComputationId>,
        run: Option<RunId>,
    ) -> Result<(), AppError> {
        match (run, computation) {
            (Some(id), computation) => {
                let run = self.get(caller, workspace, id).await?;
                match computation {
                    Some(computation) if run.computation != Some(computation) => Err(not_found(id)),
                    _ => Ok(()),
                }
            }
            (None, Some(computation)) => {
                self.app
                    .authorize(caller, reading(workspace, Some(computation)))
                    .await
            }
            (None, None) => Err(AppError::internal(
                "an activity query names a computation or a run",
            )),
        }
    }

    /// Records one step of a run, as its process manager decides it. `key` makes a redelivered
    /// reaction record it once.
    pub async fn record(
        &self,
        caller: &Caller,
        id: RunId,
        command: RunCommand,
        key: &str,
    ) -> Result<Executed<Run>, AppError> {
        let run = self.state(id).await?;
        let command_record = Command {
            what: WHAT,
            operation: "record",
            permission: Permission::ComputationRun,
            target: Target::Existing(id.to_string()),
            workspace: run.workspace,
            input: &key,
        };
        self.app
            .execute_authorized(caller, &CommandOptions::keyed(key), command_record, |_| command)
            .await
    }

    /// A run of `workspace`; one of another workspace is "not found" before anything is authorised,
    /// so whether it exists is not told across workspaces.
    async fn in_workspace(&self, workspace: WorkspaceId, id: RunId) -> Result<Run, AppError> {
        let run = self.state(id).await?;
        if run.workspace != Some(workspace) {
            return Err(not_found(id));
        }
        Ok(run)
    }

    /// A run of `workspace` the caller holds `permission` on, through the run's computation.
    async fn authorized(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: RunId,
        permission: Permission,
    ) -> Result<Run, AppError> {
        let run = self.in_workspace(workspace, id).await?;
        let computation = run.computation.expect("a requested run names its computation");
        self.app
            .authorize(caller, Action::on_computation(permission, workspace, computation))
            .await?;
        Ok(run)
    }

    /// Why a run of `computation` may not go on, when the computation is halted now: a halt recorded
    /// after a run was asked for stops it too (see [`Computation::execution_allowed`]).
    pub async fn halted(
        &self,
        workspace: WorkspaceId,
        computation: ComputationId,
    ) -> Result<Option<String>, AppError> {
        let state = self.computation(workspace, computation).await?;
        Ok(match state.execution_allowed() {
            Err(halted @ ComputationError::Halted { .. }) => Some(halted.to_string()),
            _ => None,
        })
    }

    /// The runs of `computation` that have not ended, as the runs read model has them.
    pub async fn unended_of(&self, computation: ComputationId) -> Result<Vec<RunId>, AppError> {
        Ok(self.app.read_models()?.unended_runs_of(computation).await?)
    }

    /// A run's state; not found when it was never requested.
    pub async fn state(&self, id: RunId) -> Result<Run, AppError> {
        let run = self
            .app
            .bounded(async { Ok(self.app.repository::<Run>().load(&id.to_string()).await?.state) })
            .await?;
        if run.id.is_none() {
            return Err(not_found(id));
        }
        Ok(run)
    }
}

/// Reading runs: of one computation (as its participants may), or of the whole workspace.
fn reading(workspace: WorkspaceId, computation: Option<ComputationId>) -> Action {
    match computation {
        Some(computation) => Action::on_computation(Permission::ComputationRead, workspace, computation),
        None => Action::in_workspace(Permission::ComputationRead, workspace),
    }
}

fn not_found(id: RunId) -> AppError {
    AppError::not_found(format!("run {id} not found"))
}

/// What the computation's definition and consents lack for a run, in a fixed order.
fn lacks_of(state: &Computation) -> Vec<Lack> {
    let mut lacks = Vec::new();
    let definition = &state.definition;
    if state.status == prism_domain::computation::ComputationStatus::Archived {
        lacks.push(Lack {
            what: "computation_archived",
            detail: "the computation is archived".into(),
        });
    }
    // Before anything a participant could still provide: a halt is a party's withdrawal, and a run
    // request refused while it holds names who halted.
    if let Err(halted @ ComputationError::Halted { .. }) = state.execution_allowed() {
        lacks.push(Lack {
            what: "halted",
            detail: halted.to_string(),
        });
    }
    for participant in &definition.participants {
        if let ParticipantId::Invited(email) = &participant.id
            && participant.roles.iter().any(|role| role.needs_public_key())
        {
            lacks.push(Lack {
                what: "participant_pending",
                detail: format!("`{email}` has not joined yet, so cannot consent"),
            });
        }
    }
    if definition.algorithm.is_none() {
        lacks.push(Lack {
            what: "algorithm",
            detail: "no algorithm is declared".into(),
        });
    }
    if definition.datasets.is_empty() {
        lacks.push(Lack {
            what: "datasets",
            detail: "no dataset is declared".into(),
        });
    }
    if !definition
        .participants
        .iter()
        .any(|p| p.roles.contains(&Role::ResultConsumer))
    {
        lacks.push(Lack {
            what: "result_consumer",
            detail: "nobody receives the result: no participant has the `result_consumer` role".into(),
        });
    }
    if let Some(status) = state.consent_status() {
        for participant in status.missing {
            lacks.push(Lack {
                what: "consent",
                detail: format!(
                    "`{participant}` has not consented to manifest {}",
                    status.manifest_id
                ),
            });
        }
    }
    lacks
}
