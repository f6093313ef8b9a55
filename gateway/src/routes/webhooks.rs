//! `/{workspace}/webhooks`: the workspace's webhook endpoints (`webhooks.manage`) and their
//! deliveries. An endpoint's signing secret is in the answer to its registration and to each
//! rotation, and nowhere else (see docs/webhooks.md).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::{AppError, Caller, Executed, IssuedSecret, NewWebhook, WebhookChanges};
use prism_domain::values::check_text;
use prism_domain::webhook::{
    DESCRIPTION_MAX, EVENT_TYPES_MAX, EventTypePattern, Webhook as WebhookState, WebhookError, check_url,
};
use prism_domain::{WebhookId, WorkspaceId};
use prism_projections::{DeliveryView, WebhookView};
use serde::{Deserialize, Serialize};
use utoipa::openapi::link::Link;
use utoipa::openapi::{RefOr, Response as OpenApiResponse};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{Done, Invalid, done, no_store, rejection, secret_response};
use super::{page_request, parameter_problem, read_options};
use crate::auth::Authenticated;
use crate::command::Resource;
use crate::cursor;
use crate::dto::ReadParams;
use crate::extract::{JsonBody, Path, Query};
use crate::fields;
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag};
use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::responses::{
    BodyProblems, ChangeProblems, Changed, CommandProblems, Found, Linked, NotFound, QueryProblems, link,
    own_problem,
};
use crate::{AppState, Routes};

const WHAT: &str = "webhook";

/// What `?status=` of the deliveries takes.
const DELIVERY_STATUSES: &[&str] = &["pending", "delivered", "failed"];

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    NewWebhookBody,
    WebhookChangesBody,
    Webhook,
    WebhookWithSecret,
    Delivery,
    DeliveryPage
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(register, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(retry_delivery))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// A new endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhook, examples(json!({
    "url": "https://hooks.example.org/prism",
    "event_types": ["io.prism.run.*", "io.prism.computation.archived.v1"],
    "description": "runs to the ticketing system"
})))]
pub struct NewWebhookBody {
    /// Where events are delivered: `https`, or `http` to a loopback host (`localhost`, `127.0.0.0/8`,
    /// `[::1]`); no credentials, no fragment; at most 2048 characters.
    #[schema(max_length = 2048, example = "https://hooks.example.org/prism")]
    pub url: String,
    /// 1–32 distinct patterns: an exact CloudEvents type (`io.prism.run.completed.v1`), a prefix
    /// ending in `*` (`io.prism.run.*`), or `*` for every event of the workspace.
    #[schema(min_items = 1, max_items = 32)]
    pub event_types: Vec<String>,
    /// At most 1024 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
}

/// What changes; absent fields stay. A new URL must pass the handshake again.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookChanges)]
pub struct WebhookChangesBody {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 32)]
    pub event_types: Option<Vec<String>>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
}

/// Checks each value as the domain will (so one answer names them all, each at its pointer).
fn check(
    invalid: &mut Invalid,
    url: Option<&str>,
    types: Option<&[String]>,
    description: Option<&str>,
) -> Vec<EventTypePattern> {
    if let Some(url) = url {
        invalid.check(|| "/url".into(), check_url(url));
    }
    let mut patterns = Vec::new();
    if let Some(types) = types {
        if types.is_empty() {
            invalid.push("/event_types", WebhookError::NoEventTypes.to_string());
        }
        if types.len() > EVENT_TYPES_MAX {
            invalid.push(
                "/event_types",
                WebhookError::TooManyEventTypes { max: EVENT_TYPES_MAX }.to_string(),
            );
        }
        for (i, text) in types.iter().enumerate() {
            if types[..i].contains(text) {
                invalid.push(
                    format!("/event_types/{i}"),
                    WebhookError::RepeatedEventType(text.clone()).to_string(),
                );
            } else if let Some(pattern) =
                invalid.check(|| format!("/event_types/{i}"), EventTypePattern::parse(text))
            {
                patterns.push(pattern);
            }
        }
    }
    if let Some(description) = description {
        invalid.check(
            || "/description".into(),
            check_text("description", description, DESCRIPTION_MAX, false),
        );
    }
    patterns
}

