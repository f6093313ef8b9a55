//! The runtime every reactor shares: a durable subscription per worker, verification of every commit
//! before it is acted on, acknowledgement only after the reaction succeeded, retries with exponential
//! backoff, and a bounded number of real attempts that ends in a recorded `io.prism.reaction.failed.v1`
//! event rather than a silent drop.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use prism_app::{App, AppError, Caller, CommandOptions, ErrorKind};
use prism_domain::Aggregate;
use prism_domain::reaction::{Reaction, ReactionEvent, ReactionFailed};
use prism_store::{
    Checked, Delivery, Durable, DurableConfig, EventMeta, EventStore, Recorded, StoreError, StoredCommit,
    Verifier,
};
use tokio::sync::watch;
use tracing::{Instrument as _, error, info, info_span, warn};

/// What a reaction reports when it could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// Worth another attempt (the store or database was unavailable, a race was lost, …).
    #[error("{0}")]
    Retry(#[source] AppError),
    /// Will never succeed (a broken invariant, a command the domain refuses): record the failure now.
    #[error("{0}")]
    Fatal(#[source] AppError),
}

impl From<AppError> for ReactionError {
    fn from(e: AppError) -> Self {
        match e.kind {
            ErrorKind::Unavailable | ErrorKind::Lagging | ErrorKind::Contended => Self::Retry(e),
            _ => Self::Fatal(e),
        }
    }
}

/// A process that reacts to one aggregate type's events. Reactions must be idempotent: an event may be
/// delivered again after a crash, so every command sent must carry the causing event's id as its
/// idempotency key (see [`caused_by`]).
pub trait Reactor: Send + Sync + 'static {
    type Aggregate: Aggregate;
    /// Durable subscription name: letters, digits and `-`. Changing it starts over from the first event.
    const NAME: &'static str;
    fn react<'a>(
        &'a self,
        event: &'a Recorded<<Self::Aggregate as Aggregate>::Event>,
    ) -> impl Future<Output = Result<(), ReactionError>> + Send + 'a;
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Real attempts per event before the failure is recorded and the event is let go.
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
#[error("worker `{worker}` cannot subscribe: {source}")]
pub struct WorkerError {
    worker: String,
    #[source]
    source: StoreError,
}

/// How often a reactor looks again while a read model has not reached the event it reacts to.
const PROJECTION_POLL: Duration = Duration::from_millis(100);
/// A warning every 30 s of such waiting.
const WARN_EVERY_POLLS: u64 = 300;

/// The id of the aggregate `event` belongs to; one that does not parse is a broken invariant.
pub fn aggregate_id<T>(event: &EventMeta) -> Result<T, ReactionError>
where
    T: std::str::FromStr,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    event
        .aggregate_id
        .parse()
        .map_err(|e: T::Err| ReactionError::Fatal(AppError::internal(e)))
}

/// What `read` answers once its read model has reached `event` (`read` answers `None` until then). A
/// read model that lags, or is being rebuilt, is waited for, never given up on: the runtime keeps
/// telling the server the worker is alive.
pub async fn read_as_of<T, F, Fut>(event: &EventMeta, what: &str, mut read: F) -> Result<T, ReactionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, prism_projections::ProjectionError>>,
{
    let mut polls: u64 = 0;
    loop {
        match read().await {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(e) => return Err(AppError::from(e).into()),
        }
        polls += 1;
        if polls.is_multiple_of(WARN_EVERY_POLLS) {
            warn!(
                sequence = event.sequence,
                "still waiting for the {what} read model"
            );
        }
        tokio::time::sleep(PROJECTION_POLL).await;
    }
}

/// The caller of a command sent because of `event`: same correlation and trace, caused by it.
/// Runs `look` every `period` until `shutdown`, the first time at once: the loop of the workers that
/// time, not an event, makes due. A look that fails (the database is away) is logged as "could not
/// `what`" and tried again at the next tick; ticks missed meanwhile are not made up.
pub async fn every<T, E, F, Fut>(
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    what: &str,
    mut look: F,
) where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Err(e) = look().await {
            warn!(error = %e, "could not {what}");
        }
    }
}

pub fn caused_by(event: &prism_store::EventMeta, worker: &str) -> Caller {
    Caller::reacting_to(event, worker)
}

#[derive(Debug)]
pub struct Worker<R: Reactor> {
    reactor: R,
    store: EventStore,
    app: App,
    config: WorkerConfig,
}

/// How one delivery ended.
enum Settle {
    Ack,
    RetryAfter(Duration),
    GiveUp,
}

impl Settle {
    /// A retry request is done with once the failure is recorded again (the record is the outcome).
    fn acked(self) -> Self {
        match self {
            Self::GiveUp => Self::Ack,
            other => other,
        }
    }
}

impl<R: Reactor> Worker<R> {
    pub fn new(reactor: R, store: EventStore, app: App, config: WorkerConfig) -> Self {
        Self {
            reactor,
            store,
            app,
            config,
        }
    }

