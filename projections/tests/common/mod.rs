//! The test environment shared by the integration tests: a real nats-server and a fresh PostgreSQL
//! database per test, with the read models migrated.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use prism_domain::computation::{Computation, ComputationCommand};
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_domain::{Aggregate, ComputationId, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{Projection, Projector, ReadModels, RunProjection as _};
use prism_store::{CommandRequest, EventLog, EventStore, Metadata, Repository, StoreConfig};
use tokio::sync::watch;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Env {
    pub _nats: NatsServer,
    pub db: TestDatabase,
    pub store: EventStore,
    pub log: Arc<dyn EventLog>,
    pub read: ReadModels,
    pub workspaces: Repository<Workspace>,
    pub computations: Repository<Computation>,
}

pub async fn env() -> Env {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let store = EventStore::connect(&nats.url(), StoreConfig::default())
        .await
        .unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    read.migrate().await.unwrap();
    Env {
        workspaces: Repository::new(store.clone()),
        computations: Repository::new(store.clone()),
        log: Arc::new(store.clone()),
        store,
        _nats: nats,
        db,
        read,
    }
}

pub fn meta() -> Metadata {
    Metadata {
        actor: "alice".into(),
        ..Default::default()
    }
}

impl Env {
    pub fn projector<P: Projection>(&self, projection: P) -> Projector<P> {
        Projector::new(projection, self.read.pool().clone(), self.log.clone())
    }

    /// Runs a projector until the returned sender says stop.
    pub fn start<P: Projection>(&self, projection: P) -> watch::Sender<bool> {
        let (stop, stopped) = watch::channel(false);
        let projector = self.projector(projection);
        tokio::spawn(async move { projector.run(stopped).await });
        stop
    }

    /// Executes `command` on aggregate `id` through `repository`; answers the commit's stream sequence.
    pub async fn execute<A: Aggregate>(
        &self,
        repository: &Repository<A>,
        id: &impl Display,
        command: A::Command,
    ) -> u64 {
        repository
            .execute(CommandRequest::new(id, command, meta()))
            .await
            .unwrap()
            .sequence
    }

    pub async fn workspace(&self, id: WorkspaceId, command: WorkspaceCommand) -> u64 {
        self.execute(&self.workspaces, &id, command).await
    }

    pub async fn computation(&self, id: ComputationId, command: ComputationCommand) -> u64 {
        self.execute(&self.computations, &id, command).await
    }
}

/// Every row of `table` as JSON, in a fixed order.
pub async fn dump(read: &ReadModels, table: &str) -> Vec<serde_json::Value> {
    let client = read.pool().get().await.unwrap();
    let sql = format!("SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text");
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}
