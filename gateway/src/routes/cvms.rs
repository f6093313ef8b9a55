//! `/{workspace}/cvms`: a workspace's confidential VMs. Asking for one records the request (`creating`);
//! the provisioner then chooses a backend and has it made, and the CVM's agent dials in (`starting`,
//! `online`, `offline`). Destroying one is asked for here and carried out by the provisioner
//! (`destroying`, `destroyed`). A bring-your-own machine enrols its agent with a one-time token.
//!
//! A CVM on the platform `none` runs without hardware protection: every answer that shows one says
//! so (`insecure`, `warning`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::{AppError, Caller, Enrolment, Executed, ReadOptions};
use prism_domain::backend::BackendError;
use prism_domain::cvm::{
    ConfidentialPlatform, CvmError, CvmSpec, MEMORY_MAX_MIB, MEMORY_MIN_MIB, TTL_MAX_SECONDS,
    TTL_MIN_SECONDS, VCPUS_MAX,
};
use prism_domain::{BackendId, CvmId, WorkspaceId};
use prism_projections::{CvmFilter, CvmView};
use serde::{Deserialize, Serialize};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::Link;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response as OpenApiResponse};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::backends::{INSECURE_WARNING, check_labels, labels_builder, platform_builder, whole};
use super::members::{Invalid, no_store, opaque_token, rejection, secret_response};
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
    BodyProblems, CommandProblems, Created, Found, Linked, NotFound, QueryProblems, link, own_problem,
};
use crate::{AppState, Routes};

const WHAT: &str = "CVM";

/// The states a CVM passes through, as lists filter them.
const STATUSES: [&str; 7] = [
    "creating",
    "starting",
    "online",
    "offline",
    "destroying",
    "destroyed",
    "failed",
];

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    CreateCvm,
    Provider,
    Cvm,
    CvmPage,
    CvmBackend,
    CvmCost,
    CvmStatistics,
    CvmDescription,
    EnrolmentBody
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(create, list))
        .routes(routes!(get, destroy))
        .routes(routes!(enrol))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// Which kind of backend should run a CVM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The local emulated agent (platform `none` only: no hardware protection).
    Local,
    /// A Cocos manager.
    CocosManager,
    /// A machine its owner runs (bring your own).
    Byo,
    /// Whichever fits best.
    #[default]
    Any,
}

impl Provider {
    fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::CocosManager => "cocos_manager",
            Self::Byo => "byo",
            Self::Any => prism_domain::cvm::ANY_PROVIDER,
        }
    }
}

/// A CVM to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "provider": "cocos_manager",
    "vcpus": 2,
    "memory_mib": 4096,
    "platform": "sev_snp",
    "ttl_seconds": 86400,
    "labels": {"region": "eu-west"}
})))]
pub struct CreateCvm {
    /// Which kind of backend should run it; absent: `any`.
    #[serde(default)]
    pub provider: Provider,
    /// Virtual CPUs.
    #[schema(minimum = 1, maximum = 256, example = 2)]
    #[serde(deserialize_with = "whole")]
    pub vcpus: u32,
    /// Memory, in MiB.
    #[schema(minimum = 256, maximum = 4_194_304, example = 4096)]
    #[serde(deserialize_with = "whole")]
    pub memory_mib: u64,
    #[schema(schema_with = platform)]
    pub platform: ConfidentialPlatform,
    /// How long it may live, in seconds (one minute to 30 days); it is destroyed after.
    #[schema(minimum = 60, maximum = 2_592_000, example = 86400)]
    #[serde(deserialize_with = "whole")]
    pub ttl_seconds: u64,
    #[serde(default)]
    #[schema(schema_with = labels)]
    pub labels: BTreeMap<String, String>,
}

fn platform() -> Schema {
    platform_builder()
        .description(Some(
            "The confidential platform to run on: `sev_snp` (AMD SEV-SNP), `tdx` (Intel TDX), or `none` \
             (no hardware protection: development only). The `local` provider offers `none` only.",
        ))
        .examples(["sev_snp"])
        .into()
}

