//! Webhook endpoints and their deliveries: the fan-out that queues each event of a workspace for the
//! endpoints that subscribe to it, and what the senders take from the queue and record.
//!
//! [`WebhookFanOut`] follows the whole log in order from its checkpoint (`webhooks` among the
//! projections' checkpoints), verifies every commit, and in one transaction per batch keeps the
//! `webhooks` table as the endpoints' events say, queues a delivery for every event of a workspace
//! that one of its endpoints — validated or still pending its handshake — subscribes to (once per
//! endpoint and event), and moves the checkpoint. An event is therefore queued before the fan-out
//! moves past it, and against the endpoints as they were at that point of the log.
//!
//! The senders ([`WebhookQueue`]) claim due deliveries with `FOR UPDATE SKIP LOCKED` and a lease,
//! so any number of processes send, none the same delivery at once, and a delivery claimed by a
//! process that died is due again when its lease ends.
//!
//! These tables are operational state, not a disposable read model (see the migration).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures::StreamExt as _;
use prism_domain::webhook::{EventTypePattern, Webhook, WebhookEvent};
use prism_domain::{WebhookId, WorkspaceId};
use prism_store::{Checked, EventEnvelope, EventLog, Recorded, Verifier};
use serde::Serialize;
use tokio::sync::watch;
use tokio_postgres::Row;
use tracing::{error, info};

use crate::projector::quarantine;
use crate::queries::paged;
use crate::{Page, PageRequest, ProjectionError, ReadModels};

/// The fan-out's checkpoint, and the name to wait for (read-your-writes on endpoints).
pub const WEBHOOKS: &str = "webhooks";

/// The type of the events that record a failed delivery. They are never delivered by webhook: a
/// failing endpoint subscribed to them would otherwise feed its own failures back into its queue.
pub const DELIVERY_FAILED_TYPE: &str = "io.prism.webhook.delivery_failed.v1";

const BATCH: usize = 256;

/// Follows the log and queues deliveries.
#[derive(Debug, Clone)]
pub struct WebhookFanOut {
    pool: Pool,
    log: Arc<dyn EventLog>,
}

impl WebhookFanOut {
    pub fn new(pool: Pool, log: Arc<dyn EventLog>) -> Self {
        Self { pool, log }
    }

    /// Fans out until `shutdown` turns true, recovering from errors with a capped backoff.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                r = self.follow(None) => r,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    error!(error = %e, "webhook fan-out failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Fans out everything up to the log's current end.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let end = self.log.last_sequence().await?;
        while self.checkpoint().await? < end {
            self.follow(Some(end)).await?;
        }
        Ok(end)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&WEBHOOKS],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT sequence FROM projection_checkpoints WHERE name = $1",
                &[&WEBHOOKS],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn follow(&self, until: Option<u64>) -> Result<(), ProjectionError> {
        let checkpoint = self.checkpoint().await?;
        let mut verifier = Verifier::new(self.log.clone());
        let mut commits = self
            .log
            .read(checkpoint + 1, &self.log.subjects().all())
            .await?
            .ready_chunks(BATCH);
        let mut reconnected = self.log.reconnections();
        reconnected.borrow_and_update();
        loop {
            let batch = tokio::select! {
                batch = commits.next() => batch,
                _ = reconnected.changed() => {
                    info!("reconnected to NATS; the webhook fan-out resumes from its checkpoint");
                    return Ok(());
                }
            };
            let Some(batch) = batch else { return Ok(()) };
            let mut checked = Vec::with_capacity(batch.len());
            for commit in batch {
                checked.push(verifier.check(commit?).await?);
            }
            let last = self.apply_batch(&checked).await?;
            if until.is_some_and(|end| last >= end) {
                return Ok(());
            }
        }
    }

    async fn apply_batch(&self, batch: &[Checked]) -> Result<u64, ProjectionError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Several processes may fan out at once: the row lock orders them, and what one has done
        // the other skips.
        let row = tx
            .query_one(
                "SELECT sequence FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
                &[&WEBHOOKS],
            )
            .await?;
        let mut applied: i64 = row.get(0);
        for checked in batch {
            let sequence = checked.sequence();
            if sequence as i64 <= applied {
                continue;
            }
            match checked {
                Checked::Verified(verified) => {
                    let commit = verified.commit();
                    let typed = match verified.events::<Webhook>().transpose() {
                        Ok(typed) => typed,
                        Err(reason) => {
                            let ids = commit.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
                            quarantine(&tx, WEBHOOKS, sequence, &commit.subject, &ids, &reason).await?;
                            applied = sequence as i64;
                            continue;
                        }
                    };
                    for (index, envelope) in commit.events.iter().enumerate() {
                        if let Some(typed) = &typed {
                            apply(&tx, &typed[index]).await?;
                        }
                        fan_out(&tx, sequence, index, envelope).await?;
                    }
                }
                // Nothing of a commit that fails verification is delivered; the quarantine says why.
                Checked::Quarantined { commit, reason } => {
                    let ids = commit.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
                    quarantine(&tx, WEBHOOKS, sequence, &commit.subject, &ids, reason).await?;
                }
            }
            applied = sequence as i64;
        }
        tx.execute(
            "UPDATE projection_checkpoints SET sequence = $2, updated_at = now() WHERE name = $1",
            &[&WEBHOOKS, &applied],
        )
        .await?;
        tx.commit().await?;
        Ok(applied as u64)
    }
}

