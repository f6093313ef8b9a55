//! An event store for [cqrs-es](https://docs.rs/cqrs-es/0.5) 0.5 on Prism's JetStream log.
//!
//! [`JetStreamEventStore<A>`] implements [`cqrs_es::EventStore<A>`], so a cqrs-es application
//! gets the durability and audit properties of Prism's event log without changing its aggregates:
//!
//! * **One message per commit.** The events of one `commit` are one JetStream message (a JSON
//!   array of CloudEvents, `application/cloudevents-batch+json`) on the subject
//!   `<prefix>.<aggregate type>.<aggregate id>`: they are stored together or not at all.
//! * **Optimistic concurrency.** The aggregate context remembers the stream sequence of the
//!   aggregate's last message; `commit` appends with `Nats-Expected-Last-Subject-Sequence` set to
//!   it. A writer that lost the race gets [`cqrs_es::AggregateError::AggregateConflict`] and
//!   nothing of its commit is stored.
//! * **Hash chain.** Every event is a CloudEvents 1.0 record whose `prevhash` is the previous
//!   event's `hash` (SHA-256), checked on every load.
//! * **Durability.** The server acknowledges a commit once stored; with JetStream's
//!   `sync_interval: always` (as `prism up` and Prism's tests run it) only after an fsync.
//! * **Loads without replaying the log.** cqrs-es loads the aggregate for every command. The store
//!   keeps recently used aggregates' states (serialised, [`DEFAULT_CACHE_CAPACITY`] of them, see
//!   [`JetStreamEventStore::with_cache_capacity`]) with the position they were taken at. A load
//!   asks the server for the subject's last stream sequence (one round trip); if nothing was
//!   appended since, the kept state is used, otherwise only the newer commits are read and checked
//!   against the hash chain from the kept position. A kept state is never used unchecked, so
//!   several processes can serve the same aggregates.
//!
//! # Usage
//!
//! ```no_run
//! # use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, Default, Serialize, Deserialize)]
//! # struct Counter { value: u64 }
//! # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # enum CounterEvent { Incremented }
//! # impl DomainEvent for CounterEvent {
//! #     fn event_type(&self) -> String { "Incremented".into() }
//! #     fn event_version(&self) -> String { "1.0".into() }
//! # }
//! # #[derive(Debug, thiserror::Error)]
//! # #[error("never")]
//! # struct Never;
//! # impl Aggregate for Counter {
//! #     const TYPE: &'static str = "counter";
//! #     type Command = ();
//! #     type Event = CounterEvent;
//! #     type Error = Never;
//! #     type Services = ();
//! #     async fn handle(&mut self, _: (), _: &(), sink: &EventSink<Self>) -> Result<(), Never> {
//! #         sink.write(CounterEvent::Incremented, self).await;
//! #         Ok(())
//! #     }
//! #     fn apply(&mut self, _: CounterEvent) { self.value += 1; }
//! # }
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use prism_cqrs::{JetStreamEventStore, StoreConfig};
//!
//! // A stream of its own, apart from Prism's `PRISM_EVENTS`.
//! let config = StoreConfig {
//!     stream: "BILLING_EVENTS".into(),
//!     subject_prefix: "billing.ev".into(),
//!     ..StoreConfig::default()
//! };
//! let store = JetStreamEventStore::<Counter>::connect(&std::env::var("NATS_URL")?, config)
//!     .await?
//!     .with_source("/billing");
//! let cqrs = cqrs_es::CqrsFramework::new(store, vec![], ());
//! cqrs.execute_with_metadata(
//!     "counter-1",
//!     (),
//!     [("actor".to_owned(), "alice".to_owned())].into(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Several aggregate types can share one connection: open the log once with
//! [`JetStreamLog::connect`] and give each [`JetStreamEventStore::new`] a clone of it.
//!
//! Use a stream of its own for cqrs-es aggregates, as above. Prism's projections and workers read
//! only their own aggregate types from `PRISM_EVENTS`, but an aggregate whose `TYPE` is one of
//! theirs (`workspace`, `computation`, `reaction`) must never share that stream.
//!
//! # How a cqrs-es event is stored
//!
//! Each event of a commit becomes one CloudEvent with Prism's attributes:
//!
//! | CloudEvents attribute | value |
//! |---|---|
//! | `type` | `io.prism.<Aggregate::TYPE>.<event_type()>.v<major>`, `<major>` being the leading number of `event_version()` (`1` for `"1.0"`) |
//! | `data` | `{"payload": <the event as serde serialises it>, "metadata": {<the commit's metadata>}, "eventversion": "<event_version()>"}`; `metadata` is left out when empty, `eventversion` when it is just `<major>` |
//! | `aggregatetype`, `aggregateid`, `subject` | `Aggregate::TYPE`, the aggregate id, `<type>/<id>` |
//! | `aggregateversion` | the cqrs-es `sequence`: consecutive from 1 per aggregate |
//! | `prevhash`, `hash` | the SHA-256 chain: the previous event's `hash` (64 zeros for the first) and this event's |
//! | `id`, `time`, `source` | a UUIDv7, the commit time, [`DEFAULT_SOURCE`] or [`JetStreamEventStore::with_source`] |
//! | `actor` | metadata `actor`, else [`DEFAULT_ACTOR`] or [`JetStreamEventStore::with_default_actor`] |
//! | `correlationid` | metadata `correlation_id`, else the id of the commit's first event |
//! | `causationid`, `traceparent` | metadata `causation_id` and `traceparent` (a well-formed W3C value only, since it also travels as a NATS header) |
//!
//! The metadata map is stored whole in `data`, so it loads back exactly as committed; the
//! well-known keys are copied into the attributes as well, for Prism's audit trail. Loading reads
//! `payload` and `metadata` back; `eventversion` (or `<major>`) is what upcasters see.
//!
//! The type grammar limits names: `Aggregate::TYPE` and `event_type()` must be ASCII letters,
//! digits, `-` and `_` (no `.`: the type and the subject split on it), `event_version()` must
//! start with a number (`1`, `1.0`, `2.3.1`), and aggregate ids must be ASCII letters, digits,
//! `-` and `_` (a UUID is fine). Anything else is refused before anything is stored.
//!
//! # Why `EventStore` and not `PersistedEventRepository`
//!
//! cqrs-es offers two traits to implement: [`cqrs_es::EventStore`] itself, or
//! [`cqrs_es::persist::PersistedEventRepository`] wrapped in its `PersistedEventStore` (as
//! postgres-es does). This crate implements `EventStore` directly:
//!
//! * **One round trip per commit.** The append needs the stream sequence of the aggregate's last
//!   message and the last event's hash. `EventStore` lets the aggregate context carry both from the
//!   load to the commit. `PersistedEventStore`'s context is a fixed struct with only the cqrs-es
//!   sequence, and `persist` gets no context, so every commit would first have to read the
//!   aggregate's last message again.
//! * **States kept between commands.** The context also carries the state as loaded, so that after
//!   a commit the store keeps the new state at the new position without reading anything back.
//! * **Snapshots cannot be atomic here.** The repository trait's snapshot and aggregate-store
//!   modes write the snapshot in the same transaction as the events. A JetStream commit is one
//!   message on one subject, and the log is append-only (no purge, no rollup), so a snapshot
//!   could only be a second, separate write. The states this store keeps live in memory instead,
//!   and are checked against the log at every load.
//!
//! What `PersistedEventStore` adds on top of a repository, upcasting, is supported:
//! [`JetStreamEventStore::with_upcasters`] takes cqrs-es [`cqrs_es::persist::EventUpcaster`]s.
//!
//! Failures map to cqrs-es's [`cqrs_es::AggregateError`] as [`Error::into_aggregate_error`]
//! describes.
//!
//! # Limits
//!
//! * A whole history (`load_events`, or the first load of an aggregate this process keeps no state
//!   for) is read with direct gets up to 16 commits, and beyond that with an ordered consumer. The
//!   server keeps such a consumer until it has been idle for a while, and nats-server 2.15 allows
//!   1,000 consumers per stream unless the stream sets another limit: many loads of long histories
//!   in a short time can fail as unavailable. Kept states avoid it for repeated loads.

mod error;
mod log;
mod mapping;
mod store;

pub use error::Error;
pub use log::{JetStreamLog, StoreConfig};
pub use mapping::{ACTOR_KEY, CAUSATION_ID_KEY, CORRELATION_ID_KEY, TRACEPARENT_KEY};
pub use store::{
    DEFAULT_ACTOR, DEFAULT_CACHE_CAPACITY, DEFAULT_SOURCE, JetStreamAggregateContext, JetStreamEventStore,
};
