//! `/{workspace}/computations`: computations defined in a workspace.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_app::{AppError, Caller, Executed};
use prism_domain::{ComputationId, WorkspaceId};
use utoipa_axum::routes;
use uuid::Uuid;

use super::{page_request, read_options};
use crate::cursor;
use crate::dto::{
    ArchiveParams, CommandAccepted, Computation, ComputationPage, CreateComputation, ListParams, ReadParams,
    UpdateComputation,
};
use crate::extract::{JsonBody, Path, Query};
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag};
use crate::problem::Problem;
use crate::{AppState, Routes};

const WHAT: &str = "computation";

pub fn routes() -> Routes {
    Routes::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, archive))
}

fn location(workspace: Uuid, id: &str) -> String {
    format!("/{workspace}/computations/{id}")
}

/// Define a computation in a workspace.
#[utoipa::path(
    post,
    path = "/{workspace}/computations",
    tag = "computations",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = CreateComputation,
    responses(
        (status = 201, description = "Created; the body is the computation as the read model shows it.", body = Computation,
            headers(("Location" = String), ("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 202, description = "Created, but the read model has not caught up yet.", body = CommandAccepted,
            headers(("Location" = String), ("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 400, description = "Malformed JSON, unknown field or bad header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The workspace is archived", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition (e.g. no owner, bad public key or digest), or Idempotency-Key reused with another body",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CreateComputation>,
) -> Result<Response, Problem> {
    let definition = body.into_definition()?;
    let caller = headers.caller();
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
    tag = "computations",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ListParams, QueryHeaderParams),
    responses(
        (status = 200, description = "One page", body = ComputationPage),
        (status = 400, description = "Bad id, limit, cursor or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Read model behind `min_sequence`, or unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(workspace): Path<Uuid>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Json<ComputationPage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let page = state
        .app()
        .computations()
        .list(
            &Caller::anonymous(),
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
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(
        (status = 200, description = "The computation", body = Computation, headers(("ETag" = String))),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such computation in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Read model behind `min_sequence`, or unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let view = state
        .app()
        .computations()
        .get(
            &Caller::anonymous(),
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
#[utoipa::path(
    patch,
    path = "/{workspace}/computations/{computation}",
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = UpdateComputation,
    responses(
        (status = 200, description = "Updated (or unchanged); the computation as the read model shows it", body = Computation,
            headers(("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 202, description = "Updated, but the read model has not caught up yet", body = CommandAccepted),
        (status = 400, description = "Malformed JSON, unknown field or bad header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such computation in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The computation is archived", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not name the current version", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<UpdateComputation>,
) -> Result<Response, Problem> {
    let changes = body.into_changes()?;
    let caller = headers.caller();
    let executed = state
        .app()
        .computations()
        .update(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            changes,
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

/// Archive a computation (it is kept, read-only, for the audit trail).
#[utoipa::path(
    delete,
    path = "/{workspace}/computations/{computation}",
    tag = "computations",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ArchiveParams,
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(
        (status = 200, description = "Archived; the computation as the read model shows it", body = Computation,
            headers(("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 202, description = "Archived, but the read model has not caught up yet", body = CommandAccepted),
        (status = 400, description = "Bad header or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such computation in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already archived", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not name the current version", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn archive(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ArchiveParams>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let reason = params.reason.filter(|r| !r.trim().is_empty());
    let caller = headers.caller();
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

async fn respond(
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