fn labels() -> Schema {
    labels_builder("Labels its backend must carry with these values (e.g. `region=eu-west`).").into()
}

impl CreateCvm {
    /// The spec, once each value the domain would refuse is found here with its pointer (so one answer
    /// lists them all); the domain decides again.
    pub(crate) fn into_spec(self) -> Result<CvmSpec, Problem> {
        let mut invalid = Invalid::default();
        if self.vcpus == 0 || self.vcpus > VCPUS_MAX {
            invalid.push("/vcpus", CvmError::Vcpus { max: VCPUS_MAX }.to_string());
        }
        if !(MEMORY_MIN_MIB..=MEMORY_MAX_MIB).contains(&self.memory_mib) {
            let error = CvmError::Memory {
                min: MEMORY_MIN_MIB,
                max: MEMORY_MAX_MIB,
            };
            invalid.push("/memory_mib", error.to_string());
        }
        if !(TTL_MIN_SECONDS..=TTL_MAX_SECONDS).contains(&self.ttl_seconds) {
            let error = CvmError::Ttl {
                max_days: TTL_MAX_SECONDS / 86_400,
            };
            invalid.push("/ttl_seconds", error.to_string());
        }
        // The emulated agent protects nothing: no backend of this provider could ever place the CVM.
        if self.provider == Provider::Local && self.platform.is_confidential() {
            invalid.push("/platform", BackendError::LocalIsInsecure.to_string());
        }
        check_labels(&mut invalid, "/labels", &self.labels);
        invalid.finish()?;
        Ok(CvmSpec {
            provider: self.provider.as_str().to_owned(),
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            platform: self.platform,
            ttl_seconds: self.ttl_seconds,
            labels: self.labels,
        })
    }
}

/// A CVM as the read model shows it, with what it costs and how it has fared.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cvm {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// `creating` (asked for; a backend is chosen and makes it), `starting` (made; its agent is
    /// expected), `online`, `offline` (its agent is away), `destroying`, `destroyed`, or `failed`.
    #[schema(example = "creating")]
    pub status: String,
    /// The kind of backend asked for: `local`, `cocos_manager`, `byo` or `any`.
    #[schema(example = "cocos_manager")]
    pub provider: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// `sev_snp`, `tdx` or `none`.
    #[schema(example = "sev_snp")]
    pub platform: String,
    pub ttl_seconds: u64,
    /// Labels its backend must carry.
    pub labels: BTreeMap<String, String>,
    /// `true` when it runs on the platform `none`: nothing protects its memory.
    pub insecure: bool,
    /// Present (`insecure: no hardware protection`) exactly when `insecure` is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "insecure: no hardware protection")]
    pub warning: Option<String>,
    /// The backend chosen to run it, once there is one.
    pub backend: Option<CvmBackend>,
    pub cost: CvmCost,
    pub statistics: CvmStatistics,
    /// The machine as its backend describes it, once it has.
    pub description: Option<CvmDescription>,
    /// The attestation policy it was launched with (JSON text, as the backend reports it), once known.
    pub attestation_policy: Option<String>,
    /// Who asked for it (the actor recorded in the event).
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// When its TTL ends; it is destroyed then.
    pub expires_at: DateTime<Utc>,
    /// When its backend made it.
    pub started_at: Option<DateTime<Utc>>,
    /// Why it is destroyed: `requested`, `ttl_expired`, `run_ended` or `failed`.
    pub destroy_reason: Option<String>,
    pub destroy_requested_at: Option<DateTime<Utc>>,
    pub destroyed_at: Option<DateTime<Utc>>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Aggregate version; also the `ETag`.
    pub version: u64,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Where a CVM runs and why there.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CvmBackend {
    /// The backend's id (see `GET /{workspace}/backends/{backend}`).
    pub id: Uuid,
    /// Why this backend was chosen (placement: platform, labels, health, free share), once it was.
    pub reason: Option<String>,
    /// The backend's own name for the machine (a manager's VM id), once made.
    pub backend_ref: Option<String>,
    /// Where participants reach its agent (`host:port`), when known.
    pub agent_address: Option<String>,
}

