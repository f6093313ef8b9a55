//! Projections against a real nats-server and a fresh PostgreSQL database per test.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, WAIT, dump, env};
use deadpool_postgres::Transaction;
use prism_domain::computation::{
    Computation, ComputationChanges, ComputationCommand, ComputationEvent, Definition, Role,
    WorkspaceStanding,
};
use prism_domain::testing::samples::participant;
use prism_domain::workspace::WorkspaceCommand;
use prism_domain::{ComputationId, WorkspaceId};
use prism_projections::{
    COMPUTATIONS, ComputationsProjection, PageRequest, Projection, ProjectionError, ReadModels,
    RunProjection as _, RunsProjection, WORKSPACES, WorkspacesProjection, reset,
};
use prism_store::Recorded;

fn definition(name: &str) -> Definition {
    Definition {
        name: name.into(),
        description: "study".into(),
        participants: vec![
            participant("alice", &[Role::Owner, Role::ResultConsumer]),
            participant("bob", &[Role::DatasetProvider]),
        ],
        algorithm: None,
        datasets: vec![],
        limits: Default::default(),
    }
}

/// Creates a workspace with `n` computations, updates and archives some; returns the last sequence.
async fn history(env: &Env, n: usize) -> (WorkspaceId, Vec<ComputationId>, u64) {
    let ws = WorkspaceId(uuid::Uuid::now_v7());
    let create = WorkspaceCommand::Create {
        id: ws,
        name: "Hospitals".into(),
        description: String::new(),
        admin: None,
    };
    env.workspace(ws, create).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = ComputationId(uuid::Uuid::now_v7());
        let create = ComputationCommand::Create {
            id,
            workspace_id: ws,
            workspace: WorkspaceStanding::Active,
            definition: definition(&format!("c{i}")),
        };
        env.computation(id, create).await;
        ids.push(id);
    }
    let update = ComputationCommand::Update(ComputationChanges {
        description: Some("phase 2".into()),
        participants: Some(definition("x").participants[..1].to_vec()),
        ..Default::default()
    });
    env.computation(ids[0], update).await;
    let archive = ComputationCommand::Archive {
        reason: Some("done".into()),
    };
    let last = env.computation(ids[1], archive).await;
    (ws, ids, last)
}

#[tokio::test]
async fn read_models_follow_the_log() {
    let env = env().await;
    let _w = env.start(WorkspacesProjection);
    let _c = env.start(ComputationsProjection);
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
    let _c = env.start(ComputationsProjection);
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
    let w = env.start(WorkspacesProjection);
    let c = env.start(ComputationsProjection);
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

    reset(env.read.pool(), &ComputationsProjection).await.unwrap();
    reset(env.read.pool(), &WorkspacesProjection).await.unwrap();
    assert!(dump(&env.read, "computations").await.is_empty());
    assert!(dump(&env.read, "participants").await.is_empty());
    assert_eq!(env.read.checkpoint(COMPUTATIONS).await.unwrap(), 0);
    env.projector(WorkspacesProjection).catch_up().await.unwrap();
    env.projector(ComputationsProjection).catch_up().await.unwrap();
    let rebuilt = (
        dump(&env.read, "workspaces").await,
        dump(&env.read, "computations").await,
        dump(&env.read, "participants").await,
    );
    assert_eq!(live, rebuilt);
    assert_eq!(env.read.checkpoint(COMPUTATIONS).await.unwrap(), last);

    // The same through `RunProjection::rebuild`, which replays aside and swaps in one call.
    assert_eq!(
        env.projector(ComputationsProjection).rebuild().await.unwrap(),
        last
    );
    assert_eq!(
        (
            dump(&env.read, "computations").await,
            dump(&env.read, "participants").await,
        ),
        (live.1, live.2)
    );
    // A projection that never ran is rebuilt too: its checkpoint is made on the way.
    assert_eq!(env.projector(RunsProjection).rebuild().await.unwrap(), last);
    assert_eq!(env.read.checkpoint(prism_projections::RUNS).await.unwrap(), last);
}

/// Records every computation event it applies, one row each: an event applied twice or lost shows.
/// Its `apply` number `crash_at` (counted from 1) writes its row and then fails the transaction with a
/// server error that is no fault of the event (SQLSTATE class XX, like a crash of the database), once.
struct Recording {
    calls: Arc<AtomicUsize>,
    crash_at: usize,
}

impl Projection for Recording {
    type Aggregate = Computation;

