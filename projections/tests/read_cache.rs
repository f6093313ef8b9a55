//! Views answered from memory stay true: every process's commits reach them, a read with a sequence it
//! learnt from the database sees that commit, a reset empties them, and a rebuild's swap reaches them.

use std::sync::Arc;
use std::time::Duration;

use prism_domain::computation::{
    Computation, ComputationChanges, ComputationCommand, Role, WorkspaceStanding,
};
use prism_domain::testing::samples::{participant, sample_definition};
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_domain::{ComputationId, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{
    COMPUTATIONS, ComputationsProjection, Projection, Projector, ReadModels, RunProjection as _, WORKSPACES,
    WorkspacesProjection, reset,
};
use prism_store::{CommandRequest, EventLog, EventStore, Metadata, Repository, StoreConfig};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

struct Env {
    _nats: NatsServer,
    db: TestDatabase,
    log: Arc<dyn EventLog>,
    read: ReadModels,
    workspaces: Repository<Workspace>,
    computations: Repository<Computation>,
    stops: Vec<watch::Sender<bool>>,
}

async fn env() -> Env {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let store = EventStore::connect(&nats.url(), StoreConfig::default())
        .await
        .unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    read.migrate().await.unwrap();
    following(&read).await;
    Env {
        workspaces: Repository::new(store.clone()),
        computations: Repository::new(store.clone()),
        log: Arc::new(store),
        _nats: nats,
        db,
        read,
        stops: Vec::new(),
    }
}

/// Waits until `read` answers hot reads from memory (its listening connection is up).
async fn following(read: &ReadModels) {
    tokio::time::timeout(WAIT, async {
        while !read.follows_changes() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("read models never started following changes");
}

fn meta() -> Metadata {
    Metadata {
        actor: "alice".into(),
        ..Default::default()
    }
}

impl Env {
    fn projector<P: Projection>(&self, projection: P, read: &ReadModels) -> Projector<P> {
        Projector::new(projection, read.pool().clone(), self.log.clone())
    }

    /// Runs a projector on `read`'s pool until the environment is dropped.
    fn start<P: Projection>(&mut self, projection: P, read: &ReadModels) {
        let (stop, stopped) = watch::channel(false);
        let projector = self.projector(projection, read);
        tokio::spawn(async move { projector.run(stopped).await });
        self.stops.push(stop);
    }

    async fn workspace(&self) -> (WorkspaceId, u64) {
        let id = WorkspaceId(uuid::Uuid::now_v7());
        let create = WorkspaceCommand::Create {
            id,
            name: "Hospitals".into(),
            description: String::new(),
            admin: None,
        };
        let sequence = self
            .workspaces
            .execute(CommandRequest::new(&id, create, meta()))
            .await
            .unwrap()
            .sequence;
        (id, sequence)
    }

    async fn computation(&self, ws: WorkspaceId) -> (ComputationId, u64) {
        let id = ComputationId(uuid::Uuid::now_v7());
        let create = ComputationCommand::Create {
            id,
            workspace_id: ws,
            workspace: WorkspaceStanding::Active,
            definition: sample_definition(),
        };
        (id, self.command(id, create).await)
    }

    async fn command(&self, id: ComputationId, command: ComputationCommand) -> u64 {
        self.computations
            .execute(CommandRequest::new(&id, command, meta()))
            .await
            .unwrap()
            .sequence
    }

    async fn describe(&self, id: ComputationId, description: &str) -> u64 {
        let update = ComputationCommand::Update(ComputationChanges {
            description: Some(description.into()),
            ..Default::default()
        });
        self.command(id, update).await
    }
}

/// What a gateway does for `GET ...?min_sequence=`: wait for the projection, then read.
async fn read_at(read: &ReadModels, ws: WorkspaceId, id: ComputationId, sequence: u64) -> String {
    if !read.reached(COMPUTATIONS, sequence).await.unwrap() {
        read.wait_for(COMPUTATIONS, sequence, WAIT).await.unwrap();
    }
    read.computation(ws, id).await.unwrap().unwrap().description
}

#[tokio::test]
async fn a_cached_view_is_replaced_by_a_commit_of_another_process() {
    let mut env = env().await;
    // The projector runs on the pool of another `ReadModels`, as in another process.
    let other = ReadModels::connect(&env.db.url).await.unwrap();
    env.start(ComputationsProjection, &other);
    let (ws, _) = env.workspace().await;
    let (id, created) = env.computation(ws).await;
    env.read.wait_for(COMPUTATIONS, created, WAIT).await.unwrap();
    let first = env.read.computation(ws, id).await.unwrap().unwrap();
    // Read twice: the second answer comes from memory.
    assert_eq!(env.read.computation(ws, id).await.unwrap().unwrap(), first);

    for round in 0..20 {
        let description = format!("phase {round}");
        let sequence = env.describe(id, &description).await;
        assert_eq!(read_at(&env.read, ws, id, sequence).await, description);
        // Also through the exact checkpoint, as a caller that asks the database first.
        while env.read.checkpoint(COMPUTATIONS).await.unwrap() < sequence {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let view = env.read.computation(ws, id).await.unwrap().unwrap();
        assert_eq!(view.description, description);
        assert_eq!(view.version, round + 2);
    }
}

#[tokio::test]
async fn reads_right_after_a_write_see_the_write() {
    let mut env = env().await;
    let read = env.read.clone();
    env.start(WorkspacesProjection, &read);
    env.start(ComputationsProjection, &read);
    let (ws, _) = env.workspace().await;
    let (id, created) = env.computation(ws).await;
    let view = {
        read.wait_for(COMPUTATIONS, created, WAIT).await.unwrap();
        read.computation(ws, id).await.unwrap().unwrap()
    };
    assert_eq!(view.participants, sample_definition().participants);
    assert_eq!(view.algorithm, sample_definition().algorithm);
    assert_eq!(view.datasets, sample_definition().datasets);

    // Readers hammer the view while it changes; every read with a sequence sees at least that commit.
    let reader = {
        let read = read.clone();
        tokio::spawn(async move {
            for _ in 0..2_000 {
                read.computation(ws, id).await.unwrap().unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for round in 0..30u64 {
        let sequence = env.describe(id, &format!("round {round}")).await;
        assert_eq!(read_at(&read, ws, id, sequence).await, format!("round {round}"));
    }
    reader.await.unwrap();

    // Reordered, and one more: the view follows the new list in its order.
    let mut participants = sample_definition().participants;
    participants.reverse();
    participants.push(participant("dave", &[Role::Viewer]));
    let update = ComputationCommand::Update(ComputationChanges {
        participants: Some(participants.clone()),
        ..Default::default()
    });
    let sequence = env.command(id, update).await;
    read.wait_for(COMPUTATIONS, sequence, WAIT).await.unwrap();
    assert_eq!(
        read.computation(ws, id).await.unwrap().unwrap().participants,
        participants
    );

    let archived = env
        .command(id, ComputationCommand::Archive { reason: None })
        .await;
    read.wait_for(COMPUTATIONS, archived, WAIT).await.unwrap();
    assert_eq!(
        read.computation(ws, id).await.unwrap().unwrap().status,
        "archived"
    );

    let workspace = read.workspace(ws).await.unwrap().unwrap();
    assert_eq!(read.workspace(ws).await.unwrap().unwrap(), workspace);
    // A computation is only visible within its own workspace, from memory too.
    let elsewhere = WorkspaceId(uuid::Uuid::now_v7());
    assert!(read.computation(elsewhere, id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_reset_empties_what_memory_holds() {
    let mut env = env().await;
    let read = env.read.clone();
    env.start(WorkspacesProjection, &read);
    let (ws, created) = env.workspace().await;
    let (id, last) = env.computation(ws).await;
    read.wait_for(WORKSPACES, created, WAIT).await.unwrap();
    env.projector(ComputationsProjection, &read)
        .catch_up()
        .await
        .unwrap();
    assert!(read.computation(ws, id).await.unwrap().is_some());
    assert!(read.computation(ws, id).await.unwrap().is_some());

    // Emptied by another process.
    let other = ReadModels::connect(&env.db.url).await.unwrap();
    reset(other.pool(), &ComputationsProjection).await.unwrap();
    assert_eq!(read.checkpoint(COMPUTATIONS).await.unwrap(), 0);
    assert!(read.computation(ws, id).await.unwrap().is_none());
    // Once this process has heard of the reset, memory answers again, and holds nothing old.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(read.follows_changes());
    assert!(read.computation(ws, id).await.unwrap().is_none());

    env.projector(ComputationsProjection, &other)
        .catch_up()
        .await
        .unwrap();
    assert!(read.reached(COMPUTATIONS, last).await.unwrap());
    assert!(read.computation(ws, id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_rebuild_swapped_in_by_another_process_reaches_what_memory_holds() {
    let mut env = env().await;
    let read = env.read.clone();
    env.start(WorkspacesProjection, &read);
    let (ws, created) = env.workspace().await;
    let (id, _) = env.computation(ws).await;
    read.wait_for(WORKSPACES, created, WAIT).await.unwrap();
    env.projector(ComputationsProjection, &read)
        .catch_up()
        .await
        .unwrap();
    let name = |view: Option<prism_projections::ComputationView>| view.unwrap().name;
    let original = name(read.computation(ws, id).await.unwrap());
    // A row gone wrong in the database, which memory hears of like any change.
    let other = ReadModels::connect(&env.db.url).await.unwrap();
    other
        .pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE computations SET name = 'damaged' WHERE id = $1",
            &[&id.as_uuid()],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(name(read.computation(ws, id).await.unwrap()), "damaged");

    // Rebuilt by another process: the swap changes the row in place, and memory hears of it.
    env.projector(ComputationsProjection, &other)
        .rebuild()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(read.follows_changes());
    assert_eq!(name(read.computation(ws, id).await.unwrap()), original);
}

#[tokio::test]
async fn waiting_is_woken_by_the_commit() {
    let mut env = env().await;
    let read = env.read.clone();
    let (ws, _) = env.workspace().await;
    let (_, last) = env.computation(ws).await;
    let waiting = {
        let read = read.clone();
        tokio::spawn(async move { read.wait_for(COMPUTATIONS, last, WAIT).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    env.start(ComputationsProjection, &read);
    waiting.await.unwrap().unwrap();
    assert!(read.reached(COMPUTATIONS, last).await.unwrap());
    assert!(!read.reached(COMPUTATIONS, last + 1_000).await.unwrap());
}

#[tokio::test]
async fn reads_are_answered_by_the_database_before_the_schema_announces_changes() {
    let db = TestDatabase::create().await.unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!read.follows_changes(), "no migration, no notifications");
    read.migrate().await.unwrap();
    following(&read).await;
}
