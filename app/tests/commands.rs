//! The application layer on the memory log: preconditions, idempotency, authorisation, metadata and
//! time bounds, in milliseconds per test (no NATS, no PostgreSQL; the end-to-end tests keep those).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use prism_app::{Action, App, AppConfig, Authorizer, AuthzError, Caller, CommandOptions, Denial, ErrorKind};
use prism_domain::Aggregate as _;
use prism_domain::access::Permission;
use prism_domain::computation::{Computation, ComputationChanges, ComputationStatus};
use prism_domain::denial::DenialReason;
use prism_domain::testing::samples::{minimal_definition, sample_definition};
use prism_domain::workspace::Workspace;
use prism_domain::{Actor, ComputationId, WorkspaceId};
use prism_store::{EventLog, MemoryIdempotency, MemoryLog, Subjects};

mod common;

use common::{hospitals, rename, workspace_of};

fn app(log: &MemoryLog) -> App {
    App::builder(Arc::new(log.clone())).build()
}

fn alice() -> Caller {
    Caller {
        correlation_id: Some("request-1".into()),
        ..Caller::actor(Actor("alice".into()))
    }
}

async fn commits(log: &MemoryLog) -> u64 {
    log.last_sequence().await.unwrap()
}

#[tokio::test]
async fn a_retried_create_names_the_same_aggregate_and_stores_nothing_new() {
    let log = MemoryLog::default();
    let app = app(&log);
    let key = CommandOptions::keyed("create-1");
    let first = app
        .workspaces()
        .create(&alice(), &key, hospitals())
        .await
        .unwrap();
    let again = app
        .workspaces()
        .create(&alice(), &key, hospitals())
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert!(again.outcome.replayed);
    assert_eq!(again.outcome.sequence, first.outcome.sequence);
    assert_eq!(commits(&log).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused_and_stores_nothing() {
    let log = MemoryLog::default();
    let app = app(&log);
    let id = workspace_of(&app, &alice()).await;
    let key = CommandOptions::keyed("rename-1");
    app.workspaces()
        .update(&alice(), &key, id, rename("Clinics"))
        .await
        .unwrap();
    let before = commits(&log).await;
    let reused = app
        .workspaces()
        .update(&alice(), &key, id, rename("Labs"))
        .await
        .unwrap_err();
    assert_eq!(reused.kind, ErrorKind::IdempotencyKeyReused);
    assert_eq!(commits(&log).await, before);
}

/// The records that bind a key to its request may be gone (another process, a lost bucket, any age):
/// the commit itself carries the fingerprint, and still refuses the key with another request.
#[tokio::test]
async fn a_key_is_checked_against_its_commit_at_any_age() {
    let log = MemoryLog::new(Subjects::new("prism.ev"), Duration::from_millis(20));
    let first = app(&log);
    let id = workspace_of(&first, &alice()).await;
    let key = CommandOptions::keyed("rename-1");
    let renamed = first
        .workspaces()
        .update(&alice(), &key, id, rename("Clinics"))
        .await
        .unwrap();
    // Past the de-duplication window, with no idempotency record, in a process that never saw it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = App::builder(Arc::new(log.clone()))
        .idempotency(Arc::new(MemoryIdempotency::default()))
        .build();
    let reused = later
        .workspaces()
        .update(&alice(), &key, id, rename("Labs"))
        .await
        .unwrap_err();
    assert_eq!(reused.kind, ErrorKind::IdempotencyKeyReused);
    let retried = later
        .workspaces()
        .update(&alice(), &key, id, rename("Clinics"))
        .await
        .unwrap();
    assert!(retried.outcome.replayed);
    assert_eq!(retried.outcome.sequence, renamed.outcome.sequence);
    assert_eq!(commits(&log).await, 2);
}

#[tokio::test]
async fn a_key_whose_first_use_changed_nothing_answers_the_same_and_stores_nothing() {
    let log = MemoryLog::default();
    let app = app(&log);
    let id = workspace_of(&app, &alice()).await;
    let key = CommandOptions::keyed("same-name");
    let unchanged = app
        .workspaces()
        .update(&alice(), &key, id, rename("Hospitals"))
        .await
        .unwrap();
    assert!(unchanged.outcome.events.is_empty());
    // Someone renames it: deciding the retry again would now be a change. It must not be.
    app.workspaces()
        .update(&alice(), &CommandOptions::default(), id, rename("Clinics"))
        .await
        .unwrap();
    let before = commits(&log).await;
    let retried = app
        .workspaces()
        .update(&alice(), &key, id, rename("Hospitals"))
        .await
        .unwrap();
    assert!(retried.outcome.replayed);
    assert_eq!(retried.outcome.version, unchanged.outcome.version);
    assert_eq!(retried.outcome.sequence, unchanged.outcome.sequence);
    assert_eq!(commits(&log).await, before);
    let other = app
        .workspaces()
        .update(&alice(), &key, id, rename("Labs"))
        .await
        .unwrap_err();
    assert_eq!(other.kind, ErrorKind::IdempotencyKeyReused);
}

/// Two processes share the log and the idempotency records. The first use of a key is still in flight
/// when a retry of it is rejected: the retry must not free the key, or a third request with another
/// body could take it.
#[tokio::test]
async fn a_rejected_retry_never_frees_a_key_whose_first_attempt_is_in_flight() {
    let log = MemoryLog::default();
    let records = Arc::new(MemoryIdempotency::default());
    let id = workspace_of(&app(&log), &alice()).await;
    let slow = App::builder(Arc::new(log.clone()))
        .idempotency(records.clone())
        .build();
    let other = App::builder(Arc::new(log.clone())).idempotency(records).build();
    log.hold_appends();

    let key = CommandOptions::keyed("rename-1");
    let first = tokio::spawn({
        let (slow, key) = (slow.clone(), key.clone());
        async move {
            slow.workspaces()
                .update(&alice(), &key, id, rename("Clinics"))
                .await
        }
    });
    // The first attempt has claimed the key and waits in its append.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stale = CommandOptions {
        expected_version: Some(7),
        ..key.clone()
    };
    let rejected = other
        .workspaces()
        .update(&alice(), &stale, id, rename("Clinics"))
        .await
        .unwrap_err();
    assert_eq!(rejected.kind, ErrorKind::PreconditionFailed);
    let hijack = other
        .workspaces()
        .update(&alice(), &key, id, rename("Labs"))
        .await
        .unwrap_err();
    assert_eq!(hijack.kind, ErrorKind::IdempotencyKeyReused);

    log.release_appends();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.outcome.state.name, "Clinics");
}

