use serde::{Deserialize, Serialize};

use super::event::AuthorityKeys;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorityStatus {
    #[default]
    New,
    Established,
}

/// The authority's certificates (PEM) and where its keys are sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    pub status: AuthorityStatus,
    pub root: String,
    pub intermediate: String,
    pub responder: String,
    pub keys: Option<AuthorityKeys>,
}
