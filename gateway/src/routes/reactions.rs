//! `/operations/reactions`: reactions workers gave up on, and the retries operators ask for.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::Caller;
use prism_projections::ReactionView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use crate::extract::{Path, Query};
use crate::headers::{CommandHeaderParams, CommandHeaders, PRISM_SEQUENCE};
use crate::problem::Problem;
use crate::{AppState, Routes};

pub fn routes() -> Routes {
    Routes::new().routes(routes!(list)).routes(routes!(retry))
}

/// A reaction a worker gave up on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailedReaction {
    /// `<worker>-<event id>`.
    pub id: String,
    pub worker: String,
    /// The CloudEvents id of the event the worker could not handle.
    pub event_id: String,
    pub event_type: String,
    /// Where the event is in the log.
    pub stream_sequence: u64,
    pub attempts: u64,
    pub error: String,
    /// `failed`, `retry_requested` or `resolved`.
    pub status: String,
    pub failed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl From<ReactionView> for FailedReaction {
    fn from(v: ReactionView) -> Self {
        Self {
            id: v.id,
            worker: v.worker,
            event_id: v.event_id,
            event_type: v.event_type,
            stream_sequence: v.stream_sequence,
            attempts: v.attempts,
            error: v.error,
            status: v.status,
            failed_at: v.failed_at,
            updated_at: v.updated_at,
            version: v.version,
        }
    }
}

/// A retry that was asked for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryAccepted {
    pub id: String,
    pub status: String,
    /// Stream sequence of the request; list with `min_sequence` set to it to see it.
    pub sequence: u64,
}

/// Which failed reactions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReactionStatus {
    Failed,
    RetryRequested,
    Resolved,
}

impl ReactionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RetryRequested => "retry_requested",
            Self::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReactionParams {
    /// Only reactions in this state.
    pub status: Option<ReactionStatus>,
    /// How many, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Wait until the list has applied this stream sequence (e.g. a retry's `Prism-Sequence`).
    pub min_sequence: Option<u64>,
}

/// Reactions workers gave up on, newest failure first.
#[utoipa::path(
    get,
    path = "/operations/reactions",
    tag = "operations",
    params(ReactionParams),
    responses(
        (status = 200, description = "Failed reactions, newest first", body = Vec<FailedReaction>),
        (status = 400, description = "Bad parameter, or `min_sequence` beyond the end of the event log", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Read model behind `min_sequence`, or unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ReactionParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<FailedReaction>>, Problem> {
    let limit = crate::cursor::limit(params.limit).map_err(Problem::bad_request)?;
    let read = super::read_options(&headers, params.min_sequence)?;
    let items = state
        .app()
        .reactions()
        .list(
            &Caller::anonymous(),
            params.status.map(ReactionStatus::as_str),
            limit,
            read,
        )
        .await?;
    Ok(Json(items.into_iter().map(FailedReaction::from).collect()))
}

/// Asks the worker to try the event again. The answer comes as the reaction's next state: `resolved`
/// when the retry succeeded, `failed` again (with the new error) when it did not.
#[utoipa::path(
    post,
    path = "/operations/reactions/{reaction}/retry",
    tag = "operations",
    params(("reaction" = String, Path, description = "The failed reaction's id"), CommandHeaderParams),
    responses(
        (status = 202, description = "Retry requested; follow it in the list with `min_sequence`", body = RetryAccepted, headers(("Prism-Sequence" = u64))),
        (status = 400, description = "Bad id or header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such failed reaction", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A retry is already pending, or the reaction is resolved", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .reactions()
        .retry(&headers.caller(), &headers.options("reaction")?, &id)
        .await?;
    let body = RetryAccepted {
        id,
        status: "retry_requested".into(),
        sequence: executed.outcome.sequence,
    };
    Ok((
        StatusCode::ACCEPTED,
        [(PRISM_SEQUENCE, executed.outcome.sequence.to_string())],
        Json(body),
    )
        .into_response())
}
