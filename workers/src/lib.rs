//! Workers: durable JetStream consumers that react to events by sending commands.
//!
//! [`Worker`] is the runtime every reactor shares: one durable pull consumer per worker, acknowledgement
//! only after the reaction succeeded, retries with exponential backoff, and a bounded number of attempts
//! that ends in a recorded `io.prism.reaction.failed.v1` event rather than a silent drop. A reaction
//! names its commands after the event that caused them ([`caused_by`]), so a redelivered event can
//! never apply twice.

mod archiver;
mod runtime;

pub use archiver::WorkspaceArchiver;
pub use runtime::{ReactionError, Reactor, Worker, WorkerConfig, WorkerError, caused_by};
