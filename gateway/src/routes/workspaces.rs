//! `/workspaces`: the tenants that own computations.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_domain::WorkspaceId;
use prism_domain::workspace::WorkspaceCommand;
use prism_projections::WORKSPACES;
use uuid::Uuid;

use super::{page_request, read_error};
use crate::AppState;
use crate::command::Request;
use crate::cursor;
use crate::dto::{
    CommandAccepted, CreateWorkspace, ListParams, ReadParams, UpdateWorkspace, Workspace, WorkspacePage,
};
use crate::extract::{JsonBody, Path, Query};
use crate::headers::{
    CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag, min_sequence,
};
use crate::problem::Problem;

const WHAT: &str = "workspace";

fn location(id: Uuid) -> String {
    format!("/workspaces/{id}")
}

/// Create a workspace.
#[utoipa::path(
    post,
    path = "/workspaces",
    tag = "workspaces",
    params(CommandHeaderParams),
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "Created; the body is the workspace as the read model shows it.", body = Workspace,
            headers(("Location" = String), ("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 202, description = "Created, but the read model has not caught up yet.", body = CommandAccepted,
            headers(("Location" = String), ("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 400, description = "Malformed JSON, unknown field or bad header", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid value, or Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CreateWorkspace>,
) -> Result<Response, Problem> {
    let request = Request {
        route: "POST /workspaces".into(),
        headers: &headers,
        body: &body,
        id: Uuid::now_v7(),
        workspace: None,
        what: WHAT,
    };
    let executed = state
        .execute(&state.workspaces, request, |id| WorkspaceCommand::Create {
            id: WorkspaceId(id),
            name: body.name.clone(),
            description: body.description.clone().unwrap_or_default(),
        })
        .await?;
    Ok(respond(&state, &executed, StatusCode::CREATED).await)
}

/// List workspaces, oldest first.
#[utoipa::path(
    get,
    path = "/workspaces",
    tag = "workspaces",
    params(ListParams, QueryHeaderParams),
    responses(
        (status = 200, description = "One page", body = WorkspacePage),
        (status = 400, description = "Bad limit, cursor or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Read model behind `min_sequence`, or unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Json<WorkspacePage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    state
        .wait_read(&[WORKSPACES], min_sequence(&headers, params.min_sequence)?)
        .await?;
    let page = state.read.workspaces(page).await.map_err(read_error)?;
    Ok(Json(WorkspacePage {
        items: page.items.into_iter().map(Workspace::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// Get a workspace.
#[utoipa::path(
    get,
    path = "/workspaces/{workspace}",
    tag = "workspaces",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ReadParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The workspace", body = Workspace, headers(("ETag" = String))),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Read model behind `min_sequence`, or unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    state
        .wait_read(&[WORKSPACES], min_sequence(&headers, params.min_sequence)?)
        .await?;
    let view = state
        .read
        .workspace(WorkspaceId(id))
        .await
        .map_err(read_error)?
        .ok_or_else(|| not_found(id))?;
    Ok(([(header::ETAG, etag(view.version))], Json(Workspace::from(view))).into_response())
}

/// Change a workspace's name or description.
#[utoipa::path(
    patch,
    path = "/workspaces/{workspace}",
    tag = "workspaces",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams, ConditionalHeaderParams),
    request_body = UpdateWorkspace,
    responses(
        (status = 200, description = "Updated (or unchanged); the workspace as the read model shows it", body = Workspace,
            headers(("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 202, description = "Updated, but the read model has not caught up yet", body = CommandAccepted),
        (status = 400, description = "Malformed JSON, unknown field or bad header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The workspace is archived", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not name the current version", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<UpdateWorkspace>,
) -> Result<Response, Problem> {
    let request = Request {
        route: format!("PATCH {}", location(id)),
        headers: &headers,
        body: &body,
        id,
        workspace: None,
        what: WHAT,
    };
    let executed = state
        .execute(&state.workspaces, request, |_| WorkspaceCommand::Update {
            name: body.name.clone(),
            description: body.description.clone(),
        })
        .await?;
    Ok(respond(&state, &executed, StatusCode::OK).await)
}

/// Archive a workspace. Final: it accepts no further change, and its computations are archived too.
#[utoipa::path(
    post,
    path = "/workspaces/{workspace}/archive",
    tag = "workspaces",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams, ConditionalHeaderParams),
    responses(
        (status = 200, description = "Archived; the workspace as the read model shows it", body = Workspace,
            headers(("ETag" = String), ("Prism-Sequence" = u64))),
        (status = 202, description = "Archived, but the read model has not caught up yet", body = CommandAccepted),
        (status = 400, description = "Bad header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already archived", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not name the current version", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn archive(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let request = Request {
        route: format!("POST {}/archive", location(id)),
        headers: &headers,
        body: &(),
        id,
        workspace: None,
        what: WHAT,
    };
    let executed = state
        .execute(&state.workspaces, request, |_| WorkspaceCommand::Archive)
        .await?;
    Ok(respond(&state, &executed, StatusCode::OK).await)
}

async fn respond(
    state: &AppState,
    executed: &crate::command::Executed<prism_domain::workspace::Workspace>,
    status: StatusCode,
) -> Response {
    let id = WorkspaceId(executed.id);
    state
        .respond(
            executed,
            WORKSPACES,
            status,
            location(executed.id),
            || async move { Ok(state.read.workspace(id).await?.map(Workspace::from)) },
        )
        .await
}

fn not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("workspace {id} not found"))
}
