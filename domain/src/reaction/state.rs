use serde::{Deserialize, Serialize};

use super::event::ReactionFailed;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionStatus {
    #[default]
    New,
    Failed,
    RetryRequested,
    Resolved,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub status: ReactionStatus,
    /// The last recorded failure.
    pub failure: Option<ReactionFailed>,
}
