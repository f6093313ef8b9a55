//! `/users/me/api-keys`: personal API keys. A key acts for its owner in one workspace with some of the
//! owner's permissions; its secret is shown once, when it is created, and only its hash is kept.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use prism_app::{IssuedApiKey, NewApiKey};
use prism_domain::api_key::{MAX_LIFETIME, NAME_MAX};
use prism_domain::values::check_text;
use prism_domain::{ApiKeyId, WorkspaceId};
use prism_projections::ApiKeyView;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::{IntoResponses, OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{
    Done, Invalid, SessionProblems, check_expiry, check_permissions, done, no_store, opaque_token, pointing,
    recorded, secret_response, workspace_permissions,
};
use crate::auth::Authenticated;
use crate::extract::{JsonBody, Path};
use crate::fields::NAME_PATTERN;
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams};
use crate::problem::{Problem, ProblemKind};
use crate::responses::{BodyProblems, ChangeProblems, CommandProblems, NotFound, own_problem};
use crate::{AppState, Routes};

const WHAT: &str = "API key";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(CreateApiKey, ApiKey, IssuedApiKeyBody)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// A new personal API key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "workspace": "0190f1c2-a3b4-7c8d-9e0f-1a2b3c4d5e6f",
    "name": "CI pipeline",
    "permissions": ["workspace.read", "computation.read"]
})))]
pub struct CreateApiKey {
    /// The workspace the key acts in (and only there).
    pub workspace: Uuid,
    #[schema(schema_with = key_name)]
    pub name: String,
    /// What the key may do; you must hold each of these in the workspace yourself.
    #[schema(schema_with = workspace_permissions)]
    pub permissions: Vec<String>,
    /// When the key stops working: in the future, at most 365 days ahead. Absent: 365 days from now.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

fn key_name() -> utoipa::openapi::Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .pattern(Some(NAME_PATTERN))
        .description(Some(format!(
            "What the key is for. 1–{NAME_MAX} characters, not all white space (surrounding white space is \
             trimmed); no control characters except tab and line breaks."
        )))
        .examples(["CI pipeline"])
        .into()
}

/// A personal API key, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub permissions: Vec<String>,
    /// `active` or `revoked` (an active key no longer authenticates from `expires_at` on).
    #[schema(example = "active")]
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl From<ApiKeyView> for ApiKey {
    fn from(v: ApiKeyView) -> Self {
        Self {
            id: v.id.0,
            workspace_id: v.workspace_id.as_uuid(),
            name: v.name,
            permissions: v.permissions,
            status: v.status,
            expires_at: v.expires_at,
            created_at: v.created_at,
            revoked_at: v.revoked_at,
            version: v.version,
        }
    }
}

/// A key as created, with its secret: send it as `Authorization: Bearer <key>`. The key is shown only
/// in this answer and is kept nowhere (only its hash is).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = IssuedApiKey)]
pub struct IssuedApiKeyBody {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub permissions: Vec<String>,
    /// The secret bearer credential; shown this once.
    #[schema(schema_with = api_key_secret)]
    pub key: String,
    pub expires_at: DateTime<Utc>,
    /// Stream sequence of the command's commit; pass it as `min_sequence` to read this write.
    pub sequence: u64,
}

fn api_key_secret() -> utoipa::openapi::Schema {
    opaque_token("pak", "A personal API key")
}

/// The 201 of a new key.
struct KeyCreated;

impl IntoResponses for KeyCreated {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "201".to_owned(),
            secret_response::<IssuedApiKeyBody>(
                "Created. The body holds the `key`, shown this once and kept nowhere: store it now.",
            ),
        )])
    }
}

/// The 403 of a key: an API key cannot make keys, and a key carries only permissions its owner holds.
struct KeyForbidden;

impl IntoResponses for KeyForbidden {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "403".to_owned(),
            own_problem(
                "This needs a signed-in session (an access token), not an API key; or you do not hold one \
                 of the requested permissions in the workspace (`detail` names it).",
                ProblemKind::Forbidden,
            ),
        )])
    }
}

/// Create a personal API key for yourself (signed in with a session: a key cannot make keys), acting in
/// one workspace with some of your permissions there. The answer holds the `key`, **shown only this
/// once**. A retry with the same `Idempotency-Key` cannot show it again and is answered 409 naming the
/// key: revoke it and create another.
#[utoipa::path(
    post,
    path = "/users/me/api-keys",
    operation_id = "create_api_key",
    tag = "api-keys",
    params(CommandHeaderParams),
    request_body = CreateApiKey,
    responses(
        KeyCreated,
        CommandProblems,
        BodyProblems,
        KeyForbidden,
        (status = 404, response = NotFound),
        (status = 409, description = "This `Idempotency-Key` created a key already (its secret is not shown \
            again: revoke it and create another), or too many concurrent changes (retry).",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value breaks a rule: a field missing or of the wrong type, a value \
            outside the schema, or an `expires_at` not in the future or more than 365 days ahead \
            (`errors[].pointer` locates each); or the `Idempotency-Key` was first used with a different \
            request.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<Response, Problem> {
    let mut invalid = Invalid::default();
    invalid.check(
        || "/name".into(),
        check_text("name", body.name.trim(), NAME_MAX, true),
    );
    check_permissions(&mut invalid, "/permissions", &body.permissions);
    check_expiry(&mut invalid, body.expires_at, MAX_LIFETIME, "an API key");
    invalid.finish()?;
    let input = NewApiKey {
        workspace: WorkspaceId(body.workspace),
        name: body.name.clone(),
        permissions: body.permissions.clone(),
        expires_at: body.expires_at,
    };
    let issued: IssuedApiKey = state
        .app()
        .api_keys()
        .create(&caller, &headers.options(WHAT)?, input)
        .await
        .map_err(|e| pointing(e, "/expires_at"))?;
    let sequence = issued.sequence;
    let body = IssuedApiKeyBody {
        id: issued.id.0,
        workspace_id: body.workspace,
        name: body.name.trim().to_owned(),
        permissions: body.permissions,
        key: issued.key,
        expires_at: issued.expires_at,
        sequence,
    };
    Ok(no_store(recorded(StatusCode::CREATED, sequence, body)))
}

/// Your own API keys (signed in with a session), revoked and expired ones included, oldest first. The
/// secrets are not shown.
#[utoipa::path(
    get,
    path = "/users/me/api-keys",
    operation_id = "list_api_keys",
    tag = "api-keys",
    responses(
        (status = 200, description = "Your keys, oldest first", body = Vec<ApiKey>),
        SessionProblems,
    )
)]
pub async fn list_api_keys(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<ApiKey>>, Problem> {
    let keys = state.app().api_keys().list(&caller).await?;
    Ok(Json(keys.into_iter().map(ApiKey::from).collect()))
}

/// Revoke an API key: it stops working at once. Its owner (signed in with a session) may, and a
/// platform administrator; to anyone else the key does not exist (404). Revoking a revoked key changes
/// nothing.
#[utoipa::path(
    delete,
    path = "/users/me/api-keys/{key}",
    operation_id = "revoke_api_key",
    tag = "api-keys",
    params(
        ("key" = Uuid, Path, description = "The key's id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Done, CommandProblems, ChangeProblems, SessionProblems)
)]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(key): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .api_keys()
        .revoke(&caller, &headers.options(WHAT)?, ApiKeyId(key))
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}
