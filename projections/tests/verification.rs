//! What a projection does with commits it must not trust: written with the real event store and the
//! real projections, the bad commits appended straight to the stream as anyone who can publish to it
//! could. Each one is quarantined (recorded with the reader, the stream sequence and why), never
//! applied, and the projection goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prism_domain::computation::{Computation, ComputationCommand, WorkspaceStanding};
use prism_domain::testing::{fixed_time, samples};
use prism_domain::workspace::{
    Workspace, WorkspaceCommand, WorkspaceCreated, WorkspaceEvent, WorkspaceUpdated,
};
use prism_domain::{Actor, Aggregate, ComputationId, DomainEvent, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{
    COMPUTATIONS, ComputationsProjection, Projection, Projector, QuarantinedView, ReadModels,
    RunProjection as _, WORKSPACES, WorkspaceView, WorkspacesProjection, reset,
};
use prism_store::{
    Append, ChainTip, CommandRequest, EventEnvelope, EventLog, EventStore, GENESIS_HASH, Metadata,
    Repository, StoreConfig,
};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

struct Env {
    _nats: NatsServer,
    _db: TestDatabase,
    log: Arc<dyn EventLog>,
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
        log: Arc::new(store),
        _nats: nats,
        _db: db,
        read,
    }
}

fn meta() -> Metadata {
    Metadata {
        actor: "alice".into(),
        ..Default::default()
    }
}

impl Env {
    fn projector<P: Projection>(&self, projection: P) -> Projector<P> {
        Projector::new(projection, self.read.pool().clone(), self.log.clone())
    }

    fn start<P: Projection>(&self, projection: P) -> watch::Sender<bool> {
        let (stop, stopped) = watch::channel(false);
        let projector = self.projector(projection);
        tokio::spawn(async move { projector.run(stopped).await });
        stop
    }

    /// A new workspace called "Hospitals", through the repository.
    async fn workspace(&self) -> WorkspaceId {
        let id = WorkspaceId(uuid::Uuid::now_v7());
        let create = WorkspaceCommand::Create {
            id,
            name: "Hospitals".into(),
            description: String::new(),
            admin: None,
        };
        self.workspaces
            .execute(CommandRequest::new(&id, create, meta()))
            .await
            .unwrap();
        id
    }

    /// Renames a workspace through the repository; returns the commit's stream sequence.
    async fn rename(&self, id: WorkspaceId, name: &str) -> u64 {
        let update = WorkspaceCommand::Update {
            name: Some(name.into()),
            description: None,
        };
        self.workspaces
            .execute(CommandRequest::new(&id, update, meta()))
            .await
            .unwrap()
            .sequence
    }

    async fn computation(&self, workspace: WorkspaceId) -> (ComputationId, u64) {
        let id = ComputationId(uuid::Uuid::now_v7());
        let create = ComputationCommand::Create {
            id,
            workspace_id: workspace,
            workspace: WorkspaceStanding::Active,
            definition: samples::minimal_definition(),
        };
        let sequence = self
            .computations
            .execute(CommandRequest::new(&id, create, meta()))
            .await
            .unwrap()
            .sequence;
        (id, sequence)
    }

    fn subject<A: Aggregate>(&self, id: &impl ToString) -> String {
        self.log.subjects().aggregate(A::TYPE, &id.to_string()).unwrap()
    }

    /// Where the chain of `subject` stands as stored (unverified: it may end in a forged commit).
    async fn tip(&self, subject: &str) -> ChainTip {
        self.log
            .commits_after(subject, 0)
            .await
            .unwrap()
            .last()
            .and_then(|c| c.tip())
            .unwrap_or_else(ChainTip::genesis)
    }

    /// Appends `events` as one commit on `subject`, after whatever is stored there; returns its sequence.
    async fn forge(&self, subject: &str, events: &[EventEnvelope]) -> u64 {
        let last = self.log.subject_last_sequence(subject).await.unwrap();
        let msg_id = uuid::Uuid::now_v7().simple().to_string();
        let append = Append::envelopes(subject, last, msg_id, events).unwrap();
        self.log.append(append).await.unwrap().sequence
    }

    async fn quarantined(&self, reader: &str) -> BTreeMap<u64, QuarantinedView> {
        self.read
            .quarantined(1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|q| q.reader == reader)
            .map(|q| (q.sequence, q))
            .collect()
    }

    async fn row(&self, id: WorkspaceId) -> Option<(String, u64)> {
        self.read
            .workspace(id)
            .await
            .unwrap()
            .map(|WorkspaceView { name, version, .. }| (name, version))
    }
}

