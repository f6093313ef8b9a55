//! Projections against a real nats-server and a fresh PostgreSQL database per test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Transaction;
use prism_domain::computation::{
    Computation, ComputationChanges, ComputationCommand, Definition, Participant, Role, WorkspaceStanding,
};
use prism_domain::values::PublicKey;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_domain::{ComputationId, ParticipantId, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{
    COMPUTATIONS, ComputationsProjection, PageRequest, Projection, ProjectionError, Projector, ReadModels,
    WORKSPACES, WorkspacesProjection, rebuild,
};
use prism_store::{EventStore, Metadata, Repository, StoreConfig, StoredCommit};
use tokio::sync::watch;

const KEY: &str = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
const WAIT: Duration = Duration::from_secs(10);

struct Env {
    _nats: NatsServer,
    _db: TestDatabase,
    store: EventStore,
    read: ReadModels,
    workspaces: Repository<Workspace>,
    computations: Repository<Computation>,
}

async fn env() -> Env {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let store = EventStore::connect(&nats.url(), StoreConfig::default())
        .await
        .unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    read.migrate().await.unwrap();
    Env {
        workspaces: Repository::new(store.clone()),
        computations: Repository::new(store.clone()),
        _nats: nats,
        _db: db,
        store,
        read,
    }
}

fn meta() -> Metadata {
    Metadata {
        actor: "alice".into(),
        ..Default::default()
    }
}

fn start<P: Projection>(env: &Env, projection: P) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let projector = Projector::new(projection, env.read.pool().clone(), env.store.clone());
    tokio::spawn(projector.run(stopped));
    stop
}

fn definition(name: &str) -> Definition {
    let key = PublicKey::parse(KEY).unwrap();
    Definition {
        name: name.into(),
        description: "study".into(),
        participants: vec![
            Participant {
                id: ParticipantId::parse("alice").unwrap(),
                roles: BTreeSet::from([Role::Owner, Role::ResultConsumer]),
                public_key: Some(key.clone()),
            },
            Participant {
                id: ParticipantId::parse("bob").unwrap(),
                roles: BTreeSet::from([Role::DatasetProvider]),
                public_key: Some(key),
            },
        ],
        algorithm: None,
        datasets: vec![],
    }
}

/// Creates a workspace with `n` computations, updates and archives some; returns the last sequence.
async fn history(env: &Env, n: usize) -> (WorkspaceId, Vec<ComputationId>, u64) {
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
    for i in 0..n {
        let id = ComputationId(uuid::Uuid::now_v7());
        let cmd = ComputationCommand::Create {
            id,
            workspace_id: ws,
            workspace: WorkspaceStanding::Active,
            definition: definition(&format!("c{i}")),
        };
        env.computations
            .execute(&id, cmd, &meta(), None, None)
            .await
            .unwrap();
        ids.push(id);
    }
    let update = ComputationCommand::Update(ComputationChanges {
        description: Some("phase 2".into()),
        participants: Some(definition("x").participants[..1].to_vec()),
        ..Default::default()
    });
    env.computations
        .execute(&ids[0], update, &meta(), None, None)
        .await
        .unwrap();
    let last = env
        .computations
        .execute(
            &ids[1],
            ComputationCommand::Archive {
                reason: Some("done".into()),
            },
            &meta(),
            None,
            None,
        )
        .await
        .unwrap()
        .sequence;
    (ws, ids, last)
}

