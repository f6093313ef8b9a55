//! The worker runtime and the workspace archiver against a real nats-server and PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prism_domain::computation::{
    Computation, ComputationCommand, ComputationStatus, Definition, Participant, Role, WorkspaceStanding,
};
use prism_domain::reaction::Reaction;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_domain::{Aggregate as _, ComputationId, ParticipantId, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{ComputationsProjection, Projector, ReadModels};
use prism_store::{EventStore, Metadata, Repository, StoreConfig, StoredCommit};
use prism_workers::{ReactionError, Reactor, Worker, WorkerConfig, WorkspaceArchiver};
use tokio::sync::watch;

struct Env {
    nats: NatsServer,
    _db: TestDatabase,
    store: EventStore,
    read: ReadModels,
    workspaces: Arc<Repository<Workspace>>,
    computations: Arc<Repository<Computation>>,
    _stop: watch::Sender<bool>,
}

async fn env() -> Env {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let store = EventStore::connect(&nats.url(), StoreConfig::default())
        .await
        .unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    read.migrate().await.unwrap();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(Projector::new(ComputationsProjection, read.pool().clone(), store.clone()).run(stopped));
    Env {
        workspaces: Arc::new(Repository::new(store.clone())),
        computations: Arc::new(Repository::new(store.clone())),
        nats,
        _db: db,
        store,
        read,
        _stop: stop,
    }
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        max_attempts: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ack_wait: Duration::from_secs(1),
    }
}

fn meta() -> Metadata {
    Metadata {
        actor: "alice".into(),
        ..Default::default()
    }
}

fn definition() -> Definition {
    Definition {
        name: "study".into(),
        description: String::new(),
        participants: vec![Participant {
            id: ParticipantId::parse("alice").unwrap(),
            roles: BTreeSet::from([Role::Owner]),
            public_key: None,
        }],
        algorithm: None,
        datasets: vec![],
    }
}

async fn workspace_with(env: &Env, n: usize) -> (WorkspaceId, Vec<ComputationId>) {
    let ws = WorkspaceId(uuid::Uuid::now_v7());
    let create = WorkspaceCommand::Create {
        id: ws,
        name: "Hospitals".into(),
        description: String::new(),
    };
    env.workspaces
        .execute(&ws, create, &meta(), None, None)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = ComputationId(uuid::Uuid::now_v7());
        let cmd = ComputationCommand::Create {
            id,
            workspace_id: ws,
            workspace: WorkspaceStanding::Active,
            definition: definition(),
        };
        env.computations
            .execute(&id, cmd, &meta(), None, None)
            .await
            .unwrap();
        ids.push(id);
    }
    (ws, ids)
}

fn archiver(env: &Env) -> Worker<WorkspaceArchiver> {
    let reactor = WorkspaceArchiver::new(env.workspaces.clone(), env.computations.clone(), env.read.clone());
    Worker::new(reactor, env.store.clone(), fast())
}

