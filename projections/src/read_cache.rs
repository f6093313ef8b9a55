//! Read models held in memory, kept true by what the projectors of every process commit.
//!
//! Migration `0003_change_notifications` makes PostgreSQL announce on channel [`CHANNEL`] every changed
//! row of a read model and every move of a checkpoint. PostgreSQL delivers a notification only once its
//! transaction has committed, transactions in commit order and the notifications of one transaction in
//! the order they were sent; a projector writes its rows before its checkpoint. One connection per
//! [`ReadCache`] listens, and from what it hears keeps:
//!
//! * every projection's checkpoint as far as the notifications have been applied (`listened`): each
//!   change committed up to it has reached the cache;
//! * views read from the database, dropped when a notification names their row, and all of a
//!   projection's views dropped when it is emptied (truncated, or rebuilt: a new generation).
//!
//! **Filling under a lease.** Before a view is read from the database its slot is marked with a fresh
//! token; the view is stored only if the mark is still there. A change the read did not see committed
//! after the read began, so its notification arrives after the mark was made: it removes the mark
//! (nothing is stored) or, arriving later, the stored view. One read at a time holds a slot's lease
//! (concurrent misses read the database without one), so a busy view is not kept from filling by
//! ever newer leases; a lease given up (an error, a cancelled request) frees the slot.
//!
//! **Read-your-writes.** A caller that learnt from the database that a projection reached sequence `s`
//! (`ReadModels::checkpoint`, `ReadModels::wait_for`) must then read every commit up to `s`. Such
//! positions are remembered (`required`), and memory answers only while the listened checkpoint is at
//! or past them; meanwhile (for the fraction of a millisecond a notification takes) reads go to the
//! database. While the listening connection is down, or the database lacks the migration, memory
//! neither answers nor stores anything.
//!
//! **Liveness.** Memory answers only while notifications demonstrably arrive: the listener sends
//! itself a probe before it starts and every few seconds after, and stops answering from memory when
//! one does not come back. (A connection pooler in transaction mode, which cannot carry `LISTEN`, thus
//! leaves every read to the database rather than to a deaf cache.)

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use lru::LruCache;
use prism_store::BoxError;
use tokio::sync::{Notify, mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, Notification};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::queries::{ComputationView, WorkspaceView};
use crate::{COMPUTATIONS, WORKSPACES};

/// The channel migration `0003_change_notifications` announces changes on.
pub(crate) const CHANNEL: &str = "prism_read_models";
/// Without this migration the database announces nothing, and nothing may be served from memory.
const MIGRATION: &str = "0003_change_notifications";
/// Views kept per model; the least recently read go first.
const CAPACITY: usize = 16_384;
/// How often the listening connection is checked. A connection that died without a word (a network
/// partition) is noticed within about twice this; until then reads without `min_sequence` may be that
/// stale, while reads with it stay exact (see `required`).
const PING: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Notifications applied under one lock, at most.
const DRAIN: usize = 1024;

/// How far a projection has got: a rebuild starts a new generation from sequence 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub generation: i64,
    pub sequence: u64,
}

/// The read models kept in memory, each fed by one projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    Workspaces,
    Computations,
}

impl Model {
    /// The name in notifications (see the migration).
    fn parse(name: &str) -> Option<Self> {
        match name {
            "workspaces" => Some(Self::Workspaces),
            "computations" => Some(Self::Computations),
            _ => None,
        }
    }

    fn projection(self) -> &'static str {
        match self {
            Self::Workspaces => WORKSPACES,
            Self::Computations => COMPUTATIONS,
        }
    }
}

/// A view that can be kept in memory.
pub(crate) trait Cached: Clone + Send + Sync + 'static {
    const MODEL: Model;
    fn entries(state: &mut State) -> &mut LruCache<Uuid, Slot<Self>>;
}

impl Cached for WorkspaceView {
    const MODEL: Model = Model::Workspaces;
    fn entries(state: &mut State) -> &mut LruCache<Uuid, Slot<Self>> {
        &mut state.workspaces
    }
}

impl Cached for ComputationView {
    const MODEL: Model = Model::Computations;
    fn entries(state: &mut State) -> &mut LruCache<Uuid, Slot<Self>> {
        &mut state.computations
    }
}

pub(crate) enum Slot<V> {
    /// A read is under way; its view may be stored if this token is still here.
    Filling(u64),
    Ready(Arc<V>),
}

