//! One process running the gateway, the projectors and the workers over one NATS and one PostgreSQL.
//! Every part is stateless apart from those two, so more processes scale it out.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use prism_agents::{AgentChannel, ChannelConfig};
use prism_app::{
    App, AppConfig, Caller, CertificateAuthorityConfig, Denial, IdentityConfig, PlatformIdentity,
    RenewalPolicy, RoleAuthorizer,
};
use prism_backends::{ClientIdentity, Drivers, LocalDriver};
use prism_ca::{CaUrls, FileKeyStore, SealedKeys, Sealer};
use prism_domain::BackendId;
use prism_domain::backend::{BackendSettings, Driver as BackendDriver};
use prism_domain::certificate::Subject;
use prism_domain::cvm::ConfidentialPlatform;
use prism_domain::denial::DenialReason;
use prism_gateway::{AppState, GatewayConfig};
use prism_projections::ReadModels;
use prism_store::{
    EventLog, EventStore, KvIdempotency, KvSnapshots, ObjectBlobs, SignedSnapshots, SnapshotKey, StoreConfig,
};
use prism_tls::{
    Alpn, ClientAuth, IdentityHandle, PeerAddr, RevokedSerials, ServerIdentity, TlsServerConfig,
};
use prism_workers::{ProvisioningConfig, WebhookConfig, WorkerConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::modules::{self, WorkerDeps};

/// JetStream key-value bucket of idempotency records (kept for good: a key is remembered at any age).
const IDEMPOTENCY_BUCKET: &str = "PRISM_IDEMPOTENCY";
/// JetStream key-value bucket of aggregate snapshots.
const SNAPSHOT_BUCKET: &str = "PRISM_SNAPSHOTS";
/// The JetStream object store that keeps asset samples (bytes the log only names).
const SAMPLES_BUCKET: &str = "PRISM_ASSET_SAMPLES";

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
    /// Serve the API over HTTPS (it needs the certificate authority); plain HTTP without.
    pub https: Option<HttpsConfig>,
    /// Serve the agents' channel (it needs the certificate authority); none without.
    pub agents: Option<AgentsConfig>,
    /// How CVMs are made: the local emulated agent, the reaper's and health checker's pace.
    pub provisioning: ProvisioningSettings,
    /// How webhooks are sent: the origin the handshake names, timeouts and the backoff.
    pub webhooks: WebhookConfig,
}

/// How the platform makes CVMs.
#[derive(Debug, Clone)]
pub struct ProvisioningSettings {
    /// Run the local emulated agent as a backend of the whole platform, registered at start
    /// (`prism up` does). **Insecure: no hardware protection.**
    pub local: Option<LocalBackendConfig>,
    pub reap_every: std::time::Duration,
    pub check_every: std::time::Duration,
    pub agent_log_level: String,
}

impl Default for ProvisioningSettings {
    fn default() -> Self {
        Self {
            local: None,
            reap_every: std::time::Duration::from_secs(30),
            check_every: std::time::Duration::from_secs(30),
            agent_log_level: "info".into(),
        }
    }
}

/// The local backend: the emulated agent program and where its CVMs' directories go.
#[derive(Debug, Clone)]
pub struct LocalBackendConfig {
    pub program: std::path::PathBuf,
    pub root: std::path::PathBuf,
    /// How many emulated CVMs may run at once.
    pub capacity: u32,
}

/// The id of the platform's local backend, the same on every start and every platform.
pub const LOCAL_BACKEND_ID: BackendId =
    BackendId(uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_6c6f_6361_6c00));

/// The entity (a `service`) of the certificate the platform presents to Cocos managers.
pub const PROVISIONER_CERTIFICATE_ENTITY: &str = "prism-provisioner";

/// The agents' channel: where agents dial (gRPC over mutual TLS, ALPN `h2`), the names its
/// certificate carries, and how long an agent may stay away before its CVM is Offline.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    pub listen: SocketAddr,
    /// Host names or addresses agents dial, besides `localhost`, the loopback addresses and the
    /// listening address.
    pub names: Vec<String>,
    pub heartbeat_gap: std::time::Duration,
    /// `host:port` agents are told to dial; by default the first of `names` (else `127.0.0.1`) with
    /// the listening port.
    pub dial: Option<String>,
}

/// The entity (a `service`) of the agents' channel's certificate.
pub const AGENTS_CERTIFICATE_ENTITY: &str = "prism-agents";

