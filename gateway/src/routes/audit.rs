//! The audit trail: a workspace's events as Server-Sent Events, each a CloudEvents 1.0 record in
//! JSON, resumable with `Last-Event-ID`; its security events; and, for operators, one aggregate's
//! history replayed and the platform's security events.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use futures::Stream;
use prism_app::{FeedFilter, FeedItem, FeedPosition, Replay, ReplayUntil};
use prism_domain::WorkspaceId;
use serde::{Deserialize, Serialize};
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};
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
        .routes(routes!(stream_events))
        .routes(routes!(replay))
        .routes(routes!(ledger_public_key))
        .routes(routes!(workspace_security_events))
        .routes(routes!(platform_security_events))
}

/// The audit ledger's public key (Ed25519, SubjectPublicKeyInfo PEM): with it alone anyone checks
/// the ledger's signed checkpoints, and a bundle exported from it (`prism audit verify --bundle
/// FILE --public-key KEY`; see docs/audit.md). Public. Keep a copy: a verifier trusts its own.
#[utoipa::path(
    get,
    path = "/audit/public-key",
    operation_id = "audit_public_key",
    tag = "audit",
    security(()),
    responses(
        (status = 200, description = "The ledger key", content_type = "application/x-pem-file", body = String),
        (status = 404, response = NotFound),
    )
)]
pub async fn ledger_public_key(State(state): State<AppState>) -> Result<Response, Problem> {
    let key = state.app().ledger().public_key().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        key.as_pem().to_owned(),
    )
        .into_response())
}

/// What a position in the feed looks like: an event's id, `<sequence>.<index>`, or a commit's,
/// `<sequence>`.
pub const POSITION_PATTERN: &str = r"^[0-9]{1,19}(\.[0-9]{1,9})?$";
/// CloudEvents types, comma-separated.
const TYPES_PATTERN: &str = r"^io\.prism\.[a-z_]{1,64}\.[a-z_]{1,64}\.v[0-9]{1,4}(,io\.prism\.[a-z_]{1,64}\.[a-z_]{1,64}\.v[0-9]{1,4}){0,31}$";
const AGGREGATE_TYPE_PATTERN: &str = r"^[a-z_]{1,64}$";
const AGGREGATE_ID_PATTERN: &str = r"^[!-~]{1,128}$";

/// Which of the workspace's events to stream, and from where.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    #[param(schema_with = types_schema)]
    pub r#type: Option<String>,
    #[param(schema_with = aggregate_type_schema)]
    pub aggregate_type: Option<String>,
    #[param(schema_with = aggregate_id_schema)]
    pub aggregate_id: Option<String>,
    /// Without a position to resume from: begin with the first event recorded at or after this
    /// time (RFC 3339). Without either, the stream begins with the events recorded from now on.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// End the stream at the first event recorded at or after this time (RFC 3339); when it has
    /// passed, once the stream has sent everything recorded before it. Without it the stream runs
    /// until the client leaves.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    #[param(schema_with = after_schema)]
    pub after: Option<String>,
}

fn pattern_schema(pattern: &str, description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

fn types_schema() -> Schema {
    pattern_schema(
        TYPES_PATTERN,
        "Only events of these CloudEvents types, comma-separated \
         (`io.prism.run.closed.v1,io.prism.cvm.destroyed.v1`).",
    )
}

fn aggregate_type_schema() -> Schema {
    pattern_schema(
        AGGREGATE_TYPE_PATTERN,
        "Only events of this aggregate type (`run`, `computation`, `cvm`, `certificate`, …).",
    )
}

fn aggregate_id_schema() -> Schema {
    pattern_schema(AGGREGATE_ID_PATTERN, "Only events of the aggregate with this id.")
}

fn after_schema() -> Schema {
    pattern_schema(
        POSITION_PATTERN,
        "Resume after this event id, for clients that cannot send `Last-Event-ID` (which wins when \
         both are given).",
    )
}

fn last_event_id_schema() -> Schema {
    pattern_schema(
        POSITION_PATTERN,
        "The id of the last event received (`<sequence>.<index>`), as an SSE client sends it when it \
         reconnects: the stream resumes right after that event, with nothing missed and nothing twice. \
         `<sequence>` alone resumes after that whole commit.",
    )
}

/// Headers of the feed (documentation only).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct FeedHeaderParams {
    #[param(rename = "Last-Event-ID", schema_with = last_event_id_schema)]
    last_event_id: Option<String>,
}

/// `value` of parameter `name`, refused (400) unless `valid`.
fn checked<'a>(
    name: &str,
    value: Option<&'a str>,
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<Option<&'a str>, Problem> {
    match value {
        Some(text) if !valid(text) => Err(parameter_problem(name, format!("`{text}` is not {what}"))),
        other => Ok(other),
    }
}