/// What a CVM costs, in millionths of a currency unit; all absent when its backend declares no price.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CvmCost {
    /// Per hour, at its backend's price.
    pub hourly_micros: Option<u64>,
    /// So far: the hourly price for the time since it was started, until it was destroyed (or now).
    pub accrued_micros: Option<u64>,
    /// For its whole TTL.
    pub ttl_estimate_micros: Option<u64>,
}

/// How a CVM's agent has fared.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CvmStatistics {
    /// Seconds its agent has been connected, all connections counted (the current one up to now).
    pub uptime_seconds: u64,
    /// Since when its agent is connected; absent while it is not.
    pub online_since: Option<DateTime<Utc>>,
    /// How often its agent went away.
    pub disconnections: u32,
    /// Messages received from its agent and log forwarder.
    pub messages_received: u64,
    /// When its agent was last heard from.
    pub last_heard_at: Option<DateTime<Utc>>,
    /// The state its agent last reported (e.g. `running`).
    pub agent_state: Option<String>,
}

/// The machine as its backend describes it (a Cocos manager's `CVMInfo`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CvmDescription {
    pub ovmf_version: String,
    pub cpu_count: u32,
    pub cpu_type: String,
    pub kernel_cmdline: String,
    pub eos_version: String,
}

/// One page of CVMs, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CvmPage {
    pub items: Vec<Cvm>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a bring-your-own machine needs to join: redeem `token` at `download_url` (`POST`, body
/// `{"token": …}`, no sign-in) for its agent's certificate and key, then have its agent dial the
/// platform's agents' channel with `cvm_id` as its `job-id`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Enrolment)]
pub struct EnrolmentBody {
    /// The id the agent sends as `job-id`.
    pub cvm_id: Uuid,
    /// The serial number of the agent's certificate, lowercase hexadecimal.
    #[schema(example = "4f0c2a9be3d1775e0c2b9a41d8e6f301")]
    pub serial: String,
    /// Works once, until `expires_at` (ten minutes); shown this once.
    #[schema(schema_with = download_token)]
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Where the token is redeemed: `POST` with `{"token": …}`.
    #[schema(example = "https://prism.example.org/certs/download")]
    pub download_url: String,
}

fn download_token() -> Schema {
    opaque_token("cdt", "A certificate download token")
}

/// Millionths charged at `hourly` for `seconds`.
fn cost_of(hourly: u64, seconds: u64) -> u64 {
    let micros = u128::from(hourly) * u128::from(seconds) / 3600;
    u64::try_from(micros).unwrap_or(u64::MAX)
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_seconds()).unwrap_or(0)
}

