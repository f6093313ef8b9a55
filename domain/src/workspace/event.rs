use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::DomainEvent;
use crate::ids::{Actor, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum WorkspaceEvent {
    Created(WorkspaceCreated),
    Updated(WorkspaceUpdated),
    Archived(WorkspaceArchived),
}

/// A workspace came into being.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreated {
    pub id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
}

/// Some of a workspace's descriptive fields changed; absent fields kept their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub updated_by: Actor,
    pub updated_at: DateTime<Utc>,
}

/// A workspace was archived: it accepts no further change, and its computations follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceArchived {
    pub archived_by: Actor,
    pub archived_at: DateTime<Utc>,
}

impl DomainEvent for WorkspaceEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Updated(_) => "updated",
            Self::Archived(_) => "archived",
        }
    }
}