/// Number of `archived` events in a computation's history, straight from the log.
async fn archived_events(env: &Env, id: ComputationId) -> usize {
    let subject = env.store.subject(Computation::TYPE, &id.to_string()).unwrap();
    let commits = env.store.load(&subject).await.unwrap();
    commits
        .iter()
        .flat_map(|c| &c.events)
        .filter(|e| e.ty == "io.prism.computation.archived.v1")
        .count()
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
    let (ws, ids) = workspace_with(&env, 100).await;

    // Watch archive commits as they are stored, to kill the worker while it is busy.
    let client = async_nats::connect(env.nats.url()).await.unwrap();
    let mut commits = client.subscribe("prism.ev.computation.*").await.unwrap();

    let (_stop_first, stopped) = watch::channel(false);
    let first = tokio::spawn(archiver(&env).run(stopped));
    env.workspaces
        .execute(&ws, WorkspaceCommand::Archive, &meta(), None, None)
        .await
        .unwrap();

    let mut seen = 0;
    while seen < 5 {
        let message = commits.next().await.unwrap();
        if String::from_utf8_lossy(&message.payload).contains("io.prism.computation.archived.v1") {
            seen += 1;
        }
    }
    first.abort(); // a crash: no graceful stop, no acknowledgement
    let _ = first.await;
    let mut archived_at_crash = 0;
    for id in &ids {
        archived_at_crash += archived_events(&env, *id).await;
    }
    assert!(
        archived_at_crash < ids.len(),
        "the worker finished before it could be killed"
    );

    let (stop, stopped) = watch::channel(false);
    let second = tokio::spawn(archiver(&env).run(stopped));
    eventually("every computation is archived", async || {
        for id in &ids {
            if env.computations.load(id).await.unwrap().state.status != ComputationStatus::Archived {
                return false;
            }
        }
        true
    })
    .await;
    for id in &ids {
        assert_eq!(
            archived_events(&env, *id).await,
            1,
            "computation {id} archived more than once"
        );
    }
    stop.send(true).unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_computation_created_while_its_workspace_was_being_archived_is_archived_too() {
    let env = env().await;
    let (ws, _) = workspace_with(&env, 1).await;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(archiver(&env).run(stopped));
    env.workspaces
        .execute(&ws, WorkspaceCommand::Archive, &meta(), None, None)
        .await
        .unwrap();
    // A gateway that checked the workspace just before the archiving still creates the computation.
    let late = ComputationId(uuid::Uuid::now_v7());
    let cmd = ComputationCommand::Create {
        id: late,
        workspace_id: ws,
        workspace: WorkspaceStanding::Active,
        definition: definition(),
    };
    env.computations
        .execute(&late, cmd, &meta(), None, None)
        .await
        .unwrap();
    eventually("the late computation is archived", async || {
        env.computations.load(&late).await.unwrap().state.status == ComputationStatus::Archived
    })
    .await;
    stop.send(true).unwrap();
}

/// Fails every time, counting its attempts.
struct AlwaysFails {
    fatal: bool,
    attempts: Arc<AtomicU64>,
}

impl Reactor for AlwaysFails {
    fn name(&self) -> &'static str {
        if self.fatal {
            "fails-fatally"
        } else {
            "fails-transiently"
        }
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Workspace::TYPE]
    }
    async fn react<'a>(&'a self, _commit: &'a StoredCommit) -> Result<(), ReactionError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.fatal {
            Err(ReactionError::Fatal("broken".into()))
        } else {
            Err(ReactionError::Retry("down".into()))
        }
    }
}

async fn recorded_failure_after(fatal: bool, expected_attempts: u64) {
    let env = env().await;
    let (ws, _) = workspace_with(&env, 0).await;
    let subject = env.store.subject(Workspace::TYPE, &ws.to_string()).unwrap();
    let event_id = env.store.load(&subject).await.unwrap()[0].events[0].id.clone();

    let attempts = Arc::new(AtomicU64::new(0));
    let reactor = AlwaysFails {
        fatal,
        attempts: attempts.clone(),
    };
    let name = reactor.name();
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(Worker::new(reactor, env.store.clone(), fast()).run(stopped));

    let failures = Repository::<Reaction>::new(env.store.clone());
    let id = format!("{name}-{event_id}");
    eventually("the failure is recorded", async || {
        failures.load(&id).await.unwrap().state.failure.is_some()
    })
    .await;
    let failure = failures.load(&id).await.unwrap().state.failure.unwrap();
    assert_eq!(failure.attempts, expected_attempts);
    assert_eq!(failure.event_id, event_id);
    assert_eq!(failure.event_type, "io.prism.workspace.created.v1");

    // Once recorded, the event is let go: no further attempts (checked past several backoff periods).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), expected_attempts);
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_reaction_that_keeps_failing_ends_in_a_recorded_failure() {
    recorded_failure_after(false, 3).await;
}

#[tokio::test]
async fn a_fatal_reaction_error_is_recorded_at_once() {
    recorded_failure_after(true, 1).await;
}
