//! CVMs: what users ask for (create, list, get, destroy, enrol a bring-your-own machine's agent),
//! what the provisioner and the reaper record as they make and remove them, and what the agents'
//! channel sees — which CVM a connecting agent is (its client certificate's lineage names the CVM, and
//! the `job-id` it sends must be that CVM's or its backend's name for it), what its agent says, and
//! whether it is connected. The platform records the latter itself (no user asks for them), so they
//! need no permission: the agent proved who it is with its certificate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prism_domain::access::Permission;
use prism_domain::certificate::{CertificateStatus, EntityKind, Profile, Serial};
use prism_domain::cvm::{AgentStream, Cvm, CvmCommand, CvmSpec, CvmStatus, DestroyReason, ReceivedMessage};
use prism_domain::{CvmId, WorkspaceId};
use prism_projections::{CERTIFICATES, CVMS, CertificateFilter, CvmFilter, CvmView, Page, PageRequest};
use prism_store::{CommandOutcome, CommandRequest};

use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "CVM";

/// The agent's channel acts as this service.
const CHANNEL: &str = "agent-channel";

/// How long an agent that dials in while its CVM is still being created waits for the backend's
/// answer to be recorded (a Cocos manager answers `CreateVm` after it has started the machine).
const BACKEND_REF_WAIT: Duration = Duration::from_secs(15);

/// What a bring-your-own machine needs to join: a one-time token that fetches its agent's
/// certificate and key (`POST /certs/download`), and the CVM id its agent sends as `job-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub cvm: CvmId,
    pub serial: Serial,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn not_found(id: CvmId) -> AppError {
    AppError::not_found(format!("CVM {id} not found"))
}

/// Who a connected agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentIdentity {
    pub cvm: CvmId,
    pub workspace: WorkspaceId,
}

#[derive(Debug, Clone, Copy)]
pub struct Cvms<'a> {
    app: &'a App,
}

