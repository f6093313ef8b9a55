//! The webhook aggregate: one endpoint of a workspace to which the platform delivers the workspace's
//! events (those its `event_types` match), signed with a secret only the platform and the endpoint
//! hold. The secret is never recorded: the log names where it is sealed and its SHA-256. An endpoint
//! receives nothing until it has answered the CloudEvents abuse-protection handshake for its URL
//! (`validated`); a delivery that exhausts its attempts is recorded on it (`delivery_failed`).

mod command;
mod error;
mod event;
mod filter;
mod state;

pub use command::WebhookCommand;
pub use error::WebhookError;
pub use event::{
    DeliveryFailure, SecretRef, WebhookDeleted, WebhookDeliveryFailed, WebhookEvent, WebhookRegistered,
    WebhookSecretRotated, WebhookUpdated, WebhookValidated,
};
pub use filter::{EventTypePattern, PATTERN_MAX, subscribes};
pub use state::{Webhook, WebhookStatus};

use crate::aggregate::{Aggregate, CommandContext};
use crate::values::check_text;

pub const URL_MAX: usize = 2048;
pub const DESCRIPTION_MAX: usize = 1024;
pub const EVENT_TYPES_MAX: usize = 32;
pub const ERROR_MAX: usize = 1024;
/// The longest name of the key store.
const KEY_NAME_MAX: usize = 128;

/// Whether `host` names this machine: the one case where plain HTTP is taken (a receiver on the
/// platform's own host, as in development and tests), since nothing then crosses a network.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An endpoint URL: absolute, `https` (or `http` to a loopback host), with a host, without
/// credentials (the URL is recorded in the log, which auditors read) or a fragment.
pub fn check_url(text: &str) -> Result<(), WebhookError> {
    let refuse = |why: &'static str| WebhookError::Url {
        url: text.chars().take(256).collect(),
        why,
    };
    if text.len() > URL_MAX {
        return Err(refuse("longer than 2048 characters"));
    }
    let url = url::Url::parse(text).map_err(|_| refuse("not an absolute URL"))?;
    let Some(host) = url.host() else {
        return Err(refuse("no host"));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => return Err(refuse("plain http is taken only for a loopback host; use https")),
        _ => return Err(refuse("the scheme must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "credentials in the URL would be recorded in the audit trail",
        ));
    }
    if url.fragment().is_some() {
        return Err(refuse("a fragment is never sent to a server"));
    }
    Ok(())
}

/// An endpoint's subscriptions: 1–32 patterns, none twice.
pub fn check_event_types(patterns: &[EventTypePattern]) -> Result<(), WebhookError> {
    if patterns.is_empty() {
        return Err(WebhookError::NoEventTypes);
    }
    if patterns.len() > EVENT_TYPES_MAX {
        return Err(WebhookError::TooManyEventTypes { max: EVENT_TYPES_MAX });
    }
    for (i, pattern) in patterns.iter().enumerate() {
        if patterns[..i].contains(pattern) {
            return Err(WebhookError::RepeatedEventType(pattern.to_string()));
        }
    }
    Ok(())
}

fn check_secret(secret: &SecretRef) -> Result<(), WebhookError> {
    let valid_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if secret.key.is_empty()
        || secret.key.len() > KEY_NAME_MAX
        || secret.key.starts_with('.')
        || !secret.key.chars().all(valid_name)
    {
        return Err(WebhookError::SecretName(
            secret.key.chars().take(KEY_NAME_MAX).collect(),
        ));
    }
    if secret.fingerprint.len() != 64
        || !secret
            .fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(WebhookError::SecretFingerprint);
    }
    Ok(())
}

impl Aggregate for Webhook {
    const TYPE: &'static str = "webhook";
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;

