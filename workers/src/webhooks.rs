//! The webhook sender: takes due work from the queue the fan-out fills (`prism_projections::webhooks`)
//! and sends it.
//!
//! * **The handshake.** An endpoint pending validation is sent the CloudEvents webhook spec's
//!   abuse-protection request — `OPTIONS` with `WebHook-Request-Origin` — and is validated (an
//!   event) once it answers 2xx with `WebHook-Allowed-Origin` equal to that origin or `*`; until
//!   then it is tried again with backoff, and nothing is delivered to it.
//! * **Deliveries.** Each is a `POST` of the event as the log holds it, in the CloudEvents HTTP
//!   binding's structured mode (`application/cloudevents+json`), signed the Standard Webhooks way
//!   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`). A 2xx answer
//!   delivers it; anything else — another status, a timeout, no connection — is tried again after
//!   `min(backoff · 2^(n-1), max_backoff)`, ±20 % jitter, until `max_attempts`; then the failure is
//!   recorded as an event of the endpoint and the delivery is `failed`, until an operator retries it.
//!
//! Any number of processes may run it: work is claimed with `FOR UPDATE SKIP LOCKED` and a lease.

use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use prism_app::App;
use prism_domain::webhook::{DeliveryFailure, ERROR_MAX};
use prism_projections::{Attempt, DueDelivery, DueHandshake, WebhookQueue};
use rand::Rng as _;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use sha2::Sha256;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::runtime::clip;

/// The abuse-protection handshake's request header: who sends.
pub const REQUEST_ORIGIN: &str = "WebHook-Request-Origin";
/// Its answer: whom the endpoint accepts deliveries from.
pub const ALLOWED_ORIGIN: &str = "WebHook-Allowed-Origin";

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// What the platform calls itself in the handshake (`WebHook-Request-Origin`): its public host.
    pub origin: String,
    /// Delay before the second attempt; doubled for each further one up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts of one delivery before it is `failed` (and the failure recorded).
    pub max_attempts: u32,
    /// How long one request may take.
    pub timeout: Duration,
    /// How often the queue is looked at.
    pub poll: Duration,
    /// Deliveries claimed (and sent concurrently) at a time.
    pub batch: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            origin: "localhost".into(),
            // 10 s, 20 s, 40 s, … 1 h: the twelfth attempt comes about four hours after the first.
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 12,
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            batch: 16,
        }
    }
}

impl WebhookConfig {
    /// The delay after `attempts` failed attempts (1 or more): exponential, capped, jittered by ±20 %
    /// so that endpoints that failed together are not all tried again at the same instant.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let raw = self.backoff.saturating_mul(1 << exponent).min(self.max_backoff);
        raw.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    /// Claims last this long: a whole batch is sent at once, each request within `timeout`.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(30)
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The Standard Webhooks signature of `body` sent as message `id` at `timestamp` (unix seconds):
/// `v1,` and the base64 of HMAC-SHA256 under `key` of `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[derive(Debug)]
pub struct WebhookSender {
    app: App,
    queue: WebhookQueue,
    client: reqwest::Client,
    config: WebhookConfig,
}

impl WebhookSender {
    pub const NAME: &'static str = "webhook-sender";

    pub fn new(app: App, config: WebhookConfig) -> Result<Self, prism_app::AppError> {
        let queue = app.read_models()?.webhook_queue();
        let client = reqwest::Client::builder()
            // A redirect would carry the signed event to a URL nobody registered.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()
            .map_err(prism_app::AppError::internal)?;
        Ok(Self {
            app,
            queue,
            client,
            config,
        })
    }

