//! `/workspaces/{workspace}/members`, `/invitations` and `/roles`: who belongs to a workspace, with
//! which roles; the invitations that bring people in; and the workspace's custom roles.
//!
//! An invitation's token is shown once, in the answer to the request that issued it (sending or
//! resending), and is kept nowhere: only its hash is. The invitee, signed in, presents it to
//! `POST /invitations/accept` (or `/reject`).
//!
//! Besides the routes, this module holds what the identity route modules share: collecting invalid
//! values into one 422 with JSON Pointers ([`Invalid`]), the schemas of role names, permissions and
//! tokens, and the response of a secret (`Cache-Control: no-store`).

use std::collections::BTreeMap;
use std::fmt::Display;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::{
    AppError, ErrorKind, Executed, INVITATION_LIFETIME_MAX, Invite, InviteeInput, IssuedInvitation,
};
use prism_domain::access::{Permission, RoleName, Scope, WorkspaceRole as DomainRole};
use prism_domain::values::Email;
use prism_domain::workspace::Workspace;
use prism_domain::{InvitationId, UserId, WorkspaceId};
use prism_projections::{CustomRoleView, InvitationView, MemberView};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::Link;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, KnownFormat, Ref, RefOr, Schema};
use utoipa::{IntoParams, IntoResponses, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::read_options;
use crate::auth::Authenticated;
use crate::command::Resource;
use crate::dto::ReadParams;
use crate::extract::{JsonBody, Path, Query};
use crate::fields;
use crate::headers::{
    CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, IDEMPOTENT_REPLAYED, PRISM_SEQUENCE,
    QueryHeaderParams,
};
use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::responses::{
    BodyProblems, ChangeProblems, Changed, CommandProblems, Linked, NotFound, PreconditionFailed,
    ProblemResponse, QueryProblems, own_problem,
};
use crate::{AppState, Routes};

const WHAT: &str = "workspace";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    WorkspaceRole,
    Member,
    ChangeMemberRole,
    CreateInvitation,
    Invitation,
    IssuedInvitationBody,
    InvitationToken,
    InvitationAnswer,
    CustomRole,
    DefineRole,
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(list_members))
        .routes(routes!(change_member_role, remove_member))
        .routes(routes!(invite, list_invitations))
        .routes(routes!(resend_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
        .routes(routes!(reject_invitation))
        .routes(routes!(my_invitations))
        .routes(routes!(list_roles))
        .routes(routes!(define_role, delete_role))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// A built-in workspace role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    /// Every workspace and computation permission in the workspace.
    Admin,
    /// Sees the workspace, its members and computations, and may create computations.
    Member,
}

impl From<WorkspaceRole> for DomainRole {
    fn from(r: WorkspaceRole) -> Self {
        match r {
            WorkspaceRole::Admin => Self::Admin,
            WorkspaceRole::Member => Self::Member,
        }
    }
}

/// A member of a workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    /// The account's address; empty while the users read model has not shown the account yet.
    pub email: String,
    /// Empty while the users read model has not shown the account yet.
    pub display_name: String,
    /// The built-in role: `admin` or `member`.
    #[schema(example = "member")]
    pub role: String,
    /// Names of the workspace's custom roles the member holds.
    pub custom_roles: Vec<String>,
    /// When the member joined.
    pub since: DateTime<Utc>,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The workspace's version, which is the member's `ETag` (a member is part of its workspace).
    #[serde(skip)]
    workspace_version: u64,
}

impl From<MemberView> for Member {
    fn from(v: MemberView) -> Self {
        Self {
            user_id: v.user_id.as_uuid(),
            email: v.email,
            display_name: v.display_name,
            role: v.role,
            custom_roles: v.custom_roles,
            since: v.since,
            sequence: None,
            workspace_version: 0,
        }
    }
}

