//! What can go wrong between cqrs-es and the JetStream log, and how each failure reaches cqrs-es.

use cqrs_es::AggregateError;

/// A failure of the store, boxed into the matching [`AggregateError`] variant on its way to cqrs-es
/// (see [`Error::into_aggregate_error`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that must be one NATS subject token and one segment of the CloudEvents type.
    #[error("{what} `{value}` cannot be stored: use only ASCII letters, digits, `-` and `_`")]
    InvalidName { what: &'static str, value: String },
    /// The aggregate id is not a single NATS subject token.
    #[error("aggregate id `{0}` cannot be stored: use only ASCII letters, digits, `-` and `_`")]
    InvalidId(String),
    /// `event_version()` must start with a major version number: `1`, `1.0`, `2.1.3`.
    #[error("event version `{0}` does not start with a major version number such as `1` or `1.0`")]
    InvalidVersion(String),
    /// A stored event whose CloudEvents type does not follow `io.prism.<aggregate>.<event>.v<N>`.
    #[error("stored event type `{0}` is not of the form io.prism.<aggregate>.<event>.v<N>")]
    InvalidType(String),
    /// A stored event that belongs to another aggregate than the one loaded.
    #[error("stored event {version} belongs to {found}, expected {expected}")]
    WrongAggregate {
        version: u64,
        expected: String,
        found: String,
    },
    /// An event or its metadata could not be turned into JSON.
    #[error("cannot serialise a `{event_type}` event: {source}")]
    Serialize {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    /// A stored event whose `data` does not match the aggregate's event type (or metadata map).
    #[error("stored event {version} (`{event_type}`) cannot be read: {source}")]
    Deserialize {
        version: u64,
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    /// Another commit reached the aggregate after it was loaded; nothing was stored.
    #[error("another commit reached the aggregate first")]
    Conflict,
    /// The server answered the commit as a duplicate of an earlier message: nothing was appended.
    #[error("the commit was answered as a duplicate of an earlier message; nothing was stored")]
    Duplicate,
    /// NATS could not be reached or did not answer in time; retrying later may succeed.
    #[error("the event store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other failure of the log: a refused request, a commit too large for one message, a
    /// stored history that fails its hash-chain check.
    #[error("event store failure: {0}")]
    Store(#[source] BoxError),
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// The cqrs-es view of this failure: a lost race is [`AggregateError::AggregateConflict`], an
    /// unreachable server [`AggregateError::DatabaseConnectionError`], an unreadable stored event
    /// [`AggregateError::DeserializationError`], anything else [`AggregateError::UnexpectedError`].
    pub fn into_aggregate_error<E: std::error::Error>(self) -> AggregateError<E> {
        match self {
            Error::Conflict => AggregateError::AggregateConflict,
            Error::Unavailable(_) => AggregateError::DatabaseConnectionError(Box::new(self)),
            Error::InvalidType(_) | Error::WrongAggregate { .. } | Error::Deserialize { .. } => {
                AggregateError::DeserializationError(Box::new(self))
            }
            Error::InvalidName { .. }
            | Error::InvalidId(_)
            | Error::InvalidVersion(_)
            | Error::Serialize { .. }
            | Error::Duplicate
            | Error::Store(_) => AggregateError::UnexpectedError(Box::new(self)),
        }
    }
}
