use deadpool_postgres::Transaction;
use prism_domain::reaction::{Reaction, ReactionEvent};
use prism_store::Recorded;

use crate::projection_support::version;
use crate::{Projection, ProjectionError, REACTIONS};

/// The `reactions` table: one row per failed reaction, as of its last event.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReactionsProjection;

impl Projection for ReactionsProjection {
    type Aggregate = Reaction;

    fn name(&self) -> &'static str {
        REACTIONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["reactions"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<ReactionEvent>,
    ) -> Result<(), ProjectionError> {
        let id = &recorded.meta.aggregate_id;
        let v = version(&recorded.meta);
        match &recorded.event {
            ReactionEvent::Failed(e) => {
                tx.execute(
                    "INSERT INTO reactions (id, worker, event_id, event_type, stream_sequence, attempts, error,
                                            status, failed_at, updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'failed', $8, $8, $9)
                     ON CONFLICT (id) DO UPDATE SET attempts = EXCLUDED.attempts, error = EXCLUDED.error,
                         status = 'failed', failed_at = EXCLUDED.failed_at, updated_at = EXCLUDED.updated_at,
                         version = EXCLUDED.version",
                    &[
                        id,
                        &e.worker,
                        &e.event_id,
                        &e.event_type,
                        &(e.stream_sequence as i64),
                        &(e.attempts as i64),
                        &e.error,
                        &e.failed_at,
                        &v,
                    ],
                )
                .await?;
            }
            ReactionEvent::RetryRequested(e) => {
                tx.execute(
                    "UPDATE reactions SET status = 'retry_requested', updated_at = $2, version = $3 WHERE id = $1",
                    &[id, &e.requested_at, &v],
                )
                .await?;
            }
            ReactionEvent::Resolved(e) => {
                tx.execute(
                    "UPDATE reactions SET status = 'resolved', updated_at = $2, version = $3 WHERE id = $1",
                    &[id, &e.resolved_at, &v],
                )
                .await?;
            }
        }
        Ok(())
    }
}