fn corrupt(what: &str, source: impl Into<prism_store::BoxError>) -> ProjectionError {
    ProjectionError::Corrupt {
        what: what.into(),
        source: source.into(),
    }
}

/// Keeps an endpoint's row as its event says.
async fn apply(tx: &Transaction<'_>, recorded: &Recorded<WebhookEvent>) -> Result<(), ProjectionError> {
    let id: uuid::Uuid = recorded
        .meta
        .aggregate_id
        .parse()
        .map_err(|e| corrupt("a webhook's id", e))?;
    let version = recorded.meta.version as i64;
    let at = recorded.meta.time;
    match &recorded.event {
        WebhookEvent::Registered(e) => {
            let types: Vec<&str> = e.event_types.iter().map(EventTypePattern::as_str).collect();
            tx.execute(
                "INSERT INTO webhooks (id, workspace_id, url, event_types, description, status, secret_key,
                     secret_fingerprint, created_at, updated_at, version)
                 VALUES ($1, $2, $3, $4, $5, 'pending_validation', $6, $7, $8, $8, $9)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &id,
                    &e.workspace.as_uuid(),
                    &e.url,
                    &types,
                    &e.description,
                    &e.secret.key,
                    &e.secret.fingerprint,
                    &at,
                    &version,
                ],
            )
            .await?;
        }
        WebhookEvent::Updated(e) => {
            let types: Option<Vec<&str>> = e
                .event_types
                .as_ref()
                .map(|t| t.iter().map(EventTypePattern::as_str).collect());
            // A new URL is pending its own handshake, tried at once.
            tx.execute(
                "UPDATE webhooks SET
                     url = COALESCE($2, url),
                     event_types = COALESCE($3, event_types),
                     description = COALESCE($4, description),
                     status = CASE WHEN $2::text IS NULL THEN status ELSE 'pending_validation' END,
                     handshake_attempts = CASE WHEN $2::text IS NULL THEN handshake_attempts ELSE 0 END,
                     next_handshake_at = CASE WHEN $2::text IS NULL THEN next_handshake_at ELSE now() END,
                     last_handshake_error = CASE WHEN $2::text IS NULL THEN last_handshake_error END,
                     updated_at = $5, version = $6
                 WHERE id = $1",
                &[&id, &e.url, &types, &e.description, &at, &version],
            )
            .await?;
        }
        WebhookEvent::SecretRotated(e) => {
            tx.execute(
                "UPDATE webhooks SET secret_key = $2, secret_fingerprint = $3, updated_at = $4, version = $5
                 WHERE id = $1",
                &[&id, &e.secret.key, &e.secret.fingerprint, &at, &version],
            )
            .await?;
        }
        WebhookEvent::Validated(e) => {
            tx.execute(
                "UPDATE webhooks SET status = 'active', last_handshake_error = NULL, updated_at = $3,
                     version = $4
                 WHERE id = $1 AND url = $2",
                &[&id, &e.url, &at, &version],
            )
            .await?;
        }
        WebhookEvent::DeliveryFailed(_) => {
            tx.execute(
                "UPDATE webhooks SET failed_deliveries = failed_deliveries + 1, updated_at = $2,
                     version = $3
                 WHERE id = $1",
                &[&id, &at, &version],
            )
            .await?;
        }
        WebhookEvent::Deleted(_) => {
            tx.execute(
                "UPDATE webhooks SET status = 'deleted', updated_at = $2, version = $3 WHERE id = $1",
                &[&id, &at, &version],
            )
            .await?;
        }
    }
    Ok(())
}

