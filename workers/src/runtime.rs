use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use chrono::Utc;
use futures::StreamExt as _;
use prism_domain::reaction::{Reaction, ReactionCommand, ReactionError as RecordError, ReactionFailed};
use prism_store::{CommandError, EventEnvelope, EventStore, Metadata, Repository, StoreError, StoredCommit};
use tokio::sync::watch;
use tracing::{Instrument as _, error, info, info_span, warn};

/// What a reaction reports when it could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// Worth another attempt (the store or database was unavailable, a race was lost...).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (an undecodable event, a broken invariant): record the failure now.
    #[error("{0}")]
    Fatal(String),
}

impl From<StoreError> for ReactionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { .. } | StoreError::Tampered { .. } | StoreError::InvalidId(_) => {
                Self::Fatal(e.to_string())
            }
            _ => Self::Retry(e.to_string()),
        }
    }
}

impl From<prism_projections::ProjectionError> for ReactionError {
    fn from(e: prism_projections::ProjectionError) -> Self {
        Self::Retry(e.to_string())
    }
}

impl<E: std::error::Error> From<CommandError<E>> for ReactionError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Store(e) => e.into(),
            CommandError::Conflict => Self::Retry(e.to_string()),
            CommandError::Rejected(_) | CommandError::VersionMismatch { .. } => Self::Fatal(e.to_string()),
        }
    }
}

/// A process that reacts to events. Reactions must be idempotent: an event may be delivered again after
/// a crash, so every command sent must carry the causing event's id as its idempotency key.
pub trait Reactor: Send + Sync + 'static {
    /// Durable consumer name: letters, digits and `-`. Changing it starts over from the first event.
    fn name(&self) -> &'static str;
    /// Aggregate types whose events this reactor receives.
    fn aggregate_types(&self) -> &'static [&'static str];
    fn react<'a>(
        &'a self,
        commit: &'a StoredCommit,
    ) -> impl Future<Output = Result<(), ReactionError>> + Send + 'a;
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Attempts per event before the failure is recorded and the event is let go.
    pub max_attempts: u64,
    /// Delay before the second attempt; doubled for each further one up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long an unacknowledged delivery (a crashed worker) waits before redelivery.
    pub ack_wait: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            // With this backoff the last attempt comes ~4 minutes after the first: enough to ride out a
            // restart of NATS or PostgreSQL before the failure is recorded and the event let go.
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ack_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker `{worker}` cannot consume: {reason}")]
    Consumer { worker: String, reason: String },
}

/// Metadata for a command sent because of `event`: same workspace and correlation, caused by it.
pub fn caused_by(event: &EventEnvelope, worker: &str) -> Metadata {
    Metadata {
        workspace: event.workspace.clone(),
        actor: format!("service:{worker}"),
        correlation_id: Some(event.correlationid.clone()),
        causation_id: Some(event.id.clone()),
        traceparent: event.traceparent.clone(),
    }
}

/// What woke the consume loop.
enum Wake<M> {
    Message(Option<M>),
    Reconnected,
}

#[derive(Debug)]
pub struct Worker<R: Reactor> {
    reactor: R,
    store: EventStore,
    failures: Repository<Reaction>,
    config: WorkerConfig,
}

impl<R: Reactor> Worker<R> {
    pub fn new(reactor: R, store: EventStore, config: WorkerConfig) -> Self {
        Self {
            reactor,
            failures: Repository::new(store.clone()),
            store,
            config,
        }
    }