    /// Sends until `shutdown` turns true; what is in flight then is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        info!(origin = %self.config.origin, "webhook sender started");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            if let Err(e) = self.handshakes().await {
                warn!(error = %e, "could not look for due webhook handshakes");
            }
            // Everything due is sent before the next pause.
            loop {
                match self.deliveries().await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %e, "could not look for due webhook deliveries");
                        break;
                    }
                }
            }
        }
    }

    async fn handshakes(&self) -> Result<(), prism_projections::ProjectionError> {
        let due = self
            .queue
            .claim_handshakes(self.config.batch, self.config.lease())
            .await?;
        futures::stream::iter(due)
            .for_each_concurrent(None, |endpoint| self.handshake(endpoint))
            .await;
        Ok(())
    }

    async fn handshake(&self, endpoint: DueHandshake) {
        let outcome = self
            .client
            .request(reqwest::Method::OPTIONS, &endpoint.url)
            .header(REQUEST_ORIGIN, &self.config.origin)
            .send()
            .await;
        let refusal = match outcome {
            Ok(answer) if answer.status().is_success() => {
                let allowed = answer.headers().get(ALLOWED_ORIGIN).and_then(|v| v.to_str().ok());
                match allowed {
                    Some(origin) if origin.trim() == "*" || origin.trim() == self.config.origin => None,
                    Some(origin) => Some(format!(
                        "the endpoint allows the origin `{}`, not `{}`",
                        clip(origin.to_owned(), 200),
                        self.config.origin
                    )),
                    None => Some(format!(
                        "the endpoint answered {} without {ALLOWED_ORIGIN}",
                        answer.status()
                    )),
                }
            }
            Ok(answer) => Some(format!("the endpoint answered {}", answer.status())),
            Err(e) => Some(describe(&e)),
        };
        match refusal {
            None => {
                match self
                    .app
                    .webhooks()
                    .validated(endpoint.workspace, endpoint.webhook, &endpoint.url)
                    .await
                {
                    Ok(()) => info!(webhook = %endpoint.webhook, "webhook endpoint validated"),
                    // Its URL changed meanwhile, or it was deleted: that URL's handshake is moot.
                    Err(e) if e.kind == prism_app::ErrorKind::StateConflict => {}
                    Err(e) => {
                        warn!(webhook = %endpoint.webhook, error = %e, "could not record a passed handshake")
                    }
                }
            }
            Some(error) => {
                let attempts = endpoint.attempts + 1;
                let next = Utc::now() + self.config.delay(attempts);
                info!(webhook = %endpoint.webhook, %error, "webhook handshake refused; will try again");
                if let Err(e) = self
                    .queue
                    .handshake_failed(endpoint.webhook, &endpoint.url, &clip(error, ERROR_MAX), next)
                    .await
                {
                    warn!(webhook = %endpoint.webhook, error = %e, "could not record a failed handshake");
                }
            }
        }
    }

    /// Sends one batch of due deliveries; how many there were.
    async fn deliveries(&self) -> Result<usize, prism_projections::ProjectionError> {
        let due = self
            .queue
            .claim_deliveries(self.config.batch, self.config.lease())
            .await?;
        let count = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(None, |delivery| self.deliver(delivery))
            .await;
        Ok(count)
    }

    async fn deliver(&self, delivery: DueDelivery) {
        let attempt = self.attempt(&delivery).await;
        let attempts = delivery.attempts + 1;
        let next = match &attempt.error {
            None => None,
            Some(_) if attempts < self.config.max_attempts => Some(Utc::now() + self.config.delay(attempts)),
            Some(error) => {
                // Out of attempts: recorded in the log first, so a failure is never only a row.
                let failure = DeliveryFailure {
                    delivery: delivery.id,
                    event_id: delivery.event_id.clone(),
                    event_type: delivery.event_type.clone(),
                    attempts,
                    last_error: error.clone(),
                };
                match self
                    .app
                    .webhooks()
                    .delivery_failed(delivery.workspace, delivery.webhook, delivery.retries, failure)
                    .await
                {
                    Ok(()) => {
                        warn!(webhook = %delivery.webhook, event = %delivery.event_id, %error, "webhook delivery failed for good");
                        None
                    }
                    Err(e) => {
                        warn!(webhook = %delivery.webhook, error = %e, "could not record a failed delivery; will try again");
                        Some(Utc::now() + self.config.delay(attempts))
                    }
                }
            }
        };
        if let Err(e) = self.queue.record_attempt(&delivery, &attempt, next).await {
            // The claim's lease ends and the delivery is due again: at least once.
            warn!(delivery = %delivery.id, error = %e, "could not record a webhook delivery's attempt");
        }
    }

    async fn attempt(&self, delivery: &DueDelivery) -> Attempt {
        let key = match self.app.webhooks().signing_key(&delivery.secret_key).await {
            Ok(key) => key,
            Err(e) => {
                return Attempt {
                    status: None,
                    error: Some(clip(format!("the signing secret cannot be read: {e}"), ERROR_MAX)),
                };
            }
        };
        let timestamp = Utc::now().timestamp();
        let signature = sign(&key, &delivery.event_id, timestamp, &delivery.body);
        let sent = self
            .client
            .post(&delivery.url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
            )
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => Attempt {
                status: Some(answer.status().as_u16()),
                error: None,
            },
            Ok(answer) => Attempt {
                status: Some(answer.status().as_u16()),
                error: Some(format!("the endpoint answered {}", answer.status())),
            },
            Err(e) => Attempt {
                status: None,
                error: Some(clip(describe(&e), ERROR_MAX)),
            },
        }
    }
}

/// A request's failure with its causes (reqwest's own text is only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "no answer in time".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example: its secret, message id, timestamp and
    /// payload give this signature.
    #[test]
    fn signatures_are_the_standard_webhooks_ones() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_with_jitter() {
        let config = WebhookConfig {
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            ..WebhookConfig::default()
        };
        for (attempts, nominal) in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60), (40, 60)] {
            let nominal = Duration::from_secs(nominal);
            for _ in 0..50 {
                let delay = config.delay(attempts);
                assert!(
                    delay >= nominal.mul_f64(0.8) && delay < nominal.mul_f64(1.2),
                    "{attempts}: {delay:?}"
                );
            }
        }
    }
}
