//! What happened in a computation's runs: their events and their CVMs', and their agents' log lines,
//! for a computation or for one run, narrowed and a page at a time.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use prism_domain::{ComputationId, RunId, WorkspaceId};
use prism_projections::{ActivityFilter, ActivityView, LogFilter, LogLineView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::{after_sequence, parameter_problem, read_options, time};
use crate::auth::Authenticated;
use crate::extract::{Path, Query};
use crate::fields;
use crate::problem::Problem;
use crate::responses::{NotFound, QueryProblems};
use crate::{AppState, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .routes(routes!(computation_events))
        .routes(routes!(computation_logs))
        .routes(routes!(run_events))
        .routes(routes!(run_logs))
}

const ORIGINATORS: [&str; 4] = ["user", "platform", "manager", "agent"];

/// Which events to show.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this run: on a computation's events only (on a run's, 400).
    pub run: Option<Uuid>,
    /// Event names, comma-separated (`requested,attested`, `agent_message_received`, …).
    #[param(value_type = Option<String>, pattern = "^[a-z_]{1,64}(,[a-z_]{1,64}){0,31}$")]
    pub r#type: Option<String>,
    /// Only events after which the run (for a run's event) or the CVM (for a CVM's) is in this
    /// state: `attesting`, `running`, `closed`, `online`, `destroyed`, …
    #[param(value_type = Option<String>, pattern = "^[a-z_]{1,32}$")]
    pub status: Option<String>,
    /// Who caused them: `user`, `platform` (its workers and services), `manager` (the backend that
    /// runs the CVM) or `agent` (the CVM's agent).
    #[param(value_type = Option<String>, pattern = "^(user|platform|manager|agent)$")]
    pub originator: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only events after this stream sequence: `next_after` of the previous page.
    pub after: Option<u64>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

/// Which log lines to show.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only lines of this run's agent: on a computation's logs only (on a run's, 400).
    pub run: Option<Uuid>,
    /// Only lines of this level (`debug`, `info`, `warn`, `error`), in any case.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z]{1,16}$")]
    pub level: Option<String>,
    /// Only lines that contain this text.
    #[param(value_type = Option<String>, max_length = 256)]
    pub contains: Option<String>,
    /// Only lines at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Only lines before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only lines after this stream sequence: `next_after` of the previous page.
    pub after: Option<u64>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

/// One event of a run or of the CVM made for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityEvent {
    /// The stream sequence of its commit: the log's order, and the cursor of pages.
    pub sequence: u64,
    /// The CloudEvents id.
    pub id: String,
    /// The CloudEvents type (`io.prism.run.attested.v1`); its `details` follow that type's JSON
    /// Schema (`/schemas`).
    #[schema(example = "io.prism.run.attested.v1")]
    pub r#type: String,
    /// `run` or `cvm`: whose event it is.
    #[schema(pattern = "^(run|cvm)$")]
    pub source: String,
    /// The event's name (`requested`, `agent_message_received`, …).
    pub event: String,
    pub run_id: Uuid,
    /// The CVM, for a CVM's event.
    pub cvm_id: Option<Uuid>,
    /// The run's state after a run's event, the CVM's after a CVM's.
    pub status: String,
    #[schema(pattern = "^(user|platform|manager|agent)$")]
    pub originator: String,
    /// Who acted: `user:<id>`, `api_key:<id>`, `service:<worker>`.
    pub actor: String,
    pub time: DateTime<Utc>,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<ActivityView> for ActivityEvent {
    fn from(v: ActivityView) -> Self {
        Self {
            sequence: v.sequence,
            id: v.id,
            r#type: v.r#type,
            source: v.source,
            event: v.event,
            run_id: v.run_id.0,
            cvm_id: v.cvm_id.map(|c| c.0),
            status: v.status,
            originator: v.originator,
            actor: v.actor,
            time: v.time,
            details: v.details,
        }
    }
}

/// One line an agent logged.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLine {
    pub sequence: u64,
    pub run_id: Uuid,
    pub cvm_id: Uuid,
    pub time: DateTime<Utc>,
    /// As the agent gave it (`INFO`, `debug`, …).
    pub level: String,
    pub message: String,
}

impl From<LogLineView> for LogLine {
    fn from(v: LogLineView) -> Self {
        Self {
            sequence: v.sequence,
            run_id: v.run_id.0,
            cvm_id: v.cvm_id.0,
            time: v.time,
            level: v.level,
            message: v.message,
        }
    }
}

/// One page of events, in the log's order; a page ends with a whole commit (the events of one
/// command share a stream sequence).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityEvents {
    pub items: Vec<ActivityEvent>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// One page of log lines, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLines {
    pub items: Vec<LogLine>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// The parameters as a filter; the rules the parameters' patterns state are enforced here too: a
