//! Load → decide → commit for one aggregate type, with retries on conflict, idempotency at any age,
//! snapshots, and a cache of recently used aggregates bounded by size.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
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
    /// The follower run during which this view's last round trip to the log began (0: none).
    followed_in: u64,
    /// Keyed commits by message id, so a retried command is answered with its first result even after
    /// JetStream's de-duplication window. Commands sent without a key leave nothing here.
    keyed: HashMap<String, KeyedCommit>,
    /// Approximate memory held, for the cache's budget.
    weight: usize,
    /// `weight` as last measured from the state itself (0: never).
    measured: usize,
}

/// Below this estimate a cached aggregate's weight is not measured from its state.
const MEASURE_ABOVE: usize = 64 * 1024;

impl<A: Aggregate> Loaded<A> {
    /// What the state and the keyed commits hold, measured as their serialised size.
    fn measure(&self) -> usize {
        let state = serde_json::to_vec(&self.state).map_or(self.weight, |bytes| bytes.len());
        state
            + self
                .keyed
                .iter()
                .map(|(id, k)| id.len() + k.fingerprint.len() + 64)
                .sum::<usize>()
    }

    fn new() -> Self {
        let tip = ChainTip::genesis();
        Self {
            state: A::default(),
            version: 0,
            last_sequence: 0,
            last_hash: tip.hash,
            followed_in: 0,
            keyed: HashMap::new(),
            weight: 0,
            measured: 0,
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
        // A state may stay small however long its history (a CVM keeps its agent's latest message
        // digests only): once the estimate has doubled since the last measurement, measure the state
        // itself, so that a long history does not count as memory held (amortised: one serialisation
        // per doubling).
        if self.weight > MEASURE_ABOVE && self.weight > 2 * self.measured {
            self.weight = self.measure();
            self.measured = self.weight;
        }
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
type Slot<A> = Arc<SlotData<A>>;

#[derive(Debug)]
struct SlotData<A> {
    loaded: tokio::sync::Mutex<Option<Loaded<A>>>,
    /// The highest stream sequence the follower delivered for this aggregate: a view older than that
    /// is stale.
    heard: AtomicU64,
}

impl<A> Default for SlotData<A> {
    fn default() -> Self {
        Self {
            loaded: tokio::sync::Mutex::new(None),
            heard: AtomicU64::new(0),
        }
    }
}

impl<A> SlotData<A> {
    async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<Loaded<A>>> {
        self.loaded.lock().await
    }
}

/// The live follower of this aggregate type's commits, which lets [`Repository::view`] answer from
/// memory: while it runs, every commit appended after a view's last round trip reaches that view's
/// slot as `heard`.
#[derive(Debug, Default)]
struct Follower {
    /// Which run of the follower is live now; 0 while none is (not started, restarting).
    live: AtomicU64,
    runs: AtomicU64,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

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
    follower: Follower,
}

impl<A: Aggregate> Drop for Repository<A> {
    fn drop(&mut self) {
        let task = self
            .follower
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
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
            follower: Follower::default(),
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
        if let Ok(cached) = self.slot(&subject).loaded.try_lock()
            && let Some(loaded) = cached.as_ref()
            && loaded.version > 0
        {
            return Ok(loaded.state.clone());
        }
        Ok(self.load(id).await?.state)
    }

    /// The aggregate's current state for a read that decides nothing (authorisation, mostly): from
    /// memory, without a round trip to the log, while this type's live follower vouches that no commit
    /// newer than the cached view was appended — else as [`Repository::load`]. Commits of this process
    /// are seen at once; another process's as soon as the follower delivers them (within milliseconds).
    pub async fn view(self: &Arc<Self>, id: &impl Display) -> Result<A, StoreError> {
        self.follow();
        let subject = self.log.subjects().aggregate(A::TYPE, &id.to_string())?;
        let slot = self.slot(&subject);
        {
            let cached = slot.lock().await;
            let live = self.follower.live.load(Ordering::Acquire);
            if let Some(loaded) = cached.as_ref()
                && live != 0
                && loaded.followed_in == live
                && loaded.last_sequence >= slot.heard.load(Ordering::Acquire)
                && self.log.is_available()
            {
                return Ok(loaded.state.clone());
            }
        }
        Ok(self.load(id).await?.state)
    }

    /// Starts the follower of this aggregate type's commits once (it stops with the repository).
    fn follow(self: &Arc<Self>) {
        let mut task = self.follower.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() {
            *task = Some(tokio::spawn(follow(Arc::downgrade(self))).abort_handle());
        }
    }

    /// Notes a commit the follower delivered on the slot of its aggregate, if that one is cached.
    fn heard(&self, subject: &str, sequence: u64) {
        let slot = self.cache().entries.peek(subject).map(|entry| entry.slot.clone());
        if let Some(slot) = slot {
            slot.heard.fetch_max(sequence, Ordering::AcqRel);
        }
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
            followed_in: 0,
            keyed: snapshot.keyed,
            weight,
            measured: weight,
        }))
    }

    /// Folds in the commits after `loaded`, verified against its chain tip.
    async fn catch_up(&self, subject: &str, loaded: &mut Loaded<A>) -> Result<(), StoreError> {
        // Read before the round trip: whatever is appended after it, that run of the follower delivers.
        let run = self.follower.live.load(Ordering::Acquire);
        let commits = self.log.commits_after(subject, loaded.last_sequence).await?;
        loaded.followed_in = run;
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

/// Reads this aggregate type's commits as they are appended and tells the repository's slots about them.
/// A run starts at the log's end; until it is live, and after it ends (the stream failed, the connection
/// was re-established), views take a round trip again, and a new run starts after a pause.
async fn follow<A: Aggregate>(repository: Weak<Repository<A>>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let Some(this) = repository.upgrade() else {
            return;
        };
        let log = this.log.clone();
        let filter = log.subjects().of_type(A::TYPE);
        let mut reconnections = log.reconnections();
        reconnections.borrow_and_update();
        let stream = match log.last_sequence().await {
            Ok(last) => log.read(last + 1, &filter).await,
            Err(e) => Err(e),
        };
        match stream {
            Ok(mut commits) => {
                let run = this.follower.runs.fetch_add(1, Ordering::AcqRel) + 1;
                this.follower.live.store(run, Ordering::Release);
                // No strong reference while waiting: the repository's drop ends this task.
                drop(this);
                pause = Duration::from_millis(100);
                loop {
                    tokio::select! {
                        commit = commits.next() => {
                            let Some(Ok(commit)) = commit else { break };
                            let Some(this) = repository.upgrade() else { return };
                            this.heard(&commit.subject, commit.sequence);
                        }
                        _ = reconnections.changed() => break,
                    }
                }
                if let Some(this) = repository.upgrade() {
                    this.follower.live.store(0, Ordering::Release);
                }
                debug!(
                    aggregate = A::TYPE,
                    "the follower stopped; views take a round trip until it is back"
                );
            }
            Err(e) => {
                drop(this);
                debug!(aggregate = A::TYPE, error = %e, "the follower cannot start yet");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
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
