//! Small helpers shared by the projections: typed decoding with errors that name the event.

use prism_domain::Aggregate;
use prism_store::EventEnvelope;

use crate::ProjectionError;

pub(crate) fn decode<A: Aggregate>(
    envelope: &EventEnvelope,
    sequence: u64,
) -> Result<A::Event, ProjectionError> {
    envelope
        .decode::<A::Event>(A::TYPE)
        .map_err(|e| ProjectionError::Event {
            event_id: envelope.id.clone(),
            sequence,
            reason: e.to_string(),
        })
}

pub(crate) fn aggregate_uuid(envelope: &EventEnvelope, sequence: u64) -> Result<uuid::Uuid, ProjectionError> {
    uuid::Uuid::parse_str(&envelope.aggregateid).map_err(|e| ProjectionError::Event {
        event_id: envelope.id.clone(),
        sequence,
        reason: format!("aggregate id is not a UUID: {e}"),
    })
}

/// Aggregate versions are u64 in the log and bigint in SQL; they never come near i64::MAX.
pub(crate) fn version(envelope: &EventEnvelope) -> i64 {
    envelope.aggregateversion as i64
}
