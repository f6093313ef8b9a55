//! Prism's HTTP API.
//!
//! Commands (`POST`, `PATCH`, `DELETE`) are decided by the domain and committed to the event store
//! through [`Repository`]; queries (`GET`) read the Postgres read models. The two meet through stream
//! sequences: every command response carries its commit's sequence (`Prism-Sequence` header and
//! `sequence` field), and every query accepts `min_sequence` to wait until the read model has applied
//! it. A command response itself waits (a few seconds at most) for its read model and returns the
//! resource as projected; if the read model is slower, the answer is `202 Accepted` with the sequence.
//!
//! Errors are RFC 9457 problem documents throughout ([`problem`]). The OpenAPI 3.1 description is
//! served at `/openapi.json` and Swagger UI at `/docs`.
//!
//! The caller owns the listener: build the state with [`build_state`], then `axum::serve` the
//! [`router`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use prism_domain::computation::Computation;
use prism_domain::workspace::Workspace;
use prism_projections::ReadModels;
use prism_store::{EventStore, Repository};
use utoipa_swagger_ui::SwaggerUi;

mod command;
pub mod cursor;
pub mod dto;
pub mod extract;
pub mod headers;
mod idempotency;
mod openapi;
pub mod problem;
mod routes;

pub use openapi::openapi;
pub use problem::{Problem, ProblemKind};

/// The actor recorded on every event while the API has no authentication. Identity (tokens, API keys)
/// replaces it with the authenticated principal; until then every command is attributed to this name.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot open the idempotency key bucket: {0}")]
    Idempotency(String),
}

/// Tunables of the gateway; [`GatewayConfig::default`] is what production uses.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// JetStream key-value bucket holding `Idempotency-Key` records.
    pub idempotency_bucket: String,
    /// How long an `Idempotency-Key` is remembered. Past it, a retried create makes a new resource;
    /// a day covers any sensible client retry policy while keeping the bucket small.
    pub idempotency_retention: Duration,
    /// Upper bound for deciding and committing one command; past it the answer is 503, never a hang.
    pub command_timeout: Duration,
    /// How long a command response waits for its read model before answering 202.
    pub command_read_wait: Duration,
    /// How long a query with `min_sequence` waits for its read model before answering 503.
    pub query_read_wait: Duration,
    /// Upper bound for each dependency check of `/health`.
    pub health_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            idempotency_bucket: "PRISM_IDEMPOTENCY".into(),
            idempotency_retention: Duration::from_secs(24 * 60 * 60),
            command_timeout: Duration::from_secs(10),
            command_read_wait: Duration::from_secs(5),
            query_read_wait: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
        }
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    workspaces: Arc<Repository<Workspace>>,
    computations: Arc<Repository<Computation>>,
    read: ReadModels,
    store: EventStore,
    idempotency: idempotency::IdempotencyStore,
    config: Arc<GatewayConfig>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn read_models(&self) -> &ReadModels {
        &self.read
    }
}

/// Builds the state with the default configuration; creates the idempotency bucket if it is missing.
pub async fn build_state(store: EventStore, read: ReadModels) -> Result<AppState, GatewayError> {
    build_state_with(store, read, GatewayConfig::default()).await
}

pub async fn build_state_with(
    store: EventStore,
    read: ReadModels,
    config: GatewayConfig,
) -> Result<AppState, GatewayError> {
    let idempotency = idempotency::IdempotencyStore::open(
        store.jetstream(),
        &config.idempotency_bucket,
        config.idempotency_retention,
        store.config().replicas,
    )
    .await?;
    Ok(AppState {
        workspaces: Arc::new(Repository::new(store.clone())),
        computations: Arc::new(Repository::new(store.clone())),
        read,
        store,
        idempotency,
        config: Arc::new(config),
    })
}

/// The whole HTTP API: resources, `/health`, `/openapi.json`, `/docs`, and problem documents for
/// unknown routes and unsupported methods.
pub fn router(state: AppState) -> Router {
    use routes::{computations, health, workspaces};
    Router::new()
        .route("/health", get(health::health))
        .route("/workspaces", post(workspaces::create).get(workspaces::list))
        .route(
            "/workspaces/{workspace}",
            get(workspaces::get).patch(workspaces::update),
        )
        .route("/workspaces/{workspace}/archive", post(workspaces::archive))
        .route(
            "/{workspace}/computations",
            post(computations::create).get(computations::list),
        )
        .route(
            "/{workspace}/computations/{computation}",
            get(computations::get)
                .patch(computations::update)
                .delete(computations::archive),
        )
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .fallback(problem::route_not_found)
        // After every route: it applies to the routes registered so far.
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(middleware::from_fn(problem::fill_instance))
        // Well below NATS's default 1 MiB message limit, so that a body the gateway accepts always fits
        // in one commit (the envelope adds a few hundred bytes per event).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 512 * 1024;
