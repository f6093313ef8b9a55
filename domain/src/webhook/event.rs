use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filter::EventTypePattern;
use crate::aggregate::DomainEvent;
use crate::ids::{Actor, WebhookId, WorkspaceId};

/// Where an endpoint's signing secret is kept — never the secret itself: the log is read by
/// auditors, and a secret in it would let any of them sign deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The name under which the secret is sealed in the platform's key store.
    pub key: String,
    /// SHA-256 of the secret (lowercase hex): which secret signed, without revealing it.
    pub fingerprint: String,
}

/// A delivery that exhausted its attempts: the event was not delivered, and this says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    pub delivery: uuid::Uuid,
    pub event_id: String,
    pub event_type: String,
    pub attempts: u32,
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum WebhookEvent {
    Registered(WebhookRegistered),
    Updated(WebhookUpdated),
    SecretRotated(WebhookSecretRotated),
    Validated(WebhookValidated),
    DeliveryFailed(WebhookDeliveryFailed),
    Deleted(WebhookDeleted),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRegistered {
    pub id: WebhookId,
    pub workspace: WorkspaceId,
    pub url: String,
    pub event_types: Vec<EventTypePattern>,
    pub description: String,
    pub secret: SecretRef,
    pub registered_by: Actor,
    pub registered_at: DateTime<Utc>,
}

/// What changed; absent fields stayed as they were. A new URL must pass the handshake again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<EventTypePattern>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub updated_by: Actor,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecretRotated {
    pub secret: SecretRef,
    pub rotated_by: Actor,
    pub rotated_at: DateTime<Utc>,
}

/// The endpoint at `url` answered the abuse-protection handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookValidated {
    pub url: String,
    pub validated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveryFailed {
    /// The delivery (as `GET /{workspace}/webhooks/{id}/deliveries` lists it).
    pub delivery: uuid::Uuid,
    /// The CloudEvents id of the event that was not delivered.
    pub event_id: String,
    pub event_type: String,
    pub attempts: u32,
    /// What the last attempt met: the status the endpoint answered, or why there was no answer.
    pub last_error: String,
    pub failed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeleted {
    pub deleted_by: Actor,
    pub deleted_at: DateTime<Utc>,
}

impl DomainEvent for WebhookEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Registered(_) => "registered",
            Self::Updated(_) => "updated",
            Self::SecretRotated(_) => "secret_rotated",
            Self::Validated(_) => "validated",
            Self::DeliveryFailed(_) => "delivery_failed",
            Self::Deleted(_) => "deleted",
        }
    }
}
