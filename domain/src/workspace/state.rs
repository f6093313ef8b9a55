use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkspaceStatus {
    /// No event yet: the aggregate does not exist.
    #[default]
    New,
    Active,
    Archived,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    pub status: WorkspaceStatus,
    pub id: Option<WorkspaceId>,
    pub name: String,
    pub description: String,
}