    fn name(&self) -> &'static str {
        "recording"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["applied_events"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<ComputationEvent>,
    ) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO applied_events (event_id, sequence) VALUES ($1, $2)",
            &[&recorded.meta.id, &(recorded.meta.sequence as i64)],
        )
        .await?;
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.crash_at {
            tx.batch_execute("DO $$ BEGIN RAISE EXCEPTION 'crash' USING ERRCODE = 'XX001'; END $$")
                .await?;
        }
        Ok(())
    }
}

/// `(event id, stream sequence)` of every row of `applied_events`.
async fn applied(read: &ReadModels) -> Vec<(String, i64)> {
    read.pool()
        .get()
        .await
        .unwrap()
        .query(
            "SELECT event_id, sequence FROM applied_events ORDER BY sequence, event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_crash_between_rows_and_checkpoint_applies_nothing_twice() {
    let env = env().await;
    env.read
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE applied_events (event_id text NOT NULL, sequence bigint NOT NULL)")
        .await
        .unwrap();
    let (_, ids, last) = history(&env, 6).await;
    let mut events = Vec::new();
    for id in &ids {
        let subject = env
            .log
            .subjects()
            .aggregate("computation", &id.to_string())
            .unwrap();
        for commit in env.log.load(&subject).await.unwrap() {
            events.extend(
                commit
                    .events
                    .iter()
                    .map(|e| (e.id.clone(), commit.sequence as i64)),
            );
        }
    }
    events.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    assert_eq!(events.len(), 6 + 1 + 1);

    // The last event's row is written, then the transaction dies before its checkpoint.
    let calls = Arc::new(AtomicUsize::new(0));
    let crashing = env.projector(Recording {
        calls: calls.clone(),
        crash_at: events.len(),
    });
    let err = crashing.catch_up().await.unwrap_err();
    assert!(
        matches!(&err, ProjectionError::Database(e) if e.code().is_some_and(|c| c.code() == "XX001")),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), events.len());
    let checkpoint = env.read.checkpoint("recording").await.unwrap();
    assert!(checkpoint < last, "the failed batch moved the checkpoint");
    let upto = |checkpoint: u64| -> Vec<(String, i64)> {
        events
            .iter()
            .filter(|(_, s)| *s as u64 <= checkpoint)
            .cloned()
            .collect()
    };
    assert_eq!(
        applied(&env.read).await,
        upto(checkpoint),
        "rows of the failed transaction must not persist"
    );
    assert!(
        env.read.quarantined(10).await.unwrap().is_empty(),
        "a failure of the database is no reason to quarantine the event"
    );

    // The restarted projector resumes from the checkpoint: every event applied exactly once.
    crashing.catch_up().await.unwrap();
    assert_eq!(env.read.checkpoint("recording").await.unwrap(), last);
    assert_eq!(applied(&env.read).await, events);

    // Running it again over the same log changes nothing.
    env.projector(Recording {
        calls: Arc::new(AtomicUsize::new(0)),
        crash_at: 0,
    })
    .catch_up()
    .await
    .unwrap();
    assert_eq!(applied(&env.read).await, events);
}

/// Polls until `n` lock requests wait in this test's database: the other connections have got where
/// they block.
async fn until_waiting(read: &ReadModels, n: i64) {
    let client = read.pool().get().await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE NOT l.granted AND a.datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} lock requests wait, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_rebuild_never_makes_the_active_computations_as_of_a_sequence_look_empty() {
    let env = env().await;
    let (ws, ids, last) = history(&env, 3).await;
    env.projector(ComputationsProjection).catch_up().await.unwrap();
    assert_eq!(
        env.read.active_computation_ids_as_of(ws, last).await.unwrap(),
        Some(vec![ids[0], ids[2]])
    );

    // Stops a rebuild after it has emptied the tables, before it resets the checkpoint: it waits to
    // forget a quarantine record that another transaction holds locked.
    let mut holder = env.read.pool().get().await.unwrap();
    holder
        .execute(
            "INSERT INTO quarantine (reader, sequence, subject, event_ids, reason)
             VALUES ($1, 0, 'held', '{}', 'held')",
            &[&COMPUTATIONS],
        )
        .await
        .unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "SELECT 1 FROM quarantine WHERE reader = $1 FOR UPDATE",
        &[&COMPUTATIONS],
    )
    .await
    .unwrap();
    let pool = env.read.pool().clone();
    let rebuilding = tokio::spawn(async move { reset(&pool, &ComputationsProjection).await });
    until_waiting(&env.read, 1).await;

    // A reader asks meanwhile, and is let through once the rebuild has committed.
    let read = env.read.clone();
    let asking = tokio::spawn(async move { read.active_computation_ids_as_of(ws, last).await });
    until_waiting(&env.read, 2).await;
    hold.commit().await.unwrap();
    rebuilding.await.unwrap().unwrap();
    let answer = asking.await.unwrap().unwrap();

    // Either not reached yet (the checkpoint was reset), or the whole answer; never an empty list.
    assert!(
        answer.is_none() || answer == Some(vec![ids[0], ids[2]]),
        "a rebuild in progress was read as `no active computation`: {answer:?}"
    );
}

