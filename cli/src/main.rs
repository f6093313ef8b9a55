//! `prism`: run the platform, and operate it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use prism_app::{
    AppConfig, Caller, CertificateAuthorityConfig, CommandOptions, IdentityConfig, OidcSignIn, ReadOptions,
    RenewalPolicy,
};
use prism_auth::{OidcConfig, OidcProvider, SigningKeys};
use prism_cli::{Platform, PlatformConfig, modules, participant};
use prism_store::{EventLog, EventStore, OpenMode, SnapshotKey, StoreConfig};

mod up;
use prism_projections::ReadModels;
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    name = "prism",
    version,
    about = "Control plane for multi-party confidential computing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Brings the whole platform up in one process. Without NATS_URL / DATABASE_URL it starts an
    /// embedded nats-server and a private PostgreSQL cluster with their data under --data-dir; both
    /// admit only the platform (their URLs, passwords included, are in <data dir>/env).
    Up {
        /// HTTP listen address of the API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Where the embedded servers keep their data; a second `prism up` reuses it.
        #[arg(long, env = "PRISM_DATA_DIR", default_value = ".prism")]
        data_dir: PathBuf,
        #[arg(long, env = "NATS_URL")]
        nats_url: Option<String>,
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        /// The platform administrator created on an empty platform (its password is printed once).
        #[arg(long, env = "PRISM_ADMIN_EMAIL", default_value = "admin@prism.local")]
        admin_email: String,
        /// That administrator's initial password (default: generated and printed once).
        #[arg(long, env = "PRISM_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        #[command(flatten)]
        renewal: RenewalArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        agents: AgentsArgs,
        #[command(flatten)]
        runs: RunsArgs,
        /// How many CVMs the local backend (the emulated agent: insecure, no hardware protection) runs at
        /// once; 0 leaves it out.
        #[arg(long, env = "PRISM_LOCAL_CVMS", default_value_t = 4)]
        local_cvms: u32,
    },
    /// Runs every service against an existing NATS JetStream and PostgreSQL (run more for scale-out).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        #[arg(long, env = "NATS_URL")]
        nats_url: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        authority: AuthorityArgs,
        #[command(flatten)]
        renewal: RenewalArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        agents: AgentsArgs,
        #[command(flatten)]
        runs: RunsArgs,
        #[command(flatten)]
        attestation: AttestationArgs,
    },
    /// One aggregate's history, event by event, with the state after each (time travel for an
    /// investigation): read from the log with its hash chain verified, folded by the domain's rules.
    Replay {
        /// `run`, `computation`, `cvm`, `workspace`, `certificate`, `user`, …
        aggregate_type: String,
        id: String,
        /// Stop after the commit at this stream sequence, or after the last event recorded at or
        /// before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Show how each event changed the state (an RFC 6902 JSON Patch) instead of the whole state.
        #[arg(long)]
        diff: bool,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        servers: Servers,
    },
    /// The audit ledger: signed checkpoints over the event log. Verify the whole log against it,
    /// export a range as a bundle, verify a bundle offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        servers: Servers,
    },
    /// Reactions workers gave up on: list them, retry one.
    Reactions {
        #[command(subcommand)]
        command: ReactionsCommand,
        #[command(flatten)]
        servers: Servers,
    },
    /// The keys that sign access tokens: list them, or start signing with a new one (the old ones keep
    /// verifying until their tokens have expired). Every process of the platform reads the file again.
    TokenKeys {
        #[command(subcommand)]
        command: TokenKeysCommand,
        /// The keys file (`prism up` keeps it in <data dir>/token-keys.json).
        #[arg(long, env = "PRISM_TOKEN_KEYS", default_value = ".prism/token-keys.json")]
        token_keys: PathBuf,
    },
    /// Attestation evidence: a run's appraisal, or recorded ones appraised again offline.
    Attestation {
        #[command(subcommand)]
        command: AttestationCommand,
    },
    /// Sign in as a participant; the session is kept for the participants' commands
    /// (`$HOME/.config/prism/credentials.json`, mode 0600, or `PRISM_CREDENTIALS`).
    Login {
        /// The platform's API, e.g. `http://127.0.0.1:8080`.
        #[arg(long, env = "PRISM_URL")]
        url: String,
        #[arg(long)]
        email: String,
        /// Read from standard input when not given here.
        #[arg(long, env = "PRISM_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// A workspace's computations: list, show, export as a document, import from one.
    Computations {
        #[command(subcommand)]
        command: ComputationsCommand,
    },
    /// Consent to a computation's current manifest.
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// Send the algorithm straight to a run's attested agent.
    Algo {
        #[command(subcommand)]
        command: AlgoCommand,
    },
    /// Send a dataset straight to a run's attested agent.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Receive a run's result from its attested agent.
    Result {
        #[command(subcommand)]
        command: ResultCommand,
    },
    /// Read-model maintenance.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
        #[command(flatten)]
        servers: Servers,
    },
}

