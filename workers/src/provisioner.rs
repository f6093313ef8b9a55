//! CVMs made and removed:
//! * [`Provisioner`] reacts to a CVM's events. Asked for (`requested`): it ranks the backends the
//!   workspace may use ([`prism_domain::cvm::place`]: provider, platform, labels, health, a free slot,
//!   the largest free share first), issues the agent's client certificate, and asks the best backend's
//!   driver to launch it, falling back to the next when one refuses or cannot be reached; each choice
//!   is recorded with its reason, then the start and what the backend reports about the machine.
//!   When none can, the CVM fails with every backend's reason. To be destroyed: the driver removes the
//!   machine, the CVM's certificates are revoked (which also closes its agent's connections), and the
//!   CVM is recorded destroyed. Failed: its certificates are revoked, and a machine that was made is
//!   destroyed.
//! * [`CvmReaper`] destroys, every so often, the CVMs past their TTL (reason `ttl_expired`).
//! * [`BackendHealthChecker`] asks every backend's driver whether it works, every so often, and
//!   records the changes; placement leaves out the backends that are down.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use prism_app::{App, AppError, Caller, CertificateRequest, CommandOptions, ErrorKind, ReadOptions};
use prism_backends::{DriverError, Drivers, LaunchRequest};
use prism_domain::certificate::RevocationReason;
use prism_domain::cvm::{
    ANY_PROVIDER, Candidate, Cvm, CvmCommand, CvmEvent, CvmStatus, DestroyReason, MachineDescription, Needs,
    REASON_MAX, place,
};
use prism_domain::{CvmId, WorkspaceId};
use prism_projections::{BACKENDS, BackendView, CERTIFICATES, CVMS};
use prism_store::{EventMeta, Recorded};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::runtime::{ReactionError, Reactor, aggregate_id, caused_by, every, read_as_of};

/// How long the provisioner waits for the certificates read model to hold a new agent certificate.
const CERTIFICATE_WAIT: Duration = Duration::from_secs(10);

/// What the provisioner needs besides the application layer.
#[derive(Debug, Clone)]
pub struct ProvisioningConfig {
    pub drivers: Arc<Drivers>,
    /// The agents' channel as agents dial it (`host:port`); without it no CVM can be made.
    pub agents_address: Option<String>,
    /// The agents' log level.
    pub agent_log_level: String,
    /// How often the reaper looks for CVMs past their TTL.
    pub reap_every: Duration,
    /// How often every backend's health is checked.
    pub check_every: Duration,
}

/// Makes and removes CVMs as their events ask.
#[derive(Debug, Clone)]
pub struct Provisioner {
    app: App,
    config: ProvisioningConfig,
}

fn clip(reason: String) -> String {
    crate::runtime::clip(reason, REASON_MAX)
}

fn candidate(backend: &BackendView) -> Candidate {
    Candidate {
        id: backend.id,
        name: backend.settings.name.clone(),
        provider: backend.settings.driver.kind().to_owned(),
        platforms: backend.settings.platforms.clone(),
        capacity: backend.settings.capacity,
        running: backend.running,
        labels: backend.settings.labels.clone(),
        healthy: backend.healthy,
    }
}

impl Provisioner {
    pub const NAME: &'static str = "provisioner";

    pub fn new(app: App, config: ProvisioningConfig) -> Self {
        Self { app, config }
    }

    async fn record(
        &self,
        meta: &EventMeta,
        cvm: CvmId,
        workspace: WorkspaceId,
        step: &str,
        command: CvmCommand,
    ) -> Result<(), ReactionError> {
        self.app
            .cvms()
            .record(
                &caused_by(meta, Self::NAME),
                cvm,
                workspace,
                command,
                Some(&format!("{}:{step}", meta.id)),
            )
            .await?;
        Ok(())
    }

