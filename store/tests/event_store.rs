//! The event store against a real nats-server (one per test, random port, own store directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::Config};
use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand, WorkspaceError};
use prism_embedded::NatsServer;
use prism_store::{
    Append, AppendError, CommandError, CommandRequest, EventLog as _, EventStore, Metadata, Repository,
    StoreConfig, StoreError,
};

async fn store(server: &NatsServer) -> EventStore {
    let client = async_nats::connect(server.url()).await.expect("connect");
    EventStore::open(client, StoreConfig::default())
        .await
        .expect("open store")
}

fn meta() -> Metadata {
    Metadata {
        actor: "alice".into(),
        ..Default::default()
    }
}

fn create(id: WorkspaceId) -> WorkspaceCommand {
    WorkspaceCommand::Create {
        id,
        name: "Hospitals".into(),
        description: String::new(),
        admin: None,
    }
}

fn describe(text: String) -> WorkspaceCommand {
    WorkspaceCommand::Update {
        name: None,
        description: Some(text),
    }
}

fn new_id() -> WorkspaceId {
    WorkspaceId(uuid::Uuid::now_v7())
}

#[tokio::test]
async fn commits_are_loaded_back_in_order_with_their_envelopes() {
    let server = NatsServer::start_temp().await.unwrap();
    let repo = Repository::<Workspace>::new(store(&server).await);
    let id = new_id();
    let created = repo
        .execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    assert_eq!((created.version, created.events.len()), (1, 1));
    let updated = repo
        .execute(CommandRequest::new(&id, describe("EU only".into()), meta()))
        .await
        .unwrap();
    assert!(updated.sequence > created.sequence);

    let fresh = Repository::<Workspace>::new(store(&server).await);
    let loaded = fresh.load(&id).await.unwrap();
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.last_sequence, updated.sequence);
    assert_eq!(loaded.state.description, "EU only");

    let subject = fresh
        .log()
        .subjects()
        .aggregate("workspace", &id.to_string())
        .unwrap();
    let commits = fresh.log().load(&subject).await.unwrap();
    let first = &commits[0].events[0];
    assert_eq!(first.ty, "io.prism.workspace.created.v1");
    assert_eq!(first.specversion, "1.0");
    assert_eq!(first.aggregateversion, 1);
    assert_eq!(commits[1].events[0].prevhash, first.hash);
    assert_eq!(uuid::Uuid::parse_str(&first.id).unwrap().get_version_num(), 7);
}

