//! `/workspaces`: the tenants that own computations.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_app::{Caller, NewWorkspace, WorkspaceChanges};
use prism_domain::WorkspaceId;
use utoipa::OpenApi;
use utoipa::openapi::link::Link;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{page_request, read_options};
use crate::auth::Authenticated;
use crate::cursor;
use crate::dto::{CreateWorkspace, ListParams, ReadParams, UpdateWorkspace, Workspace, WorkspacePage};
use crate::extract::{JsonBody, Path, Query};
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag};
use crate::problem::Problem;
use crate::responses::{
    BodyProblems, ChangeProblems, Changed, CommandProblems, Created, Found, Linked, NotFound, QueryProblems,
    link,
};
use crate::{AppState, Routes};

const WHAT: &str = "workspace";

/// The schemas this module's responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(Workspace, WorkspacePage)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(create, list))
        .routes(routes!(get, update))
        .routes(routes!(archive))
}

fn location(id: &str) -> String {
    format!("/workspaces/{id}")
}

impl Linked for Workspace {
    fn links() -> Vec<(&'static str, Link)> {
        let id = [("workspace", "/id")];
        vec![
            ("GetWorkspace", link("get_workspace", &id)),
            ("UpdateWorkspace", link("update_workspace", &id)),
            ("ArchiveWorkspace", link("archive_workspace", &id)),
            ("CreateComputation", link("create_computation", &id)),
            ("ListComputations", link("list_computations", &id)),
        ]
    }
}

/// Create a workspace.
#[utoipa::path(
    post,
    path = "/workspaces",
    operation_id = "create_workspace",
    tag = "workspaces",
    params(CommandHeaderParams),
    request_body = CreateWorkspace,
    responses(Created<Workspace>, CommandProblems, BodyProblems)
)]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CreateWorkspace>,
) -> Result<Response, Problem> {
    let input = NewWorkspace {
        name: body.name,
        description: body.description.unwrap_or_default(),
    };
    let executed = state
        .app()
        .workspaces()
        .create(&caller, &headers.options(WHAT)?, input)
        .await?;
    Ok(respond(&state, &caller, &executed, StatusCode::CREATED).await)
}

/// List workspaces, oldest first.
#[utoipa::path(
    get,
    path = "/workspaces",
    operation_id = "list_workspaces",
    tag = "workspaces",
    params(ListParams, QueryHeaderParams),
    responses((status = 200, description = "One page", body = WorkspacePage), QueryProblems)
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Json<WorkspacePage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let page = state
        .app()
        .workspaces()
        .list(&caller, page, read_options(&headers, params.min_sequence)?)
        .await?;
    Ok(Json(WorkspacePage {
        items: page.items.into_iter().map(Workspace::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// Get a workspace.
#[utoipa::path(
    get,
    path = "/workspaces/{workspace}",
    operation_id = "get_workspace",
    tag = "workspaces",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ReadParams, QueryHeaderParams),
    responses(Found<Workspace>, QueryProblems, (status = 404, response = NotFound))
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let view = state
        .app()
        .workspaces()
        .get(
            &caller,
            WorkspaceId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(([(header::ETAG, etag(view.version))], Json(Workspace::from(view))).into_response())
}

/// Change a workspace's name or description.
#[utoipa::path(
    patch,
    path = "/workspaces/{workspace}",
    operation_id = "update_workspace",
    tag = "workspaces",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams, ConditionalHeaderParams),
    request_body = UpdateWorkspace,
    responses(Changed<Workspace>, CommandProblems, BodyProblems, ChangeProblems)
)]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<UpdateWorkspace>,
) -> Result<Response, Problem> {
    let changes = WorkspaceChanges {
        name: body.name,
        description: body.description,
    };
    let executed = state
        .app()
        .workspaces()
        .update(&caller, &headers.options(WHAT)?, WorkspaceId(id), changes)
        .await?;
    Ok(respond(&state, &caller, &executed, StatusCode::OK).await)
}

/// Archive a workspace. Final: it accepts no further change, and its computations are archived too.
#[utoipa::path(
    post,
    path = "/workspaces/{workspace}/archive",
    operation_id = "archive_workspace",
    tag = "workspaces",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams, ConditionalHeaderParams),
    responses(Changed<Workspace>, CommandProblems, ChangeProblems)
)]
pub async fn archive(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .workspaces()
        .archive(&caller, &headers.options(WHAT)?, WorkspaceId(id))
        .await?;
    Ok(respond(&state, &caller, &executed, StatusCode::OK).await)
}

async fn respond(
    state: &AppState,
    caller: &Caller,
    executed: &prism_app::Executed<prism_domain::workspace::Workspace>,
    status: StatusCode,
) -> Response {
    let read = async {
        let id = WorkspaceId(executed.id.parse().map_err(prism_app::AppError::internal)?);
        let view = state
            .app()
            .workspaces()
            .get(caller, id, state.after(executed))
            .await?;
        Ok(Workspace::from(view))
    };
    state
        .respond(executed, status, location(&executed.id), read)
        .await
}
