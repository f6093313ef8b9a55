//! The worker runtime and the archivers against a real nats-server and PostgreSQL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prism_app::{App, AppError, Caller, CommandOptions, NewWorkspace};
use prism_domain::computation::{Computation, ComputationCommand, ComputationStatus, WorkspaceStanding};
use prism_domain::reaction::{Reaction, ReactionEvent, ReactionFailed};
use prism_domain::testing::{fixed_time, samples};
use prism_domain::workspace::{Workspace, WorkspaceEvent, WorkspaceUpdated};
use prism_domain::{Actor, Aggregate, ComputationId, DomainEvent, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{ComputationsProjection, Projector, ReadModels, RunProjection as _};
use prism_store::{
    Append, CommandRequest, EventEnvelope, EventLog, EventStore, Metadata, Recorded, StoreConfig,
};
use prism_workers::{
    LateComputationArchiver, ReactionError, Reactor, Worker, WorkerConfig, WorkspaceArchiver,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Env {
    _nats: NatsServer,
    _db: TestDatabase,
    store: EventStore,
    log: Arc<dyn EventLog>,
    read: ReadModels,
    app: App,
}

/// A log, a database and an application over both; no projector runs until a test starts one.
async fn env() -> Env {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let store = EventStore::connect(&nats.url(), StoreConfig::default())
        .await
        .unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    read.migrate().await.unwrap();
    let log: Arc<dyn EventLog> = Arc::new(store.clone());
    let app = App::builder(log.clone()).read_models(read.clone()).build();
    Env {
        _nats: nats,
        _db: db,
        store,
        log,
        read,
        app,
    }
}

/// Retries fast and gives up after three real attempts.
fn fast() -> WorkerConfig {
    WorkerConfig {
        max_attempts: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ack_wait: Duration::from_secs(1),
    }
}

fn alice() -> Caller {
    Caller::actor(Actor("alice".into()))
}

/// A running task that stops when `stop` turns true (or is dropped).
struct Running<T> {
    stop: watch::Sender<bool>,
    task: JoinHandle<T>,
}

impl<T> Running<T> {
    async fn stop(self) -> T {
        self.stop.send(true).unwrap();
        self.task.await.unwrap()
    }
}

impl Env {
    fn start_projector(&self) -> Running<()> {
        let (stop, stopped) = watch::channel(false);
        let projector = Projector::new(ComputationsProjection, self.read.pool().clone(), self.log.clone());
        let task = tokio::spawn(async move { projector.run(stopped).await });
        Running { stop, task }
    }

    fn start<R: Reactor>(
        &self,
        reactor: R,
        config: WorkerConfig,
    ) -> Running<Result<(), prism_workers::WorkerError>> {
        let (stop, stopped) = watch::channel(false);
        let worker = Worker::new(reactor, self.store.clone(), self.app.clone(), config);
        Running {
            stop,
            task: tokio::spawn(worker.run(stopped)),
        }
    }

    fn start_archiver(&self) -> Running<Result<(), prism_workers::WorkerError>> {
        self.start(WorkspaceArchiver::new(self.app.clone()), fast())
    }

    async fn workspace(&self) -> WorkspaceId {
        let input = NewWorkspace {
            name: "Hospitals".into(),
            description: String::new(),
        };
        let created = self
            .app
            .workspaces()
            .create(&alice(), &CommandOptions::default(), input)
            .await
            .unwrap();
        created.id.parse().unwrap()
    }

    async fn workspace_with(&self, n: usize) -> (WorkspaceId, Vec<ComputationId>) {
        let ws = self.workspace().await;
        let mut ids = Vec::new();
        for _ in 0..n {
            let created = self
                .app
                .computations()
                .create(
                    &alice(),
                    &CommandOptions::default(),
                    ws,
                    samples::minimal_definition(),
                )
                .await
                .unwrap();
            ids.push(created.id.parse().unwrap());
        }
        (ws, ids)
    }

    /// Archives the workspace; returns the stream sequence of the archiving.
    async fn archive(&self, ws: WorkspaceId) -> u64 {
        self.app
            .workspaces()
            .archive(&alice(), &CommandOptions::default(), ws)
            .await
            .unwrap()
            .outcome
            .sequence
    }

    fn subject<A: Aggregate>(&self, id: &impl ToString) -> String {
        self.log.subjects().aggregate(A::TYPE, &id.to_string()).unwrap()
    }

    async fn status(&self, id: ComputationId) -> ComputationStatus {
        self.app
            .repository::<Computation>()
            .load(&id)
            .await
            .unwrap()
            .state
            .status
    }

    async fn all_archived(&self, ids: &[ComputationId]) -> bool {
        for id in ids {
            if self.status(*id).await != ComputationStatus::Archived {
                return false;
            }
        }
        true
    }

    /// Number of `archived` events in a computation's history, straight from the log.
    async fn archived_events(&self, id: ComputationId) -> usize {
        let commits = self.log.load(&self.subject::<Computation>(&id)).await.unwrap();
        commits
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| e.ty == "io.prism.computation.archived.v1")
            .count()
    }

    /// The failure `worker` recorded for event `event_id`, read back from the log.
    async fn failure(&self, worker: &str, event_id: &str) -> Option<ReactionFailed> {
        let subject = self.subject::<Reaction>(&format!("{worker}-{event_id}"));
        let commits = self.log.load(&subject).await.unwrap();
        let mut failures = failed(commits.iter().flat_map(|c| &c.events));
        assert!(failures.len() <= 1, "a failure recorded twice: {failures:?}");
        failures.pop()
    }

    /// Every reaction failure recorded so far, whoever recorded it.
    async fn failures(&self) -> Vec<ReactionFailed> {
        let reactions = format!("{}.{}.", self.log.subjects().prefix(), Reaction::TYPE);
        let mut events = Vec::new();
        for sequence in 1..=self.log.last_sequence().await.unwrap() {
            if let Some(commit) = self.log.commit_at(sequence).await.unwrap()
                && commit.subject.starts_with(&reactions)
            {
                events.extend(commit.events);
            }
        }
        failed(&events)
    }

    /// Appends `events` as one commit on `subject`, after whatever is stored there, as anyone who can
    /// publish to the stream could; returns its stream sequence.
    async fn forge(&self, subject: &str, events: &[EventEnvelope]) -> u64 {
        let last = self.log.subject_last_sequence(subject).await.unwrap();
        let msg_id = uuid::Uuid::now_v7().simple().to_string();
        let append = Append::envelopes(subject, last, msg_id, events).unwrap();
        self.log.append(append).await.unwrap().sequence
    }

    /// The hash of the last event stored on `subject`.
    async fn last_hash(&self, subject: &str) -> String {
        let commits = self.log.commits_after(subject, 0).await.unwrap();
        commits.last().unwrap().events.last().unwrap().hash.clone()
    }
}

/// The `io.prism.reaction.failed.v1` events among `events`.
fn failed<'a>(events: impl IntoIterator<Item = &'a EventEnvelope>) -> Vec<ReactionFailed> {
    events
        .into_iter()
        .filter(|e| e.ty == "io.prism.reaction.failed.v1")
        .map(|e| match e.decode::<ReactionEvent>(Reaction::TYPE).unwrap() {
            ReactionEvent::Failed(failure) => failure,
            other => panic!("a `failed` event decodes as {other:?}"),
        })
        .collect()
}

