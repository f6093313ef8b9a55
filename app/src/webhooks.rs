//! A workspace's webhook endpoints (`webhooks.manage`): registered, changed, deleted, their signing
//! secret rotated, their deliveries listed and a failed one put back in the queue; and what the
//! platform's senders need: the sealed secret, the handshake's outcome and a delivery's failure.
//!
//! A secret is made here, sealed in the platform's key store (beside the certificate authority's
//! keys, like the EAR signing key) under a name of its own *before* the event that names it is
//! written, and shown once. The log holds only that name and the secret's SHA-256.

use base64::Engine as _;
use prism_domain::access::Permission;
use prism_domain::webhook::{
    DeliveryFailure, EventTypePattern, SecretRef, Webhook, WebhookCommand, WebhookStatus,
};
use prism_domain::{WebhookId, WorkspaceId};
use prism_projections::{DeliveryView, Page, PageRequest, WEBHOOKS, WebhookView};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tracing::warn;
use zeroize::Zeroizing;

use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "webhook";

/// The service the platform's webhook senders act as.
pub const WEBHOOK_SENDER: &str = "webhook-sender";

/// The prefix of a signing secret, as Standard Webhooks writes them: `whsec_` and the base64 of the
/// key's bytes.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a signing key (HMAC-SHA256 takes any length; 32 is its output's).
const KEY_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewWebhook {
    pub url: String,
    pub event_types: Vec<EventTypePattern>,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<EventTypePattern>>,
    pub description: Option<String>,
}

/// An endpoint registered, or its secret rotated: the command's outcome and the secret, which is
/// shown this once.
#[derive(Debug, Clone)]
pub struct IssuedSecret {
    pub executed: Executed<Webhook>,
    pub secret: String,
}

/// A fresh signing secret: what the endpoint is told, what the key store keeps, and what the log
/// records.
struct Fresh {
    shown: String,
    key: Zeroizing<Vec<u8>>,
    secret: SecretRef,
}

fn fresh_secret() -> Fresh {
    let mut key = Zeroizing::new(vec![0; KEY_BYTES]);
    getrandom::fill(&mut key).expect("the operating system's random number generator failed");
    let shown = format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(&*key)
    );
    let secret = SecretRef {
        key: format!("webhook.{}", uuid::Uuid::now_v7()),
        fingerprint: fingerprint(&shown),
    };
    Fresh { shown, key, secret }
}

/// The fingerprint the log records of a secret: the SHA-256 of the secret as shown (`whsec_…`), in
/// lowercase hex, so its holder can check which one signs (`printf %s "$SECRET" | sha256sum`).
pub fn fingerprint(shown: &str) -> String {
    hex::encode(Sha256::digest(shown.as_bytes()))
}

fn manage(workspace: WorkspaceId) -> Action {
    Action::in_workspace(Permission::WebhooksManage, workspace)
}

fn not_found(id: WebhookId) -> AppError {
    AppError::not_found(format!("webhook endpoint {id} not found"))
}

#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    app: &'a App,
}

