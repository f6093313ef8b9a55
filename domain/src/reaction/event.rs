use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::DomainEvent;
use crate::ids::Actor;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ReactionEvent {
    Failed(ReactionFailed),
    RetryRequested(ReactionRetryRequested),
    Resolved(ReactionResolved),
}

/// A worker gave up on an event after its bounded number of attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionFailed {
    pub worker: String,
    /// The CloudEvents id of the event the worker could not handle.
    pub event_id: String,
    pub event_type: String,
    pub stream_sequence: u64,
    pub attempts: u64,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

/// An operator asked the worker to try the event again; the worker finds it at `stream_sequence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionRetryRequested {
    pub worker: String,
    pub stream_sequence: u64,
    pub requested_by: Actor,
    pub requested_at: DateTime<Utc>,
}

/// The retried reaction succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionResolved {
    pub resolved_at: DateTime<Utc>,
}

impl DomainEvent for ReactionEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Failed(_) => "failed",
            Self::RetryRequested(_) => "retry_requested",
            Self::Resolved(_) => "resolved",
        }
    }
}
