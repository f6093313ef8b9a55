//! Accounts: your own (`/users/me`: the account, its password, its e-mail verification), password
//! resets by mail, and what platform administrators do with everyone's (`/users`: the list, disabling
//! and enabling, the platform administrator role).
//!
//! A password reset or an e-mail verification travels as a one-time token in a mail; presenting it needs
//! no sign-in, so those routes (and asking for a reset) are public. Asking for a reset is answered 202
//! whether or not the address is registered, and in the same time.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::AccountChange;
use prism_domain::UserId;
use prism_domain::user::{REASON_MAX, UserError};
use prism_domain::values::{Email, check_text};
use prism_projections::UserView;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::Link;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, KnownFormat, Ref, RefOr, Schema};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{Invalid, SessionProblems, opaque_token, pointing, problems, rejection};
use super::page_request;
use crate::auth::Authenticated;
use crate::cursor;
use crate::extract::{JsonBody, Path, Query, parse_json_object};
use crate::fields::{self, TEXT_PATTERN};
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, etag};
use crate::problem::{Problem, ProblemKind};
use crate::responses::{
    BodyProblems, CommandProblems, Found, Linked, ProblemResponse, QueryProblems, own_problem,
};
use crate::{AppState, Routes};

const WHAT: &str = "user";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    User,
    UserPage,
    ChangePassword,
    RequestPasswordReset,
    CompletePasswordReset,
    CompleteEmailVerification,
    DisableUser,
    AccountChanged,
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(me))
        .routes(routes!(list_users))
        .routes(routes!(change_password))
        .routes(routes!(request_password_reset))
        .routes(routes!(complete_password_reset))
        .routes(routes!(send_email_verification))
        .routes(routes!(complete_email_verification))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(grant_platform_admin, revoke_platform_admin))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// A user account, without its credentials.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    /// Normalised: trimmed, lowercase.
    pub email: String,
    pub display_name: String,
    /// `active` or `disabled`.
    #[schema(example = "active")]
    pub status: String,
    pub email_verified: bool,
    pub platform_admin: bool,
    /// False for a user who signs in only through OpenID Connect.
    pub has_password: bool,
    /// No sign-in is accepted before this; a past instant means the lockout is over.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// The account's version; also the `ETag` (`If-Match` of the administrators' commands).
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserView> for User {
    fn from(v: UserView) -> Self {
        Self {
            id: v.id.as_uuid(),
            email: v.email,
            display_name: v.display_name,
            status: v.status,
            email_verified: v.email_verified,
            platform_admin: v.platform_admin,
            has_password: v.has_password,
            locked_until: v.locked_until,
            last_sign_in_at: v.last_sign_in_at,
            version: v.version,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl Linked for User {
    fn links() -> Vec<(&'static str, Link)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
}

/// Your current password and the new one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    #[schema(schema_with = fields::password)]
    pub new_password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestPasswordReset {
    #[schema(schema_with = fields::email)]
    pub email: String,
}

/// A password reset token from the mail, and the new password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletePasswordReset {
    #[schema(schema_with = reset_token)]
    pub token: String,
    #[schema(schema_with = fields::password)]
    pub new_password: String,
}

fn reset_token() -> Schema {
    opaque_token("pwr", "The password reset token from the mail")
}

/// An e-mail verification token from the mail.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteEmailVerification {
    #[schema(schema_with = verification_token)]
    pub token: String,
}

fn verification_token() -> Schema {
    opaque_token("evt", "The e-mail verification token from the mail")
}

/// Why the account is disabled (optional: the body may be left out, or be `null`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableUser {
    #[serde(default)]
    #[schema(schema_with = disable_reason)]
    pub reason: Option<String>,
}

fn disable_reason() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(REASON_MAX))
        .pattern(Some(TEXT_PATTERN))
        .description(Some(format!(
            "Recorded in the event. Up to {REASON_MAX} characters; no control characters except tab and \
             line breaks."
        )))
        .into()
}

/// A recorded change of an account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountChanged {
    pub id: Uuid,
    /// The account's version after the change; also the `ETag`.
    pub version: u64,
    /// Stream sequence of the commit; pass it as `min_sequence` to read this write. When the change
    /// changed nothing, the sequence of the account's last commit.
    pub sequence: u64,
}