/// A sealed `updated` event renaming workspace `id`, at `version`, chained after `prevhash`.
fn renamed(id: WorkspaceId, version: u64, prevhash: &str) -> EventEnvelope {
    let event = WorkspaceEvent::Updated(WorkspaceUpdated {
        name: Some("Mallory".into()),
        description: None,
        updated_by: Actor("mallory".into()),
        updated_at: fixed_time(),
    });
    let mut envelope = EventEnvelope {
        specversion: "1.0".into(),
        id: uuid::Uuid::now_v7().to_string(),
        source: "/prism".into(),
        ty: prism_domain::schema::event_type(Workspace::TYPE, event.name(), event.version()),
        subject: format!("{}/{id}", Workspace::TYPE),
        time: fixed_time(),
        datacontenttype: "application/json".into(),
        workspace: Some(id.to_string()),
        aggregatetype: Workspace::TYPE.into(),
        aggregateid: id.to_string(),
        aggregateversion: version,
        actor: "mallory".into(),
        correlationid: uuid::Uuid::now_v7().to_string(),
        causationid: None,
        traceparent: None,
        prevhash: prevhash.into(),
        data: serde_json::to_value(&event).unwrap()["data"].take(),
        hash: String::new(),
    };
    envelope.hash = envelope.compute_hash();
    envelope
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_computation_is_archived_exactly_once_even_when_the_worker_dies_midway() {
    let env = env().await;
    let _projector = env.start_projector();
    let (ws, ids) = env.workspace_with(100).await;

    // Watch archive commits as they are stored, to kill the worker while it is busy.
    let from = env.log.last_sequence().await.unwrap() + 1;
    let mut commits = env
        .log
        .read(from, &env.log.subjects().of_type(Computation::TYPE))
        .await
        .unwrap();

    let first = env.start_archiver();
    env.archive(ws).await;
    let mut seen = 0;
    while seen < 5 {
        let commit = commits.next().await.unwrap().unwrap();
        seen += commit
            .events
            .iter()
            .filter(|e| e.ty == "io.prism.computation.archived.v1")
            .count();
    }
    first.task.abort(); // a crash: no graceful stop, no acknowledgement
    let _ = first.task.await;
    let mut archived_at_crash = 0;
    for id in &ids {
        archived_at_crash += env.archived_events(*id).await;
    }
    assert!(
        archived_at_crash < ids.len(),
        "the worker finished before it could be killed"
    );

    let second = env.start_archiver();
    eventually("every computation is archived", async || {
        env.all_archived(&ids).await
    })
    .await;
    for id in &ids {
        assert_eq!(
            env.archived_events(*id).await,
            1,
            "computation {id} archived more than once"
        );
    }
    second.stop().await.unwrap();
    assert_eq!(env.failures().await, vec![]);
}

#[tokio::test]
async fn a_computation_created_while_its_workspace_was_being_archived_is_archived_too() {
    let env = env().await;
    let _projector = env.start_projector();
    let (ws, _) = env.workspace_with(1).await;
    let archiver = env.start_archiver();
    let late_archiver = env.start(LateComputationArchiver::new(env.app.clone()), fast());
    env.archive(ws).await;
    // A request that checked the workspace just before the archiving still creates the computation.
    let late = ComputationId(uuid::Uuid::now_v7());
    let create = ComputationCommand::Create {
        id: late,
        workspace_id: ws,
        workspace: WorkspaceStanding::Active,
        definition: samples::minimal_definition(),
    };
    let meta = Metadata {
        actor: "alice".into(),
        ..Default::default()
    };
    env.app
        .repository::<Computation>()
        .execute(CommandRequest::new(&late, create, meta))
        .await
        .unwrap();
    eventually("the late computation is archived", async || {
        env.status(late).await == ComputationStatus::Archived
    })
    .await;
    archiver.stop().await.unwrap();
    late_archiver.stop().await.unwrap();
    assert_eq!(env.archived_events(late).await, 1);
}

#[tokio::test]
async fn the_archiver_is_not_fooled_by_a_rebuild_of_the_read_model_it_waits_for() {
    let env = env().await;
    let projector = env.start_projector();
    let (ws, ids) = env.workspace_with(20).await;
    // The read model has the computations, then stops following the log.
    let created = env.log.last_sequence().await.unwrap();
    env.read
        .wait_for(prism_projections::COMPUTATIONS, created, Duration::from_secs(10))
        .await
        .unwrap();
    projector.stop().await;

    let archiver = env.start_archiver();
    env.archive(ws).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &ids {
        assert_eq!(env.status(*id).await, ComputationStatus::Active);
    }
    // Rebuilt over and over while the archiver waits: each time the table is emptied and the
    // checkpoint reset, then the log replayed up to its end (past the archiving).
    let rebuilding = Projector::new(ComputationsProjection, env.read.pool().clone(), env.log.clone());
    for _ in 0..10 {
        rebuilding.rebuild().await.unwrap();
    }
    let _projector = env.start_projector();
    eventually("every computation is archived", async || {
        env.all_archived(&ids).await
    })
    .await;
    archiver.stop().await.unwrap();
    for id in &ids {
        assert_eq!(env.archived_events(*id).await, 1);
    }
    assert_eq!(env.failures().await, vec![]);
}

#[tokio::test]
async fn a_reaction_waiting_for_a_lagging_read_model_is_not_given_up() {
    let env = env().await;
    let (ws, ids) = env.workspace_with(3).await;
    let archiver = env.start_archiver();
    let archived = env.archive(ws).await;

    // Longer than every attempt with its backoff, and than the acknowledgement deadline.
    let config = fast();
    let budget = config.max_backoff * config.max_attempts as u32 + config.ack_wait;
    tokio::time::sleep(budget * 2).await;
    assert_eq!(env.failures().await, vec![]);
    for id in &ids {
        assert_eq!(env.status(*id).await, ComputationStatus::Active);
    }
    assert!(
        env.read
            .checkpoint(prism_projections::COMPUTATIONS)
            .await
            .unwrap()
            < archived
    );

    let _projector = env.start_projector();
    eventually("every computation is archived", async || {
        env.all_archived(&ids).await
    })
    .await;
    archiver.stop().await.unwrap();
    assert_eq!(env.failures().await, vec![]);
}

/// Takes longer than the acknowledgement deadline on the first event it sees, and fails every other
/// event once (worth a retry) before it succeeds; counts its calls per event.
#[derive(Clone, Default)]
struct SlowThenFlaky {
    calls: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl SlowThenFlaky {
    const SLOW: Duration = Duration::from_millis(3500);

    fn calls(&self) -> BTreeMap<String, u32> {
        self.calls.lock().unwrap().clone()
    }
}

impl Reactor for SlowThenFlaky {
    type Aggregate = Workspace;
    const NAME: &'static str = "slow-then-flaky";

    async fn react<'a>(&'a self, recorded: &'a Recorded<WorkspaceEvent>) -> Result<(), ReactionError> {
        let (call, first_event) = {
            let mut calls = self.calls.lock().unwrap();
            let call = calls.entry(recorded.meta.id.clone()).or_default();
            *call += 1;
            let call = *call;
            (call, calls.len() == 1)
        };
        if first_event {
            tokio::time::sleep(Self::SLOW).await;
            Ok(())
        } else if call == 1 {
            Err(ReactionError::Retry(AppError::unavailable("not now")))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn events_waiting_behind_a_slow_one_are_not_delivered_meanwhile() {
    let env = env().await;
    let mut workspaces = Vec::new();
    for _ in 0..4 {
        workspaces.push(env.workspace().await);
    }
    let mut event_ids = Vec::new();
    for ws in &workspaces {
        let commits = env.log.load(&env.subject::<Workspace>(ws)).await.unwrap();
        event_ids.push(commits[0].events[0].id.clone());
    }
    // One retry allowed: a delivery counted while an event only waited would leave none.
    let config = WorkerConfig {
        max_attempts: 2,
        ack_wait: Duration::from_secs(1),
        ..fast()
    };
    assert!(SlowThenFlaky::SLOW > config.ack_wait * 3);
    let reactor = SlowThenFlaky::default();
    let worker = env.start(reactor.clone(), config);

    let expected: BTreeMap<String, u32> = event_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), if i == 0 { 1 } else { 2 }))
        .collect();
    let total: u32 = expected.values().sum();
    eventually("every event is handled, or given up", async || {
        reactor.calls().values().sum::<u32>() >= total || !env.failures().await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await.unwrap();
    assert_eq!(env.failures().await, vec![]);
    assert_eq!(reactor.calls(), expected);
}

/// Records the events it is given, in order.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Reactor for Recorder {
    type Aggregate = Workspace;
    const NAME: &'static str = "recorder";

    async fn react<'a>(&'a self, recorded: &'a Recorded<WorkspaceEvent>) -> Result<(), ReactionError> {
        self.seen.lock().unwrap().push(recorded.meta.id.clone());
        Ok(())
    }
}

/// The ids of every event stored on the subjects of `workspaces`, in stream order, as written.
async fn created_events(env: &Env, workspaces: &[WorkspaceId]) -> Vec<String> {
    let mut ids = Vec::new();
    for ws in workspaces {
        let commits = env
            .log
            .commits_after(&env.subject::<Workspace>(ws), 0)
            .await
            .unwrap();
        ids.push(commits[0].events[0].id.clone());
    }
    ids
}

#[tokio::test]
async fn a_commit_that_fails_verification_is_never_reacted_to_and_its_failure_is_recorded() {
    let env = env().await;
    let w1 = env.workspace().await;
    let s1 = env.subject::<Workspace>(&w1);
    let mut rewritten = renamed(w1, 2, &env.last_hash(&s1).await);
    rewritten.data["name"] = "Rewritten".into();
    let at_rewritten = env.forge(&s1, std::slice::from_ref(&rewritten)).await;
    let w2 = env.workspace().await;
    let w3 = env.workspace().await;
    let misplaced = renamed(w2, 2, &env.last_hash(&env.subject::<Workspace>(&w2)).await);
    let at_misplaced = env
        .forge(&env.subject::<Workspace>(&w3), std::slice::from_ref(&misplaced))
        .await;
    let w4 = env.workspace().await;
    let valid = created_events(&env, &[w1, w2, w3, w4]).await;

    let recorder = Recorder::default();
    let worker = env.start(recorder.clone(), fast());
    eventually("the last valid event is reacted to", async || {
        recorder.seen().contains(&valid[3])
    })
    .await;
    eventually("both failures are recorded", async || {
        env.failures().await.len() == 2
    })
    .await;
    worker.stop().await.unwrap();

    assert_eq!(recorder.seen(), valid);
    for (event, sequence, why) in [
        (&rewritten, at_rewritten, "does not match its hash"),
        (&misplaced, at_misplaced, "belongs to"),
    ] {
        // Recorded under its stream sequence: the ids a bad commit claims are not trusted.
        let _ = event;
        let failure = env
            .failure(Recorder::NAME, &format!("seq-{sequence}"))
            .await
            .unwrap_or_else(|| panic!("no failure recorded for the commit at {sequence}"));
        assert_eq!(failure.worker, Recorder::NAME);
        assert_eq!(failure.stream_sequence, sequence);
        assert_eq!(failure.attempts, 1);
        assert!(failure.error.contains("quarantined"), "{}", failure.error);
        assert!(failure.error.contains(why), "{}", failure.error);
    }
}

#[tokio::test]
async fn a_commit_that_fails_verification_does_not_stop_the_worker_whatever_its_event_id() {
    let env = env().await;
    let w1 = env.workspace().await;
    let s1 = env.subject::<Workspace>(&w1);
    let mut rewritten = renamed(w1, 2, &env.last_hash(&s1).await);
    rewritten.id = "not.a token".into();
    let at_rewritten = env.forge(&s1, std::slice::from_ref(&rewritten)).await;
    let w2 = env.workspace().await;
    let valid = created_events(&env, &[w1, w2]).await;

    let recorder = Recorder::default();
    let worker = env.start(recorder.clone(), fast());
    eventually("the event after the bad commit is reacted to", async || {
        recorder.seen().contains(&valid[1])
    })
    .await;
    worker.stop().await.unwrap();
    assert_eq!(recorder.seen(), valid);
    let failures = env.failures().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].stream_sequence, at_rewritten);
}

