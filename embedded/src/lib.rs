//! Finds and runs `nats-server` and PostgreSQL as child processes.
//!
//! Prism needs both a JetStream-enabled NATS server and PostgreSQL. `prism up` must work on a
//! fresh machine where neither is configured, and every test wants its own isolated broker and
//! database so tests can run in parallel without sharing state. This crate covers both cases:
//! it locates usable binaries (preferring the pip-installable ones, because distro packages are
//! often too old), writes minimal configuration, starts the processes and waits until they
//! accept connections.
//!
//! For tests of sign-in with OpenID Connect it also runs a real OpenID provider on Node.js
//! ([`OidcTestProvider`]) and plays the browser through it.

mod credentials;
mod error;
mod install_copy;
mod nats;
mod oidc_provider;
mod postgres;
mod process;
mod safe_fs;
mod test_db;

pub use credentials::Credentials;
pub use error::EmbedError;
pub use nats::{NatsOptions, NatsServer, find_nats_server};
pub use oidc_provider::{OidcTestProvider, OidcTestProviderBuilder, OidcTestUser};
pub use postgres::{Postgres, find_postgres_bin_dir};
pub use test_db::TestDatabase;
