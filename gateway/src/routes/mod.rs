//! Handlers, one module per resource.

pub mod computations;
pub mod health;
pub mod workspaces;

use prism_projections::ProjectionError;

use crate::AppState;
use crate::cursor;
use crate::problem::{FieldProblem, Problem};

impl AppState {
    /// Read-your-writes: waits until each of `projections` has applied `min_sequence` (if given).
    pub(crate) async fn wait_read(
        &self,
        projections: &[&str],
        min_sequence: Option<u64>,
    ) -> Result<(), Problem> {
        let Some(sequence) = min_sequence else {
            return Ok(());
        };
        for name in projections {
            self.read
                .wait_for(name, sequence, self.config.query_read_wait)
                .await
                .map_err(|e| Problem::projection(&e))?;
        }
        Ok(())
    }
}

pub(crate) fn read_error(e: ProjectionError) -> Problem {
    Problem::projection(&e)
}

/// The page request of `?limit=&cursor=`.
pub(crate) fn page_request(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<prism_projections::PageRequest, Problem> {
    let limit = cursor::limit(limit).map_err(|detail| parameter_problem("limit", detail))?;
    let after = cursor
        .map(cursor::decode)
        .transpose()
        .map_err(|e| parameter_problem("cursor", e.to_string()))?;
    Ok(prism_projections::PageRequest { after, limit })
}

fn parameter_problem(name: &str, detail: String) -> Problem {
    Problem::bad_request(detail.clone()).with_errors(vec![FieldProblem {
        pointer: name.into(),
        detail,
    }])
}