/// What memory says about a view.
pub(crate) enum Lookup<V> {
    Hit(Arc<V>),
    /// Read it from the database; with a lease, hand the result to [`ReadCache::fill`].
    Miss(Option<Lease>),
}

/// The right to store what one database read finds; given up on drop unless used.
#[must_use]
pub(crate) struct Lease {
    shared: Arc<Shared>,
    model: Model,
    id: Uuid,
    token: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("model", &self.model)
            .field("id", &self.id)
            .field("token", &self.token)
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.lock().release(self.model, &self.id, self.token);
    }
}

pub(crate) struct State {
    /// Listening, and the database announces changes: memory may answer.
    live: bool,
    listened: HashMap<String, Position>,
    /// Highest position of each projection read from the database and handed to a caller.
    required: HashMap<String, Position>,
    workspaces: LruCache<Uuid, Slot<WorkspaceView>>,
    computations: LruCache<Uuid, Slot<ComputationView>>,
    next_token: u64,
}

impl State {
    fn new(capacity: NonZeroUsize) -> Self {
        Self {
            live: false,
            listened: HashMap::new(),
            required: HashMap::new(),
            workspaces: LruCache::new(capacity),
            computations: LruCache::new(capacity),
            next_token: 0,
        }
    }

    fn serving(&self, projection: &str) -> bool {
        let listened = self.listened.get(projection).copied().unwrap_or_default();
        self.required.get(projection).is_none_or(|r| listened >= *r)
    }

    fn clear(&mut self, model: Model) {
        match model {
            Model::Workspaces => self.workspaces.clear(),
            Model::Computations => self.computations.clear(),
        }
    }

    fn clear_all(&mut self) {
        self.workspaces.clear();
        self.computations.clear();
    }

    fn forget(&mut self, model: Model, id: &Uuid) {
        match model {
            Model::Workspaces => {
                self.workspaces.pop(id);
            }
            Model::Computations => {
                self.computations.pop(id);
            }
        }
    }

    /// Frees a slot still marked with `token` (a read that stored nothing).
    fn release(&mut self, model: Model, id: &Uuid, token: u64) {
        fn release_in<V>(entries: &mut LruCache<Uuid, Slot<V>>, id: &Uuid, token: u64) {
            if matches!(entries.peek(id), Some(Slot::Filling(t)) if *t == token) {
                entries.pop(id);
            }
        }
        match model {
            Model::Workspaces => release_in(&mut self.workspaces, id, token),
            Model::Computations => release_in(&mut self.computations, id, token),
        }
    }