impl Cvm {
    /// The CVM as of `now` (uptime and accrued cost grow with it).
    fn of(v: CvmView, now: DateTime<Utc>) -> Self {
        let insecure = !v.spec.platform.is_confidential();
        let ran_until = v.destroyed_at.unwrap_or(now);
        let cost = CvmCost {
            hourly_micros: v.hourly_cost_micros,
            accrued_micros: v.hourly_cost_micros.map(|hourly| {
                v.started_at
                    .map_or(0, |started| cost_of(hourly, seconds_between(started, ran_until)))
            }),
            ttl_estimate_micros: v
                .hourly_cost_micros
                .map(|hourly| cost_of(hourly, v.spec.ttl_seconds)),
        };
        let statistics = CvmStatistics {
            uptime_seconds: v
                .online_seconds
                .saturating_add(v.online_since.map_or(0, |since| seconds_between(since, now))),
            online_since: v.online_since,
            disconnections: v.disconnections,
            messages_received: v.messages_received,
            last_heard_at: v.last_heard_at,
            agent_state: v.agent_state,
        };
        let backend = v.backend_id.map(|id| CvmBackend {
            id: id.as_uuid(),
            reason: v.backend_reason,
            backend_ref: v.backend_ref,
            agent_address: v.agent_address,
        });
        let (description, attestation_policy) = match v.description {
            Some(d) => (
                Some(CvmDescription {
                    ovmf_version: d.ovmf_version,
                    cpu_count: d.cpu_count,
                    cpu_type: d.cpu_type,
                    kernel_cmdline: d.kernel_cmdline,
                    eos_version: d.eos_version,
                }),
                d.attestation_policy,
            ),
            None => (None, None),
        };
        Self {
            id: v.id.as_uuid(),
            workspace_id: v.workspace_id.as_uuid(),
            status: v.status,
            provider: v.spec.provider,
            vcpus: v.spec.vcpus,
            memory_mib: v.spec.memory_mib,
            platform: v.spec.platform.as_str().to_owned(),
            ttl_seconds: v.spec.ttl_seconds,
            labels: v.spec.labels,
            insecure,
            warning: insecure.then(|| INSECURE_WARNING.to_owned()),
            backend,
            cost,
            statistics,
            description,
            attestation_policy,
            requested_by: v.requested_by,
            requested_at: v.requested_at,
            expires_at: v.expires_at,
            started_at: v.started_at,
            destroy_reason: v.destroy_reason,
            destroy_requested_at: v.destroy_requested_at,
            destroyed_at: v.destroyed_at,
            failure: v.failure,
            updated_at: v.updated_at,
            version: v.version,
            sequence: None,
        }
    }
}

impl Resource for Cvm {
    fn version(&self) -> u64 {
        self.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

impl Linked for Cvm {
    fn links() -> Vec<(&'static str, Link)> {
        let ids = [("workspace", "/workspace_id"), ("cvm", "/id")];
        vec![
            ("GetCvm", link("get_cvm", &ids)),
            ("DestroyCvm", link("destroy_cvm", &ids)),
            ("EnrolCvm", link("enrol_cvm", &ids)),
        ]
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CvmListParams {
    /// Only CVMs in this state.
    #[param(value_type = Option<String>, pattern = "^(creating|starting|online|offline|destroying|destroyed|failed)$")]
    pub status: Option<String>,
    /// Only CVMs on this backend.
    pub backend_id: Option<Uuid>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

/// The problem of `error`: a value the domain refused points at its field.
fn refused(error: AppError) -> Problem {
    let pointer = match rejection::<CvmError>(&error) {
        Some(CvmError::Provider) => "/provider",
        Some(CvmError::Vcpus { .. }) => "/vcpus",
        Some(CvmError::Memory { .. }) => "/memory_mib",
        Some(CvmError::Ttl { .. }) => "/ttl_seconds",
        Some(CvmError::Label(_)) => "/labels",
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

/// Where the platform is reached, as the request reached it: the scheme and authority of an absolute
/// request URI (HTTP/2), else the `Host` header, over HTTPS when a proxy in front says so.
fn public_base(uri: &axum::http::Uri, headers: &HeaderMap) -> String {
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        return format!("{scheme}://{authority}");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

// ---------------------------------------------------------------------------------------------------
// Responses

/// The 422 of a new CVM: the rule no schema states.
struct SpecProblems;

impl IntoResponses for SpecProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(
                "A value breaks a rule (`errors[].pointer` locates each): a field missing or of the wrong \
                 type, an unknown `provider` or `platform`, a value outside the schema; the `local` \
                 provider with a confidential platform (it offers `none` only); or the \
                 `Idempotency-Key` was first used with a different request.",
                ProblemKind::Validation,
            ),
        )])
    }
}

/// The 409 of a new CVM.
struct CreateConflict;

impl IntoResponses for CreateConflict {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "409".to_owned(),
            own_problem(
                "The workspace is archived (it runs no new CVMs), or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        )])
    }
}

/// The 202 of a destruction: the CVM, now `destroying`, or the commit when the read model is slower.
struct DestroyAccepted;

impl IntoResponses for DestroyAccepted {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        let text = |description: &str| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)))
                .description(Some(description))
                .build()
        };
        let body = OneOfBuilder::new()
            .item(Ref::from_schema_name("Cvm"))
            .item(Ref::from_schema_name("CommandAccepted"));
        let accepted = ResponseBuilder::new()
            .description(
                "Accepted: the provisioner destroys the machine. The body is the CVM as the read model \
                 shows it (`destroying`; `destroyed` or `failed` ones are unchanged), or, when the read \
                 model is slower than a few seconds, the commit (`CommandAccepted`).",
            )
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(body)).build(),
            )
            .header("Content-Location", text("The CVM the body is."))
            .header("Location", text("The CVM, when the body is the commit."))
            .header(
                "ETag",
                text("The CVM's version as a strong entity tag; pass it as `If-Match`."),
            )
            .header(
                "Prism-Sequence",
                text("Stream sequence of the command's commit; pass it as `min_sequence`."),
            )
            .header(
                "Idempotent-Replayed",
                text("`true` when this answer repeats the first result of the `Idempotency-Key`."),
            )
            .build();
        BTreeMap::from([("202".to_owned(), accepted.into())])
    }
}