#[derive(Debug, Subcommand)]
enum AttestationCommand {
    /// Appraise recorded evidence again with this program's own verifier, from the records alone
    /// (`GET /{workspace}/cvms/{cvm}/attestations` saved to a file): no platform, no network. Exits 0
    /// when every record holds — the same outcome, and one a run may rely on — else 1.
    Verify {
        /// The appraisals: the API's list, one appraisal, or an array of them.
        #[arg(long)]
        file: PathBuf,
        /// The platform's JWK Set (`GET /attestation/jwks.json`): each record's EAR must verify with
        /// it and say the recorded outcome.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Accept evidence from machines without a TEE as insecure (never as verified), as a
        /// development platform (`prism up`) does.
        #[arg(long)]
        insecure_development: bool,
    },
    /// Print the appraisal that let a run take inputs: evidence, verdict and EAR.
    Get {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        run: String,
    },
}

/// Which run, and with which key, a participant acts.
#[derive(Debug, Args)]
struct RunTarget {
    #[arg(long)]
    workspace: String,
    #[arg(long)]
    run: String,
    /// The participant's private key (unencrypted PKCS #8 PEM: RSA, EC on P-256, P-384 or P-521, or
    /// Ed25519), the one whose public half the computation registers.
    #[arg(long)]
    key: PathBuf,
    /// Accept a run whose machine has no TEE as insecure (never as verified): a development
    /// platform (`prism up`) runs such machines.
    #[arg(long)]
    insecure_development: bool,
}