/// Serving the API over HTTPS with a certificate of the platform's own authority, kept current: the
/// renewal worker renews it, and the server presents the renewal from the next handshake on.
#[derive(Debug, Clone, Default)]
pub struct HttpsConfig {
    /// The names clients dial, which the certificate carries besides `localhost`, `127.0.0.1` and
    /// `::1`: DNS names or IP addresses (the public URL's host among them).
    pub names: Vec<String>,
}

/// The entity (a `service`) of the API's own certificate.
pub const API_CERTIFICATE_ENTITY: &str = "prism-api";

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
            https: None,
            agents: None,
            provisioning: ProvisioningSettings::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// A TLS configuration for one of the platform's own services (`entity`, a `service` certificate of
/// the platform's authority with the names of `subject`) that requires client certificates of the
/// authority, refuses revoked ones and closes their connections: the revoked serials are loaded
/// before this returns, then kept current from the event log (within milliseconds of a revocation)
/// until `stop`, as is the service's own certificate (its renewals are presented without a restart).
/// The tasks that keep them current are added to `tasks`.
pub async fn mutual_tls(
    app: &App,
    entity: &str,
    subject: Subject,
    alpn: Alpn,
    stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<TlsServerConfig> {
    let caller = Caller::service(entity);
    let identity = app
        .certificates()
        .platform_identity(&caller, entity, subject.clone())
        .await
        .with_context(|| format!("the certificate of {entity}"))?;
    let root = prism_ca::der_of("CERTIFICATE", &identity.root).context("the authority's root")?;
    let revoked = RevokedSerials::new();
    let (loaded, initial) = tokio::sync::oneshot::channel();
    let mut loaded = Some(loaded);
    let feed = Arc::clone(&revoked);
    let watching = app.clone();
    let watch_stop = stop.clone();
    tasks.spawn(async move {
        watching
            .certificates()
            .watch_revocations(
                move |serials| {
                    feed.revoke(serials.iter().cloned());
                    if let Some(loaded) = loaded.take() {
                        let _ = loaded.send(());
                    }
                },
                watch_stop,
            )
            .await
            .context("following revocations")
    });
    initial
        .await
        .context("the revoked certificates could not be loaded")?;
    let tls = TlsServerConfig::new(
        ServerIdentity::from_pem(&identity.certificate_chain, &identity.private_key)?,
        ClientAuth::Required {
            roots: vec![root.into()],
            revoked,
        },
        alpn,
    )?;
    tasks.spawn(keep_identity_current(
        app.clone(),
        entity.to_owned(),
        subject,
        identity,
        tls.identity().clone(),
        stop,
    ));
    Ok(tls)
}

/// The names of a service's certificate: `localhost`, the loopback addresses, the address it listens
/// on when that is a particular one, and the configured names.
fn service_subject(entity: &str, names: &[String], listening: SocketAddr) -> Subject {
    let mut subject = Subject {
        common_name: entity.into(),
        dns_names: vec!["localhost".into()],
        ip_addresses: vec![
            std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ],
        ..Subject::default()
    };
    let mut add = |name: &str| match name.parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_unspecified() && !subject.ip_addresses.contains(&ip) => {
            subject.ip_addresses.push(ip)
        }
        Ok(_) => {}
        Err(_) if !subject.dns_names.iter().any(|n| n == name) => subject.dns_names.push(name.to_owned()),
        Err(_) => {}
    };
    add(&listening.ip().to_string());
    for name in names {
        add(name);
    }
    subject
}

