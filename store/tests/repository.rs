//! The repository's rules, on the memory log: one test per rule, milliseconds each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand, WorkspaceStatus};
use prism_store::{
    CommandError, CommandOutcome, CommandRequest, EventLog, MemoryLog, MemorySnapshots, Metadata, Repository,
    RepositoryConfig, SignedSnapshots, Snapshot, SnapshotKey, SnapshotStore, StoreError, Subjects,
};

/// How long a test waits for a snapshot written in the background.
const PATIENCE: Duration = Duration::from_secs(5);

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

fn describe(text: &str) -> WorkspaceCommand {
    WorkspaceCommand::Update {
        name: None,
        description: Some(text.into()),
    }
}

fn subject(id: WorkspaceId) -> String {
    Subjects::new("prism.ev")
        .aggregate("workspace", &id.to_string())
        .unwrap()
}

/// A log whose de-duplication window has passed by the time a test sleeps [`PAST_WINDOW`].
fn short_window_log() -> MemoryLog {
    MemoryLog::new(Subjects::new("prism.ev"), Duration::from_millis(50))
}

const PAST_WINDOW: Duration = Duration::from_millis(80);

fn repository(
    log: &MemoryLog,
    snapshots: Option<&MemorySnapshots>,
    config: RepositoryConfig,
) -> Repository<Workspace> {
    Repository::with(Arc::new(log.clone()), snapshots.map(signed), config)
}

/// Snapshots in `snapshots`, signed with the test key.
fn signed(snapshots: &MemorySnapshots) -> SignedSnapshots {
    let key = SnapshotKey::new(vec![42u8; 32]).expect("a long enough key");
    SignedSnapshots::new(Arc::new(snapshots.clone()), key)
}

fn snapshotting(every: u64) -> RepositoryConfig {
    RepositoryConfig {
        snapshot_every: every,
        ..Default::default()
    }
}

/// A new workspace, created through `repo`.
async fn created(repo: &Repository<Workspace>) -> WorkspaceId {
    let id = WorkspaceId(uuid::Uuid::now_v7());
    repo.execute(CommandRequest::new(&id, create(id), meta()))
        .await
        .expect("created");
    id
}

async fn update(repo: &Repository<Workspace>, id: WorkspaceId, text: &str) -> CommandOutcome<Workspace> {
    repo.execute(CommandRequest::new(&id, describe(text), meta()))
        .await
        .expect("updated")
}

