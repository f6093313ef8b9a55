//! Reactions that failed for good: recorded, so that nothing a worker gives up on is lost silently;
//! listed for operators, who may ask for another attempt.

use prism_domain::reaction::{Reaction, ReactionCommand, ReactionFailed};
use prism_projections::{REACTIONS, ReactionView};

use prism_domain::access::Permission;

use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "reaction";

#[derive(Debug, Clone, Copy)]
pub struct Reactions<'a> {
    app: &'a App,
}

impl<'a> Reactions<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The id of the record of `worker` giving up on `event_id`.
    pub fn id(worker: &str, event_id: &str) -> String {
        format!("{worker}-{event_id}")
    }

    /// Records that `failure.worker` gave up on an event. One record per (worker, event): recording it
    /// again is a no-op unless a retry was asked for in between.
    pub async fn record_failure(&self, caller: &Caller, failure: ReactionFailed) -> Result<(), AppError> {
        let id = Self::id(&failure.worker, &failure.event_id);
        // Keyed by the attempt count as well: a failure recorded again after a retry is a new command.
        let key = format!("{}-{}", failure.event_id, failure.failed_at.timestamp_micros());
        let command = Command {
            what: WHAT,
            operation: "record_failure",
            permission: Permission::PlatformOperate,
            target: Target::Existing(id),
            workspace: None,
            input: &key,
        };
        match self
            .app
            .execute::<Reaction, _>(caller, &CommandOptions::keyed(key.clone()), command, |_| {
                ReactionCommand::RecordFailure(failure.clone())
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the worker to try the event again.
    pub async fn retry(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        id: &str,
    ) -> Result<Executed<Reaction>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "retry",
            permission: Permission::PlatformOperate,
            target: Target::Existing(id.to_owned()),
            workspace: None,
            input: &(),
        };
        self.app
            .execute(caller, options, command, |_| ReactionCommand::Retry)
            .await
    }

    /// Records that a retried reaction succeeded (the worker, keyed by the retry request's event id).
    pub async fn resolve(&self, caller: &Caller, options: &CommandOptions, id: &str) -> Result<(), AppError> {
        let command = Command {
            what: WHAT,
            operation: "resolve",
            permission: Permission::PlatformOperate,
            target: Target::Existing(id.to_owned()),
            workspace: None,
            input: &(),
        };
        match self
            .app
            .execute::<Reaction, _>(caller, options, command, |_| ReactionCommand::Resolve)
            .await
        {
            Ok(_) => Ok(()),
            // Resolved already (a redelivered retry request).
            Err(e) if e.kind == ErrorKind::StateConflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Failed reactions, newest first; only those in `status` (`failed`, `retry_requested`,
    /// `resolved`) when given.
    pub async fn list(
        &self,
        caller: &Caller,
        status: Option<&str>,
        limit: u32,
        read: ReadOptions,
    ) -> Result<Vec<ReactionView>, AppError> {
        self.app
            .authorize(caller, Action::platform(Permission::PlatformOperate))
            .await?;
        self.app.wait_read(&[REACTIONS], read).await?;
        Ok(self.app.read_models()?.reactions(status, limit).await?)
    }
}
