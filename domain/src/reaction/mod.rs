//! Reaction failures: a worker that gave up on an event records why, so nothing is dropped silently,
//! and an operator can ask for another attempt. One aggregate per (worker, causing event):
//! Failed → RetryRequested → Resolved, or Failed again.

mod command;
mod error;
mod event;
mod state;

pub use command::ReactionCommand;
pub use error::ReactionError;
pub use event::{ReactionEvent, ReactionFailed, ReactionResolved, ReactionRetryRequested};
pub use state::{Reaction, ReactionStatus};

use crate::aggregate::{Aggregate, CommandContext};

impl Aggregate for Reaction {
    const TYPE: &'static str = "reaction";
    type Command = ReactionCommand;
    type Event = ReactionEvent;
    type Error = ReactionError;

    fn decide(
        &self,
        command: ReactionCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<ReactionEvent>, ReactionError> {
        use ReactionCommand as C;
        use ReactionStatus as S;
        match (self.status, command) {
            // A failure is recorded once; recorded again only after a retry that failed too.
            (S::New | S::RetryRequested, C::RecordFailure(failure)) => {
                Ok(vec![ReactionEvent::Failed(failure)])
            }
            (S::Failed | S::Resolved, C::RecordFailure(_)) => Err(ReactionError::AlreadyRecorded),
            (S::Failed, C::Retry) => {
                let failure = self.failure.as_ref().ok_or(ReactionError::NotFound)?;
                Ok(vec![ReactionEvent::RetryRequested(ReactionRetryRequested {
                    worker: failure.worker.clone(),
                    stream_sequence: failure.stream_sequence,
                    requested_by: ctx.actor.clone(),
                    requested_at: ctx.now,
                })])
            }
            (S::New, C::Retry | C::Resolve) => Err(ReactionError::NotFound),
            (S::RetryRequested, C::Retry) => Err(ReactionError::RetryPending),
            (S::Resolved, C::Retry | C::Resolve) => Err(ReactionError::Resolved),
            (S::Failed, C::Resolve) => Err(ReactionError::NoRetryPending),
            (S::RetryRequested, C::Resolve) => Ok(vec![ReactionEvent::Resolved(ReactionResolved {
                resolved_at: ctx.now,
            })]),
        }
    }

    fn apply(&mut self, event: &ReactionEvent) {
        match event {
            ReactionEvent::Failed(f) => {
                self.status = ReactionStatus::Failed;
                self.failure = Some(f.clone());
            }
            ReactionEvent::RetryRequested(_) => self.status = ReactionStatus::RetryRequested,
            ReactionEvent::Resolved(_) => self.status = ReactionStatus::Resolved,
        }
    }
}

#[cfg(test)]
mod tests;
