//! The platform's registry: every aggregate with its projections, HTTP routes and workers, in one list.
//! Adding an aggregate is its domain module, its projection module, its route module, and one entry in
//! [`modules`] (see ARCHITECTURE.md, "Adding an aggregate").

use std::sync::Arc;

use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use prism_app::App;
use prism_domain::Aggregate;
use prism_domain::api_key::ApiKey;
use prism_domain::asset::Asset;
use prism_domain::authority::Authority;
use prism_domain::backend::Backend;
use prism_domain::certificate::Certificate;
use prism_domain::computation::Computation;
use prism_domain::cvm::Cvm;
use prism_domain::denial::AccessDenial;
use prism_domain::ledger::Ledger;
use prism_domain::reaction::Reaction;
use prism_domain::run::Run;
use prism_domain::schema::{self, EventSchema};
use prism_domain::session::Session;
use prism_domain::user::User;
use prism_domain::webhook::Webhook;
use prism_domain::workspace::Workspace;
use prism_gateway::{Routes, routes};
use prism_projections::{
    ApiKeysProjection, AssetsProjection, BackendsProjection, CertificatesProjection, ComputationsProjection,
    CvmActivityProjection, CvmsProjection, Projection, Projector, ReactionsProjection, RunActivityProjection,
    RunProjection, RunsProjection, SecurityAttestationsProjection, SecurityDenialsProjection,
    SecuritySignInsProjection, UsersProjection, WebhookFanOut, WorkspacesProjection,
};
use prism_store::{EventLog, EventStore};
use prism_workers::{
    Attestor, Auditor, BackendHealthChecker, CertificateRenewer, CvmReaper, InvitationLinker,
    LateComputationArchiver, LateInvitationLinker, Provisioner, ProvisioningConfig, Reactor,
    RetiredComputationRevoker, RunConductor, RunCvmWatcher, RunHaltWatcher, RunTimer, WebhookConfig,
    WebhookSender, Worker, WorkerConfig, WorkspaceArchiver,
};
use tokio::sync::watch;

