//! Sign-in and accounts: the OAuth 2.0 token endpoint (RFC 6749), the access-token signing keys
//! (RFC 7517 JWKS), registration, and signing out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_app::{Registration, Tokens};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::extract::JsonBody;
use crate::fields;
use crate::problem::{Problem, ProblemKind};
use crate::responses::{BodyProblems, CommandProblems};
use crate::{AppState, Routes};

#[derive(OpenApi)]
#[openapi(components(schemas(TokenRequest, GrantType, TokenResponse, Register, RegisteredUser)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(token))
        .routes(routes!(jwks))
        .routes(routes!(register))
        .routes(routes!(sign_out))
}

/// A token request (`application/x-www-form-urlencoded`, RFC 6749 §4.3 and §6).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub grant_type: GrantType,
    /// The e-mail address (`password` grant).
    pub username: Option<String>,
    /// `password` grant.
    pub password: Option<String>,
    /// `refresh_token` grant.
    pub refresh_token: Option<String>,
    /// Accepted and ignored: an access token always carries the user's own permissions.
    pub scope: Option<String>,
    /// Accepted and ignored for the `password` and `refresh_token` grants (public clients).
    pub client_id: Option<String>,
}

/// The grants this endpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Signs in with `username` (the e-mail address) and `password`.
    Password,
    /// Spends `refresh_token` for a new pair.
    RefreshToken,
}

/// RFC 6749 §5.1.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenResponse {
    /// An ES256 JWT (`typ` `at+jwt`); verify it with the keys at `/.well-known/jwks.json`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds the access token is valid for.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Spend it once at this endpoint (`grant_type=refresh_token`) for a new pair; presenting a spent
    /// one ends the whole session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

/// Sign in: the `password` and `refresh_token` grants.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "token",
    tag = "identity",
    security(()),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed request, an unknown grant type, or a grant without the fields it needs (`username` and `password`, or `refresh_token`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong credentials, a locked or disabled account, or a refresh token that does not hold", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not form-encoded", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "send the token request form-encoded (`application/x-www-form-urlencoded`), as RFC 6749 asks",
        ));
    }
    let request: TokenRequest = serde_urlencoded::from_bytes(&body)
        .map_err(|e| Problem::bad_request(format!("malformed token request: {e}")))?;
    let missing = |field: &str| Problem::bad_request(format!("this grant needs `{field}`"));
    let identity = state.app().identity();
    let tokens = match request.grant_type {
        GrantType::Password => {
            let username = request.username.as_deref().ok_or_else(|| missing("username"))?;
            let password = request.password.as_deref().ok_or_else(|| missing("password"))?;
            identity.password_grant(&caller, username, password).await?
        }
        GrantType::RefreshToken => {
            let refresh = request
                .refresh_token
                .as_deref()
                .ok_or_else(|| missing("refresh_token"))?;
            identity.refresh_grant(&caller, refresh).await?
        }
    };
    let mut response = Json(TokenResponse::from(tokens)).into_response();
    // RFC 6749 §5.1: tokens must not be cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The public keys that verify access tokens (RFC 7517). A key stays listed until every token it
/// signed has expired.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "identity",
    security(()),
    responses((status = 200, description = "The JSON Web Key Set", body = Object))
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, Problem> {
    let mut response = Json(state.app().identity().jwks()?).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    Ok(response)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"email": "ada@example.org", "display_name": "Ada", "password": "correct horse battery staple"})))]
pub struct Register {
    #[schema(schema_with = fields::email)]
    pub email: String,
    #[schema(schema_with = fields::display_name)]
    pub display_name: String,
    #[schema(schema_with = fields::password)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisteredUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
}

/// Register an account; sign in with it at `/oauth/token`.
#[utoipa::path(
    post,
    path = "/users",
    operation_id = "register",
    tag = "identity",
    security(()),
    request_body = Register,
    responses(
        (status = 201, description = "Registered", body = RegisteredUser),
        CommandProblems,
        BodyProblems,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<Register>,
) -> Result<Response, Problem> {
    let registration = Registration {
        email: body.email,
        display_name: body.display_name.clone(),
        password: body.password,
    };
    let email = registration.email.to_lowercase();
    let id = state.app().identity().register(&caller, registration).await?;
    let mut response = (
        StatusCode::CREATED,
        Json(RegisteredUser {
            id: id.as_uuid(),
            email,
            display_name: body.display_name.trim().to_owned(),
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/users/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Sign out: the session of this access token ends, with its refresh token and its access tokens.
#[utoipa::path(
    post,
    path = "/users/me/sign-out",
    operation_id = "sign_out",
    tag = "identity",
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "Not a signed-in session (an API key)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_out(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<StatusCode, Problem> {
    if caller.user().is_none() {
        return Err(Problem::new(ProblemKind::Unauthorized, "sign in first"));
    }
    state.app().identity().sign_out(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
