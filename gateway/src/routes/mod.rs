//! Handlers, one module per resource; each module's `routes()` gives its routes with their OpenAPI
//! description, for the platform's registry.

pub mod accounts;
pub mod activity;
pub mod api_keys;
pub mod assets;
pub mod attestation;
pub mod audit;
pub mod backends;
pub mod certificates;
pub mod certs;
pub mod computations;
pub mod cvms;
pub mod governance;
pub mod health;
pub mod identity;
pub mod members;
pub mod operations;
pub mod reactions;
pub mod reports;
pub mod runs;
pub mod webhooks;
pub mod workspaces;

use axum::http::HeaderMap;
use prism_app::ReadOptions;

use crate::cursor;
use crate::headers::min_sequence;
use crate::problem::{FieldProblem, Problem};

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

/// The read options of a query: `?min_sequence=` or `Prism-Min-Sequence`.
pub(crate) fn read_options(headers: &HeaderMap, query: Option<u64>) -> Result<ReadOptions, Problem> {
    Ok(ReadOptions {
        min_sequence: min_sequence(headers, query)?,
        wait: None,
    })
}

/// Query parameter `name`, an RFC 3339 time when given; 400 naming it otherwise.
pub(crate) fn time(
    name: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| parameter_problem(name, format!("`{text}` is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

/// Query parameter `after`, a stream sequence: at most `i64::MAX`, as the schema of a 64-bit integer
/// states and the read models store it.
pub(crate) fn after_sequence(after: Option<u64>) -> Result<Option<u64>, Problem> {
    match after {
        Some(after) if after > i64::MAX as u64 => Err(parameter_problem(
            "after",
            format!("{after} is beyond any stream sequence (at most {})", i64::MAX),
        )),
        after => Ok(after),
    }
}

pub(crate) fn parameter_problem(name: &str, detail: String) -> Problem {
    Problem::bad_request(detail.clone()).with_errors(vec![FieldProblem {
        pointer: name.into(),
        detail,
    }])
}