/// The 404 and 409 of a command on an existing CVM.
struct CvmProblems;

impl IntoResponses for CvmProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "404".to_owned(),
                own_problem(
                    "No such CVM in this workspace (or you have no part in the workspace).",
                    ProblemKind::NotFound,
                ),
            ),
            (
                "409".to_owned(),
                own_problem("Too many concurrent changes (retry).", ProblemKind::Conflict),
            ),
            (
                "412".to_owned(),
                own_problem(
                    "`If-Match` does not name the CVM's current version (its `ETag`).",
                    ProblemKind::PreconditionFailed,
                ),
            ),
        ])
    }
}

/// The 201 of an enrolment, which holds a secret.
struct Enrolled;

impl IntoResponses for Enrolled {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "201".to_owned(),
            secret_response::<EnrolmentBody>(
                "The one-time token, shown this once: hand it to the machine now.",
            ),
        )])
    }
}

/// The 404 and 409 of an enrolment.
struct EnrolProblems;

impl IntoResponses for EnrolProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "404".to_owned(),
                own_problem(
                    "No such CVM in this workspace (or you have no part in the workspace).",
                    ProblemKind::NotFound,
                ),
            ),
            (
                "409".to_owned(),
                own_problem(
                    "The CVM is not started (`starting`, `online` or `offline`), or its agent has no \
                     active certificate yet (retry shortly).",
                    ProblemKind::Conflict,
                ),
            ),
        ])
    }
}

fn location(workspace: Uuid, id: &str) -> String {
    format!("/{workspace}/cvms/{id}")
}

async fn respond(
    state: &AppState,
    caller: &Caller,
    workspace: Uuid,
    executed: &Executed<prism_domain::cvm::Cvm>,
    status: StatusCode,
) -> Response {
    let read = async {
        let id = CvmId(executed.id.parse().map_err(AppError::internal)?);
        let view = state
            .app()
            .cvms()
            .get(caller, WorkspaceId(workspace), id, state.after(executed))
            .await?;
        Ok(Cvm::of(view, Utc::now()))
    };
    state
        .respond(executed, status, location(workspace, &executed.id), read)
        .await
}

// ---------------------------------------------------------------------------------------------------
// Handlers

/// Ask for a CVM in the workspace (`cvms.create`). It is `creating` when this answers: the
/// provisioner chooses a backend (`backend.reason` says why) and has it made.
#[utoipa::path(
    post,
    path = "/{workspace}/cvms",
    operation_id = "create_cvm",
    tag = "cvms",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = CreateCvm,
    responses(
        Created<Cvm>,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        CreateConflict,
        SpecProblems,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CreateCvm>,
) -> Result<Response, Problem> {
    let spec = body.into_spec()?;
    let executed = state
        .app()
        .cvms()
        .create(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), spec)
        .await
        .map_err(refused)?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::CREATED).await)
}

