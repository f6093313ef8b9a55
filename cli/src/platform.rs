//! One process running the gateway, the projectors and the workers over one NATS and one PostgreSQL.
//! Every part is stateless apart from those two, so more processes scale it out.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use prism_app::{App, AppConfig};
use prism_gateway::{AppState, GatewayConfig};
use prism_projections::ReadModels;
use prism_store::{
    EventLog, EventStore, KvIdempotency, KvSnapshots, SignedSnapshots, SnapshotKey, StoreConfig,
};
use prism_workers::WorkerConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

use crate::modules::{self, WorkerDeps};

/// JetStream key-value bucket of idempotency records (kept for good: a key is remembered at any age).
const IDEMPOTENCY_BUCKET: &str = "PRISM_IDEMPOTENCY";
/// JetStream key-value bucket of aggregate snapshots.
const SNAPSHOT_BUCKET: &str = "PRISM_SNAPSHOTS";

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub nats_url: String,
    pub database_url: String,
    pub http: SocketAddr,
    pub store: StoreConfig,
    pub app: AppConfig,
    pub gateway: GatewayConfig,
    pub workers: WorkerConfig,
    /// Signs aggregate snapshots; without one, aggregates are always folded from their events.
    pub snapshot_key: Option<SnapshotKey>,
}

impl PlatformConfig {
    pub fn new(nats_url: String, database_url: String, http: SocketAddr) -> Self {
        Self {
            nats_url,
            database_url,
            http,
            store: StoreConfig::default(),
            app: AppConfig::default(),
            gateway: GatewayConfig::default(),
            workers: WorkerConfig::default(),
            snapshot_key: None,
        }
    }
}

/// A running platform. Dropping it does not stop it: call [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    addr: SocketAddr,
    app: App,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// Connects the application layer to NATS and PostgreSQL (applying migrations).
pub async fn connect(
    nats_url: &str,
    database_url: &str,
    store: StoreConfig,
    config: AppConfig,
    snapshot_key: Option<SnapshotKey>,
) -> anyhow::Result<(EventStore, App)> {
    let store = EventStore::connect(nats_url, store)
        .await
        .with_context(|| format!("cannot open the event log at {}", redact(nats_url)))?;
    let read = ReadModels::connect(database_url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", redact(database_url)))?;
    read.migrate().await.context("applying database migrations")?;
    let idempotency = KvIdempotency::open(&store, IDEMPOTENCY_BUCKET, std::time::Duration::ZERO).await?;
    let mut app = App::builder(Arc::new(store.clone()))
        .read_models(read)
        .idempotency(Arc::new(idempotency))
        .config(config);
    match snapshot_key {
        Some(key) => {
            let bucket = KvSnapshots::open(&store, SNAPSHOT_BUCKET).await?;
            app = app.snapshots(SignedSnapshots::new(Arc::new(bucket), key));
        }
        None => info!("no snapshot key configured: aggregates are folded from their whole history"),
    }
    let app = app.build();
    Ok((store, app))
}

impl Platform {
    /// Connects to NATS and PostgreSQL, applies migrations, and starts every service.
    pub async fn start(config: PlatformConfig) -> anyhow::Result<Self> {
        let (store, app) = connect(
            &config.nats_url,
            &config.database_url,
            config.store,
            config.app,
            config.snapshot_key,
        )
        .await?;
        let read = app.read_models()?.clone();
        let log: Arc<dyn EventLog> = app.log().clone();

        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for projector in modules::projectors(read.pool(), &log) {
            let stopped = stopped.clone();
            tasks.spawn(async move {
                projector.run(stopped).await;
                Ok(())
            });
        }
        let deps = WorkerDeps {
            store,
            app: app.clone(),
            config: config.workers,
            shutdown: stopped.clone(),
        };
        for (name, worker) in modules::workers(&deps) {
            tasks.spawn(async move { worker.await.with_context(|| format!("worker {name}")) });
        }

        let state = AppState::new(app.clone(), config.gateway);
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("cannot listen on {}", config.http))?;
        let addr = listener.local_addr()?;
        let mut http_stop = stopped;
        let router = prism_gateway::router(state, modules::routes());
        tasks.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|stop| *stop).await;
                })
                .await
                .context("HTTP server")
        });
        info!(%addr, "platform started");
        Ok(Self {
            addr,
            app,
            stop,
            tasks,
        })
    }

    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The application layer this platform serves.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Resolves when a service stops on its own (an error), so the caller can shut down the rest.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.tasks.join_next().await {
            Some(Ok(Err(e))) => e,
            Some(Err(e)) => anyhow::anyhow!("a service panicked: {e}"),
            Some(Ok(Ok(()))) => anyhow::anyhow!("a service stopped unexpectedly"),
            None => anyhow::anyhow!("no service is running"),
        }
    }

    /// Stops taking requests, lets in-flight work finish, and waits for every service.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(result) = self.tasks.join_next().await {
            result.context("a service panicked")??;
        }
        Ok(())
    }
}

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
