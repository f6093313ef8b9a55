//! One process running the gateway, the projectors and the workers over one NATS and one PostgreSQL.
//! Every part is stateless apart from those two, so more processes scale it out.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use prism_projections::{ComputationsProjection, Projector, ReadModels, WorkspacesProjection};
use prism_store::{EventStore, Repository, StoreConfig};
use prism_workers::{Worker, WorkerConfig, WorkspaceArchiver};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub nats_url: String,
    pub database_url: String,
    pub http: SocketAddr,
    pub store: StoreConfig,
}

/// A running platform. Dropping it does not stop it: call [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Platform {
    /// Connects to NATS and PostgreSQL, applies migrations, and starts every service.
    pub async fn start(config: PlatformConfig) -> anyhow::Result<Self> {
        let store = EventStore::connect(&config.nats_url, config.store.clone()).await?;
        let read = ReadModels::connect(&config.database_url)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {}", redact(&config.database_url)))?;
        read.migrate().await.context("applying database migrations")?;

        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for projector in [
            tokio::spawn(
                Projector::new(WorkspacesProjection, read.pool().clone(), store.clone()).run(stopped.clone()),
            ),
            tokio::spawn(
                Projector::new(ComputationsProjection, read.pool().clone(), store.clone())
                    .run(stopped.clone()),
            ),
        ] {
            tasks.spawn(async move { projector.await.context("projector panicked") });
        }

        let archiver = WorkspaceArchiver::new(
            Arc::new(Repository::new(store.clone())),
            Arc::new(Repository::new(store.clone())),
            read.clone(),
        );
        let worker = Worker::new(archiver, store.clone(), WorkerConfig::default());
        let worker_stop = stopped.clone();
        tasks.spawn(async move { worker.run(worker_stop).await.context("workspace archiver") });

        let state = prism_gateway::build_state(store, read)
            .await
            .context("starting the gateway")?;
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("cannot listen on {}", config.http))?;
        let addr = listener.local_addr()?;
        let mut http_stop = stopped;
        tasks.spawn(async move {
            axum::serve(listener, prism_gateway::router(state))
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|stop| *stop).await;
                })
                .await
                .context("HTTP server")
        });
        info!(%addr, "platform started");
        Ok(Self { addr, stop, tasks })
    }

    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
