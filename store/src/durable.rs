//! Durable subscriptions for workers: a JetStream pull consumer per worker that survives restarts,
//! delivers each commit until it is acknowledged, and never hands out more than one at a time.
//!
//! One at a time matters: a prefetched message that waits in the client while another is handled can
//! pass its acknowledgement deadline and be redelivered, which raises its delivery count without a real
//! attempt, so one real failure could exhaust a retry budget.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::pull::{self, Stream as Messages};
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use futures::StreamExt as _;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::log::{EventLog, StoredCommit};
use crate::{EventStore, StoreError};

#[derive(Debug, Clone)]
pub struct DurableConfig {
    /// Consumer name: letters, digits and `-`. Changing it starts over from the first event.
    pub name: String,
    /// Aggregate types whose commits are delivered.
    pub aggregate_types: Vec<String>,
    /// How long an unacknowledged delivery (a crashed worker) waits before it is delivered again.
    pub ack_wait: Duration,
}

/// A worker's durable subscription.
pub struct Durable {
    name: String,
    consumer: Consumer<pull::Config>,
    messages: Messages,
    reconnected: watch::Receiver<u64>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One delivered commit and the means to settle it.
pub struct Delivery {
    /// The commit, or why its message could not be read as one.
    pub commit: Result<StoredCommit, StoreError>,
    /// Stream sequence of the message.
    pub sequence: u64,
    /// How many times the server has delivered it (1 on the first delivery).
    pub delivered: u64,
    message: async_nats::jetstream::Message,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("sequence", &self.sequence)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Opens (or creates) the durable subscription `config.name`.
    pub async fn durable(&self, config: DurableConfig) -> Result<Durable, StoreError> {
        let pull_config = pull::Config {
            durable_name: Some(config.name.clone()),
            filter_subjects: config
                .aggregate_types
                .iter()
                .map(|t| self.subjects().of_type(t))
                .collect(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            // Unlimited on the server: the bound is the worker's, where giving up ends in a recorded
            // failure instead of the server quietly dropping the message.
            max_deliver: -1,
            max_ack_pending: 1,
            ..Default::default()
        };
        let stream = self
            .jetstream()
            .get_stream(&self.config().stream)
            .await
            .map_err(StoreError::unavailable)?;
        let consumer = stream
            .get_or_create_consumer(&config.name, pull_config)
            .await
            .map_err(StoreError::unavailable)?;
        let messages = pull_one(&consumer).await?;
        let mut reconnected = self.reconnections();
        reconnected.borrow_and_update();
        Ok(Durable {
            name: config.name,
            consumer,
            messages,
            reconnected,
        })
    }
}

async fn pull_one(consumer: &Consumer<pull::Config>) -> Result<Messages, StoreError> {
    consumer
        .stream()
        .max_messages_per_batch(1)
        .messages()
        .await
        .map_err(StoreError::unavailable)
}

impl Durable {
    /// The next delivery. Pull errors are logged and pulling goes on; after a reconnection to NATS the
    /// pull is renewed at once (a restarted server forgot the outstanding one).
    pub async fn next(&mut self) -> Delivery {
        loop {
            let message = tokio::select! {
                m = self.messages.next() => m,
                _ = self.reconnected.changed() => {
                    info!(worker = %self.name, "reconnected to NATS; renewing the pull");
                    match pull_one(&self.consumer).await {
                        Ok(renewed) => self.messages = renewed,
                        Err(e) => warn!(worker = %self.name, error = %e, "could not renew the pull; keeping the old one"),
                    }
                    continue;
                }
            };
            let message = match message {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    warn!(worker = %self.name, error = %e, "pull failed; continuing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                None => {
                    // The pull ended (it should not): start a new one.
                    match pull_one(&self.consumer).await {
                        Ok(renewed) => self.messages = renewed,
                        Err(e) => {
                            warn!(worker = %self.name, error = %e, "could not renew the pull");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    continue;
                }
            };
            let (sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered.max(1) as u64),
                Err(e) => {
                    warn!(worker = %self.name, error = %e, "message without JetStream metadata");
                    continue;
                }
            };
            let commit = EventStore::decode_message(
                sequence,
                message.subject.to_string(),
                message.headers.as_ref(),
                &message.payload,
            );
            return Delivery {
                commit,
                sequence,
                delivered,
                message,
            };
        }
    }
}

impl Delivery {
    /// Done with it: it is not delivered again.
    pub async fn ack(&self) {
        self.settle(AckKind::Ack).await;
    }

    /// Deliver it again after `delay`.
    pub async fn retry_after(&self, delay: Duration) {
        self.settle(AckKind::Nak(Some(delay))).await;
    }

    /// Never deliver it again (its failure has been recorded).
    pub async fn give_up(&self) {
        self.settle(AckKind::Term).await;
    }

    /// Tells the server the worker is still on it, so it is not delivered elsewhere meanwhile.
    pub async fn still_working(&self) {
        if let Err(e) = self.message.ack_with(AckKind::Progress).await {
            warn!(sequence = self.sequence, error = %e, "progress signal failed");
        }
    }

    async fn settle(&self, kind: AckKind) {
        if let Err(e) = self.message.ack_with(kind).await {
            // Without the acknowledgement the commit is simply delivered again; reactions are idempotent.
            warn!(sequence = self.sequence, error = %e, "acknowledgement failed");
        }
    }
}