/// The list. Order matters only for reading.
pub fn modules() -> Vec<Module> {
    vec![
        Module::aggregate::<Workspace>()
            .projection(WorkspacesProjection)
            .routes(routes::workspaces::routes)
            .routes(routes::members::routes)
            // A workspace's audit trail: the events of every aggregate of it.
            .routes(routes::audit::routes)
            .worker(WorkspaceArchiver::new),
        Module::aggregate::<Computation>()
            .projection(ComputationsProjection)
            .routes(routes::computations::routes)
            .routes(routes::governance::routes)
            .worker(LateComputationArchiver::new)
            .worker(LateInvitationLinker::new)
            .worker(RetiredComputationRevoker::new)
            .worker(RunHaltWatcher::new),
        Module::aggregate::<Asset>()
            .projection(AssetsProjection)
            .routes(routes::assets::routes),
        Module::aggregate::<Reaction>()
            .projection(ReactionsProjection)
            .routes(routes::reactions::routes)
            .routes(routes::operations::routes),
        Module::aggregate::<User>()
            .projection(UsersProjection)
            .projection(SecuritySignInsProjection)
            .routes(routes::identity::routes)
            .routes(routes::accounts::routes)
            .worker(InvitationLinker::new),
        Module::aggregate::<Session>(),
        Module::aggregate::<ApiKey>()
            .projection(ApiKeysProjection)
            .routes(routes::api_keys::routes),
        Module::aggregate::<AccessDenial>().projection(SecurityDenialsProjection),
        Module::aggregate::<Ledger>().task(Auditor::NAME, |deps| {
            Box::pin(async move {
                // A checkpoint within a tenth of a second of a commit, shared by the commits of
                // that tenth: far inside the second by which every commit should be vouched for.
                Auditor::new(deps.app, std::time::Duration::from_millis(100))
                    .run(deps.shutdown)
                    .await;
                Ok(())
            })
        }),
        Module::aggregate::<Run>()
            .projection(RunsProjection)
            .projection(RunActivityProjection)
            .routes(routes::runs::routes)
            .routes(routes::activity::routes)
            .routes(routes::reports::routes)
            .task(RunConductor::NAME, |deps| {
                Box::pin(async move {
                    let conductor = RunConductor::new(deps.app.clone(), deps.agents);
                    let worker = Worker::new(conductor, deps.store, deps.app, deps.config);
                    Ok(worker.run(deps.shutdown).await?)
                })
            })
            .task(RunTimer::NAME, |deps| {
                Box::pin(async move {
                    // Deadlines are minutes to hours away: a look every few seconds is on time.
                    RunTimer::new(deps.app, std::time::Duration::from_secs(5))
                        .run(deps.shutdown)
                        .await;
                    Ok(())
                })
            }),
        Module::aggregate::<Certificate>()
            .projection(CertificatesProjection)
            .routes(routes::certs::routes)
            .routes(routes::certificates::routes)
            .task(CertificateRenewer::NAME, |deps| {
                Box::pin(async move {
                    CertificateRenewer::new(deps.app).run(deps.shutdown).await;
                    Ok(())
                })
            }),
        Module::aggregate::<Authority>(),
        Module::aggregate::<Backend>()
            .projection(BackendsProjection)
            .routes(routes::backends::routes)
            .task(BackendHealthChecker::NAME, |deps| {
                Box::pin(async move {
                    let every = deps.provisioning.check_every;
                    BackendHealthChecker::new(deps.app, deps.provisioning.drivers, every)
                        .run(deps.shutdown)
                        .await;
                    Ok(())
                })
            }),
        Module::aggregate::<Cvm>()
            .projection(CvmsProjection)
            .projection(CvmActivityProjection)
            .projection(SecurityAttestationsProjection)
            .routes(routes::attestation::routes)
            .worker(Attestor::new)
            .worker(RunCvmWatcher::new)
            .routes(routes::cvms::routes)
            .task(Provisioner::NAME, |deps| {
                Box::pin(async move {
                    let provisioner = Provisioner::new(deps.app.clone(), deps.provisioning);
                    let worker = Worker::new(provisioner, deps.store, deps.app, deps.config);
                    Ok(worker.run(deps.shutdown).await?)
                })
            })
            .task(CvmReaper::NAME, |deps| {
                Box::pin(async move {
                    CvmReaper::new(deps.app, deps.provisioning.reap_every)
                        .run(deps.shutdown)
                        .await;
                    Ok(())
                })
            }),
        // Webhooks: the fan-out follows the whole log (not a projection of this aggregate: its
        // deliveries are operational state that a rebuild must never empty), the sender sends.
        Module::aggregate::<Webhook>()
            .routes(routes::webhooks::routes)
            .task(WEBHOOK_FAN_OUT, |deps| {
                Box::pin(async move {
                    let pool = deps.app.read_models()?.pool().clone();
                    WebhookFanOut::new(pool, deps.app.log().clone())
                        .run(deps.shutdown)
                        .await;
                    Ok(())
                })
            })
            .task(WebhookSender::NAME, |deps| {
                Box::pin(async move {
                    WebhookSender::new(deps.app, deps.webhooks)?
                        .run(deps.shutdown)
                        .await;
                    Ok(())
                })
            }),
    ]
}

/// The name of the task that queues webhook deliveries.
pub const WEBHOOK_FAN_OUT: &str = "webhook-fan-out";

type ProjectionFactory = Box<dyn Fn(Pool, Arc<dyn EventLog>) -> Box<dyn RunProjection> + Send + Sync>;
type WorkerFactory = Box<dyn Fn(WorkerDeps) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// What a worker is started with.
#[derive(Debug, Clone)]
pub struct WorkerDeps {
    pub store: EventStore,
    pub app: App,
    pub config: WorkerConfig,
    pub shutdown: watch::Receiver<bool>,
    pub provisioning: ProvisioningConfig,
    /// The agents' channel, when the platform runs one.
    pub agents: Option<prism_agents::AgentChannel>,
    /// How webhooks are sent.
    pub webhooks: WebhookConfig,
}

