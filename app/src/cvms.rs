//! CVMs as the agents' channel sees them: which CVM a connecting agent is (its client certificate's
//! lineage names the CVM, and the `job-id` it sends must be that CVM's), what its agent says, and
//! whether it is connected. The platform itself records these (no user asks for them), so they need no
//! permission: the agent proved who it is with its certificate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prism_domain::certificate::{Certificate, CertificateStatus, EntityKind, Profile, Serial};
use prism_domain::cvm::{AgentStream, Cvm, CvmCommand, ReceivedMessage};
use prism_domain::{CvmId, WorkspaceId};
use prism_store::CommandRequest;

use crate::{App, AppError, Caller, ErrorKind};

/// The agent's channel acts as this service.
const CHANNEL: &str = "agent-channel";

/// How long an agent whose `job-id` is not its CVM's id waits for the backend's name for the CVM to
/// be recorded (the manager answers `CreateVm` after it has started the machine).
const BACKEND_REF_WAIT: Duration = Duration::from_secs(15);

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

    /// The CVM whose agent presents the client certificate `serial` and says it runs `job_id`:
    /// "forbidden" unless the certificate is an active `agent_client` certificate issued for a CVM
    /// of the same workspace, and `job_id` is that CVM's id or its backend's name for it.
    pub async fn agent_identity(&self, serial: &Serial, job_id: &str) -> Result<AgentIdentity, AppError> {
        let refuse = |why: &str| AppError::new(ErrorKind::Forbidden, why.to_owned());
        let found = self
            .app
            .read_models()?
            .certificate_serial(serial)
            .await?
            .ok_or_else(|| refuse("the client certificate was not issued by this platform"))?;
        let lineage = self
            .app
            .bounded(async {
                Ok(self
                    .app
                    .repository::<Certificate>()
                    .view(&found.certificate_id)
                    .await?)
            })
            .await?;
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
        // agent can dial in before that answer is recorded, so wait for it a little.
        let deadline = tokio::time::Instant::now() + BACKEND_REF_WAIT;
        loop {
            if job_id == cvm.to_string() || state.backend_ref.as_deref() == Some(job_id) {
                return Ok(AgentIdentity {
                    cvm,
                    workspace: lineage.workspace.expect("checked above"),
                });
            }
            if state.backend_ref.is_some() || tokio::time::Instant::now() >= deadline {
                return Err(refuse(
                    "the job-id is not the CVM the client certificate was issued for",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            state = self.load(cvm).await?;
        }
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
