//! The one mapping from the application layer's error kinds to gRPC status codes, for the services the
//! platform hosts over gRPC (the agents' channel). Like HTTP's, the detail is the caller's; causes are
//! logged, never sent.

use prism_app::{AppError, ErrorKind};
use tonic::{Code, Status};

pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::BadRequest | ErrorKind::Invalid => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::StateConflict | ErrorKind::PreconditionFailed | ErrorKind::IdempotencyKeyReused => {
            Code::FailedPrecondition
        }
        ErrorKind::Contended => Code::Aborted,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::TooLarge | ErrorKind::Throttled => Code::ResourceExhausted,
        ErrorKind::Unavailable | ErrorKind::Lagging => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

pub fn status(error: &AppError) -> Status {
    if error.kind == ErrorKind::Internal {
        tracing::error!(detail = %error.detail, source = ?error.source, "internal error");
    }
    Status::new(code(error.kind), error.detail.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_grpc_codes() {
        assert_eq!(code(ErrorKind::NotFound), Code::NotFound);
        assert_eq!(code(ErrorKind::Unavailable), Code::Unavailable);
        assert_eq!(code(ErrorKind::Forbidden), Code::PermissionDenied);
        let status = status(&AppError::internal("postgres://admin:hunter2@db"));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
