//! The application layer for one aggregate type: load → decide → commit, with retries on conflict.

use std::collections::HashMap;
use std::fmt::Display;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use prism_domain::{Aggregate, CommandContext};
use sha2::{Digest as _, Sha256};
use tracing::{debug, instrument};

use crate::envelope::{EventEnvelope, GENESIS_HASH, Metadata};
use crate::store::{AppendError, EventStore, StoreError, StoredCommit};

/// How often a command is re-decided after losing a race before giving up with [`CommandError::Conflict`].
const MAX_ATTEMPTS: usize = 64;
const CACHE_ENTRIES: usize = 10_000;

/// An aggregate as of its last stored commit.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// Number of events applied (0: the aggregate does not exist yet).
    pub version: u64,
    /// Stream sequence of the aggregate's last commit (0: none).
    pub last_sequence: u64,
    pub last_hash: String,
    /// `Nats-Msg-Id` of every commit → (stream sequence, version after it), to answer a retried command
    /// with its first result even after JetStream's de-duplication window has passed.
    committed: HashMap<String, (u64, u64)>,
}

impl<A: Aggregate> Loaded<A> {
    fn new() -> Self {
        Self {
            state: A::default(),
            version: 0,
            last_sequence: 0,
            last_hash: GENESIS_HASH.into(),
            committed: HashMap::new(),
        }
    }

    fn fold(&mut self, commit: &StoredCommit, events: &[A::Event]) {
        for event in events {
            self.state.apply(event);
        }
        self.version += events.len() as u64;
        self.last_sequence = commit.sequence;
        if let Some(last) = commit.events.last() {
            self.last_hash.clone_from(&last.hash);
        }
        if let Some(id) = &commit.msg_id {
            self.committed.insert(id.clone(), (commit.sequence, self.version));
        }
    }
}