/// The snapshot of `subject` once the background write of the one at `version` has landed.
async fn snapshot_at(snapshots: &MemorySnapshots, subject: &str, version: u64) -> Snapshot {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(snapshot) = snapshots.get(subject).await.unwrap()
            && snapshot.version == version
        {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "no snapshot at version {version}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_retried_keyed_command_answers_its_first_outcome_and_appends_nothing() {
    let log = MemoryLog::default();
    let repo = Repository::<Workspace>::new(log.clone());
    let id = created(&repo).await;
    let stale = Repository::<Workspace>::new(log.clone());
    stale.load(&id).await.unwrap(); // caches version 1
    let keyed = || CommandRequest::new(&id, describe("EU only"), meta()).idempotent("key-1", "fingerprint-1");
    let first = repo.execute(keyed()).await.unwrap();
    assert!(!first.replayed);
    // The aggregate moves on: retried now, the command would change the description again.
    update(&repo, id, "moved on").await;
    let last = log.last_sequence().await.unwrap();

    let fresh = Repository::<Workspace>::new(log.clone());
    for (who, repository) in [("the same", &repo), ("a fresh", &fresh), ("a stale", &stale)] {
        let again = repository.execute(keyed()).await.unwrap();
        assert!(again.replayed && again.events.is_empty(), "{who} repository");
        assert_eq!(
            (again.version, again.sequence),
            (first.version, first.sequence),
            "{who} repository"
        );
        assert_eq!(again.state.description, "moved on", "{who} repository");
    }
    assert_eq!(log.last_sequence().await.unwrap(), last, "nothing appended");
}

#[tokio::test]
async fn a_retried_keyed_command_is_answered_after_the_deduplication_window() {
    let log = short_window_log();
    let repo = Repository::<Workspace>::new(log.clone());
    let id = created(&repo).await;
    let stale = Repository::<Workspace>::new(log.clone());
    stale.load(&id).await.unwrap();
    let keyed = || CommandRequest::new(&id, describe("EU only"), meta()).idempotent("key-1", "fingerprint-1");
    let first = repo.execute(keyed()).await.unwrap();
    update(&repo, id, "moved on").await;
    let last = log.last_sequence().await.unwrap();
    tokio::time::sleep(PAST_WINDOW).await;

    let fresh = Repository::<Workspace>::new(log.clone());
    for (who, repository) in [("the same", &repo), ("a fresh", &fresh), ("a stale", &stale)] {
        let again = repository.execute(keyed()).await.unwrap();
        assert!(again.replayed, "{who} repository");
        assert_eq!(
            (again.version, again.sequence),
            (first.version, first.sequence),
            "{who} repository"
        );
    }
    assert_eq!(log.last_sequence().await.unwrap(), last, "nothing appended");
}

#[tokio::test]
async fn a_keyed_command_is_answered_from_a_snapshot() {
    let log = short_window_log();
    let snapshots = MemorySnapshots::default();
    let repo = repository(&log, Some(&snapshots), snapshotting(10));
    let id = created(&repo).await;
    let keyed = || CommandRequest::new(&id, describe("EU only"), meta()).idempotent("key-1", "fingerprint-1");
    let first = repo.execute(keyed()).await.unwrap();
    for i in 0..10 {
        update(&repo, id, &format!("v{i}")).await;
    }
    let snapshot = snapshot_at(&snapshots, &subject(id), 10).await;
    assert!(snapshot.sequence > first.sequence);
    tokio::time::sleep(PAST_WINDOW).await;

    let again = repository(&log, Some(&snapshots), snapshotting(10))
        .execute(keyed())
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.version, again.sequence), (first.version, first.sequence));
    assert_eq!(again.state.description, "v9");
}

#[tokio::test]
async fn the_same_key_with_another_fingerprint_is_refused() {
    let log = short_window_log();
    let repo = Repository::<Workspace>::new(log.clone());
    let id = created(&repo).await;
    let stale = Repository::<Workspace>::new(log.clone());
    stale.load(&id).await.unwrap();
    repo.execute(CommandRequest::new(&id, describe("EU only"), meta()).idempotent("key-1", "fingerprint-1"))
        .await
        .unwrap();
    let last = log.last_sequence().await.unwrap();
    let reused =
        || CommandRequest::new(&id, describe("US only"), meta()).idempotent("key-1", "fingerprint-2");

    let refused = |result: Result<CommandOutcome<Workspace>, _>, when: &str| {
        assert!(
            matches!(result, Err(CommandError::IdempotencyKeyReused)),
            "{when}: {result:?}"
        );
    };
    refused(repo.execute(reused()).await, "within the window");
    refused(
        stale.execute(reused()).await,
        "from a stale cache, within the window",
    );
    tokio::time::sleep(PAST_WINDOW).await;
    refused(repo.execute(reused()).await, "after the window");
    refused(
        Repository::<Workspace>::new(log.clone()).execute(reused()).await,
        "from a fresh repository, after the window",
    );
    assert_eq!(log.last_sequence().await.unwrap(), last, "nothing appended");
    assert_eq!(
        Repository::<Workspace>::new(log.clone())
            .load(&id)
            .await
            .unwrap()
            .state
            .description,
        "EU only"
    );
}

