//! Runs: a computation's manifest and the participants' consent to it, the dry run that lists what
//! a run would lack, the run itself (request, status, stop) and the workspace's runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use prism_app::{DryRun, ManifestView, RunConnection};
use prism_domain::cvm::CvmSpec;
use prism_domain::run::{ReceiptKind, Run, RunStatus};
use prism_domain::{ComputationId, RunId, WorkspaceId};
use prism_projections::{RunFilter, RunView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::cvms::CreateCvm;
use super::{page_request, parameter_problem};
use crate::auth::Authenticated;
use crate::extract::{JsonBody, Path, Query};
use crate::fields;
use crate::headers::{CommandHeaderParams, CommandHeaders};
use crate::problem::Problem;
use crate::responses::{BodyProblems, ChangeProblems, CommandProblems, NotFound, QueryProblems};
use crate::{AppState, Routes};

const WHAT: &str = "run";

pub fn routes() -> Routes {
    Routes::new()
        .routes(routes!(get_manifest))
        .routes(routes!(consent))
        .routes(routes!(dry_run))
        .routes(routes!(request_run))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(stop_run))
        .routes(routes!(connection))
        .routes(routes!(receipt))
        .routes(routes!(history))
        .routes(routes!(retry))
}

/// Which runs the history counts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only runs of this computation.
    pub computation: Option<Uuid>,
}

/// How many runs were requested on each day (UTC), by the state they are in now; days without runs
/// are left out.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunHistory {
    #[schema(value_type = Vec<Object>)]
    pub days: Vec<prism_projections::RunDayCount>,
}

/// What a participant delivered to the run's agent or received from it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// `algorithm`, `dataset` or `result`.
    #[schema(value_type = String, pattern = "^(algorithm|dataset|result)$", example = "dataset")]
    pub kind: ReceiptKind,
    /// The file name the manifest declares (empty for a result).
    #[serde(default)]
    pub file_name: String,
    /// SHA3-256 (hex) of the bytes delivered or received.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha3_256: String,
}

/// A participant's consent: its signature over `prism-consent-v1:<manifest_id>` (`docs/manifest.md`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// The manifest consented to: it must be the computation's current one.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub manifest_id: String,
    /// The signature, base64.
    #[schema(
        pattern = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        min_length = 4,
        max_length = 4096
    )]
    pub signature: String,
}

/// Where a run's CVM is made; absent: any backend, platform `none` (development), 1 vCPU, 1 GiB,
/// living the computation's run limit (`limits.max_run_seconds`) plus ten minutes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub cvm: Option<CreateCvm>,
}

impl RunRequest {
    /// The CVM the request asks for; `None`: the default for the computation's limits.
    fn into_spec(self) -> Result<Option<CvmSpec>, Problem> {
        self.cvm.map(|cvm| cvm.into_spec()).transpose()
    }
}

/// Why a run is asked to stop.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Why, for the run's record: 1–1024 characters, not only white space, no control characters.
    #[schema(min_length = 1, max_length = 1024)]
    pub reason: String,
}

/// Which runs a list shows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListParams {
    /// Only runs of this computation.
    pub computation: Option<Uuid>,
    /// Only runs in this state.
    #[param(
        value_type = Option<String>,
        pattern = "^(requested|provisioning|agent_connecting|attesting|awaiting_inputs|running|results_ready|completed|stopping|failed|timed_out|cleaning_up|closed)$"
    )]
    pub status: Option<String>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
}

/// One page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<RunView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A run as the log has it now: its state, manifest, CVM spec and CVM, deadline and, once it
/// ended, in which state and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunBody {
    #[schema(value_type = Object)]
    #[serde(flatten)]
    pub run: Run,
}

fn run_response(run: Run, status: StatusCode) -> Response {
    (status, Json(RunBody { run })).into_response()
}

