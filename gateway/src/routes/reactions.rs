//! `/operations/reactions`: reactions workers gave up on, and the retries operators ask for.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_projections::ReactionView;
use serde::{Deserialize, Serialize};
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::extract::{Path, Query};
use crate::fields;
use crate::headers::{
    CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, PRISM_SEQUENCE, QueryHeaderParams,
};
use crate::problem::Problem;
use crate::responses::{ChangeProblems, CommandProblems, QueryProblems};
use crate::{AppState, Routes};

/// Longest reaction id accepted (`<worker>-<event id>` is far shorter).
const ID_MAX: usize = 200;

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(FailedReaction, RetryAccepted, ReactionStatus)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(list))
        .routes(routes!(retry))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReactionPath {
    #[param(schema_with = reaction_id)]
    reaction: String,
}

fn reaction_id() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(ID_MAX))
        // One token of an event log subject.
        .pattern(Some(format!("^[A-Za-z0-9_-]{{1,{ID_MAX}}}$")))
        .description(Some(format!(
            "The failed reaction's id (`<worker>-<event id>`): 1–{ID_MAX} letters, digits, `-` and `_`."
        )))
        .into()
}

/// A path id that cannot name a reaction is malformed (400), like any other.
fn check_id(id: &str) -> Result<(), Problem> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if id.is_empty() || id.len() > ID_MAX || !id.bytes().all(valid) {
        return Err(Problem::bad_request(format!(
            "a reaction id is 1–{ID_MAX} letters, digits, `-` and `_`"
        )));
    }
    Ok(())
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
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    /// Wait until the list has applied this stream sequence (e.g. a retry's `Prism-Sequence`).
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

/// Reactions workers gave up on, newest failure first.
#[utoipa::path(
    get,
    path = "/operations/reactions",
    operation_id = "list_reactions",
    tag = "operations",
    params(ReactionParams, QueryHeaderParams),
    responses(
        (status = 200, description = "Failed reactions, newest first", body = Vec<FailedReaction>),
        QueryProblems,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<ReactionParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<FailedReaction>>, Problem> {
    let limit = crate::cursor::limit(params.limit).map_err(Problem::bad_request)?;
    let read = super::read_options(&headers, params.min_sequence)?;
    let items = state
        .app()
        .reactions()
        .list(&caller, params.status.map(ReactionStatus::as_str), limit, read)
        .await?;
    Ok(Json(items.into_iter().map(FailedReaction::from).collect()))
}

/// Asks the worker to try the event again. The answer comes as the reaction's next state: `resolved`
/// when the retry succeeded, `failed` again (with the new error) when it did not.
#[utoipa::path(
    post,
    path = "/operations/reactions/{reaction}/retry",
    operation_id = "retry_reaction",
    tag = "operations",
    params(
        ReactionPath,
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(
        (status = 202, description = "Retry requested; follow it in the list with `min_sequence`", body = RetryAccepted,
            headers(("Prism-Sequence" = u64, description = "Stream sequence of the request"))),
        CommandProblems,
        // 409: a retry is already pending, or the reaction is resolved.
        ChangeProblems,
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(ReactionPath { reaction: id }): Path<ReactionPath>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    check_id(&id)?;
    let executed = state
        .app()
        .reactions()
        .retry(&caller, &headers.options("reaction")?, &id)
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
