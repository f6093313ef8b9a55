//! Small helpers shared by the projections.

use prism_store::EventMeta;

use crate::ProjectionError;

/// The aggregate id as the UUID the read models key on.
pub(crate) fn aggregate_uuid(meta: &EventMeta) -> Result<uuid::Uuid, ProjectionError> {
    uuid::Uuid::parse_str(&meta.aggregate_id).map_err(|e| ProjectionError::Corrupt {
        what: format!(
            "the aggregate id `{}` of event {} (not a UUID)",
            meta.aggregate_id, meta.id
        ),
        source: e.into(),
    })
}

/// Aggregate versions are u64 in the log and bigint in SQL; they never come near i64::MAX.
pub(crate) fn version(meta: &EventMeta) -> i64 {
    meta.version as i64
}
