//! Access denials: every refused request (no or bad credentials, a missing permission, a resource of a
//! workspace the caller has no part in) is recorded, so that unauthorised access attempts can be
//! watched and investigated from the event log. Each record is its own aggregate of one event: denials
//! are independent facts, and one stream per actor would make a flood of them contend.

mod command;
mod error;
mod event;
mod state;

pub use command::DenialCommand;
pub use error::DenialError;
pub use event::{AccessDenied, DenialEvent, DenialReason};
pub use state::AccessDenial;

use crate::aggregate::{Aggregate, CommandContext};
use crate::values::check_text;

/// Longest detail, resource or source kept (they come from requests).
pub const TEXT_MAX: usize = 512;

impl Aggregate for AccessDenial {
    const TYPE: &'static str = "access";
    type Command = DenialCommand;
    type Event = DenialEvent;
    type Error = DenialError;

    fn decide(&self, command: DenialCommand, ctx: &CommandContext) -> Result<Vec<DenialEvent>, DenialError> {
        if self.recorded {
            return Err(DenialError::AlreadyRecorded);
        }
        let DenialCommand::Record {
            reason,
            permission,
            resource,
            detail,
            source,
            suppressed,
        } = command;
        // Request-supplied text is cleaned rather than refused: a denial must be recorded whatever the
        // request carried.
        let clip = |s: String| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(TEXT_MAX)
                .collect::<String>()
        };
        let (resource, detail, source) = (clip(resource), clip(detail), source.map(clip));
        check_text("resource", &resource, TEXT_MAX, false)?;
        check_text("detail", &detail, TEXT_MAX, false)?;
        Ok(vec![DenialEvent::Denied(AccessDenied {
            actor: ctx.actor.clone(),
            reason,
            permission,
            resource,
            detail,
            source,
            suppressed,
            at: ctx.now,
        })])
    }

    fn apply(&mut self, event: &DenialEvent) {
        match event {
            DenialEvent::Denied(_) => self.recorded = true,
        }
    }
}

#[cfg(test)]
mod tests;
