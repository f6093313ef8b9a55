//! `prism-emulated-agent`: an emulated Cocos agent. INSECURE: no hardware protection.
//!
//! Configured from the real agent's environment (`AGENT_CVM_GRPC_URL`, `AGENT_CVM_GRPC_CLIENT_CERT`,
//! `AGENT_CVM_GRPC_CLIENT_KEY`, `AGENT_CVM_GRPC_SERVER_CA_CERTS`, `AGENT_CVM_ID`, `AGENT_LOG_LEVEL`)
//! plus `PRISM_EMULATED_AGENT_LISTEN`, `PRISM_EMULATED_AGENT_DIR`, `PRISM_EMULATED_AGENT_REQUIRE_CONSENT`
//! and `PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH` (see `config.rs`). SIGTERM or SIGINT wipe the
//! computation's files and exit 0; a first connection that fails exits 1.

use anyhow::Context as _;
use prism_emulated_agent::{Config, run};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("reading the agent's environment")?;
    let filter = match config.log_level {
        prism_emulated_agent::config::LogLevel::Debug => "debug",
        prism_emulated_agent::config::LogLevel::Info => "info",
        prism_emulated_agent::config::LogLevel::Warn => "warn",
        prism_emulated_agent::config::LogLevel::Error => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("{filter},h2=info,hyper=info,tower=info"))
            }),
        )
        .init();
    tracing::warn!("INSECURE: emulated agent, no hardware protection");
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    run(config, shutdown).await.context("emulated agent")?;
    Ok(())
}