    /// Chooses a backend and has it launch the CVM.
    async fn provision(&self, meta: &EventMeta, cvm: CvmId, state: &Cvm) -> Result<(), ReactionError> {
        let (Some(workspace), Some(spec)) = (state.workspace, state.spec.as_ref()) else {
            return Err(ReactionError::Fatal(AppError::internal(
                "a requested CVM has a workspace and a spec",
            )));
        };
        let fail = |reason: String| CvmCommand::Fail { reason: clip(reason) };
        let Some(agents_address) = &self.config.agents_address else {
            let reason = "this platform runs no agents' channel (--agents-listen), so no agent could dial in";
            return self
                .record(meta, cvm, workspace, "fail", fail(reason.into()))
                .await;
        };
        // The backends and their load as of the request: a backend registered before it counts.
        let read = self.app.read_models()?;
        let backends = read_as_of(meta, "the backends", || async {
            if read.reached(BACKENDS, meta.sequence).await? && read.reached(CVMS, meta.sequence).await? {
                read.backends(Some(workspace)).await.map(Some)
            } else {
                Ok(None)
            }
        })
        .await?;
        let needs = Needs {
            provider: spec.provider.clone(),
            platform: spec.platform,
            labels: spec.labels.clone(),
        };
        let candidates: Vec<Candidate> = backends.iter().map(candidate).collect();
        let placement = place(&needs, &candidates);
        if placement.ranked.is_empty() {
            let mut reason = format!(
                "no backend can run a {} CVM{}",
                spec.platform,
                if spec.provider == ANY_PROVIDER {
                    String::new()
                } else {
                    format!(" of provider {}", spec.provider)
                }
            );
            for (_, name, unfit) in &placement.unfit {
                reason.push_str(&format!("; {name} {unfit}"));
            }
            if candidates.is_empty() {
                reason.push_str("; the workspace has no backend");
            }
            return self.record(meta, cvm, workspace, "fail", fail(reason)).await;
        }

        let caller = caused_by(meta, Self::NAME);
        // Not keyed: a retried request would not give the key again. A certificate issued by an
        // attempt that crashed stays unused and is revoked with the CVM's others at its end.
        let certificate = self
            .app
            .certificates()
            .issue(
                &caller,
                &CommandOptions::default(),
                workspace,
                CertificateRequest::agent_client(cvm),
            )
            .await?;
        let key = certificate.private_key.clone().ok_or_else(|| {
            ReactionError::Fatal(AppError::internal("a new agent certificate comes with its key"))
        })?;
        // The agents' channel knows an agent by its certificate in the certificates read model: an
        // agent launched before the model holds it would be refused at its first dial, and a Cocos
        // agent exits then. Wait for it (a lagging model is retried as the reaction).
        self.app
            .read_models()?
            .wait_for(CERTIFICATES, certificate.sequence, CERTIFICATE_WAIT)
            .await
            .map_err(|e| ReactionError::Retry(AppError::from(e)))?;

        let mut refusals = Vec::new();
        for (attempt, (backend_id, _)) in placement.ranked.iter().enumerate() {
            let backend = backends
                .iter()
                .find(|b| b.id == *backend_id)
                .expect("placement ranks the candidates it was given");
            let mut reason = placement.reason(attempt);
            if !refusals.is_empty() {
                reason.push_str(&format!(" ({})", refusals.join("; ")));
            }
            let price = backend.settings.price.map(|p| p.hourly_micros(spec));
            self.record(
                meta,
                cvm,
                workspace,
                &format!("assign:{attempt}"),
                CvmCommand::AssignBackend {
                    backend: *backend_id,
                    reason: clip(reason),
                    hourly_cost_micros: price,
                },
            )
            .await?;
            let driver = match self.config.drivers.driver(*backend_id, &backend.settings.driver) {
                Ok(driver) => driver,
                Err(e) => {
                    refusals.push(format!("{}: {e}", backend.settings.name));
                    continue;
                }
            };
            let request = LaunchRequest {
                cvm,
                spec: spec.clone(),
                // With the chain: the channel trusts the root, so the agent must send the intermediate.
                agent_client_cert_pem: format!("{}{}", certificate.certificate, certificate.chain),
                agent_client_key_pem: key.clone(),
                server_ca_pem: certificate.chain.clone(),
                control_plane_url: agents_address.clone(),
                ttl: Duration::from_secs(spec.ttl_seconds),
                log_level: self.config.agent_log_level.clone(),
            };
            match driver.launch(request).await {
                Ok(launched) => {
                    info!(%cvm, backend = %backend.settings.name, backend_ref = %launched.backend_ref, "CVM launched");
                    let started = self
                        .record(
                            meta,
                            cvm,
                            workspace,
                            "started",
                            CvmCommand::MarkStarted {
                                backend_ref: launched.backend_ref.clone(),
                                agent_address: launched.agent_address,
                                test_attestation_root: launched.test_attestation_root,
                            },
                        )
                        .await;
                    if let Err(ReactionError::Fatal(e)) = &started
                        && e.kind == ErrorKind::StateConflict
                    {
                        // Destroyed while the backend launched it (its run stopped early): the
                        // removal found no machine to remove, so the one just made goes now.
                        warn!(%cvm, error = %e, "the CVM ended while it was launched: removing the machine");
                        // A failure is recorded as the reaction's, for an operator to see: a retry
                        // would find the CVM no longer being created and do nothing.
                        return match driver.remove(&launched.backend_ref).await {
                            Ok(()) | Err(DriverError::UnknownMachine(_)) => Ok(()),
                            Err(e) => Err(ReactionError::Fatal(AppError::unavailable(format!(
                                "machine {} of destroyed CVM {cvm} could not be removed: {e}",
                                launched.backend_ref
                            )))),
                        };
                    }
                    started?;
                    let description = describe(driver.as_ref(), &launched.backend_ref).await;
                    if let Some(description) = description {
                        self.record(
                            meta,
                            cvm,
                            workspace,
                            "described",
                            CvmCommand::Describe { description },
                        )
                        .await?;
                    }
                    return Ok(());
                }
                Err(e) => {
                    warn!(%cvm, backend = %backend.settings.name, error = %e, "the backend did not launch the CVM");
                    if matches!(e, DriverError::Unreachable(_)) {
                        let _ = self
                            .app
                            .backends()
                            .record_health(*backend_id, false, clip(e.to_string()))
                            .await;
                    }
                    refusals.push(format!("{}: {e}", backend.settings.name));
                }
            }
        }
        let reason = format!("every backend able to run it refused: {}", refusals.join("; "));
        self.record(meta, cvm, workspace, "fail", fail(reason)).await
    }