/// The computation's current manifest, its canonical encoding, the message to sign and who has
/// consented (`computation.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/manifest",
    operation_id = "get_manifest",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
    ),
    responses(
        (status = 200, description = "The manifest", body = Object),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn get_manifest(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<ManifestView>, Problem> {
    let view = state
        .app()
        .runs()
        .manifest(&caller, WorkspaceId(workspace), ComputationId(id))
        .await?;
    Ok(Json(view))
}

/// Consent, as the participant the caller is, to runs of the computation's current manifest
/// (`computation.consent`). The signature is checked with the participant's registered key; the
/// answer is the manifest with who has consented. Refused with 409 when `manifest_id` is not the
/// current manifest's (the answer names it), and with 422 when the signature does not verify with
/// the participant's key, or the caller is no participant holding a key.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/consents",
    operation_id = "consent",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
    ),
    request_body = Consent,
    responses(
        (status = 200, description = "The manifest and its consents", body = Object),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
    )
)]
pub async fn consent(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<Consent>,
) -> Result<Json<ManifestView>, Problem> {
    // Unused bits in the last character are let through (RFC 4648 §3.5 lets decoders): the
    // signature's bytes are what they are either way.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let signature = lenient
        .decode(body.signature.trim())
        .map_err(|_| parameter_problem("/signature", "the signature must be base64".into()))?;
    let runs = state.app().runs();
    runs.consent(
        &caller,
        &headers.options("computation")?,
        WorkspaceId(workspace),
        ComputationId(id),
        body.manifest_id,
        signature,
    )
    .await?;
    Ok(Json(
        runs.manifest(&caller, WorkspaceId(workspace), ComputationId(id))
            .await?,
    ))
}

/// What a run of the computation requested now would lack (`computation.run`): participants who
/// have not joined or consented, an undeclared algorithm or datasets, no result consumer, no
/// backend for its CVM. Records nothing. As for `POST /{workspace}/cvms`, the `local` provider offers
/// the platform `none` only (422).
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/dry-run",
    operation_id = "dry_run",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
    ),
    request_body = RunRequest,
    responses(
        (status = 200, description = "What a run would lack", body = Object),
        QueryProblems,
        BodyProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn dry_run(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    JsonBody(body): JsonBody<RunRequest>,
) -> Result<Json<DryRun>, Problem> {
    let spec = body.into_spec()?;
    let dry_run = state
        .app()
        .runs()
        .dry_run(&caller, WorkspaceId(workspace), ComputationId(id), spec)
        .await?;
    Ok(Json(dry_run))
}

/// Run the computation's current manifest (`computation.run`): refused (409) while anything the
/// dry run lists is lacking, consents above all. The run is `requested` when this answers; its
/// process manager provisions the CVM, attests it and sends the agent the manifest. As for
/// `POST /{workspace}/cvms`, the `local` provider offers the platform `none` only (422).
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/runs",
    operation_id = "request_run",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
    ),
    request_body = RunRequest,
    responses(
        (status = 201, description = "The run", body = RunBody),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
    )
)]
pub async fn request_run(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<RunRequest>,
) -> Result<Response, Problem> {
    let spec = body.into_spec()?;
    let executed = state
        .app()
        .runs()
        .request(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            spec,
        )
        .await?;
    Ok(run_response(executed.outcome.state, StatusCode::CREATED))
}

/// The workspace's runs, newest first (`computation.read` on the workspace's computations).
#[utoipa::path(
    get,
    path = "/{workspace}/runs",
    operation_id = "list_runs",
    tag = "runs",
    params(("workspace" = Uuid, Path, description = "Workspace id"), RunListParams),
    responses(
        (status = 200, description = "One page", body = RunPage),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list_runs(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<RunListParams>,
) -> Result<Json<RunPage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    if let Some(status) = &params.status
        && RunStatus::parse(status).is_none_or(|s| s == RunStatus::New)
    {
        return Err(parameter_problem("status", format!("`{status}` is no run state")));
    }
    let filter = RunFilter {
        computation: params.computation.map(ComputationId),
        status: params.status,
        ..Default::default()
    };
    let page = state
        .app()
        .runs()
        .list(&caller, WorkspaceId(workspace), &filter, page)
        .await?;
    Ok(Json(RunPage {
        items: page.items,
        next_cursor: page.next_after.map(crate::cursor::encode),
    }))
}

