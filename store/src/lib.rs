//! The event store: an append-only, hash-chained log of CloudEvents, on NATS JetStream.
//!
//! * [`EventLog`] is the log as the platform sees it: appends with optimistic concurrency and
//!   de-duplication, loads verified against the hash chain, ordered live reads. [`EventStore`] is the
//!   JetStream implementation; [`MemoryLog`] keeps the same contract in memory for fast tests.
//! * [`Repository`] is load → decide → commit for one aggregate type: retries on a concurrent write,
//!   idempotency keys at any age, snapshots, a cache bounded by size.
//! * [`chain`] verifies what is read back, for loads and for subscriptions alike.
//!
//! **Architecture Invariant:** this is the only crate that depends on `async-nats`
//! (`tests/nats_boundary.rs` checks the workspace).

mod blobs;
pub mod chain;
mod durable;
mod envelope;
mod error;
mod idempotency;
mod jetstream;
mod log;
mod memory;
mod repository;
mod snapshot;
mod subjects;
mod subscription;
#[cfg(feature = "testing")]
pub mod tamper;

pub use blobs::{BlobStore, MemoryBlobs, ObjectBlobs};
pub use chain::{ChainTip, check_well_formed, verify_commit};
pub use durable::{Delivery, Durable, DurableConfig};
pub use envelope::{DecodeError, EventEnvelope, GENESIS_HASH, Metadata, event_data};
pub use error::{AppendError, BoxError, StoreError};
pub use idempotency::{
    Claim, IdempotencyRecord, IdempotencyRecords, KvIdempotency, MemoryIdempotency, RecordedOutcome,
};
pub use jetstream::{EventStore, OpenMode, StoreConfig};
pub use log::{Append, AppendAck, CommitStream, EventLog, StoredCommit};
pub use memory::MemoryLog;
pub use repository::{
    CommandError, CommandOutcome, CommandRequest, Idempotency, Loaded, Repository, RepositoryConfig,
};
pub use snapshot::{
    KeyedCommit, KvSnapshots, MemorySnapshots, SignedSnapshots, Snapshot, SnapshotKey, SnapshotStore,
};
pub use subjects::Subjects;
pub use subscription::{Checked, EventMeta, Recorded, VerifiedCommit, Verifier};
