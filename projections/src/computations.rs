use deadpool_postgres::Transaction;
use prism_domain::asset::AssetKind;
use prism_domain::computation::{Computation, ComputationEvent, ExpectedAsset, Participant};
use prism_domain::run::RunLimits;
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{COMPUTATIONS, Projection, ProjectionError};

/// The `computations`, `participants` and `computation_assets` tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComputationsProjection;

impl Projection for ComputationsProjection {
    type Aggregate = Computation;

    fn name(&self) -> &'static str {
        COMPUTATIONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["computation_assets", "participants", "computations"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<ComputationEvent>,
    ) -> Result<(), ProjectionError> {
        {
            let id = aggregate_uuid(&recorded.meta)?;
            let v = version(&recorded.meta);
            match &recorded.event {
                ComputationEvent::Created(e) => {
                    let d = &e.definition;
                    tx.execute(
                        "INSERT INTO computations (id, workspace_id, name, description, status, algorithm, datasets,
                                                   version, created_by, created_at, updated_at, max_run_seconds)
                         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $9, $10)",
                        &[
                            &id,
                            &e.workspace_id.as_uuid(),
                            &d.name,
                            &d.description,
                            &d.algorithm.as_ref().map(json),
                            &json(&d.datasets),
                            &v,
                            &e.created_by.0,
                            &e.created_at,
                            &seconds(d.limits),
                        ],
                    )
                    .await?;
                    replace_participants(tx, id, &d.participants).await?;
                    sync_linked_assets(tx, id).await?;
                }
                ComputationEvent::Updated(e) => {
                    let c = &e.changes;
                    tx.execute(
                        "UPDATE computations SET name = COALESCE($2, name), description = COALESCE($3, description),
                                algorithm = COALESCE($4, algorithm), datasets = COALESCE($5, datasets),
                                version = $6, updated_at = $7, max_run_seconds = COALESCE($8, max_run_seconds)
                         WHERE id = $1",
                        &[
                            &id,
                            &c.name,
                            &c.description,
                            &c.algorithm.as_ref().map(json),
                            &c.datasets.as_ref().map(json),
                            &v,
                            &e.updated_at,
                            &c.limits.map(seconds),
                        ],
                    )
                    .await?;
                    if let Some(participants) = &c.participants {
                        replace_participants(tx, id, participants).await?;
                    }
                    if c.algorithm.is_some() || c.datasets.is_some() {
                        sync_linked_assets(tx, id).await?;
                    }
                }
                ComputationEvent::AssetLinked(e) => {
                    let entry = json(&ExpectedAsset::linked(&e.asset));
                    let statement = match e.asset.kind {
                        AssetKind::Algorithm => {
                            "UPDATE computations SET algorithm = $2, version = $3, updated_at = $4 WHERE id = $1"
                        }
                        AssetKind::Dataset => {
                            "UPDATE computations SET datasets = datasets || jsonb_build_array($2::jsonb),
                                    version = $3, updated_at = $4
                             WHERE id = $1"
                        }
                    };
                    tx.execute(statement, &[&id, &entry, &v, &e.linked_at]).await?;
                    sync_linked_assets(tx, id).await?;
                }
                ComputationEvent::AssetUnlinked(e) => {
                    let asset = e.asset.to_string();
                    tx.execute(
                        "UPDATE computations SET
                             algorithm = CASE WHEN algorithm->>'asset' = $2 THEN NULL ELSE algorithm END,
                             datasets = (SELECT COALESCE(jsonb_agg(d ORDER BY n), '[]'::jsonb)
                                         FROM jsonb_array_elements(datasets) WITH ORDINALITY AS t(d, n)
                                         WHERE d->>'asset' IS DISTINCT FROM $2),
                             version = $3, updated_at = $4
                         WHERE id = $1",
                        &[&id, &asset, &v, &e.unlinked_at],
                    )
                    .await?;
                    sync_linked_assets(tx, id).await?;
                }
                // Policies, consents and governance (proposals, votes, the threshold, halts) are read
                // from the aggregate, which computes the manifest they belong to and counts the votes;
                // the read model only keeps its version in step. An adopted change's own events
                // (`updated`, `attestation_policy_set`) follow in its commit and change the rest.
                ComputationEvent::AttestationPolicySet(_)
                | ComputationEvent::ConsentSigned(_)
                | ComputationEvent::ChangeProposed(_)
                | ComputationEvent::ChangeApproved(_)
                | ComputationEvent::ChangeVetoed(_)
                | ComputationEvent::ChangeAdopted(_)
                | ComputationEvent::ChangeSuperseded(_)
                | ComputationEvent::ChangeThresholdSet(_)
                | ComputationEvent::ExecutionHalted(_)
                | ComputationEvent::HaltLifted(_) => {
                    tx.execute(
                        "UPDATE computations SET version = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &v, &recorded.meta.time],
                    )
                    .await?;
                }
                ComputationEvent::ParticipantLinked(e) => {
                    let (email, user) = (e.email.as_str(), e.user.to_string());
                    tx.execute(
                        "UPDATE participants SET participant_id = $3 WHERE computation_id = $1 AND participant_id = $2",
                        &[&id, &email, &user],
                    )
                    .await?;
                    // The assets the participant provides name the user too.
                    tx.execute(
                        "UPDATE computations SET
                             algorithm = CASE WHEN algorithm->>'provider' = $2
                                              THEN jsonb_set(algorithm, '{provider}', to_jsonb($3::text))
                                              ELSE algorithm END,
                             datasets = (SELECT COALESCE(jsonb_agg(CASE WHEN d->>'provider' = $2
                                                                        THEN jsonb_set(d, '{provider}', to_jsonb($3::text))
                                                                        ELSE d END ORDER BY n), '[]'::jsonb)
                                         FROM jsonb_array_elements(datasets) WITH ORDINALITY AS t(d, n)),
                             version = $4, updated_at = $5
                         WHERE id = $1",
                        &[&id, &email, &user, &v, &e.linked_at],
                    )
                    .await?;
                }
                ComputationEvent::Archived(e) => {
                    tx.execute(
                        "UPDATE computations SET status = 'archived', version = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &v, &e.archived_at],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// `computation_assets` as the computation's algorithm and datasets name assets now.
async fn sync_linked_assets(tx: &Transaction<'_>, computation: uuid::Uuid) -> Result<(), ProjectionError> {
    tx.execute(
        "DELETE FROM computation_assets WHERE computation_id = $1",
        &[&computation],
    )
    .await?;
    tx.execute(
        "INSERT INTO computation_assets (computation_id, asset_id, kind)
         SELECT id, (algorithm->>'asset')::uuid, 'algorithm' FROM computations
         WHERE id = $1 AND algorithm->>'asset' IS NOT NULL
         UNION ALL
         SELECT c.id, (d->>'asset')::uuid, 'dataset' FROM computations c, jsonb_array_elements(c.datasets) AS d
         WHERE c.id = $1 AND d->>'asset' IS NOT NULL
         ON CONFLICT DO NOTHING",
        &[&computation],
    )
    .await?;
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("domain values serialise")
}

async fn replace_participants(
    tx: &Transaction<'_>,
    computation: uuid::Uuid,
    participants: &[Participant],
) -> Result<(), ProjectionError> {
    tx.execute(
        "DELETE FROM participants WHERE computation_id = $1",
        &[&computation],
    )
    .await?;
    let insert = tx
        .prepare(
            "INSERT INTO participants (computation_id, participant_id, position, roles, custom_roles, public_key)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    for (position, p) in participants.iter().enumerate() {
        let roles: Vec<String> = p.roles.iter().map(|r| r.to_string()).collect();
        let custom_roles: Vec<&str> = p.custom_roles.iter().map(|r| r.as_str()).collect();
        let key = p.public_key.as_ref().map(|k| k.as_pem().to_owned());
        tx.execute(
            &insert,
            &[
                &computation,
                &p.id.to_string(),
                &(position as i32),
                &roles,
                &custom_roles,
                &key,
            ],
        )
        .await?;
    }
    Ok(())
}

/// A run limit as the `max_run_seconds` column holds it (`BIGINT`; limits are far below its maximum).
fn seconds(limits: RunLimits) -> i64 {
    i64::try_from(limits.max_run_seconds).unwrap_or(i64::MAX)
}