    /// Applies one notification; true when a checkpoint moved.
    fn apply(&mut self, payload: &str) -> bool {
        let Some((kind, rest)) = payload.split_once(' ') else {
            debug!(payload, "ignoring an unknown notification");
            return false;
        };
        match kind {
            "checkpoint" => {
                let mut fields = rest.splitn(3, ' ');
                let (Some(Ok(generation)), Some(Ok(sequence)), Some(name)) = (
                    fields.next().map(str::parse::<i64>),
                    fields.next().map(str::parse::<u64>),
                    fields.next(),
                ) else {
                    debug!(payload, "ignoring a malformed checkpoint notification");
                    return false;
                };
                let at = Position { generation, sequence };
                match self.listened.get(name) {
                    Some(current) if at.generation < current.generation => return false,
                    Some(current) if at.generation == current.generation => {
                        if at.sequence <= current.sequence {
                            return false;
                        }
                    }
                    // A new generation: a rebuild emptied the projection's tables.
                    _ => {
                        for model in [Model::Workspaces, Model::Computations] {
                            if model.projection() == name {
                                self.clear(model);
                            }
                        }
                    }
                }
                self.listened.insert(name.to_owned(), at);
                true
            }
            // Models this process does not hold are none of its business.
            "row" => {
                let Some((model, id)) = rest.split_once(' ') else {
                    return false;
                };
                match (Model::parse(model), Uuid::parse_str(id)) {
                    (Some(model), Ok(id)) => self.forget(model, &id),
                    // Whatever it names, it cannot be trusted to leave the model untouched.
                    (Some(model), Err(_)) => self.clear(model),
                    (None, _) => {}
                }
                false
            }
            "truncate" => {
                if let Some(model) = Model::parse(rest) {
                    self.clear(model);
                }
                false
            }
            // Another listener checking its connection.
            "probe" => false,
            _ => {
                debug!(payload, "ignoring an unknown notification");
                false
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bumped whenever a listened checkpoint moves or memory goes live or dark.
    moved: watch::Sender<u64>,
    /// Wakes the listener before its retry delay (after a migration, say).
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every step, so a panic elsewhere leaves nothing half-done.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn go_live(&self, checkpoints: HashMap<String, Position>) {
        {
            let mut state = self.lock();
            state.clear_all();
            state.listened = checkpoints;
            state.live = true;
        }
        self.bump();
    }

    fn go_dark(&self) {
        {
            let mut state = self.lock();
            state.live = false;
            state.clear_all();
        }
        self.bump();
    }
}

/// Views in memory and listened checkpoints, with the task that keeps them (stopped on drop).
pub(crate) struct ReadCache {
    shared: Arc<Shared>,
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ReadCache")
            .field("live", &state.live)
            .field("listened", &state.listened)
            .field("workspaces", &state.workspaces.len())
            .field("computations", &state.computations.len())
            .finish()
    }
}

impl ReadCache {
    /// Starts listening on a connection of its own, made with `config`.
    pub(crate) fn start(config: tokio_postgres::Config) -> Self {
        let capacity = NonZeroUsize::new(CAPACITY).expect("capacity is not zero");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(capacity)),
            moved: watch::Sender::new(0),
            wake: Notify::new(),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(listen(shared.clone(), config, stopped));
        Self { shared, _stop: stop }
    }

    /// Whether memory answers at all (listening, and the database announces changes).
    pub(crate) fn is_live(&self) -> bool {
        self.shared.lock().live
    }

    /// The sequence `projection` has reached as far as this process has heard; `None` while not live.
    pub(crate) fn listened(&self, projection: &str) -> Option<u64> {
        let state = self.shared.lock();
        state
            .live
            .then(|| state.listened.get(projection).map_or(0, |p| p.sequence))
    }

    /// A caller was told, from the database, that `projection` is at `at`: memory must not answer for
    /// it until it has heard as much.
    pub(crate) fn handed_out(&self, projection: &str, at: Position) {
        let mut state = self.shared.lock();
        match state.required.get_mut(projection) {
            Some(required) => *required = (*required).max(at),
            None => {
                state.required.insert(projection.to_owned(), at);
            }
        }
    }

    /// Changes of the listened checkpoints (and of liveness), for waiting without polling.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.moved.subscribe()
    }

    /// Tries to go live now rather than at the next retry (the migration may just have been applied).
    pub(crate) fn retry_now(&self) {
        self.shared.wake.notify_one();
    }

    pub(crate) fn get<V: Cached>(&self, id: Uuid) -> Lookup<V> {
        let mut state = self.shared.lock();
        if !state.live || !state.serving(V::MODEL.projection()) {
            return Lookup::Miss(None);
        }
        match V::entries(&mut state).get(&id) {
            Some(Slot::Ready(view)) => return Lookup::Hit(view.clone()),
            // Another read holds the lease; this one just reads.
            Some(Slot::Filling(_)) => return Lookup::Miss(None),
            None => {}
        }
        state.next_token += 1;
        let token = state.next_token;
        V::entries(&mut state).put(id, Slot::Filling(token));
        Lookup::Miss(Some(Lease {
            shared: self.shared.clone(),
            model: V::MODEL,
            id,
            token,
        }))
    }

    /// Stores what the leased read found (nothing for `None`), unless a change came in meanwhile.
    pub(crate) fn fill<V: Cached>(&self, lease: Lease, view: Option<&V>) {
        debug_assert_eq!(lease.model, V::MODEL);
        let mut state = self.shared.lock();
        if let Some(view) = view
            && let Some(slot) = V::entries(&mut state).peek_mut(&lease.id)
            && matches!(slot, Slot::Filling(token) if *token == lease.token)
        {
            *slot = Slot::Ready(Arc::new(view.clone()));
        }
        // Dropping the lease (after the lock is released) frees a slot left unfilled.
        drop(state);
        drop(lease);
    }
}