async fn dump(read: &ReadModels, table: &str) -> Vec<serde_json::Value> {
    let client = read.pool().get().await.unwrap();
    let sql = format!("SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text");
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn read_models_follow_the_log() {
    let env = env().await;
    let _w = start(&env, WorkspacesProjection);
    let _c = start(&env, ComputationsProjection);
    let (ws, ids, last) = history(&env, 3).await;
    env.read.wait_for(WORKSPACES, last, WAIT).await.unwrap();
    env.read.wait_for(COMPUTATIONS, last, WAIT).await.unwrap();

    let workspace = env.read.workspace(ws).await.unwrap().unwrap();
    assert_eq!(
        (
            workspace.name.as_str(),
            workspace.status.as_str(),
            workspace.version
        ),
        ("Hospitals", "active", 1)
    );

    let first = env.read.computation(ws, ids[0]).await.unwrap().unwrap();
    assert_eq!(first.description, "phase 2");
    assert_eq!(first.participants.len(), 1);
    assert_eq!(first.version, 2);
    let second = env.read.computation(ws, ids[1]).await.unwrap().unwrap();
    assert_eq!(second.status, "archived");
    assert_eq!(
        second.participants[1].roles,
        BTreeSet::from([Role::DatasetProvider])
    );
    // A computation is only visible within its own workspace.
    assert!(
        env.read
            .computation(WorkspaceId(uuid::Uuid::now_v7()), ids[0])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        env.read.active_computation_ids(ws).await.unwrap(),
        vec![ids[0], ids[2]]
    );
}

#[tokio::test]
async fn pages_follow_creation_order() {
    let env = env().await;
    let _c = start(&env, ComputationsProjection);
    let (ws, ids, last) = history(&env, 5).await;
    env.read.wait_for(COMPUTATIONS, last, WAIT).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = env
            .read
            .computations(ws, PageRequest { after, limit: 2 })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|c| c.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn waiting_for_an_unreached_sequence_times_out_with_the_position() {
    let env = env().await;
    let err = env
        .read
        .wait_for(WORKSPACES, 99, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProjectionError::Lagging {
                sequence: 99,
                reached: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_rebuilt_projection_equals_the_live_one() {
    let env = env().await;
    let w = start(&env, WorkspacesProjection);
    let c = start(&env, ComputationsProjection);
    let (_, _, last) = history(&env, 4).await;
    env.read.wait_for(WORKSPACES, last, WAIT).await.unwrap();
    env.read.wait_for(COMPUTATIONS, last, WAIT).await.unwrap();
    let live = (
        dump(&env.read, "workspaces").await,
        dump(&env.read, "computations").await,
        dump(&env.read, "participants").await,
    );
    w.send(true).unwrap();
    c.send(true).unwrap();

    rebuild(env.read.pool(), &ComputationsProjection).await.unwrap();
    rebuild(env.read.pool(), &WorkspacesProjection).await.unwrap();
    assert!(dump(&env.read, "computations").await.is_empty());
    Projector::new(WorkspacesProjection, env.read.pool().clone(), env.store.clone())
        .catch_up()
        .await
        .unwrap();
    Projector::new(ComputationsProjection, env.read.pool().clone(), env.store.clone())
        .catch_up()
        .await
        .unwrap();
    let rebuilt = (
        dump(&env.read, "workspaces").await,
        dump(&env.read, "computations").await,
        dump(&env.read, "participants").await,
    );
    assert_eq!(live, rebuilt);
    assert_eq!(env.read.checkpoint(COMPUTATIONS).await.unwrap(), last);
}

/// Counts every event it applies: a double application or a lost one shows in the count.
struct Counting;

impl Projection for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["event_counts"]
    }
    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        commit: &'a StoredCommit,
    ) -> Result<(), ProjectionError> {
        tx.execute(
            "UPDATE event_counts SET n = n + $1",
            &[&(commit.events.len() as i64)],
        )
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_crash_between_rows_and_checkpoint_applies_nothing_twice() {
    let env = env().await;
    env.read
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE event_counts (n bigint); INSERT INTO event_counts VALUES (0)")
        .await
        .unwrap();
    let (_, _, last) = history(&env, 6).await;
    let events: i64 = 1 + 6 + 1 + 1;

    // The first batch's rows are written, then the process "dies" before its checkpoint.
    let crashed = Arc::new(AtomicBool::new(false));
    let flag = crashed.clone();
    let faulty = Projector::new(Counting, env.read.pool().clone(), env.store.clone())
        .with_fault(Arc::new(move |_| !flag.swap(true, Ordering::SeqCst)));
    let err = faulty.catch_up().await.unwrap_err();
    assert!(matches!(err, ProjectionError::Injected(_)), "{err}");
    let count = |read: ReadModels| async move {
        read.pool()
            .get()
            .await
            .unwrap()
            .query_one("SELECT n FROM event_counts", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(
        count(env.read.clone()).await,
        0,
        "rows of the failed transaction must not persist"
    );
    assert_eq!(env.read.checkpoint("counting").await.unwrap(), 0);

    // The restarted projector resumes from the checkpoint: every event counted exactly once.
    faulty.catch_up().await.unwrap();
    assert_eq!(env.read.checkpoint("counting").await.unwrap(), last);
    assert_eq!(count(env.read.clone()).await, events);

    // Running it again over the same log changes nothing.
    Projector::new(Counting, env.read.pool().clone(), env.store.clone())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(count(env.read.clone()).await, events);
}
