//! Load → decide → commit for one aggregate type, with retries on conflict, idempotency at any age,
//! snapshots, and a cache of recently used aggregates bounded by size.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use prism_domain::{Aggregate, CommandContext};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use tracing::{debug, instrument, warn};

use crate::chain::{ChainTip, check_well_formed, verify_commits};
use crate::envelope::{EventEnvelope, Metadata};
use crate::log::{Append, EventLog, StoredCommit};
use crate::snapshot::{KeyedCommit, SignedSnapshots, Snapshot};
use crate::{AppendError, StoreError};

/// Tunables of a [`Repository`].
#[derive(Debug, Clone)]
pub struct RepositoryConfig {
    /// How often a command is re-decided after losing a race before giving up with
    /// [`CommandError::Conflict`].
    pub max_attempts: usize,
    /// Upper bound of the backoff between attempts after a conflict (randomised, growing).
    pub max_conflict_backoff: Duration,
    /// Approximate bytes of cached aggregates kept in memory; least recently used ones go first.
    pub cache_bytes: usize,
    /// Take a snapshot every this many events (when a snapshot store is configured).
    pub snapshot_every: u64,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 64,
            max_conflict_backoff: Duration::from_millis(50),
            cache_bytes: 64 * 1024 * 1024,
            snapshot_every: 100,
        }
    }
}

/// A command sent with an idempotency key: the key names the command, the fingerprint its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// One command for one aggregate, and everything the repository needs to know about it.
#[derive(Debug, Clone)]
pub struct CommandRequest<A: Aggregate> {
    pub id: String,
    pub command: A::Command,
    pub meta: Metadata,
    /// Makes the command safe to retry: once committed, the same key on the same aggregate answers the
    /// first outcome and appends nothing; the same key with another fingerprint is refused.
    pub idempotency: Option<Idempotency>,
    /// The aggregate must be at exactly this version (`If-Match`), or nothing happens.
    pub expected_version: Option<u64>,
}

impl<A: Aggregate> CommandRequest<A> {
    pub fn new(id: &impl Display, command: A::Command, meta: Metadata) -> Self {
        Self {
            id: id.to_string(),
            command,
            meta,
            idempotency: None,
            expected_version: None,
        }
    }

    pub fn idempotent(mut self, key: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        self.idempotency = Some(Idempotency {
            key: key.into(),
            fingerprint: fingerprint.into(),
        });
        self
    }

    pub fn expecting_version(mut self, version: Option<u64>) -> Self {
        self.expected_version = version;
        self
    }
}

/// An aggregate as of its last stored commit.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// Number of events applied (0: the aggregate does not exist yet).
    pub version: u64,
    /// Stream sequence of the aggregate's last commit (0: none).
    pub last_sequence: u64,
    pub last_hash: String,
    /// Keyed commits by message id, so a retried command is answered with its first result even after
    /// JetStream's de-duplication window. Commands sent without a key leave nothing here.
    keyed: HashMap<String, KeyedCommit>,
    /// Approximate memory held, for the cache's budget.
    weight: usize,
}

impl<A: Aggregate> Loaded<A> {
    fn new() -> Self {
        let tip = ChainTip::genesis();
        Self {
            state: A::default(),
            version: 0,
            last_sequence: 0,
            last_hash: tip.hash,
            keyed: HashMap::new(),
            weight: 0,
        }
    }

    fn tip(&self) -> ChainTip {
        ChainTip {
            version: self.version,
            hash: self.last_hash.clone(),
        }
    }

