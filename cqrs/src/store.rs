//! [`JetStreamEventStore`]: cqrs-es's [`EventStore`] over the JetStream log.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use serde_json::Value;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent as _, EventEnvelope, EventStore};

use crate::error::Error;
use crate::log::{self, CommitAttributes, Head, JetStreamLog, LoggedEvent, NewEvent, StoreConfig, Target};
use crate::mapping::{self, Attributes, Data};

/// `source` of the stored CloudEvents unless [`JetStreamEventStore::with_source`] sets another.
pub const DEFAULT_SOURCE: &str = "/cqrs-es";
/// `actor` of the stored CloudEvents when the commit's metadata has no `actor` and
/// [`JetStreamEventStore::with_default_actor`] sets none.
pub const DEFAULT_ACTOR: &str = "unknown";
/// Aggregates whose state [`JetStreamEventStore`] keeps between commands unless
/// [`JetStreamEventStore::with_cache_capacity`] sets another number.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// An aggregate's state as of one position of its history, serialised.
#[derive(Debug, Clone)]
struct Cached {
    head: Head,
    state: Arc<Value>,
}

type Cache = Option<Arc<Mutex<LruCache<String, Cached>>>>;

fn new_cache(capacity: usize) -> Cache {
    NonZeroUsize::new(capacity).map(|c| Arc::new(Mutex::new(LruCache::new(c))))
}

/// The event store of one aggregate type `A` on the JetStream log: plug it into
/// [`cqrs_es::CqrsFramework::new`]. Cloning is cheap and shares the connection.
pub struct JetStreamEventStore<A: Aggregate> {
    log: JetStreamLog,
    upcasters: Arc<[Box<dyn EventUpcaster>]>,
    source: String,
    default_actor: String,
    cache: Cache,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> JetStreamEventStore<A> {
    /// Connects to NATS at `url` and opens the stream named in `config`, creating it when missing
    /// and refusing one whose settings could lose or rewrite events.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self, Error> {
        mapping::check_name("aggregate type", A::TYPE)?;
        Self::new(log::connect(url, config).await?)
    }

    /// A store for `A` on an open log; one log can serve any number of aggregate types.
    ///
    /// Fails when `A::TYPE` cannot be a subject token (see the crate documentation).
    pub fn new(log: JetStreamLog) -> Result<Self, Error> {
        mapping::check_name("aggregate type", A::TYPE)?;
        Ok(Self {
            log,
            upcasters: Arc::new([]),
            source: DEFAULT_SOURCE.to_owned(),
            default_actor: DEFAULT_ACTOR.to_owned(),
            cache: new_cache(DEFAULT_CACHE_CAPACITY),
            _aggregate: PhantomData,
        })
    }

    /// Upcasters applied, in order, to every stored event as it is loaded, as cqrs-es's
    /// `PersistedEventStore::with_upcasters` does.
    pub fn with_upcasters(mut self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        self.upcasters = upcasters.into();
        self
    }

    /// The CloudEvents `source` of every event this store writes (a URI reference naming the
    /// producing application, e.g. `/billing`).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The CloudEvents `actor` of events whose commit metadata has no `actor` entry.
    pub fn with_default_actor(mut self, actor: impl Into<String>) -> Self {
        self.default_actor = actor.into();
        self
    }

    /// How many aggregates' states to keep between commands (least recently used first out; 0: none).
    ///
    /// cqrs-es loads the aggregate for every command. With a kept state, a load is one round trip
    /// (the subject's last stream sequence) when nothing was appended since, plus the new commits
    /// when something was, checked against the hash chain from the kept position. A kept state is
    /// never used without that check, so several processes can write the same aggregates. The
    /// state is kept serialised (`Aggregate: Serialize + DeserializeOwned`), so it must round-trip
    /// through serde, as cqrs-es snapshots require too.
    pub fn with_cache_capacity(mut self, aggregates: usize) -> Self {
        self.cache = new_cache(aggregates);
        self
    }

    /// The log underneath, e.g. to read every commit in order for a projection.
    pub fn log(&self) -> &JetStreamLog {
        &self.log
    }

    fn subject(&self, aggregate_id: &str) -> Result<String, Error> {
        log::subject(&self.log, A::TYPE, aggregate_id)
    }

    /// Every event of the aggregate, oldest first.
    async fn read_all(&self, aggregate_id: &str) -> Result<Vec<EventEnvelope<A>>, Error> {
        let subject = self.subject(aggregate_id)?;
        let (logged, _) = log::read_after(&self.log, &subject, &Head::empty()).await?;
        logged
            .into_iter()
            .map(|event| self.decode(aggregate_id, event))
            .collect()
    }

