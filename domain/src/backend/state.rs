use serde::{Deserialize, Serialize};

use super::event::BackendSettings;
use crate::ids::{BackendId, WorkspaceId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendStatus {
    /// No event yet: the backend does not exist.
    #[default]
    New,
    Active,
    Removed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub status: BackendStatus,
    pub id: Option<BackendId>,
    /// `None` for a backend of the whole platform.
    pub workspace: Option<WorkspaceId>,
    pub settings: Option<BackendSettings>,
    pub healthy: bool,
    pub health_detail: String,
}
