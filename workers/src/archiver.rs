//! Archiving a workspace archives every computation in it. Reactions, not a transaction: the
//! computations are separate aggregates, and each is archived by its own idempotent command. Two
//! reactors together leave no computation of an archived workspace active:
//! * [`WorkspaceArchiver`]: a workspace archived → archive each computation the read model lists as of
//!   that event;
//! * [`LateComputationArchiver`]: a computation created → archive it if its workspace is archived by
//!   now (a creation that raced with the archiving and so is missing from that list).

use prism_app::{App, CommandOptions, ErrorKind};
use prism_domain::computation::{Computation, ComputationEvent};
use prism_domain::workspace::{Workspace, WorkspaceEvent, WorkspaceStatus};
use prism_domain::{ComputationId, WorkspaceId};
use prism_store::{EventMeta, Recorded};
use tracing::info;

use crate::runtime::{ReactionError, Reactor, aggregate_id, caused_by, read_as_of};

const REASON: &str = "workspace archived";

/// Archives the computations of an archived workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceArchiver {
    app: App,
}

impl WorkspaceArchiver {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// Archives a computation created in a workspace that was archived meanwhile.
#[derive(Debug, Clone)]
pub struct LateComputationArchiver {
    app: App,
}

impl LateComputationArchiver {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// Archives one computation because of `cause`; one archived already (by a user, or by the other
/// reactor) is fine. The causing event's id is the idempotency key: a redelivered event replays,
/// never re-archives.
async fn archive(
    app: &App,
    worker: &str,
    workspace: WorkspaceId,
    computation: ComputationId,
    cause: &EventMeta,
) -> Result<(), ReactionError> {
    let result = app
        .computations()
        .archive(
            &caused_by(cause, worker),
            &CommandOptions::keyed(cause.id.clone()),
            workspace,
            computation,
            Some(REASON.into()),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind, ErrorKind::StateConflict | ErrorKind::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Reactor for WorkspaceArchiver {
    type Aggregate = Workspace;
    const NAME: &'static str = "workspace-archiver";

    async fn react<'a>(&'a self, recorded: &'a Recorded<WorkspaceEvent>) -> Result<(), ReactionError> {
        let WorkspaceEvent::Archived(_) = recorded.event else {
            return Ok(());
        };
        let meta = &recorded.meta;
        let workspace: WorkspaceId = aggregate_id(meta)?;
        // The list must be read as of the archiving event.
        let read = self.app.read_models()?;
        let computations = read_as_of(meta, "computations", || {
            read.active_computation_ids_as_of(workspace, meta.sequence)
        })
        .await?;
        info!(%workspace, count = computations.len(), "archiving the computations of an archived workspace");
        for computation in computations {
            archive(&self.app, Self::NAME, workspace, computation, meta).await?;
        }
        Ok(())
    }
}

impl Reactor for LateComputationArchiver {
    type Aggregate = Computation;
    const NAME: &'static str = "late-computation-archiver";

    async fn react<'a>(&'a self, recorded: &'a Recorded<ComputationEvent>) -> Result<(), ReactionError> {
        let ComputationEvent::Created(created) = &recorded.event else {
            return Ok(());
        };
        let workspace = self
            .app
            .repository::<Workspace>()
            .load(&created.workspace_id)
            .await
            .map_err(prism_app::AppError::from)?;
        if workspace.state.status == WorkspaceStatus::Archived {
            info!(workspace = %created.workspace_id, computation = %created.id, "computation created in an archived workspace; archiving it");
            archive(
                &self.app,
                Self::NAME,
                created.workspace_id,
                created.id,
                &recorded.meta,
            )
            .await?;
        }
        Ok(())
    }
}
