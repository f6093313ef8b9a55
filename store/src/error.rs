//! Failures of the event store. Each keeps the error that caused it as its `source`.

/// Any underlying error (NATS, JSON, I/O), kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log cannot be reached now; retrying later may succeed.
    #[error("the event store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error(
        "stream `{stream}` exists with settings too weak for an audit log: {problems}. \
         Fix the stream (or use another name) before starting Prism."
    )]
    WeakStream { stream: String, problems: String },
    #[error("stream `{0}` does not exist; start the platform once to create it")]
    MissingStream(String),
    #[error("event log tampering detected on `{subject}` at stream sequence {sequence}: {reason}")]
    Tampered {
        subject: String,
        sequence: u64,
        reason: String,
    },
    #[error("stored message at stream sequence {sequence} is unreadable: {source}")]
    Corrupt {
        sequence: u64,
        #[source]
        source: BoxError,
    },
    #[error("the commit is larger than the event store accepts in one message: {0}")]
    TooLarge(#[source] BoxError),
    #[error("invalid aggregate id `{0}`: it must be a single NATS subject token")]
    InvalidId(String),
    #[error("event store request failed: {0}")]
    Request(#[source] BoxError),
}

impl StoreError {
    pub(crate) fn unavailable(e: impl Into<BoxError>) -> Self {
        Self::Unavailable(e.into())
    }

    pub(crate) fn request(e: impl Into<BoxError>) -> Self {
        Self::Request(e.into())
    }

    /// Whether the event is bad for good (tampered, unreadable, mis-addressed), as opposed to the store
    /// being unreachable for now.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Tampered { .. } | Self::Corrupt { .. } | Self::InvalidId(_) | Self::TooLarge(_)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another commit reached the aggregate first.
    #[error("concurrent write to the aggregate")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}