async fn listen(shared: Arc<Shared>, config: tokio_postgres::Config, mut stop: watch::Receiver<()>) {
    let mut retry = RETRY_MIN;
    loop {
        let outcome = tokio::select! {
            outcome = listen_once(&shared, &config) => outcome,
            _ = stop.changed() => return,
        };
        shared.go_dark();
        match outcome {
            Ok(()) => retry = RETRY_MIN,
            Err(e) => warn!(error = %e, "stopped following read-model changes; reads go to the database"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shared.wake.notified() => {}
            _ = stop.changed() => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Listens on one connection until it fails; `Ok` when the database is not migrated yet.
async fn listen_once(shared: &Shared, config: &tokio_postgres::Config) -> Result<(), BoxError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, mut received) = mpsc::unbounded_channel::<Result<Notification, tokio_postgres::Error>>();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if sender.send(Ok(n)).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = sender.send(Err(e));
                        return;
                    }
                    None => return,
                },
                _ = sender.closed() => return,
            }
        }
    });

    // Listen first, then read where every projection stands: a commit in between is both in what is
    // read and announced (harmless); none is missed.
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let migrated = client
        .query_opt(
            "SELECT 1 FROM schema_migrations WHERE version = $1",
            &[&MIGRATION],
        )
        .await;
    match migrated {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    // Notifications must demonstrably arrive before memory may answer. What arrives meanwhile is
    // covered by the positions read below, and memory is empty.
    let probe = send_probe(&client).await?;
    tokio::time::timeout(PING, async {
        while let Some(notification) = received.recv().await {
            if notification?.payload() == probe {
                return Ok(());
            }
        }
        Err::<(), BoxError>("the listening connection closed".into())
    })
    .await
    .map_err(|_| "a notification sent to itself did not arrive")??;
    let checkpoints = client
        .query(
            "SELECT name, sequence, generation FROM projection_checkpoints",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            let at = Position {
                generation: row.get(2),
                sequence: row.get::<_, i64>(1) as u64,
            };
            (row.get::<_, String>(0), at)
        })
        .collect();
    shared.go_live(checkpoints);
    info!("following read-model changes; hot reads are answered from memory");

    let mut ping = tokio::time::interval(PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    // The probe last sent and not yet back.
    let mut awaited: Option<String> = None;
    loop {
        tokio::select! {
            first = received.recv() => {
                let Some(first) = first else {
                    return Err("the listening connection closed".into());
                };
                let mut moved = false;
                {
                    let mut state = shared.lock();
                    let mut take = |notification: Notification| {
                        if awaited.as_deref() == Some(notification.payload()) {
                            awaited = None;
                        } else {
                            moved |= state.apply(notification.payload());
                        }
                    };
                    take(first?);
                    for _ in 0..DRAIN {
                        match received.try_recv() {
                            Ok(next) => take(next?),
                            Err(_) => break,
                        }
                    }
                }
                if moved {
                    shared.bump();
                }
            }
            _ = ping.tick() => {
                if awaited.is_some() {
                    return Err("notifications stopped arriving".into());
                }
                let probe = tokio::time::timeout(PING, send_probe(&client))
                    .await
                    .map_err(|_| "the listening connection did not answer")??;
                awaited = Some(probe);
            }
        }
    }
}