/// The problem of `error`: a value the domain refused points at its field.
fn refused(error: AppError) -> Problem {
    let pointer = match rejection::<WebhookError>(&error) {
        Some(WebhookError::Url { .. }) => "/url",
        Some(
            WebhookError::NoEventTypes
            | WebhookError::TooManyEventTypes { .. }
            | WebhookError::RepeatedEventType(_)
            | WebhookError::EventType(_),
        ) => "/event_types",
        Some(WebhookError::Invalid(_)) => "/description",
        _ => "",
    };
    let problem = Problem::from(error);
    if problem.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16() && problem.errors.is_empty() {
        let detail = problem.detail.clone().unwrap_or_default();
        return problem.with_errors(vec![FieldProblem {
            pointer: pointer.into(),
            detail,
        }]);
    }
    problem
}

// ---------------------------------------------------------------------------------------------------
// Resources

/// An endpoint. Its secret is never shown here: only its SHA-256.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    /// `pending_validation` (nothing is delivered until the endpoint answers the handshake; its
    /// events are kept for it), `active`, or `deleted`.
    #[schema(example = "active")]
    pub status: String,
    /// SHA-256 (hex) of the current signing secret as it was shown (`whsec_…`).
    pub secret_fingerprint: String,
    /// Deliveries that exhausted their attempts (each recorded as `io.prism.webhook.delivery_failed.v1`).
    pub failed_deliveries: u64,
    /// Handshakes tried without success since the URL was set.
    pub handshake_attempts: u32,
    /// When the handshake is tried next (pending endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_handshake_at: Option<DateTime<Utc>>,
    /// What the last handshake met, while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_handshake_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Aggregate version; also the `ETag`.
    pub version: u64,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl From<WebhookView> for Webhook {
    fn from(v: WebhookView) -> Self {
        Self {
            id: v.id.as_uuid(),
            workspace_id: v.workspace_id.as_uuid(),
            url: v.url,
            event_types: v.event_types,
            description: v.description,
            status: v.status,
            secret_fingerprint: v.secret_fingerprint,
            failed_deliveries: v.failed_deliveries,
            handshake_attempts: v.handshake_attempts,
            next_handshake_at: v.next_handshake_at,
            last_handshake_error: v.last_handshake_error,
            created_at: v.created_at,
            updated_at: v.updated_at,
            version: v.version,
            sequence: None,
        }
    }
}

impl Resource for Webhook {
    fn version(&self) -> u64 {
        self.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

fn ids() -> [(&'static str, &'static str); 2] {
    [("workspace", "/workspace_id"), ("webhook", "/id")]
}

impl Linked for Webhook {
    fn links() -> Vec<(&'static str, Link)> {
        vec![
            ("GetWebhook", link("get_webhook", &ids())),
            ("UpdateWebhook", link("update_webhook", &ids())),
            ("DeleteWebhook", link("delete_webhook", &ids())),
            ("ListWebhookDeliveries", link("list_webhook_deliveries", &ids())),
        ]
    }
}

/// An endpoint just registered, or whose secret was just rotated, with the secret: **shown only this
/// once**.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    #[schema(example = "pending_validation")]
    pub status: String,
    /// The signing secret, `whsec_` and the base64 of its key: the HMAC-SHA256 key is the decoded
    /// bytes (as Standard Webhooks libraries take it).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
    pub secret_fingerprint: String,
    pub version: u64,
    pub sequence: u64,
}

impl WebhookWithSecret {
    /// The answer, once the endpoints' read model shows the commit (so that a read right after it
    /// finds the endpoint as it is now). The body comes from the command's outcome all the same: a
    /// read model that is slow must not cost the secret, which is shown only here.
    async fn after(state: &AppState, caller: &Caller, issued: IssuedSecret) -> Result<Self, AppError> {
        let answer = Self::of(issued)?;
        let read = prism_app::ReadOptions {
            min_sequence: Some(answer.sequence),
            wait: Some(state.config().command_read_wait),
        };
        let shown = state
            .app()
            .webhooks()
            .get(
                caller,
                WorkspaceId(answer.workspace_id),
                WebhookId(answer.id),
                read,
            )
            .await;
        if let Err(e) = shown {
            tracing::warn!(webhook = %answer.id, error = %e, "the endpoints' read model does not show the commit yet");
        }
        Ok(answer)
    }

