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
use prism_app::{AppError, ErrorKind};
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
    Unauthorized,
    Forbidden,
    UnsupportedMediaType,
    PayloadTooLarge,
    Validation,
    IdempotencyKeyReused,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    TooManyRequests,
    Unavailable,
    ProjectionLagging,
    Internal,
}

impl ProblemKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::ProjectionLagging => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A URN rather than a URL: it identifies the problem type without promising a page to fetch.
    pub fn type_uri(self) -> &'static str {
        match self {
            Self::BadRequest => "urn:prism:problem:bad-request",
            Self::Unauthorized => "urn:prism:problem:unauthorized",
            Self::Forbidden => "urn:prism:problem:forbidden",
            Self::UnsupportedMediaType => "urn:prism:problem:unsupported-media-type",
            Self::PayloadTooLarge => "urn:prism:problem:payload-too-large",
            Self::Validation => "urn:prism:problem:validation",
            Self::IdempotencyKeyReused => "urn:prism:problem:idempotency-key-reused",
            Self::NotFound => "urn:prism:problem:not-found",
            Self::MethodNotAllowed => "urn:prism:problem:method-not-allowed",
            Self::Conflict => "urn:prism:problem:conflict",
            Self::PreconditionFailed => "urn:prism:problem:precondition-failed",
            Self::TooManyRequests => "urn:prism:problem:too-many-requests",
            Self::Unavailable => "urn:prism:problem:unavailable",
            Self::ProjectionLagging => "urn:prism:problem:projection-lagging",
            Self::Internal => "urn:prism:problem:internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge => "Request body too large",
            Self::Validation => "Invalid request",
            Self::IdempotencyKeyReused => "Idempotency key reused with a different request",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::TooManyRequests => "Too many requests",
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

    /// Logs an error's whole chain of causes (they never reach the client).
    fn log_chain(error: &AppError) {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        match error.kind {
            ErrorKind::Internal => {
                tracing::error!(detail = %error.detail, causes = ?causes, "internal error")
            }
            ErrorKind::Unavailable => {
                tracing::warn!(detail = %error.detail, causes = ?causes, "dependency unavailable")
            }
            _ => {}
        }
    }

    fn body(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail; the fallback keeps the response well formed.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"type":"about:blank","status":500}"#.to_vec())
    }
}

/// The one mapping from the application layer's error kinds to HTTP.
impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        Self::log_chain(&error);
        let kind = match error.kind {
            ErrorKind::BadRequest => ProblemKind::BadRequest,
            ErrorKind::Invalid => ProblemKind::Validation,
            ErrorKind::NotFound => ProblemKind::NotFound,
            ErrorKind::AlreadyExists | ErrorKind::StateConflict | ErrorKind::Contended => {
                ProblemKind::Conflict
            }
            ErrorKind::PreconditionFailed => ProblemKind::PreconditionFailed,
            ErrorKind::IdempotencyKeyReused => ProblemKind::IdempotencyKeyReused,
            ErrorKind::Unauthenticated => ProblemKind::Unauthorized,
            ErrorKind::Forbidden => ProblemKind::Forbidden,
            ErrorKind::Throttled => ProblemKind::TooManyRequests,
            ErrorKind::TooLarge => ProblemKind::PayloadTooLarge,
            ErrorKind::Unavailable => ProblemKind::Unavailable,
            ErrorKind::Lagging => ProblemKind::ProjectionLagging,
            ErrorKind::Internal => ProblemKind::Internal,
        };
        Self::new(kind, error.detail)
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
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            // RFC 6750 §3: say which scheme to authenticate with.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"prism\""),
            );
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
    use prism_domain::workspace::WorkspaceError;
    use prism_store::{CommandError, StoreError};

    use super::*;

    #[test]
    fn every_error_kind_has_its_status() {
        for (kind, status) in [
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Invalid, 422),
            (ErrorKind::NotFound, 404),
            (ErrorKind::AlreadyExists, 409),
            (ErrorKind::StateConflict, 409),
            (ErrorKind::Contended, 409),
            (ErrorKind::PreconditionFailed, 412),
            (ErrorKind::IdempotencyKeyReused, 422),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::Throttled, 429),
            (ErrorKind::TooLarge, 413),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Lagging, 503),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(Problem::from(AppError::new(kind, "x")).status, status, "{kind:?}");
        }
    }

    #[test]
    fn rejections_keep_the_domain_message() {
        let invalid = ComputationError::Invalid(DefinitionError::NoOwner);
        let message = invalid.to_string();
        let problem = Problem::from(AppError::rejected(invalid));
        assert_eq!(problem.status, 422);
        assert_eq!(problem.type_uri, "urn:prism:problem:validation");
        assert_eq!(problem.detail.as_deref(), Some(message.as_str()));
        assert_eq!(
            Problem::from(AppError::rejected(WorkspaceError::Archived)).status,
            409
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let secret = CommandError::<WorkspaceError>::Store(StoreError::Corrupt {
            sequence: 9,
            source: "postgres://admin:hunter2@db".into(),
        });
        let problem = Problem::from(AppError::command("workspace", secret));
        assert_eq!(problem.status, 500);
        let body = String::from_utf8(problem.body()).unwrap();
        assert!(!body.contains("hunter2"), "{body}");
        assert!(problem.retry_after().is_none());
    }

    #[test]
    fn unavailable_and_lagging_are_retryable() {
        let down = Problem::from(AppError::from(StoreError::Unavailable("no route".into())));
        assert_eq!(down.status, 503);
        assert_eq!(down.retry_after(), Some(1));
        assert!(!down.detail.unwrap().contains("no route"));
        let lag = Problem::from(AppError::new(ErrorKind::Lagging, "behind"));
        assert_eq!(lag.type_uri, "urn:prism:problem:projection-lagging");
        assert_eq!(lag.retry_after(), Some(1));
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
}