#[tokio::test]
async fn a_rebuild_replays_aside_while_readers_and_the_live_projector_go_on_then_swaps_at_once() {
    let env = env().await;
    let w = env.start(WorkspacesProjection);
    let c = env.start(ComputationsProjection);
    let (ws, ids, last) = history(&env, 12).await;
    env.read.wait_for(WORKSPACES, last, WAIT).await.unwrap();
    env.read.wait_for(COMPUTATIONS, last, WAIT).await.unwrap();
    let live = (
        dump(&env.read, "computations").await,
        dump(&env.read, "participants").await,
    );
    // A read model gone wrong, which the log does not say: the rebuild puts it right.
    let client = env.read.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE computations SET name = 'damaged' WHERE id = $1",
            &[&ids[3].as_uuid()],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM participants WHERE computation_id = $1",
            &[&ids[4].as_uuid()],
        )
        .await
        .unwrap();

    // Readers meanwhile: every look sees all the workspace's computations, never an emptied or a
    // half-replayed table.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (pool, done) = (env.read.pool().clone(), done.clone());
        tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            let mut looks = 0;
            let mut fewest = i64::MAX;
            while !done.load(Ordering::SeqCst) {
                let row = client
                    .query_one(
                        "SELECT count(*) FROM computations WHERE workspace_id = $1",
                        &[&ws.as_uuid()],
                    )
                    .await
                    .unwrap();
                fewest = fewest.min(row.get(0));
                looks += 1;
            }
            (looks, fewest)
        })
    };
    // A second rebuild of the same projection is refused while one is under way.
    let holder = env.read.pool().get().await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtext('prism-rebuild:computations'))",
            &[],
        )
        .await
        .unwrap();
    let refused = env.projector(ComputationsProjection).rebuild().await;
    assert!(
        matches!(refused, Err(ProjectionError::RebuildUnderWay(ref name)) if name == COMPUTATIONS),
        "{refused:?}"
    );
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtext('prism-rebuild:computations'))",
            &[],
        )
        .await
        .unwrap();

    // Commands go on during the rebuild, and the live projector with them.
    let rebuilding = {
        let projector = env.projector(ComputationsProjection);
        tokio::spawn(async move { projector.rebuild().await })
    };
    let later = ComputationId(uuid::Uuid::now_v7());
    let create = ComputationCommand::Create {
        id: later,
        workspace_id: ws,
        workspace: WorkspaceStanding::Active,
        definition: definition("later"),
    };
    let end = env.computation(later, create).await;
    let reached = rebuilding.await.unwrap().unwrap();
    assert!(reached >= last, "{reached} < {last}");
    env.read.wait_for(COMPUTATIONS, end, WAIT).await.unwrap();
    done.store(true, Ordering::SeqCst);
    let (looks, fewest) = reader.await.unwrap();
    assert!(looks > 0);
    assert_eq!(
        fewest, 12,
        "a reader saw {fewest} of 12 computations during the rebuild"
    );

    // What the log says, repaired, with the computation created meanwhile.
    let rebuilt = dump(&env.read, "computations").await;
    let without_later: Vec<_> = rebuilt
        .iter()
        .filter(|row| row["id"] != later.to_string())
        .cloned()
        .collect();
    assert_eq!(without_later, live.0);
    assert_eq!(rebuilt.len(), live.0.len() + 1);
    let participants = dump(&env.read, "participants").await;
    let without_later: Vec<_> = participants
        .iter()
        .filter(|row| row["computation_id"] != later.to_string())
        .cloned()
        .collect();
    assert_eq!(without_later, live.1);
    // Nothing of the rebuild is left behind.
    let leftovers = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'prism_rebuild_%')
                  + (SELECT count(*) FROM projection_checkpoints WHERE name LIKE '%~rebuild')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(leftovers.get::<_, i64>(0), 0);
    w.send(true).unwrap();
    c.send(true).unwrap();
}
