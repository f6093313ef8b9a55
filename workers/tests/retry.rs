//! A reaction that failed for good is visible to operators and can be retried by them: against a real
//! nats-server and PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prism_app::{App, AppError, Caller, CommandOptions, ErrorKind, NewWorkspace, ReadOptions};
use prism_domain::reaction::{Reaction, ReactionStatus};
use prism_domain::workspace::{Workspace, WorkspaceEvent};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{Projector, ReactionsProjection, ReadModels, RunProjection as _};
use prism_store::{EventStore, Recorded, StoreConfig};
use prism_workers::{ReactionError, Reactor, Worker, WorkerConfig};
use tokio::sync::watch;

/// Fails on every workspace until it is healed.
#[derive(Debug, Clone)]
struct Flaky {
    healed: Arc<AtomicBool>,
    reacted: Arc<AtomicU64>,
}

impl Reactor for Flaky {
    type Aggregate = Workspace;
    const NAME: &'static str = "flaky";

    async fn react<'a>(&'a self, event: &'a Recorded<WorkspaceEvent>) -> Result<(), ReactionError> {
        if !matches!(event.event, WorkspaceEvent::Created(_)) {
            return Ok(());
        }
        if !self.healed.load(Ordering::SeqCst) {
            return Err(ReactionError::Fatal(AppError::new(
                ErrorKind::Internal,
                "not yet",
            )));
        }
        self.reacted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_operator_sees_a_failed_reaction_and_retries_it_to_resolution() {
    let nats = NatsServer::start_temp().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let store = EventStore::connect(&nats.url(), StoreConfig::default())
        .await
        .unwrap();
    let read = ReadModels::connect(&db.url).await.unwrap();
    read.migrate().await.unwrap();
    let app = App::builder(Arc::new(store.clone()))
        .read_models(read.clone())
        .build();
    let (_stop, stopped) = watch::channel(false);
    let projector = Projector::new(ReactionsProjection, read.pool().clone(), app.log().clone());
    tokio::spawn({
        let stopped = stopped.clone();
        async move { projector.run(stopped).await }
    });
    let reactor = Flaky {
        healed: Arc::default(),
        reacted: Arc::default(),
    };
    let config = WorkerConfig {
        max_attempts: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ack_wait: Duration::from_secs(2),
    };
    tokio::spawn(Worker::new(reactor.clone(), store, app.clone(), config).run(stopped));

    let created = app
        .workspaces()
        .create(
            &Caller::anonymous(),
            &CommandOptions::default(),
            NewWorkspace {
                name: "Hospitals".into(),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    let caller = Caller::service("operator");
    let failed = eventually("the failure to be listed", async || {
        let items = app
            .reactions()
            .list(&caller, Some("failed"), 10, ReadOptions::default())
            .await
            .unwrap();
        items.into_iter().next()
    })
    .await;
    assert_eq!(failed.worker, "flaky");
    assert_eq!(failed.event_type, "io.prism.workspace.created.v1");
    assert!(failed.error.contains("not yet"), "{}", failed.error);
    assert_eq!(failed.stream_sequence, created.outcome.sequence);

    reactor.healed.store(true, Ordering::SeqCst);
    let retry = app
        .reactions()
        .retry(&caller, &CommandOptions::default(), &failed.id)
        .await
        .unwrap();
    // A second retry while the first is pending is refused.
    let again = app
        .reactions()
        .retry(&caller, &CommandOptions::default(), &failed.id)
        .await;
    if let Err(e) = again {
        assert_eq!(e.kind, ErrorKind::StateConflict);
    }
    let resolved = eventually("the retry to resolve the failure", async || {
        let state = app.repository::<Reaction>().load(&failed.id).await.unwrap().state;
        (state.status == ReactionStatus::Resolved).then_some(state)
    })
    .await;
    assert_eq!(
        resolved.failure.unwrap().stream_sequence,
        created.outcome.sequence
    );
    assert_eq!(reactor.reacted.load(Ordering::SeqCst), 1);
    let listed = app
        .reactions()
        .list(
            &caller,
            Some("resolved"),
            10,
            ReadOptions::at_least(retry.outcome.sequence),
        )
        .await
        .unwrap();
    let listed = eventually("the resolution to be listed", async || {
        let items = app
            .reactions()
            .list(&caller, Some("resolved"), 10, ReadOptions::default())
            .await
            .unwrap();
        (!items.is_empty()).then_some(items)
    })
    .await
    .into_iter()
    .chain(listed)
    .next()
    .unwrap();
    assert_eq!(listed.id, failed.id);
}
