//! The event stores under test, each with what it needs running: cqrs-es's `MemStore`, the JetStream
//! store on a nats-server of its own (`sync_interval: always`), and postgres-es on a fresh database.
#![allow(dead_code)]

use cqrs_es::EventStore;
use cqrs_es::mem_store::MemStore;
use cqrs_es::persist::PersistedEventStore;
use postgres_es::PostgresEventRepository;
use prism_cqrs::{JetStreamEventStore, StoreConfig};
use prism_embedded::{NatsServer, TestDatabase};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::account::Account;

/// The tables postgres-es needs.
pub const POSTGRES_ES_SCHEMA: &str = include_str!("postgres_es.sql");

/// A running event store. [`Backend::store`] gives another handle on the same data, as a second
/// process would have.
pub trait Backend: Sized {
    type Store: EventStore<Account> + 'static;
    fn start() -> impl Future<Output = anyhow::Result<Self>>;
    fn store(&self) -> Self::Store;
}

#[derive(Debug, Default)]
pub struct Mem {
    store: MemStore<Account>,
}

impl Backend for Mem {
    type Store = MemStore<Account>;

    async fn start() -> anyhow::Result<Self> {
        Ok(Self::default())
    }

    fn store(&self) -> MemStore<Account> {
        self.store.clone()
    }
}

#[derive(Debug)]
pub struct JetStream {
    store: JetStreamEventStore<Account>,
    pub server: NatsServer,
}

impl JetStream {
    pub async fn on(server: NatsServer) -> anyhow::Result<Self> {
        let store = JetStreamEventStore::connect(&server.url(), StoreConfig::default()).await?;
        Ok(Self { store, server })
    }

    /// A store of its own on the same server, as another process would have: its own connection
    /// and its own kept states.
    pub async fn another_store(&self) -> anyhow::Result<JetStreamEventStore<Account>> {
        Ok(JetStreamEventStore::connect(&self.server.url(), StoreConfig::default()).await?)
    }

    pub fn jetstream_store(&self) -> &JetStreamEventStore<Account> {
        &self.store
    }
}

impl Backend for JetStream {
    type Store = JetStreamEventStore<Account>;

    async fn start() -> anyhow::Result<Self> {
        Self::on(NatsServer::start_temp().await?).await
    }

    fn store(&self) -> JetStreamEventStore<Account> {
        self.store.clone()
    }
}

/// The JetStream store keeping no aggregate states: every load reads the whole history.
#[derive(Debug)]
pub struct JetStreamUncached(JetStream);

impl Backend for JetStreamUncached {
    type Store = JetStreamEventStore<Account>;

    async fn start() -> anyhow::Result<Self> {
        Ok(Self(JetStream::start().await?))
    }

    fn store(&self) -> JetStreamEventStore<Account> {
        self.0.store().with_cache_capacity(0)
    }
}

/// postgres-es in its event-sourced mode (`postgres_cqrs`): the mode comparable to the JetStream store.
#[derive(Debug)]
pub struct PostgresEs {
    // Declared before the database, so the pool is closed before the database is dropped.
    pub pool: PgPool,
    pub database: TestDatabase,
}

impl PostgresEs {
    pub async fn with_pool_size(connections: u32) -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect(&database.url)
            .await?;
        sqlx::raw_sql(POSTGRES_ES_SCHEMA).execute(&pool).await?;
        Ok(Self { pool, database })
    }
}

impl Backend for PostgresEs {
    type Store = PersistedEventStore<PostgresEventRepository, Account>;

    async fn start() -> anyhow::Result<Self> {
        Self::with_pool_size(8).await
    }

    fn store(&self) -> Self::Store {
        PersistedEventStore::new_event_store(PostgresEventRepository::new(self.pool.clone()))
    }
}