/// Fails every time, counting its attempts; `FATAL` says whether it is worth retrying.
#[derive(Clone, Default)]
struct AlwaysFails<const FATAL: bool> {
    attempts: Arc<Mutex<u64>>,
}

impl<const FATAL: bool> Reactor for AlwaysFails<FATAL> {
    type Aggregate = Workspace;
    const NAME: &'static str = if FATAL {
        "fails-fatally"
    } else {
        "fails-transiently"
    };

    async fn react<'a>(&'a self, _event: &'a Recorded<WorkspaceEvent>) -> Result<(), ReactionError> {
        *self.attempts.lock().unwrap() += 1;
        if FATAL {
            Err(ReactionError::Fatal(AppError::internal("broken")))
        } else {
            Err(ReactionError::Retry(AppError::unavailable("down")))
        }
    }
}

async fn recorded_failure_after<const FATAL: bool>(expected_attempts: u64) {
    let env = env().await;
    let ws = env.workspace().await;
    let event_id = created_events(&env, &[ws]).await.remove(0);

    let reactor = AlwaysFails::<FATAL>::default();
    let worker = env.start(reactor.clone(), fast());
    let name = AlwaysFails::<FATAL>::NAME;
    eventually("the failure is recorded", async || {
        env.failure(name, &event_id).await.is_some()
    })
    .await;
    let failure = env.failure(name, &event_id).await.unwrap();
    assert_eq!(failure.attempts, expected_attempts);
    assert_eq!(failure.event_id, event_id);
    assert_eq!(failure.event_type, "io.prism.workspace.created.v1");
    // The repository reads the same record as the failure.
    let record = env
        .app
        .repository::<Reaction>()
        .load(&format!("{name}-{event_id}"))
        .await
        .unwrap();
    assert_eq!(record.state.failure, Some(failure));

    // Once recorded, the event is let go: no further attempts (checked past several backoff periods).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*reactor.attempts.lock().unwrap(), expected_attempts);
    worker.stop().await.unwrap();
    assert_eq!(env.failures().await.len(), 1);
}

#[tokio::test]
async fn a_reaction_that_keeps_failing_ends_in_a_recorded_failure() {
    recorded_failure_after::<false>(fast().max_attempts).await;
}

#[tokio::test]
async fn a_fatal_reaction_error_is_recorded_at_once() {
    recorded_failure_after::<true>(1).await;
}