impl From<AccountChange> for AccountChanged {
    fn from(c: AccountChange) -> Self {
        Self {
            id: c.user.as_uuid(),
            version: c.version,
            sequence: c.sequence,
        }
    }
}

/// A JSON body the client may leave out (no body at all, or `null`); when it is there, as [`JsonBody`].
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .map(|e| e == "application/json" || (e.starts_with("application/") && e.ends_with("+json")));
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(ProblemKind::PayloadTooLarge, rejection.body_text())
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if json != Some(true) {
            return Err(Problem::new(
                ProblemKind::UnsupportedMediaType,
                "send the request body as JSON with `Content-Type: application/json`, or no body",
            ));
        }
        if bytes.trim_ascii() == b"null" {
            return Ok(Self(T::default()));
        }
        parse_json_object(&bytes).map(Self)
    }
}

// ---------------------------------------------------------------------------------------------------
// Responses

/// `202` with no body.
fn accepted(description: &str) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    BTreeMap::from([(
        "202".to_owned(),
        ResponseBuilder::new().description(description).build().into(),
    )])
}

/// A password reset asked for.
struct ResetAsked;

impl IntoResponses for ResetAsked {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        accepted(
            "Asked. If an active account has this address, a reset token is mailed to it (at most one \
             mail a minute); the answer is the same, and as fast, whether or not one does.",
        )
    }
}

/// A verification mail sent.
struct VerificationSent;

impl IntoResponses for VerificationSent {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        accepted("A verification token is on its way to your address; it replaces a pending one.")
    }
}

/// `204` with no body.
fn no_content(description: &str) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    BTreeMap::from([(
        "204".to_owned(),
        ResponseBuilder::new().description(description).build().into(),
    )])
}

struct PasswordChanged;

impl IntoResponses for PasswordChanged {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        no_content("Changed: sign in with the new password from now on.")
    }
}

struct EmailVerified;

impl IntoResponses for EmailVerified {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        no_content("Verified (or verified already).")
    }
}

/// `200` with the account's new version and the commit's sequence.
struct ChangeRecorded;

impl IntoResponses for ChangeRecorded {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let integer = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
        };
        let response = ResponseBuilder::new()
            .description("Done (or nothing to change).")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("AccountChanged")))
                    .build(),
            )
            .header(
                "ETag",
                HeaderBuilder::new()
                    .schema(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(r#"^"[0-9]+"$"#)),
                    )
                    .description(Some(
                        "The account's version as a strong entity tag; pass it as `If-Match`.",
                    ))
                    .build(),
            )
            .header(
                "Prism-Sequence",
                HeaderBuilder::new()
                    .schema(integer())
                    .description(Some("Stream sequence of the commit."))
                    .build(),
            )
            .build();
        BTreeMap::from([("200".to_owned(), response.into())])
    }
}

/// What the administrators' commands on an account may answer besides their result.
struct AdminProblems;

impl IntoResponses for AdminProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = CommandProblems::responses();
        responses.append(&mut problems(&[
            ProblemResponse::NotFound,
            ProblemResponse::PreconditionFailed,
        ]));
        responses.insert(
            "403".into(),
            own_problem(
                "Only a platform administrator (signed in with a session) may do this.",
                ProblemKind::Forbidden,
            ),
        );
        responses
    }
}

fn changed(change: AccountChange) -> Response {
    let mut response = Json(AccountChanged::from(change)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag(change.version));
    headers.insert(crate::headers::PRISM_SEQUENCE, HeaderValue::from(change.sequence));
    response
}

// ---------------------------------------------------------------------------------------------------
// Your account

