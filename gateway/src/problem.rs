//! RFC 9457 problem details: the one shape every error of the API takes.
//!
//! Handlers and extractors return [`Problem`]; the mapping from domain rejections, command failures and
//! projection errors lives here so that every route answers the same condition with the same status.

use std::fmt::Display;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prism_domain::{Rejection, RejectionKind};
use prism_projections::ProjectionError;
use prism_store::{CommandError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Seconds a client should wait before retrying after a 503: the store fails fast while NATS is away
/// and reconnects within about a second, so a short hint keeps clients responsive without hammering.
const RETRY_AFTER_SECONDS: u32 = 1;

/// The kinds of problem the API reports. Each has a stable `type` URI and title, so clients can branch
/// on `type` and show `title` without parsing `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    BadRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    Validation,
    IdempotencyKeyReused,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    Unavailable,
    ProjectionLagging,
    Internal,
}

impl ProblemKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Unavailable | Self::ProjectionLagging => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A URN rather than a URL: it identifies the problem type without promising a page to fetch.
    pub fn type_uri(self) -> &'static str {
        match self {
            Self::BadRequest => "urn:prism:problem:bad-request",
            Self::UnsupportedMediaType => "urn:prism:problem:unsupported-media-type",
            Self::PayloadTooLarge => "urn:prism:problem:payload-too-large",
            Self::Validation => "urn:prism:problem:validation",
            Self::IdempotencyKeyReused => "urn:prism:problem:idempotency-key-reused",
            Self::NotFound => "urn:prism:problem:not-found",
            Self::MethodNotAllowed => "urn:prism:problem:method-not-allowed",
            Self::Conflict => "urn:prism:problem:conflict",
            Self::PreconditionFailed => "urn:prism:problem:precondition-failed",
            Self::Unavailable => "urn:prism:problem:unavailable",
            Self::ProjectionLagging => "urn:prism:problem:projection-lagging",
            Self::Internal => "urn:prism:problem:internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge => "Request body too large",
            Self::Validation => "Invalid request",
            Self::IdempotencyKeyReused => "Idempotency key reused with a different request",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::Unavailable => "Service unavailable",
            Self::ProjectionLagging => "Read model not caught up",
            Self::Internal => "Internal server error",
        }
    }

    fn retry_after(self) -> Option<u32> {
        matches!(self, Self::Unavailable | Self::ProjectionLagging).then_some(RETRY_AFTER_SECONDS)
    }
}

/// One invalid part of a request, located by a JSON Pointer (RFC 6901) into the request body, or by
/// the name of the parameter or header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// JSON Pointer into the request body (e.g. `/participants/0/public_key`), or a parameter name.
    pub pointer: String,
    pub detail: String,
}

/// An RFC 9457 problem details document (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// Identifies the problem type; stable, suitable for branching.
    #[serde(rename = "type")]
    pub type_uri: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path the problem occurred on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Individual invalid fields, when the request had any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    #[serde(skip)]
    retry_after: Option<u32>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            type_uri: kind.type_uri(),
            title: kind.title(),
            status: kind.status().as_u16(),
            detail: Some(detail.into()),
            instance: None,
            errors: Vec::new(),
            retry_after: kind.retry_after(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.errors = errors;
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::BadRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Unavailable, detail)
    }

    /// A failure whose cause must not reach the client (it may name hosts, tables or internal state):
    /// the cause is logged, the client gets a generic message.
    pub fn internal(cause: &dyn Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ProblemKind::Internal,
            "the request could not be completed because of an internal error",
        )
    }

    /// A domain rejection, with the domain's own message (written for the people who sent the command).
    pub fn rejection<E: Rejection>(error: &E) -> Self {
        let kind = match error.kind() {
            RejectionKind::NotFound => ProblemKind::NotFound,
            RejectionKind::AlreadyExists | RejectionKind::StateConflict => ProblemKind::Conflict,
            RejectionKind::Invalid => ProblemKind::Validation,
        };
        Self::new(kind, error.to_string())
    }

    pub fn store(error: &StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "event store unavailable");
                Self::unavailable("the event store is unavailable; retry shortly")
            }
            StoreError::TooLarge(_) => Self::new(
                ProblemKind::PayloadTooLarge,
                "the resulting event is larger than the event store accepts; send less (e.g. fewer or shorter fields)",
            ),
            other => Self::internal(other),
        }
    }

    /// A failed command. `what` names the resource ("workspace", "computation") for readable details.
    pub fn command<E: Rejection>(what: &str, error: &CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(e) => Self::rejection(e),
            CommandError::VersionMismatch { expected, actual } => Self::new(
                ProblemKind::PreconditionFailed,
                format!("the {what} is at version {actual}, not {expected} as If-Match requires"),
            ),
            CommandError::Conflict => Self::new(
                ProblemKind::Conflict,
                format!("too many concurrent changes to the {what}; retry"),
            ),
            CommandError::Store(e) => Self::store(e),
        }
    }

    pub fn projection(error: &ProjectionError) -> Self {
        match error {
            ProjectionError::Lagging {
                name,
                sequence,
                reached,
            } => Self::new(
                ProblemKind::ProjectionLagging,
                format!(
                    "the `{name}` read model has reached stream sequence {reached}, not yet {sequence}; retry shortly"
                ),
            ),
            // The pool could not hand out a connection: the database is down or saturated, which
            // clears up by itself, so tell clients to come back rather than that something broke.
            ProjectionError::Pool(cause) => {
                tracing::warn!(%cause, "read model database unavailable");
                Self::unavailable("the read model database is unavailable; retry shortly")
            }
            // No SQLSTATE: the connection failed (reset, closed, timed out), not the statement.
            ProjectionError::Database(e) if e.code().is_none() => {
                tracing::warn!(error = %e, "read model database connection failed");
                Self::unavailable("the read model database is unavailable; retry shortly")
            }
            ProjectionError::Store(e) => Self::store(e),
            other => Self::internal(other),
        }
    }

    fn body(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail; the fallback keeps the response well formed.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"type":"about:blank","status":500}"#.to_vec())
    }
}

