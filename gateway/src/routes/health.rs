//! `/health`: whether this process can reach its dependencies.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use utoipa_axum::routes;

use crate::dto::Health;
use crate::{AppState, Routes};

pub fn routes() -> Routes {
    Routes::new().routes(routes!(health))
}

/// Liveness of the dependencies: NATS (the event store) and Postgres (the read models).
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Every dependency is up", body = Health,
            example = json!({"status": "ok", "nats": "up", "postgres": "up"})),
        (status = 503, description = "A dependency is down", body = Health,
            example = json!({"status": "unavailable", "nats": "down", "postgres": "up"})),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let nats = state.app().log().is_available();
    // Bounded: a database that does not answer must make the check fail, not hang the prober.
    let postgres = match state.app().read_models() {
        Ok(read) => tokio::time::timeout(state.config().health_timeout, read.ping())
            .await
            .is_ok_and(|ping| ping.is_ok()),
        Err(_) => false,
    };
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