/// Your account (signed in with a session or an API key).
#[utoipa::path(
    get,
    path = "/users/me",
    operation_id = "get_me",
    tag = "accounts",
    responses(
        Found<User>,
        (status = 401, description = "Not signed in.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The users read model cannot be reached or has not shown your account \
            yet; retry after `Retry-After` seconds.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Response, Problem> {
    let view = state.app().accounts().me(&caller).await?;
    Ok(([(header::ETAG, etag(view.version))], Json(User::from(view))).into_response())
}

/// Every user, in id order (platform administrators).
#[utoipa::path(
    get,
    path = "/users",
    operation_id = "list_users",
    tag = "accounts",
    params(UserListParams),
    responses((status = 200, description = "One page", body = UserPage), QueryProblems)
)]
pub async fn list_users(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<UserListParams>,
) -> Result<Json<UserPage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let page = state.app().accounts().users(&caller, page).await?;
    Ok(Json(UserPage {
        items: page.items.into_iter().map(User::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// What changing the password may answer besides its result.
struct ChangePasswordProblems;

impl IntoResponses for ChangePasswordProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = BodyProblems::responses();
        responses.append(&mut SessionProblems::responses());
        responses.insert(
            "403".into(),
            own_problem(
                "The current password is wrong (recorded, and counted against sign-in attempts), or the \
                 request was made with an API key rather than a signed-in session.",
                ProblemKind::Forbidden,
            ),
        );
        responses.insert(
            "409".into(),
            own_problem(
                "The account has no password (it signs in through OpenID Connect: ask for a password \
                 reset to set one), or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses.insert(
            "422".into(),
            own_problem(
                "The new password breaks the password policy (`errors[0].pointer` is `/new_password`), or a \
                 field of the body is missing or of the wrong type.",
                ProblemKind::Validation,
            ),
        );
        responses.insert(
            "429".into(),
            own_problem(
                "Too many wrong passwords for this account or from this address; retry later.",
                ProblemKind::TooManyRequests,
            ),
        );
        responses
    }
}

/// Change your password (signed in with a session), giving the current one. Your other sessions go on.
#[utoipa::path(
    post,
    path = "/users/me/password",
    operation_id = "change_password",
    tag = "accounts",
    request_body = ChangePassword,
    responses(PasswordChanged, ChangePasswordProblems)
)]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<ChangePassword>,
) -> Result<StatusCode, Problem> {
    state
        .app()
        .accounts()
        .change_password(&caller, &body.current_password, &body.new_password)
        .await
        .map_err(|e| pointing(e, "/new_password"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the public routes of this module may answer besides their result.
fn public_problems(unprocessable: &str) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let mut responses = BodyProblems::responses();
    responses.insert(
        "401".into(),
        own_problem(
            "No credential is needed here, but one was sent and does not hold.",
            ProblemKind::Unauthorized,
        ),
    );
    responses.insert("422".into(), own_problem(unprocessable, ProblemKind::Validation));
    responses
}

struct ResetRequestProblems;

impl IntoResponses for ResetRequestProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = public_problems(
            "The address is malformed (`errors[0].pointer` is `/email`), or the field is missing or of the \
             wrong type.",
        );
        responses.append(&mut problems(&[ProblemResponse::Unavailable]));
        responses
    }
}

/// Ask for a password reset: if an active account has this address, a token that sets a new password
/// is mailed to it (working for an hour; at most one mail a minute). The answer is 202 whether or not
/// one does, and takes as long. No sign-in needed.
#[utoipa::path(
    post,
    path = "/password-resets",
    operation_id = "request_password_reset",
    tag = "accounts",
    security(()),
    request_body = RequestPasswordReset,
    responses(ResetAsked, ResetRequestProblems)
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<RequestPasswordReset>,
) -> Result<StatusCode, Problem> {
    let mut invalid = Invalid::default();
    invalid.check(|| "/email".into(), Email::parse(&body.email));
    invalid.finish()?;
    state
        .app()
        .accounts()
        .request_password_reset(&caller, &body.email)
        .await
        .map_err(|e| pointing(e, "/email"))?;
    Ok(StatusCode::ACCEPTED)
}

struct TokenProblems;

impl IntoResponses for TokenProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = public_problems(
            "The token does not hold — malformed, unknown, spent, replaced by a newer one, expired, or its \
             account disabled, alike (`errors[0].pointer` is `/token`; every such attempt is recorded) — or \
             a value breaks a rule (`errors[].pointer` locates it), or a field is missing or of the wrong \
             type.",
        );
        responses.append(&mut problems(&[ProblemResponse::Unavailable]));
        responses.insert(
            "409".into(),
            own_problem(
                "Too many concurrent changes to the account; retry.",
                ProblemKind::Conflict,
            ),
        );
        responses
    }
}

