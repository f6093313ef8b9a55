use crate::ids::WorkspaceId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceCommand {
    Create {
        id: WorkspaceId,
        name: String,
        description: String,
    },
    /// Changes the given fields; fields equal to the current value are ignored.
    Update {
        name: Option<String>,
        description: Option<String>,
    },
    Archive,
}