    fn decide(
        &self,
        command: WebhookCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        use WebhookCommand as C;
        use WebhookStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Register {
                    id,
                    workspace,
                    url,
                    event_types,
                    description,
                    secret,
                },
            ) => {
                check_url(&url)?;
                check_event_types(&event_types)?;
                check_text("description", &description, DESCRIPTION_MAX, false)?;
                check_secret(&secret)?;
                Ok(vec![WebhookEvent::Registered(WebhookRegistered {
                    id,
                    workspace,
                    url,
                    event_types,
                    description,
                    secret,
                    registered_by: ctx.actor.clone(),
                    registered_at: ctx.now,
                })])
            }
            (S::New, _) => Err(WebhookError::NotFound),
            (_, C::Register { .. }) => Err(WebhookError::AlreadyExists),
            (S::Deleted, _) => Err(WebhookError::Deleted),
            (
                _,
                C::Update {
                    url,
                    event_types,
                    description,
                },
            ) => {
                if let Some(url) = &url {
                    check_url(url)?;
                }
                if let Some(event_types) = &event_types {
                    check_event_types(event_types)?;
                }
                if let Some(description) = &description {
                    check_text("description", description, DESCRIPTION_MAX, false)?;
                }
                // Only what differs is recorded; a change to nothing records nothing.
                let url = url.filter(|u| *u != self.url);
                let event_types = event_types.filter(|t| *t != self.event_types);
                let description = description.filter(|d| *d != self.description);
                if url.is_none() && event_types.is_none() && description.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Updated(WebhookUpdated {
                    url,
                    event_types,
                    description,
                    updated_by: ctx.actor.clone(),
                    updated_at: ctx.now,
                })])
            }
            (_, C::RotateSecret { secret }) => {
                check_secret(&secret)?;
                Ok(vec![WebhookEvent::SecretRotated(WebhookSecretRotated {
                    secret,
                    rotated_by: ctx.actor.clone(),
                    rotated_at: ctx.now,
                })])
            }
            (status, C::Validate { url }) => {
                if url != self.url {
                    return Err(WebhookError::StaleValidation {
                        current: self.url.clone(),
                    });
                }
                if status == S::Active {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::Validated(WebhookValidated {
                    url,
                    validated_at: ctx.now,
                })])
            }
            (_, C::RecordDeliveryFailure { failure }) => {
                if failure.event_id.is_empty() || failure.attempts == 0 || failure.last_error.is_empty() {
                    return Err(WebhookError::DeliveryFailure);
                }
                check_text("event id", &failure.event_id, 256, true)?;
                check_text("event type", &failure.event_type, PATTERN_MAX, true)?;
                check_text("last error", &failure.last_error, ERROR_MAX, true)?;
                Ok(vec![WebhookEvent::DeliveryFailed(WebhookDeliveryFailed {
                    delivery: failure.delivery,
                    event_id: failure.event_id,
                    event_type: failure.event_type,
                    attempts: failure.attempts,
                    last_error: failure.last_error,
                    failed_at: ctx.now,
                })])
            }
            (_, C::Delete) => Ok(vec![WebhookEvent::Deleted(WebhookDeleted {
                deleted_by: ctx.actor.clone(),
                deleted_at: ctx.now,
            })]),
        }
    }

    fn apply(&mut self, event: &WebhookEvent) {
        match event {
            WebhookEvent::Registered(e) => {
                self.status = WebhookStatus::PendingValidation;
                self.id = Some(e.id);
                self.workspace = Some(e.workspace);
                self.url = e.url.clone();
                self.event_types = e.event_types.clone();
                self.description = e.description.clone();
                self.secret = Some(e.secret.clone());
            }
            WebhookEvent::Updated(e) => {
                if let Some(url) = &e.url {
                    self.url = url.clone();
                    // A handshake vouches for one URL only.
                    self.status = WebhookStatus::PendingValidation;
                }
                if let Some(event_types) = &e.event_types {
                    self.event_types = event_types.clone();
                }
                if let Some(description) = &e.description {
                    self.description = description.clone();
                }
            }
            WebhookEvent::SecretRotated(e) => self.secret = Some(e.secret.clone()),
            WebhookEvent::Validated(_) => self.status = WebhookStatus::Active,
            WebhookEvent::DeliveryFailed(_) => self.failed_deliveries += 1,
            WebhookEvent::Deleted(_) => self.status = WebhookStatus::Deleted,
        }
    }
}

#[cfg(test)]
mod tests;