// The parameters' rules, as their patterns state them; a test checks that each pattern accepts
// exactly what its function does.

/// A lower-case name: an aggregate type or an event's name.
fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// [`TYPES_PATTERN`]: up to 32 `io.prism.<aggregate>.<event>.v<N>`, comma-separated.
fn is_type_list(text: &str) -> bool {
    let is_type = |t: &str| {
        let parts: Vec<&str> = t.split('.').collect();
        matches!(parts.as_slice(), ["io", "prism", aggregate, event, version]
        if is_name(aggregate) && is_name(event) && version.strip_prefix('v').is_some_and(|n| {
            (1..=4).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
        }))
    };
    let types: Vec<&str> = text.split(',').collect();
    types.len() <= 32 && types.into_iter().all(is_type)
}

/// [`AGGREGATE_ID_PATTERN`]: 1–128 visible ASCII characters.
fn is_aggregate_id(text: &str) -> bool {
    (1..=128).contains(&text.len()) && text.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

fn position(name: &str, text: &str) -> Result<FeedPosition, Problem> {
    let bad = || {
        parameter_problem(
            name,
            format!("`{text}` is not an event id: <sequence> or <sequence>.<index>"),
        )
    };
    let position: FeedPosition = text.parse().map_err(|_| bad())?;
    // The pattern's bounds, so that the description and the server agree on every value.
    let digits = |n: u64| n.to_string().len();
    if digits(position.sequence) > 19 || position.index.is_some_and(|i| digits(u64::from(i)) > 9) {
        return Err(bad());
    }
    Ok(position)
}

/// The workspace's events as they are recorded (`audit.read`), as Server-Sent Events: each event's
/// `data` is the CloudEvents 1.0 record (JSON format) exactly as the log holds it, hash chain
/// attributes included, and its `id` its place in the log, `<stream sequence>.<index in its
/// commit>`. Every event is verified before it is sent; a commit that fails verification is not
/// sent but named in an event of type `quarantined` (`{"sequence", "reason"}`). A stream that can
/// no longer go on (the caller lost the permission, the log cannot be read) ends with an event of
/// type `error` whose data is a problem document; reconnecting with `Last-Event-ID` resumes after
/// the last event received. Comments keep an idle connection open.
#[utoipa::path(
    get,
    path = "/{workspace}/events",
    operation_id = "stream_events",
    tag = "audit",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        FeedParams,
        FeedHeaderParams,
    ),
    responses(
        (status = 200, description = "The events, as Server-Sent Events", content_type = "text/event-stream", body = String),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn stream_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<FeedParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let types = checked(
        "type",
        params.r#type.as_deref(),
        is_type_list,
        "a comma-separated list of event types",
    )?;
    let aggregate_type = checked(
        "aggregate_type",
        params.aggregate_type.as_deref(),
        is_name,
        "an aggregate type",
    )?;
    let aggregate_id = checked(
        "aggregate_id",
        params.aggregate_id.as_deref(),
        is_aggregate_id,
        "an aggregate id",
    )?;
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                parameter_problem("Last-Event-ID", "Last-Event-ID is not visible ASCII".into())
            })?;
            Some(position("Last-Event-ID", text)?)
        }
        None => None,
    };
    let after = match (last_event_id, params.after.as_deref()) {
        (Some(position), _) => Some(position),
        (None, Some(text)) => Some(position("after", text)?),
        (None, None) => None,
    };
    let filter = FeedFilter {
        types: types
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        aggregate_type: aggregate_type.map(str::to_owned),
        aggregate_id: aggregate_id.map(str::to_owned),
        since: time("since", params.since.as_deref())?,
        until: time("until", params.until.as_deref())?,
    };
    let feed = state
        .app()
        .audit()
        .feed(&caller, WorkspaceId(workspace), filter, after)
        .await?;
    // The feed's last item (an error) ends the stream.
    let events = futures::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        let (event, last) = sse_event(feed.recv().await?);
        Some((Ok(event), (!last).then_some(feed)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Where a replay stops (with both, at whichever comes first; with neither, at the end).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// After the commit at this stream sequence.
    pub until_sequence: Option<u64>,
    /// After the last event recorded at or before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until_time: Option<String>,
    /// With `true`, each step also carries `diff`: an RFC 6902 JSON Patch from the state before.
    pub diff: Option<bool>,
}

/// One aggregate's history (schema of [`prism_app::Replay`]).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ReplayBody {
    aggregate_type: String,
    aggregate_id: String,
    /// Each event in the log's order: `sequence`, `index`, `version`, `time`, `event_type` (as
    /// recorded), `actor`, `event` (`{"event", "data"}` as the domain reads it today, older versions
    /// upcast), `state` (after it) and, with `diff=true`, `diff` (an RFC 6902 JSON Patch from the
    /// state before).
    #[schema(value_type = Vec<Object>)]
    steps: Vec<()>,
}

