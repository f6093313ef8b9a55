use serde::{Deserialize, Serialize};

use crate::ids::WorkspaceId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// No event yet: the aggregate does not exist.
    #[default]
    New,
    Active,
    Archived,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub status: WorkspaceStatus,
    pub id: Option<WorkspaceId>,
    pub name: String,
    pub description: String,
}
