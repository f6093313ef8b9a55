//! The shape every aggregate follows (the same shape as cqrs-es's `Aggregate`, kept synchronous and free
//! of any runtime so that deciding is a plain function call).

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};

use crate::ids::Actor;

/// What a command handler may know besides the state and the command: who asks, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

/// A consistency boundary: its events are appended atomically and in order, one commit per command.
///
/// The state serialises so that it can be snapshotted; a snapshot is only ever a cache of the fold of
/// the events, checked against the log when used.
pub trait Aggregate: Default + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable lowercase name used in subjects (`prism.ev.<TYPE>.<id>`) and event types
    /// (`io.prism.<TYPE>.<event>.v<N>`). Changing it orphans every stored event.
    const TYPE: &'static str;
    /// Bumped whenever the state's shape or meaning changes, so that older snapshots are ignored and the
    /// state is folded again from the events.
    const SNAPSHOT_VERSION: u32 = 1;
    type Command: Clone + Debug + Send + Sync;
    type Event: DomainEvent;
    type Error: Rejection;

    /// Decides what happens. Returning no events means the command changes nothing (and nothing is stored).
    fn decide(&self, command: Self::Command, ctx: &CommandContext) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one recorded event into the state. Must accept every event `decide` ever produced.
    fn apply(&mut self, event: &Self::Event);

    /// Convenience for rebuilding state from history.
    fn from_events<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }
}

/// An event payload. Serialised adjacently tagged (`{"event": "<name>", "data": {..}}`) so the event store
/// can put the name into the CloudEvents `type` and the payload into `data`.
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The event's short name, e.g. `created`.
    fn name(&self) -> &'static str;

    /// The schema version of this event's payload; bumped when the payload changes shape.
    fn version(&self) -> u32 {
        Self::version_of(self.name())
    }

    /// The current schema version of the event called `name` (every event is at version 1 today).
    fn version_of(name: &str) -> u32 {
        let _ = name;
        1
    }

    /// Turns a stored payload of an older `version` into the current shape. Version 1 is current for
    /// every event today; an unknown version is an error rather than a guess.
    fn upcast(name: &str, version: u32, data: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
        match version {
            1 => Ok(data),
            _ => Err(UpcastError {
                event: name.to_owned(),
                version,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no upcaster for event `{event}` version {version}")]
pub struct UpcastError {
    pub event: String,
    pub version: u32,
}

/// How a domain rejection should be understood by callers (the gateway maps it to an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The aggregate does not exist.
    NotFound,
    /// The aggregate exists already.
    AlreadyExists,
    /// The command is well formed but the aggregate's state does not allow it.
    StateConflict,
    /// The command's content breaks a rule.
    Invalid,
}

/// A domain error: a decision not to do something, never an infrastructure failure.
pub trait Rejection: std::error::Error + Clone + PartialEq + Send + Sync + 'static {
    fn kind(&self) -> RejectionKind;
}