impl Resource for Member {
    fn version(&self) -> u64 {
        self.workspace_version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

impl Linked for Member {
    fn links() -> Vec<(&'static str, Link)> {
        Vec::new()
    }
}

/// A member's roles after the change: both are replaced.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"role": "member", "custom_roles": ["auditor"]})))]
pub struct ChangeMemberRole {
    pub role: WorkspaceRole,
    /// The custom roles the member holds after the change (`[]`: none). Each must be defined in the
    /// workspace (422 if not); a name listed twice counts once.
    #[schema(schema_with = role_names)]
    pub custom_roles: Vec<String>,
}

/// Who to invite — a registered user by id (`user_id`) or anyone by address (`email`), exactly one —
/// and with which roles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    #[serde(default, deserialize_with = "present")]
    pub user_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<String>,
    pub role: WorkspaceRole,
    #[serde(default)]
    pub custom_roles: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A field that may be absent but, when present, is not `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl PartialSchema for CreateInvitation {
    fn schema() -> RefOr<Schema> {
        let one_of = json!([{"required": ["user_id"]}, {"required": ["email"]}]);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Who to invite — a registered user by id (`user_id`) or anyone by address (`email`), \
                 exactly one of the two — and with which roles. An address is kept as an address, \
                 even when an account has it; the account with that address accepts it all the same.",
            ))
            .property(
                "user_id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .description(Some("The id of the registered user to invite.")),
            )
            .property("email", fields::email())
            .property("role", Ref::from_schema_name("WorkspaceRole"))
            .required("role")
            .property("custom_roles", role_names())
            .property(
                "expires_at",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some(format!(
                        "When the invitation stops working: in the future, at most {} days ahead. Absent: \
                         {} days from now.",
                        INVITATION_LIFETIME_MAX.num_days(),
                        prism_app::INVITATION_LIFETIME.num_days()
                    ))),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .extensions(Some(Extensions::from_iter([("oneOf", one_of)])))
            .examples([json!({"email": "bob@example.org", "role": "member"})])
            .into()
    }
}

impl ToSchema for CreateInvitation {}

/// An invitation, without its token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The registered user invited; `null` when an address is.
    pub invitee_user_id: Option<Uuid>,
    /// The address invited; `null` when a registered user is.
    pub invitee_email: Option<String>,
    /// The built-in role the invitee gets: `admin` or `member`.
    #[schema(example = "member")]
    pub role: String,
    pub custom_roles: Vec<String>,
    /// `pending`, `expired` (pending, but at or past `expires_at`: it can be resent or revoked),
    /// `accepted`, `rejected` or `revoked`.
    #[schema(example = "pending")]
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub invited_by: String,
    pub invited_at: DateTime<Utc>,
}

impl From<InvitationView> for Invitation {
    fn from(v: InvitationView) -> Self {
        Self {
            id: v.id.0,
            workspace_id: v.workspace_id.as_uuid(),
            invitee_user_id: v.invitee_user.map(|u| u.as_uuid()),
            invitee_email: v.invitee_email,
            role: v.role,
            custom_roles: v.custom_roles,
            status: v.status,
            expires_at: v.expires_at,
            invited_by: v.invited_by,
            invited_at: v.invited_at,
        }
    }
}

/// An invitation as sent or resent, with its token. The token is shown only in this answer and is
/// kept nowhere (only its hash is): pass it on to the invitee, who presents it to
/// `POST /invitations/accept`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = IssuedInvitation)]
pub struct IssuedInvitationBody {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The secret the invitee presents; shown this once.
    #[schema(schema_with = invitation_token)]
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Stream sequence of the command's commit; pass it as `min_sequence` to list the invitation.
    pub sequence: u64,
}

impl IssuedInvitationBody {
    fn new(workspace: Uuid, issued: IssuedInvitation) -> Self {
        Self {
            id: issued.invitation.0,
            workspace_id: workspace,
            token: issued.token,
            expires_at: issued.expires_at,
            sequence: issued.sequence,
        }
    }
}

/// The token of an invitation, presented by the invitee (signed in with a session).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationToken {
    #[schema(schema_with = invitation_token)]
    pub token: String,
}

/// An invitation accepted or declined.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationAnswer {
    pub workspace_id: Uuid,
    pub invitation_id: Uuid,
    /// Stream sequence of the commit; pass it as `min_sequence` to read the workspace as a member.
    pub sequence: u64,
}

impl From<prism_app::InvitationAnswer> for InvitationAnswer {
    fn from(a: prism_app::InvitationAnswer) -> Self {
        Self {
            workspace_id: a.workspace.as_uuid(),
            invitation_id: a.invitation.0,
            sequence: a.sequence,
        }
    }
}

/// A custom role: a named set of permissions that members of the workspace may be given.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomRole {
    pub name: String,
    pub permissions: Vec<String>,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The workspace's version, which is the role's `ETag`.
    #[serde(skip)]
    workspace_version: u64,
}

impl From<CustomRoleView> for CustomRole {
    fn from(v: CustomRoleView) -> Self {
        Self {
            name: v.name,
            permissions: v.permissions,
            sequence: None,
            workspace_version: 0,
        }
    }
}

impl Resource for CustomRole {
    fn version(&self) -> u64 {
        self.workspace_version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

impl Linked for CustomRole {
    fn links() -> Vec<(&'static str, Link)> {
        Vec::new()
    }
}

/// The permissions of a custom role; they replace those it had.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"permissions": ["workspace.read", "computation.read"]})))]
pub struct DefineRole {
    #[schema(schema_with = workspace_permissions)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvitationParams {
    /// Also the accepted, rejected and revoked invitations (default: only the pending ones, expired
    /// ones included).
    pub include_closed: Option<bool>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RolePath {
    /// Workspace id.
    workspace: Uuid,
    #[param(schema_with = role_name)]
    name: String,
}

// ---------------------------------------------------------------------------------------------------
// Shared with the other identity route modules

/// Collects every invalid value of a request, so that one 422 lists them all with JSON Pointers.
#[derive(Debug, Default)]
pub(crate) struct Invalid(Vec<FieldProblem>);

impl Invalid {
    pub(crate) fn push(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldProblem {
            pointer: pointer.into(),
            detail: detail.into(),
        });
    }

    pub(crate) fn check<T, E: Display>(
        &mut self,
        pointer: impl FnOnce() -> String,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.push(pointer(), e.to_string())).ok()
    }

    pub(crate) fn finish(self) -> Result<(), Problem> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(Problem::new(ProblemKind::Validation, self.0[0].detail.clone()).with_errors(self.0)),
            n => Err(
                Problem::new(ProblemKind::Validation, format!("{n} values are invalid")).with_errors(self.0),
            ),
        }
    }
}

/// The problem of `error`; a 422 (a value the service refused) points at `pointer` in the body.
pub(crate) fn pointing(error: AppError, pointer: &str) -> Problem {
    let problem = Problem::from(error);
    if problem.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16()
        && problem.type_uri == ProblemKind::Validation.type_uri()
        && problem.errors.is_empty()
    {
        let detail = problem.detail.clone().unwrap_or_default();
        return problem.with_errors(vec![FieldProblem {
            pointer: pointer.into(),
            detail,
        }]);
    }
    problem
}

/// Checks a time limit of the body; `latest` is how far ahead it may be.
pub(crate) fn check_expiry(
    invalid: &mut Invalid,
    expires_at: Option<DateTime<Utc>>,
    latest: chrono::Duration,
    what: &str,
) {
    let Some(at) = expires_at else { return };
    let now = Utc::now();
    if at <= now {
        invalid.push("/expires_at", format!("{what} must expire in the future"));
    } else if at > now + latest {
        invalid.push(
            "/expires_at",
            format!("{what} may work at most {} days", latest.num_days()),
        );
    }
}

/// Names of custom roles at `base` (`/custom_roles`).
fn check_role_names(invalid: &mut Invalid, base: &str, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        invalid.check(|| format!("{base}/{i}"), RoleName::parse(name));
    }
}

/// Permission names at `base` (`/permissions`): known, and not the platform's.
pub(crate) fn check_permissions(invalid: &mut Invalid, base: &str, names: &[String]) {
    if names.is_empty() {
        invalid.push(base, "at least one permission is needed");
    }
    for (i, name) in names.iter().enumerate() {
        match Permission::parse(name) {
            None => invalid.push(format!("{base}/{i}"), format!("`{name}` is not a permission")),
            Some(p) if p.scope() == Scope::Platform => invalid.push(
                format!("{base}/{i}"),
                format!("`{name}` is a platform permission, which only a platform administrator holds"),
            ),
            Some(_) => {}
        }
    }
}

/// The built-in role names, which no custom role may take.
fn reserved_role_names() -> Vec<String> {
    DomainRole::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .chain(
            prism_domain::access::COMPUTATION_ROLES
                .iter()
                .map(|r| r.to_string()),
        )
        .collect()
}

pub(crate) const ROLE_NAME_PATTERN: &str = r"^[a-z0-9_-]{1,64}$";

/// A custom role's name, as [`RoleName::parse`] accepts it.
pub(crate) fn role_name_builder() -> ObjectBuilder {
    let not = Extensions::from_iter([("not", json!({"enum": reserved_role_names()}))]);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(RoleName::MAX_LEN))
        .pattern(Some(ROLE_NAME_PATTERN))
        .extensions(Some(not))
        .description(Some(format!(
            "A custom role's name: 1–{} lowercase letters, digits, `-` and `_`, and not the name of a \
             built-in role ({}).",
            RoleName::MAX_LEN,
            reserved_role_names().join(", ")
        )))
        .examples(["auditor"])
}

fn role_name() -> Schema {
    role_name_builder().into()
}

fn role_names() -> Schema {
    ArrayBuilder::new()
        .items(role_name_builder())
        .description(Some(
            "Names of custom roles defined in the workspace (422 if one is not); a name listed twice \
             counts once.",
        ))
        .into()
}

/// The permissions a workspace role (custom role, API key) may carry: every one but the platform's.
pub(crate) fn workspace_permissions() -> Schema {
    let names: Vec<&str> = Permission::ALL
        .iter()
        .filter(|p| p.scope() != Scope::Platform)
        .map(|p| p.as_str())
        .collect();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .description(Some(
            "At least one permission of the workspace or its computations (see the permission matrix); \
             a permission listed twice counts once.",
        ))
        .into()
}

fn token_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-9a-f]{{32}}_[A-Za-z0-9_-]{{42}}[AEIMQUYcgkosw048]$")
}

/// An opaque token (`<prefix>_<32 hex digits>_<43 base64url characters>`).
pub(crate) fn opaque_token(prefix: &str, what: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(80))
        .max_length(Some(80))
        .pattern(Some(token_pattern(prefix)))
        .description(Some(format!(
            "{what}: `{prefix}_`, 32 lowercase hexadecimal digits, `_` and 43 base64url characters (80 in \
             all). A token of another form is refused (422)."
        )))
        .into()
}

fn invitation_token() -> Schema {
    opaque_token("inv", "An invitation token")
}

fn header(schema: ObjectBuilder, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

fn sequence_header() -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0)),
        "Stream sequence of the command's commit; pass it as `min_sequence` to read this write.",
    )
}

fn replayed_header() -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["true"])),
        "`true` when this answer repeats the first result of the `Idempotency-Key`.",
    )
}

fn constant_header(value: &str, description: &str) -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([value])),
        description,
    )
}

/// `200`/`201` with a secret in the body: not to be stored by any cache.
pub(crate) fn secret_response<T: ToSchema>(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(T::name())))
                .build(),
        )
        .header(
            "Cache-Control",
            constant_header("no-store", "The body holds a secret: no cache may keep it."),
        )
        .header(
            "Pragma",
            constant_header("no-cache", "For HTTP/1.0 caches, as `Cache-Control`."),
        )
        .header("Prism-Sequence", sequence_header())
        .build()
        .into()
}

/// A response whose body holds a secret: `Cache-Control: no-store` (and `Pragma: no-cache`).
pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `status` with `body` and the commit's sequence.
pub(crate) fn recorded<T: Serialize>(status: StatusCode, sequence: u64, body: T) -> Response {
    (
        status,
        [(PRISM_SEQUENCE, HeaderValue::from(sequence))],
        Json(body),
    )
        .into_response()
}

/// `204` with the commit's sequence.
pub(crate) fn done(sequence: u64, replayed: bool) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(PRISM_SEQUENCE, HeaderValue::from(sequence));
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// A command with nothing to return: `204` with the commit's sequence.
#[derive(Debug)]
pub(crate) struct Done;

impl IntoResponses for Done {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let done = ResponseBuilder::new()
            .description(
                "Done (or nothing to change). Pass `Prism-Sequence` as `min_sequence` to read lists that \
                 show the change.",
            )
            .header("Prism-Sequence", sequence_header())
            .header("Idempotent-Replayed", replayed_header())
            .build();
        BTreeMap::from([("204".to_owned(), done.into())])
    }
}

/// A set of the shared problem responses.
pub(crate) fn problems(list: &[ProblemResponse]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    list.iter()
        .map(|p| (p.status().to_string(), p.reference()))
        .collect()
}

/// What a route for a signed-in session answers besides its result: 401; 403 for an API key (it may
/// not manage its owner's account, keys or invitations); 503.
#[derive(Debug)]
pub(crate) struct SessionProblems;

impl IntoResponses for SessionProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = problems(&[ProblemResponse::Unauthorized, ProblemResponse::Unavailable]);
        responses.insert(
            "403".into(),
            own_problem(
                "This needs a signed-in session (an access token from `POST /oauth/token`): an API key \
                 may not do it.",
                ProblemKind::Forbidden,
            ),
        );
        responses
    }
}

// ---------------------------------------------------------------------------------------------------
// Members

fn members_location(workspace: Uuid) -> String {
    format!("/workspaces/{workspace}/members")
}

/// The members of a workspace, longest-standing first (`members.read`).
#[utoipa::path(
    get,
    path = "/workspaces/{workspace}/members",
    operation_id = "list_members",
    tag = "members",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ReadParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The members, longest-standing first", body = Vec<Member>),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list_members(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Member>>, Problem> {
    let members = state
        .app()
        .memberships()
        .members(
            &caller,
            WorkspaceId(workspace),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(members.into_iter().map(Member::from).collect()))
}

/// Change a member's built-in role and custom roles (`members.manage`). A workspace keeps at least one
/// admin: the last one stays admin (409). `ETag` and `If-Match` are the workspace's version.
#[utoipa::path(
    patch,
    path = "/workspaces/{workspace}/members/{user}",
    operation_id = "change_member_role",
    tag = "members",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("user" = Uuid, Path, description = "The member's user id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = ChangeMemberRole,
    responses(
        Changed<Member>,
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        (status = 422, description = "A value breaks a rule: a field missing or of the wrong type, a \
            value outside the schema, or a custom role the workspace does not define (`errors[].pointer` \
            locates each); or the `Idempotency-Key` was first used with a different request.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn change_member_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, user)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<ChangeMemberRole>,
) -> Result<Response, Problem> {
    let mut invalid = Invalid::default();
    check_role_names(&mut invalid, "/custom_roles", &body.custom_roles);
    invalid.finish()?;
    let executed = state
        .app()
        .memberships()
        .change_role(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            UserId(user),
            body.role.into(),
            body.custom_roles,
        )
        .await
        .map_err(|e| pointing(e, "/custom_roles"))?;
    let read = async {
        let members = state
            .app()
            .memberships()
            .members(&caller, WorkspaceId(workspace), state.after(&executed))
            .await?;
        member_of(members, user, &executed)
    };
    Ok(state
        .respond(&executed, StatusCode::OK, members_location(workspace), read)
        .await)
}

fn member_of(
    members: Vec<MemberView>,
    user: Uuid,
    executed: &Executed<Workspace>,
) -> Result<Member, AppError> {
    let view = members
        .into_iter()
        .find(|m| m.user_id.as_uuid() == user)
        .ok_or_else(|| AppError::new(ErrorKind::Lagging, "the member is not in the read model"))?;
    let mut member = Member::from(view);
    member.workspace_version = executed.outcome.version;
    Ok(member)
}

/// Remove a member (`members.manage`), or leave: a signed-in member may always remove themself (through
/// an API key only with `members.manage`). The last admin can neither leave nor be removed (409).
#[utoipa::path(
    delete,
    path = "/workspaces/{workspace}/members/{user}",
    operation_id = "remove_member",
    tag = "members",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("user" = Uuid, Path, description = "The member's user id (your own to leave)"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Done, CommandProblems, ChangeProblems)
)]
pub async fn remove_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, user)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .memberships()
        .remove(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            UserId(user),
        )
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

// ---------------------------------------------------------------------------------------------------
// Invitations

/// The 201 of an invitation.
struct InvitationSent;

impl IntoResponses for InvitationSent {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "201".to_owned(),
            secret_response::<IssuedInvitationBody>(
                "Sent. The body holds the invitation's `token`, shown this once and kept nowhere: pass it \
                 on to the invitee.",
            ),
        )])
    }
}

/// The 200 of a resent invitation.
struct InvitationResent;

impl IntoResponses for InvitationResent {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "200".to_owned(),
            secret_response::<IssuedInvitationBody>(
                "Resent. The body holds the invitation's new `token`, shown this once and kept nowhere; the \
                 old token stops working.",
            ),
        )])
    }
}

/// Invite a registered user (`user_id`) or an address (`email`) to the workspace (`members.invite`).
/// The answer holds the invitation's token, **shown only this once**: pass it on to the invitee, who
/// signs in and presents it to `POST /invitations/accept`. A retry with the same `Idempotency-Key` cannot
/// show it again and is answered 409 naming the invitation: resend it for a new token.
#[utoipa::path(
    post,
    path = "/workspaces/{workspace}/invitations",
    operation_id = "invite",
    tag = "members",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams, ConditionalHeaderParams),
    request_body = CreateInvitation,
    responses(
        InvitationSent,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        (status = 409, description = "The invitee is a member already or has a pending invitation (resend \
            it), the workspace is archived, this `Idempotency-Key` sent an invitation already (its token is \
            not shown again), or too many concurrent changes (retry).",
            body = Problem, content_type = "application/problem+json"),
        (status = 412, response = PreconditionFailed),
        (status = 422, description = "A value breaks a rule: a field missing or of the wrong type, a value \
            outside the schema, neither or both of `user_id` and `email`, an `expires_at` not in the future \
            or more than 30 days ahead, or a custom role the workspace does not define (`errors[].pointer` \
            locates each); or the `Idempotency-Key` was first used with a different request.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn invite(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CreateInvitation>,
) -> Result<Response, Problem> {
    let mut invalid = Invalid::default();
    let invitee = match (body.user_id, body.email) {
        (Some(user), None) => Some(InviteeInput::User(UserId(user))),
        (None, Some(email)) => invalid
            .check(|| "/email".into(), Email::parse(&email))
            .map(|_| InviteeInput::Email(email)),
        (None, None) => {
            invalid.push("", "name who to invite: `user_id` or `email`");
            None
        }
        (Some(_), Some(_)) => {
            invalid.push("", "name one invitee: `user_id` or `email`, not both");
            None
        }
    };
    check_role_names(&mut invalid, "/custom_roles", &body.custom_roles);
    check_expiry(
        &mut invalid,
        body.expires_at,
        INVITATION_LIFETIME_MAX,
        "an invitation",
    );
    invalid.finish()?;
    let Some(invitee) = invitee else {
        return Err(Problem::new(ProblemKind::Validation, "name one invitee"));
    };
    let input = Invite {
        invitee,
        role: body.role.into(),
        custom_roles: body.custom_roles,
        expires_at: body.expires_at,
    };
    let issued = state
        .app()
        .memberships()
        .invite(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), input)
        .await
        .map_err(|e| invite_problem(e, "/custom_roles"))?;
    let sequence = issued.sequence;
    Ok(no_store(recorded(
        StatusCode::CREATED,
        sequence,
        IssuedInvitationBody::new(workspace, issued),
    )))
}

/// A 422 of the domain's about an invitation points at what it is about: the expiry or the roles.
fn invite_problem(error: AppError, roles: &str) -> Problem {
    let expiry = matches!(
        rejection::<prism_domain::workspace::WorkspaceError>(&error),
        Some(prism_domain::workspace::WorkspaceError::ExpiryInThePast)
    ) || (error.kind == ErrorKind::Invalid && error.source.is_none());
    pointing(error, if expiry { "/expires_at" } else { roles })
}

/// The domain's refusal inside `error`, when it is one of `E`.
pub(crate) fn rejection<E: std::error::Error + 'static>(error: &AppError) -> Option<&E> {
    error.source.as_deref().and_then(|s| s.downcast_ref::<E>())
}

/// The invitations of a workspace in the order they were sent (`members.read`): the pending ones
/// (expired ones as `expired`), and with `include_closed=true` the answered and revoked ones too.
#[utoipa::path(
    get,
    path = "/workspaces/{workspace}/invitations",
    operation_id = "list_invitations",
    tag = "members",
    params(("workspace" = Uuid, Path, description = "Workspace id"), InvitationParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The invitations, in the order they were sent", body = Vec<Invitation>),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<InvitationParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Invitation>>, Problem> {
    let invitations = state
        .app()
        .memberships()
        .invitations(
            &caller,
            WorkspaceId(workspace),
            params.include_closed.unwrap_or(false),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(invitations.into_iter().map(Invitation::from).collect()))
}

/// Resend a pending (or expired) invitation (`members.invite`): a new token, working for 7 days; the old
/// token stops working. The answer holds the new token, **shown only this once**.
#[utoipa::path(
    post,
    path = "/workspaces/{workspace}/invitations/{invitation}/resend",
    operation_id = "resend_invitation",
    tag = "members",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("invitation" = Uuid, Path, description = "Invitation id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(
        InvitationResent,
        CommandProblems,
        ChangeProblems,
        (status = 409, description = "The invitation was answered or revoked, the workspace is archived, \
            this `Idempotency-Key` resent it already (the token is not shown again: resend it again), or \
            too many concurrent changes (retry).",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend_invitation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, invitation)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let issued = state
        .app()
        .memberships()
        .resend(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            InvitationId(invitation),
        )
        .await?;
    let sequence = issued.sequence;
    Ok(no_store(recorded(
        StatusCode::OK,
        sequence,
        IssuedInvitationBody::new(workspace, issued),
    )))
}

/// Revoke a pending invitation (`members.invite`): its token stops working.
#[utoipa::path(
    delete,
    path = "/workspaces/{workspace}/invitations/{invitation}",
    operation_id = "revoke_invitation",
    tag = "members",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("invitation" = Uuid, Path, description = "Invitation id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(
        Done,
        CommandProblems,
        ChangeProblems,
        (status = 409, description = "The invitation was answered or revoked already, the workspace is \
            archived, or too many concurrent changes (retry).",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, invitation)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .memberships()
        .revoke(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            InvitationId(invitation),
        )
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

/// What answering an invitation may answer besides its result.
struct AnswerProblems;

impl IntoResponses for AnswerProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut responses = problems(&[
            ProblemResponse::BadRequest,
            ProblemResponse::PayloadTooLarge,
            ProblemResponse::UnsupportedMediaType,
        ]);
        responses.append(&mut SessionProblems::responses());
        responses.insert(
            "409".into(),
            own_problem(
                "The invitation was answered or revoked already, you are a member already, the workspace \
                 is archived, or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        );
        responses.insert(
            "422".into(),
            own_problem(
                "The token does not hold: malformed, unknown, replaced by a resend, expired, or for someone \
                 else (`errors[0].pointer` is `/token`); or a field of the body missing or of the wrong \
                 type. Every such attempt is recorded.",
                ProblemKind::Validation,
            ),
        );
        responses
    }
}

/// Accept an invitation: the signed-in invitee (a session, not an API key) presents its token and
/// becomes a member with the invitation's roles.
#[utoipa::path(
    post,
    path = "/invitations/accept",
    operation_id = "accept_invitation",
    tag = "members",
    request_body = InvitationToken,
    responses(
        (status = 200, description = "Accepted: you are a member", body = InvitationAnswer,
            headers(("Prism-Sequence" = u64, description = "Stream sequence of the commit"))),
        AnswerProblems,
    )
)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<InvitationToken>,
) -> Result<Response, Problem> {
    let answer = state
        .app()
        .memberships()
        .accept(&caller, &body.token)
        .await
        .map_err(|e| pointing(e, "/token"))?;
    Ok(recorded(
        StatusCode::OK,
        answer.sequence,
        InvitationAnswer::from(answer),
    ))
}

/// Decline an invitation: the signed-in invitee (a session, not an API key) presents its token.
#[utoipa::path(
    post,
    path = "/invitations/reject",
    operation_id = "reject_invitation",
    tag = "members",
    request_body = InvitationToken,
    responses(
        (status = 200, description = "Declined", body = InvitationAnswer,
            headers(("Prism-Sequence" = u64, description = "Stream sequence of the commit"))),
        AnswerProblems,
    )
)]
pub async fn reject_invitation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<InvitationToken>,
) -> Result<Response, Problem> {
    let answer = state
        .app()
        .memberships()
        .reject(&caller, &body.token)
        .await
        .map_err(|e| pointing(e, "/token"))?;
    Ok(recorded(
        StatusCode::OK,
        answer.sequence,
        InvitationAnswer::from(answer),
    ))
}

/// The invitations you (signed in with a session) can accept now, to your user id or your address, in
/// the order they were sent. The tokens are not shown: they reach you from whoever invited you.
#[utoipa::path(
    get,
    path = "/users/me/invitations",
    operation_id = "my_invitations",
    tag = "members",
    responses(
        (status = 200, description = "Your pending invitations", body = Vec<Invitation>),
        SessionProblems,
    )
)]
pub async fn my_invitations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Invitation>>, Problem> {
    let invitations = state.app().memberships().my_invitations(&caller).await?;
    Ok(Json(invitations.into_iter().map(Invitation::from).collect()))
}

// ---------------------------------------------------------------------------------------------------
// Custom roles

fn roles_location(workspace: Uuid) -> String {
    format!("/workspaces/{workspace}/roles")
}

/// A workspace's custom roles, by name (`members.read`).
#[utoipa::path(
    get,
    path = "/workspaces/{workspace}/roles",
    operation_id = "list_roles",
    tag = "members",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ReadParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The custom roles, by name", body = Vec<CustomRole>),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list_roles(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<CustomRole>>, Problem> {
    let roles = state
        .app()
        .memberships()
        .roles(
            &caller,
            WorkspaceId(workspace),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(roles.into_iter().map(CustomRole::from).collect()))
}

/// A role name in the path that cannot name a custom role is malformed (400), like any other.
fn role_in_path(name: &str) -> Result<(), Problem> {
    RoleName::parse(name).map(|_| ()).map_err(|e| {
        Problem::bad_request(format!(
            "{e}: a custom role's name is 1–64 lowercase letters, digits, `-` and `_`, and not a \
             built-in role's"
        ))
    })
}

/// Define a custom role, or replace its permissions (`roles.manage`). Members who hold it have the new
/// permissions from their next request. `ETag` and `If-Match` are the workspace's version.
#[utoipa::path(
    put,
    path = "/workspaces/{workspace}/roles/{name}",
    operation_id = "define_role",
    tag = "members",
    params(RolePath, CommandHeaderParams, ConditionalHeaderParams),
    request_body = DefineRole,
    responses(Changed<CustomRole>, CommandProblems, BodyProblems, ChangeProblems)
)]
pub async fn define_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(RolePath { workspace, name }): Path<RolePath>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<DefineRole>,
) -> Result<Response, Problem> {
    role_in_path(&name)?;
    let mut invalid = Invalid::default();
    check_permissions(&mut invalid, "/permissions", &body.permissions);
    invalid.finish()?;
    let executed = state
        .app()
        .memberships()
        .define_role(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            &name,
            body.permissions,
        )
        .await
        .map_err(|e| pointing(e, "/permissions"))?;
    let read = async {
        let roles = state
            .app()
            .memberships()
            .roles(&caller, WorkspaceId(workspace), state.after(&executed))
            .await?;
        let view = roles
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| AppError::new(ErrorKind::Lagging, "the role is not in the read model"))?;
        let mut role = CustomRole::from(view);
        role.workspace_version = executed.outcome.version;
        Ok(role)
    };
    Ok(state
        .respond(&executed, StatusCode::OK, roles_location(workspace), read)
        .await)
}

/// Delete a custom role (`roles.manage`); no member may hold it (409: take it from them first).
#[utoipa::path(
    delete,
    path = "/workspaces/{workspace}/roles/{name}",
    operation_id = "delete_role",
    tag = "members",
    params(RolePath, CommandHeaderParams, ConditionalHeaderParams),
    responses(
        Done,
        CommandProblems,
        ChangeProblems,
        (status = 409, description = "Members hold the role (take it from them first), the workspace is \
            archived, or too many concurrent changes (retry).",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The workspace defines no role of this name; or the \
            `Idempotency-Key` was first used with a different request.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(RolePath { workspace, name }): Path<RolePath>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    role_in_path(&name)?;
    let executed = state
        .app()
        .memberships()
        .delete_role(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), &name)
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;
    use crate::strings;

    #[test]
    fn the_role_name_schema_is_the_domains_rule() {
        let pattern = Regex::new(ROLE_NAME_PATTERN).unwrap();
        let reserved = reserved_role_names();
        let alphabet: Vec<char> = "az09_-A .é\u{0}".chars().collect();
        let mut samples = strings::over(&alphabet, 3, 5000, 70);
        samples.extend(reserved.iter().cloned());
        samples.extend(["a".repeat(64), "a".repeat(65), "auditor".into()]);
        for s in samples {
            let schema = pattern.is_match(&s) && !reserved.contains(&s);
            assert_eq!(schema, RoleName::parse(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn the_token_pattern_matches_issued_tokens_only() {
        let pattern = Regex::new(&token_pattern("inv")).unwrap();
        let id = "0190f1c2a3b47c8d9e0f1a2b3c4d5e6f";
        let secret = "q3XbAbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_A";
        assert_eq!(secret.len(), 43);
        assert!(pattern.is_match(&format!("inv_{id}_{secret}")));
        // The last character carries four bits and two zero bits.
        assert!(!pattern.is_match(&format!("inv_{id}_{}B", &secret[..42])));
        assert!(!pattern.is_match(&format!("pak_{id}_{secret}")));
        assert!(!pattern.is_match(&format!("inv_{}_{secret}", id.to_uppercase())));
    }

    #[test]
    fn an_invitation_names_exactly_one_invitee_and_never_null() {
        let parse =
            |v: serde_json::Value| crate::extract::parse_json::<CreateInvitation>(v.to_string().as_bytes());
        assert!(parse(json!({"email": "a@b", "role": "member"})).is_ok());
        let problem = parse(json!({"email": null, "role": "member"})).unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].pointer, "/email");
        assert_eq!(
            parse(json!({"email": "a@b", "role": "owner"}))
                .unwrap_err()
                .status,
            422
        );
        assert_eq!(
            parse(json!({"email": "a@b", "role": "member", "x": 1}))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn invalid_values_are_collected_with_pointers() {
        let mut invalid = Invalid::default();
        check_role_names(
            &mut invalid,
            "/custom_roles",
            &["ok".into(), "Admin".into(), "admin".into()],
        );
        check_permissions(
            &mut invalid,
            "/permissions",
            &["platform.operate".into(), "nope".into(), "workspace.read".into()],
        );
        let problem = invalid.finish().unwrap_err();
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/custom_roles/1",
                "/custom_roles/2",
                "/permissions/0",
                "/permissions/1"
            ]
        );
        assert_eq!(problem.status, 422);
    }
}