/// The workspace's CVMs, oldest first (`cvms.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/cvms",
    operation_id = "list_cvms",
    tag = "cvms",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CvmListParams, QueryHeaderParams),
    responses(
        (status = 200, description = "One page", body = CvmPage),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<CvmListParams>,
    headers: HeaderMap,
) -> Result<Json<CvmPage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    if let Some(status) = &params.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(parameter_problem(
            "status",
            format!("`{status}` is no CVM state: {}", STATUSES.join(", ")),
        ));
    }
    let filter = CvmFilter {
        status: params.status,
        backend: params.backend_id.map(BackendId),
    };
    let page = state
        .app()
        .cvms()
        .list(
            &caller,
            WorkspaceId(workspace),
            &filter,
            page,
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    let now = Utc::now();
    Ok(Json(CvmPage {
        items: page.items.into_iter().map(|v| Cvm::of(v, now)).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// A CVM of the workspace (`cvms.read`): its state, backend and why, cost so far, its agent's
/// statistics, and the machine as its backend describes it.
#[utoipa::path(
    get,
    path = "/{workspace}/cvms/{cvm}",
    operation_id = "get_cvm",
    tag = "cvms",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("cvm" = Uuid, Path, description = "CVM id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(Found<Cvm>, QueryProblems, (status = 404, response = NotFound))
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
        .cvms()
        .get(
            &caller,
            WorkspaceId(workspace),
            CvmId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok((
        [(header::ETAG, etag(view.version))],
        Json(Cvm::of(view, Utc::now())),
    )
        .into_response())
}

/// Destroy a CVM (`cvms.destroy`): the provisioner removes the machine. A failed CVM may be destroyed
/// too, to clean up what it left; destroying one that is destroying or destroyed changes nothing.
#[utoipa::path(
    delete,
    path = "/{workspace}/cvms/{cvm}",
    operation_id = "destroy_cvm",
    tag = "cvms",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("cvm" = Uuid, Path, description = "CVM id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(DestroyAccepted, CommandProblems, CvmProblems)
)]
pub async fn destroy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .cvms()
        .destroy(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            CvmId(id),
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::ACCEPTED).await)
}

/// Enrol a bring-your-own machine's agent (`cvms.create` and `certificates.issue`): a one-time token
/// with which the machine fetches its agent's certificate and key, without signing in, within ten
/// minutes. Asking again gives another token (an earlier one still works once until it expires).
#[utoipa::path(
    post,
    path = "/{workspace}/cvms/{cvm}/enrolment",
    operation_id = "enrol_cvm",
    tag = "cvms",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("cvm" = Uuid, Path, description = "CVM id"),
    ),
    responses(Enrolled, CommandProblems, EnrolProblems)
)]
pub async fn enrol(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let enrolment: Enrolment = state
        .app()
        .cvms()
        .enrol(&caller, WorkspaceId(workspace), CvmId(id), ReadOptions::default())
        .await?;
    let body = EnrolmentBody {
        cvm_id: enrolment.cvm.as_uuid(),
        serial: enrolment.serial.to_string(),
        token: enrolment.token,
        expires_at: enrolment.expires_at,
        download_url: format!("{}/certs/download", public_base(&uri, &headers)),
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

#[cfg(test)]
mod tests {
    use prism_domain::cvm::MachineDescription;

    use serde_json::json;

    use super::*;

    fn body(json: serde_json::Value) -> Result<CreateCvm, Problem> {
        crate::extract::parse_json_object(json.to_string().as_bytes())
    }

    fn view(platform: ConfidentialPlatform) -> CvmView {
        let now = Utc::now();
        CvmView {
            id: CvmId(Uuid::nil()),
            workspace_id: WorkspaceId(Uuid::nil()),
            spec: CvmSpec {
                provider: "any".into(),
                vcpus: 2,
                memory_mib: 2048,
                platform,
                ttl_seconds: 7200,
                labels: BTreeMap::new(),
            },
            status: "online".into(),
            backend_id: Some(BackendId(Uuid::nil())),
            backend_reason: Some("the largest free share".into()),
            hourly_cost_micros: Some(3600),
            backend_ref: Some("vm-1".into()),
            agent_address: None,
            requested_by: "user:x".into(),
            requested_at: now,
            expires_at: now,
            started_at: Some(now - chrono::Duration::hours(1)),
            online_since: Some(now - chrono::Duration::seconds(30)),
            online_seconds: 100,
            disconnections: 1,
            last_heard_at: Some(now),
            messages_received: 7,
            agent_state: Some("running".into()),
            destroy_reason: None,
            destroy_requested_at: None,
            destroyed_at: None,
            failure: None,
            description: Some(MachineDescription {
                cpu_count: 2,
                attestation_policy: Some("{}".into()),
                ..Default::default()
            }),
            attestation_outcome: None,
            attested_at: None,
            updated_at: now,
            version: 4,
        }
    }

    #[test]
    fn cost_and_uptime_are_as_of_now() {
        let v = view(ConfidentialPlatform::SevSnp);
        let now = v.updated_at;
        let cvm = Cvm::of(v, now);
        assert_eq!(cvm.cost.hourly_micros, Some(3600));
        assert_eq!(cvm.cost.accrued_micros, Some(3600));
        assert_eq!(cvm.cost.ttl_estimate_micros, Some(7200));
        assert_eq!(cvm.statistics.uptime_seconds, 130);
        assert!(!cvm.insecure && cvm.warning.is_none());
        assert_eq!(cvm.attestation_policy.as_deref(), Some("{}"));
        assert_eq!(cvm.description.unwrap().cpu_count, 2);
    }

    #[test]
    fn a_cvm_without_hardware_protection_is_labelled_insecure() {
        let v = view(ConfidentialPlatform::None);
        let now = v.updated_at;
        let json = serde_json::to_value(Cvm::of(v, now)).unwrap();
        assert_eq!(json["insecure"], true);
        assert_eq!(json["warning"], INSECURE_WARNING);
    }

    #[test]
    fn refusals_point_at_their_fields() {
        let problem = body(json!({
            "provider": "local", "vcpus": 0, "memory_mib": 1, "platform": "tdx", "ttl_seconds": 1,
            "labels": {"": "x"}
        }))
        .unwrap()
        .into_spec()
        .unwrap_err();
        let pointers: Vec<&str> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/vcpus", "/memory_mib", "/ttl_seconds", "/platform", "/labels/"]
        );
        for (field, value) in [("provider", "vm"), ("platform", "sgx")] {
            let mut request = json!({"vcpus": 1, "memory_mib": 512, "platform": "none", "ttl_seconds": 60});
            request[field] = json!(value);
            let problem = body(request).unwrap_err();
            assert_eq!(problem.status, 422);
            assert_eq!(problem.errors[0].pointer, format!("/{field}"));
        }
        let problem =
            body(json!({"vcpus": 1, "memory_mib": 512, "platform": "none", "ttl_seconds": 60, "x": 1}))
                .unwrap_err();
        assert_eq!(problem.status, 400);
    }

    #[test]
    fn the_download_url_is_where_the_request_went() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "prism.example.org".parse().unwrap());
        let origin: axum::http::Uri = "/x".parse().unwrap();
        assert_eq!(public_base(&origin, &headers), "http://prism.example.org");
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(public_base(&origin, &headers), "https://prism.example.org");
        let absolute: axum::http::Uri = "https://api.example.org:8443/x".parse().unwrap();
        assert_eq!(public_base(&absolute, &headers), "https://api.example.org:8443");
    }
}