    fn of(issued: IssuedSecret) -> Result<Self, AppError> {
        let state: &WebhookState = &issued.executed.outcome.state;
        let id = state
            .id
            .ok_or_else(|| AppError::internal("a registered webhook has an id"))?;
        let workspace = state
            .workspace
            .ok_or_else(|| AppError::internal("a registered webhook has a workspace"))?;
        Ok(Self {
            id: id.as_uuid(),
            workspace_id: workspace.as_uuid(),
            url: state.url.clone(),
            event_types: state.event_types.iter().map(ToString::to_string).collect(),
            description: state.description.clone(),
            status: state.status.as_str().to_owned(),
            secret_fingerprint: prism_app::webhook_secret_fingerprint(&issued.secret),
            secret: issued.secret,
            version: issued.executed.outcome.version,
            sequence: issued.executed.outcome.sequence,
        })
    }

    fn respond(self, status: StatusCode) -> Response {
        let location = format!("/{}/webhooks/{}", self.workspace_id, self.id);
        let mut response = (status, Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(crate::headers::PRISM_SEQUENCE, HeaderValue::from(self.sequence));
        headers.insert(header::ETAG, etag(self.version));
        if let Ok(location) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, location);
        }
        no_store(response)
    }
}

/// One event queued for the endpoint and how its delivery went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The CloudEvents id of the event (also its `webhook-id` header).
    pub event_id: String,
    #[schema(example = "io.prism.run.completed.v1")]
    pub event_type: String,
    /// The event's place in the log: its commit's stream sequence and its index there (the audit
    /// feed's `<sequence>.<index>`).
    pub sequence: u64,
    pub index: u32,
    /// `pending`, `delivered` or `failed` (out of attempts; `POST …/retry` puts it back).
    #[schema(example = "delivered")]
    pub status: String,
    /// Attempts since it was queued or last retried by hand.
    pub attempts: u32,
    /// How often it was retried by hand.
    pub retries: u32,
    /// When it is tried next (pending ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the endpoint last answered, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// What the last failed attempt met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<DeliveryView> for Delivery {
    fn from(v: DeliveryView) -> Self {
        Self {
            id: v.id,
            webhook_id: v.webhook_id.as_uuid(),
            event_id: v.event_id,
            event_type: v.event_type,
            sequence: v.sequence,
            index: v.index,
            status: v.status,
            attempts: v.attempts,
            retries: v.retries,
            next_attempt_at: v.next_attempt_at,
            last_status: v.last_status,
            last_error: v.last_error,
            last_attempt_at: v.last_attempt_at,
            delivered_at: v.delivered_at,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Only deliveries in this state.
    #[param(value_type = Option<String>, pattern = "^(pending|delivered|failed)$")]
    pub status: Option<String>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------------
// Responses

/// `201` with the secret.
struct Registered;

impl IntoResponses for Registered {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "201".to_owned(),
            secret_response::<WebhookWithSecret>(
                "Registered; the body holds the signing `secret`, shown only this once. The endpoint is \
                 `pending_validation` until it answers the handshake.",
            ),
        )])
    }
}

/// `200` with the new secret.
struct Rotated;

impl IntoResponses for Rotated {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "200".to_owned(),
            secret_response::<WebhookWithSecret>(
                "Rotated; the body holds the new signing `secret`, shown only this once. Every delivery \
                 from now on is signed with it.",
            ),
        )])
    }
}

/// The 422 of an endpoint's values.
struct WebhookProblems;