/// What the provisioner works with: the drivers (the local emulated agent when configured — its
/// backend registered for the whole platform —, a client certificate for Cocos managers when the
/// platform has its certificate authority), where agents dial, and its pace.
async fn provisioning(
    app: &App,
    settings: &ProvisioningSettings,
    has_authority: bool,
    agents_address: Option<String>,
) -> anyhow::Result<ProvisioningConfig> {
    let local = settings
        .local
        .as_ref()
        .map(|local| LocalDriver::new(&local.program, &local.root));
    let manager_identity = match has_authority {
        false => None,
        true => {
            let caller = Caller::service(PROVISIONER_CERTIFICATE_ENTITY);
            let subject = Subject {
                common_name: PROVISIONER_CERTIFICATE_ENTITY.into(),
                dns_names: vec!["localhost".into()],
                ..Subject::default()
            };
            let identity = app
                .certificates()
                .platform_identity(&caller, PROVISIONER_CERTIFICATE_ENTITY, subject)
                .await
                .context("the provisioner's client certificate")?;
            Some(ClientIdentity {
                certificate_chain_pem: identity.certificate_chain,
                private_key_pem: identity.private_key,
            })
        }
    };
    if let Some(local) = &settings.local {
        warn!(program = %local.program.display(), "INSECURE: the local backend runs emulated agents with no hardware protection");
        app.backends()
            .ensure_platform_backend(
                LOCAL_BACKEND_ID,
                BackendSettings {
                    name: "local".into(),
                    driver: BackendDriver::Local,
                    platforms: vec![ConfidentialPlatform::None],
                    capacity: local.capacity,
                    labels: Default::default(),
                    price: None,
                },
            )
            .await
            .context("registering the local backend")?;
    }
    Ok(ProvisioningConfig {
        drivers: Arc::new(Drivers::new(local, manager_identity)),
        agents_address,
        agent_log_level: settings.agent_log_level.clone(),
        reap_every: settings.reap_every,
        check_every: settings.check_every,
    })
}

