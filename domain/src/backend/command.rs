use super::event::BackendSettings;
use crate::ids::{BackendId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendCommand {
    /// Registers a backend in a workspace, or for the whole platform (`workspace: None`).
    Register {
        id: BackendId,
        workspace: Option<WorkspaceId>,
        settings: BackendSettings,
    },
    /// Replaces what the backend offers and how it is reached (not its kind of driver).
    Update { settings: BackendSettings },
    /// Records the outcome of a health check; only a change is an event.
    RecordHealth { healthy: bool, detail: String },
    /// Takes the backend out of use; CVMs running there stay until they are destroyed.
    Remove,
}
