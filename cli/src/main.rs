//! `prism`: run the platform, and operate it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use prism_cli::{Platform, PlatformConfig};
use prism_store::{EventStore, StoreConfig};

mod up;
use prism_projections::{ComputationsProjection, Projector, ReadModels, WorkspacesProjection};
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
    /// embedded nats-server and a private PostgreSQL cluster with their data under --data-dir.
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
    },
    /// Read-model maintenance.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
        #[arg(long, env = "NATS_URL", global = true)]
        nats_url: Option<String>,
        #[arg(long, env = "DATABASE_URL", global = true)]
        database_url: Option<String>,
    },
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
}

impl StoreArgs {
    fn config(&self) -> StoreConfig {
        StoreConfig {
            duplicate_window: std::time::Duration::from_secs(self.duplicate_window_secs),
            replicas: self.replicas,
            ..StoreConfig::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Empties a projection and replays the event log into it from sequence 1.
    Rebuild {
        /// `workspaces`, `computations` or `all`.
        name: String,
    },
    /// Shows how far each projection has read the log.
    Status,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
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
        } => up::up(http, &data_dir, nats_url, database_url, store.config()).await,
        Command::Serve {
            http,
            nats_url,
            database_url,
            store,
        } => {
            let config = PlatformConfig {
                nats_url,
                database_url,
                http,
                store: store.config(),
            };
            let platform = Platform::start(config).await?;
            info!("API listening on http://{}", platform.addr());
            run_until_stopped(platform).await
        }
        Command::Projections {
            command,
            nats_url,
            database_url,
        } => {
            let (Some(nats_url), Some(database_url)) = (nats_url, database_url) else {
                bail!(
                    "set NATS_URL and DATABASE_URL (as printed by `prism up`) or pass --nats-url/--database-url"
                );
            };
            projections(command, &nats_url, &database_url).await
        }
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

async fn projections(command: ProjectionsCommand, nats_url: &str, database_url: &str) -> anyhow::Result<()> {
    let store = EventStore::connect(nats_url, StoreConfig::default()).await?;
    let read = ReadModels::connect(database_url).await?;
    read.migrate().await?;
    match command {
        ProjectionsCommand::Status => {
            let end = store.last_sequence().await?;
            println!("event log ends at sequence {end}");
            for name in prism_projections::ALL {
                let at = read.checkpoint(name).await?;
                println!("{name:<14} at {at:>10}  ({} behind)", end.saturating_sub(at));
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let names: Vec<&str> = match name.as_str() {
                "all" => prism_projections::ALL.to_vec(),
                other if prism_projections::ALL.contains(&other) => vec![other],
                other => bail!(
                    "unknown projection `{other}`; choose one of {:?} or `all`",
                    prism_projections::ALL
                ),
            };
            for name in names {
                let end = match name {
                    prism_projections::WORKSPACES => rebuild(WorkspacesProjection, &read, &store).await?,
                    _ => rebuild(ComputationsProjection, &read, &store).await?,
                };
                println!("{name}: rebuilt up to sequence {end}");
            }
        }
    }
    Ok(())
}

async fn rebuild<P: prism_projections::Projection>(
    projection: P,
    read: &ReadModels,
    store: &EventStore,
) -> anyhow::Result<u64> {
    prism_projections::rebuild(read.pool(), &projection).await?;
    Ok(Projector::new(projection, read.pool().clone(), store.clone())
        .catch_up()
        .await?)
}
