//! One process running the gateway, the projectors and the workers over one NATS and one PostgreSQL.
//! Every part is stateless apart from those two, so more processes scale it out.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use prism_app::{App, AppConfig, CertificateAuthorityConfig, IdentityConfig, RenewalPolicy, RoleAuthorizer};
use prism_ca::{CaUrls, FileKeyStore, SealedKeys, Sealer};
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
    /// Access-token keys and sign-in policies. Every process of one platform must share the keys.
    pub identity: IdentityConfig,
    /// The platform administrator to create, before the API answers, when the platform has no user.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// The certificate authority's public URLs and key store; without it, no certificate is issued.
    pub certificate_authority: Option<CertificateAuthorityConfig>,
}

/// The first platform administrator: its address, and its password (generated when `None`).
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub email: String,
    pub password: Option<String>,
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
            identity: IdentityConfig::ephemeral(&format!("http://{http}")),
            bootstrap_admin: None,
            certificate_authority: None,
        }
    }
}

/// The certificate authority of a platform whose keys are sealed under `kek` (32 bytes) in the
/// directory `keys`, and whose certificates name URLs under `public_url`.
pub fn authority_config(
    kek: &[u8],
    keys: &std::path::Path,
    public_url: &str,
    renewal: RenewalPolicy,
) -> anyhow::Result<CertificateAuthorityConfig> {
    let sealer = Sealer::new(kek).context("the certificate authority's key-encryption key")?;
    let store =
        FileKeyStore::open(keys).with_context(|| format!("opening the key store {}", keys.display()))?;
    Ok(CertificateAuthorityConfig {
        urls: CaUrls::under(public_url),
        keys: Arc::new(SealedKeys::new(sealer, store)),
        renewal,
    })
}

/// A running platform. Dropping it does not stop it: call [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    addr: SocketAddr,
    app: App,
    /// The administrator's password when this start created the account.
    created_admin_password: Option<String>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// Connects the application layer to NATS and PostgreSQL (applying migrations), enforcing the
/// permission matrix. Without `identity` it authenticates no bearer credential (platform tools that
/// act as a service).
pub async fn connect(
    nats_url: &str,
    database_url: &str,
    store: StoreConfig,
    config: AppConfig,
    snapshot_key: Option<SnapshotKey>,
    identity: Option<IdentityConfig>,
    authority: Option<CertificateAuthorityConfig>,
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
        .authorizer(Arc::new(RoleAuthorizer))
        .config(config);
    if let Some(identity) = identity {
        app = app.identity(identity);
    }
    if let Some(authority) = authority {
        app = app.certificate_authority(authority);
    }
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
            Some(config.identity),
            config.certificate_authority,
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

        let created_admin_password = match &config.bootstrap_admin {
            Some(admin) => app
                .identity()
                .bootstrap_admin(&admin.email, admin.password.clone())
                .await
                .context("creating the platform administrator")?,
            None => None,
        };

        let state = AppState::new(app.clone(), config.gateway);
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("cannot listen on {}", config.http))?;
        let addr = listener.local_addr()?;
        let mut http_stop = stopped;
        let router = prism_gateway::router(state, modules::routes());
        tasks.spawn(async move {
            // The peer's address is the source that sign-in throttling and denial records name.
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
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
            created_admin_password,
            stop,
            tasks,
        })
    }

    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The platform administrator's password, when this start created the account (to show once).
    pub fn created_admin_password(&self) -> Option<&str> {
        self.created_admin_password.as_deref()
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