#[tokio::test]
async fn a_command_without_a_key_leaves_no_idempotency_record() {
    let log = MemoryLog::default();
    let snapshots = MemorySnapshots::default();
    let repo = repository(&log, Some(&snapshots), snapshotting(1));
    let id = created(&repo).await;
    update(&repo, id, "keyless").await;
    assert!(snapshot_at(&snapshots, &subject(id), 2).await.keyed.is_empty());

    let keyed = repo
        .execute(CommandRequest::new(&id, describe("keyed"), meta()).idempotent("key-1", "fingerprint-1"))
        .await
        .unwrap();
    update(&repo, id, "keyless again").await;
    let records: Vec<_> = snapshot_at(&snapshots, &subject(id), 4)
        .await
        .keyed
        .into_values()
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (
            records[0].sequence,
            records[0].version,
            records[0].fingerprint.as_str()
        ),
        (keyed.sequence, 3, "fingerprint-1")
    );

    // Folding the history from the log records the same.
    let folded = MemorySnapshots::default();
    repository(&log, Some(&folded), snapshotting(1))
        .load(&id)
        .await
        .unwrap();
    let records: Vec<_> = snapshot_at(&folded, &subject(id), 4)
        .await
        .keyed
        .into_values()
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].fingerprint, "fingerprint-1");
}

#[tokio::test]
async fn the_cache_is_bounded_by_size() {
    let log = MemoryLog::default();
    let budget = 4 * 1024;
    let repo = repository(
        &log,
        None,
        RepositoryConfig {
            cache_bytes: budget,
            ..Default::default()
        },
    );
    let mut ids = Vec::new();
    for _ in 0..50 {
        let id = created(&repo).await;
        let newest = log.load(&subject(id)).await.unwrap()[0].bytes;
        let (bytes, _) = repo.cache_usage();
        assert!(
            bytes <= budget + newest,
            "{bytes} bytes cached for a budget of {budget}"
        );
        ids.push(id);
    }
    for id in ids.iter().step_by(3) {
        repo.load(id).await.unwrap();
        let newest = log.load(&subject(*id)).await.unwrap()[0].bytes;
        assert!(repo.cache_usage().0 <= budget + newest);
    }
    let (bytes, entries) = repo.cache_usage();
    assert!(entries < 50, "{entries} aggregates cached, {bytes} bytes");
    assert!(entries >= 1);
}

#[tokio::test]
async fn replayed_commands_count_towards_the_cache_budget() {
    let log = MemoryLog::default();
    let writer = Repository::<Workspace>::new(log.clone());
    let keyed =
        |id: WorkspaceId| CommandRequest::new(&id, create(id), meta()).idempotent("create", "fingerprint");
    let mut ids = Vec::new();
    for _ in 0..50 {
        let id = WorkspaceId(uuid::Uuid::now_v7());
        writer.execute(keyed(id)).await.unwrap();
        ids.push(id);
    }
    let budget = 4 * 1024;
    let repo = repository(
        &log,
        None,
        RepositoryConfig {
            cache_bytes: budget,
            ..Default::default()
        },
    );
    for id in ids {
        assert!(repo.execute(keyed(id)).await.unwrap().replayed);
    }
    let (bytes, entries) = repo.cache_usage();
    assert!(
        entries < 50,
        "{entries} aggregates cached, counted as {bytes} bytes, for a budget of {budget} bytes"
    );
}

#[tokio::test]
async fn commands_on_missing_aggregates_do_not_grow_the_cache_without_bound() {
    let log = MemoryLog::default();
    let budget = 4 * 1024;
    let repo = repository(
        &log,
        None,
        RepositoryConfig {
            cache_bytes: budget,
            ..Default::default()
        },
    );
    for _ in 0..1000 {
        let id = WorkspaceId(uuid::Uuid::now_v7());
        let refused = repo
            .execute(CommandRequest::new(&id, describe("x"), meta()))
            .await;
        assert!(matches!(refused, Err(CommandError::Rejected(_))), "{refused:?}");
    }
    let (bytes, entries) = repo.cache_usage();
    assert!(
        entries <= 100,
        "{entries} aggregates cached, counted as {bytes} bytes, for a budget of {budget} bytes"
    );
}

#[tokio::test]
async fn a_large_cache_keeps_every_aggregate() {
    let log = MemoryLog::default();
    let repo = Repository::<Workspace>::new(log.clone());
    let mut total = 0;
    for _ in 0..50 {
        let id = created(&repo).await;
        total += log.load(&subject(id)).await.unwrap()[0].bytes;
    }
    let (bytes, count) = repo.cache_usage();
    assert_eq!(count, 50);
    // Each entry costs its commits plus a fixed overhead for its subject and slot.
    assert!(
        bytes >= total && bytes <= total + 50 * 1024,
        "{bytes} bytes for {total} of commits"
    );
}