/// Presents a service certificate's renewals as the renewal worker makes them: looks as often as the
/// worker does, and replaces the served identity when the platform's certificate has changed.
async fn keep_identity_current(
    app: App,
    entity: String,
    subject: Subject,
    mut current: PlatformIdentity,
    handle: Arc<IdentityHandle>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let every = app.certificates().renewal_policy()?.every;
    let caller = Caller::service(&entity);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
        let fresh = match app
            .certificates()
            .platform_identity(&caller, &entity, subject.clone())
            .await
        {
            Ok(fresh) => fresh,
            Err(e) => {
                warn!(%entity, error = %e, "cannot look at the service's certificate; serving the one it has");
                continue;
            }
        };
        if fresh.certificate_chain != current.certificate_chain {
            match ServerIdentity::from_pem(&fresh.certificate_chain, &fresh.private_key)
                .map_err(anyhow::Error::from)
                .and_then(|identity| Ok(handle.replace(identity)?))
            {
                Ok(()) => {
                    info!(%entity, not_after = %fresh.not_after, "the service presents its renewed certificate");
                    current = fresh;
                }
                Err(e) => warn!(%entity, error = %e, "cannot present the service's renewed certificate"),
            }
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

/// How webhooks are sent by a platform reached at `public_url`: the handshake names its host as the
/// origin of the deliveries (`WebHook-Request-Origin`).
pub fn webhook_config(public_url: &str) -> WebhookConfig {
    let origin = public_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_else(|| "localhost".into());
    WebhookConfig {
        origin,
        ..WebhookConfig::default()
    }
}

/// A running platform. Dropping it does not stop it: call [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    addr: SocketAddr,
    /// The root certificate (PEM) to trust, when the API is served over HTTPS.
    https_root: Option<String>,
    /// Where the agents' channel listens, and the channel, when it runs.
    agents: Option<(SocketAddr, AgentChannel)>,
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
    let samples = ObjectBlobs::open(&store, SAMPLES_BUCKET).await?;
    let mut app = App::builder(Arc::new(store.clone()))
        .read_models(read)
        .idempotency(Arc::new(idempotency))
        .blobs(Arc::new(samples))
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
        if config.certificate_authority.is_none() && (config.agents.is_some() || config.https.is_some()) {
            anyhow::bail!(
                "HTTPS and the agents' channel need the certificate authority (PRISM_CA_KEK, PRISM_CA_KEYS)"
            );
        }
        let has_authority = config.certificate_authority.is_some();
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
        let agents = match &config.agents {
            None => None,
            Some(agents) => {
                let listener = tokio::net::TcpListener::bind(agents.listen)
                    .await
                    .with_context(|| format!("cannot listen for agents on {}", agents.listen))?;
                let agents_addr = listener.local_addr()?;
                let subject = service_subject(AGENTS_CERTIFICATE_ENTITY, &agents.names, agents_addr);
                let tls = mutual_tls(
                    &app,
                    AGENTS_CERTIFICATE_ENTITY,
                    subject,
                    Alpn::Http2,
                    stopped.clone(),
                    &mut tasks,
                )
                .await?;
                let channel = AgentChannel::new(
                    app.clone(),
                    ChannelConfig {
                        heartbeat_gap: agents.heartbeat_gap,
                        ..ChannelConfig::default()
                    },
                );
                let service = channel.service();
                let mut agents_stop = stopped.clone();
                let on_refusal = refusals_recorded(app.clone(), "agents' channel");
                tasks.spawn(async move {
                    prism_tls::Server::new(listener, tls)
                        .on_refusal(on_refusal)
                        .serve(service, async move {
                            let _ = agents_stop.wait_for(|stop| *stop).await;
                        })
                        .await;
                    Ok(())
                });
                info!(addr = %agents_addr, "agents' channel listening (mutual TLS)");
                let dial = agents.dial.clone().unwrap_or_else(|| {
                    let host = agents
                        .names
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "127.0.0.1".into());
                    format!("{host}:{}", agents_addr.port())
                });
                Some((agents_addr, channel, dial))
            }
        };
        let provisioning = provisioning(
            &app,
            &config.provisioning,
            has_authority,
            agents.as_ref().map(|a| a.2.clone()),
        )
        .await?;
        let deps = WorkerDeps {
            store,
            app: app.clone(),
            config: config.workers,
            shutdown: stopped.clone(),
            provisioning,
            agents: agents.as_ref().map(|a| a.1.clone()),
            webhooks: config.webhooks.clone(),
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
        let mut http_stop = stopped.clone();
        let router = prism_gateway::router(state, modules::routes());
        let https_root = match &config.https {
            None => {
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
                None
            }
            Some(https) => {
                let subject = service_subject(API_CERTIFICATE_ENTITY, &https.names, addr);
                let caller = Caller::service(API_CERTIFICATE_ENTITY);
                let identity = app
                    .certificates()
                    .platform_identity(&caller, API_CERTIFICATE_ENTITY, subject.clone())
                    .await
                    .context("the API's certificate")?;
                let root = identity.root.clone();
                let tls = TlsServerConfig::new(
                    ServerIdentity::from_pem(&identity.certificate_chain, &identity.private_key)?,
                    ClientAuth::None,
                    Alpn::Http2AndHttp1,
                )?;
                tasks.spawn(keep_identity_current(
                    app.clone(),
                    API_CERTIFICATE_ENTITY.to_owned(),
                    subject,
                    identity,
                    tls.identity().clone(),
                    stopped.clone(),
                ));
                // The TLS server names the peer in its own extension; the gateway reads axum's.
                let router = router.layer(axum::middleware::map_request(
                    |mut request: axum::extract::Request| async move {
                        if let Some(PeerAddr(addr)) = request.extensions().get::<PeerAddr>().copied() {
                            request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
                        }
                        request
                    },
                ));
                tasks.spawn(async move {
                    prism_tls::Server::new(listener, tls)
                        .serve(router, async move {
                            let _ = http_stop.wait_for(|stop| *stop).await;
                        })
                        .await;
                    Ok(())
                });
                Some(root)
            }
        };
        info!(%addr, https = https_root.is_some(), "platform started");
        Ok(Self {
            addr,
            https_root,
            agents: agents.map(|(addr, channel, _)| (addr, channel)),
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

    /// The API's base URL on its listening address (`https://` when it is served over HTTPS).
    pub fn base_url(&self) -> String {
        match self.https_root {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Where agents dial, and the channel that sends them requests, when the platform runs it.
    pub fn agents(&self) -> Option<(SocketAddr, &AgentChannel)> {
        self.agents.as_ref().map(|(addr, channel)| (*addr, channel))
    }

    /// The root certificate (PEM) clients trust to reach the API over HTTPS; `None` over plain HTTP.
    pub fn https_root(&self) -> Option<&str> {
        self.https_root.as_deref()
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

/// Records each client certificate a TLS listener refuses as an access denial (a security event),
/// rate-bounded per source like every denial.
fn refusals_recorded(app: App, listener: &'static str) -> prism_tls::OnRefusal {
    std::sync::Arc::new(move |refusal: prism_tls::Refusal| {
        let app = app.clone();
        tokio::spawn(async move {
            let caller = Caller {
                source: Some(refusal.remote.ip()),
                ..Caller::anonymous()
            };
            let detail = match &refusal.serial {
                Some(serial) => format!("{} (serial {serial})", refusal.reason),
                None => refusal.reason,
            };
            let denial = Denial::new(DenialReason::CertificateRefused, listener, detail);
            app.deny(&caller, denial).await;
        });
    })
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