    /// The aggregate as of its last commit: from the kept state plus what was appended since, or
    /// from its whole history.
    async fn load(&self, aggregate_id: &str) -> Result<JetStreamAggregateContext<A>, Error> {
        let subject = self.subject(aggregate_id)?;
        let (mut aggregate, from) = match self.cached(&subject) {
            Some(kept) => {
                let last = log::last_sequence(&self.log, &subject).await?;
                let state = A::deserialize(kept.state.as_ref()).ok();
                match state {
                    Some(state) if last == kept.head.last_sequence => {
                        return Ok(self.context(aggregate_id, subject, state, kept.head, Some(kept.state)));
                    }
                    Some(state) if last > kept.head.last_sequence => (state, kept.head),
                    _ => (A::default(), Head::empty()),
                }
            }
            None => (A::default(), Head::empty()),
        };
        let (logged, head) = log::read_after(&self.log, &subject, &from).await?;
        for event in logged {
            aggregate.apply(self.decode(aggregate_id, event)?.payload);
        }
        let state = match &self.cache {
            Some(_) => serde_json::to_value(&aggregate).ok().map(Arc::new),
            None => None,
        };
        if let Some(state) = &state {
            self.keep(&subject, head.clone(), state.clone());
        }
        Ok(self.context(aggregate_id, subject, aggregate, head, state))
    }

    fn context(
        &self,
        aggregate_id: &str,
        subject: String,
        aggregate: A,
        head: Head,
        loaded_state: Option<Arc<Value>>,
    ) -> JetStreamAggregateContext<A> {
        JetStreamAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            subject,
            aggregate,
            head,
            loaded_state,
        }
    }

    fn cached(&self, subject: &str) -> Option<Cached> {
        let mut cache = self.cache.as_ref()?.lock().ok()?;
        cache.get(subject).cloned()
    }

    fn keep(&self, subject: &str, head: Head, state: Arc<Value>) {
        if let Some(mut cache) = self.cache.as_ref().and_then(|c| c.lock().ok()) {
            // A slower writer must not replace a newer state with an older one.
            let newer_kept = cache
                .peek(subject)
                .is_some_and(|kept| kept.head.last_sequence > head.last_sequence);
            if !newer_kept {
                cache.put(subject.to_owned(), Cached { head, state });
            }
        }
    }

    /// Keeps the state after a commit: the state as loaded with the committed events applied. (The
    /// context's own aggregate is not used: cqrs-es applies events to it while handling a command,
    /// but a caller of `commit` need not have.)
    fn keep_committed(
        &self,
        subject: &str,
        loaded_state: Option<Arc<Value>>,
        events: &[A::Event],
        head: Head,
    ) {
        let Some(loaded) = loaded_state else {
            return;
        };
        let Ok(mut aggregate) = A::deserialize(loaded.as_ref()) else {
            return;
        };
        for event in events {
            aggregate.apply(event.clone());
        }
        if let Ok(state) = serde_json::to_value(&aggregate) {
            self.keep(subject, head, Arc::new(state));
        }
    }

    fn decode(&self, aggregate_id: &str, event: LoggedEvent) -> Result<EventEnvelope<A>, Error> {
        let LoggedEvent {
            ce_type,
            aggregate_type: stored_type,
            aggregate_id: stored_id,
            version,
            data,
        } = event;
        let (aggregate_type, event_type, major) = mapping::parse_type(&ce_type)?;
        if aggregate_type != A::TYPE || stored_type != A::TYPE || stored_id != aggregate_id {
            return Err(Error::WrongAggregate {
                version,
                expected: format!("{}/{aggregate_id}", A::TYPE),
                found: format!("{stored_type}/{stored_id} (`{ce_type}`)"),
            });
        }
        let unreadable = |source| Error::Deserialize {
            version,
            event_type: ce_type.clone(),
            source,
        };
        let data: Data = serde_json::from_value(data).map_err(unreadable)?;
        let (payload, metadata) = if self.upcasters.is_empty() {
            (data.payload, data.metadata)
        } else {
            let metadata = serde_json::to_value(&data.metadata).map_err(unreadable)?;
            let mut serialized = SerializedEvent::new(
                aggregate_id.to_owned(),
                usize_sequence(version)?,
                A::TYPE.to_owned(),
                event_type.to_owned(),
                data.event_version.unwrap_or_else(|| major.to_string()),
                data.payload,
                metadata,
            );
            for upcaster in self.upcasters.iter() {
                if upcaster.can_upcast(&serialized.event_type, &serialized.event_version) {
                    serialized = upcaster.upcast(serialized);
                }
            }
            let metadata = serde_json::from_value(serialized.metadata).map_err(unreadable)?;
            (serialized.payload, metadata)
        };
        Ok(EventEnvelope {
            aggregate_id: aggregate_id.to_owned(),
            sequence: usize_sequence(version)?,
            payload: serde_json::from_value(payload).map_err(unreadable)?,
            metadata,
        })
    }

    async fn append(
        &self,
        events: Vec<A::Event>,
        context: JetStreamAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            let event_type = event.event_type();
            let name = mapping::type_name(A::TYPE, &event_type, &event.event_version())?;
            let payload =
                serde_json::to_value(event).map_err(|source| Error::Serialize { event_type, source })?;
            new_events.push(NewEvent {
                ce_type: name.ce_type,
                data: mapping::data(payload, &metadata, name.full_version),
            });
        }
        let who = Attributes::from_metadata(&metadata, &self.default_actor);
        let target = Target {
            aggregate_type: A::TYPE,
            aggregate_id: &context.aggregate_id,
            subject: &context.subject,
        };
        let attributes = CommitAttributes {
            source: &self.source,
            who: &who,
        };
        let head = log::append(&self.log, target, &context.head, attributes, new_events).await?;
        self.keep_committed(&context.subject, context.loaded_state, &events, head);
        let first = usize_sequence(context.head.version + 1)?;
        Ok(events
            .into_iter()
            .zip(first..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence,
                payload,
                metadata: metadata.clone(),
            })
            .collect())
    }
}