/// The unsealed envelope of `event`, as the repository would write it for aggregate `id` at `version`.
fn envelope<E: DomainEvent>(
    aggregate_type: &str,
    id: &impl ToString,
    version: u64,
    event: &E,
) -> EventEnvelope {
    let id = id.to_string();
    let data = serde_json::to_value(event).unwrap()["data"].take();
    EventEnvelope {
        specversion: "1.0".into(),
        id: uuid::Uuid::now_v7().to_string(),
        source: "/prism".into(),
        ty: prism_domain::schema::event_type(aggregate_type, event.name(), event.version()),
        subject: format!("{aggregate_type}/{id}"),
        time: fixed_time(),
        datacontenttype: "application/json".into(),
        workspace: None,
        aggregatetype: aggregate_type.into(),
        aggregateid: id,
        aggregateversion: version,
        actor: "mallory".into(),
        correlationid: uuid::Uuid::now_v7().to_string(),
        causationid: None,
        traceparent: None,
        prevhash: String::new(),
        data,
        hash: String::new(),
    }
}

/// `envelope` chained after `prevhash` and sealed: a well-formed event on its own.
fn sealed(mut envelope: EventEnvelope, prevhash: &str) -> EventEnvelope {
    envelope.prevhash = prevhash.into();
    envelope.hash.clear();
    envelope.hash = envelope.compute_hash();
    envelope
}

/// A sealed `updated` event renaming workspace `id`, at `version`, chained after `prevhash`.
fn renamed(id: &impl ToString, version: u64, name: &str, prevhash: &str) -> EventEnvelope {
    let event = WorkspaceEvent::Updated(WorkspaceUpdated {
        name: Some(name.into()),
        description: None,
        updated_by: Actor("mallory".into()),
        updated_at: fixed_time(),
    });
    sealed(envelope(Workspace::TYPE, id, version, &event), prevhash)
}

/// A sealed `created` event of workspace `id` named `name`.
fn created(id: &str, name: &str) -> EventEnvelope {
    let event = WorkspaceEvent::Created(WorkspaceCreated {
        id: WorkspaceId(uuid::Uuid::now_v7()),
        name: name.into(),
        description: String::new(),
        created_by: Actor("mallory".into()),
        created_at: fixed_time(),
        admin: None,
    });
    sealed(envelope(Workspace::TYPE, &id, 1, &event), GENESIS_HASH)
}

/// Checks the quarantine record of the commit at `sequence`: the reader, subject and event ids are
/// right and the reason says `why`.
#[track_caller]
fn assert_quarantined(
    records: &BTreeMap<u64, QuarantinedView>,
    sequence: u64,
    subject: &str,
    event: &EventEnvelope,
    why: &str,
) {
    let record = records
        .get(&sequence)
        .unwrap_or_else(|| panic!("the commit at {sequence} is not quarantined: {records:?}"));
    assert_eq!(record.subject, subject);
    assert_eq!(record.event_ids, vec![event.id.clone()]);
    assert!(
        record.reason.contains(why),
        "the reason for {sequence} does not say `{why}`: {}",
        record.reason
    );
}