#[tokio::test]
async fn a_rejected_first_use_frees_its_key_for_a_corrected_request() {
    let log = MemoryLog::default();
    let app = app(&log);
    let id = workspace_of(&app, &alice()).await;
    let key = CommandOptions::keyed("rename-1");
    let invalid = app
        .workspaces()
        .update(&alice(), &key, id, rename("  "))
        .await
        .unwrap_err();
    assert_eq!(invalid.kind, ErrorKind::Invalid);
    app.workspaces()
        .update(&alice(), &key, id, rename("Clinics"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_computation_is_created_only_in_an_active_workspace() {
    let log = MemoryLog::default();
    let app = app(&log);
    let none = CommandOptions::default();
    let missing = app
        .computations()
        .create(
            &alice(),
            &none,
            WorkspaceId(uuid::Uuid::now_v7()),
            minimal_definition(),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    let id = workspace_of(&app, &alice()).await;
    app.computations()
        .create(&alice(), &none, id, sample_definition())
        .await
        .unwrap();
    app.workspaces().archive(&alice(), &none, id).await.unwrap();
    let archived = app
        .computations()
        .create(&alice(), &none, id, minimal_definition())
        .await
        .unwrap_err();
    assert_eq!(archived.kind, ErrorKind::StateConflict);
}

#[tokio::test]
async fn a_computation_is_changed_only_through_its_own_workspace() {
    let log = MemoryLog::default();
    let app = app(&log);
    let none = CommandOptions::default();
    let (mine, theirs) = (
        workspace_of(&app, &alice()).await,
        workspace_of(&app, &alice()).await,
    );
    let created = app
        .computations()
        .create(&alice(), &none, mine, minimal_definition())
        .await
        .unwrap();
    let id = ComputationId(created.id.parse().unwrap());
    let changes = ComputationChanges {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    let elsewhere = app
        .computations()
        .update(&alice(), &none, theirs, id, changes.clone())
        .await
        .unwrap_err();
    assert_eq!(elsewhere.kind, ErrorKind::NotFound);
    let archived = app
        .computations()
        .archive(&alice(), &none, theirs, id, None)
        .await
        .unwrap_err();
    assert_eq!(archived.kind, ErrorKind::NotFound);
    let before = commits(&log).await;
    app.computations()
        .update(&alice(), &none, mine, id, changes)
        .await
        .unwrap();
    assert_eq!(commits(&log).await, before + 1);
    let state = app.repository::<Computation>().load(&id).await.unwrap().state;
    assert_eq!(state.definition.name, "Renamed");
    assert_eq!(state.status, ComputationStatus::Active);
}

/// Records every action asked for, and refuses archiving.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<Action>>);

#[async_trait]
impl Authorizer for Recording {
    async fn authorize(&self, _: &App, _: &Caller, action: &Action) -> Result<(), AuthzError> {
        self.0.lock().unwrap().push(action.clone());
        if action.permission == Permission::WorkspaceArchive {
            let mut denial = Denial::new(
                DenialReason::MissingPermission,
                action.resource(),
                "archiving is not allowed",
            );
            denial.permission = Some(action.permission);
            return Err(AuthzError::Denied(denial));
        }
        Ok(())
    }
}

#[tokio::test]
async fn every_command_asks_the_authorizer_first_and_a_denial_stores_only_its_record() {
    let log = MemoryLog::default();
    let authorizer = Arc::new(Recording::default());
    let app = App::builder(Arc::new(log.clone()))
        .authorizer(authorizer.clone())
        .build();
    let none = CommandOptions::default();
    let id = workspace_of(&app, &alice()).await;
    app.computations()
        .create(&alice(), &none, id, minimal_definition())
        .await
        .unwrap();
    let before = commits(&log).await;
    let denied = app.workspaces().archive(&alice(), &none, id).await.unwrap_err();
    assert_eq!(denied.kind, ErrorKind::Forbidden);
    // Only the record of the denial: the workspace is untouched.
    assert_eq!(commits(&log).await, before + 1);
    assert_eq!(app.repository::<Workspace>().load(&id).await.unwrap().version, 1);
    let record = log.commit_at(before + 1).await.unwrap().unwrap();
    assert!(record.subject.contains(".access."), "{}", record.subject);
    let actions = authorizer.0.lock().unwrap().clone();
    let asked: Vec<_> = actions.iter().map(|a| (a.permission, a.workspace)).collect();
    assert_eq!(
        asked,
        [
            (Permission::WorkspaceCreate, None),
            (Permission::ComputationCreate, Some(id)),
            (Permission::WorkspaceArchive, Some(id)),
        ]
    );
}

#[tokio::test]
async fn events_carry_the_actor_the_correlation_and_the_workspace() {
    let log = MemoryLog::default();
    let app = app(&log);
    let id = workspace_of(&app, &alice()).await;
    let caused = Caller {
        causation_id: Some("event-9".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        ..alice()
    };
    app.workspaces()
        .update(&caused, &CommandOptions::default(), id, rename("Clinics"))
        .await
        .unwrap();
    let subject = log.subjects().aggregate("workspace", &id.to_string()).unwrap();
    let events: Vec<_> = log
        .load(&subject)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.events)
        .collect();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.actor, "alice");
        assert_eq!(e.correlationid, "request-1");
        assert_eq!(e.workspace.as_deref(), Some(id.to_string().as_str()));
    }
    assert_eq!(events[1].causationid.as_deref(), Some("event-9"));
    assert_eq!(
        events[1].traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
}

#[tokio::test]
async fn a_command_that_cannot_finish_in_time_is_unavailable_not_a_hang() {
    let log = MemoryLog::default();
    let id = workspace_of(&app(&log), &alice()).await;
    log.hold_appends();
    let stuck = App::builder(Arc::new(log.clone()))
        .config(AppConfig {
            command_timeout: Duration::from_millis(50),
            ..AppConfig::default()
        })
        .build();
    let error = stuck
        .workspaces()
        .update(&alice(), &CommandOptions::default(), id, rename("Clinics"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unavailable);
}

#[tokio::test]
async fn a_command_on_a_computation_never_replays_its_workspaces_whole_history() {
    let log = MemoryLog::default();
    let app = App::builder(Arc::new(log.clone())).build();
    let none = CommandOptions::default();
    let id = workspace_of(&app, &alice()).await;
    for i in 0..20 {
        app.workspaces()
            .update(&alice(), &none, id, rename(&format!("name {i}")))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        app.computations()
            .create(&alice(), &none, id, minimal_definition())
            .await
            .unwrap();
    }
    let subject = log
        .subjects()
        .aggregate(Workspace::TYPE, &id.to_string())
        .unwrap();
    let from_the_start = log
        .take_history_reads()
        .iter()
        .filter(|(s, after)| *s == subject && *after == 0)
        .count();
    // The workspace was read from its first commit once, when it was created; every later check of
    // its standing only caught up with what was new.
    assert!(from_the_start <= 1, "read from the start {from_the_start} times");
}

#[tokio::test]
async fn two_callers_choosing_the_same_idempotency_key_never_see_each_others_outcome() {
    let log = MemoryLog::default();
    let app = app(&log);
    let key = CommandOptions::keyed("same-key");
    let mine = app
        .workspaces()
        .create(&alice(), &key, hospitals())
        .await
        .unwrap();
    let theirs = app
        .workspaces()
        .create(&Caller::actor(Actor("bob".into())), &key, hospitals())
        .await
        .unwrap();
    assert_ne!(mine.id, theirs.id);
    assert!(!theirs.outcome.replayed);
}