    /// Folds one verified commit in.
    fn fold(&mut self, commit: &StoredCommit) -> Result<(), StoreError> {
        let events = commit
            .events
            .iter()
            .map(|e| e.decode::<A::Event>(A::TYPE))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt {
                sequence: commit.sequence,
                source: e.into(),
            })?;
        self.fold_decoded(commit, &events);
        Ok(())
    }

    fn fold_decoded(&mut self, commit: &StoredCommit, events: &[A::Event]) {
        for event in events {
            self.state.apply(event);
        }
        self.version += events.len() as u64;
        self.last_sequence = commit.sequence;
        if let Some(last) = commit.events.last() {
            self.last_hash.clone_from(&last.hash);
        }
        // Roughly what the fold added: the commit's size is an upper bound for what the state gained.
        self.weight += commit.bytes;
        if let (Some(id), Some(fingerprint)) = (&commit.msg_id, &commit.fingerprint) {
            self.weight += id.len() + fingerprint.len() + 64;
            self.keyed.insert(
                id.clone(),
                KeyedCommit {
                    sequence: commit.sequence,
                    version: self.version,
                    fingerprint: fingerprint.clone(),
                },
            );
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
pub enum CommandError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Rejected(E),
    #[error("the aggregate is at version {actual}, not {expected}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("too many concurrent writes to the same aggregate; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One aggregate's cached state. Commands on the same aggregate in this process take turns on it (they
/// would only conflict with each other otherwise), and the state is changed in place, never copied.
type Slot<A> = Arc<tokio::sync::Mutex<Option<Loaded<A>>>>;

#[derive(Debug)]
struct CacheEntry<A> {
    slot: Slot<A>,
    weight: usize,
}

/// Recently used aggregates, least recently used evicted first once their weights pass the budget.
#[derive(Debug)]
struct Cache<A> {
    entries: lru::LruCache<String, CacheEntry<A>>,
    bytes: usize,
    budget: usize,
}

impl<A> Cache<A> {
    fn evict(&mut self) {
        // The entry just used is the most recent one; it always stays, however large.
        while self.bytes > self.budget && self.entries.len() > 1 {
            match self.entries.pop_lru() {
                Some((_, entry)) => self.bytes -= entry.weight,
                None => break,
            }
        }
    }
}

#[derive(Debug)]
pub struct Repository<A: Aggregate> {
    log: Arc<dyn EventLog>,
    snapshots: Option<SignedSnapshots>,
    config: RepositoryConfig,
    cache: Mutex<Cache<A>>,
}

impl<A: Aggregate> Repository<A> {
    pub fn new(log: impl EventLog) -> Self {
        Self::with(Arc::new(log), None, RepositoryConfig::default())
    }

    pub fn with(
        log: Arc<dyn EventLog>,
        snapshots: Option<SignedSnapshots>,
        config: RepositoryConfig,
    ) -> Self {
        let cache = Cache {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
            budget: config.cache_bytes,
        };
        Self {
            log,
            snapshots,
            config,
            cache: Mutex::new(cache),
        }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache<A>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, subject: &str) -> Slot<A> {
        let mut cache = self.cache();
        if let Some(entry) = cache.entries.get(subject) {
            return entry.slot.clone();
        }
        let slot = Slot::default();
        let weight = entry_overhead(subject);
        cache.entries.put(
            subject.to_owned(),
            CacheEntry {
                slot: slot.clone(),
                weight,
            },
        );
        cache.bytes += weight;
        cache.evict();
        slot
    }

    /// Records the new weight of `slot` (if it is still the cached one) and evicts past the budget.
    fn settle(&self, subject: &str, slot: &Slot<A>, weight: usize) {
        let mut cache = self.cache();
        let Some(entry) = cache.entries.get_mut(subject) else {
            return;
        };
        if !Arc::ptr_eq(&entry.slot, slot) {
            return;
        }
        let new = weight + entry_overhead(subject);
        let old = std::mem::replace(&mut entry.weight, new);
        cache.bytes = cache.bytes - old + new;
        cache.evict();
    }

    /// Puts `loaded` back into its slot and accounts for its weight.
    fn put_back(
        &self,
        subject: &str,
        slot: &Slot<A>,
        mut cached: tokio::sync::MutexGuard<'_, Option<Loaded<A>>>,
        loaded: Loaded<A>,
    ) {
        let weight = loaded.weight;
        *cached = Some(loaded);
        drop(cached);
        self.settle(subject, slot, weight);
    }

    /// Approximate bytes held by the cache, and how many aggregates it holds.
    pub fn cache_usage(&self) -> (usize, usize) {
        let cache = self.cache();
        (cache.bytes, cache.entries.len())
    }

    /// The aggregate's current state: the cached view brought up to date with the commits after it
    /// (one round trip when nothing changed), else loaded from a snapshot or the whole history.
    pub async fn load(&self, id: &impl Display) -> Result<Loaded<A>, StoreError> {
        let subject = self.log.subjects().aggregate(A::TYPE, &id.to_string())?;
        let slot = self.slot(&subject);
        let mut cached = slot.lock().await;
        let loaded = match cached.take() {
            Some(mut loaded) => {
                self.catch_up(&subject, &mut loaded).await?;
                loaded
            }
            None => self.load_subject(&subject).await?,
        };
        let result = loaded.clone();
        self.put_back(&subject, &slot, cached, loaded);
        Ok(result)
    }

    /// The aggregate's state as this process last saw it, or from the store when it has not seen it
    /// exist. It may be behind the log: use it only for facts that never change once the aggregate
    /// exists (the workspace a computation belongs to), never to decide a command.
    pub async fn existing_state(&self, id: &impl Display) -> Result<A, StoreError> {
        let subject = self.log.subjects().aggregate(A::TYPE, &id.to_string())?;
        if let Ok(cached) = self.slot(&subject).try_lock()
            && let Some(loaded) = cached.as_ref()
            && loaded.version > 0
        {
            return Ok(loaded.state.clone());
        }
        Ok(self.load(id).await?.state)
    }

    /// Loads from the latest usable snapshot, or from the first commit.
    async fn load_subject(&self, subject: &str) -> Result<Loaded<A>, StoreError> {
        let mut loaded = match self.load_snapshot(subject).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => Loaded::new(),
            Err(e) if e.is_permanent() => {
                warn!(subject, error = %e, "snapshot does not match the log; folding the whole history");
                Loaded::new()
            }
            Err(e) => return Err(e),
        };
        self.catch_up(subject, &mut loaded).await?;
        Ok(loaded)
    }

    /// A loaded view from the snapshot of `subject`, if there is one that the log confirms.
    async fn load_snapshot(&self, subject: &str) -> Result<Option<Loaded<A>>, StoreError> {
        let Some(store) = &self.snapshots else {
            return Ok(None);
        };
        let Some(snapshot) = store.get(subject).await? else {
            return Ok(None);
        };
        if snapshot.state_version != A::SNAPSHOT_VERSION {
            return Ok(None);
        }
        let mismatch = |reason: &str| StoreError::Tampered {
            subject: subject.to_owned(),
            sequence: snapshot.sequence,
            reason: format!("snapshot {reason}"),
        };
        // The anchor: the commit the snapshot was taken after must be in the log, intact, on this
        // subject, ending at the snapshot's version and hash.
        let anchor = self
            .log
            .commit_at(snapshot.sequence)
            .await?
            .ok_or_else(|| mismatch("names a commit that is not in the log"))?;
        if anchor.subject != subject {
            return Err(mismatch("names a commit of another aggregate"));
        }
        check_well_formed(self.log.subjects(), &anchor)?;
        let tip = anchor.tip().ok_or_else(|| mismatch("names an empty commit"))?;
        if tip.version != snapshot.version || tip.hash != snapshot.hash {
            return Err(mismatch("does not match the commit it names"));
        }
        let state: A = serde_json::from_value(snapshot.state.clone()).map_err(|e| StoreError::Corrupt {
            sequence: snapshot.sequence,
            source: e.into(),
        })?;
        let weight = snapshot.state.to_string().len() + snapshot.keyed.len() * 160;
        Ok(Some(Loaded {
            state,
            version: snapshot.version,
            last_sequence: snapshot.sequence,
            last_hash: snapshot.hash,
            keyed: snapshot.keyed,
            weight,
        }))
    }

    /// Folds in the commits after `loaded`, verified against its chain tip.
    async fn catch_up(&self, subject: &str, loaded: &mut Loaded<A>) -> Result<(), StoreError> {
        let commits = self.log.commits_after(subject, loaded.last_sequence).await?;
        if commits.is_empty() {
            return Ok(());
        }
        verify_commits(self.log.subjects(), loaded.tip(), &commits)?;
        let before = loaded.version;
        for commit in &commits {
            loaded.fold(commit)?;
        }
        self.maybe_snapshot(subject, loaded, before);
        Ok(())
    }

    /// Stores a snapshot in the background when the version crossed a multiple of the interval.
    fn maybe_snapshot(&self, subject: &str, loaded: &Loaded<A>, version_before: u64) {
        let (Some(store), every) = (&self.snapshots, self.config.snapshot_every.max(1)) else {
            return;
        };
        if loaded.version / every == version_before / every {
            return;
        }
        let state = match serde_json::to_value(&loaded.state) {
            Ok(state) => state,
            Err(e) => {
                warn!(subject, error = %e, "state does not serialise; no snapshot");
                return;
            }
        };
        let snapshot = Snapshot {
            state_version: A::SNAPSHOT_VERSION,
            sequence: loaded.last_sequence,
            version: loaded.version,
            hash: loaded.last_hash.clone(),
            state,
            keyed: loaded.keyed.clone(),
            mac: String::new(),
        };
        let (store, subject) = (store.clone(), subject.to_owned());
        // Off the command's path: a snapshot only saves later loads some work.
        tokio::spawn(async move {
            if let Err(e) = store.put(&subject, snapshot).await {
                warn!(subject, error = %e, "could not store a snapshot");
            }
        });
    }

    /// Decides the command against the aggregate's latest state and appends the resulting events.
    #[instrument(skip_all, fields(aggregate = A::TYPE, id = %request.id))]
    pub async fn execute(
        &self,
        request: CommandRequest<A>,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let subject = self.log.subjects().aggregate(A::TYPE, &request.id)?;
        let msg_id = match &request.idempotency {
            Some(i) => hex::encode(Sha256::digest(format!("{subject}\n{}", i.key))),
            None => uuid::Uuid::now_v7().simple().to_string(),
        };
        let fingerprint = request.idempotency.as_ref().map(|i| i.fingerprint.clone());
        let ctx = CommandContext {
            actor: prism_domain::Actor(request.meta.actor.clone()),
            now: Utc::now(),
        };

        let slot = self.slot(&subject);
        let mut cached = slot.lock().await;
        for attempt in 0..self.config.max_attempts {
            // Taken out of the slot while in use: if this call is cancelled half-way (the client went
            // away, a timeout), the slot stays empty and the next command reloads instead of trusting a
            // view that an append it never saw acknowledged may already have outdated.
            let (mut loaded, from_cache) = match cached.take() {
                Some(loaded) => (loaded, true),
                None => (self.load_subject(&subject).await?, false),
            };
            if let Some(outcome) = replay(&loaded, &msg_id, fingerprint.as_deref()) {
                self.put_back(&subject, &slot, cached, loaded);
                return outcome;
            }
            let decision = match request.expected_version {
                Some(expected) if expected != loaded.version => Err(CommandError::VersionMismatch {
                    expected,
                    actual: loaded.version,
                }),
                _ => loaded
                    .state
                    .decide(request.command.clone(), &ctx)
                    .map_err(CommandError::Rejected),
            };
            let events = match decision {
                Ok(events) if !events.is_empty() => events,
                // An answer that stores nothing rests on our view alone, and no append will tell us if
                // another process has moved the aggregate on: check that the view is current first.
                answer => {
                    if from_cache && self.log.subject_last_sequence(&subject).await? != loaded.last_sequence {
                        debug!(attempt, "cached view is stale; catching up");
                        self.catch_up(&subject, &mut loaded).await?;
                        *cached = Some(loaded);
                        continue;
                    }
                    let outcome = answer.map(|events| CommandOutcome {
                        state: loaded.state.clone(),
                        version: loaded.version,
                        sequence: loaded.last_sequence,
                        events,
                        replayed: false,
                    });
                    self.put_back(&subject, &slot, cached, loaded);
                    return outcome;
                }
            };
            let (envelopes, payload) = envelopes(&loaded, &request.id, &events, &ctx, &request.meta)?;
            let payload_bytes = payload.len();
            let appended = self
                .log
                .append(Append {
                    subject: subject.clone(),
                    expected_last_sequence: loaded.last_sequence,
                    msg_id: msg_id.clone(),
                    fingerprint: fingerprint.clone(),
                    traceparent: request.meta.traceparent.clone(),
                    payload,
                })
                .await;
            match appended {
                Ok(ack) if ack.duplicate => {
                    // Committed before under this key, but our view did not show it: catch up to answer.
                    self.catch_up(&subject, &mut loaded).await?;
                    let outcome = replay(&loaded, &msg_id, fingerprint.as_deref()).unwrap_or_else(|| {
                        Ok(CommandOutcome {
                            state: loaded.state.clone(),
                            version: loaded.version,
                            sequence: ack.sequence,
                            events: Vec::new(),
                            replayed: true,
                        })
                    });
                    self.put_back(&subject, &slot, cached, loaded);
                    return outcome;
                }
                Ok(ack) => {
                    let before = loaded.version;
                    let commit = StoredCommit {
                        sequence: ack.sequence,
                        subject: subject.clone(),
                        msg_id: Some(msg_id),
                        fingerprint,
                        events: envelopes,
                        bytes: payload_bytes,
                    };
                    loaded.fold_decoded(&commit, &events);
                    self.maybe_snapshot(&subject, &loaded, before);
                    let outcome = CommandOutcome {
                        state: loaded.state.clone(),
                        version: loaded.version,
                        sequence: ack.sequence,
                        events,
                        replayed: false,
                    };
                    self.put_back(&subject, &slot, cached, loaded);
                    return Ok(outcome);
                }
                Err(AppendError::Conflict) => {
                    debug!(attempt, "conflict; re-deciding on the state caught up");
                    self.catch_up(&subject, &mut loaded).await?;
                    *cached = Some(loaded);
                    // Writers that keep colliding spread out instead of retrying in lockstep.
                    let ceiling = self
                        .config
                        .max_conflict_backoff
                        .min(Duration::from_micros(100 << attempt.min(10)));
                    let pause = ceiling.mul_f64(rand::rng().random_range(0.5..1.0));
                    tokio::time::sleep(pause).await;
                }
                // The publish may or may not have been stored: the slot stays empty, forgetting our view.
                Err(AppendError::Store(e)) => return Err(e.into()),
            }
        }
        Err(CommandError::Conflict)
    }
}

/// What a cache entry costs besides its aggregate: the subject, the slot, the map's bookkeeping.
fn entry_overhead(subject: &str) -> usize {
    subject.len() + 256
}

/// The first outcome of a keyed command already in `loaded`, or a refusal if the key came with
/// another request; `None` if the key has not been committed.
fn replay<A: Aggregate>(
    loaded: &Loaded<A>,
    msg_id: &str,
    fingerprint: Option<&str>,
) -> Option<Result<CommandOutcome<A>, CommandError<A::Error>>> {
    let fingerprint = fingerprint?;
    let first = loaded.keyed.get(msg_id)?;
    if first.fingerprint != fingerprint {
        return Some(Err(CommandError::IdempotencyKeyReused));
    }
    Some(Ok(CommandOutcome {
        state: loaded.state.clone(),
        version: first.version,
        sequence: first.sequence,
        events: Vec::new(),
        replayed: true,
    }))
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
            .map_err(StoreError::request)?;
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