/// One aggregate's history, event by event, with the state each event left (`platform.operate`):
/// time travel for an investigation. The events are read back from the log with their hash chain
/// verified and folded by the domain's own rules. 404 for an unknown aggregate type or an aggregate
/// with no events.
#[utoipa::path(
    get,
    path = "/operations/replay/{aggregate_type}/{id}",
    operation_id = "replay_aggregate",
    tag = "audit",
    params(
        ("aggregate_type" = String, Path, description = "Aggregate type: `run`, `computation`, `cvm`, `workspace`, …"),
        ("id" = String, Path, description = "Aggregate id"),
        ReplayParams,
    ),
    responses(
        (status = 200, description = "The history", body = ReplayBody),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((aggregate_type, id)): Path<(String, String)>,
    Query(params): Query<ReplayParams>,
) -> Result<Json<Replay>, Problem> {
    let until = ReplayUntil {
        sequence: params.until_sequence,
        time: time("until_time", params.until_time.as_deref())?,
    };
    let replay = state
        .app()
        .audit()
        .replay(&caller, &aggregate_type, &id, until, params.diff.unwrap_or(false))
        .await?;
    Ok(Json(replay))
}

/// One item of the feed as an SSE event, and whether it is the last.
fn sse_event(item: Result<FeedItem, prism_app::AppError>) -> (Event, bool) {
    match item {
        Ok(FeedItem::Event { position, event }) => {
            let data = serde_json::to_string(&event).unwrap_or_default();
            (Event::default().id(position.to_string()).data(data), false)
        }
        Ok(FeedItem::Quarantined { sequence, reason }) => {
            let data = serde_json::json!({"sequence": sequence, "reason": reason}).to_string();
            (
                Event::default()
                    .event("quarantined")
                    .id(sequence.to_string())
                    .data(data),
                false,
            )
        }
        Err(error) => {
            let problem = Problem::from(error);
            (
                Event::default()
                    .event("error")
                    .data(serde_json::to_string(&problem).unwrap_or_default()),
                true,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pattern of the description accepts exactly what the server accepts.
    #[test]
    fn the_patterns_are_the_rules() {
        /// A pattern, the rule it states, and samples on both sides of it.
        type Case<'a> = (&'a str, fn(&str) -> bool, &'a [&'a str]);
        let cases: [Case; 4] = [
            (
                TYPES_PATTERN,
                is_type_list,
                &[
                    "io.prism.run.closed.v1",
                    "io.prism.run.closed.v1,io.prism.cvm.destroyed.v12",
                    "io.prism.run.closed",
                    "io.prism.Run.closed.v1",
                    "io.prism.run.closed.v12345",
                    "io.prism.run.closed.v1,",
                    ",io.prism.run.closed.v1",
                    "io.prism..closed.v1",
                    "io.other.run.closed.v1",
                    "io.prism.run.closed.v1.x",
                ],
            ),
            (
                AGGREGATE_TYPE_PATTERN,
                is_name,
                &[
                    "run",
                    "api_key",
                    "",
                    "Run",
                    "run-1",
                    &"a".repeat(64),
                    &"a".repeat(65),
                ],
            ),
            (
                AGGREGATE_ID_PATTERN,
                is_aggregate_id,
                &[
                    "0193c0de-0000-7000-8000-000000000001",
                    "a b",
                    "",
                    "é",
                    "~!",
                    &"x".repeat(128),
                    &"x".repeat(129),
                ],
            ),
            (
                POSITION_PATTERN,
                |text| position("after", text).is_ok(),
                &[
                    "1",
                    "12.0",
                    "12.",
                    ".1",
                    "1.2.3",
                    "-1",
                    &"9".repeat(19),
                    &"9".repeat(20),
                    "1.123456789",
                    "1.1234567890",
                    "18446744073709551615",
                ],
            ),
        ];
        for (pattern, rule, samples) in cases {
            let regex = regex::Regex::new(pattern).unwrap();
            for sample in samples {
                assert_eq!(regex.is_match(sample), rule(sample), "{pattern} on {sample:?}");
            }
        }
        let many = vec!["io.prism.run.closed.v1"; 33].join(",");
        assert!(!is_type_list(&many) && !regex::Regex::new(TYPES_PATTERN).unwrap().is_match(&many));
    }
}

const SECURITY_KINDS: [&str; 9] = [
    "unauthenticated",
    "invalid_credentials",
    "sign_in_failed",
    "throttled",
    "not_visible",
    "missing_permission",
    "certificate_refused",
    "locked_out",
    "attestation_refused",
];

/// Which security events to show.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecurityParams {
    /// Kinds, comma-separated: `missing_permission`, `not_visible`, `invalid_credentials`,
    /// `unauthenticated`, `throttled`, `sign_in_failed`, `locked_out`, `certificate_refused`,
    /// `attestation_refused`.
    #[param(
        value_type = Option<String>,
        pattern = "^(unauthenticated|invalid_credentials|sign_in_failed|throttled|not_visible|missing_permission|certificate_refused|locked_out|attestation_refused)(,(unauthenticated|invalid_credentials|sign_in_failed|throttled|not_visible|missing_permission|certificate_refused|locked_out|attestation_refused)){0,15}$"
    )]
    pub kind: Option<String>,
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