/// value outside them is a mistake to be told, not an empty page.
fn event_filter(params: EventParams, scope: Scope) -> Result<ActivityFilter, Problem> {
    let limit = crate::cursor::limit(params.limit).map_err(|detail| parameter_problem("limit", detail))?;
    if let Some(originator) = &params.originator
        && !ORIGINATORS.contains(&originator.as_str())
    {
        return Err(parameter_problem(
            "originator",
            format!("`{originator}` is no originator: {}", ORIGINATORS.join(", ")),
        ));
    }
    let is_name = |name: &str, max: usize| {
        (1..=max).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    if let Some(types) = &params.r#type
        && !(types.split(',').count() <= 32 && types.split(',').all(|name| is_name(name, 64)))
    {
        return Err(parameter_problem(
            "type",
            format!("`{types}` is not a comma-separated list of event names"),
        ));
    }
    if let Some(status) = &params.status
        && !is_name(status, 32)
    {
        return Err(parameter_problem("status", format!("`{status}` is no state")));
    }
    let (computation, run) = scope.with(params.run)?;
    Ok(ActivityFilter {
        computation,
        run,
        events: params
            .r#type
            .map(|types| types.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        status: params.status,
        originator: params.originator,
        from: time("from", params.from.as_deref())?,
        to: time("to", params.to.as_deref())?,
        after: after_sequence(params.after)?,
        limit,
    })
}

fn log_filter(params: LogParams, scope: Scope) -> Result<LogFilter, Problem> {
    let limit = crate::cursor::limit(params.limit).map_err(|detail| parameter_problem("limit", detail))?;
    if let Some(level) = &params.level
        && !((1..=16).contains(&level.len()) && level.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(parameter_problem("level", format!("`{level}` is no log level")));
    }
    if params
        .contains
        .as_ref()
        .is_some_and(|text| text.chars().count() > 256)
    {
        return Err(parameter_problem("contains", "at most 256 characters".into()));
    }
    let (computation, run) = scope.with(params.run)?;
    Ok(LogFilter {
        computation,
        run,
        level: params.level,
        contains: params.contains,
        from: time("from", params.from.as_deref())?,
        to: time("to", params.to.as_deref())?,
        after: after_sequence(params.after)?,
        limit,
    })
}

/// Whose activity a route shows.
enum Scope {
    Computation(ComputationId),
    Run(RunId),
}

impl Scope {
    /// The computation and run a query covers, with the `run` parameter.
    fn with(self, run: Option<Uuid>) -> Result<(Option<ComputationId>, Option<RunId>), Problem> {
        match (self, run) {
            (Self::Computation(c), run) => Ok((Some(c), run.map(RunId))),
            (Self::Run(run), None) => Ok((None, Some(run))),
            (Self::Run(_), Some(_)) => Err(parameter_problem(
                "run",
                "the run is the one in the path; `run` narrows a computation's events".into(),
            )),
        }
    }
}

async fn events_of(
    state: &AppState,
    caller: &prism_app::Caller,
    headers: &HeaderMap,
    workspace: Uuid,
    scope: Scope,
    params: EventParams,
) -> Result<Json<ActivityEvents>, Problem> {
    let read = read_options(headers, params.min_sequence)?;
    let filter = event_filter(params, scope)?;
    let page = state
        .app()
        .runs()
        .activity(caller, WorkspaceId(workspace), &filter, read)
        .await?;
    Ok(Json(ActivityEvents {
        items: page.items.into_iter().map(ActivityEvent::from).collect(),
        next_after: page.next_after,
    }))
}

async fn logs_of(
    state: &AppState,
    caller: &prism_app::Caller,
    headers: &HeaderMap,
    workspace: Uuid,
    scope: Scope,
    params: LogParams,
) -> Result<Json<LogLines>, Problem> {
    let read = read_options(headers, params.min_sequence)?;
    let filter = log_filter(params, scope)?;
    let page = state
        .app()
        .runs()
        .log_lines(caller, WorkspaceId(workspace), &filter, read)
        .await?;
    Ok(Json(LogLines {
        items: page.items.into_iter().map(LogLine::from).collect(),
        next_after: page.next_after,
    }))
}

/// The events of a computation's runs and of their CVMs, in the log's order (`computation.read`):
/// narrowed by run, name, state, originator and time.
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/events",
    operation_id = "list_computation_events",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        EventParams
    ),
    responses(
        (status = 200, description = "One page of events", body = ActivityEvents),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn computation_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path((workspace, computation)): Path<(Uuid, Uuid)>,
    Query(params): Query<EventParams>,
) -> Result<Json<ActivityEvents>, Problem> {
    let scope = Scope::Computation(ComputationId(computation));
    events_of(&state, &caller, &headers, workspace, scope, params).await
}

/// The log lines of the agents of a computation's runs, oldest first (`computation.read`): narrowed
/// by run, level, text and time.
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/logs",
    operation_id = "list_computation_logs",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        LogParams
    ),
    responses(
        (status = 200, description = "One page of log lines", body = LogLines),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn computation_logs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path((workspace, computation)): Path<(Uuid, Uuid)>,
    Query(params): Query<LogParams>,
) -> Result<Json<LogLines>, Problem> {
    let scope = Scope::Computation(ComputationId(computation));
    logs_of(&state, &caller, &headers, workspace, scope, params).await
}

/// A run's events and its CVM's, in the log's order (`computation.read`): narrowed by name, state,
/// originator and time.
#[utoipa::path(
    get,
    path = "/{workspace}/runs/{run}/events",
    operation_id = "list_run_events",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
        EventParams
    ),
    responses(
        (status = 200, description = "One page of events", body = ActivityEvents),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn run_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path((workspace, run)): Path<(Uuid, Uuid)>,
    Query(params): Query<EventParams>,
) -> Result<Json<ActivityEvents>, Problem> {
    events_of(
        &state,
        &caller,
        &headers,
        workspace,
        Scope::Run(RunId(run)),
        params,
    )
    .await
}

/// The log lines of a run's agent, oldest first (`computation.read`): narrowed by level, text and
/// time.
#[utoipa::path(
    get,
    path = "/{workspace}/runs/{run}/logs",
    operation_id = "list_run_logs",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
        LogParams
    ),
    responses(
        (status = 200, description = "One page of log lines", body = LogLines),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn run_logs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path((workspace, run)): Path<(Uuid, Uuid)>,
    Query(params): Query<LogParams>,
) -> Result<Json<LogLines>, Problem> {
    logs_of(
        &state,
        &caller,
        &headers,
        workspace,
        Scope::Run(RunId(run)),
        params,
    )
    .await
}
