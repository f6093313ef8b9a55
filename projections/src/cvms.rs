use deadpool_postgres::Transaction;
use prism_domain::backend::{Backend, BackendEvent};
use prism_domain::cvm::{AgentMessage, Cvm, CvmEvent};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{BACKENDS, CVMS, Projection, ProjectionError};

/// The `backends` table: one row per backend, as of its last event.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendsProjection;

impl Projection for BackendsProjection {
    type Aggregate = Backend;

    fn name(&self) -> &'static str {
        BACKENDS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["backends"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<BackendEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        match &recorded.event {
            BackendEvent::Registered(e) => {
                let settings = serde_json::to_value(&e.settings).expect("settings serialise");
                tx.execute(
                    "INSERT INTO backends (id, workspace_id, name, kind, settings, healthy, status, created_at,
                                           updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, true, 'active', $6, $6, $7)",
                    &[
                        &id,
                        &e.workspace.map(|w| w.as_uuid()),
                        &e.settings.name,
                        &e.settings.driver.kind(),
                        &settings,
                        &e.registered_at,
                        &v,
                    ],
                )
                .await?;
            }
            BackendEvent::Updated(e) => {
                let settings = serde_json::to_value(&e.settings).expect("settings serialise");
                tx.execute(
                    "UPDATE backends SET name = $2, settings = $3, updated_at = $4, version = $5 WHERE id = $1",
                    &[&id, &e.settings.name, &settings, &e.updated_at, &v],
                )
                .await?;
            }
            BackendEvent::HealthChanged(e) => {
                tx.execute(
                    "UPDATE backends SET healthy = $2, health_detail = $3, updated_at = $4, version = $5
                     WHERE id = $1",
                    &[&id, &e.healthy, &e.detail, &e.at, &v],
                )
                .await?;
            }
            BackendEvent::Removed(e) => {
                tx.execute(
                    "UPDATE backends SET status = 'removed', updated_at = $2, version = $3 WHERE id = $1",
                    &[&id, &e.removed_at, &v],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The `cvms` table: one row per CVM with its state, backend, cost and statistics (uptime,
/// disconnections, messages heard), as of its last event.
#[derive(Debug, Clone, Copy, Default)]
pub struct CvmsProjection;

impl Projection for CvmsProjection {
    type Aggregate = Cvm;

    fn name(&self) -> &'static str {
        CVMS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["cvm_attestations", "cvms"]
    }

    /// A commit of the agents' channel holds up to a batch of messages: one statement counts a run of
    /// them, rather than one per message, so that the read model keeps up with a chatty agent.
    async fn apply_commit<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        events: &'a [Recorded<CvmEvent>],
    ) -> Result<(), ProjectionError> {
        let mut rest = events;
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .take_while(|e| matches!(e.event, CvmEvent::AgentMessageReceived(_)))
                .count();
            if run == 0 {
                self.apply(tx, first).await?;
                rest = &rest[1..];
                continue;
            }
            let (messages, after) = rest.split_at(run);
            let last = &messages[run - 1];
            let CvmEvent::AgentMessageReceived(last_message) = &last.event else {
                unreachable!("the run holds only agent messages")
            };
            // The agent's latest answer to a state request within the run, if any.
            let state = messages.iter().rev().find_map(|e| match &e.event {
                CvmEvent::AgentMessageReceived(m) => match &m.message {
                    AgentMessage::State { state, .. } => Some(state.as_str()),
                    _ => None,
                },
                _ => None,
            });
            tx.execute(
                "UPDATE cvms SET messages_received = messages_received + $2, last_heard_at = $3,
                                 agent_state = COALESCE($4, agent_state), version = $5
                 WHERE id = $1",
                &[
                    &aggregate_uuid(&last.meta)?,
                    &(run as i64),
                    &last_message.received_at,
                    &state,
                    &version(&last.meta),
                ],
            )
            .await?;
            rest = after;
        }
        Ok(())
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<CvmEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        match &recorded.event {
            CvmEvent::Requested(e) => {
                let spec = serde_json::to_value(&e.spec).expect("a spec serialises");
                tx.execute(
                    "INSERT INTO cvms (id, workspace_id, spec, provider, platform, vcpus, memory_mib, status,
                                       requested_by, requested_at, expires_at, updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'creating', $8, $9, $10, $9, $11)",
                    &[
                        &id,
                        &e.workspace.as_uuid(),
                        &spec,
                        &e.spec.provider,
                        &e.spec.platform.as_str(),
                        &(e.spec.vcpus as i32),
                        &(e.spec.memory_mib as i64),
                        &e.requested_by.0,
                        &e.requested_at,
                        &e.expires_at,
                        &v,
                    ],
                )
                .await?;
            }
            CvmEvent::BackendAssigned(e) => {
                tx.execute(
                    "UPDATE cvms SET backend_id = $2, backend_reason = $3, hourly_cost_micros = $4,
                                     updated_at = $5, version = $6
                     WHERE id = $1",
                    &[
                        &id,
                        &e.backend.as_uuid(),
                        &e.reason,
                        &e.hourly_cost_micros.map(|c| c as i64),
                        &e.assigned_at,
                        &v,
                    ],
                )
                .await?;
            }
            CvmEvent::Started(e) => {
                tx.execute(
                    "UPDATE cvms SET status = 'starting', backend_ref = $2, agent_address = $3, started_at = $4,
                                     updated_at = $4, version = $5
                     WHERE id = $1",
                    &[&id, &e.backend_ref, &e.agent_address, &e.started_at, &v],
                )
                .await?;
            }
            CvmEvent::Online(e) => {
                tx.execute(
                    "UPDATE cvms SET status = 'online', online_since = $2, last_heard_at = $2, updated_at = $2,
                                     version = $3
                     WHERE id = $1",
                    &[&id, &e.at, &v],
                )
                .await?;
            }
            CvmEvent::Offline(e) => {
                tx.execute(
                    "UPDATE cvms SET status = 'offline', disconnections = disconnections + 1,
                                     online_seconds = online_seconds
                                         + GREATEST(0, EXTRACT(EPOCH FROM ($2 - COALESCE(online_since, $2)))::bigint),
                                     online_since = NULL, updated_at = $3, version = $4
                     WHERE id = $1",
                    &[&id, &e.last_heard, &e.at, &v],
                )
                .await?;
            }
            CvmEvent::DestroyRequested(e) => {
                let reason = serde_json::to_value(e.reason).expect("a reason serialises");
                tx.execute(
                    "UPDATE cvms SET status = 'destroying', destroy_reason = $2, destroy_requested_at = $3,
                                     updated_at = $3, version = $4
                     WHERE id = $1",
                    &[&id, &reason.as_str(), &e.at, &v],
                )
                .await?;
            }
            CvmEvent::Destroyed(e) => {
                tx.execute(
                    "UPDATE cvms SET status = 'destroyed', destroyed_at = $2,
                                     online_seconds = online_seconds
                                         + GREATEST(0, EXTRACT(EPOCH FROM ($2 - COALESCE(online_since, $2)))::bigint),
                                     online_since = NULL, updated_at = $2, version = $3
                     WHERE id = $1",
                    &[&id, &e.at, &v],
                )
                .await?;
            }
            CvmEvent::Failed(e) => {
                tx.execute(
                    "UPDATE cvms SET status = 'failed', failure = $2, updated_at = $3, version = $4 WHERE id = $1",
                    &[&id, &e.reason, &e.at, &v],
                )
                .await?;
            }
            CvmEvent::Described(e) => {
                let description = serde_json::to_value(&e.description).expect("a description serialises");
                tx.execute(
                    "UPDATE cvms SET description = $2, updated_at = $3, version = $4 WHERE id = $1",
                    &[&id, &description, &e.at, &v],
                )
                .await?;
            }
            CvmEvent::AttestationRequested(e) => {
                tx.execute(
                    "UPDATE cvms SET updated_at = $2, version = $3 WHERE id = $1",
                    &[&id, &e.at, &v],
                )
                .await?;
            }
            CvmEvent::AttestationAppraised(e) => {
                let outcome = serde_json::to_value(e.verdict.outcome).expect("an outcome serialises");
                let source = serde_json::to_value(&e.policy_source).expect("a policy source serialises");
                let appraisal = serde_json::to_value(e).expect("an appraisal serialises");
                tx.execute(
                    "INSERT INTO cvm_attestations (cvm_id, version, workspace_id, outcome, platform, nonce,
                                                   evidence_sha256, policy_sha256, policy_source, appraisal,
                                                   appraised_at)
                     SELECT $1, $2, workspace_id, $3, $4, $5, $6, $7, $8, $9, $10 FROM cvms WHERE id = $1
                     ON CONFLICT (cvm_id, version) DO NOTHING",
                    &[
                        &id,
                        &v,
                        &outcome.as_str(),
                        &e.verdict.platform.to_string(),
                        &e.nonce,
                        &e.verdict.evidence_sha256.to_string(),
                        &e.verdict.policy_sha256.to_string(),
                        &source,
                        &appraisal,
                        &e.at,
                    ],
                )
                .await?;
                tx.execute(
                    "UPDATE cvms SET attestation_outcome = $2, attested_at = $3, updated_at = $3, version = $4
                     WHERE id = $1",
                    &[&id, &outcome.as_str(), &e.at, &v],
                )
                .await?;
            }
            CvmEvent::AgentMessageReceived(e) => {
                let state = match &e.message {
                    AgentMessage::State { state, .. } => Some(state.as_str()),
                    _ => None,
                };
                tx.execute(
                    "UPDATE cvms SET messages_received = messages_received + 1, last_heard_at = $2,
                                     agent_state = COALESCE($3, agent_state), version = $4
                     WHERE id = $1",
                    &[&id, &e.received_at, &state, &v],
                )
                .await?;
            }
        }
        Ok(())
    }
}