impl IntoResponses for WebhookProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(
                "A value breaks a rule (`errors[].pointer` locates each): a URL that is not https (or \
                 http to a loopback host), carries credentials or a fragment; an event type that is \
                 neither an exact type, a prefix ending in `*`, nor `*`; none, more than 32 or one twice; \
                 or the `Idempotency-Key` was first used with a different request.",
                ProblemKind::Validation,
            ),
        )])
    }
}

/// The 409 of a command on a deleted endpoint, or of a secret asked for twice.
struct WebhookConflict;

impl IntoResponses for WebhookConflict {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "409".to_owned(),
            own_problem(
                "The endpoint is deleted; or this `Idempotency-Key` was used already (a secret is not \
                 shown twice); or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        )])
    }
}

/// The 409 of a retry of a delivery that is not failed.
struct RetryConflict;

impl IntoResponses for RetryConflict {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "409".to_owned(),
            own_problem(
                "Only a `failed` delivery is retried (this one is pending or delivered), and none of a \
                 deleted endpoint.",
                ProblemKind::Conflict,
            ),
        )])
    }
}

async fn respond(
    state: &AppState,
    caller: &Caller,
    workspace: Uuid,
    executed: &Executed<WebhookState>,
) -> Response {
    let read = async {
        let id = WebhookId(executed.id.parse().map_err(AppError::internal)?);
        let view = state
            .app()
            .webhooks()
            .get(caller, WorkspaceId(workspace), id, state.after(executed))
            .await?;
        Ok(Webhook::from(view))
    };
    state
        .respond(
            executed,
            StatusCode::OK,
            format!("/{workspace}/webhooks/{}", executed.id),
            read,
        )
        .await
}

// ---------------------------------------------------------------------------------------------------
// Handlers

/// Register an endpoint for the workspace's events (`webhooks.manage`). The answer holds its signing
/// `secret`, **shown only this once**. Nothing is delivered until the endpoint answers the
/// abuse-protection handshake; the workspace's matching events are kept for it meanwhile.
#[utoipa::path(
    post,
    path = "/{workspace}/webhooks",
    operation_id = "register_webhook",
    tag = "webhooks",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = NewWebhookBody,
    responses(
        Registered,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        WebhookConflict,
        WebhookProblems,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<NewWebhookBody>,
) -> Result<Response, Problem> {
    let mut invalid = Invalid::default();
    let event_types = check(
        &mut invalid,
        Some(&body.url),
        Some(&body.event_types),
        Some(&body.description),
    );
    invalid.finish()?;
    let new = NewWebhook {
        url: body.url,
        event_types,
        description: body.description,
    };
    let issued = state
        .app()
        .webhooks()
        .register(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), new)
        .await
        .map_err(refused)?;
    Ok(WebhookWithSecret::after(&state, &caller, issued)
        .await?
        .respond(StatusCode::CREATED))
}

/// The workspace's endpoints that are not deleted, oldest first (`webhooks.manage`).
#[utoipa::path(
    get,
    path = "/{workspace}/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ReadParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The endpoints, oldest first", body = Vec<Webhook>),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Webhook>>, Problem> {
    let webhooks = state
        .app()
        .webhooks()
        .list(
            &caller,
            WorkspaceId(workspace),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(webhooks.into_iter().map(Webhook::from).collect()))
}

