//! What happened in each run and on the CVM made for it, one row per event: the read model of the
//! computation's and the run's events and logs (`activity_queries.rs`).
//!
//! Two projections, one per aggregate type, so that each owns its tables and rebuilds alone: a run's
//! events carry its computation, a CVM's only the run it is made for; queries join them by run.

use deadpool_postgres::Transaction;
use prism_domain::DomainEvent;
use prism_domain::cvm::{AgentMessage, Cvm, CvmEvent, CvmStatus};
use prism_domain::run::{self, Run, RunEvent, RunStatus};
use prism_store::{EventMeta, Recorded, event_data};

use crate::projection_support::{aggregate_uuid, version};
use crate::{CVM_ACTIVITY, Projection, ProjectionError, RUN_ACTIVITY};

/// Who caused an event, as the events API reports it.
///
/// * `agent` — a message of the CVM's agent (its logs and events);
/// * `manager` — what the backend that runs the CVM reported about the machine (made, online,
///   offline, described, destroyed, failed);
/// * `platform` — the platform's own workers and services (they act as `service:<name>`);
/// * `user` — anyone else: a user, or an API key of a user.
pub fn originator(aggregate: &str, event: &str, actor: &str) -> &'static str {
    match (aggregate, event) {
        ("cvm", "agent_message_received") => "agent",
        ("cvm", "started" | "online" | "offline" | "described" | "destroyed" | "failed") => "manager",
        _ if actor.starts_with("service:") => "platform",
        _ => "user",
    }
}

/// The event's payload as the log records it.
fn details(event: &impl DomainEvent) -> Result<serde_json::Value, ProjectionError> {
    event_data(event).map_err(|e| ProjectionError::Corrupt {
        what: format!("the payload of a `{}` event", event.name()),
        source: e.into(),
    })
}

/// The `run_activity` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunActivityProjection;

impl Projection for RunActivityProjection {
    type Aggregate = Run;

    fn name(&self) -> &'static str {
        RUN_ACTIVITY
    }

    fn tables(&self) -> &'static [&'static str] {
        &["run_activity"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<RunEvent>,
    ) -> Result<(), ProjectionError> {
        let run = aggregate_uuid(&recorded.meta)?;
        let name = recorded.event.name();
        let (workspace, computation, status) = match &recorded.event {
            RunEvent::Requested(e) => (
                e.workspace.as_uuid(),
                e.computation.as_uuid(),
                RunStatus::Requested,
            ),
            _ => {
                let Some(row) = tx
                    .query_opt(
                        "SELECT workspace_id, computation_id, status FROM run_activity
                         WHERE run_id = $1 ORDER BY sequence DESC, version DESC LIMIT 1",
                        &[&run],
                    )
                    .await?
                else {
                    // No request was projected for it: nothing to attach the event to.
                    return Ok(());
                };
                let text: &str = row.get(2);
                let current = RunStatus::parse(text).ok_or_else(|| ProjectionError::Corrupt {
                    what: format!("the status of run {run}"),
                    source: format!("`{text}` is not a run status").into(),
                })?;
                (
                    row.get(0),
                    row.get(1),
                    run::next(current, name).unwrap_or(current),
                )
            }
        };
        let meta = &recorded.meta;
        tx.execute(
            "INSERT INTO run_activity (sequence, version, event_id, run_id, workspace_id, computation_id,
                                       event, type, originator, actor, status, time, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT DO NOTHING",
            &[
                &(meta.sequence as i64),
                &version(meta),
                &meta.id,
                &run,
                &workspace,
                &computation,
                &name,
                &meta.event_type,
                &originator("run", name, &meta.actor),
                &meta.actor,
                &status.as_str(),
                &meta.time,
                &details(&recorded.event)?,
            ],
        )
        .await?;
        Ok(())
    }
}