/// One aggregate type and everything the platform runs for it.
pub struct Module {
    pub aggregate: &'static str,
    schemas: fn() -> Vec<EventSchema>,
    projections: Vec<(&'static str, ProjectionFactory)>,
    routes: Vec<fn() -> Routes>,
    workers: Vec<(&'static str, WorkerFactory)>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("aggregate", &self.aggregate)
            .field(
                "projections",
                &self.projections.iter().map(|p| p.0).collect::<Vec<_>>(),
            )
            .field("workers", &self.workers.iter().map(|w| w.0).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Module {
    pub fn aggregate<A: Aggregate>() -> Self
    where
        A::Event: schemars::JsonSchema,
    {
        Self {
            aggregate: A::TYPE,
            schemas: schema::of::<A>,
            projections: Vec::new(),
            routes: Vec::new(),
            workers: Vec::new(),
        }
    }

    pub fn projection<P: Projection + Clone>(mut self, projection: P) -> Self {
        let name = projection.name();
        self.projections.push((
            name,
            Box::new(move |pool, log| Box::new(Projector::new(projection.clone(), pool, log))),
        ));
        self
    }

    pub fn routes(mut self, routes: fn() -> Routes) -> Self {
        self.routes.push(routes);
        self
    }

    pub fn worker<R: Reactor>(mut self, make: fn(App) -> R) -> Self {
        self.workers.push((
            R::NAME,
            Box::new(move |deps: WorkerDeps| {
                let worker = Worker::new(make(deps.app.clone()), deps.store, deps.app, deps.config);
                Box::pin(async move { Ok(worker.run(deps.shutdown).await?) })
            }),
        ));
        self
    }

    /// A process the platform runs beside its reactors that no event starts (one driven by time).
    pub fn task(
        mut self,
        name: &'static str,
        start: fn(WorkerDeps) -> BoxFuture<'static, anyhow::Result<()>>,
    ) -> Self {
        self.workers.push((name, Box::new(start)));
        self
    }
}

/// Every event payload schema of every registered aggregate.
pub fn schemas() -> Vec<EventSchema> {
    modules().iter().flat_map(|m| (m.schemas)()).collect()
}

/// Every route module, for the gateway.
pub fn routes() -> Vec<Routes> {
    modules()
        .iter()
        .flat_map(|m| m.routes.iter().map(|r| r()))
        .collect()
}

/// The names of every projection, in registry order.
pub fn projection_names() -> Vec<&'static str> {
    modules()
        .iter()
        .flat_map(|m| m.projections.iter().map(|p| p.0))
        .collect()
}

/// A projector for every projection.
pub fn projectors(pool: &Pool, log: &Arc<dyn EventLog>) -> Vec<Box<dyn RunProjection>> {
    modules()
        .iter()
        .flat_map(|m| {
            m.projections
                .iter()
                .map(|(_, make)| make(pool.clone(), log.clone()))
        })
        .collect()
}

/// The projector of the projection called `name`; `None` if there is no such projection.
pub fn projector(name: &str, pool: &Pool, log: &Arc<dyn EventLog>) -> Option<Box<dyn RunProjection>> {
    modules()
        .iter()
        .flat_map(|m| m.projections.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make(pool.clone(), log.clone()))
}

/// Every worker, ready to run.
pub fn workers(deps: &WorkerDeps) -> Vec<(&'static str, BoxFuture<'static, anyhow::Result<()>>)> {
    modules()
        .iter()
        .flat_map(|m| m.workers.iter().map(|(name, start)| (*name, start(deps.clone()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An investigator can replay every aggregate the platform records, and nothing else.
    #[test]
    fn every_registered_aggregate_can_be_replayed() {
        let mut registered: Vec<&str> = modules().iter().map(|m| m.aggregate).collect();
        let mut replayable = prism_app::REPLAYABLE.to_vec();
        registered.sort_unstable();
        replayable.sort_unstable();
        assert_eq!(registered, replayable);
    }
}
