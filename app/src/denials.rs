//! Denials: what a refused request answers, and its record in the event log.
//!
//! Every denial is recorded as an `io.prism.access.denied.v1` event. Recording is bounded per source
//! address (a few per second): beyond that, denials are counted and the count travels with the next
//! record, so that a flood of bad requests is visible without letting it write to the log at its own
//! rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prism_domain::access::Permission;
use prism_domain::denial::{AccessDenial, DenialCommand, DenialReason};
use prism_store::CommandRequest;
use tracing::warn;

use crate::auth::Action;
use crate::{App, AppError, Caller, ErrorKind};

/// A refused request: how to answer it and what to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenialReason,
    pub permission: Option<Permission>,
    pub resource: String,
    /// For the record; the caller gets [`Denial::answer`].
    pub detail: String,
}

impl Denial {
    pub fn new(reason: DenialReason, resource: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason,
            permission: None,
            resource: resource.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unauthenticated(action: &Action) -> Self {
        Self {
            permission: Some(action.permission),
            ..Self::new(DenialReason::Unauthenticated, action.resource(), "no credentials")
        }
    }

    pub(crate) fn missing_permission(action: &Action) -> Self {
        Self {
            permission: Some(action.permission),
            ..Self::new(
                DenialReason::MissingPermission,
                action.resource(),
                format!("the caller's roles do not grant `{}`", action.permission),
            )
        }
    }

    pub(crate) fn not_visible(action: &Action, why: &str) -> Self {
        Self {
            permission: Some(action.permission),
            ..Self::new(DenialReason::NotVisible, action.resource(), why)
        }
    }

    /// What the caller is told. A resource the caller has no part in is "not found", exactly as a
    /// resource that does not exist.
    pub fn answer(&self) -> AppError {
        match self.reason {
            DenialReason::Unauthenticated => AppError::new(
                ErrorKind::Unauthenticated,
                "sign in first: send `Authorization: Bearer <access token or API key>`",
            ),
            DenialReason::InvalidCredentials | DenialReason::CertificateRefused => {
                AppError::new(ErrorKind::Unauthenticated, self.detail.clone())
            }
            DenialReason::SignInFailed => AppError::new(
                ErrorKind::Unauthenticated,
                "the e-mail address or password is wrong, or the account cannot sign in now",
            ),
            DenialReason::Throttled => AppError::new(ErrorKind::Throttled, self.detail.clone()),
            DenialReason::NotVisible => AppError::not_found(not_found_detail(&self.resource)),
            DenialReason::MissingPermission => AppError::new(
                ErrorKind::Forbidden,
                format!(
                    "your roles do not allow this: it needs the permission `{}`",
                    self.permission.map_or("?", Permission::as_str)
                ),
            ),
        }
    }
}

fn not_found_detail(resource: &str) -> String {
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("workspaces"), Some(_), Some("computations"), Some(c)) => format!("computation {c} not found"),
        (Some("workspaces"), Some(w), _, _) => format!("workspace {w} not found"),
        _ => "not found".into(),
    }
}

/// Records per source address and second before denials are only counted.
const RECORDS_PER_SECOND: u32 = 5;
/// Sources remembered at most (oldest forgotten first), so a spread-out flood cannot grow memory.
const SOURCES_MAX: usize = 10_000;

/// Bounds how fast denials from one source are written to the log.
#[derive(Debug, Default)]
pub(crate) struct DenialGate {
    sources: Mutex<HashMap<Option<IpAddr>, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    recorded: u32,
    suppressed: u64,
}

impl DenialGate {
    /// `Some(suppressed)` when this denial is to be recorded (with the count of those that were not
    /// since the last record); `None` when it is only counted.
    fn admit(&self, source: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= SOURCES_MAX && !sources.contains_key(&source) {
            let stale = now.checked_sub(Duration::from_secs(1));
            sources.retain(|_, w| stale.is_some_and(|s| w.started > s) || w.suppressed > 0);
            if sources.len() >= SOURCES_MAX {
                sources.clear();
            }
        }
        let window = sources.entry(source).or_insert(Window {
            started: now,
            recorded: 0,
            suppressed: 0,
        });
        if now.duration_since(window.started) >= Duration::from_secs(1) {
            window.started = now;
            window.recorded = 0;
        }
        if window.recorded < RECORDS_PER_SECOND {
            window.recorded += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }
}

impl App {
    /// Records `denial` (unless its source is over its rate, then counts it) and returns the error to
    /// answer. A failure to record is logged, never turned into a different answer.
    pub async fn deny(&self, caller: &Caller, denial: Denial) -> AppError {
        let answer = denial.answer();
        let Some(suppressed) = self.inner.denials.admit(caller.source, Instant::now()) else {
            return answer;
        };
        let id = uuid::Uuid::now_v7().to_string();
        let command = DenialCommand::Record {
            reason: denial.reason,
            permission: denial.permission,
            resource: denial.resource,
            detail: denial.detail,
            source: caller.source.map(|s| s.to_string()),
            suppressed,
        };
        let meta = caller.metadata(None);
        let recorded = self
            .bounded(async {
                self.repository::<AccessDenial>()
                    .execute(CommandRequest::new(&id, command, meta))
                    .await
                    .map_err(|e| AppError::command("access denial", e))
            })
            .await;
        if let Err(e) = recorded {
            warn!(error = %e, "could not record an access denial");
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_counted_and_the_count_travels_with_the_next_record() {
        let gate = DenialGate::default();
        let source = Some(IpAddr::from([192, 0, 2, 1]));
        let start = Instant::now();
        for _ in 0..RECORDS_PER_SECOND {
            assert_eq!(gate.admit(source, start), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(gate.admit(source, start), None);
        }
        // Another source is not held back by the first.
        assert_eq!(gate.admit(Some(IpAddr::from([192, 0, 2, 2])), start), Some(0));
        assert_eq!(gate.admit(source, start + Duration::from_secs(1)), Some(7));
    }
}
