//! Archiving a workspace archives every computation in it. A reaction, not a transaction: the
//! computations are separate aggregates, and each is archived by its own idempotent command.

use std::sync::Arc;
use std::time::Duration;

use prism_domain::computation::{Computation, ComputationCommand, ComputationError, ComputationEvent};
use prism_domain::workspace::{Workspace, WorkspaceEvent, WorkspaceStatus};
use prism_domain::{Aggregate as _, ComputationId, WorkspaceId};
use prism_projections::{COMPUTATIONS, ReadModels};
use prism_store::{CommandError, EventEnvelope, Repository, StoredCommit};
use tracing::info;

use crate::runtime::{ReactionError, Reactor, caused_by};

const NAME: &str = "workspace-archiver";
/// How long to wait for the computations projection to reach the archiving event.
const PROJECTION_WAIT: Duration = Duration::from_secs(10);

/// Reacts to two events, which together leave no computation of an archived workspace active:
/// * a workspace archived → archive each computation the read model lists as of that event;
/// * a computation created → archive it if its workspace is archived by now (a creation that raced with
///   the archiving and so is missing from that list).
#[derive(Debug, Clone)]
pub struct WorkspaceArchiver {
    workspaces: Arc<Repository<Workspace>>,
    computations: Arc<Repository<Computation>>,
    read: ReadModels,
}

impl WorkspaceArchiver {
    pub fn new(
        workspaces: Arc<Repository<Workspace>>,
        computations: Arc<Repository<Computation>>,
        read: ReadModels,
    ) -> Self {
        Self {
            workspaces,
            computations,
            read,
        }
    }

    async fn archive(&self, computation: ComputationId, cause: &EventEnvelope) -> Result<(), ReactionError> {
        let command = ComputationCommand::Archive {
            reason: Some("workspace archived".into()),
        };
        // The causing event's id is the idempotency key: a redelivered event replays, never re-archives.
        let key = cause.id.as_str();
        match self
            .computations
            .execute(&computation, command, &caused_by(cause, NAME), Some(key), None)
            .await
        {
            Ok(_) => Ok(()),
            // Archived already (by a user, or by the other half of this reactor): nothing to do.
            Err(CommandError::Rejected(ComputationError::AlreadyArchived | ComputationError::NotFound)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn workspace_archived(
        &self,
        workspace: WorkspaceId,
        sequence: u64,
        cause: &EventEnvelope,
    ) -> Result<(), ReactionError> {
        self.read
            .wait_for(COMPUTATIONS, sequence, PROJECTION_WAIT)
            .await?;
        let computations = self.read.active_computation_ids(workspace).await?;
        info!(%workspace, count = computations.len(), "archiving the computations of an archived workspace");
        for computation in computations {
            self.archive(computation, cause).await?;
        }
        Ok(())
    }

    async fn computation_created(
        &self,
        workspace: WorkspaceId,
        computation: ComputationId,
        cause: &EventEnvelope,
    ) -> Result<(), ReactionError> {
        if self.workspaces.load(&workspace).await?.state.status == WorkspaceStatus::Archived {
            info!(%workspace, %computation, "computation created in an archived workspace; archiving it");
            self.archive(computation, cause).await?;
        }
        Ok(())
    }
}

impl Reactor for WorkspaceArchiver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Workspace::TYPE, Computation::TYPE]
    }

    async fn react<'a>(&'a self, commit: &'a StoredCommit) -> Result<(), ReactionError> {
        for envelope in &commit.events {
            let fatal = |e: &dyn std::fmt::Display| {
                ReactionError::Fatal(format!("undecodable event {}: {e}", envelope.id))
            };
            match envelope.aggregatetype.as_str() {
                Workspace::TYPE => {
                    if let WorkspaceEvent::Archived(_) = envelope
                        .decode::<WorkspaceEvent>(Workspace::TYPE)
                        .map_err(|e| fatal(&e))?
                    {
                        let id: WorkspaceId = envelope.aggregateid.parse().map_err(|e| fatal(&e))?;
                        self.workspace_archived(id, commit.sequence, envelope).await?;
                    }
                }
                Computation::TYPE => {
                    if let ComputationEvent::Created(created) = envelope
                        .decode::<ComputationEvent>(Computation::TYPE)
                        .map_err(|e| fatal(&e))?
                    {
                        self.computation_created(created.workspace_id, created.id, envelope)
                            .await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
