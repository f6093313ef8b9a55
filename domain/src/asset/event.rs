use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::AssetChanges;
use super::state::{AssetRecord, Sample};
use crate::aggregate::DomainEvent;
use crate::ids::{Actor, AssetId, UserId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum AssetEvent {
    Registered(AssetRegistered),
    Updated(AssetUpdated),
    SampleAttached(SampleAttached),
    SampleRemoved(SampleRemoved),
    Archived(AssetArchived),
}

/// An algorithm or dataset was recorded in a workspace: what its file is, never the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetRegistered {
    pub id: AssetId,
    pub workspace_id: WorkspaceId,
    /// The user it belongs to.
    pub owner: UserId,
    pub record: AssetRecord,
    pub registered_by: Actor,
    pub registered_at: DateTime<Utc>,
}

/// The description or the MIME type changed; only the changed fields are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetUpdated {
    pub changes: AssetChanges,
    pub updated_by: Actor,
    pub updated_at: DateTime<Utc>,
}

/// A sample was attached (replacing any before it). Its bytes are kept by the platform outside the
/// log; this says which bytes they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleAttached {
    pub sample: Sample,
    /// SHA-256 (hex) of the sample it replaced, whose bytes are no longer kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    pub attached_by: Actor,
    pub attached_at: DateTime<Utc>,
}

/// The sample was removed; its bytes are no longer kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRemoved {
    /// SHA-256 (hex) of the sample removed.
    pub sha256: String,
    pub removed_by: Actor,
    pub removed_at: DateTime<Utc>,
}

/// The asset is out of use: it can no longer be linked to a computation or changed. Its record stays,
/// for the computations that named it and for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetArchived {
    pub archived_by: Actor,
    pub archived_at: DateTime<Utc>,
}

impl DomainEvent for AssetEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Registered(_) => "registered",
            Self::Updated(_) => "updated",
            Self::SampleAttached(_) => "sample_attached",
            Self::SampleRemoved(_) => "sample_removed",
            Self::Archived(_) => "archived",
        }
    }
}
