//! `/{workspace}/computations`: computations defined in a workspace.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_app::{AppError, Caller, ChangeOutcome, Executed, ExportedComputation};
use prism_domain::computation::{Change, ChangeThreshold, ComputationImport};
use prism_domain::{BackendId, ComputationId, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::link::Link;
use utoipa::{IntoResponses, OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::attestation::AttestationPolicy;
use super::governance::Threshold;
use super::{page_request, read_options};
use crate::auth::Authenticated;
use crate::cursor;
use crate::dto::{
    ArchiveParams, Asset, Computation, ComputationPage, CreateComputation, ListParams, Participant,
    ReadParams, Role, UpdateComputation,
};
use crate::extract::{JsonBody, Path, Query, from_json_value};
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag};
use crate::problem::{Problem, ProblemKind};
use crate::responses::{
    BodyProblems, ChangeProblems, Changed, CommandProblems, Created, Found, Linked, NotFound, QueryProblems,
    link, own_problem,
};
use crate::{AppState, Routes, fields};

const WHAT: &str = "computation";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    Computation,
    ComputationPage,
    Participant,
    Asset,
    Role,
    ComputationDocument,
    DocumentOrigin
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(create, list))
        .routes(routes!(get, update, archive))
        .routes(routes!(export))
        .routes(routes!(import))
}

fn location(workspace: Uuid, id: &str) -> String {
    format!("/{workspace}/computations/{id}")
}

impl Linked for Computation {
    fn links() -> Vec<(&'static str, Link)> {
        let ids = [("workspace", "/workspace_id"), ("computation", "/id")];
        vec![
            ("GetComputation", link("get_computation", &ids)),
            ("UpdateComputation", link("update_computation", &ids)),
            ("ArchiveComputation", link("archive_computation", &ids)),
            ("ComputationReport", link("computation_report", &ids)),
        ]
    }
}

/// The 422 of a definition (new, or as a change leaves it): the rules no schema can state.
struct DefinitionProblems;

impl IntoResponses for DefinitionProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let description = "The definition breaks a rule. Besides a field of the body missing or of the \
            wrong type, or a value outside the constraints of the schema (`errors[].pointer` locates each), \
            a definition (as a change leaves it) must:\n\n\
            * have at least one participant with the `owner` role;\n\
            * list each participant once (by `id`; an address and the id of its account are one person), \
              with at least one role, built-in or custom;\n\
            * name by id only registered users, and give only custom roles the workspace defines;\n\
            * give a `public_key` to every `algorithm_provider`, `dataset_provider` and `result_consumer`, \
              and only keys Prism accepts (see `Participant.public_key`);\n\
            * name as the algorithm's `provider` a participant with the `algorithm_provider` role, and as \
              each dataset's a participant with the `dataset_provider` role;\n\
            * list each dataset digest once, and each dataset file name once (the agent tells datasets \
              apart by name);\n\
            * name an asset (`asset_id`) only where a link put it, exactly as it put it: assets are linked \
              with `POST /{workspace}/computations/{computation}/assets`.\n\n\
            Also 422: the `Idempotency-Key` was first used with a different request.";
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(description, ProblemKind::Validation),
        )])
    }
}

/// Define a computation in a workspace.
#[utoipa::path(
    post,
    path = "/{workspace}/computations",
    operation_id = "create_computation",
    tag = "computations",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = CreateComputation,
    responses(
        Created<Computation>,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        DefinitionProblems,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    // Read through `from_json_value`: a whole number sent as a float (`limits.max_run_seconds`
    // of `600.0`) is an integer to JSON Schema.
    let definition = from_json_value::<CreateComputation>(body)?.into_definition()?;
    let executed = state
        .app()
        .computations()
        .create(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            definition,
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::CREATED).await)
}

