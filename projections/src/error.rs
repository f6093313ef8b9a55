use prism_store::{BoxError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot set up the database connection pool: {0}")]
    PoolSetup(#[from] deadpool_postgres::BuildError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projection `{name}` has reached sequence {reached}, not yet {sequence}")]
    Lagging {
        name: String,
        sequence: u64,
        reached: u64,
    },
    #[error("{what} cannot be read: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("projection `{0}` was rebuilt by another process; restarting from its checkpoint")]
    Superseded(String),
    #[error("a rebuild of projection `{0}` is under way")]
    RebuildUnderWay(String),
}
