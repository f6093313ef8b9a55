//! Who asks, and in which conversation: what every transport tells the application layer besides the
//! request itself.

use prism_domain::Actor;
use prism_store::EventMeta;

/// The actor recorded on commands while the platform has no authentication. Identity replaces it with
/// the authenticated principal; until then every request from outside is attributed to this name.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    /// Ties every event caused, directly or not, by one request together (e.g. `X-Request-Id`).
    pub correlation_id: Option<String>,
    /// The event (or request) that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context, recorded on the events.
    pub traceparent: Option<String>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self::actor(Actor(ANONYMOUS.into()))
    }

    pub fn actor(actor: Actor) -> Self {
        Self {
            actor,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
        }
    }

    /// A platform service acting on its own (`service:<name>`).
    pub fn service(name: &str) -> Self {
        Self::actor(Actor::service(name))
    }

    /// A worker reacting to `event`: same correlation and trace, caused by the event.
    pub fn reacting_to(event: &EventMeta, worker: &str) -> Self {
        Self {
            actor: Actor::service(worker),
            correlation_id: Some(event.correlation_id.clone()),
            causation_id: Some(event.id.clone()),
            traceparent: event.traceparent.clone(),
        }
    }
}

/// How a command is to be run, besides its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOptions {
    /// Makes the command safe to retry: a retry with the same key and content answers the first result
    /// (and, for a create, names the same new aggregate); the same key with other content is refused.
    pub idempotency_key: Option<String>,
    /// The aggregate must be at this version (`If-Match`), or nothing happens.
    pub expected_version: Option<u64>,
}

impl CommandOptions {
    pub fn keyed(key: impl Into<String>) -> Self {
        Self {
            idempotency_key: Some(key.into()),
            expected_version: None,
        }
    }
}