/// Queues `event` (event `index` of the commit at `sequence`) for every endpoint of its workspace,
/// validated or pending, that subscribes to its type.
async fn fan_out(
    tx: &Transaction<'_>,
    sequence: u64,
    index: usize,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    if event.ty == DELIVERY_FAILED_TYPE {
        return Ok(());
    }
    let Some(workspace) = event
        .workspace
        .as_deref()
        .and_then(|w| w.parse::<uuid::Uuid>().ok())
    else {
        return Ok(());
    };
    let statement = tx
        .prepare_cached(
            "SELECT id, event_types FROM webhooks WHERE workspace_id = $1 AND status <> 'deleted'",
        )
        .await?;
    let endpoints = tx.query(&statement, &[&workspace]).await?;
    let mut body = None;
    for endpoint in endpoints {
        let patterns: Vec<String> = endpoint.get(1);
        let subscribed = patterns
            .iter()
            .any(|p| EventTypePattern::parse(p).is_ok_and(|p| p.matches(&event.ty)));
        if !subscribed {
            continue;
        }
        // The record as the log holds it: the envelope serialises to exactly the JSON its hash was
        // computed over, which the verifier has just checked.
        let body = match &body {
            Some(body) => body,
            None => body.insert(serde_json::to_string(event).map_err(|e| corrupt("an event", e))?),
        };
        let webhook: uuid::Uuid = endpoint.get(0);
        tx.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, sequence, event_index, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (webhook_id, event_id) DO NOTHING",
            &[
                &uuid::Uuid::now_v7(),
                &webhook,
                &event.id,
                &event.ty,
                &(sequence as i64),
                &(index as i32),
                body,
            ],
        )
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// What the API shows

/// An endpoint as the API shows it (never its secret: only where it is sealed and its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    pub id: WebhookId,
    pub workspace_id: WorkspaceId,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    /// `pending_validation`, `active` or `deleted`.
    pub status: String,
    pub secret_key: String,
    pub secret_fingerprint: String,
    pub failed_deliveries: u64,
    pub handshake_attempts: u32,
    /// When the handshake is tried next (pending endpoints only).
    pub next_handshake_at: Option<DateTime<Utc>>,
    pub last_handshake_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

const WEBHOOK_COLUMNS: &str = "id, workspace_id, url, event_types, description, status, secret_key, \
     secret_fingerprint, failed_deliveries, handshake_attempts, next_handshake_at, last_handshake_error, \
     created_at, updated_at, version";

fn webhook_view(row: &Row) -> WebhookView {
    let status: String = row.get(5);
    let pending = status == "pending_validation";
    WebhookView {
        id: WebhookId(row.get(0)),
        workspace_id: WorkspaceId(row.get(1)),
        url: row.get(2),
        event_types: row.get(3),
        description: row.get(4),
        status,
        secret_key: row.get(6),
        secret_fingerprint: row.get(7),
        failed_deliveries: row.get::<_, i64>(8) as u64,
        handshake_attempts: row.get::<_, i32>(9) as u32,
        next_handshake_at: pending.then(|| row.get(10)),
        last_handshake_error: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
        version: row.get::<_, i64>(14) as u64,
    }
}

/// One event queued for one endpoint, with how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryView {
    pub id: uuid::Uuid,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    /// The event's place in the log.
    pub sequence: u64,
    pub index: u32,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub retries: u32,
    /// When it is tried next (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the endpoint last answered, if it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, sequence, event_index, status, \
     attempts, retries, next_attempt_at, last_status, last_error, last_attempt_at, delivered_at, created_at";

fn delivery_view(row: &Row) -> DeliveryView {
    let status: String = row.get(6);
    let pending = status == "pending";
    DeliveryView {
        id: row.get(0),
        webhook_id: WebhookId(row.get(1)),
        event_id: row.get(2),
        event_type: row.get(3),
        sequence: row.get::<_, i64>(4) as u64,
        index: row.get::<_, i32>(5) as u32,
        status,
        attempts: row.get::<_, i32>(7) as u32,
        retries: row.get::<_, i32>(8) as u32,
        next_attempt_at: pending.then(|| row.get(9)),
        last_status: row.get::<_, Option<i32>>(10).map(|s| s as u16),
        last_error: row.get(11),
        last_attempt_at: row.get(12),
        delivered_at: row.get(13),
        created_at: row.get(14),
    }
}

impl ReadModels {
    /// The workspace's endpoints that are not deleted, oldest first.
    pub async fn webhooks(&self, workspace: WorkspaceId) -> Result<Vec<WebhookView>, ProjectionError> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE workspace_id = $1 AND status <> 'deleted'
                     ORDER BY created_at, id"
                ),
                &[&workspace.as_uuid()],
            )
            .await?;
        Ok(rows.iter().map(webhook_view).collect())
    }

    /// One endpoint, deleted or not.
    pub async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookView>, ProjectionError> {
        let client = self.pool().get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"),
                &[&id.as_uuid()],
            )
            .await?;
        Ok(row.as_ref().map(webhook_view))
    }

    /// An endpoint's deliveries in the order they were queued (the log's), of one `status` or all.
    pub async fn webhook_deliveries(
        &self,
        webhook: WebhookId,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<DeliveryView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
                     WHERE webhook_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::text IS NULL OR status = $3)
                     ORDER BY id LIMIT $4"
                ),
                &[&webhook.as_uuid(), &page.after, &status, &limit],
            )
            .await?;
        let items = rows.iter().map(delivery_view).collect();
        Ok(paged(items, page.limit, |d: &DeliveryView| d.id))
    }

    /// One delivery of an endpoint.
    pub async fn webhook_delivery(
        &self,
        webhook: WebhookId,
        delivery: uuid::Uuid,
    ) -> Result<Option<DeliveryView>, ProjectionError> {
        let client = self.pool().get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2"
                ),
                &[&webhook.as_uuid(), &delivery],
            )
            .await?;
        Ok(row.as_ref().map(delivery_view))
    }

    /// Puts a failed delivery back in the queue, due now, with a fresh count of attempts. `None` when
    /// the endpoint has no such delivery; a delivery that is not failed is left as it is.
    pub async fn retry_webhook_delivery(
        &self,
        webhook: WebhookId,
        delivery: uuid::Uuid,
    ) -> Result<Option<DeliveryView>, ProjectionError> {
        let client = self.pool().get().await?;
        client
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, retries = retries + 1,
                     next_attempt_at = now()
                 WHERE webhook_id = $1 AND id = $2 AND status = 'failed'",
                &[&webhook.as_uuid(), &delivery],
            )
            .await?;
        drop(client);
        self.webhook_delivery(webhook, delivery).await
    }

    /// The senders' side of the queue.
    pub fn webhook_queue(&self) -> WebhookQueue {
        WebhookQueue {
            pool: self.pool().clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// What the senders take and record

/// An endpoint whose handshake is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueHandshake {
    pub webhook: WebhookId,
    pub workspace: WorkspaceId,
    pub url: String,
    /// Tries before this one.
    pub attempts: u32,
}

/// A delivery whose attempt is due, with what it takes to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: uuid::Uuid,
    pub webhook: WebhookId,
    pub workspace: WorkspaceId,
    pub url: String,
    /// Where the endpoint's current signing secret is sealed.
    pub secret_key: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    /// Attempts before this one (since it was queued or last retried by hand).
    pub attempts: u32,
    pub retries: u32,
}