impl<'a> Cvms<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Asks for a CVM in `workspace`; the provisioner chooses its backend and makes it.
    pub async fn create(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        spec: CvmSpec,
    ) -> Result<Executed<Cvm>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "create",
            permission: Permission::CvmsCreate,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input: &spec,
        };
        self.app.authorize_command::<Cvm, _>(caller, &command).await?;
        self.app.require_active_workspace(workspace, "CVMs").await?;
        self.app
            .execute_authorized(caller, options, command, |id| CvmCommand::Request {
                id: CvmId(id.parse().expect("the service proposes UUIDs")),
                workspace,
                spec: spec.clone(),
                run: None,
            })
            .await
    }

    /// Asks for a CVM of `workspace` to be destroyed.
    pub async fn destroy(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: CvmId,
    ) -> Result<Executed<Cvm>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "destroy",
            permission: Permission::CvmsDestroy,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &(),
        };
        self.app.authorize_command::<Cvm, _>(caller, &command).await?;
        if self.load(id).await?.workspace != Some(workspace) {
            return Err(not_found(id));
        }
        self.app
            .execute_authorized(caller, options, command, |_| CvmCommand::Destroy {
                reason: DestroyReason::Requested,
            })
            .await
    }

    /// A workspace's CVMs.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: &CvmFilter,
        page: PageRequest,
        read: ReadOptions,
    ) -> Result<Page<CvmView>, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::CvmsRead, workspace))
            .await?;
        self.app.wait_read(&[CVMS], read).await?;
        Ok(self.app.read_models()?.cvms(workspace, filter, page).await?)
    }

    /// One CVM of a workspace.
    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: CvmId,
        read: ReadOptions,
    ) -> Result<CvmView, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::CvmsRead, workspace))
            .await?;
        self.app.wait_read(&[CVMS], read).await?;
        self.app
            .read_models()?
            .cvm(workspace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A one-time token with which the agent of a bring-your-own CVM fetches its certificate and key.
    /// Asking again gives another token (the earlier one still works once, until it expires).
    pub async fn enrol(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: CvmId,
        read: ReadOptions,
    ) -> Result<Enrolment, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::CvmsCreate, workspace))
            .await?;
        let loaded = self
            .app
            .bounded(async { Ok(self.app.repository::<Cvm>().load(&id).await?) })
            .await?;
        if loaded.state.workspace != Some(workspace) {
            return Err(not_found(id));
        }
        let state = loaded.state;
        if !matches!(
            state.status,
            CvmStatus::Starting | CvmStatus::Online | CvmStatus::Offline
        ) {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!(
                    "CVM {id} is {}: only a started CVM's agent can enrol",
                    state.status.as_str()
                ),
            ));
        }
        // Only the owner of a bring-your-own machine fetches its agent's key: a backend that makes
        // machines hands it over itself, and nobody else should hold it.
        let on_byo = match state.backend {
            Some(backend) => self
                .app
                .backends()
                .load(backend)
                .await?
                .settings
                .is_some_and(|s| matches!(s.driver, prism_domain::backend::Driver::Byo { .. })),
            None => false,
        };
        if !on_byo {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!(
                    "CVM {id} is not on a bring-your-own backend: its backend hands its agent the certificate"
                ),
            ));
        }
        // The agent's certificate was issued before the CVM was recorded started: read as of that.
        let as_of = ReadOptions {
            min_sequence: Some(read.min_sequence.unwrap_or(0).max(loaded.last_sequence)),
            ..read
        };
        self.app.wait_read(&[CERTIFICATES], as_of).await?;
        let filter = CertificateFilter {
            entity_id: Some(id.to_string()),
            status: Some("active".into()),
        };
        let lineages = self
            .app
            .read_models()?
            .certificates(
                workspace,
                &filter,
                PageRequest {
                    after: None,
                    limit: 100,
                },
            )
            .await?;
        let lineage = lineages
            .items
            .into_iter()
            .rev()
            .find(|c| c.entity_kind == EntityKind::Cvm.as_str() && c.profile == Profile::AgentClient.as_str())
            .ok_or_else(|| {
                AppError::new(
                    ErrorKind::StateConflict,
                    format!("CVM {id} has no active agent certificate yet; retry shortly"),
                )
            })?;
        let (token, expires_at) = self
            .app
            .certificates()
            .download_token(caller, workspace, &lineage.serial)
            .await?;
        Ok(Enrolment {
            cvm: id,
            serial: lineage.serial,
            token,
            expires_at,
        })
    }

    /// Records `command` on a CVM as the platform's `service` (the provisioner, the reaper): they
    /// need no permission. With `key`, a repeated command (a redelivered event) is recorded once.
    pub async fn record(
        &self,
        caller: &Caller,
        cvm: CvmId,
        workspace: WorkspaceId,
        command: CvmCommand,
        key: Option<&str>,
    ) -> Result<CommandOutcome<Cvm>, AppError> {
        let mut request =
            CommandRequest::<Cvm>::new(&cvm, command, caller.metadata(Some(workspace.to_string())));
        let fingerprint;
        if let Some(key) = key {
            fingerprint = key.to_owned();
            request = request.idempotent(key, &fingerprint);
        }
        let repository = self.app.repository::<Cvm>();
        self.app
            .bounded(async { Ok(repository.execute(request).await) })
            .await?
            .map_err(|e| AppError::command(WHAT, e))
    }

    /// The CVM `id` as the log has it ("not found" when it does not exist).
    pub async fn state(&self, id: CvmId) -> Result<Cvm, AppError> {
        self.load(id).await
    }

    /// The CVM whose agent presents the client certificate `serial` and says it runs `job_id`:
    /// "forbidden" unless the certificate is an active `agent_client` certificate issued for a CVM
    /// of the same workspace, and `job_id` is that CVM's id or its backend's name for it.
    pub async fn agent_identity(&self, serial: &Serial, job_id: &str) -> Result<AgentIdentity, AppError> {
        let refuse = |why: &str| AppError::new(ErrorKind::Forbidden, why.to_owned());
        let lineage = self
            .app
            .certificates()
            .lineage_by_serial(serial)
            .await?
            .ok_or_else(|| refuse("the client certificate was not issued by this platform"))?;
        if lineage.status != CertificateStatus::Active {
            return Err(refuse("the client certificate is revoked or expired"));
        }
        if lineage.profile != Some(Profile::AgentClient) {
            return Err(refuse("the client certificate is not an agent's"));
        }
        let entity = lineage
            .entity
            .as_ref()
            .filter(|e| e.kind == EntityKind::Cvm)
            .ok_or_else(|| refuse("the client certificate is not a CVM's"))?;
        let cvm: CvmId = entity
            .id
            .parse()
            .map_err(|_| refuse("the client certificate does not name a CVM"))?;
        let mut state = self.load(cvm).await?;
        if state.workspace.is_none() || state.workspace != lineage.workspace {
            return Err(refuse(
                "the CVM is not the one the client certificate was issued for",
            ));
        }
        // The agent says which job it runs: the CVM's id, or — for a machine a Cocos manager made —
        // the manager's own id for it, which the platform learns only when the manager answers. An
        // agent can dial in before the backend's answer is recorded: wait for it a little.
        let deadline = tokio::time::Instant::now() + BACKEND_REF_WAIT;
        while state.status == CvmStatus::Creating && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            state = self.load(cvm).await?;
        }
        if job_id == cvm.to_string() || state.backend_ref.as_deref() == Some(job_id) {
            return Ok(AgentIdentity {
                cvm,
                workspace: lineage.workspace.expect("checked above"),
            });
        }
        Err(refuse(
            "the job-id is not the CVM the client certificate was issued for",
        ))
    }

    /// Records what the agent said; answers how many messages were new.
    pub async fn record_agent_messages(
        &self,
        agent: AgentIdentity,
        stream: AgentStream,
        messages: Vec<ReceivedMessage>,
    ) -> Result<usize, AppError> {
        let outcome = self
            .execute(agent, CvmCommand::RecordAgentMessages { stream, messages })
            .await?;
        Ok(outcome)
    }

    /// Records that the agent is connected.
    pub async fn mark_online(&self, agent: AgentIdentity) -> Result<(), AppError> {
        self.execute(agent, CvmCommand::MarkOnline).await.map(|_| ())
    }

    /// Records that the agent has not been connected since `last_heard`.
    pub async fn mark_offline(
        &self,
        agent: AgentIdentity,
        last_heard: DateTime<Utc>,
    ) -> Result<(), AppError> {
        self.execute(agent, CvmCommand::MarkOffline { last_heard })
            .await
            .map(|_| ())
    }

    async fn load(&self, cvm: CvmId) -> Result<Cvm, AppError> {
        let state = self
            .app
            .bounded(async { Ok(self.app.repository::<Cvm>().view(&cvm).await?) })
            .await?;
        if state.id.is_none() {
            return Err(AppError::not_found(format!("CVM {cvm} not found")));
        }
        Ok(state)
    }

    /// Runs `command` on the agent's CVM as the channel; answers how many events it recorded.
    async fn execute(&self, agent: AgentIdentity, command: CvmCommand) -> Result<usize, AppError> {
        let caller = Caller::service(CHANNEL);
        let request = CommandRequest::<Cvm>::new(
            &agent.cvm,
            command,
            caller.metadata(Some(agent.workspace.to_string())),
        );
        let repository = self.app.repository::<Cvm>();
        let outcome = self
            .app
            .bounded(async { Ok(repository.execute(request).await) })
            .await?
            .map_err(|e| AppError::command("CVM", e))?;
        Ok(outcome.events.len())
    }
}
