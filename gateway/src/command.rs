//! The path every command takes: preconditions, idempotency, the repository (bounded in time), then a
//! response built from the read model once it has caught up with the commit.

use std::future::Future;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_domain::Aggregate;
use prism_projections::ProjectionError;
use prism_store::{CommandError, CommandOutcome, Metadata, Repository};
use serde::Serialize;
use uuid::Uuid;

use crate::dto::{CommandAccepted, Computation, Workspace};
use crate::headers::{CommandHeaders, IDEMPOTENT_REPLAYED, IfMatch, PRISM_SEQUENCE, etag};
use crate::idempotency::fingerprint;
use crate::problem::{Problem, ProblemKind};
use crate::{ANONYMOUS, AppState};

/// One command as the HTTP layer sees it, before it reaches the repository.
#[derive(Debug)]
pub struct Request<'a, B> {
    /// `METHOD /concrete/path`: scopes idempotency keys to one operation on one resource.
    pub route: String,
    pub headers: &'a CommandHeaders,
    /// The parsed request (body and command parameters), fingerprinted for idempotency.
    pub body: &'a B,
    /// The aggregate: fixed by the path, or a fresh id for a create.
    pub id: Uuid,
    /// The workspace the aggregate belongs to; `None` when the aggregate is the workspace itself.
    pub workspace: Option<Uuid>,
    /// "workspace" or "computation", for messages.
    pub what: &'static str,
}

#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    pub id: Uuid,
    pub outcome: CommandOutcome<A>,
}

impl AppState {
    /// Runs `make(id)` against `repo`. The id is `request.id`, or for a retried idempotency key the id
    /// the first attempt chose.
    pub(crate) async fn execute<A, B>(
        &self,
        repo: &Repository<A>,
        request: Request<'_, B>,
        make: impl FnOnce(Uuid) -> A::Command,
    ) -> Result<Executed<A>, Problem>
    where
        A: Aggregate,
        B: Serialize,
    {
        let headers = request.headers;
        if headers.if_match == Some(IfMatch::Never) {
            return Err(Problem::new(
                ProblemKind::PreconditionFailed,
                format!("If-Match names no version of this {}", request.what),
            ));
        }
        let expected_version = headers.if_match.and_then(IfMatch::expected_version);
        self.bounded(async {
            let claim = match &headers.idempotency_key {
                Some(key) => {
                    let fingerprint = fingerprint(&request.route, request.body);
                    Some(
                        self.idempotency
                            .claim(&request.route, key, &fingerprint, request.id)
                            .await?,
                    )
                }
                None => None,
            };
            let id = claim.as_ref().map_or(request.id, |c| c.id);
            let meta = Metadata {
                workspace: Some(request.workspace.unwrap_or(id).to_string()),
                actor: ANONYMOUS.into(),
                correlation_id: headers.request_id.clone(),
                causation_id: None,
                traceparent: headers.traceparent.clone(),
            };
            let command_key = claim.as_ref().map(|c| c.command_key.as_str());
            match repo
                .execute(&id, make(id), &meta, command_key, expected_version)
                .await
            {
                Ok(outcome) => Ok(Executed { id, outcome }),
                Err(error) => {
                    let nothing_stored = matches!(
                        error,
                        CommandError::Rejected(_) | CommandError::VersionMismatch { .. }
                    );
                    if nothing_stored && let Some(claim) = &claim {
                        self.idempotency.release(claim).await;
                    }
                    Err(Problem::command(request.what, &error))
                }
            }
        })
        .await
    }

    /// Bounds event-store work in time, and refuses it at once while NATS is disconnected, so a
    /// command answers 503 quickly instead of waiting on a publish the client would buffer.
    pub(crate) async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, Problem>>,
    ) -> Result<T, Problem> {
        if !self.store.is_connected() {
            return Err(Problem::unavailable(
                "the event store is unavailable; retry shortly",
            ));
        }
        tokio::time::timeout(self.config.command_timeout, work)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("command timed out");
                Err(Problem::unavailable(
                    "the command did not complete in time; retry (with the same Idempotency-Key) shortly",
                ))
            })
    }

    /// The response to a committed command: the resource as the read model shows it once it has applied
    /// the commit, or `202 Accepted` with the sequence when the read model is slower than
    /// `command_read_wait` (the command is committed either way, so this never reports a failure).
    pub(crate) async fn respond<A, R, F, Fut>(
        &self,
        executed: &Executed<A>,
        projection: &'static str,
        status: StatusCode,
        location: String,
        read: F,
    ) -> Response
    where
        A: Aggregate,
        R: Resource,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<R>, ProjectionError>>,
    {
        let outcome = &executed.outcome;
        let waited = self
            .read
            .wait_for(projection, outcome.sequence, self.config.command_read_wait)
            .await;
        let view = match waited {
            Ok(()) => read().await,
            Err(e) => Err(e),
        };
        let mut headers = HeaderMap::new();
        headers.insert(PRISM_SEQUENCE, HeaderValue::from(outcome.sequence));
        if outcome.replayed {
            headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        // Paths are built from UUIDs, so they are always valid header values.
        let location = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/"));
        match view {
            Ok(Some(mut resource)) => {
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
            other => {
                match other {
                    Err(e) => {
                        tracing::warn!(error = %e, projection, "read model not ready for a command response")
                    }
                    Ok(_) => tracing::warn!(projection, "committed resource missing from the read model"),
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
                    id: executed.id,
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