/// What an attempt met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// Why it failed; `None` for a delivery.
    pub error: Option<String>,
}

/// The queue as the senders see it.
#[derive(Debug, Clone)]
pub struct WebhookQueue {
    pool: Pool,
}

impl WebhookQueue {
    /// Claims up to `limit` pending endpoints whose handshake is due, for `lease` (another process
    /// takes them only after it).
    pub async fn claim_handshakes(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<DueHandshake>, ProjectionError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "UPDATE webhooks SET next_handshake_at = now() + $2::float8 * interval '1 second'
                 WHERE id IN (
                     SELECT id FROM webhooks
                     WHERE status = 'pending_validation' AND next_handshake_at <= now()
                     ORDER BY next_handshake_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, workspace_id, url, handshake_attempts",
                &[&i64::from(limit), &lease.as_secs_f64()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| DueHandshake {
                webhook: WebhookId(row.get(0)),
                workspace: WorkspaceId(row.get(1)),
                url: row.get(2),
                attempts: row.get::<_, i32>(3) as u32,
            })
            .collect())
    }

    /// Records a handshake that failed for `url` (unless the URL changed meanwhile): tried again at
    /// `next`.
    pub async fn handshake_failed(
        &self,
        webhook: WebhookId,
        url: &str,
        error: &str,
        next: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE webhooks SET handshake_attempts = handshake_attempts + 1, last_handshake_error = $3,
                     next_handshake_at = $4
                 WHERE id = $1 AND url = $2 AND status = 'pending_validation'",
                &[&webhook.as_uuid(), &url, &error, &next],
            )
            .await?;
        Ok(())
    }

    /// Claims up to `limit` due deliveries of validated endpoints, oldest event first, for `lease`.
    pub async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, ProjectionError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH due AS (
                     SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.status = 'pending' AND w.status = 'active' AND d.next_attempt_at <= now()
                     ORDER BY d.sequence, d.event_index LIMIT $1
                     FOR UPDATE OF d SKIP LOCKED)
                 UPDATE webhook_deliveries d SET next_attempt_at = now() + $2::float8 * interval '1 second'
                 FROM due, webhooks w
                 WHERE d.id = due.id AND w.id = d.webhook_id
                 RETURNING d.id, d.webhook_id, w.workspace_id, w.url, w.secret_key, d.event_id, d.event_type,
                     d.body, d.attempts, d.retries, d.sequence, d.event_index",
                &[&i64::from(limit), &lease.as_secs_f64()],
            )
            .await?;
        let mut due: Vec<(i64, i32, DueDelivery)> = rows
            .iter()
            .map(|row| {
                (
                    row.get(10),
                    row.get(11),
                    DueDelivery {
                        id: row.get(0),
                        webhook: WebhookId(row.get(1)),
                        workspace: WorkspaceId(row.get(2)),
                        url: row.get(3),
                        secret_key: row.get(4),
                        event_id: row.get(5),
                        event_type: row.get(6),
                        body: row.get(7),
                        attempts: row.get::<_, i32>(8) as u32,
                        retries: row.get::<_, i32>(9) as u32,
                    },
                )
            })
            .collect();
        // RETURNING keeps no order: the log's is restored.
        due.sort_by_key(|(sequence, index, _)| (*sequence, *index));
        Ok(due.into_iter().map(|(_, _, d)| d).collect())
    }

    /// Records an attempt of a claimed delivery: delivered, or due again at `next` (`None`: it has
    /// no attempt left and is `failed` — after its failure is recorded in the log).
    pub async fn record_attempt(
        &self,
        delivery: &DueDelivery,
        attempt: &Attempt,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), ProjectionError> {
        let client = self.pool.get().await?;
        let status = attempt.status.map(i32::from);
        // `retries` guards against an operator's retry that came in meanwhile: that one starts afresh.
        match (&attempt.error, next) {
            (None, _) => {
                client
                    .execute(
                        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                             last_status = $3, last_error = NULL, last_attempt_at = now(), delivered_at = now()
                         WHERE id = $1 AND retries = $2 AND status = 'pending'",
                        &[&delivery.id, &(delivery.retries as i32), &status],
                    )
                    .await?;
            }
            (Some(error), Some(next)) => {
                client
                    .execute(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $3,
                             last_error = $4, last_attempt_at = now(), next_attempt_at = $5
                         WHERE id = $1 AND retries = $2 AND status = 'pending'",
                        &[&delivery.id, &(delivery.retries as i32), &status, error, &next],
                    )
                    .await?;
            }
            (Some(error), None) => {
                client
                    .execute(
                        "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1,
                             last_status = $3, last_error = $4, last_attempt_at = now()
                         WHERE id = $1 AND retries = $2 AND status = 'pending'",
                        &[&delivery.id, &(delivery.retries as i32), &status, error],
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_failure_event_type_is_the_one_the_domain_records() {
        use prism_domain::DomainEvent as _;
        let name = prism_domain::webhook::WebhookEvent::DeliveryFailed(
            prism_domain::webhook::WebhookDeliveryFailed {
                delivery: uuid::Uuid::nil(),
                event_id: "e".into(),
                event_type: "t".into(),
                attempts: 1,
                last_error: "x".into(),
                failed_at: chrono::Utc::now(),
            },
        )
        .name();
        assert_eq!(super::DELIVERY_FAILED_TYPE, format!("io.prism.webhook.{name}.v1"));
    }
}