/// List a workspace's computations, oldest first.
#[utoipa::path(
    get,
    path = "/{workspace}/computations",
    operation_id = "list_computations",
    tag = "computations",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ListParams, QueryHeaderParams),
    responses(
        (status = 200, description = "One page", body = ComputationPage),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Json<ComputationPage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let page = state
        .app()
        .computations()
        .list(
            &caller,
            WorkspaceId(workspace),
            page,
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(ComputationPage {
        items: page.items.into_iter().map(Computation::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// Get a computation.
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}",
    operation_id = "get_computation",
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(Found<Computation>, QueryProblems, (status = 404, response = NotFound))
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
        .computations()
        .get(
            &caller,
            WorkspaceId(workspace),
            ComputationId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok((
        [(header::ETAG, etag(view.version))],
        Json(Computation::from(view)),
    )
        .into_response())
}

/// Change a computation's definition. Absent fields keep their value; lists replace the whole list.
///
/// Once every participant with a public key has signed its manifest, a change of the manifest (assets,
/// participants, their roles or keys) is not applied when asked for: it is recorded as a proposal that
/// the participants approve or veto (`docs/governance.md`), and the answer is `202` naming it at
/// `Location`. A new name or description is applied at once either way.
#[utoipa::path(
    patch,
    path = "/{workspace}/computations/{computation}",
    operation_id = "update_computation",
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = UpdateComputation,
    responses(
        Changed<Computation>,
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        DefinitionProblems,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    // As for a new computation: a whole number sent as a float is an integer.
    let changes = from_json_value::<UpdateComputation>(body)?.into_changes()?;
    let outcome = state
        .app()
        .governance()
        .propose(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            Change::Update(changes),
        )
        .await?;
    match outcome {
        ChangeOutcome::Proposed(_, ref proposal) if proposal.status == "open" => Ok(
            super::governance::proposal_accepted(workspace, id, &outcome, proposal.id),
        ),
        // Adopted as it was proposed (the caller's approval was enough): done, as asked.
        ChangeOutcome::Proposed(executed, _)
        | ChangeOutcome::Applied(executed)
        | ChangeOutcome::Unchanged(executed) => {
            Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
        }
    }
}

/// Archive a computation (it is kept, read-only, for the audit trail).
#[utoipa::path(
    delete,
    path = "/{workspace}/computations/{computation}",
    operation_id = "archive_computation",
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ArchiveParams,
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Changed<Computation>, CommandProblems, ChangeProblems)
)]
pub async fn archive(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ArchiveParams>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let reason = params.reason.filter(|r| !r.trim().is_empty());
    let executed = state
        .app()
        .computations()
        .archive(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            reason,
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

pub(crate) async fn respond(
    state: &AppState,
    caller: &Caller,
    workspace: Uuid,
    executed: &Executed<prism_domain::computation::Computation>,
    status: StatusCode,
) -> Response {
    let read = async {
        let id = ComputationId(executed.id.parse().map_err(AppError::internal)?);
        let view = state
            .app()
            .computations()
            .get(caller, WorkspaceId(workspace), id, state.after(executed))
            .await?;
        Ok(Computation::from(view))
    };
    state
        .respond(executed, status, location(workspace, &executed.id), read)
        .await
}

/// The one format of a computation document this version writes and reads.
pub const DOCUMENT_FORMAT: &str = "prism.computation.v1";

/// A computation as a document: what defines it — participants with their roles and keys, the
/// expected algorithm and datasets, its attestation policies and change threshold — and where it
/// comes from. `POST /{workspace}/computations/import` defines the same computation from it (in
/// another workspace, or again in this one); consents, proposals, halts and runs stay with the
/// computation they belong to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputationDocument {
    /// `prism.computation.v1`.
    #[schema(schema_with = fields::document_format)]
    pub format: String,
    pub computation: CreateComputation,
    /// The computation's own attestation policy; absent or null: the platform's default.
    #[serde(default)]
    pub attestation_policy: Option<AttestationPolicy>,
    /// The policies that replace it for runs placed on a backend, by backend id.
    #[serde(default)]
    pub backend_attestation_policies: BTreeMap<Uuid, AttestationPolicy>,
    /// How many participants holding a key must approve a change once it is approved.
    #[serde(default = "all")]
    pub change_threshold: Threshold,
    /// Where the document comes from; an import reads nothing from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<DocumentOrigin>,
}

fn all() -> Threshold {
    Threshold(ChangeThreshold::All)
}

/// Where an exported computation comes from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentOrigin {
    pub workspace_id: Uuid,
    pub computation_id: Uuid,
    /// The computation's version when exported.
    pub version: u64,
    /// Its manifest's id then; an imported computation's differs, being another computation.
    pub manifest_id: Option<String>,
    pub exported_at: chrono::DateTime<chrono::Utc>,
}

impl From<ExportedComputation> for ComputationDocument {
    fn from(exported: ExportedComputation) -> Self {
        let ExportedComputation { import, origin } = exported;
        Self {
            format: DOCUMENT_FORMAT.to_owned(),
            computation: import.definition.into(),
            attestation_policy: import.attestation_policy.map(AttestationPolicy),
            backend_attestation_policies: import
                .backend_policies
                .into_iter()
                .map(|(backend, policy)| (backend.as_uuid(), AttestationPolicy(policy)))
                .collect(),
            change_threshold: Threshold(import.change_threshold),
            origin: Some(DocumentOrigin {
                workspace_id: origin.workspace.as_uuid(),
                computation_id: origin.computation.as_uuid(),
                version: origin.version,
                manifest_id: origin.manifest_id,
                exported_at: origin.exported_at,
            }),
        }
    }
}

impl ComputationDocument {
    fn into_import(self) -> Result<ComputationImport, Problem> {
        if self.format != DOCUMENT_FORMAT {
            return Err(Problem::new(
                ProblemKind::Validation,
                format!(
                    "`format` is `{}`: this version reads `{DOCUMENT_FORMAT}` documents only",
                    self.format
                ),
            ));
        }
        Ok(ComputationImport {
            definition: self.computation.into_definition()?,
            attestation_policy: self.attestation_policy.map(|AttestationPolicy(policy)| policy),
            backend_policies: self
                .backend_attestation_policies
                .into_iter()
                .map(|(backend, AttestationPolicy(policy))| (BackendId(backend), policy))
                .collect(),
            change_threshold: self.change_threshold.0,
            // The application looks up the assets the entries name, in the importing workspace.
            linked: Vec::new(),
        })
    }
}

/// Export a computation as a document (`computation.read`): its definition, attestation policies
/// and change threshold, which `POST /{workspace}/computations/import` reads back.
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/export",
    operation_id = "export_computation",
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
    ),
    responses(
        (status = 200, description = "The computation as a document", body = ComputationDocument),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<ComputationDocument>, Problem> {
    let exported = state
        .app()
        .computations()
        .export(&caller, WorkspaceId(workspace), ComputationId(id))
        .await?;
    Ok(Json(exported.into()))
}

/// Define a computation from a document `GET …/export` wrote (`computation.create`): the same
/// definition, attestation policies and change threshold, in one commit. It is a new computation:
/// its participants consent to its manifest anew. The definition's rules are those of
/// `POST /{workspace}/computations`; a backend an override names must be one this workspace can
/// place runs on.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/import",
    operation_id = "import_computation",
    tag = "computations",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = ComputationDocument,
    responses(
        Created<Computation>,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        ImportProblems,
    )
)]
pub async fn import(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    // Read through `from_json_value`, as the attestation policy's route does: a whole number sent as
    // a float (`132.0`, an integer to JSON Schema) is taken as the integer it is.
    let document: ComputationDocument = from_json_value(body)?;
    let import = document.into_import()?;
    let executed = state
        .app()
        .computations()
        .import(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), import)
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::CREATED).await)
}

/// The 422 of an import: a definition's, and the document's own.
struct ImportProblems;

impl IntoResponses for ImportProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let description = "The document breaks a rule: a `format` other than `prism.computation.v1`; \
            the rules of a definition, as for `POST /{workspace}/computations`; a change threshold above \
            the number of participants holding a public key; an attestation policy override for a \
            backend this workspace has no use of (unknown, removed, or another workspace's); an entry \
            linked from an asset (`asset_id`) that is no asset of this workspace, or not exactly what \
            linking that asset makes (its kind, provider, digest and file name). Also 422: the \
            `Idempotency-Key` was first used with a different request.";
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(description, ProblemKind::Validation),
        )])
    }
}
