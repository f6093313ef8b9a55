//! The one error type of the application layer. Its [`ErrorKind`] says how a caller should understand
//! it; each transport maps kinds to its own status codes in one place (`prism_gateway::problem` for
//! HTTP, `prism_gateway::grpc_status` for gRPC).

use prism_domain::{Rejection, RejectionKind};
use prism_projections::ProjectionError;
use prism_store::{BoxError, CommandError, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed in a way the caller can see without knowing any state (a sequence
    /// beyond the end of the log, an unknown name).
    BadRequest,
    /// The request breaks a rule of the domain (a definition without an owner, a bad value).
    Invalid,
    NotFound,
    AlreadyExists,
    /// The state does not allow it (archived, already done).
    StateConflict,
    /// Too many concurrent changes to the same aggregate; retrying may succeed.
    Contended,
    /// The expected version (`If-Match`) is not the current one.
    PreconditionFailed,
    /// The idempotency key was first used with another request.
    IdempotencyKeyReused,
    /// The caller is not known (identity).
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// Too many attempts (sign-in) from this source or for this account; retry later.
    Throttled,
    /// The result would not fit in one event-store message.
    TooLarge,
    /// A dependency (event store, database) cannot be reached now; retry shortly.
    Unavailable,
    /// A read model has not caught up with the sequence asked for yet; retry shortly.
    Lagging,
    /// A bug or a broken invariant; the cause is logged, never shown.
    Internal,
}

/// What went wrong, for whom: `detail` is written for the caller; `source` keeps the cause.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub detail: String,
    #[source]
    pub source: Option<BoxError>,
}

impl AppError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, detail)
    }

    /// A failure whose cause must not reach the caller (it may name hosts, tables or internal state).
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::new(
            ErrorKind::Internal,
            "the request could not be completed because of an internal error",
        )
        .with_source(cause)
    }

    /// A domain rejection, with the domain's own message (written for the people who sent the command).
    pub fn rejected<E: Rejection>(error: E) -> Self {
        let kind = match error.kind() {
            RejectionKind::NotFound => ErrorKind::NotFound,
            RejectionKind::AlreadyExists => ErrorKind::AlreadyExists,
            RejectionKind::StateConflict => ErrorKind::StateConflict,
            RejectionKind::Invalid => ErrorKind::Invalid,
        };
        Self::new(kind, error.to_string()).with_source(error)
    }

    /// A failed command on a `what` ("workspace", "computation").
    pub fn command<E: Rejection>(what: &str, error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(e) => Self::rejected(e),
            CommandError::VersionMismatch { expected, actual } => Self::new(
                ErrorKind::PreconditionFailed,
                format!("the {what} is at version {actual}, not {expected} as expected"),
            )
            .with_source(error),
            CommandError::IdempotencyKeyReused => Self::key_reused(),
            CommandError::Conflict => Self::new(
                ErrorKind::Contended,
                format!("too many concurrent changes to the {what}; retry"),
            ),
            CommandError::Store(e) => e.into(),
        }
    }

    pub fn key_reused() -> Self {
        Self::new(
            ErrorKind::IdempotencyKeyReused,
            "this idempotency key was already used with a different request; use a new key for a new request",
        )
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                Self::unavailable("the event store is unavailable; retry shortly").with_source(error)
            }
            StoreError::TooLarge(_) => Self::new(
                ErrorKind::TooLarge,
                "the resulting event is larger than the event store accepts; send less (e.g. fewer or shorter fields)",
            )
            .with_source(error),
            StoreError::InvalidId(_) => Self::bad_request(error.to_string()).with_source(error),
            other => Self::internal(other),
        }
    }
}

impl From<ProjectionError> for AppError {
    fn from(error: ProjectionError) -> Self {
        let error = match error {
            ProjectionError::Store(e) => return e.into(),
            other => other,
        };
        match &error {
            ProjectionError::Lagging {
                name,
                sequence,
                reached,
            } => Self::new(
                ErrorKind::Lagging,
                format!(
                    "the `{name}` read model has reached stream sequence {reached}, not yet {sequence}; retry shortly"
                ),
            )
            .with_source(error),
            // The pool could not hand out a connection: the database is down or saturated, which
            // clears up by itself, so tell callers to come back rather than that something broke.
            ProjectionError::Pool(_) => {
                Self::unavailable("the read model database is unavailable; retry shortly").with_source(error)
            }
            // No SQLSTATE: the connection failed (reset, closed, timed out), not the statement.
            ProjectionError::Database(e) if e.code().is_none() => {
                Self::unavailable("the read model database is unavailable; retry shortly").with_source(error)
            }
            _ => Self::internal(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use prism_domain::computation::{ComputationError, DefinitionError};
    use prism_domain::workspace::WorkspaceError;

    use super::*;

    #[test]
    fn rejections_keep_their_kind_message_and_cause() {
        let e = AppError::rejected(WorkspaceError::NotFound);
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.detail, "workspace not found");
        assert!(e.source.is_some());
        assert_eq!(
            AppError::rejected(ComputationError::Invalid(DefinitionError::NoOwner)).kind,
            ErrorKind::Invalid
        );
        assert_eq!(
            AppError::rejected(ComputationError::WorkspaceArchived).kind,
            ErrorKind::StateConflict
        );
    }

    #[test]
    fn store_failures_do_not_show_their_cause() {
        let e: AppError = StoreError::Corrupt {
            sequence: 3,
            source: "postgres://admin:hunter2@db".into(),
        }
        .into();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(!e.detail.contains("hunter2"));
        assert!(e.source.unwrap().to_string().contains("hunter2"));
        let down: AppError = StoreError::Unavailable("no route".into()).into();
        assert_eq!(down.kind, ErrorKind::Unavailable);
        assert!(!down.detail.contains("no route"));
    }

    #[test]
    fn command_failures_map_to_kinds() {
        let stale = CommandError::<WorkspaceError>::VersionMismatch {
            expected: 1,
            actual: 3,
        };
        let e = AppError::command("workspace", stale);
        assert_eq!(e.kind, ErrorKind::PreconditionFailed);
        assert!(e.detail.contains("version 3"));
        assert_eq!(
            AppError::command("workspace", CommandError::<WorkspaceError>::Conflict).kind,
            ErrorKind::Contended
        );
        assert_eq!(
            AppError::command("workspace", CommandError::<WorkspaceError>::IdempotencyKeyReused).kind,
            ErrorKind::IdempotencyKeyReused
        );
    }
}
