#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(String),
    #[error(transparent)]
    Store(#[from] prism_store::StoreError),
    #[error("projection `{name}` has reached sequence {reached}, not yet {sequence}")]
    Lagging {
        name: String,
        sequence: u64,
        reached: u64,
    },
    #[error("unknown projection `{0}`")]
    Unknown(String),
    #[error("event {event_id} at stream sequence {sequence} cannot be projected: {reason}")]
    Event {
        event_id: String,
        sequence: u64,
        reason: String,
    },
    #[error("projection `{0}` was rebuilt by another process; restarting from its checkpoint")]
    Superseded(String),
    #[error("fault injected before the checkpoint of sequence {0}")]
    Injected(u64),
}

impl From<deadpool_postgres::PoolError> for ProjectionError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Pool(e.to_string())
    }
}
