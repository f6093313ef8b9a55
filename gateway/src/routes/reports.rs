//! Compliance reports: what an auditor of a confidential computation asks, for a computation and for
//! one of its runs, each fact with its place in the log (`docs/compliance.md`). As JSON (the
//! `ComplianceReport` schema, also `schemas/prism.compliance-report.v1.json`), or as a readable,
//! self-contained HTML page when the caller asks for `text/html` (`Accept`, or `?format=html`).

mod html;

use std::borrow::Cow;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prism_app::ComplianceReport;
use prism_domain::{ComputationId, RunId, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::parameter_problem;
use crate::auth::Authenticated;
use crate::extract::{Path, Query};
use crate::json_schema;
use crate::problem::Problem;
use crate::responses::{NotFound, QueryProblems};
use crate::{AppState, Routes};

#[derive(OpenApi)]
#[openapi(components(schemas(ComplianceReportBody)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(computation_report))
        .routes(routes!(run_report))
}

/// A compliance report, as JSON: its schema is the one `schemars` derives from the report's type
/// (the same as `schemas/prism.compliance-report.v1.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ComplianceReportBody(pub ComplianceReport);

impl PartialSchema for ComplianceReportBody {
    fn schema() -> RefOr<Schema> {
        json_schema::of::<ComplianceReport>()
    }
}

impl ToSchema for ComplianceReportBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ComplianceReport")
    }
}

/// How the report is written.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// `html` for a readable page, `json` for the document; absent: as `Accept` prefers (JSON
    /// unless it prefers `text/html`).
    #[param(value_type = Option<String>, pattern = "^(html|json)$")]
    pub format: Option<String>,
}

/// Whether the caller gets the HTML page: `?format=` decides; without it, `Accept` preferring
/// `text/html` (or `application/xhtml+xml`) to JSON, as a browser's does. Anything else is JSON.
fn wants_html(headers: &HeaderMap, format: Option<&str>) -> Result<bool, Problem> {
    match format {
        Some("html") => return Ok(true),
        Some("json") => return Ok(false),
        Some(other) => {
            return Err(parameter_problem(
                "format",
                format!("`{other}` is no report format: html or json"),
            ));
        }
        None => {}
    }
    let (mut html, mut json) = (0.0_f32, 0.0_f32);
    for accept in headers.get_all(header::ACCEPT) {
        let Ok(accept) = accept.to_str() else { continue };
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html = html.max(q),
                "application/json" | "application/*" | "*/*" => json = json.max(q),
                _ => {}
            }
        }
    }
    Ok(html > 0.0 && html > json)
}

/// The report as the caller asked for it.
fn respond(report: ComplianceReport, html: bool) -> Response {
    let vary = (header::VARY, HeaderValue::from_static("accept"));
    if !html {
        return ([vary], Json(ComplianceReportBody(report))).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // Nothing of the page runs: its one style sheet is inline, and that is all it loads.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            vary,
        ],
        html::page(&report).into_string(),
    )
        .into_response()
}

/// The compliance report of a computation (`computation.read`): who defined it and when, its
/// participants with their roles and key fingerprints, its current manifest (algorithm and
/// datasets by SHA3-256 and file name), every consent with the manifest it was given to, and each
/// of its runs in brief — every fact with the event it comes from (aggregate, stream sequence,
/// index, event id), and the log position the report was built at. JSON, or a readable HTML page
/// with `Accept: text/html` or `?format=html`.
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/report",
    operation_id = "computation_report",
    tag = "reports",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ReportParams,
    ),
    responses(
        (status = 200, description = "The report: JSON, or a self-contained HTML page (no scripts)",
            content(
                (ComplianceReportBody = "application/json"),
                (String = "text/html"),
            )),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn computation_report(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let html = wants_html(&headers, params.format.as_deref())?;
    let report = state
        .app()
        .reports()
        .computation(&caller, WorkspaceId(workspace), ComputationId(id))
        .await?;
    Ok(respond(report, html))
}

/// The compliance report of one run (`computation.read` on its computation): the manifest it
/// executed, the consents its request carried (who signed, when, over which manifest id), the
/// attestation verdict with the SHA-256 of the evidence its CVM recorded, the policy and the EAR,
/// what the providers delivered and who received the result, when, with the SHA3-256 they
/// received, its CVM and when it was destroyed, the certificates issued for that CVM and their
/// revocation (and whether the CRL lists them), how the run ended and every change of its state —
/// every fact with the event it comes from, and the log position the report was built at. JSON, or
/// a readable HTML page with `Accept: text/html` or `?format=html`.
#[utoipa::path(
    get,
    path = "/{workspace}/runs/{run}/report",
    operation_id = "run_report",
    tag = "reports",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("run" = Uuid, Path, description = "Run id"),
        ReportParams,
    ),
    responses(
        (status = 200, description = "The report: JSON, or a self-contained HTML page (no scripts)",
            content(
                (ComplianceReportBody = "application/json"),
                (String = "text/html"),
            )),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn run_report(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let html = wants_html(&headers, params.format.as_deref())?;
    let report = state
        .app()
        .reports()
        .run(&caller, WorkspaceId(workspace), RunId(id))
        .await?;
    Ok(respond(report, html))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn html_only_for_callers_that_prefer_it() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&accept(browser), None).unwrap());
        assert!(wants_html(&accept("text/html"), None).unwrap());
        assert!(wants_html(&accept("application/json;q=0.5, text/html"), None).unwrap());
        for json in [
            "*/*",
            "application/json",
            "application/json, text/html",
            "text/html;q=0",
            "text/plain",
        ] {
            assert!(!wants_html(&accept(json), None).unwrap(), "{json}");
        }
        assert!(!wants_html(&HeaderMap::new(), None).unwrap());
        assert!(wants_html(&accept("application/json"), Some("html")).unwrap());
        assert!(!wants_html(&accept("text/html"), Some("json")).unwrap());
        assert!(wants_html(&HeaderMap::new(), Some("pdf")).is_err());
    }

    #[test]
    fn the_openapi_document_describes_both_representations() {
        let doc = serde_json::to_value(crate::openapi([routes()])).unwrap();
        for path in [
            "/{workspace}/computations/{computation}/report",
            "/{workspace}/runs/{run}/report",
        ] {
            let pointer = format!("/paths/{}/get/responses/200/content", path.replace('/', "~1"));
            let content = doc.pointer(&pointer).unwrap_or_else(|| panic!("{pointer}"));
            assert_eq!(
                content["application/json"]["schema"]["$ref"],
                "#/components/schemas/ComplianceReport"
            );
            assert_eq!(content["text/html"]["schema"]["type"], "string");
            let statuses = doc
                .pointer(&format!("/paths/{}/get/responses", path.replace('/', "~1")))
                .unwrap();
            for status in ["400", "401", "403", "404", "503"] {
                assert!(statuses.get(status).is_some(), "{path} {status}");
            }
        }
        let schema = &doc["components"]["schemas"]["ComplianceReport"];
        for field in [
            "log_position",
            "computation",
            "participants",
            "manifest",
            "consents",
            "run",
        ] {
            assert!(schema["properties"][field].is_object(), "{field}");
        }
    }
}