/// Set a new password with the reset token from the mail. No sign-in needed: the token is the proof.
/// It also ends a lockout.
#[utoipa::path(
    post,
    path = "/password-resets/complete",
    operation_id = "complete_password_reset",
    tag = "accounts",
    security(()),
    request_body = CompletePasswordReset,
    responses(PasswordChanged, TokenProblems)
)]
pub async fn complete_password_reset(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<CompletePasswordReset>,
) -> Result<StatusCode, Problem> {
    state
        .app()
        .accounts()
        .reset_password(&caller, &body.token, &body.new_password)
        .await
        .map_err(|e| {
            // The account's refusal is about the token; the service's own 422 is the password policy.
            let pointer = if rejection::<UserError>(&e).is_some() {
                "/token"
            } else {
                "/new_password"
            };
            pointing(e, pointer)
        })?;
    Ok(StatusCode::NO_CONTENT)
}

struct SendVerificationProblems;

impl IntoResponses for SendVerificationProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = SessionProblems::responses();
        responses.insert(
            "409".into(),
            own_problem(
                "The address is verified already, or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses
    }
}

/// Mail yourself (signed in with a session) a token that verifies your address; it replaces a pending
/// one and works for a day.
#[utoipa::path(
    post,
    path = "/users/me/email-verification",
    operation_id = "send_email_verification",
    tag = "accounts",
    responses(VerificationSent, SendVerificationProblems)
)]
pub async fn send_email_verification(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<StatusCode, Problem> {
    state.app().accounts().send_verification(&caller).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Verify an address with the token from the mail. No sign-in needed: the token is the proof.
#[utoipa::path(
    post,
    path = "/email-verifications/complete",
    operation_id = "complete_email_verification",
    tag = "accounts",
    security(()),
    request_body = CompleteEmailVerification,
    responses(EmailVerified, TokenProblems)
)]
pub async fn complete_email_verification(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<CompleteEmailVerification>,
) -> Result<StatusCode, Problem> {
    state
        .app()
        .accounts()
        .verify_email(&caller, &body.token)
        .await
        .map_err(|e| pointing(e, "/token"))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------------
// Everyone's accounts (platform administrators)

/// What disabling may answer besides its result.
struct DisableProblems;

impl IntoResponses for DisableProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = AdminProblems::responses();
        responses.append(&mut problems(&[
            ProblemResponse::PayloadTooLarge,
            ProblemResponse::UnsupportedMediaType,
        ]));
        responses.insert(
            "403".into(),
            own_problem(
                "Only a platform administrator may disable another user's account (you may disable your \
                 own, signed in with a session).",
                ProblemKind::Forbidden,
            ),
        );
        responses.insert(
            "409".into(),
            own_problem(
                "The account is disabled already, or is the only admin of an active workspace or the \
                 only owner of a computation (hand them over first), or too many concurrent changes \
                 (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses
    }
}

/// Disable an account: a platform administrator, or the user themself (signed in with a session). Its
/// access tokens, refresh tokens and API keys stop working at once. Refused for the only admin of an
/// active workspace and for the only owner of a computation (`detail` names them). The body may be
/// left out (or be `null`).
#[utoipa::path(
    post,
    path = "/users/{user}/disable",
    operation_id = "disable_user",
    tag = "accounts",
    params(("user" = Uuid, Path, description = "User id"), CommandHeaderParams, ConditionalHeaderParams),
    request_body = Option<DisableUser>,
    responses(ChangeRecorded, DisableProblems)
)]
pub async fn disable_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(user): Path<Uuid>,
    headers: CommandHeaders,
    OptionalJsonBody(body): OptionalJsonBody<DisableUser>,
) -> Result<Response, Problem> {
    let mut invalid = Invalid::default();
    if let Some(reason) = &body.reason {
        invalid.check(
            || "/reason".into(),
            check_text("reason", reason, REASON_MAX, false),
        );
    }
    invalid.finish()?;
    let change = state
        .app()
        .accounts()
        .disable(&caller, &headers.options(WHAT)?, UserId(user), body.reason)
        .await
        .map_err(|e| pointing(e, "/reason"))?;
    Ok(changed(change))
}