    /// Removes the machine, revokes the CVM's certificates, and records it destroyed.
    async fn remove(&self, meta: &EventMeta, cvm: CvmId, state: &Cvm) -> Result<(), ReactionError> {
        let Some(workspace) = state.workspace else {
            return Err(ReactionError::Fatal(AppError::internal("a CVM has a workspace")));
        };
        if let (Some(backend_id), Some(backend_ref)) = (state.backend, &state.backend_ref) {
            let backend = self
                .app
                .read_models()?
                .backend(backend_id)
                .await
                .map_err(AppError::from)?;
            match backend {
                Some(backend) => {
                    let driver = self
                        .config
                        .drivers
                        .driver(backend_id, &backend.settings.driver)
                        .map_err(|e| ReactionError::Retry(AppError::unavailable(e.to_string())))?;
                    match driver.remove(backend_ref).await {
                        Ok(()) | Err(DriverError::UnknownMachine(_)) => {}
                        // The machine may still run: keep trying (each failure is recorded, and an
                        // operator can retry the reaction once the backend is back).
                        Err(e) => return Err(ReactionError::Retry(AppError::unavailable(e.to_string()))),
                    }
                }
                None => warn!(%cvm, %backend_id, "the CVM's backend is unknown: nothing to remove there"),
            }
        }
        self.revoke(meta, workspace, cvm).await?;
        self.record(meta, cvm, workspace, "destroyed", CvmCommand::MarkDestroyed)
            .await
    }