/// The result of a command that was accepted (or had been accepted before).
#[derive(Debug, Clone)]
pub struct CommandOutcome<A: Aggregate> {
    pub state: A,
    pub version: u64,
    /// Stream sequence a reader must wait for to see this command's effect.
    pub sequence: u64,
    /// The events this call appended (empty when nothing changed or when `replayed`).
    pub events: Vec<A::Event>,
    /// The command had already been committed under the same idempotency key; nothing new was stored.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    #[error(transparent)]
    Rejected(E),
    #[error("the aggregate is at version {actual}, not {expected}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("too many concurrent writes to the same aggregate; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One aggregate's cached state. Commands on the same aggregate in this process take turns on it (they
/// would only conflict with each other otherwise), and the state is changed in place, never copied: an
/// aggregate's history of idempotency keys grows with every commit.
type Slot<A> = Arc<tokio::sync::Mutex<Option<Loaded<A>>>>;

#[derive(Debug)]
pub struct Repository<A: Aggregate> {
    store: EventStore,
    /// Recently used aggregates. A stale entry is harmless: its commit fails on the expected sequence,
    /// and the command is re-decided on a fresh load.
    cache: Mutex<lru::LruCache<String, Slot<A>>>,
}

impl<A: Aggregate> Repository<A> {
    pub fn new(store: EventStore) -> Self {
        let capacity = NonZeroUsize::new(CACHE_ENTRIES).expect("non-zero");
        Self {
            store,
            cache: Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    fn slot(&self, subject: &str) -> Slot<A> {
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(slot) = cache.get(subject) {
            return slot.clone();
        }
        cache.get_or_insert(subject.to_owned(), Slot::default).clone()
    }

    /// The aggregate's current state, read from the store (never from the cache).
    pub async fn load(&self, id: &impl Display) -> Result<Loaded<A>, StoreError> {
        let subject = self.store.subject(A::TYPE, &id.to_string())?;
        let loaded = self.load_subject(&subject).await?;
        // Refresh the cache unless a command is busy with this aggregate (it keeps its own view current).
        // Never replace a newer view with this one (a command may have committed since we read).
        if let Ok(mut cached) = self.slot(&subject).try_lock()
            && cached
                .as_ref()
                .is_none_or(|c| c.last_sequence <= loaded.last_sequence)
        {
            *cached = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// The aggregate's state as this process last saw it, or from the store when it has not seen it
    /// exist. It may be behind the log: use it only for facts that never change once the aggregate
    /// exists (the workspace a computation belongs to), never to decide a command.
    pub async fn existing_state(&self, id: &impl Display) -> Result<A, StoreError> {
        let subject = self.store.subject(A::TYPE, &id.to_string())?;
        if let Ok(cached) = self.slot(&subject).try_lock()
            && let Some(loaded) = cached.as_ref()
            && loaded.version > 0
        {
            return Ok(loaded.state.clone());
        }
        Ok(self.load(id).await?.state)
    }

    async fn load_subject(&self, subject: &str) -> Result<Loaded<A>, StoreError> {
        let mut loaded = Loaded::new();
        for commit in self.store.load(subject).await? {
            let events = commit
                .events
                .iter()
                .map(|e| e.decode::<A::Event>(A::TYPE))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt {
                    sequence: commit.sequence,
                    reason: e.to_string(),
                })?;
            loaded.fold(&commit, &events);
        }
        Ok(loaded)
    }

    /// Decides `command` against the aggregate's latest state and appends the resulting events.
    ///
    /// * `expected_version` (from `If-Match`) must equal the current version, or nothing happens.
    /// * `idempotency_key` makes the command safe to retry: once committed, the same key on the same
    ///   aggregate returns the first outcome and appends nothing.
    #[instrument(skip(self, command, meta), fields(aggregate = A::TYPE, id = %id))]
    pub async fn execute(
        &self,
        id: &impl Display,
        command: A::Command,
        meta: &Metadata,
        idempotency_key: Option<&str>,
        expected_version: Option<u64>,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let id = id.to_string();
        let subject = self.store.subject(A::TYPE, &id)?;
        let msg_id = match idempotency_key {
            Some(key) => hex::encode(Sha256::digest(format!("{subject}\n{key}"))),
            None => uuid::Uuid::now_v7().simple().to_string(),
        };
        let ctx = CommandContext {
            actor: prism_domain::Actor(meta.actor.clone()),
            now: Utc::now(),
        };

        let slot = self.slot(&subject);
        let mut cached = slot.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            // Taken out of the slot while in use: if this call is cancelled half-way (the client went
            // away, a timeout), the slot stays empty and the next command reloads instead of trusting a
            // view that an append it never saw acknowledged may already have outdated.
            let (mut loaded, from_cache) = match cached.take() {
                Some(loaded) => (loaded, true),
                None => (self.load_subject(&subject).await?, false),
            };
            if let Some(&(sequence, version)) = loaded.committed.get(&msg_id) {
                let outcome = replayed(&loaded, sequence, version);
                *cached = Some(loaded);
                return Ok(outcome);
            }
            let decision = match expected_version {
                Some(expected) if expected != loaded.version => Err(CommandError::VersionMismatch {
                    expected,
                    actual: loaded.version,
                }),
                _ => loaded
                    .state
                    .decide(command.clone(), &ctx)
                    .map_err(CommandError::Rejected),
            };
            let events = match decision {
                Ok(events) if !events.is_empty() => events,
                // An answer that stores nothing rests on our view alone, and no append will tell us if
                // another process has moved the aggregate on: check that the view is current first.
                answer => {
                    if from_cache && self.store.subject_last_sequence(&subject).await? != loaded.last_sequence
                    {
                        debug!(attempt, "cached view is stale; reloading");
                        continue;
                    }
                    let outcome = answer.map(|events| CommandOutcome {
                        state: loaded.state.clone(),
                        version: loaded.version,
                        sequence: loaded.last_sequence,
                        events,
                        replayed: false,
                    });
                    *cached = Some(loaded);
                    return outcome;
                }
            };
            let (envelopes, payload) = envelopes(&loaded, &id, &events, &ctx, meta)?;
            let appended = self
                .store
                .append_payload(
                    &subject,
                    loaded.last_sequence,
                    &msg_id,
                    payload,
                    meta.traceparent.as_deref(),
                )
                .await;
            match appended {
                Ok(ack) if ack.duplicate => {
                    // Committed before under this key, but our view did not show it: reload to answer.
                    let fresh = self.load_subject(&subject).await?;
                    let (sequence, version) = fresh
                        .committed
                        .get(&msg_id)
                        .copied()
                        .unwrap_or((ack.sequence, fresh.version));
                    let outcome = replayed(&fresh, sequence, version);
                    *cached = Some(fresh);
                    return Ok(outcome);
                }
                Ok(ack) => {
                    let commit = StoredCommit {
                        sequence: ack.sequence,
                        subject: subject.clone(),
                        msg_id: Some(msg_id),
                        events: envelopes,
                    };
                    loaded.fold(&commit, &events);
                    let outcome = CommandOutcome {
                        state: loaded.state.clone(),
                        version: loaded.version,
                        sequence: ack.sequence,
                        events,
                        replayed: false,
                    };
                    *cached = Some(loaded);
                    return Ok(outcome);
                }
                // The slot stays empty: the next attempt decides again on a fresh load.
                Err(AppendError::Conflict) => debug!(attempt, "conflict; re-deciding on fresh state"),
                // The publish may or may not have been stored: the slot stays empty, forgetting our view.
                Err(AppendError::Store(e)) => return Err(e.into()),
            }
        }
        Err(CommandError::Conflict)
    }
}

fn replayed<A: Aggregate>(loaded: &Loaded<A>, sequence: u64, version: u64) -> CommandOutcome<A> {
    CommandOutcome {
        state: loaded.state.clone(),
        version,
        sequence,
        events: Vec::new(),
        replayed: true,
    }
}

fn envelopes<A: Aggregate>(
    loaded: &Loaded<A>,
    id: &str,
    events: &[A::Event],
    ctx: &CommandContext,
    meta: &Metadata,
) -> Result<(Vec<EventEnvelope>, Vec<u8>), StoreError> {
    let mut prev = loaded.last_hash.clone();
    let mut envelopes = Vec::with_capacity(events.len());
    // The commit's message body: a JSON array of the sealed envelopes.
    let mut payload = Vec::with_capacity(1024 * events.len());
    payload.push(b'[');
    let mut correlation = meta.correlation_id.clone();
    for (i, event) in events.iter().enumerate() {
        let version = loaded.version + 1 + i as u64;
        let placeholder = correlation.clone().unwrap_or_default();
        let mut envelope = EventEnvelope::new(event, A::TYPE, id, version, ctx.now, meta, &placeholder)
            .map_err(|e| StoreError::Request(format!("event does not serialise: {e}")))?;
        // A command that starts a conversation correlates everything after it with its first event.
        let correlation_id = correlation.get_or_insert_with(|| envelope.id.clone());
        envelope.correlationid.clone_from(correlation_id);
        if i > 0 {
            payload.push(b',');
        }
        envelope.seal_into(&prev, &mut payload);
        prev.clone_from(&envelope.hash);
        envelopes.push(envelope);
    }
    payload.push(b']');
    Ok((envelopes, payload))
}
