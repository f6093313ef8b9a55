//! What every command handler shares: the request's headers become the caller and the command's
//! options; the response is the resource as the read model shows it once it has applied the commit.

use std::future::Future;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_app::{AppError, CommandOptions, ErrorKind, Executed, ReadOptions};
use prism_domain::Aggregate;
use serde::Serialize;

use crate::AppState;
use crate::dto::{CommandAccepted, Computation, Workspace};
use crate::headers::{CommandHeaders, IDEMPOTENT_REPLAYED, IfMatch, PRISM_SEQUENCE, etag};
use crate::problem::{Problem, ProblemKind};

impl CommandHeaders {
    /// The command's options; `If-Match` naming no version of ours fails the precondition at once.
    pub(crate) fn options(&self, what: &str) -> Result<CommandOptions, Problem> {
        if self.if_match == Some(IfMatch::Never) {
            return Err(Problem::new(
                ProblemKind::PreconditionFailed,
                format!("If-Match names no version of this {what}"),
            ));
        }
        Ok(CommandOptions {
            idempotency_key: self.idempotency_key.clone(),
            expected_version: self.if_match.and_then(IfMatch::expected_version),
        })
    }
}

impl AppState {
    /// The options of a read that must show the commit of `executed`, waiting no longer than a command
    /// response should.
    pub(crate) fn after<A: Aggregate>(&self, executed: &Executed<A>) -> ReadOptions {
        ReadOptions {
            min_sequence: Some(executed.outcome.sequence),
            wait: Some(self.config().command_read_wait),
        }
    }

    /// The response to a committed command: `read` (the resource as the read model shows it once it has
    /// applied the commit), or `202 Accepted` with the sequence when the read model is slower than
    /// `command_read_wait` (the command is committed either way, so this never reports a failure).
    pub(crate) async fn respond<A, R, Fut>(
        &self,
        executed: &Executed<A>,
        status: StatusCode,
        location: String,
        read: Fut,
    ) -> Response
    where
        A: Aggregate,
        R: Resource,
        Fut: Future<Output = Result<R, AppError>>,
    {
        let outcome = &executed.outcome;
        let mut headers = HeaderMap::new();
        headers.insert(PRISM_SEQUENCE, HeaderValue::from(outcome.sequence));
        if outcome.replayed {
            headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        // Paths are built from UUIDs, so they are always valid header values.
        let location = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/"));
        match read.await {
            Ok(mut resource) => {
                resource.set_sequence(outcome.sequence);
                headers.insert(header::ETAG, etag(resource.version()));
                let name = if status == StatusCode::CREATED {
                    header::LOCATION
                } else {
                    header::CONTENT_LOCATION
                };
                headers.insert(name, location);
                (status, headers, Json(resource)).into_response()
            }
            Err(e) => {
                if e.kind != ErrorKind::Lagging {
                    tracing::warn!(error = %e, "committed resource not readable for the command response");
                }
                headers.insert(header::ETAG, etag(outcome.version));
                let detail = format!(
                    "accepted; the read model has not caught up yet: read {}?min_sequence={}",
                    location.to_str().unwrap_or_default(),
                    outcome.sequence
                );
                // 202 always names the resource, so the client knows where to read it once it can.
                headers.insert(header::LOCATION, location);
                let body = CommandAccepted {
                    id: executed.id.parse().unwrap_or_default(),
                    version: outcome.version,
                    sequence: outcome.sequence,
                    detail,
                };
                (StatusCode::ACCEPTED, headers, Json(body)).into_response()
            }
        }
    }
}

/// A resource body a command response returns.
pub trait Resource: Serialize {
    fn version(&self) -> u64;
    fn set_sequence(&mut self, sequence: u64);
}

impl Resource for Workspace {
    fn version(&self) -> u64 {
        self.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

impl Resource for Computation {
    fn version(&self) -> u64 {
        self.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}