/// Sends a notification only this listener will recognise; returns its payload.
async fn send_probe(client: &tokio_postgres::Client) -> Result<String, tokio_postgres::Error> {
    let payload = format!("probe {}", Uuid::now_v7());
    client
        .batch_execute(&format!("NOTIFY {CHANNEL}, '{payload}'"))
        .await?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut state = State::new(NonZeroUsize::new(4).unwrap());
        state.live = true;
        state
    }

    /// A cache that hears nothing: notifications are applied by hand.
    fn offline() -> ReadCache {
        let (stop, _) = watch::channel(());
        ReadCache {
            shared: Arc::new(Shared {
                state: Mutex::new(state()),
                moved: watch::Sender::new(0),
                wake: Notify::new(),
            }),
            _stop: stop,
        }
    }

    fn view(id: Uuid, name: &str) -> WorkspaceView {
        let now = chrono::Utc::now();
        WorkspaceView {
            id: prism_domain::WorkspaceId(id),
            name: name.into(),
            description: String::new(),
            status: "active".into(),
            version: 1,
            created_by: "alice".into(),
            created_at: now,
            updated_at: now,
        }
    }

    fn hit(cache: &ReadCache, id: Uuid) -> Option<String> {
        match cache.get::<WorkspaceView>(id) {
            Lookup::Hit(view) => Some(view.name.clone()),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn a_read_overtaken_by_a_change_stores_nothing() {
        let cache = offline();
        let id = Uuid::now_v7();
        let Lookup::Miss(Some(lease)) = cache.get::<WorkspaceView>(id) else {
            panic!("expected a lease");
        };
        cache.shared.lock().apply(&format!("row workspaces {id}"));
        cache.fill(lease, Some(&view(id, "old")));
        assert_eq!(hit(&cache, id), None);

        let Lookup::Miss(Some(lease)) = cache.get::<WorkspaceView>(id) else {
            panic!("expected a lease");
        };
        cache.fill(lease, Some(&view(id, "new")));
        assert_eq!(hit(&cache, id).as_deref(), Some("new"));
        cache.shared.lock().apply(&format!("row workspaces {id}"));
        assert_eq!(hit(&cache, id), None);
    }

    #[test]
    fn one_read_at_a_time_holds_the_lease_and_gives_it_up_when_dropped() {
        let cache = offline();
        let id = Uuid::now_v7();
        let Lookup::Miss(Some(first)) = cache.get::<WorkspaceView>(id) else {
            panic!("expected a lease");
        };
        assert!(matches!(cache.get::<WorkspaceView>(id), Lookup::Miss(None)));
        drop(first);
        let Lookup::Miss(Some(second)) = cache.get::<WorkspaceView>(id) else {
            panic!("a dropped lease must free the slot");
        };
        // Found nothing: the slot is freed, not left marked.
        cache.fill::<WorkspaceView>(second, None);
        assert!(matches!(cache.get::<WorkspaceView>(id), Lookup::Miss(Some(_))));
    }

    #[test]
    fn nothing_is_answered_or_stored_while_not_live() {
        let cache = offline();
        let id = Uuid::now_v7();
        let Lookup::Miss(Some(lease)) = cache.get::<WorkspaceView>(id) else {
            panic!("expected a lease");
        };
        cache.fill(lease, Some(&view(id, "kept")));
        assert_eq!(hit(&cache, id).as_deref(), Some("kept"));
        cache.shared.go_dark();
        assert!(matches!(cache.get::<WorkspaceView>(id), Lookup::Miss(None)));
        cache.shared.go_live(HashMap::new());
        assert_eq!(hit(&cache, id), None, "going dark forgets everything");
    }

    #[test]
    fn checkpoints_only_move_forward_within_a_generation() {
        let mut s = state();
        assert!(s.apply("checkpoint 1 10 computations"));
        assert!(!s.apply("checkpoint 1 9 computations"));
        assert!(s.apply("checkpoint 1 11 computations"));
        assert_eq!(
            s.listened[COMPUTATIONS],
            Position {
                generation: 1,
                sequence: 11
            }
        );
        // A rebuild starts again from zero.
        assert!(s.apply("checkpoint 2 0 computations"));
        assert_eq!(
            s.listened[COMPUTATIONS],
            Position {
                generation: 2,
                sequence: 0
            }
        );
        assert!(!s.apply("checkpoint 1 50 computations"));
        assert_eq!(
            s.listened[COMPUTATIONS],
            Position {
                generation: 2,
                sequence: 0
            }
        );
    }

    #[test]
    fn memory_answers_only_once_it_has_heard_what_was_handed_out() {
        let mut s = state();
        s.apply("checkpoint 1 10 computations");
        s.required.insert(
            COMPUTATIONS.into(),
            Position {
                generation: 1,
                sequence: 12,
            },
        );
        assert!(!s.serving(COMPUTATIONS));
        s.apply("checkpoint 1 12 computations");
        assert!(s.serving(COMPUTATIONS));
        assert!(s.serving(WORKSPACES));
    }

    #[test]
    fn a_row_notification_that_names_no_row_empties_its_model() {
        let mut s = state();
        let (w, c) = (Uuid::now_v7(), Uuid::now_v7());
        s.workspaces.put(w, Slot::Filling(1));
        s.computations.put(c, Slot::Filling(2));
        s.apply("row reactions worker-1");
        s.apply("truncate reactions");
        assert_eq!((s.workspaces.len(), s.computations.len()), (1, 1));
        s.apply("row workspaces not-a-uuid");
        assert_eq!((s.workspaces.len(), s.computations.len()), (0, 1));
        s.apply("truncate computations");
        assert!(s.computations.is_empty());
    }
}