#[tokio::test]
async fn a_load_after_another_writer_reads_only_the_new_commits() {
    let observed = MemoryLog::default();
    let repo = Repository::<Workspace>::with(Arc::new(observed.clone()), None, RepositoryConfig::default());
    let other = Repository::<Workspace>::new(observed.clone());
    let id = created(&repo).await;
    let seen = update(&repo, id, "mine").await;
    update(&other, id, "theirs").await;
    let newest = update(&other, id, "theirs again").await;
    observed.take_history_reads();

    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (
            loaded.version,
            loaded.last_sequence,
            loaded.state.description.as_str()
        ),
        (4, newest.sequence, "theirs again")
    );
    assert_eq!(observed.take_history_reads(), [(subject(id), seen.sequence)]);

    // Nothing new: one question, no commit.
    assert_eq!(repo.load(&id).await.unwrap().version, 4);
    assert_eq!(observed.take_history_reads(), [(subject(id), newest.sequence)]);
}

/// A workspace with 1 + `updates` events (the last description `v{updates - 1}`), another one
/// interleaved, and snapshots every 10 events; returns the workspace, the other one, and the
/// snapshot at the last multiple of 10.
async fn snapshotted(
    log: &MemoryLog,
    snapshots: &MemorySnapshots,
    updates: u64,
) -> (WorkspaceId, WorkspaceId, Snapshot) {
    let repo = repository(log, Some(snapshots), snapshotting(10));
    let (id, other) = (created(&repo).await, created(&repo).await);
    for i in 0..updates {
        update(&repo, id, &format!("v{i}")).await;
        update(&repo, other, &format!("v{i}")).await;
    }
    let version = (updates + 1) / 10 * 10;
    let snapshot = snapshot_at(snapshots, &subject(id), version).await;
    snapshot_at(snapshots, &subject(other), version).await;
    (id, other, snapshot)
}

#[tokio::test]
async fn a_load_from_a_snapshot_gives_the_state_of_the_whole_history() {
    let observed = MemoryLog::default();
    let snapshots = MemorySnapshots::default();
    let (id, _, snapshot) = snapshotted(&observed, &snapshots, 35).await;
    assert_eq!(snapshot.version, 30);
    observed.take_history_reads();

    let fresh = Repository::<Workspace>::with(
        Arc::new(observed.clone()),
        Some(signed(&snapshots)),
        snapshotting(10),
    );
    let loaded = fresh.load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.state.description.as_str()), (36, "v34"));
    assert_eq!(loaded.state.status, WorkspaceStatus::Active);
    assert_eq!(
        observed.take_history_reads(),
        [(subject(id), snapshot.sequence)],
        "only the commits after the snapshot are read"
    );
    let full = Repository::<Workspace>::new(observed.clone())
        .load(&id)
        .await
        .unwrap();
    assert_eq!(loaded.state, full.state);
    assert_eq!(
        (loaded.last_sequence, loaded.last_hash),
        (full.last_sequence, full.last_hash)
    );
}

/// Loads `id` through a fresh repository whose snapshot store holds `snapshot` changed by `forge`,
/// and checks that the true state came from folding the whole history.
async fn assert_not_trusted(
    log: &MemoryLog,
    id: WorkspaceId,
    snapshot: &Snapshot,
    forge: impl FnOnce(&mut Snapshot),
) {
    let forged = MemorySnapshots::default();
    forged.put(&subject(id), snapshot).await.unwrap();
    forged.tamper(&subject(id), |s| {
        s.state["description"] = "forged".into();
        s.state["status"] = "archived".into();
        forge(s);
    });
    log.take_history_reads();
    let fresh = Repository::<Workspace>::with(Arc::new(log.clone()), Some(signed(&forged)), snapshotting(10));
    let loaded = fresh.load(&id).await.unwrap();
    assert_eq!(
        (
            loaded.version,
            loaded.state.description.as_str(),
            loaded.state.status
        ),
        (13, "v11", WorkspaceStatus::Active)
    );
    assert_eq!(
        log.take_history_reads(),
        [(subject(id), 0)],
        "the whole history is folded"
    );
}