#[tokio::test]
async fn commits_that_fail_verification_are_quarantined_and_the_projection_goes_on() {
    let env = env().await;
    let _w = env.start(WorkspacesProjection);
    let _c = env.start(ComputationsProjection);

    // Rewritten after sealing: the name changed, the hash left as it was.
    let w1 = env.workspace().await;
    let s1 = env.subject::<Workspace>(&w1);
    let mut rewritten = renamed(&w1, 2, "Clinics", &env.tip(&s1).await.hash);
    rewritten.data["name"] = "Mallory".into();
    let at_rewritten = env.forge(&s1, std::slice::from_ref(&rewritten)).await;
    // Well formed itself, but chained onto the rewritten one.
    let onto_rewritten = renamed(&w1, 3, "Chained", &rewritten.hash);
    let at_onto_rewritten = env.forge(&s1, std::slice::from_ref(&onto_rewritten)).await;

    // An event of w2, chained onto w2, stored under w3's subject.
    let w2 = env.workspace().await;
    let w3 = env.workspace().await;
    let s3 = env.subject::<Workspace>(&w3);
    let misplaced = renamed(
        &w2,
        2,
        "Misplaced",
        &env.tip(&env.subject::<Workspace>(&w2)).await.hash,
    );
    let at_misplaced = env.forge(&s3, std::slice::from_ref(&misplaced)).await;

    // Not chained to the event before it: another previous hash, or a version skipped.
    let w4 = env.workspace().await;
    let s4 = env.subject::<Workspace>(&w4);
    let unchained = renamed(&w4, 2, "Unchained", &"1".repeat(64));
    let at_unchained = env.forge(&s4, std::slice::from_ref(&unchained)).await;
    let w5 = env.workspace().await;
    let s5 = env.subject::<Workspace>(&w5);
    let gap = renamed(&w5, 3, "Gap", &env.tip(&s5).await.hash);
    let at_gap = env.forge(&s5, std::slice::from_ref(&gap)).await;

    // Intact and chained, but of a payload version no upcaster knows.
    let w6 = env.workspace().await;
    let s6 = env.subject::<Workspace>(&w6);
    let mut future = renamed(&w6, 2, "Future", "");
    future.ty = "io.prism.workspace.updated.v9".into();
    let future = sealed(future, &env.tip(&s6).await.hash);
    let at_future = env.forge(&s6, std::slice::from_ref(&future)).await;

    // Valid commits after them, of an aggregate whose event was misplaced and of new ones.
    env.rename(w2, "Renamed").await;
    let w7 = env.workspace().await;
    let (computation, last) = env.computation(w7).await;
    env.read.wait_for(WORKSPACES, last, WAIT).await.unwrap();
    env.read.wait_for(COMPUTATIONS, last, WAIT).await.unwrap();

    for untouched in [w1, w3, w4, w5, w6] {
        assert_eq!(
            env.row(untouched).await,
            Some(("Hospitals".into(), 1)),
            "workspace {untouched} changed"
        );
    }
    assert_eq!(env.row(w2).await, Some(("Renamed".into(), 2)));
    assert_eq!(env.row(w7).await, Some(("Hospitals".into(), 1)));
    assert!(env.read.computation(w7, computation).await.unwrap().is_some());

    let records = env.quarantined(WORKSPACES).await;
    assert_eq!(
        records.keys().copied().collect::<Vec<_>>(),
        vec![
            at_rewritten,
            at_onto_rewritten,
            at_misplaced,
            at_unchained,
            at_gap,
            at_future
        ]
    );
    assert_quarantined(&records, at_rewritten, &s1, &rewritten, "does not match its hash");
    assert_quarantined(&records, at_onto_rewritten, &s1, &onto_rewritten, "tampering");
    assert_quarantined(&records, at_misplaced, &s3, &misplaced, "belongs to");
    assert_quarantined(&records, at_unchained, &s4, &unchained, "does not chain");
    assert_quarantined(&records, at_gap, &s5, &gap, "has version 3, expected 2");
    assert_quarantined(&records, at_future, &s6, &future, "version 9");
}

#[tokio::test]
async fn a_reader_starting_mid_history_checks_the_link_to_the_commit_before() {
    let env = env().await;
    let [w1, w2, w3, w4] = [
        env.workspace().await,
        env.workspace().await,
        env.workspace().await,
        env.workspace().await,
    ];
    let (s2, s3, s4) = (
        env.subject::<Workspace>(&w2),
        env.subject::<Workspace>(&w3),
        env.subject::<Workspace>(&w4),
    );
    let mut rewritten = renamed(&w4, 2, "Clinics", &env.tip(&s4).await.hash);
    rewritten.data["name"] = "Mallory".into();
    let at_rewritten = env.forge(&s4, std::slice::from_ref(&rewritten)).await;
    let started = env.projector(WorkspacesProjection).catch_up().await.unwrap();
    assert!(started > 0);

    // Each commit below is the first one of its aggregate that a restarted reader sees: the link to
    // the commit before comes from the log.
    let at_valid = env.rename(w1, "Renamed").await;
    let unchained = renamed(&w2, 2, "Unchained", &"1".repeat(64));
    let at_unchained = env.forge(&s2, std::slice::from_ref(&unchained)).await;
    let gap = renamed(&w3, 3, "Gap", &env.tip(&s3).await.hash);
    let at_gap = env.forge(&s3, std::slice::from_ref(&gap)).await;
    let onto_rewritten = renamed(&w4, 3, "Chained", &rewritten.hash);
    let at_onto_rewritten = env.forge(&s4, std::slice::from_ref(&onto_rewritten)).await;

    let last = env.projector(WorkspacesProjection).catch_up().await.unwrap();
    assert_eq!(env.read.checkpoint(WORKSPACES).await.unwrap(), last);
    assert!(last > at_valid);
    assert_eq!(env.row(w1).await, Some(("Renamed".into(), 2)));
    for untouched in [w2, w3, w4] {
        assert_eq!(env.row(untouched).await, Some(("Hospitals".into(), 1)));
    }
    let records = env.quarantined(WORKSPACES).await;
    assert_eq!(
        records.keys().copied().collect::<Vec<_>>(),
        vec![at_rewritten, at_unchained, at_gap, at_onto_rewritten]
    );
    assert_quarantined(&records, at_unchained, &s2, &unchained, "does not chain");
    assert_quarantined(&records, at_gap, &s3, &gap, "has version 3, expected 2");
    assert_quarantined(
        &records,
        at_onto_rewritten,
        &s4,
        &onto_rewritten,
        "does not match its hash",
    );
}

