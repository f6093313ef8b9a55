//! Prism's HTTP API: a thin adapter over the application layer ([`prism_app::App`]).
//!
//! A handler parses its request (path, query, headers, body) into a call of an application service,
//! and maps the outcome to a response; an [`prism_app::AppError`] becomes an RFC 9457 problem document
//! in one place ([`problem`]). Commands (`POST`, `PATCH`, `DELETE`) answer with the commit's stream
//! sequence (`Prism-Sequence` header and `sequence` field) and the resource as the read model shows it
//! once it has applied the commit, or `202 Accepted` with the sequence when the read model is slower;
//! queries (`GET`) accept `min_sequence` to read their own writes.
//!
//! Route modules ([`routes`]) each return their routes with their OpenAPI description; the platform's
//! registry lists which are served ([`router`]). The OpenAPI 3.1 description is served at
//! `/openapi.json` and Swagger UI at `/docs`. It states every constraint the server enforces: the
//! responses routes share are described once ([`responses`]), and the schemas of values are built from
//! the domain's own limits ([`fields`]).
//!
//! **Architecture Invariant:** this is the only crate that knows HTTP; nothing depends on it but the
//! platform's wiring (`prism-cli`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use prism_app::App;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub mod auth;
mod command;
pub mod cursor;
pub mod dto;
pub mod extract;
pub mod fields;
pub mod grpc_status;
pub mod headers;
mod json_schema;
mod openapi;
pub mod problem;
pub mod responses;
pub mod routes;
#[cfg(test)]
mod strings;

pub use problem::{Problem, ProblemKind};

/// Tunables of the HTTP layer; [`GatewayConfig::default`] is what production uses.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// How long a command response waits for its read model before answering 202.
    pub command_read_wait: Duration,
    /// Upper bound for each dependency check of `/health`.
    pub health_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            command_read_wait: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
        }
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    app: App,
    config: Arc<GatewayConfig>,
}

impl AppState {
    pub fn new(app: App, config: GatewayConfig) -> Self {
        Self {
            app,
            config: Arc::new(config),
        }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }
}

/// A route module's routes and their OpenAPI description.
pub type Routes = OpenApiRouter<AppState>;

/// The HTTP API made of `modules` (see the platform's registry), plus `/health`, `/openapi.json`,
/// `/docs`, and problem documents for unknown routes and unsupported methods.
pub fn router(state: AppState, modules: impl IntoIterator<Item = Routes>) -> Router {
    let (routes, api) = collect(modules);
    routes
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(problem::route_not_found)
        // After every route: it applies to the routes registered so far.
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(middleware::from_fn(problem::fill_instance))
        // Well below NATS's default 1 MiB message limit, so that a body the gateway accepts always fits
        // in one commit (the envelope adds a few hundred bytes per event).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The OpenAPI description of the API made of `modules`.
pub fn openapi(modules: impl IntoIterator<Item = Routes>) -> utoipa::openapi::OpenApi {
    collect(modules).1
}

fn collect(modules: impl IntoIterator<Item = Routes>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut all = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(routes::health::routes());
    for module in modules {
        all = all.merge(module);
    }
    all.split_for_parts()
}

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 512 * 1024;
