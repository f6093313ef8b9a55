//! Reactions that failed for good: recorded, so that nothing a worker gives up on is lost silently.

use prism_domain::reaction::{Reaction, ReactionCommand, ReactionFailed};

use crate::{App, AppError, Caller, Command, CommandOptions, ErrorKind, Target};

#[derive(Debug, Clone, Copy)]
pub struct Reactions<'a> {
    app: &'a App,
}

impl<'a> Reactions<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Records that `failure.worker` gave up on an event. One record per (worker, event): recording it
    /// again is a no-op.
    pub async fn record_failure(&self, caller: &Caller, failure: ReactionFailed) -> Result<(), AppError> {
        let id = format!("{}-{}", failure.worker, failure.event_id);
        let key = failure.event_id.clone();
        let command = Command {
            what: "reaction",
            operation: "record_failure",
            target: Target::Existing(id),
            workspace: None,
            input: &failure.event_id,
        };
        match self
            .app
            .execute::<Reaction, _>(caller, &CommandOptions::keyed(key), command, |_| {
                ReactionCommand::RecordFailure(failure.clone())
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}