    async fn revoke(
        &self,
        meta: &EventMeta,
        workspace: WorkspaceId,
        cvm: CvmId,
    ) -> Result<(), ReactionError> {
        let revoked = self
            .app
            .certificates()
            .revoke_entity(
                &caused_by(meta, Self::NAME),
                &CommandOptions::keyed(format!("{}:revoke", meta.id)),
                workspace,
                &cvm.to_string(),
                RevocationReason::CessationOfOperation,
                ReadOptions::at_least(meta.sequence),
            )
            .await;
        match revoked {
            Ok(_) => Ok(()),
            // None to revoke.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What the backend says about the machine; `None` when it says nothing (a driver that cannot, a
/// backend that does not answer: the CVM runs all the same).
async fn describe(driver: &dyn prism_backends::Driver, backend_ref: &str) -> Option<MachineDescription> {
    let info = match driver.info(backend_ref).await {
        Ok(info) => info,
        Err(DriverError::Unsupported(_)) => return None,
        Err(e) => {
            warn!(%backend_ref, error = %e, "the backend did not describe the machine");
            return None;
        }
    };
    let attestation_policy = match driver.attestation_policy(backend_ref).await {
        Ok(bytes) => Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Err(_) => None,
    };
    Some(MachineDescription {
        ovmf_version: info.ovmf_version,
        cpu_count: info.cpu_count,
        cpu_type: info.cpu_type,
        kernel_cmdline: info.kernel_cmdline,
        eos_version: info.eos_version,
        attestation_policy,
    })
}

impl Reactor for Provisioner {
    type Aggregate = Cvm;
    const NAME: &'static str = Provisioner::NAME;

    async fn react<'a>(&'a self, recorded: &'a Recorded<CvmEvent>) -> Result<(), ReactionError> {
        let meta = &recorded.meta;
        let wanted = matches!(
            recorded.event,
            CvmEvent::Requested(_) | CvmEvent::DestroyRequested(_) | CvmEvent::Failed(_)
        );
        if !wanted {
            return Ok(());
        }
        let cvm: CvmId = aggregate_id(meta)?;
        // Decide from the CVM as it is now: a redelivered event whose work is done does nothing.
        let state = self.app.cvms().state(cvm).await?;
        match (&recorded.event, state.status) {
            (CvmEvent::Requested(_), CvmStatus::Creating) if state.backend_ref.is_none() => {
                self.provision(meta, cvm, &state).await
            }
            (CvmEvent::DestroyRequested(_), CvmStatus::Destroying) => self.remove(meta, cvm, &state).await,
            (CvmEvent::Failed(_), CvmStatus::Failed) => {
                let Some(workspace) = state.workspace else {
                    return Ok(());
                };
                if state.backend_ref.is_some() {
                    // What was made of it must go: destroying it removes the machine.
                    self.record(
                        meta,
                        cvm,
                        workspace,
                        "destroy",
                        CvmCommand::Destroy {
                            reason: DestroyReason::Failed,
                        },
                    )
                    .await
                } else {
                    self.revoke(meta, workspace, cvm).await
                }
            }
            _ => Ok(()),
        }
    }
}

/// Destroys the CVMs past their TTL.
#[derive(Debug, Clone)]
pub struct CvmReaper {
    app: App,
    every: Duration,
}

impl CvmReaper {
    pub const NAME: &'static str = "cvm-reaper";

    pub fn new(app: App, every: Duration) -> Self {
        Self { app, every }
    }

    /// Looks every `every` until `shutdown`. A look that fails (the database is away) is logged and
    /// tried again at the next tick.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let caller = Caller::service(Self::NAME);
        every(self.every, shutdown, "look for CVMs past their TTL", || {
            self.reap(&caller, Utc::now())
        })
        .await;
    }

    /// Destroys the CVMs past their TTL at `now` (at most 100 at a time); answers how many it asked to
    /// destroy.
    pub async fn reap_once(&self, now: chrono::DateTime<Utc>) -> Result<usize, AppError> {
        self.reap(&Caller::service(Self::NAME), now).await
    }

    async fn reap(&self, caller: &Caller, now: chrono::DateTime<Utc>) -> Result<usize, AppError> {
        let overdue = self.app.read_models()?.overdue_cvms(now, 100).await?;
        let mut asked = 0;
        for (cvm, workspace) in overdue {
            // Keyed by the CVM: processes reaping at once destroy it once.
            let destroyed = self
                .app
                .cvms()
                .record(
                    caller,
                    cvm,
                    workspace,
                    CvmCommand::Destroy {
                        reason: DestroyReason::TtlExpired,
                    },
                    Some(&format!("ttl-expired:{cvm}")),
                )
                .await;
            match destroyed {
                Ok(_) => {
                    asked += 1;
                    info!(%cvm, "destroying a CVM past its TTL");
                }
                Err(e) => warn!(%cvm, error = %e, "could not destroy a CVM past its TTL"),
            }
        }
        Ok(asked)
    }
}

/// Checks every backend's health and records the changes.
#[derive(Debug, Clone)]
pub struct BackendHealthChecker {
    app: App,
    drivers: Arc<Drivers>,
    every: Duration,
}

/// How long one backend's check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

impl BackendHealthChecker {
    pub const NAME: &'static str = "backend-health";

    pub fn new(app: App, drivers: Arc<Drivers>, every: Duration) -> Self {
        Self { app, drivers, every }
    }

    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        every(self.every, shutdown, "check the backends' health", || {
            self.check_all()
        })
        .await;
    }

    async fn check_all(&self) -> Result<(), AppError> {
        let backends = self.app.read_models()?.backends(None).await?;
        for backend in backends {
            let outcome = match self.drivers.driver(backend.id, &backend.settings.driver) {
                Ok(driver) => tokio::time::timeout(CHECK_TIMEOUT, driver.check())
                    .await
                    .unwrap_or_else(|_| Err(DriverError::Unreachable("the health check timed out".into()))),
                Err(e) => Err(e),
            };
            let (healthy, detail) = match outcome {
                Ok(()) => (true, String::new()),
                Err(e) => (false, clip(e.to_string())),
            };
            if healthy != backend.healthy
                && let Err(e) = self
                    .app
                    .backends()
                    .record_health(backend.id, healthy, detail)
                    .await
            {
                warn!(backend = %backend.settings.name, error = %e, "could not record a backend's health");
            }
        }
        Ok(())
    }
}
