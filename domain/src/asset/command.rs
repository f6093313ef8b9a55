use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::state::{AssetRecord, Sample};
use crate::ids::{AssetId, ComputationId, UserId, WorkspaceId};
use crate::values::MimeType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetCommand {
    /// `owner` registers an asset of `workspace_id` (which the application layer found active).
    Register {
        id: AssetId,
        workspace_id: WorkspaceId,
        owner: UserId,
        record: AssetRecord,
    },
    /// `by` changes what may change: the description and the MIME type. The digest and the file name
    /// may not (see [`AssetRecord`]).
    Update { by: UserId, changes: AssetChanges },
    /// `by` attaches a sample, replacing any before it; its bytes are already kept under
    /// [`Sample::blob_name`].
    AttachSample { by: UserId, sample: Sample },
    /// `by` removes the sample; nothing happens when there is none.
    RemoveSample { by: UserId },
    /// `by` takes the asset out of use; `linked_to` are the active computations that link it, as the
    /// application layer found them (refused unless none).
    Archive {
        by: UserId,
        linked_to: Vec<ComputationId>,
    },
}

/// A partial change of an asset's record; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<MimeType>,
}

impl AssetChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Drops the fields whose new value is the current one.
    pub(crate) fn without_unchanged(mut self, current: &AssetRecord) -> Self {
        self.description = self.description.filter(|d| *d != current.description);
        self.mime_type = self.mime_type.filter(|m| *m != current.mime_type);
        self
    }

    pub(crate) fn applied_to(&self, record: &mut AssetRecord) {
        if let Some(d) = &self.description {
            record.description = d.clone();
        }
        if let Some(m) = &self.mime_type {
            record.mime_type = m.clone();
        }
    }
}
