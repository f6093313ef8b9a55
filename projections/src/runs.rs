use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use prism_domain::DomainEvent as _;
use prism_domain::run::{self, Run, RunEvent, RunStatus};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{Projection, ProjectionError, RUNS};

/// The `runs` table: one row per run with where it is, its CVM and how it ended, as of its last event.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunsProjection;

/// What an event changes besides the status, the version and the time of the last change.
#[derive(Default)]
struct Changes<'a> {
    cvm: Option<uuid::Uuid>,
    ending_during: Option<&'static str>,
    ending_reason: Option<&'a str>,
    ended_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    fetch_until: Option<DateTime<Utc>>,
}

impl Projection for RunsProjection {
    type Aggregate = Run;

    fn name(&self) -> &'static str {
        RUNS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["runs"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<RunEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        let mut changes = Changes::default();
        match &recorded.event {
            RunEvent::Requested(e) => {
                tx.execute(
                    "INSERT INTO runs (id, workspace_id, computation_id, manifest_id, status, requested_by,
                                       requested_at, deadline, updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9)",
                    &[
                        &id,
                        &e.workspace.as_uuid(),
                        &e.computation.as_uuid(),
                        &e.manifest_id,
                        &RunStatus::Requested.as_str(),
                        &e.requested_by.0,
                        &e.at,
                        &e.deadline,
                        &v,
                    ],
                )
                .await?;
                return Ok(());
            }
            RunEvent::ProvisioningStarted(e) => changes.cvm = Some(e.cvm.as_uuid()),
            RunEvent::StopRequested(e) | RunEvent::Failed(e) | RunEvent::TimedOut(e) => {
                changes.ending_during = Some(e.during.as_str());
                changes.ending_reason = Some(&e.reason);
                changes.ended_at = Some(e.at);
            }
            RunEvent::Completed(e) => changes.ended_at = Some(e.at),
            RunEvent::ResultsReady(e) => changes.fetch_until = Some(e.fetch_until),
            RunEvent::Closed(e) => changes.closed_at = Some(e.at),
            // The other steps only move the run along, and so do steps the machine may gain later
            // until they carry something the table keeps.
            _ => {}
        }
        // The status follows the state machine from the row's current state, exactly as the aggregate
        // moves, so that a step never listed here still lands the run in the right state.
        let Some(row) = tx
            .query_opt("SELECT status FROM runs WHERE id = $1", &[&id])
            .await?
        else {
            // No request was projected for it: there is no row to change (as an UPDATE would find).
            return Ok(());
        };
        let text: &str = row.get(0);
        let current = RunStatus::parse(text).ok_or_else(|| ProjectionError::Corrupt {
            what: format!("the status of run {id}"),
            source: format!("`{text}` is not a run status").into(),
        })?;
        let status = run::next(current, recorded.event.name()).unwrap_or(current);
        // The event's time is the command's, which every run event also records as its `at`.
        tx.execute(
            "UPDATE runs SET status = $2, cvm_id = COALESCE($3, cvm_id),
                             ending_during = COALESCE($4, ending_during),
                             ending_reason = COALESCE($5, ending_reason), ended_at = COALESCE($6, ended_at),
                             closed_at = COALESCE($7, closed_at), updated_at = $8, version = $9,
                             fetch_until = COALESCE($10, fetch_until)
             WHERE id = $1",
            &[
                &id,
                &status.as_str(),
                &changes.cvm,
                &changes.ending_during,
                &changes.ending_reason,
                &changes.ended_at,
                &changes.closed_at,
                &recorded.meta.time,
                &v,
                &changes.fetch_until,
            ],
        )
        .await?;
        Ok(())
    }
}