fn usize_sequence(version: u64) -> Result<usize, Error> {
    usize::try_from(version).map_err(|e| Error::Store(Box::new(e)))
}

impl<A: Aggregate> EventStore<A> for JetStreamEventStore<A> {
    type AC = JetStreamAggregateContext<A>;

    /// Every event of the aggregate, oldest first; empty for an aggregate never committed to.
    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.read_all(aggregate_id)
            .await
            .map_err(Error::into_aggregate_error)
    }

    /// The aggregate with every event applied, and the position a commit must append at.
    async fn load_aggregate(&self, aggregate_id: &str) -> Result<Self::AC, AggregateError<A::Error>> {
        self.load(aggregate_id).await.map_err(Error::into_aggregate_error)
    }

    /// Appends `events` as one message, only if nothing was appended to the aggregate since
    /// `context` was loaded ([`AggregateError::AggregateConflict`] otherwise, and nothing is stored).
    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.append(events, context, metadata)
            .await
            .map_err(Error::into_aggregate_error)
    }
}

impl<A: Aggregate> Clone for JetStreamEventStore<A> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            upcasters: self.upcasters.clone(),
            source: self.source.clone(),
            default_actor: self.default_actor.clone(),
            cache: self.cache.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> fmt::Debug for JetStreamEventStore<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamEventStore")
            .field("aggregate_type", &A::TYPE)
            .field("stream", &log::stream_name(&self.log))
            .field("upcasters", &self.upcasters.len())
            .field("source", &self.source)
            .field("default_actor", &self.default_actor)
            .field(
                "cache_capacity",
                &self.cache.as_ref().and_then(|c| c.lock().ok()).map(|c| c.cap()),
            )
            .finish()
    }
}

/// A loaded aggregate and where its history ends: the stream sequence of its last message (the
/// expected last subject sequence of the next commit) and the version and hash of its last event.
pub struct JetStreamAggregateContext<A: Aggregate> {
    aggregate_id: String,
    subject: String,
    aggregate: A,
    head: Head,
    /// The aggregate as loaded, serialised, when the store keeps states.
    loaded_state: Option<Arc<Value>>,
}

impl<A: Aggregate> JetStreamAggregateContext<A> {
    pub fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }

    /// The NATS subject holding the aggregate's history.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The number of events applied (the cqrs-es sequence of the last one; 0 for a new aggregate).
    pub fn version(&self) -> u64 {
        self.head.version
    }

    /// The stream sequence of the aggregate's last message (0 for a new aggregate).
    pub fn last_sequence(&self) -> u64 {
        self.head.last_sequence
    }
}

impl<A: Aggregate> AggregateContext<A> for JetStreamAggregateContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

impl<A: Aggregate> fmt::Debug for JetStreamAggregateContext<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamAggregateContext")
            .field("aggregate_id", &self.aggregate_id)
            .field("subject", &self.subject)
            .field("version", &self.head.version)
            .field("last_sequence", &self.head.last_sequence)
            .finish_non_exhaustive()
    }
}
