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

use crate::auth::{Authenticated, Unauthenticated};
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
        .routes(routes!(oidc_authorize))
        .routes(routes!(oidc_callback))
}

/// Binds a sign-in with the OpenID provider to the browser that began it (against login CSRF: a
/// callback URL made by someone else's sign-in is refused in this browser).
const OIDC_STATE_COOKIE: &str = "prism_oidc_state";

/// Sign in with the platform's OpenID Connect provider: redirects the browser there (authorization
/// code with PKCE). The provider sends it back to `/oauth/oidc/callback`.
#[utoipa::path(
    get,
    path = "/oauth/oidc/authorize",
    operation_id = "oidc_authorize",
    tag = "identity",
    security(()),
    responses(
        (status = 302, description = "To the provider's authorization endpoint",
            headers(("Location" = String, description = "The provider's authorization URL"),
                    ("Set-Cookie" = String, description = "Ties the callback to this browser"))),
        (status = 404, description = "No OpenID Connect provider is configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn oidc_authorize(State(state): State<AppState>) -> Result<Response, Problem> {
    let redirect = state.app().identity().oidc_begin()?;
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&redirect.url).map_err(|e| Problem::internal(&e))?,
    );
    let secure = if state.app().identity().served_over_https() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{OIDC_STATE_COOKIE}={}; Path=/oauth/oidc; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        redirect.state,
        prism_app::PENDING_LIFETIME.as_secs()
    );
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| Problem::internal(&e))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The provider's answer (RFC 6749 §4.1.2, RFC 9207 `iss`).
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OidcCallbackParams {
    pub state: String,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
    pub session_state: Option<String>,
}

/// Where the provider sends the browser back: completes the sign-in and answers the platform's tokens,
/// as `/oauth/token` does.
#[utoipa::path(
    get,
    path = "/oauth/oidc/callback",
    operation_id = "oidc_callback",
    tag = "identity",
    security(()),
    params(OidcCallbackParams),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Not a callback of a sign-in begun in this browser, or neither `code` nor `error`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The provider refused, the sign-in expired, or the account cannot sign in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No OpenID Connect provider is configured", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn oidc_callback(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    crate::extract::Query(params): crate::extract::Query<OidcCallbackParams>,
) -> Result<Response, Problem> {
    let bound = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == OIDC_STATE_COOKIE && value == params.state);
    if !bound {
        // Checked before anything else: the state may be someone else's.
        state.app().identity().oidc_begin_check()?;
        return Err(Problem::bad_request(
            "this sign-in was not begun in this browser (no matching state cookie): begin again at /oauth/oidc/authorize",
        ));
    }
    let callback = prism_app::OidcCallback {
        state: params.state,
        code: params.code,
        error: params.error.map(|e| match params.error_description {
            Some(description) => format!("{e}: {description}"),
            None => e,
        }),
        iss: params.iss,
    };
    let tokens = state.app().identity().oidc_finish(&caller, callback).await?;
    let mut response = Json(TokenResponse::from(tokens)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("prism_oidc_state=; Path=/oauth/oidc; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    Ok(response)
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
    /// The API key's id (`client_credentials`); accepted and ignored for the other grants.
    pub client_id: Option<String>,
    /// The whole API key (`client_credentials`).
    pub client_secret: Option<String>,
}

/// The grants this endpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Signs in with `username` (the e-mail address) and `password`.
    Password,
    /// Spends `refresh_token` for a new pair.
    RefreshToken,
    /// A personal API key as client credentials: `client_id` (the key's id) and `client_secret` (the
    /// whole `pak_` key), in the body or with HTTP Basic authentication.
    ClientCredentials,
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

/// Sign in: the `password`, `refresh_token` and `client_credentials` grants.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "token",
    tag = "identity",
    security(()),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed request, an unknown grant type, or a grant without the fields it needs (`username` and `password`; `refresh_token`; `client_id` and `client_secret`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong credentials, a locked or disabled account, or a refresh token that does not hold", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not form-encoded", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Unauthenticated(caller): Unauthenticated,
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
        GrantType::ClientCredentials => {
            let (id, secret) = match basic_credentials(&headers)? {
                Some(pair) => pair,
                None => (
                    request.client_id.clone().ok_or_else(|| missing("client_id"))?,
                    request
                        .client_secret
                        .clone()
                        .ok_or_else(|| missing("client_secret"))?,
                ),
            };
            identity.client_credentials_grant(&caller, &id, &secret).await?
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

/// Client credentials sent with HTTP Basic authentication (RFC 6749 §2.3.1: form-encoded, then
/// base64), when they are.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Problem> {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || Problem::new(ProblemKind::Unauthorized, "malformed Basic client credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
            .ok_or_else(malformed)
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
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