/// One security event.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvent {
    /// The stream sequence of the event it comes from.
    pub sequence: u64,
    /// The CloudEvents id of that event.
    pub id: String,
    /// Its CloudEvents type (`io.prism.access.denied.v1`, `io.prism.user.sign_in_failed.v1`,
    /// `io.prism.cvm.attestation_appraised.v1`).
    pub r#type: String,
    #[schema(example = "missing_permission")]
    pub kind: String,
    /// Who: `user:<id>`, `api_key:<id>`, `anonymous`, `service:<worker>`.
    pub actor: String,
    /// What it concerns: the resource asked for (`workspaces/<id>/computations/<id>`), `users/<id>`,
    /// `cvms/<id>`, `agents' channel`.
    pub subject: String,
    pub detail: String,
    /// The source address, when known.
    pub source: Option<String>,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// One page of security events, in the log's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvents {
    pub items: Vec<SecurityEvent>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

async fn security_events(
    state: &AppState,
    caller: &prism_app::Caller,
    headers: &HeaderMap,
    workspace: Option<WorkspaceId>,
    params: SecurityParams,
) -> Result<Json<SecurityEvents>, Problem> {
    let limit = crate::cursor::limit(params.limit).map_err(|detail| parameter_problem("limit", detail))?;
    let kinds: Vec<String> = params
        .kind
        .map(|kinds| kinds.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    if kinds.len() > 16 {
        return Err(parameter_problem("kind", "at most 16 kinds".into()));
    }
    if let Some(unknown) = kinds.iter().find(|k| !SECURITY_KINDS.contains(&k.as_str())) {
        return Err(parameter_problem(
            "kind",
            format!("`{unknown}` is no kind of security event"),
        ));
    }
    let filter = prism_projections::SecurityFilter {
        kinds,
        from: time("from", params.from.as_deref())?,
        to: time("to", params.to.as_deref())?,
        after: after_sequence(params.after)?,
        limit,
    };
    let read = read_options(headers, params.min_sequence)?;
    let page = state
        .app()
        .audit()
        .security_events(caller, workspace, &filter, read)
        .await?;
    Ok(Json(SecurityEvents {
        items: page
            .items
            .into_iter()
            .map(|e| SecurityEvent {
                sequence: e.sequence,
                id: e.id,
                r#type: e.r#type,
                kind: e.kind,
                actor: e.actor,
                subject: e.subject,
                detail: e.detail,
                source: e.source,
                time: e.time,
            })
            .collect(),
        next_after: page.next_after,
    }))
}

/// The workspace's security events, in the log's order (`audit.read`): requests refused on its
/// resources, failed sign-ins and lock-outs of its members, refused attestations of its CVMs.
#[utoipa::path(
    get,
    path = "/{workspace}/security-events",
    operation_id = "list_security_events",
    tag = "audit",
    params(("workspace" = Uuid, Path, description = "Workspace id"), SecurityParams),
    responses(
        (status = 200, description = "One page of security events", body = SecurityEvents),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn workspace_security_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path(workspace): Path<Uuid>,
    Query(params): Query<SecurityParams>,
) -> Result<Json<SecurityEvents>, Problem> {
    let workspace = Some(WorkspaceId(workspace));
    security_events(&state, &caller, &headers, workspace, params).await
}

/// The platform's security events, in the log's order (`platform.operate`): every workspace's, and
/// those of no workspace — client certificates refused at the TLS handshake, failed sign-ins of
/// unknown accounts, refused platform actions.
#[utoipa::path(
    get,
    path = "/operations/security-events",
    operation_id = "list_platform_security_events",
    tag = "audit",
    params(SecurityParams),
    responses(
        (status = 200, description = "One page of security events", body = SecurityEvents),
        QueryProblems,
    )
)]
pub async fn platform_security_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Query(params): Query<SecurityParams>,
) -> Result<Json<SecurityEvents>, Problem> {
    security_events(&state, &caller, &headers, None, params).await
}