#[tokio::test]
async fn fifty_concurrent_writers_lose_no_update() {
    let server = NatsServer::start_temp().await.unwrap();
    let id = new_id();
    Repository::<Workspace>::new(store(&server).await)
        .execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for writer in 0..50 {
        // A repository per writer, like separate gateway processes: no shared cache to hide a race.
        let repo = Repository::<Workspace>::new(store(&server).await);
        tasks.push(tokio::spawn(async move {
            repo.execute(CommandRequest::new(
                &id,
                describe(format!("writer {writer}")),
                meta(),
            ))
            .await
            .map(|o| o.version)
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().expect("every writer eventually commits"));
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=51).collect::<Vec<u64>>(),
        "each writer got its own version"
    );

    let repo = Repository::<Workspace>::new(store(&server).await);
    let subject = repo
        .log()
        .subjects()
        .aggregate("workspace", &id.to_string())
        .unwrap();
    let commits = repo.log().load(&subject).await.unwrap();
    let mut descriptions: Vec<String> = commits[1..]
        .iter()
        .map(|c| c.events[0].data["description"].as_str().unwrap().to_owned())
        .collect();
    descriptions.sort();
    let mut expected: Vec<String> = (0..50).map(|w| format!("writer {w}")).collect();
    expected.sort();
    assert_eq!(descriptions, expected);
}

/// nats-server 2.9.15–2.9.20 accepted two concurrent publishes with the same expected sequence
/// (nats-server #4320): exactly one of these must win.
#[tokio::test]
async fn only_one_of_many_racing_appends_with_the_same_expectation_wins() {
    let server = NatsServer::start_temp().await.unwrap();
    let store = Arc::new(store(&server).await);
    let repo = Repository::<Workspace>::new((*store).clone());
    let id = new_id();
    let created = repo
        .execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    let subject = store.subject("workspace", &id.to_string()).unwrap();
    let template = store.load(&subject).await.unwrap().remove(0).events;

    let mut tasks = Vec::new();
    for i in 0..50 {
        let (store, subject, events) = (store.clone(), subject.clone(), template.clone());
        tasks.push(tokio::spawn(async move {
            store
                .append(Append::envelopes(&subject, created.sequence, format!("racer-{i}"), &events).unwrap())
                .await
        }));
    }
    let (mut won, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(AppendError::Conflict) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((won, conflicts), (1, 49));
}

#[tokio::test]
async fn a_retried_command_appends_nothing_and_returns_the_first_result() {
    let server = NatsServer::start_temp().await.unwrap();
    let repo = Repository::<Workspace>::new(store(&server).await);
    let id = new_id();
    let first = repo
        .execute(CommandRequest::new(&id, create(id), meta()).idempotent("key-1", "fingerprint"))
        .await
        .unwrap();
    let again = repo
        .execute(CommandRequest::new(&id, create(id), meta()).idempotent("key-1", "fingerprint"))
        .await
        .unwrap();
    assert!(again.replayed && again.events.is_empty());
    assert_eq!((again.sequence, again.version), (first.sequence, first.version));

    // Another process, with nothing cached, answers the same.
    let other = Repository::<Workspace>::new(store(&server).await);
    let replay = other
        .execute(CommandRequest::new(&id, create(id), meta()).idempotent("key-1", "fingerprint"))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.sequence, first.sequence);

    // A different key is a different command, judged on its merits.
    let err = other
        .execute(CommandRequest::new(&id, create(id), meta()).idempotent("key-2", "fingerprint"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Rejected(WorkspaceError::AlreadyExists)
    ));

    // The same key after other writes still replays, even though its expected sequence is now stale.
    let update = other
        .execute(CommandRequest::new(&id, describe("x".into()), meta()).idempotent("key-3", "fingerprint"))
        .await
        .unwrap();
    let stale = repo
        .execute(CommandRequest::new(&id, describe("x".into()), meta()).idempotent("key-3", "fingerprint"))
        .await
        .unwrap();
    assert!(stale.replayed);
    assert_eq!(stale.sequence, update.sequence);
    assert_eq!(other.log().last_sequence().await.unwrap(), update.sequence);
}

#[tokio::test]
async fn a_stale_expected_version_is_refused() {
    let server = NatsServer::start_temp().await.unwrap();
    let repo = Repository::<Workspace>::new(store(&server).await);
    let id = new_id();
    repo.execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    let err = repo
        .execute(CommandRequest::new(&id, describe("x".into()), meta()).expecting_version(Some(7)))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::VersionMismatch {
            expected: 7,
            actual: 1
        }
    ));
    repo.execute(CommandRequest::new(&id, describe("x".into()), meta()).expecting_version(Some(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn tampered_events_are_detected_on_load() {
    let server = NatsServer::start_temp().await.unwrap();
    let store = store(&server).await;
    let repo = Repository::<Workspace>::new(store.clone());
    let id = new_id();
    let created = repo
        .execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    let subject = store.subject("workspace", &id.to_string()).unwrap();
    let mut events = store.load(&subject).await.unwrap().remove(0).events;

    // Someone with write access to the stream appends a forged event that claims to follow the first
    // one but edits history: its content no longer matches its hash.
    events[0].aggregateversion = 2;
    events[0].prevhash = events[0].hash.clone();
    events[0].data["archived_by"] = "mallory".into();
    events[0].ty = "io.prism.workspace.archived.v1".into();
    store
        .append(Append::envelopes(&subject, created.sequence, "forged", &events).unwrap())
        .await
        .unwrap();

    match Repository::<Workspace>::new(store.clone()).load(&id).await {
        Err(StoreError::Tampered { reason, .. }) => assert!(reason.contains("hash"), "{reason}"),
        other => panic!("tampering went unnoticed: {other:?}"),
    }
}

#[tokio::test]
async fn a_forged_event_with_a_valid_hash_but_a_broken_chain_is_detected() {
    let server = NatsServer::start_temp().await.unwrap();
    let store = store(&server).await;
    let id = new_id();
    let created = Repository::<Workspace>::new(store.clone())
        .execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    let subject = store.subject("workspace", &id.to_string()).unwrap();
    let mut events = store.load(&subject).await.unwrap().remove(0).events;
    events[0].aggregateversion = 2;
    events[0].prevhash = "f".repeat(64);
    events[0].hash = events[0].compute_hash();
    store
        .append(Append::envelopes(&subject, created.sequence, "forged", &events).unwrap())
        .await
        .unwrap();
    match store.load(&subject).await {
        Err(StoreError::Tampered { reason, .. }) => assert!(reason.contains("chain"), "{reason}"),
        other => panic!("broken chain went unnoticed: {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_with_weaker_settings_is_refused() {
    let server = NatsServer::start_temp().await.unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    jetstream::new(client.clone())
        .create_stream(Config {
            name: "PRISM_EVENTS".into(),
            subjects: vec!["prism.ev.>".into()],
            max_age: Duration::from_secs(3600),
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    match EventStore::open(client, StoreConfig::default()).await {
        Err(StoreError::WeakStream { problems, .. }) => {
            assert!(
                problems.contains("max_age") && problems.contains("deny_delete"),
                "{problems}"
            )
        }
        other => panic!("weak stream accepted: {other:?}"),
    }
}

#[tokio::test]
async fn long_aggregates_load_completely() {
    let server = NatsServer::start_temp().await.unwrap();
    let repo = Repository::<Workspace>::new(store(&server).await);
    let id = new_id();
    repo.execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    // Interleave another aggregate so the subject's sequences are not contiguous.
    let other = new_id();
    repo.execute(CommandRequest::new(&other, create(other), meta()))
        .await
        .unwrap();
    for i in 0..40 {
        repo.execute(CommandRequest::new(&id, describe(format!("v{i}")), meta()))
            .await
            .unwrap();
        repo.execute(CommandRequest::new(&other, describe(format!("v{i}")), meta()))
            .await
            .unwrap();
    }
    let loaded = Repository::<Workspace>::new(store(&server).await)
        .load(&id)
        .await
        .unwrap();
    assert_eq!(loaded.version, 41);
    assert_eq!(loaded.state.description, "v39");
}

#[tokio::test]
async fn acknowledged_commits_survive_a_server_crash() {
    let mut server = NatsServer::start_temp().await.unwrap();
    let ids: Vec<WorkspaceId> = (0..25).map(|_| new_id()).collect();
    {
        let repo = Repository::<Workspace>::new(store(&server).await);
        for id in &ids {
            repo.execute(CommandRequest::new(id, create(*id), meta()))
                .await
                .unwrap();
        }
    }
    server.kill().await.unwrap(); // SIGKILL right after the last acknowledgement
    server.restart().await.unwrap();
    let repo = Repository::<Workspace>::new(store(&server).await);
    for id in &ids {
        assert_eq!(
            repo.load(id).await.unwrap().version,
            1,
            "acknowledged commit of {id} was lost"
        );
    }
}

#[tokio::test]
async fn commands_fail_fast_while_nats_is_down() {
    let mut server = NatsServer::start_temp().await.unwrap();
    let repo = Repository::<Workspace>::new(store(&server).await);
    let id = new_id();
    repo.execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap();
    server.stop().await.unwrap();
    let started = Instant::now();
    let err = repo
        .execute(CommandRequest::new(&id, describe("x".into()), meta()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a command hung while NATS was down"
    );

    server.restart().await.unwrap();
    // The client reconnects by itself; the same command then goes through.
    let mut outcome = None;
    for _ in 0..100 {
        match repo
            .execute(CommandRequest::new(&id, describe("x".into()), meta()))
            .await
        {
            Ok(o) => {
                outcome = Some(o);
                break;
            }
            Err(CommandError::Store(StoreError::Unavailable(_))) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(outcome.expect("reconnected").version, 2);
}

/// Another process moved the aggregate on: answers that store nothing must not come from a stale view.
#[tokio::test]
async fn a_stale_cache_never_answers_without_checking() {
    let server = NatsServer::start_temp().await.unwrap();
    let a = Repository::<Workspace>::new(store(&server).await);
    let b = Repository::<Workspace>::new(store(&server).await);
    let id = new_id();
    a.execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .unwrap(); // A caches version 1 (name "Hospitals")
    let rename = |name: &str| WorkspaceCommand::Update {
        name: Some(name.into()),
        description: None,
    };
    b.execute(CommandRequest::new(&id, rename("Clinics"), meta()))
        .await
        .unwrap(); // version 2 elsewhere

    // On A's stale view this rename would change nothing; on the real state it is a change.
    let back = a
        .execute(CommandRequest::new(&id, rename("Hospitals"), meta()))
        .await
        .unwrap();
    assert_eq!((back.version, back.events.len()), (3, 1));
    assert_eq!(b.load(&id).await.unwrap().state.name, "Hospitals");

    // If-Match with the real version is honoured at once, not refused from a stale view.
    b.execute(CommandRequest::new(&id, describe("moved on".into()), meta()))
        .await
        .unwrap(); // version 4
    let checked = a
        .execute(CommandRequest::new(&id, describe("again".into()), meta()).expecting_version(Some(4)))
        .await
        .unwrap();
    assert_eq!(checked.version, 5);
}

/// A URL may carry the user and password a server demands (async-nats parses but does not send them).
#[tokio::test]
async fn connect_takes_the_credentials_in_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = prism_embedded::NatsServer::start_authenticated(prism_embedded::NatsOptions {
        store_dir: dir.path().join("nats"),
        port: None,
        sync_always: true,
    })
    .await
    .unwrap();
    EventStore::connect(&server.url(), StoreConfig::default())
        .await
        .expect("the URL's user and password are used");
    let anonymous = format!("nats://127.0.0.1:{}", server.port());
    assert!(
        EventStore::connect(&anonymous, StoreConfig::default())
            .await
            .is_err()
    );
}
