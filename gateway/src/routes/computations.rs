//! `/{workspace}/computations`: computations defined in a workspace.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_domain::computation::{ComputationCommand, WorkspaceStanding};
use prism_domain::workspace::WorkspaceStatus;
use prism_domain::{ComputationId, WorkspaceId};
use prism_projections::{COMPUTATIONS, WORKSPACES};
use uuid::Uuid;

use super::{page_request, read_error};
use crate::AppState;
use crate::command::{Executed, Request};
use crate::cursor;
use crate::dto::{
    ArchiveParams, CommandAccepted, Computation, ComputationPage, CreateComputation, ListParams, ReadParams,
    UpdateComputation,
};
use crate::extract::{JsonBody, Path, Query};
use crate::headers::{
    CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag, min_sequence,
};
use crate::problem::Problem;

const WHAT: &str = "computation";

fn location(workspace: Uuid, id: Uuid) -> String {
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
    let definition = body.clone().into_definition()?;
    // The workspace aggregate itself, not its read model: a workspace created a moment ago may not be
    // projected yet, and one archived a moment ago must already count as archived.
    let standing = state
        .bounded(async {
            let loaded = state
                .workspaces
                .load(&WorkspaceId(workspace))
                .await
                .map_err(|e| Problem::store(&e))?;
            Ok(match loaded.state.status {
                WorkspaceStatus::New => WorkspaceStanding::Missing,
                WorkspaceStatus::Active => WorkspaceStanding::Active,
                WorkspaceStatus::Archived => WorkspaceStanding::Archived,
            })
        })
        .await?;
    let request = Request {
        route: format!("POST /{workspace}/computations"),
        headers: &headers,
        body: &body,
        id: Uuid::now_v7(),
        workspace: Some(workspace),
        what: WHAT,
    };
    let executed = state
        .execute(&state.computations, request, |id| ComputationCommand::Create {
            id: ComputationId(id),
            workspace_id: WorkspaceId(workspace),
            workspace: standing,
            definition,
        })
        .await?;
    Ok(respond(&state, workspace, &executed, StatusCode::CREATED).await)
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
    state
        .wait_read(
            &[WORKSPACES, COMPUTATIONS],
            min_sequence(&headers, params.min_sequence)?,
        )
        .await?;
    // An unknown workspace is a 404, not an empty list, so a typo in the path is not mistaken for
    // "no computations yet".
    if state
        .read
        .workspace(WorkspaceId(workspace))
        .await
        .map_err(read_error)?
        .is_none()
    {
        return Err(Problem::not_found(format!("workspace {workspace} not found")));
    }
    let page = state
        .read
        .computations(WorkspaceId(workspace), page)
        .await
        .map_err(read_error)?;
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
    state
        .wait_read(&[COMPUTATIONS], min_sequence(&headers, params.min_sequence)?)
        .await?;
    let view = state
        .read
        .computation(WorkspaceId(workspace), ComputationId(id))
        .await
        .map_err(read_error)?
        .ok_or_else(|| not_found(id))?;
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
    let changes = body.clone().into_changes()?;
    ensure_in_workspace(&state, workspace, id).await?;
    let request = Request {
        route: format!("PATCH {}", location(workspace, id)),
        headers: &headers,
        body: &body,
        id,
        workspace: Some(workspace),
        what: WHAT,
    };
    let executed = state
        .execute(&state.computations, request, |_| {
            ComputationCommand::Update(changes)
        })
        .await?;
    Ok(respond(&state, workspace, &executed, StatusCode::OK).await)
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
    ensure_in_workspace(&state, workspace, id).await?;
    let reason = params.reason.clone().filter(|r| !r.trim().is_empty());
    let request = Request {
        route: format!("DELETE {}", location(workspace, id)),
        headers: &headers,
        body: &params,
        id,
        workspace: Some(workspace),
        what: WHAT,
    };
    let executed = state
        .execute(&state.computations, request, |_| ComputationCommand::Archive {
            reason,
        })
        .await?;
    Ok(respond(&state, workspace, &executed, StatusCode::OK).await)
}

/// A computation is addressed through its workspace; one in another workspace is "not found" here, or
/// a path could change a computation of a workspace it does not name. Checked on the aggregate (the
/// read model may lag). A computation never moves between workspaces, so the repository's cached state
/// answers it when present, instead of a read of the whole history before every change; otherwise the
/// load also warms the cache for the command that follows.
async fn ensure_in_workspace(state: &AppState, workspace: Uuid, id: Uuid) -> Result<(), Problem> {
    let existing = state
        .bounded(async {
            state
                .computations
                .existing_state(&ComputationId(id))
                .await
                .map_err(|e| Problem::store(&e))
        })
        .await?;
    match existing.workspace_id {
        Some(w) if w.as_uuid() == workspace => Ok(()),
        _ => Err(not_found(id)),
    }
}

async fn respond(
    state: &AppState,
    workspace: Uuid,
    executed: &Executed<prism_domain::computation::Computation>,
    status: StatusCode,
) -> Response {
    let id = ComputationId(executed.id);
    state
        .respond(
            executed,
            COMPUTATIONS,
            status,
            location(workspace, executed.id),
            || async move {
                Ok(state
                    .read
                    .computation(WorkspaceId(workspace), id)
                    .await?
                    .map(Computation::from))
            },
        )
        .await
}

fn not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("computation {id} not found"))
}