#[tokio::test]
async fn a_snapshot_whose_hash_does_not_match_its_commit_is_not_used() {
    let (log, snapshots) = (MemoryLog::default(), MemorySnapshots::default());
    let (id, _, snapshot) = snapshotted(&log, &snapshots, 12).await;
    assert_not_trusted(&log, id, &snapshot, |s| s.hash = "e".repeat(64)).await;
}

#[tokio::test]
async fn a_snapshot_whose_version_does_not_match_its_commit_is_not_used() {
    let (log, snapshots) = (MemoryLog::default(), MemorySnapshots::default());
    let (id, _, snapshot) = snapshotted(&log, &snapshots, 12).await;
    assert_not_trusted(&log, id, &snapshot, |s| s.version -= 1).await;
}

#[tokio::test]
async fn a_snapshot_naming_another_aggregates_commit_is_not_used() {
    let (log, snapshots) = (MemoryLog::default(), MemorySnapshots::default());
    let (id, other, snapshot) = snapshotted(&log, &snapshots, 12).await;
    // The other workspace's commit at the same version, with its hash: only its subject differs.
    let theirs = snapshots.get(&subject(other)).await.unwrap().unwrap();
    assert_eq!(theirs.version, snapshot.version);
    assert_not_trusted(&log, id, &snapshot, |s| {
        s.sequence = theirs.sequence;
        s.hash = theirs.hash.clone();
    })
    .await;
}

#[tokio::test]
async fn a_snapshot_naming_a_commit_past_the_log_is_not_used() {
    let (log, snapshots) = (MemoryLog::default(), MemorySnapshots::default());
    let (id, _, snapshot) = snapshotted(&log, &snapshots, 12).await;
    assert_not_trusted(&log, id, &snapshot, |s| s.sequence = 10_000).await;
}

#[tokio::test]
async fn a_snapshot_of_another_state_version_is_ignored() {
    let (log, snapshots) = (MemoryLog::default(), MemorySnapshots::default());
    let (id, _, snapshot) = snapshotted(&log, &snapshots, 12).await;
    assert_not_trusted(&log, id, &snapshot, |s| s.state_version += 1).await;
}

#[tokio::test]
async fn a_snapshot_with_a_forged_state_is_not_trusted() {
    let (log, snapshots) = (MemoryLog::default(), MemorySnapshots::default());
    let (id, _, snapshot) = snapshotted(&log, &snapshots, 12).await;
    assert_not_trusted(&log, id, &snapshot, |_| {}).await;
}

#[tokio::test]
async fn a_snapshot_with_forged_idempotency_records_is_not_trusted() {
    let log = short_window_log();
    let snapshots = MemorySnapshots::default();
    let repo = repository(&log, Some(&snapshots), snapshotting(10));
    let id = created(&repo).await;
    let keyed = || CommandRequest::new(&id, describe("EU only"), meta()).idempotent("key-1", "fingerprint-1");
    let first = repo.execute(keyed()).await.unwrap();
    for i in 0..9 {
        update(&repo, id, &format!("v{i}")).await;
    }
    assert_eq!(snapshot_at(&snapshots, &subject(id), 10).await.keyed.len(), 1);
    snapshots.tamper(&subject(id), |s| s.keyed.clear());
    tokio::time::sleep(PAST_WINDOW).await;
    let last = log.last_sequence().await.unwrap();

    let again = repository(&log, Some(&snapshots), snapshotting(10))
        .execute(keyed())
        .await
        .unwrap();
    assert!(again.replayed, "the retry was applied a second time: {again:?}");
    assert_eq!(again.sequence, first.sequence);
    assert_eq!(log.last_sequence().await.unwrap(), last, "nothing appended");
}

