//! `/health`: whether this process can reach its dependencies.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::dto::Health;

/// Liveness of the dependencies: NATS (the event store) and Postgres (the read models).
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency is up", body = Health,
            example = json!({"status": "ok", "nats": "up", "postgres": "up"})),
        (status = 503, description = "A dependency is down", body = Health,
            example = json!({"status": "unavailable", "nats": "down", "postgres": "up"})),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let nats = state.store.is_connected();
    // Bounded: a database that does not answer must make the check fail, not hang the prober.
    let postgres = tokio::time::timeout(state.config.health_timeout, state.read.ping())
        .await
        .is_ok_and(|ping| ping.is_ok());
    let up = |ok: bool| if ok { "up" } else { "down" }.to_owned();
    let (status, word) = if nats && postgres {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = Health {
        status: word.into(),
        nats: up(nats),
        postgres: up(postgres),
    };
    (status, Json(body)).into_response()
}