/// The `cvm_activity` and `cvm_activity_machines` tables: the events of CVMs made for runs (a CVM
/// asked for by itself belongs to no run, and is left out).
#[derive(Debug, Clone, Copy, Default)]
pub struct CvmActivityProjection;

impl Projection for CvmActivityProjection {
    type Aggregate = Cvm;

    fn name(&self) -> &'static str {
        CVM_ACTIVITY
    }

    fn tables(&self) -> &'static [&'static str] {
        &["cvm_activity", "cvm_activity_machines"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<CvmEvent>,
    ) -> Result<(), ProjectionError> {
        let cvm = aggregate_uuid(&recorded.meta)?;
        let (run, workspace, status) = match &recorded.event {
            CvmEvent::Requested(e) => {
                let Some(run) = e.run else { return Ok(()) };
                let status = CvmStatus::Creating;
                tx.execute(
                    "INSERT INTO cvm_activity_machines (cvm_id, run_id, workspace_id, status)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (cvm_id) DO NOTHING",
                    &[&cvm, &run.as_uuid(), &e.workspace.as_uuid(), &status.as_str()],
                )
                .await?;
                (run.as_uuid(), e.workspace.as_uuid(), status)
            }
            event => {
                let Some(row) = tx
                    .query_opt(
                        "SELECT run_id, workspace_id, status FROM cvm_activity_machines WHERE cvm_id = $1",
                        &[&cvm],
                    )
                    .await?
                else {
                    // A CVM of no run.
                    return Ok(());
                };
                let text: &str = row.get(2);
                let current = CvmStatus::parse(text).ok_or_else(|| ProjectionError::Corrupt {
                    what: format!("the status of CVM {cvm}"),
                    source: format!("`{text}` is not a CVM status").into(),
                })?;
                let status = event.status_after(current);
                if status != current {
                    tx.execute(
                        "UPDATE cvm_activity_machines SET status = $2 WHERE cvm_id = $1",
                        &[&cvm, &status.as_str()],
                    )
                    .await?;
                }
                (row.get(0), row.get(1), status)
            }
        };
        let (level, message) = match &recorded.event {
            CvmEvent::AgentMessageReceived(e) => match &e.message {
                AgentMessage::Log { level, message, .. } => (Some(level.as_str()), Some(message.as_str())),
                _ => (None, None),
            },
            _ => (None, None),
        };
        insert_cvm_row(
            tx,
            &recorded.meta,
            &recorded.event,
            cvm,
            run,
            workspace,
            status,
            level,
            message,
        )
        .await
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_cvm_row(
    tx: &Transaction<'_>,
    meta: &EventMeta,
    event: &CvmEvent,
    cvm: uuid::Uuid,
    run: uuid::Uuid,
    workspace: uuid::Uuid,
    status: CvmStatus,
    level: Option<&str>,
    message: Option<&str>,
) -> Result<(), ProjectionError> {
    let name = event.name();
    tx.execute(
        "INSERT INTO cvm_activity (sequence, version, event_id, cvm_id, run_id, workspace_id, event, type,
                                   originator, actor, status, time, details, log_level, log_message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT DO NOTHING",
        &[
            &(meta.sequence as i64),
            &version(meta),
            &meta.id,
            &cvm,
            &run,
            &workspace,
            &name,
            &meta.event_type,
            &originator("cvm", name, &meta.actor),
            &meta.actor,
            &status.as_str(),
            &meta.time,
            &details(event)?,
            &level,
            &message,
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originators() {
        assert_eq!(
            originator("cvm", "agent_message_received", "service:agents"),
            "agent"
        );
        assert_eq!(originator("cvm", "destroyed", "service:provisioner"), "manager");
        assert_eq!(originator("cvm", "requested", "service:conductor"), "platform");
        assert_eq!(originator("run", "requested", "user:ada"), "user");
        assert_eq!(originator("run", "receipt_recorded", "api_key:1"), "user");
        assert_eq!(originator("run", "attested", "service:conductor"), "platform");
    }
}