#[derive(Debug, Subcommand)]
enum ComputationsCommand {
    /// The workspace's computations: id, status and name, one per line.
    List {
        #[arg(long)]
        workspace: String,
    },
    /// One computation, as the API shows it.
    Get {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        computation: String,
    },
    /// The computation as a document (`prism.computation.v1`): its definition, attestation policies
    /// and change threshold.
    Export {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        computation: String,
        /// Where to write it; standard output when not given.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A new computation of the workspace from a document `export` wrote; prints its id.
    Import {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConsentCommand {
    /// Sign the computation's current manifest id with the participant's key.
    Sign {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        computation: String,
        /// The participant's private key (unencrypted PKCS #8 PEM).
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AlgoCommand {
    /// Check the file against the run's manifest and attestation, send it, give a receipt.
    Upload {
        #[command(flatten)]
        target: RunTarget,
        #[arg(long)]
        file: PathBuf,
        /// `bin`, `python`, `wasm` or `docker`.
        #[arg(long = "type", default_value = "bin")]
        algo_type: String,
        /// A Python algorithm's requirements file.
        #[arg(long)]
        requirements: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Check the file against the run's manifest and attestation, send it, give a receipt.
    Upload {
        #[command(flatten)]
        target: RunTarget,
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ResultCommand {
    /// Check the run's attestation, receive the result (a zip), give a receipt.
    Fetch {
        #[command(flatten)]
        target: RunTarget,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where an operator command finds the platform.
#[derive(Debug, Args)]
struct Servers {
    #[arg(long, env = "NATS_URL", global = true)]
    nats_url: Option<String>,
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
}

impl Servers {
    fn urls(&self) -> anyhow::Result<(&str, &str)> {
        match (&self.nats_url, &self.database_url) {
            (Some(nats), Some(database)) => Ok((nats, database)),
            _ => bail!(
                "set NATS_URL and DATABASE_URL (as printed by `prism up`) or pass --nats-url/--database-url"
            ),
        }
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Checks every commit of the log against the ledger's signed checkpoints (or, with --bundle,
    /// an exported bundle, offline) and names the first altered, missing or moved one. Exits 1 when
    /// anything differs.
    Verify {
        /// The ledger's public key (PEM), as `GET /audit/public-key` gives it. Without it, the key is
        /// read from the platform's key store (PRISM_CA_KEK and PRISM_CA_KEYS).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Verify this bundle (from `prism audit export`) instead of the log: no server needed, and
        /// --public-key is required.
        #[arg(long, requires = "public_key")]
        bundle: Option<PathBuf>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        authority: AuthorityArgs,
    },
    /// Writes the commits of a range with the checkpoints that vouch for them, for a third party to
    /// verify offline (`prism audit verify --bundle`).
    Export {
        /// The first commit: a stream sequence, or the first commit at or after an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// The last commit: a stream sequence, or the last commit before or at an RFC 3339 time.
        #[arg(long)]
        to: String,
        /// Where to write the bundle (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prints the ledger's public key (PEM), read from the platform's key store.
    PublicKey {
        #[command(flatten)]
        authority: AuthorityArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ReactionsCommand {
    /// Lists the reactions workers gave up on, newest first.
    List {
        /// Only those in this state: `failed`, `retry_requested` or `resolved`.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Asks the worker to try a failed reaction's event again.
    Retry {
        /// The reaction's id, as `list` shows it.
        id: String,
    },
}

/// How access tokens are signed and named.
#[derive(Debug, Args)]
struct IdentityArgs {
    /// File of the access-token signing keys, created (mode 0600) when missing; every process of one
    /// platform must read the same file. `prism up` defaults to <data dir>/token-keys.json.
    #[arg(long, env = "PRISM_TOKEN_KEYS")]
    token_keys: Option<PathBuf>,
    /// The API's public URL: the issuer and audience of its access tokens, and the base of the URLs
    /// every certificate names (default http://<--http>, https:// with --tls).
    #[arg(long, env = "PRISM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Sign-in with an OpenID Connect provider: its issuer URL (discovered at start). The provider
    /// must send browsers back to <public URL>/oauth/oidc/callback.
    #[arg(long, env = "PRISM_OIDC_ISSUER", requires = "oidc_client_id")]
    oidc_issuer: Option<String>,
    /// This platform's client id at the provider.
    #[arg(long, env = "PRISM_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// This platform's client secret at the provider (none for a public client).
    #[arg(long, env = "PRISM_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
}

impl IdentityArgs {
    async fn config(
        &self,
        default_keys: Option<&std::path::Path>,
        http: SocketAddr,
        tls: bool,
    ) -> anyhow::Result<IdentityConfig> {
        let path = self.token_keys.as_deref().or(default_keys).context(
            "name the access-token signing keys file with --token-keys or PRISM_TOKEN_KEYS \
             (the same file for every process of the platform; created when missing)",
        )?;
        let keys = SigningKeys::load_or_create(path)
            .with_context(|| format!("access-token signing keys at {}", path.display()))?;
        let public_url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{http}", if tls { "https" } else { "http" }));
        let public_url = public_url.trim_end_matches('/');
        let mut config = IdentityConfig::new(keys, public_url);
        config.keys_file = Some(path.to_owned());
        if let (Some(issuer), Some(client_id)) = (&self.oidc_issuer, &self.oidc_client_id) {
            let oidc = OidcConfig::new(
                issuer.clone(),
                client_id.clone(),
                self.oidc_client_secret.clone(),
                format!("{public_url}/oauth/oidc/callback"),
            );
            let provider = OidcProvider::discover(oidc)
                .await
                .with_context(|| format!("the OpenID Connect provider {issuer}"))?;
            info!(issuer = %provider.issuer(), "sign-in with OpenID Connect enabled");
            config.oidc = Some(OidcSignIn::new(provider));
        }
        Ok(config)
    }
}

fn token_keys_command(command: TokenKeysCommand, path: &std::path::Path) -> anyhow::Result<()> {
    let mut keys =
        SigningKeys::load(path).with_context(|| format!("token signing keys at {}", path.display()))?;
    if let TokenKeysCommand::Rotate = command {
        let now = chrono::Utc::now();
        keys.rotate(now)?;
        // A retired key verifies until the last token it signed has expired.
        let dropped = keys.retire_older_than(
            prism_auth::ACCESS_TOKEN_LIFETIME + prism_auth::CLOCK_SKEW_LEEWAY,
            now,
        );
        keys.save(path)?;
        println!(
            "now signing with {} ({dropped} expired key(s) dropped)",
            keys.current_kid()
        );
    }
    for key in keys.keys() {
        println!(
            "{}  created {}{}{}",
            key.kid,
            key.created_at.to_rfc3339(),
            key.retired_at
                .map(|at| format!("  retired {}", at.to_rfc3339()))
                .unwrap_or_default(),
            if key.current { "  current" } else { "" }
        );
    }
    Ok(())
}

/// The certificate authority's keys at rest.
#[derive(Debug, Args)]
struct AuthorityArgs {
    /// Key that seals the certificate authority's private keys at rest (64 hexadecimal digits), the
    /// same for every process of one platform. Without it `prism serve` runs no certificate authority;
    /// `prism up` keeps one in its data directory.
    #[arg(long, env = "PRISM_CA_KEK", hide_env_values = true, requires = "ca_keys")]
    ca_kek: Option<String>,
    /// Directory of the sealed keys (one file each, mode 0600), shared by every process of one platform.
    #[arg(long, env = "PRISM_CA_KEYS")]
    ca_keys: Option<PathBuf>,
}

/// Serving the API over HTTPS.
#[derive(Debug, Args)]
struct TlsArgs {
    /// Serve the API over HTTPS with a certificate of the platform's own authority (renewed and
    /// presented anew without a restart). Clients trust the authority's root (`GET /certs/ca`; `prism
    /// up` writes it to <data dir>/ca.pem).
    #[arg(long, env = "PRISM_TLS")]
    tls: bool,
    /// A host name or address clients dial, for the certificate (repeat, or separate with commas);
    /// localhost, the loopback addresses and the public URL's host are always in it.
    #[arg(
        long = "tls-name",
        env = "PRISM_TLS_NAMES",
        value_delimiter = ',',
        requires = "tls"
    )]
    tls_names: Vec<String>,
}

impl TlsArgs {
    fn config(&self, public_url: &str) -> anyhow::Result<Option<prism_cli::HttpsConfig>> {
        if !self.tls {
            return Ok(None);
        }
        let uri: axum::http::Uri = public_url
            .parse()
            .with_context(|| format!("the public URL {public_url}"))?;
        if uri.scheme_str() != Some("https") {
            bail!("with --tls the public URL must be https:// (it is {public_url})");
        }
        let mut names = self.tls_names.clone();
        if let Some(host) = uri.host() {
            names.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
        }
        Ok(Some(prism_cli::HttpsConfig { names }))
    }
}

/// How attestation evidence is appraised.
#[derive(Debug, Args)]
struct AttestationArgs {
    /// Accept evidence from machines without a TEE (the emulated agent, a Cocos agent in NoCC mode)
    /// as `accepted_insecure` — never as verified. For development only; refused otherwise.
    #[arg(long, env = "PRISM_INSECURE_DEVELOPMENT_ATTESTATION")]
    insecure_development_attestation: bool,
    /// A directory of AMD VCEK certificates for SEV-SNP reports that come without one
    /// (`<chip id hex>/<REPORTED_TCB hex>.der`); nothing is fetched from the network.
    #[arg(long, env = "PRISM_VCEK_CACHE")]
    vcek_cache: Option<std::path::PathBuf>,
}

impl AttestationArgs {
    fn config(&self) -> prism_app::AttestationConfig {
        prism_app::AttestationConfig {
            mode: if self.insecure_development_attestation {
                prism_attestation::Mode::InsecureDevelopment
            } else {
                prism_attestation::Mode::Secure
            },
            vcek_cache: self.vcek_cache.clone(),
        }
    }
}

/// Runs.
#[derive(Debug, Args)]
struct RunsArgs {
    /// How long a run's result consumers may fetch its result, in seconds; the run then completes,
    /// whoever has not, and its agent's data is wiped.
    #[arg(long, env = "PRISM_RESULT_WINDOW_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    result_window_secs: u64,
}

impl RunsArgs {
    fn result_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.result_window_secs)
    }
}

/// The agents' channel.
#[derive(Debug, Args)]
struct AgentsArgs {
    /// Serve the agents' channel (Cocos `cvms.Service`, gRPC over mutual TLS with certificates of the
    /// platform's authority) on this address, e.g. 127.0.0.1:7001 (the Cocos agent's default). Off
    /// when absent.
    #[arg(long, env = "PRISM_AGENTS_LISTEN")]
    agents_listen: Option<SocketAddr>,
    /// A host name or address agents dial, for the channel's certificate (repeat, or separate with
    /// commas); localhost, the loopback addresses and the listening address are always in it.
    #[arg(
        long = "agents-name",
        env = "PRISM_AGENTS_NAMES",
        value_delimiter = ',',
        requires = "agents_listen"
    )]
    agents_names: Vec<String>,
    /// `host:port` agents are told to dial (a name in the channel's certificate); by default the first
    /// --agents-name (else 127.0.0.1) with the listening port.
    #[arg(long, env = "PRISM_AGENTS_DIAL", requires = "agents_listen")]
    agents_dial: Option<String>,
    /// How long an agent may stay disconnected before its CVM is recorded Offline, in seconds.
    #[arg(long, env = "PRISM_AGENT_HEARTBEAT_GAP_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    agent_heartbeat_gap_secs: u64,
}

impl AgentsArgs {
    fn config(&self) -> Option<prism_cli::AgentsConfig> {
        self.agents_listen.map(|listen| prism_cli::AgentsConfig {
            listen,
            names: self.agents_names.clone(),
            heartbeat_gap: std::time::Duration::from_secs(self.agent_heartbeat_gap_secs),
            dial: self.agents_dial.clone(),
        })
    }

    /// `prism up` always runs the channel: its local backend's agents dial it. Without
    /// --agents-listen, on a free loopback port.
    fn config_or_loopback(&self) -> prism_cli::AgentsConfig {
        self.config().unwrap_or_else(|| prism_cli::AgentsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            names: Vec::new(),
            heartbeat_gap: std::time::Duration::from_secs(self.agent_heartbeat_gap_secs),
            dial: None,
        })
    }
}

/// When the certificate authority renews certificates.
#[derive(Debug, Args)]
struct RenewalArgs {
    /// Renew a certificate when it has this many seconds left (or a third of its lifetime, whichever is
    /// shorter). Default: two days.
    #[arg(long, env = "PRISM_CERT_RENEW_BEFORE_SECS", default_value_t = 172_800, value_parser = clap::value_parser!(u64).range(60..))]
    cert_renew_before_secs: u64,
    /// How often to look for certificates to renew or record as expired, in seconds.
    #[arg(long, env = "PRISM_CERT_CHECK_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    cert_check_every_secs: u64,
}

impl RenewalArgs {
    fn policy(&self) -> RenewalPolicy {
        RenewalPolicy {
            before: std::time::Duration::from_secs(self.cert_renew_before_secs),
            every: std::time::Duration::from_secs(self.cert_check_every_secs),
        }
    }
}

impl AuthorityArgs {
    fn config(
        &self,
        public_url: &str,
        renewal: RenewalPolicy,
    ) -> anyhow::Result<Option<CertificateAuthorityConfig>> {
        let (Some(kek), Some(dir)) = (&self.ca_kek, &self.ca_keys) else {
            info!("no PRISM_CA_KEK and PRISM_CA_KEYS: this process runs no certificate authority");
            return Ok(None);
        };
        let kek = hex::decode(kek.trim()).context("PRISM_CA_KEK is not hexadecimal")?;
        prism_cli::authority_config(&kek, dir, public_url, renewal).map(Some)
    }
}

/// Settings of the event stream, applied when Prism creates or opens it.
#[derive(Debug, Args)]
struct StoreArgs {
    /// How long JetStream remembers a command's idempotency key for de-duplication, in seconds.
    #[arg(long, env = "PRISM_DUPLICATE_WINDOW_SECS", default_value_t = 120)]
    duplicate_window_secs: u64,
    /// Stream replicas (3 on a JetStream cluster).
    #[arg(long, env = "PRISM_STREAM_REPLICAS", default_value_t = 1)]
    replicas: usize,
    /// Key that signs aggregate snapshots (hexadecimal, at least 32 bytes), the same for every process
    /// of one platform. Without it `prism serve` takes no snapshots; `prism up` keeps one in its data
    /// directory.
    #[arg(long, env = "PRISM_SNAPSHOT_KEY", hide_env_values = true)]
    snapshot_key: Option<String>,
}

impl StoreArgs {
    fn snapshot_key(&self) -> anyhow::Result<Option<SnapshotKey>> {
        self.snapshot_key
            .as_deref()
            .map(|hex_key| {
                let bytes = hex::decode(hex_key.trim()).context("PRISM_SNAPSHOT_KEY is not hexadecimal")?;
                Ok(SnapshotKey::new(bytes)?)
            })
            .transpose()
    }

    fn config(&self) -> StoreConfig {
        StoreConfig {
            duplicate_window: std::time::Duration::from_secs(self.duplicate_window_secs),
            replicas: self.replicas,
            ..StoreConfig::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum TokenKeysCommand {
    /// Lists the keys: id (`kid`), created, retired, current.
    List,
    /// Makes a new key current, and drops keys retired long enough for none of their tokens to be
    /// valid any more.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Replays the event log from sequence 1 into shadow copies of a projection's tables while the
    /// live ones go on serving, then swaps them in atomically (without downtime).
    Rebuild {
        /// A projection's name (`prism projections status` lists them) or `all`.
        name: String,
    },
    /// Shows how far each projection has read the log.
    Status,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to standard error: standard output is for what a command answers (JSON with `--json`).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Up {
            http,
            data_dir,
            nats_url,
            database_url,
            store,
            identity,
            admin_email,
            admin_password,
            renewal,
            tls,
            agents,
            runs,
            local_cvms,
        } => {
            let key = store.snapshot_key()?;
            std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            let identity = identity
                .config(Some(&data_dir.join("token-keys.json")), http, tls.tls)
                .await?;
            let https = tls.config(&identity.issuer.issuer)?;
            let up = up::Up {
                http,
                nats_url,
                database_url,
                store: store.config(),
                snapshot_key: key,
                identity,
                admin_email,
                admin_password,
                renewal: renewal.policy(),
                https,
                agents: Some(agents.config_or_loopback()),
                local_cvms,
                result_window: runs.result_window(),
            };
            up::up(&data_dir, up).await
        }
        Command::Serve {
            http,
            nats_url,
            database_url,
            store,
            identity,
            authority,
            renewal,
            tls,
            agents,
            runs,
            attestation,
        } => {
            let identity = identity.config(None, http, tls.tls).await?;
            let https = tls.config(&identity.issuer.issuer)?;
            if https.is_some() && authority.ca_kek.is_none() {
                bail!("--tls needs the certificate authority: set PRISM_CA_KEK and PRISM_CA_KEYS");
            }
            let webhooks = prism_cli::webhook_config(&identity.issuer.issuer);
            let config = PlatformConfig {
                webhooks,
                store: store.config(),
                snapshot_key: store.snapshot_key()?,
                certificate_authority: authority.config(&identity.issuer.issuer, renewal.policy())?,
                https,
                agents: agents.config(),
                identity,
                app: prism_app::AppConfig {
                    attestation: attestation.config(),
                    result_window: runs.result_window(),
                    ..Default::default()
                },
                ..PlatformConfig::new(nats_url, database_url, http)
            };
            let platform = Platform::start(config).await?;
            info!("API listening on {}", platform.base_url());
            run_until_stopped(platform).await
        }
        Command::Replay {
            aggregate_type,
            id,
            until,
            diff,
            json,
            servers,
        } => {
            let (nats_url, database_url) = servers.urls()?;
            replay(
                &aggregate_type,
                &id,
                until.as_deref(),
                diff,
                json,
                nats_url,
                database_url,
            )
            .await
        }
        Command::Audit { command, servers } => audit(command, &servers).await,
        Command::Reactions { command, servers } => {
            let (nats_url, database_url) = servers.urls()?;
            reactions(command, nats_url, database_url).await
        }
        Command::TokenKeys { command, token_keys } => token_keys_command(command, &token_keys),
        Command::Attestation {
            command:
                AttestationCommand::Verify {
                    file,
                    jwks,
                    insecure_development,
                },
        } => verify_attestations(&file, jwks.as_deref(), insecure_development),
        Command::Attestation {
            command: AttestationCommand::Get { workspace, run },
        } => participant::attestation(&participant::Session::load()?, &workspace, &run).await,
        Command::Login { url, email, password } => {
            let password = match password {
                Some(password) => password,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            participant::login(&url, &email, &password).await
        }
        Command::Computations { command } => {
            let session = participant::Session::load()?;
            match command {
                ComputationsCommand::List { workspace } => {
                    participant::list_computations(&session, &workspace).await
                }
                ComputationsCommand::Get {
                    workspace,
                    computation,
                } => participant::show_computation(&session, &workspace, &computation).await,
                ComputationsCommand::Export {
                    workspace,
                    computation,
                    out,
                } => {
                    participant::export_computation(&session, &workspace, &computation, out.as_deref()).await
                }
                ComputationsCommand::Import { workspace, file } => {
                    participant::import_computation(&session, &workspace, &file).await
                }
            }
        }
        Command::Consent {
            command:
                ConsentCommand::Sign {
                    workspace,
                    computation,
                    key,
                },
        } => participant::consent(&participant::Session::load()?, &workspace, &computation, &key).await,
        Command::Algo {
            command:
                AlgoCommand::Upload {
                    target,
                    file,
                    algo_type,
                    requirements,
                },
        } => {
            let input = participant::Input::Algorithm {
                algo_type,
                requirements,
            };
            upload(target, &file, input).await
        }
        Command::Data {
            command: DataCommand::Upload { target, file },
        } => upload(target, &file, participant::Input::Dataset).await,
        Command::Result {
            command: ResultCommand::Fetch { target, out },
        } => {
            let session = participant::Session::load()?;
            participant::fetch_result(
                &session,
                &target.workspace,
                &target.run,
                &target.key,
                &out,
                target.insecure_development,
            )
            .await
        }
        Command::Projections { command, servers } => {
            let (nats_url, database_url) = servers.urls()?;
            projections(command, nats_url, database_url).await
        }
    }
}

fn verify_attestations(file: &Path, jwks: Option<&Path>, insecure_development: bool) -> anyhow::Result<()> {
    let read =
        |path: &Path| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
    let appraisals = prism_cli::attestation::parse_appraisals(&read(file)?)?;
    let jwks: Option<serde_json::Value> = jwks
        .map(|path| {
            serde_json::from_str(&read(path)?).with_context(|| format!("{} is not JSON", path.display()))
        })
        .transpose()?;
    let mode = if insecure_development {
        prism_attestation::Mode::InsecureDevelopment
    } else {
        prism_attestation::Mode::Secure
    };
    let results = prism_cli::attestation::reverify(&appraisals, jwks.as_ref(), mode)?;
    let mut holding = 0;
    for (index, (appraisal, result)) in appraisals.iter().zip(&results).enumerate() {
        let word = |outcome| {
            serde_json::to_value(outcome)
                .map_or_else(|_| "?".into(), |v| v.as_str().unwrap_or("?").to_owned())
        };
        println!(
            "appraisal {}  evidence sha256 {}  recorded {}  re-verified {}{}",
            index + 1,
            result.verdict.evidence_sha256,
            word(result.recorded),
            word(result.verdict.outcome),
            if result.holds() { "  ok" } else { "  DOES NOT HOLD" }
        );
        for failure in &result.verdict.failures {
            println!("  {failure}");
        }
        for warning in &result.verdict.warnings {
            println!("  warning: {warning}");
        }
        match &result.ear {
            Some(Ok(())) => println!("  EAR verifies with the JWK Set and says the same"),
            Some(Err(why)) => println!("  EAR: {why}"),
            None => {}
        }
        if appraisal.nonce.is_some() {
            println!(
                "  fresh: bound to platform nonce {}",
                appraisal.nonce.as_deref().unwrap_or_default()
            );
        }
        holding += usize::from(result.holds());
    }
    if holding == results.len() && !results.is_empty() {
        println!("{holding} of {} appraisals hold", results.len());
        Ok(())
    } else {
        bail!("{holding} of {} appraisals hold", results.len())
    }
}

pub(crate) async fn run_until_stopped(mut platform: Platform) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("interrupted; shutting down"),
        _ = terminate.recv() => info!("terminated; shutting down"),
        e = platform.failed() => {
            let _ = platform.shutdown().await;
            return Err(e);
        }
    }
    platform.shutdown().await
}

/// The application layer as operator commands use it: the log and the read models, nothing else.
async fn operator_app(nats_url: &str, database_url: &str) -> anyhow::Result<prism_app::App> {
    operator_app_with_keys(nats_url, database_url, None).await
}

/// [`operator_app`] with the platform's key store, for the commands that need a platform key.
async fn operator_app_with_keys(
    nats_url: &str,
    database_url: &str,
    authority: Option<CertificateAuthorityConfig>,
) -> anyhow::Result<prism_app::App> {
    let (_, app) = prism_cli::connect(
        nats_url,
        database_url,
        StoreConfig::default(),
        AppConfig::default(),
        None,
        None,
        authority,
    )
    .await?;
    Ok(app)
}

async fn replay(
    aggregate_type: &str,
    id: &str,
    until: Option<&str>,
    diff: bool,
    json: bool,
    nats_url: &str,
    database_url: &str,
) -> anyhow::Result<()> {
    let bounded = until.is_some();
    let until = until
        .map(str::parse::<prism_app::ReplayUntil>)
        .transpose()?
        .unwrap_or_default();
    let app = operator_app(nats_url, database_url).await?;
    let replay = app
        .audit()
        .replay(&Caller::service("cli"), aggregate_type, id, until, diff)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&replay)?);
        return Ok(());
    }
    for step in &replay.steps {
        println!(
            "v{}  seq {}.{}  {}  {}  by {}",
            step.version,
            step.sequence,
            step.index,
            step.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            step.event_type,
            step.actor
        );
        println!("  event: {}", step.event);
        let (label, shown) = match &step.diff {
            Some(patch) => ("diff", patch),
            None => ("state", &step.state),
        };
        let text = serde_json::to_string_pretty(shown)?.replace('\n', "\n    ");
        println!("  {label}: {text}");
    }
    println!(
        "{} {}: {} event(s){}",
        replay.aggregate_type,
        replay.aggregate_id,
        replay.steps.len(),
        if bounded { " up to --until" } else { "" }
    );
    Ok(())
}

async fn audit(command: AuditCommand, servers: &Servers) -> anyhow::Result<()> {
    use prism_cli::audit::{describe, read_bundle, read_public_key};
    // The key store is opened only for the ledger key; no authority URL or renewal is involved.
    let with_keys = |authority: &AuthorityArgs| -> anyhow::Result<Option<CertificateAuthorityConfig>> {
        authority.config("http://127.0.0.1", RenewalPolicy::default())
    };
    match command {
        AuditCommand::Verify {
            public_key,
            bundle: Some(bundle),
            json,
            ..
        } => {
            let key = read_public_key(public_key.as_deref().context("--bundle needs --public-key")?)?;
            let report = prism_app::verify_bundle(&read_bundle(&bundle)?, &key);
            print_report(
                &report,
                json,
                &describe(&report, &format!("bundle {}", bundle.display())),
            )
        }
        AuditCommand::Verify {
            public_key,
            bundle: None,
            json,
            authority,
        } => {
            let (nats_url, database_url) = servers.urls()?;
            let app = match public_key {
                Some(_) => operator_app(nats_url, database_url).await?,
                None => operator_app_with_keys(nats_url, database_url, with_keys(&authority)?).await?,
            };
            let key = match public_key {
                Some(path) => read_public_key(&path)?,
                None => app.ledger().public_key().await?,
            };
            let report = app.ledger().verify(&key).await?;
            print_report(&report, json, &describe(&report, "event log"))
        }
        AuditCommand::Export { from, to, out } => {
            let (nats_url, database_url) = servers.urls()?;
            let app = operator_app(nats_url, database_url).await?;
            let ledger = app.ledger();
            let first = match from.parse::<prism_app::ReplayUntil>()? {
                prism_app::ReplayUntil {
                    sequence: Some(s), ..
                } => s,
                prism_app::ReplayUntil { time, .. } => {
                    ledger.first_at_or_after(time.unwrap_or_default()).await?
                }
            };
            let last = match to.parse::<prism_app::ReplayUntil>()? {
                prism_app::ReplayUntil {
                    sequence: Some(s), ..
                } => s,
                prism_app::ReplayUntil { time, .. } => {
                    let after = time.unwrap_or_default() + chrono::Duration::nanoseconds(1);
                    ledger.first_at_or_after(after).await?.saturating_sub(1)
                }
            };
            let bundle = ledger.export(first, last).await?;
            let json = serde_json::to_vec_pretty(&bundle)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "wrote {}: sequences {}..={}, {} commit(s), {} checkpoint(s)",
                        path.display(),
                        bundle.from,
                        bundle.to,
                        bundle.commits.len(),
                        bundle.checkpoints.len()
                    );
                }
                None => println!("{}", String::from_utf8(json)?),
            }
            Ok(())
        }
        AuditCommand::PublicKey { authority } => {
            let (nats_url, database_url) = servers.urls()?;
            let app = operator_app_with_keys(nats_url, database_url, with_keys(&authority)?).await?;
            print!("{}", app.ledger().public_key().await?.as_pem());
            Ok(())
        }
    }
}

/// Prints a verification report; an error (exit status 1) when it found anything.
fn print_report(report: &prism_app::LedgerReport, json: bool, text: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{text}");
    }
    if !report.is_intact() {
        let first = &report.findings[0];
        bail!(
            "the log is not what the ledger vouches for: first at sequence {} ({:?})",
            first.sequence,
            first.kind
        );
    }
    Ok(())
}

async fn reactions(command: ReactionsCommand, nats_url: &str, database_url: &str) -> anyhow::Result<()> {
    let app = operator_app(nats_url, database_url).await?;
    let caller = Caller::service("cli");
    match command {
        ReactionsCommand::List { status, limit } => {
            let limit = limit.clamp(1, 100);
            let items = app
                .reactions()
                .list(&caller, status.as_deref(), limit, ReadOptions::default())
                .await?;
            if items.is_empty() {
                println!("no failed reactions");
            }
            for r in items {
                println!(
                    "{}  {:<15}  sequence {}  {} attempt(s)  {}\n    {}",
                    r.id, r.status, r.stream_sequence, r.attempts, r.failed_at, r.error
                );
            }
        }
        ReactionsCommand::Retry { id } => {
            let executed = app
                .reactions()
                .retry(&caller, &CommandOptions::default(), &id)
                .await?;
            println!(
                "retry of {id} requested at sequence {}; `prism reactions list` shows how it ends",
                executed.outcome.sequence
            );
        }
    }
    Ok(())
}

async fn projections(command: ProjectionsCommand, nats_url: &str, database_url: &str) -> anyhow::Result<()> {
    // An operator tool: it uses the stream as it is, never creating it or changing its settings.
    let store = EventStore::connect_with(nats_url, StoreConfig::default(), OpenMode::Existing).await?;
    let log: Arc<dyn EventLog> = Arc::new(store);
    let read = ReadModels::connect(database_url).await?;
    read.migrate().await?;
    let known = modules::projection_names();
    match command {
        ProjectionsCommand::Status => {
            let end = log.last_sequence().await?;
            println!("event log ends at sequence {end}");
            for name in &known {
                let at = read.checkpoint(name).await?;
                println!("{name:<14} at {at:>10}  ({} behind)", end.saturating_sub(at));
            }
            let quarantined = read.quarantined(100).await?;
            if !quarantined.is_empty() {
                println!("\n{} quarantined commit(s), newest first:", quarantined.len());
                for q in quarantined {
                    println!(
                        "  {} refused sequence {} ({}): {}",
                        q.reader, q.sequence, q.subject, q.reason
                    );
                }
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let names: Vec<&str> = match name.as_str() {
                "all" => known.clone(),
                other if known.contains(&other) => vec![other],
                other => bail!("unknown projection `{other}`; choose one of {known:?} or `all`"),
            };
            for name in names {
                let projector = modules::projector(name, read.pool(), &log)
                    .with_context(|| format!("projection `{name}` is not registered"))?;
                let end = projector.rebuild().await?;
                println!("{name}: rebuilt up to sequence {end}");
            }
        }
    }
    Ok(())
}

async fn upload(target: RunTarget, file: &Path, input: participant::Input) -> anyhow::Result<()> {
    let session = participant::Session::load()?;
    participant::upload(
        &session,
        &target.workspace,
        &target.run,
        &target.key,
        file,
        input,
        target.insecure_development,
    )
    .await
}