    /// Consumes until `shutdown` turns true. A reaction in progress is finished (and acknowledged)
    /// before returning, so a graceful stop never leaves work half done.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let name = self.reactor.name();
        let consumer_error = |e: &dyn std::fmt::Display| WorkerError::Consumer {
            worker: name.into(),
            reason: e.to_string(),
        };
        let prefix = &self.store.config().subject_prefix;
        let config = pull::Config {
            durable_name: Some(name.into()),
            filter_subjects: self
                .reactor
                .aggregate_types()
                .iter()
                .map(|t| format!("{prefix}.{t}.>"))
                .collect(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            // Unlimited on the server: the bound is enforced here, where it ends in a recorded failure
            // instead of the server quietly giving up on the message.
            max_deliver: -1,
            ..Default::default()
        };
        let stream = self
            .store
            .jetstream()
            .get_stream(&self.store.config().stream)
            .await
            .map_err(|e| consumer_error(&e))?;
        let consumer = stream
            .get_or_create_consumer(name, config)
            .await
            .map_err(|e| consumer_error(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| consumer_error(&e))?;
        info!(worker = name, "worker started");
        let mut reconnected = self.store.reconnections();
        reconnected.borrow_and_update();
        loop {
            let next = tokio::select! {
                m = messages.next() => Wake::Message(m),
                _ = reconnected.changed() => Wake::Reconnected,
                _ = shutdown.wait_for(|stop| *stop) => Wake::Message(None),
            };
            let next = match next {
                Wake::Message(next) => next,
                // The durable consumer survives a server restart, but our outstanding pulls do not:
                // renew them now rather than after the missed heartbeats that would reveal it.
                Wake::Reconnected => {
                    info!(worker = name, "reconnected to NATS; renewing the pull");
                    match consumer.messages().await {
                        Ok(renewed) => messages = renewed,
                        Err(e) => {
                            warn!(worker = name, error = %e, "could not renew the pull; keeping the old one")
                        }
                    }
                    continue;
                }
            };
            let Some(message) = next else {
                info!(worker = name, "worker stopped");
                return Ok(());
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    warn!(worker = name, error = %e, "pull failed; continuing");
                    continue;
                }
            };
            let (sequence, attempt) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered.max(1) as u64),
                Err(e) => {
                    warn!(worker = name, error = %e, "message without JetStream metadata");
                    continue;
                }
            };
            let span = info_span!("react", worker = name, sequence, attempt);
            let handling = self.handle(&message, sequence, attempt).instrument(span);
            tokio::pin!(handling);
            // A long reaction tells the server it is alive, so the event is not redelivered to
            // another worker while this one is still on it.
            let mut heartbeat =
                tokio::time::interval((self.config.ack_wait / 3).max(Duration::from_millis(100)));
            heartbeat.tick().await;
            let ack = loop {
                tokio::select! {
                    ack = &mut handling => break ack,
                    _ = heartbeat.tick() => {
                        if let Err(e) = message.ack_with(AckKind::Progress).await {
                            warn!(worker = name, sequence, error = %e, "progress signal failed");
                        }
                    }
                }
            };
            if let Err(e) = message.ack_with(ack).await {
                // Without the ack the event is simply redelivered; the reaction is idempotent.
                warn!(worker = name, sequence, error = %e, "acknowledgement failed");
            }
        }
    }

    async fn handle(&self, message: &async_nats::jetstream::Message, sequence: u64, attempt: u64) -> AckKind {
        let headers = message.headers.clone().unwrap_or_default();
        let outcome =
            match StoredCommit::decode(sequence, message.subject.to_string(), &headers, &message.payload) {
                Ok(commit) => self.reactor.react(&commit).await.map_err(|e| (e, Some(commit))),
                Err(e) => Err((ReactionError::Fatal(e.to_string()), None)),
            };
        let (error, commit) = match outcome {
            Ok(()) => return AckKind::Ack,
            Err(failure) => failure,
        };
        let fatal = matches!(error, ReactionError::Fatal(_));
        if !fatal && attempt < self.config.max_attempts {
            let delay = self.delay(attempt);
            warn!(error = %error, ?delay, "reaction failed; will retry");
            return AckKind::Nak(Some(delay));
        }
        error!(error = %error, "reaction failed for good; recording the failure");
        match self
            .record_failure(commit.as_ref(), sequence, attempt, &error)
            .await
        {
            Ok(()) => AckKind::Term,
            // Not recorded yet: keep the event and try again later rather than drop it silently.
            Err(e) => {
                error!(error = %e, "could not record the failure; will retry");
                AckKind::Nak(Some(self.delay(attempt)))
            }
        }
    }

    fn delay(&self, attempt: u64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16) as u32);
        self.config
            .backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff)
    }

    async fn record_failure(
        &self,
        commit: Option<&StoredCommit>,
        sequence: u64,
        attempts: u64,
        error: &ReactionError,
    ) -> Result<(), CommandError<RecordError>> {
        let worker = self.reactor.name();
        let first = commit.and_then(|c| c.events.first());
        let event_id = first.map_or_else(|| format!("seq-{sequence}"), |e| e.id.clone());
        let failure = ReactionFailed {
            worker: worker.into(),
            event_id: event_id.clone(),
            event_type: first.map_or_else(String::new, |e| e.ty.clone()),
            stream_sequence: sequence,
            attempts,
            error: error.to_string(),
            failed_at: Utc::now(),
        };
        let meta = match first {
            Some(event) => caused_by(event, worker),
            None => Metadata {
                actor: format!("service:{worker}"),
                ..Default::default()
            },
        };
        let id = format!("{worker}-{event_id}");
        match self
            .failures
            .execute(
                &id,
                ReactionCommand::RecordFailure(failure),
                &meta,
                Some(&event_id),
                None,
            )
            .await
        {
            Ok(_) | Err(CommandError::Rejected(RecordError::AlreadyRecorded)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