#[tokio::test]
async fn a_rewritten_event_in_the_log_is_detected_on_load() {
    let log = MemoryLog::default();
    let repo = Repository::<Workspace>::new(log.clone());
    let id = created(&repo).await;
    let rewritten = update(&repo, id, "EU only").await.sequence;
    update(&repo, id, "later").await;
    log.tamper(rewritten, |commit| {
        commit.events[0].data["description"] = "US only".into();
    });

    match Repository::<Workspace>::new(log.clone()).load(&id).await {
        Err(StoreError::Tampered { sequence, reason, .. }) => {
            assert_eq!(sequence, rewritten, "{reason}");
            assert!(reason.contains("hash"), "{reason}");
        }
        other => panic!("tampering went unnoticed: {other:?}"),
    }
    assert!(matches!(
        log.load(&subject(id)).await,
        Err(StoreError::Tampered { sequence, .. }) if sequence == rewritten
    ));
    let err = Repository::<Workspace>::new(log.clone())
        .execute(CommandRequest::new(&id, describe("anything"), meta()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Store(StoreError::Tampered { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_one_aggregate_lose_no_update() {
    let log = MemoryLog::default();
    let repos = [
        Arc::new(Repository::<Workspace>::new(log.clone())),
        Arc::new(Repository::<Workspace>::new(log.clone())),
    ];
    let id = created(&repos[0]).await;
    let writers = 20;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let repo = repos[writer % 2].clone();
            tokio::spawn(async move {
                repo.execute(CommandRequest::new(
                    &id,
                    describe(&format!("writer {writer}")),
                    meta(),
                ))
                .await
                .map(|o| o.version)
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().expect("every writer commits"));
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=writers as u64 + 1).collect::<Vec<_>>());

    let commits = log.load(&subject(id)).await.unwrap();
    assert_eq!(commits.len(), writers + 1);
    let mut descriptions: Vec<String> = commits[1..]
        .iter()
        .map(|c| c.events[0].data["description"].as_str().unwrap().to_owned())
        .collect();
    descriptions.sort();
    let mut expected: Vec<String> = (0..writers).map(|w| format!("writer {w}")).collect();
    expected.sort();
    assert_eq!(descriptions, expected);
    for repo in &repos {
        assert_eq!(repo.load(&id).await.unwrap().version, writers as u64 + 1);
    }
}

#[tokio::test]
async fn a_stale_expected_version_is_refused_and_stores_nothing() {
    let log = MemoryLog::default();
    let repo = Repository::<Workspace>::new(log.clone());
    let id = created(&repo).await;
    update(&repo, id, "v2").await;
    let last = log.last_sequence().await.unwrap();
    for stale in [0, 1, 3] {
        let err = repo
            .execute(CommandRequest::new(&id, describe("x"), meta()).expecting_version(Some(stale)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CommandError::VersionMismatch { expected, actual: 2 } if expected == stale),
            "{err:?}"
        );
    }
    assert_eq!(log.last_sequence().await.unwrap(), last);
}

#[tokio::test]
async fn the_current_expected_version_is_accepted() {
    let log = MemoryLog::default();
    let repo = Repository::<Workspace>::new(log.clone());
    let id = created(&repo).await;
    let stale = Repository::<Workspace>::new(log.clone());
    stale.load(&id).await.unwrap(); // caches version 1
    update(&repo, id, "v2").await;

    let outcome = repo
        .execute(CommandRequest::new(&id, describe("v3"), meta()).expecting_version(Some(2)))
        .await
        .unwrap();
    assert_eq!((outcome.version, outcome.events.len()), (3, 1));
    // A repository whose cache is behind checks the log before refusing.
    let outcome = stale
        .execute(CommandRequest::new(&id, describe("v4"), meta()).expecting_version(Some(3)))
        .await
        .unwrap();
    assert_eq!(outcome.version, 4);
}

/// Views of `id` until one costs no round trip to the log (the follower is live and vouches for it).
async fn view_from_memory(repo: &Arc<Repository<Workspace>>, log: &MemoryLog, id: WorkspaceId) -> Workspace {
    let deadline = Instant::now() + PATIENCE;
    loop {
        log.take_history_reads();
        let state = repo.view(&id).await.unwrap();
        if log.take_history_reads().is_empty() {
            return state;
        }
        assert!(Instant::now() < deadline, "every view took a round trip");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_view_answers_from_memory_and_follows_other_writers() {
    let observed = MemoryLog::default();
    let repo = Arc::new(Repository::<Workspace>::with(
        Arc::new(observed.clone()),
        None,
        RepositoryConfig::default(),
    ));
    let other = Repository::<Workspace>::new(observed.clone());
    let id = created(&repo).await;
    assert_eq!(view_from_memory(&repo, &observed, id).await.description, "");

    // This process's own command: seen at once, still from memory.
    update(&repo, id, "mine").await;
    observed.take_history_reads();
    assert_eq!(repo.view(&id).await.unwrap().description, "mine");
    assert_eq!(observed.take_history_reads(), []);

    // Another process's command: seen once the follower has delivered it, then from memory again.
    update(&other, id, "theirs").await;
    let deadline = Instant::now() + PATIENCE;
    while repo.view(&id).await.unwrap().description != "theirs" {
        assert!(
            Instant::now() < deadline,
            "the other writer's change never reached the view"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(view_from_memory(&repo, &observed, id).await.description, "theirs");
}

#[tokio::test]
async fn a_view_of_an_aggregate_the_follower_has_not_vouched_for_asks_the_log() {
    let observed = MemoryLog::default();
    let repo = Arc::new(Repository::<Workspace>::with(
        Arc::new(observed.clone()),
        None,
        RepositoryConfig::default(),
    ));
    let id = created(&repo).await;
    observed.take_history_reads();
    // Created by a command before any follower ran: the first view checks with the log.
    assert_eq!(repo.view(&id).await.unwrap().status, WorkspaceStatus::Active);
    assert_eq!(observed.take_history_reads().len(), 1);
}

#[tokio::test]
async fn a_long_history_with_a_bounded_state_is_not_counted_as_memory_held() {
    use prism_domain::cvm::{
        AgentMessage, AgentStream, ConfidentialPlatform, Cvm, CvmCommand, CvmSpec, RECENT_MESSAGES,
        ReceivedMessage,
    };
    let log = MemoryLog::default();
    let repo = Repository::<Cvm>::with(Arc::new(log.clone()), None, RepositoryConfig::default());
    let id = prism_domain::CvmId(uuid::Uuid::now_v7());
    let run = |command| repo.execute(CommandRequest::new(&id, command, meta()));
    run(CvmCommand::Request {
        id,
        workspace: WorkspaceId(uuid::Uuid::now_v7()),
        spec: CvmSpec {
            provider: "byo".into(),
            vcpus: 1,
            memory_mib: 512,
            platform: ConfidentialPlatform::None,
            ttl_seconds: 3600,
            labels: Default::default(),
        },
        run: None,
    })
    .await
    .unwrap();
    run(CvmCommand::AssignBackend {
        backend: prism_domain::BackendId(uuid::Uuid::now_v7()),
        reason: "test".into(),
        hourly_cost_micros: None,
    })
    .await
    .unwrap();
    run(CvmCommand::MarkStarted {
        backend_ref: "vm".into(),
        agent_address: None,
        test_attestation_root: None,
    })
    .await
    .unwrap();
    // 4,000 messages of 1 KiB: about 5 MB of history, a state of 1,024 digests.
    for batch in 0..100 {
        let messages = (0..40)
            .map(|n| ReceivedMessage {
                digest: format!("{:064x}", batch * 40 + n),
                message: AgentMessage::Log {
                    level: "INFO".into(),
                    message: "x".repeat(1024),
                    computation_id: String::new(),
                    timestamp: None,
                },
            })
            .collect();
        run(CvmCommand::RecordAgentMessages {
            stream: AgentStream::LogForwarder,
            messages,
        })
        .await
        .unwrap();
    }
    let (bytes, entries) = repo.cache_usage();
    assert_eq!(entries, 1);
    assert_eq!(
        repo.load(&id).await.unwrap().state.recent_messages.len(),
        RECENT_MESSAGES
    );
    assert!(
        bytes < 512 * 1024,
        "a CVM whose state keeps {RECENT_MESSAGES} digests is counted as {bytes} bytes"
    );
}
