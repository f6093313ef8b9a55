use serde::{Deserialize, Serialize};

use super::event::SecretRef;
use super::filter::EventTypePattern;
use crate::ids::{WebhookId, WorkspaceId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// No event yet: the endpoint does not exist.
    #[default]
    New,
    /// Registered (or given a new URL); nothing is delivered until the endpoint answers the
    /// handshake. Events are kept for it meanwhile.
    PendingValidation,
    /// Validated: deliveries go out.
    Active,
    Deleted,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::PendingValidation => "pending_validation",
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub status: WebhookStatus,
    pub id: Option<WebhookId>,
    pub workspace: Option<WorkspaceId>,
    pub url: String,
    pub event_types: Vec<EventTypePattern>,
    pub description: String,
    /// Where the current signing secret is sealed, and its fingerprint.
    pub secret: Option<SecretRef>,
    /// Deliveries that exhausted their attempts, as recorded.
    pub failed_deliveries: u64,
}