    /// Consumes until `shutdown` turns true: the events of the reactor's aggregate type, and the retries
    /// operators ask for of the events it gave up on. A reaction in progress is finished (and
    /// acknowledged) before returning, so a graceful stop never leaves work half done.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        tokio::try_join!(self.consume(shutdown.clone()), self.consume_retries(shutdown)).map(drop)
    }

    async fn subscribe(&self, name: String, aggregate_type: &str) -> Result<Durable, WorkerError> {
        self.store
            .durable(DurableConfig {
                name: name.clone(),
                aggregate_types: vec![aggregate_type.into()],
                ack_wait: self.config.ack_wait,
            })
            .await
            .map_err(|source| WorkerError { worker: name, source })
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let name = R::NAME;
        let mut durable = self.subscribe(name.into(), R::Aggregate::TYPE).await?;
        let mut verifier = Verifier::new(self.app.log().clone());
        info!(worker = name, "worker started");
        loop {
            let delivery = tokio::select! {
                d = durable.next() => d,
                _ = shutdown.wait_for(|stop| *stop) => {
                    info!(worker = name, "worker stopped");
                    return Ok(());
                }
            };
            let span = info_span!(
                "react",
                worker = name,
                sequence = delivery.sequence,
                delivered = delivery.delivered
            );
            let handling = self.handle(&delivery, &mut verifier).instrument(span);
            self.settle(&delivery, handling).await;
        }
    }

    /// Waits for `handling` while telling the server the worker is still on the delivery (so it is not
    /// delivered elsewhere meanwhile), then settles it.
    async fn settle(&self, delivery: &Delivery, handling: impl Future<Output = Settle>) {
        tokio::pin!(handling);
        let mut heartbeat = tokio::time::interval((self.config.ack_wait / 3).max(Duration::from_millis(100)));
        heartbeat.tick().await;
        let settle = loop {
            tokio::select! {
                settle = &mut handling => break settle,
                _ = heartbeat.tick() => delivery.still_working().await,
            }
        };
        match settle {
            Settle::Ack => delivery.ack().await,
            Settle::RetryAfter(delay) => delivery.retry_after(delay).await,
            Settle::GiveUp => delivery.give_up().await,
        }
    }

    /// Follows the reaction records: a retry asked of this worker fetches the event it gave up on,
    /// verifies it, and reacts again; success resolves the record, failure records it again.
    async fn consume_retries(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let name = format!("{}-retries", R::NAME);
        let mut durable = self.subscribe(name.clone(), Reaction::TYPE).await?;
        let mut verifier = Verifier::new(self.app.log().clone());
        loop {
            let delivery = tokio::select! {
                d = durable.next() => d,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            };
            let span = info_span!("retry", worker = %name, sequence = delivery.sequence);
            let handling = self.handle_retry(&delivery, &mut verifier).instrument(span);
            self.settle(&delivery, handling).await;
        }
    }

    async fn handle_retry(&self, delivery: &Delivery, verifier: &mut Verifier) -> Settle {
        let Ok(commit) = &delivery.commit else {
            return Settle::Ack;
        };
        let requests = match verifier.check(commit.clone()).await {
            Ok(Checked::Verified(verified)) => match verified.events::<Reaction>() {
                Some(Ok(events)) => events,
                _ => return Settle::Ack,
            },
            // A record that fails verification is another reader's quarantine to report; not ours.
            Ok(Checked::Quarantined { .. }) => return Settle::Ack,
            Err(e) => {
                warn!(error = %e, "cannot verify the retry request now; will retry");
                return Settle::RetryAfter(self.delay(delivery.delivered));
            }
        };
        for request in requests {
            let ReactionEvent::RetryRequested(retry) = &request.event else {
                continue;
            };
            if retry.worker != R::NAME {
                continue;
            }
            info!(
                sequence = retry.stream_sequence,
                "retrying an event an operator asked for"
            );
            let settle = self.retry(&request.meta, retry.stream_sequence, verifier).await;
            if !matches!(settle, Settle::Ack) {
                return settle;
            }
        }
        Settle::Ack
    }

    /// One retry of the event at `sequence`, asked for by the event `request`.
    async fn retry(&self, request: &EventMeta, sequence: u64, verifier: &mut Verifier) -> Settle {
        let commit = match self.app.log().commit_at(sequence).await {
            Ok(Some(commit)) => commit,
            Ok(None) => {
                return self
                    .give_up(None, sequence, 1, "the event to retry is not in the log")
                    .await
                    .acked();
            }
            Err(e) => {
                warn!(error = %e, "cannot read the event to retry now");
                return Settle::RetryAfter(self.config.backoff);
            }
        };
        let mut trusted = false;
        let outcome = match verifier.check(commit.clone()).await {
            Ok(Checked::Verified(verified)) => match verified.events::<R::Aggregate>() {
                Some(Ok(events)) => {
                    trusted = true;
                    let mut outcome = Ok(());
                    for event in &events {
                        outcome = self.reactor.react(event).await.map_err(|e| e.to_string());
                        if outcome.is_err() {
                            break;
                        }
                    }
                    outcome
                }
                Some(Err(reason)) => Err(format!("quarantined: {reason}")),
                None => Err("the event to retry is not one this worker reacts to".into()),
            },
            Ok(Checked::Quarantined { reason, .. }) => Err(format!("quarantined: {reason}")),
            Err(e) => {
                warn!(error = %e, "cannot verify the event to retry now");
                return Settle::RetryAfter(self.config.backoff);
            }
        };
        match outcome {
            Ok(()) => {
                let caller = Caller::reacting_to(request, R::NAME);
                let options = CommandOptions::keyed(request.id.clone());
                match self
                    .app
                    .reactions()
                    .resolve(&caller, &options, &request.aggregate_id)
                    .await
                {
                    Ok(()) => Settle::Ack,
                    Err(e) => {
                        warn!(error = %e, "could not record the resolved retry; will try again");
                        Settle::RetryAfter(self.config.backoff)
                    }
                }
            }
            Err(error) => {
                let commit = trusted.then_some(&commit);
                self.give_up(commit, sequence, 1, &error).await.acked()
            }
        }
    }

    async fn handle(&self, delivery: &Delivery, verifier: &mut Verifier) -> Settle {
        let attempt = delivery.delivered;
        let commit = match &delivery.commit {
            Ok(commit) => commit.clone(),
            Err(e) => {
                return self
                    .give_up(None, delivery.sequence, attempt, &format!("unreadable: {e}"))
                    .await;
            }
        };
        let checked = match verifier.check(commit).await {
            Ok(checked) => checked,
            // The log could not be asked about the commit before: try again later.
            Err(e) => {
                warn!(error = %e, "cannot verify the commit now; will retry");
                return Settle::RetryAfter(self.delay(attempt));
            }
        };
        let verified = match checked {
            Checked::Verified(verified) => verified,
            // Recorded under its stream sequence, not under ids the bad commit itself claims.
            Checked::Quarantined { reason, .. } => {
                error!(%reason, "quarantined a commit: it is not acted on");
                return self
                    .give_up(
                        None,
                        delivery.sequence,
                        attempt,
                        &format!("quarantined: {reason}"),
                    )
                    .await;
            }
        };
        let events = match verified.events::<R::Aggregate>() {
            None => return Settle::Ack,
            Some(Ok(events)) => events,
            Some(Err(reason)) => {
                error!(%reason, "quarantined a commit whose events do not decode");
                return self
                    .give_up(
                        None,
                        delivery.sequence,
                        attempt,
                        &format!("quarantined: {reason}"),
                    )
                    .await;
            }
        };
        let mut outcome = Ok(());
        for event in &events {
            outcome = self.reactor.react(event).await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => Settle::Ack,
            Err(ReactionError::Retry(e)) if attempt < self.config.max_attempts => {
                let delay = self.delay(attempt);
                warn!(error = %e, ?delay, "reaction failed; will retry");
                Settle::RetryAfter(delay)
            }
            Err(e) => {
                self.give_up(
                    Some(verified.commit()),
                    delivery.sequence,
                    attempt,
                    &e.to_string(),
                )
                .await
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

    /// Records the failure, then lets the event go; if it cannot be recorded, keeps the event.
    async fn give_up(
        &self,
        commit: Option<&StoredCommit>,
        sequence: u64,
        attempts: u64,
        error: &str,
    ) -> Settle {
        error!(error, "reaction failed for good; recording the failure");
        let worker = R::NAME;
        let first = commit.and_then(|c| c.events.first());
        let failure = ReactionFailed {
            worker: worker.into(),
            event_id: first.map_or_else(|| format!("seq-{sequence}"), |e| e.id.clone()),
            event_type: first.map_or_else(String::new, |e| e.ty.clone()),
            stream_sequence: sequence,
            attempts,
            error: error.to_owned(),
            failed_at: Utc::now(),
        };
        let caller = match first {
            Some(event) => Caller::reacting_to(&prism_store::EventMeta::of(sequence, event), worker),
            None => Caller::service(worker),
        };
        match self.app.reactions().record_failure(&caller, failure).await {
            Ok(()) => Settle::GiveUp,
            Err(e) => {
                error!(error = %e, "could not record the failure; will retry");
                Settle::RetryAfter(self.delay(attempts))
            }
        }
    }
}

/// `reason` cut to `max` characters (the last one an ellipsis), as events' reasons are bounded.
pub fn clip(reason: String, max: usize) -> String {
    if reason.chars().count() <= max {
        return reason;
    }
    let mut clipped: String = reason.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}