struct EnableProblems;

impl IntoResponses for EnableProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = AdminProblems::responses();
        responses.insert(
            "409".into(),
            own_problem(
                "The account is not disabled, or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses
    }
}

/// Enable a disabled account (platform administrators).
#[utoipa::path(
    post,
    path = "/users/{user}/enable",
    operation_id = "enable_user",
    tag = "accounts",
    params(("user" = Uuid, Path, description = "User id"), CommandHeaderParams, ConditionalHeaderParams),
    responses(ChangeRecorded, EnableProblems)
)]
pub async fn enable_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(user): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let change = state
        .app()
        .accounts()
        .enable(&caller, &headers.options(WHAT)?, UserId(user))
        .await?;
    Ok(changed(change))
}

struct GrantProblems;

impl IntoResponses for GrantProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = AdminProblems::responses();
        responses.insert(
            "409".into(),
            own_problem(
                "The account is disabled, or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses
    }
}

/// Make a user a platform administrator (platform administrators). Granting it twice changes nothing.
#[utoipa::path(
    put,
    path = "/users/{user}/platform-admin",
    operation_id = "grant_platform_admin",
    tag = "accounts",
    params(("user" = Uuid, Path, description = "User id"), CommandHeaderParams, ConditionalHeaderParams),
    responses(ChangeRecorded, GrantProblems)
)]
pub async fn grant_platform_admin(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(user): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let change = state
        .app()
        .accounts()
        .grant_platform_admin(&caller, &headers.options(WHAT)?, UserId(user))
        .await?;
    Ok(changed(change))
}

struct RevokeProblems;

impl IntoResponses for RevokeProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = AdminProblems::responses();
        responses.insert(
            "409".into(),
            own_problem(
                "You cannot revoke your own platform administrator role (another administrator must, so \
                 that the platform always keeps one), or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses
    }
}

/// Take the platform administrator role from a user (platform administrators), never from yourself.
/// Revoking it from a user who does not hold it changes nothing.
#[utoipa::path(
    delete,
    path = "/users/{user}/platform-admin",
    operation_id = "revoke_platform_admin",
    tag = "accounts",
    params(("user" = Uuid, Path, description = "User id"), CommandHeaderParams, ConditionalHeaderParams),
    responses(ChangeRecorded, RevokeProblems)
)]
pub async fn revoke_platform_admin(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(user): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let change = state
        .app()
        .accounts()
        .revoke_platform_admin(&caller, &headers.options(WHAT)?, UserId(user))
        .await?;
    Ok(changed(change))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn disable_body(content_type: Option<&str>, body: &'static str) -> Result<DisableUser, Problem> {
        let mut request = Request::builder().method("POST").uri("/users/x/disable");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(axum::body::Body::from(body)).unwrap();
        OptionalJsonBody::<DisableUser>::from_request(request, &())
            .await
            .map(|b| b.0)
    }

    #[tokio::test]
    async fn a_disable_body_may_be_left_out_or_null_but_not_be_anything_else() {
        let json = Some("application/json");
        assert_eq!(disable_body(None, "").await.unwrap().reason, None);
        assert_eq!(disable_body(json, "").await.unwrap().reason, None);
        assert_eq!(disable_body(json, " null ").await.unwrap().reason, None);
        let given = disable_body(json, r#"{"reason": "left"}"#).await.unwrap();
        assert_eq!(given.reason.as_deref(), Some("left"));
        let status = |r: Result<DisableUser, Problem>| r.unwrap_err().status;
        assert_eq!(status(disable_body(None, r#"{"reason": "left"}"#).await), 415);
        assert_eq!(status(disable_body(Some("text/plain"), "null").await), 415);
        assert_eq!(status(disable_body(json, r#"{"why": 1}"#).await), 400);
        assert_eq!(status(disable_body(json, "[]").await), 422);
        assert_eq!(status(disable_body(json, r#"{"reason": 1}"#).await), 422);
    }
}
