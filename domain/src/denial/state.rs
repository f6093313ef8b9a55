use serde::{Deserialize, Serialize};

/// A denial record: it exists once recorded, and never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDenial {
    pub recorded: bool,
}