/// An endpoint of the workspace, deleted ones too (`webhooks.manage`).
#[utoipa::path(
    get,
    path = "/{workspace}/webhooks/{webhook}",
    operation_id = "get_webhook",
    tag = "webhooks",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("webhook" = Uuid, Path, description = "Webhook endpoint id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(Found<Webhook>, QueryProblems, (status = 404, response = NotFound))
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let view = state
        .app()
        .webhooks()
        .get(
            &caller,
            WorkspaceId(workspace),
            WebhookId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(([(header::ETAG, etag(view.version))], Json(Webhook::from(view))).into_response())
}

/// Change an endpoint's URL, event types or description (`webhooks.manage`); absent fields stay. A
/// new URL is `pending_validation` again until it answers the handshake.
#[utoipa::path(
    patch,
    path = "/{workspace}/webhooks/{webhook}",
    operation_id = "update_webhook",
    tag = "webhooks",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("webhook" = Uuid, Path, description = "Webhook endpoint id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = WebhookChangesBody,
    responses(
        Changed<Webhook>,
        CommandProblems,
        ChangeProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        WebhookConflict,
        WebhookProblems,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<WebhookChangesBody>,
) -> Result<Response, Problem> {
    let mut invalid = Invalid::default();
    let patterns = check(
        &mut invalid,
        body.url.as_deref(),
        body.event_types.as_deref(),
        body.description.as_deref(),
    );
    invalid.finish()?;
    let changes = WebhookChanges {
        url: body.url,
        event_types: body.event_types.map(|_| patterns),
        description: body.description,
    };
    let executed = state
        .app()
        .webhooks()
        .update(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            WebhookId(id),
            changes,
        )
        .await
        .map_err(refused)?;
    Ok(respond(&state, &caller, workspace, &executed).await)
}

/// Delete an endpoint (`webhooks.manage`): nothing more is delivered to it. Its record and its
/// deliveries stay readable (`status: deleted`).
#[utoipa::path(
    delete,
    path = "/{workspace}/webhooks/{webhook}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("webhook" = Uuid, Path, description = "Webhook endpoint id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Done, CommandProblems, ChangeProblems, (status = 404, response = NotFound), WebhookConflict)
)]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .webhooks()
        .delete(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            WebhookId(id),
        )
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

/// Replace the endpoint's signing secret (`webhooks.manage`). The answer holds the new `secret`,
/// **shown only this once**; every delivery from now on is signed with it, and the old one is
/// destroyed.
#[utoipa::path(
    post,
    path = "/{workspace}/webhooks/{webhook}/secret",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("webhook" = Uuid, Path, description = "Webhook endpoint id"),
        CommandHeaderParams
    ),
    responses(Rotated, CommandProblems, (status = 404, response = NotFound), WebhookConflict)
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let issued = state
        .app()
        .webhooks()
        .rotate_secret(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            WebhookId(id),
        )
        .await?;
    Ok(WebhookWithSecret::after(&state, &caller, issued)
        .await?
        .respond(StatusCode::OK))
}

/// The endpoint's deliveries in the log's order (`webhooks.manage`): each event queued for it, its
/// attempts, the last status or error, and when it is tried next.
#[utoipa::path(
    get,
    path = "/{workspace}/webhooks/{webhook}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("webhook" = Uuid, Path, description = "Webhook endpoint id"),
        DeliveryParams
    ),
    responses(
        (status = 200, description = "A page of deliveries, in the log's order", body = DeliveryPage),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryPage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    if let Some(status) = &params.status
        && !DELIVERY_STATUSES.contains(&status.as_str())
    {
        return Err(parameter_problem(
            "status",
            format!(
                "`{status}` is no delivery state: {}",
                DELIVERY_STATUSES.join(", ")
            ),
        ));
    }
    let page = state
        .app()
        .webhooks()
        .deliveries(
            &caller,
            WorkspaceId(workspace),
            WebhookId(id),
            params.status.as_deref(),
            page,
        )
        .await?;
    Ok(Json(DeliveryPage {
        items: page.items.into_iter().map(Delivery::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// Put a `failed` delivery back in the queue (`webhooks.manage`): due now, its attempts counted
/// afresh; should it fail again, that failure is recorded again.
#[utoipa::path(
    post,
    path = "/{workspace}/webhooks/{webhook}/deliveries/{delivery}/retry",
    operation_id = "retry_webhook_delivery",
    tag = "webhooks",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("webhook" = Uuid, Path, description = "Webhook endpoint id"),
        ("delivery" = Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 200, description = "The delivery, pending again", body = Delivery),
        QueryProblems,
        (status = 404, response = NotFound),
        RetryConflict,
    )
)]
pub async fn retry_delivery(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id, delivery)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Json<Delivery>, Problem> {
    let view = state
        .app()
        .webhooks()
        .retry(&caller, WorkspaceId(workspace), WebhookId(id), delivery)
        .await?;
    Ok(Json(Delivery::from(view)))
}