#[tokio::test]
async fn a_reader_starting_mid_history_refuses_a_second_first_commit() {
    let env = env().await;
    let w = env.workspace().await;
    let s = env.subject::<Workspace>(&w);
    env.projector(WorkspacesProjection).catch_up().await.unwrap();

    // Version 1 again, chained to the genesis hash, after the aggregate's real first commit.
    let again = renamed(&w, 1, "Replaced", GENESIS_HASH);
    let at_again = env.forge(&s, std::slice::from_ref(&again)).await;
    env.projector(WorkspacesProjection).catch_up().await.unwrap();

    assert_eq!(env.row(w).await, Some(("Hospitals".into(), 1)));
    let records = env.quarantined(WORKSPACES).await;
    assert_quarantined(&records, at_again, &s, &again, "tampering");
}

#[tokio::test]
async fn a_reader_starting_mid_history_refuses_a_commit_chained_onto_a_quarantined_one() {
    let env = env().await;
    let w = env.workspace().await;
    let s = env.subject::<Workspace>(&w);
    let unchained = renamed(&w, 2, "Unchained", &"1".repeat(64));
    let at_unchained = env.forge(&s, std::slice::from_ref(&unchained)).await;
    env.projector(WorkspacesProjection).catch_up().await.unwrap();
    assert!(env.quarantined(WORKSPACES).await.contains_key(&at_unchained));

    let onto_unchained = renamed(&w, 3, "Chained", &unchained.hash);
    let at_onto_unchained = env.forge(&s, std::slice::from_ref(&onto_unchained)).await;
    env.projector(WorkspacesProjection).catch_up().await.unwrap();

    assert_eq!(env.row(w).await, Some(("Hospitals".into(), 1)));
    let records = env.quarantined(WORKSPACES).await;
    assert_quarantined(&records, at_onto_unchained, &s, &onto_unchained, "tampering");
}

/// Stores a workspace whose name holds a NUL character, which PostgreSQL text cannot hold (the domain
/// would refuse it; the log does not), then valid commits, and runs the projection past them all.
/// Returns the bad commit's sequence, subject and event.
async fn project_an_unholdable_event(env: &Env) -> (u64, String, EventEnvelope) {
    let _w = env.start(WorkspacesProjection);
    let bad = uuid::Uuid::now_v7().to_string();
    let s = env.log.subjects().aggregate(Workspace::TYPE, &bad).unwrap();
    let nul = created(&bad, "Hospital\u{0}s");
    let at_nul = env.forge(&s, std::slice::from_ref(&nul)).await;
    let w = env.workspace().await;
    let last = env.rename(w, "Renamed").await;
    env.read.wait_for(WORKSPACES, last, WAIT).await.unwrap();

    assert_eq!(env.row(WorkspaceId(bad.parse().unwrap())).await, None);
    assert_eq!(env.row(w).await, Some(("Renamed".into(), 2)));
    (at_nul, s, nul)
}

#[tokio::test]
async fn an_event_the_read_model_cannot_hold_is_quarantined_not_retried() {
    let env = env().await;
    let (at_nul, s, nul) = project_an_unholdable_event(&env).await;
    let records = env.quarantined(WORKSPACES).await;
    assert_eq!(records.keys().copied().collect::<Vec<_>>(), vec![at_nul]);
    assert_quarantined(&records, at_nul, &s, &nul, &format!("stream sequence {at_nul}"));
}

#[tokio::test]
async fn the_quarantine_record_of_an_event_the_read_model_cannot_hold_says_why() {
    let env = env().await;
    let (at_nul, s, nul) = project_an_unholdable_event(&env).await;
    let records = env.quarantined(WORKSPACES).await;
    assert_quarantined(&records, at_nul, &s, &nul, "invalid byte sequence");
}

