//! The event store: NATS JetStream as an append-only, hash-chained log of CloudEvents.
//!
//! * [`EventStore`] owns the stream: it creates or checks it at start, appends one message per command
//!   commit with optimistic concurrency (`Nats-Expected-Last-Subject-Sequence`) and de-duplication
//!   (`Nats-Msg-Id`), loads an aggregate's history (verifying its hash chain), and reads the whole log in
//!   order from any stream sequence.
//! * [`Repository`] is the application layer over one aggregate type: load → decide → commit, retrying
//!   on a concurrent write, keeping domain rejections apart from infrastructure failures.

mod envelope;
mod repository;
mod store;

pub use envelope::{DecodeError, EventEnvelope, GENESIS_HASH, Metadata};
pub use repository::{CommandError, CommandOutcome, Loaded, Repository};
pub use store::{AppendAck, AppendError, EventStore, StoreConfig, StoreError, StoredCommit};
