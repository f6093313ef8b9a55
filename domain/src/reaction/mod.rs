//! Reaction failures: a worker that gave up on an event records why, so nothing is dropped silently.
//! One aggregate per (worker, causing event); the record is written once and never changes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, CommandContext, DomainEvent, Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReactionCommand {
    RecordFailure(ReactionFailed),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ReactionEvent {
    Failed(ReactionFailed),
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReactionError {
    #[error("this failure is already recorded")]
    AlreadyRecorded,
}

impl Rejection for ReactionError {
    fn kind(&self) -> RejectionKind {
        RejectionKind::AlreadyExists
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub failure: Option<ReactionFailed>,
}

impl DomainEvent for ReactionEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Failed(_) => "failed",
        }
    }
}

impl Aggregate for Reaction {
    const TYPE: &'static str = "reaction";
    type Command = ReactionCommand;
    type Event = ReactionEvent;
    type Error = ReactionError;

    fn decide(
        &self,
        command: ReactionCommand,
        _ctx: &CommandContext,
    ) -> Result<Vec<ReactionEvent>, ReactionError> {
        match (&self.failure, command) {
            (Some(_), ReactionCommand::RecordFailure(_)) => Err(ReactionError::AlreadyRecorded),
            (None, ReactionCommand::RecordFailure(failure)) => Ok(vec![ReactionEvent::Failed(failure)]),
        }
    }

    fn apply(&mut self, event: &ReactionEvent) {
        match event {
            ReactionEvent::Failed(f) => self.failure = Some(f.clone()),
        }
    }
}