/// The workspaces projection applies a batch's aggregates side by side: a value refused in the
/// middle of the pipeline aborts the batch, which is then applied commit by commit, so that only the
/// refused commit is quarantined and every other aggregate's commits land, in order.
#[tokio::test]
async fn a_refused_value_among_aggregates_applied_side_by_side_is_quarantined_alone() {
    let env = env().await;
    let mut workspaces = Vec::new();
    for _ in 0..4 {
        workspaces.push(env.workspace().await);
    }
    let bad = uuid::Uuid::now_v7().to_string();
    let s = env.log.subjects().aggregate(Workspace::TYPE, &bad).unwrap();
    let nul = created(&bad, "Hospital\u{0}s");
    let at_nul = env.forge(&s, std::slice::from_ref(&nul)).await;
    for (i, w) in workspaces.iter().enumerate() {
        env.rename(*w, &format!("Renamed {i}")).await;
        env.rename(*w, &format!("Renamed again {i}")).await;
    }

    // One batch holds it all: the projector starts after the log was written.
    env.projector(WorkspacesProjection).catch_up().await.unwrap();
    for (i, w) in workspaces.iter().enumerate() {
        assert_eq!(env.row(*w).await, Some((format!("Renamed again {i}"), 3)));
    }
    let records = env.quarantined(WORKSPACES).await;
    assert_eq!(records.keys().copied().collect::<Vec<_>>(), vec![at_nul]);
    assert_quarantined(&records, at_nul, &s, &nul, "invalid byte sequence");
}

#[tokio::test]
async fn an_event_whose_aggregate_id_is_not_a_uuid_is_quarantined_not_retried() {
    let env = env().await;
    let s = env
        .log
        .subjects()
        .aggregate(Workspace::TYPE, "not-a-uuid")
        .unwrap();
    let odd = created("not-a-uuid", "Hospitals");
    let at_odd = env.forge(&s, std::slice::from_ref(&odd)).await;
    let w = env.workspace().await;
    let last = env.rename(w, "Renamed").await;

    let _w = env.start(WorkspacesProjection);
    env.read.wait_for(WORKSPACES, last, WAIT).await.unwrap();
    assert_eq!(env.row(w).await, Some(("Renamed".into(), 2)));
    let records = env.quarantined(WORKSPACES).await;
    assert_quarantined(&records, at_odd, &s, &odd, "not-a-uuid");
}

#[tokio::test]
async fn a_rebuild_forgets_what_the_projection_quarantined_and_replays_it() {
    let env = env().await;
    let w = env.workspace().await;
    let s = env.subject::<Workspace>(&w);
    let mut rewritten = renamed(&w, 2, "Clinics", &env.tip(&s).await.hash);
    rewritten.data["name"] = "Mallory".into();
    let at_rewritten = env.forge(&s, std::slice::from_ref(&rewritten)).await;
    let (c, _) = env.computation(w).await;
    let sc = env.subject::<Computation>(&c);
    let mut archived = envelope(
        Computation::TYPE,
        &c,
        2,
        &prism_domain::computation::ComputationEvent::Archived(
            prism_domain::computation::ComputationArchived {
                reason: None,
                archived_by: Actor("mallory".into()),
                archived_at: fixed_time(),
            },
        ),
    );
    archived = sealed(archived, &env.tip(&sc).await.hash);
    archived.data["reason"] = "rewritten".into();
    env.forge(&sc, std::slice::from_ref(&archived)).await;
    let last = env.rename(env.workspace().await, "Renamed").await;
    let workspaces = env.projector(WorkspacesProjection);
    workspaces.catch_up().await.unwrap();
    env.projector(ComputationsProjection).catch_up().await.unwrap();
    let before = env.quarantined(WORKSPACES).await;
    let others = env.quarantined(COMPUTATIONS).await;
    assert!(before.contains_key(&at_rewritten));
    assert!(!others.is_empty());
    let rows = env
        .read
        .workspaces(prism_projections::PageRequest {
            after: None,
            limit: 10,
        })
        .await
        .unwrap();

    reset(env.read.pool(), &WorkspacesProjection).await.unwrap();
    assert!(env.quarantined(WORKSPACES).await.is_empty());
    assert_eq!(
        env.quarantined(COMPUTATIONS).await,
        others,
        "another reader's records were touched"
    );
    assert_eq!(env.read.checkpoint(WORKSPACES).await.unwrap(), 0);

    assert_eq!(workspaces.catch_up().await.unwrap(), last);
    let after = env.quarantined(WORKSPACES).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (sequence, record) in &after {
        let earlier = &before[sequence];
        assert_eq!(
            (&record.reason, &record.event_ids),
            (&earlier.reason, &earlier.event_ids)
        );
        assert!(
            record.recorded_at > earlier.recorded_at,
            "not recorded again by the replay"
        );
    }
    assert_eq!(
        env.read
            .workspaces(prism_projections::PageRequest {
                after: None,
                limit: 10
            })
            .await
            .unwrap(),
        rows
    );
    assert_eq!(env.row(w).await, Some(("Hospitals".into(), 1)));
}
