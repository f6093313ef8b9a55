//! Who asks, and in which conversation: what every transport tells the application layer besides the
//! request itself.

use std::collections::BTreeSet;
use std::net::IpAddr;

use prism_domain::access::Permission;
use prism_domain::values::Email;
use prism_domain::{Actor, ApiKeyId, SessionId, UserId, WorkspaceId};
use prism_store::EventMeta;

/// The actor recorded for requests that presented no (valid) credentials.
pub const ANONYMOUS: &str = "anonymous";

/// The authenticated identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials: may sign in and register, nothing else.
    Anonymous,
    /// A user, signed in (access token) or through one of its API keys.
    User(UserPrincipal),
    /// A platform service acting on its own (a worker, the CLI on the host).
    Service(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPrincipal {
    pub id: UserId,
    pub email: Email,
    pub platform_admin: bool,
    /// The sign-in session of the access token, when signed in.
    pub session: Option<SessionId>,
    /// The API key, when the request carried one instead of an access token.
    pub api_key: Option<ApiKeyScope>,
}

/// What an API key limits its owner to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyScope {
    pub id: ApiKeyId,
    pub workspace: WorkspaceId,
    pub permissions: BTreeSet<Permission>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// Recorded on the events: `user:<id>`, `api_key:<id>`, `service:<name>` or `anonymous`.
    pub actor: Actor,
    /// Where the request came from, as the transport saw it (for throttling and denial records).
    pub source: Option<IpAddr>,
    /// Ties every event caused, directly or not, by one request together (e.g. `X-Request-Id`).
    pub correlation_id: Option<String>,
    /// The event (or request) that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context, recorded on the events.
    pub traceparent: Option<String>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self::of(Principal::Anonymous)
    }

    pub fn of(principal: Principal) -> Self {
        let actor = match &principal {
            Principal::Anonymous => Actor(ANONYMOUS.into()),
            Principal::User(UserPrincipal {
                api_key: Some(key), ..
            }) => Actor(format!("api_key:{}", key.id)),
            Principal::User(user) => Actor::user(user.id),
            Principal::Service(name) => Actor::service(name),
        };
        Self {
            principal,
            actor,
            source: None,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
        }
    }

    /// A platform-internal caller recorded under exactly `actor` (tools, tests).
    pub fn actor(actor: Actor) -> Self {
        Self {
            actor: actor.clone(),
            ..Self::of(Principal::Service(actor.0))
        }
    }

    /// A platform service acting on its own (`service:<name>`).
    pub fn service(name: &str) -> Self {
        Self::of(Principal::Service(name.into()))
    }

    /// A worker reacting to `event`: same correlation and trace, caused by the event.
    pub fn reacting_to(event: &EventMeta, worker: &str) -> Self {
        Self {
            correlation_id: Some(event.correlation_id.clone()),
            causation_id: Some(event.id.clone()),
            traceparent: event.traceparent.clone(),
            ..Self::service(worker)
        }
    }

    /// The metadata of the events this caller's command records.
    pub fn metadata(&self, workspace: Option<String>) -> prism_store::Metadata {
        prism_store::Metadata {
            workspace,
            actor: self.actor.0.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            traceparent: self.traceparent.clone(),
        }
    }

    /// The signed-in user (through a session or an API key), if any.
    pub fn user(&self) -> Option<&UserPrincipal> {
        match &self.principal {
            Principal::User(user) => Some(user),
            _ => None,
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