/// A run as the log has it now (`computation.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/runs/{run}",
    operation_id = "get_run",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
    ),
    responses(
        (status = 200, description = "The run", body = RunBody),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn get_run(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Problem> {
    let run = state
        .app()
        .runs()
        .get(&caller, WorkspaceId(workspace), RunId(id))
        .await?;
    Ok(run_response(run, StatusCode::OK))
}

/// Stop a run (`computation.run`): whatever it is doing ends, the agent's data is wiped, its CVM
/// destroyed and its certificates revoked. Stopping a stopping run changes nothing; one that has
/// ended is 409. A reason of white space only, or with control characters, is 422.
#[utoipa::path(
    post,
    path = "/{workspace}/runs/{run}/stop",
    operation_id = "stop_run",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
        CommandHeaderParams,
    ),
    request_body = StopRequest,
    responses(
        (status = 200, description = "The run", body = RunBody),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
    )
)]
pub async fn stop_run(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<StopRequest>,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .runs()
        .stop(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            RunId(id),
            body.reason,
        )
        .await?;
    Ok(run_response(executed.outcome.state, StatusCode::OK))
}

/// How to reach the run's attested agent (`computation.read`): its address, the name its TLS
/// certificate carries, the certificates it chains to, and the appraisal that let inputs in — the
/// evidence, the verdict and its EAR (verify it with `GET /attestation/jwks.json`) — to check before
/// sending anything. 409 while the run is not attested, or after it stopped taking participants.
#[utoipa::path(
    get,
    path = "/{workspace}/runs/{run}/connection",
    operation_id = "get_run_connection",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
    ),
    responses(
        (status = 200, description = "The agent's connection details", body = Object),
        QueryProblems,
        ChangeProblems,
    )
)]
pub async fn connection(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<RunConnection>, Problem> {
    let connection = state
        .app()
        .runs()
        .connection(&caller, WorkspaceId(workspace), RunId(id))
        .await?;
    Ok(Json(connection))
}

/// Give a receipt, as the participant you are, for what you delivered to the run's agent (the
/// algorithm, a dataset: its declared file name and SHA3-256) or received from it (the result).
/// Refused (422) when the manifest declares no such thing from you, and (409) outside the steps
/// where inputs or results are exchanged. When every result consumer has given one, the run
/// completes.
#[utoipa::path(
    post,
    path = "/{workspace}/runs/{run}/receipts",
    operation_id = "give_run_receipt",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
        CommandHeaderParams,
    ),
    request_body = Receipt,
    responses(
        (status = 200, description = "The run", body = RunBody),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
    )
)]
pub async fn receipt(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<Receipt>,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .runs()
        .receipt(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            RunId(id),
            body.kind,
            body.file_name,
            body.sha3_256,
        )
        .await?;
    Ok(run_response(executed.outcome.state, StatusCode::OK))
}

/// The workspace's runs per day and state (`computation.read`), of one computation with
/// `?computation=`.
#[utoipa::path(
    get,
    path = "/{workspace}/runs/history",
    operation_id = "run_history",
    tag = "runs",
    params(("workspace" = Uuid, Path, description = "Workspace id"), HistoryParams),
    responses(
        (status = 200, description = "Runs per day and state", body = RunHistory),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<RunHistory>, Problem> {
    let days = state
        .app()
        .runs()
        .history(
            &caller,
            WorkspaceId(workspace),
            params.computation.map(ComputationId),
        )
        .await?;
    Ok(Json(RunHistory { days }))
}

/// Run an ended run's computation again (`computation.run`) on a CVM made as that one's was: a new
/// run of the current manifest, naming the one it retries. 409 unless the run failed, timed out or
/// was stopped, or while anything a run needs is lacking (consents to a changed manifest above all).
#[utoipa::path(
    post,
    path = "/{workspace}/runs/{run}/retry",
    operation_id = "retry_run",
    tag = "runs",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
        CommandHeaderParams,
    ),
    responses(
        (status = 201, description = "The new run", body = RunBody),
        CommandProblems,
        ChangeProblems,
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .runs()
        .retry(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            RunId(id),
        )
        .await?;
    Ok(run_response(executed.outcome.state, StatusCode::CREATED))
}
