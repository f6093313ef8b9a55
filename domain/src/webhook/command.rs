use super::event::{DeliveryFailure, SecretRef};
use super::filter::EventTypePattern;
use crate::ids::{WebhookId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookCommand {
    /// Registers an endpoint of `workspace` for the events `event_types` match. Its signing secret
    /// is sealed in the platform's key store before this command is sent; the command names it.
    Register {
        id: WebhookId,
        workspace: WorkspaceId,
        url: String,
        event_types: Vec<EventTypePattern>,
        description: String,
        secret: SecretRef,
    },
    /// Changes what is given; a new URL must pass the handshake again.
    Update {
        url: Option<String>,
        event_types: Option<Vec<EventTypePattern>>,
        description: Option<String>,
    },
    /// Signs from now on with the secret `secret` names (sealed before this command is sent).
    RotateSecret { secret: SecretRef },
    /// The endpoint at `url` answered the abuse-protection handshake: deliveries may go there.
    Validate { url: String },
    /// A delivery exhausted its attempts.
    RecordDeliveryFailure { failure: DeliveryFailure },
    /// Deletes the endpoint: nothing more is delivered to it.
    Delete,
}
