//! `/operations`: what operators watch — commits that readers refused to apply.

use axum::Json;
use axum::extract::State;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::dto::{QuarantineParams, QuarantinedCommit};
use crate::extract::Query;
use crate::problem::Problem;
use crate::responses::QueryProblems;
use crate::{AppState, Routes};

pub fn routes() -> Routes {
    Routes::new().routes(routes!(quarantine))
}

/// Commits a projection or worker refused to apply because they failed verification (an event
/// rewritten, misplaced or not chained to its aggregate's history) or could not be held; newest first.
#[utoipa::path(
    get,
    path = "/operations/quarantine",
    operation_id = "list_quarantined",
    tag = "operations",
    params(QuarantineParams),
    responses(
        (status = 200, description = "Quarantined commits, newest first", body = Vec<QuarantinedCommit>),
        QueryProblems,
    )
)]
pub async fn quarantine(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<QuarantineParams>,
) -> Result<Json<Vec<QuarantinedCommit>>, Problem> {
    let limit = crate::cursor::limit(params.limit).map_err(Problem::bad_request)?;
    let items = state.app().operations().quarantined(&caller, limit).await?;
    Ok(Json(items.into_iter().map(QuarantinedCommit::from).collect()))
}
