use super::event::DenialReason;
use crate::access::Permission;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialCommand {
    /// Records one refused request; the refused actor is the command's actor.
    Record {
        reason: DenialReason,
        permission: Option<Permission>,
        resource: String,
        detail: String,
        source: Option<String>,
        /// Denials from the same source not recorded one by one since the last record (a flood is
        /// summarised rather than written at the rate it arrives).
        suppressed: u64,
    },
}