impl<'a> Webhooks<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Registers an endpoint in `workspace`; its secret is returned once.
    pub async fn register(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        new: NewWebhook,
    ) -> Result<IssuedSecret, AppError> {
        self.app.authorize(caller, manage(workspace)).await?;
        self.app.require_active_workspace(workspace, "webhooks").await?;
        let fresh = self.seal(fresh_secret()).await?;
        let command = Command {
            what: WHAT,
            operation: "register",
            permission: Permission::WebhooksManage,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input: &new,
        };
        let outcome = self
            .app
            .execute_authorized(caller, options, command, |id| WebhookCommand::Register {
                id: WebhookId(id.parse().expect("the service proposes UUIDs")),
                workspace,
                url: new.url.clone(),
                event_types: new.event_types.clone(),
                description: new.description.clone(),
                secret: fresh.secret.clone(),
            })
            .await;
        self.issued(outcome, fresh).await
    }

    /// Replaces the endpoint's secret; the new one is returned once and signs every delivery from
    /// now on.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: WebhookId,
    ) -> Result<IssuedSecret, AppError> {
        let previous = self.existing(caller, workspace, id).await?.secret;
        let fresh = self.seal(fresh_secret()).await?;
        let command = self.command(workspace, id, "rotate_secret", &());
        let outcome = self
            .app
            .execute_authorized(caller, options, command, |_| WebhookCommand::RotateSecret {
                secret: fresh.secret.clone(),
            })
            .await;
        let issued = self.issued(outcome, fresh).await?;
        // The secret it replaced signs nothing more, so it is no longer kept; the events before
        // keep its name and fingerprint for the record.
        if let Some(previous) = previous {
            let keys = self.app.certificates().sealed_keys()?;
            if let Err(e) = keys.delete(&previous.key).await {
                warn!(key = %previous.key, error = %e, "could not remove a replaced webhook secret");
            }
        }
        Ok(issued)
    }

    /// The secret's outcome: shown when the command took it; unsealed again when it did not (a
    /// refusal, or a retry whose first use already chose another secret, which is not shown twice).
    async fn issued(
        &self,
        outcome: Result<Executed<Webhook>, AppError>,
        fresh: Fresh,
    ) -> Result<IssuedSecret, AppError> {
        let keys = self.app.certificates().sealed_keys()?;
        match outcome {
            Ok(executed) if !executed.outcome.replayed => Ok(IssuedSecret {
                executed,
                secret: fresh.shown,
            }),
            other => {
                if let Err(e) = keys.delete(&fresh.secret.key).await {
                    warn!(key = %fresh.secret.key, error = %e, "could not remove an unused webhook secret");
                }
                match other {
                    Err(e) => Err(e),
                    Ok(executed) => Err(AppError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "webhook endpoint {} was changed under this idempotency key already; a secret \
                             is shown only once: rotate it again",
                            executed.id
                        ),
                    )),
                }
            }
        }
    }

    async fn seal(&self, fresh: Fresh) -> Result<Fresh, AppError> {
        let keys = self.app.certificates().sealed_keys()?;
        keys.put(&fresh.secret.key, &fresh.key)
            .await
            .map_err(|e| AppError::internal(format!("sealing a webhook secret: {e}")))?;
        Ok(fresh)
    }

    /// Changes what is given.
    pub async fn update(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> Result<Executed<Webhook>, AppError> {
        self.existing(caller, workspace, id).await?;
        let command = self.command(workspace, id, "update", &changes);
        self.app
            .execute_authorized(caller, options, command, |_| WebhookCommand::Update {
                url: changes.url.clone(),
                event_types: changes.event_types.clone(),
                description: changes.description.clone(),
            })
            .await
    }

    /// Deletes the endpoint: nothing more is delivered to it.
    pub async fn delete(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: WebhookId,
    ) -> Result<Executed<Webhook>, AppError> {
        self.existing(caller, workspace, id).await?;
        let command = self.command(workspace, id, "delete", &());
        self.app
            .execute_authorized(caller, options, command, |_| WebhookCommand::Delete)
            .await
    }

    fn command<'i, I: Serialize>(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        operation: &'static str,
        input: &'i I,
    ) -> Command<'i, I> {
        Command {
            what: WHAT,
            operation,
            permission: Permission::WebhooksManage,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input,
        }
    }

    /// Authorises, and finds the endpoint in `workspace` (another workspace's is not found here).
    async fn existing(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: WebhookId,
    ) -> Result<Webhook, AppError> {
        self.app.authorize(caller, manage(workspace)).await?;
        let state = self.load(id).await?;
        if state.status == WebhookStatus::New || state.workspace != Some(workspace) {
            return Err(not_found(id));
        }
        Ok(state)
    }

    /// The workspace's endpoints that are not deleted, oldest first.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        read: ReadOptions,
    ) -> Result<Vec<WebhookView>, AppError> {
        self.app.authorize(caller, manage(workspace)).await?;
        self.app.wait_read(&[WEBHOOKS], read).await?;
        Ok(self.app.read_models()?.webhooks(workspace).await?)
    }

    /// One endpoint of the workspace (a deleted one too, as `deleted`).
    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: WebhookId,
        read: ReadOptions,
    ) -> Result<WebhookView, AppError> {
        self.app.authorize(caller, manage(workspace)).await?;
        self.app.wait_read(&[WEBHOOKS], read).await?;
        self.app
            .read_models()?
            .webhook(id)
            .await?
            .filter(|w| w.workspace_id == workspace)
            .ok_or_else(|| not_found(id))
    }

    /// The endpoint's deliveries in the log's order, of one `status` (`pending`, `delivered`,
    /// `failed`) or all.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: WebhookId,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<DeliveryView>, AppError> {
        self.get(caller, workspace, id, ReadOptions::default()).await?;
        Ok(self
            .app
            .read_models()?
            .webhook_deliveries(id, status, page)
            .await?)
    }

    /// Puts a failed delivery back in the queue, due now, with its attempts counted afresh. One that
    /// is pending or delivered is a conflict.
    pub async fn retry(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: WebhookId,
        delivery: uuid::Uuid,
    ) -> Result<DeliveryView, AppError> {
        let endpoint = self.get(caller, workspace, id, ReadOptions::default()).await?;
        let read = self.app.read_models()?;
        let Some(current) = read.webhook_delivery(id, delivery).await? else {
            return Err(AppError::not_found(format!("delivery {delivery} not found")));
        };
        if endpoint.status == "deleted" {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!("webhook endpoint {id} is deleted: nothing is delivered to it"),
            ));
        }
        if current.status != "failed" {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                format!(
                    "delivery {delivery} is {}: only a failed delivery is retried",
                    current.status
                ),
            ));
        }
        read.retry_webhook_delivery(id, delivery)
            .await?
            .ok_or_else(|| AppError::not_found(format!("delivery {delivery} not found")))
    }

    /// The signing key sealed under `name` (the senders').
    pub async fn signing_key(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, AppError> {
        let keys = self.app.certificates().sealed_keys()?;
        match keys.get(name).await {
            Ok(Some(key)) => Ok(Zeroizing::new(key.to_vec())),
            Ok(None) => Err(AppError::internal(format!(
                "the webhook secret `{name}` is not in the key store"
            ))),
            Err(e) => Err(AppError::internal(format!(
                "unsealing the webhook secret `{name}`: {e}"
            ))),
        }
    }

    /// Records that the endpoint answered the handshake for `url`; once per endpoint and URL.
    pub async fn validated(&self, workspace: WorkspaceId, id: WebhookId, url: &str) -> Result<(), AppError> {
        let key = format!("webhook-handshake-{id}-{}", fingerprint(url));
        let command = self.command(workspace, id, "validate", &url);
        self.as_sender(key, command, WebhookCommand::Validate { url: url.to_owned() })
            .await
    }

    /// Records a delivery that exhausted its attempts; once per delivery and manual retry.
    pub async fn delivery_failed(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        retries: u32,
        failure: DeliveryFailure,
    ) -> Result<(), AppError> {
        let key = format!("webhook-delivery-failed-{}-{retries}", failure.delivery);
        let input = (failure.delivery, retries);
        let command = self.command(workspace, id, "record_delivery_failure", &input);
        self.as_sender(key, command, WebhookCommand::RecordDeliveryFailure { failure })
            .await
    }

    async fn as_sender<I: Serialize>(
        &self,
        key: String,
        command: Command<'_, I>,
        webhook: WebhookCommand,
    ) -> Result<(), AppError> {
        let caller = Caller::service(WEBHOOK_SENDER);
        match self
            .app
            .execute::<Webhook, _>(&caller, &CommandOptions::keyed(key), command, |_| webhook)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The endpoint's state, from the log.
    pub async fn load(&self, id: WebhookId) -> Result<Webhook, AppError> {
        self.app
            .bounded(async { Ok(self.app.repository::<Webhook>().view(&id).await?) })
            .await
    }
}