impl Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.title, self.status)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // Kept so that `fill_instance` can add the request path, which a handler's error does not know.
        response.extensions_mut().insert(self);
        response
    }
}

/// Middleware: sets `instance` to the request path on every problem response that has none.
pub async fn fill_instance(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if let Some(mut problem) = response.extensions_mut().remove::<Problem>()
        && problem.instance.is_none()
    {
        problem.instance = Some(path);
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(problem.body());
    }
    response
}

/// Fallback for paths no route matches.
pub async fn route_not_found(request: Request) -> Problem {
    Problem::not_found(format!("no resource at `{}`", request.uri().path()))
}

/// Fallback for a known path asked with a method it does not support; axum adds the `Allow` header.
pub async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        format!(
            "`{}` is not supported on `{}`",
            request.method(),
            request.uri().path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use prism_domain::computation::{ComputationError, DefinitionError};
    use prism_domain::values::ValueError;
    use prism_domain::workspace::WorkspaceError;

    use super::*;

    #[test]
    fn rejections_map_by_kind() {
        assert_eq!(Problem::rejection(&WorkspaceError::NotFound).status, 404);
        assert_eq!(Problem::rejection(&WorkspaceError::AlreadyExists).status, 409);
        assert_eq!(Problem::rejection(&WorkspaceError::Archived).status, 409);
        assert_eq!(
            Problem::rejection(&ComputationError::WorkspaceNotFound).status,
            404
        );
        assert_eq!(
            Problem::rejection(&ComputationError::WorkspaceArchived).status,
            409
        );
        let invalid = ComputationError::Invalid(DefinitionError::NoOwner);
        let problem = Problem::rejection(&invalid);
        assert_eq!(problem.status, 422);
        assert_eq!(problem.type_uri, "urn:prism:problem:validation");
        assert_eq!(problem.detail.as_deref(), Some(invalid.to_string().as_str()));
        let empty = WorkspaceError::Invalid(ValueError::Empty { field: "name" });
        assert_eq!(
            Problem::rejection(&empty).detail.as_deref(),
            Some("name must not be empty")
        );
    }

    #[test]
    fn command_failures_map_to_statuses() {
        let stale: CommandError<WorkspaceError> = CommandError::VersionMismatch {
            expected: 1,
            actual: 3,
        };
        let problem = Problem::command("workspace", &stale);
        assert_eq!(problem.status, 412);
        assert!(problem.detail.unwrap().contains("version 3"));
        assert_eq!(
            Problem::command("workspace", &CommandError::<WorkspaceError>::Conflict).status,
            409
        );
        let down = CommandError::<WorkspaceError>::Store(StoreError::Unavailable("no route".into()));
        let problem = Problem::command("workspace", &down);
        assert_eq!(problem.status, 503);
        assert_eq!(problem.retry_after(), Some(1));
        assert!(!problem.detail.unwrap().contains("no route"));
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let secret = CommandError::<WorkspaceError>::Store(StoreError::Corrupt {
            sequence: 9,
            reason: "postgres://admin:hunter2@db".into(),
        });
        let problem = Problem::command("workspace", &secret);
        assert_eq!(problem.status, 500);
        let body = String::from_utf8(problem.body()).unwrap();
        assert!(!body.contains("hunter2"), "{body}");
        assert!(problem.retry_after().is_none());
    }

    #[test]
    fn projection_lag_is_retryable() {
        let lag = ProjectionError::Lagging {
            name: "workspaces".into(),
            sequence: 10,
            reached: 7,
        };
        let problem = Problem::projection(&lag);
        assert_eq!(problem.status, 503);
        assert_eq!(problem.type_uri, "urn:prism:problem:projection-lagging");
        assert_eq!(problem.retry_after(), Some(1));
        assert_eq!(
            Problem::projection(&ProjectionError::Pool("down".into())).status,
            503
        );
        assert_eq!(
            Problem::projection(&ProjectionError::Unknown("x".into())).status,
            500
        );
    }

    #[test]
    fn the_body_is_a_problem_document() {
        let problem = Problem::new(ProblemKind::Validation, "bad").with_errors(vec![FieldProblem {
            pointer: "/name".into(),
            detail: "name must not be empty".into(),
        }]);
        let json: serde_json::Value = serde_json::from_slice(&problem.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:prism:problem:validation",
                "title": "Invalid request",
                "status": 422,
                "detail": "bad",
                "errors": [{"pointer": "/name", "detail": "name must not be empty"}]
            })
        );
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn unavailable_responses_carry_retry_after() {
        let response = Problem::unavailable("down").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
