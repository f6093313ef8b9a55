//! Time travel for investigators: one aggregate's history, event by event, with the state each
//! event left — folded by the domain's own `apply`, from events read back from the log with their
//! hash chain verified and old versions upcast, exactly as the platform folds them.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use prism_domain::Aggregate;
use prism_domain::access::Permission;
use prism_domain::api_key::ApiKey;
use prism_domain::asset::Asset;
use prism_domain::authority::Authority;
use prism_domain::backend::Backend;
use prism_domain::certificate::Certificate;
use prism_domain::computation::Computation;
use prism_domain::cvm::Cvm;
use prism_domain::denial::AccessDenial;
use prism_domain::ledger::Ledger;
use prism_domain::reaction::Reaction;
use prism_domain::run::Run;
use prism_domain::session::Session;
use prism_domain::user::User;
use prism_domain::webhook::Webhook;
use prism_domain::workspace::Workspace;
use serde::Serialize;
use serde_json::Value;

use crate::audit::Audit;
use crate::auth::Action;
use crate::{AppError, Caller, ErrorKind};

/// Every aggregate type a replay can fold, by the name its events carry.
pub const REPLAYABLE: &[&str] = &[
    Workspace::TYPE,
    Computation::TYPE,
    Asset::TYPE,
    Reaction::TYPE,
    User::TYPE,
    Session::TYPE,
    ApiKey::TYPE,
    AccessDenial::TYPE,
    Ledger::TYPE,
    Run::TYPE,
    Certificate::TYPE,
    Authority::TYPE,
    Backend::TYPE,
    Cvm::TYPE,
    Webhook::TYPE,
];

/// Where a replay stops: after the commit at stream sequence `sequence`, and after the last event
/// recorded at or before `time` — whichever comes first; neither: the whole history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayUntil {
    pub sequence: Option<u64>,
    pub time: Option<DateTime<Utc>>,
}

/// Neither a stream sequence nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither a stream sequence nor an RFC 3339 time")]
pub struct BadUntil(pub String);

/// A stream sequence (digits) or an RFC 3339 time, as `prism replay --until` takes it.
impl FromStr for ReplayUntil {
    type Err = BadUntil;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadUntil(text.into());
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let sequence = text.parse().map_err(|_| bad())?;
            return Ok(ReplayUntil {
                sequence: Some(sequence),
                time: None,
            });
        }
        let time = DateTime::parse_from_rfc3339(text).map_err(|_| bad())?;
        Ok(ReplayUntil {
            sequence: None,
            time: Some(time.with_timezone(&Utc)),
        })
    }
}

/// One event of a replay and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayStep {
    /// Stream sequence of the event's commit, and its index there.
    pub sequence: u64,
    pub index: u32,
    /// The aggregate's version after the event.
    pub version: u64,
    pub time: DateTime<Utc>,
    /// The CloudEvents type as recorded (an older version is shown upcast in `event`).
    pub event_type: String,
    pub actor: String,
    /// The event as the domain reads it today: `{"event": <name>, "data": …}`.
    pub event: Value,
    /// The state after the event.
    pub state: Value,
    /// How the state changed: an RFC 6902 JSON Patch from the state before, only when asked for
    /// (most readers want the states; the patches double what a step holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
}

/// An aggregate's history as a replay shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub steps: Vec<ReplayStep>,
}

impl Audit<'_> {
    /// The history of aggregate `aggregate_type`/`id`, each event with the state after it
    /// (`platform.operate`), up to `until`, and with `diff` how each changed it. "Not found" for an
    /// unknown type or an aggregate with no event; a history that fails verification is refused with
    /// the reason.
    pub async fn replay(
        &self,
        caller: &Caller,
        aggregate_type: &str,
        id: &str,
        until: ReplayUntil,
        diff: bool,
    ) -> Result<Replay, AppError> {
        self.app
            .authorize(caller, Action::platform(Permission::PlatformOperate))
            .await?;
        let steps = match aggregate_type {
            Workspace::TYPE => self.fold::<Workspace>(id, until, diff).await,
            Computation::TYPE => self.fold::<Computation>(id, until, diff).await,
            Asset::TYPE => self.fold::<Asset>(id, until, diff).await,
            Reaction::TYPE => self.fold::<Reaction>(id, until, diff).await,
            User::TYPE => self.fold::<User>(id, until, diff).await,
            Session::TYPE => self.fold::<Session>(id, until, diff).await,
            ApiKey::TYPE => self.fold::<ApiKey>(id, until, diff).await,
            AccessDenial::TYPE => self.fold::<AccessDenial>(id, until, diff).await,
            Ledger::TYPE => self.fold::<Ledger>(id, until, diff).await,
            Run::TYPE => self.fold::<Run>(id, until, diff).await,
            Certificate::TYPE => self.fold::<Certificate>(id, until, diff).await,
            Authority::TYPE => self.fold::<Authority>(id, until, diff).await,
            Backend::TYPE => self.fold::<Backend>(id, until, diff).await,
            Cvm::TYPE => self.fold::<Cvm>(id, until, diff).await,
            Webhook::TYPE => self.fold::<Webhook>(id, until, diff).await,
            other => Err(AppError::new(
                ErrorKind::NotFound,
                format!("no aggregate type `{other}`: one of {}", REPLAYABLE.join(", ")),
            )),
        }?;
        Ok(Replay {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: id.to_owned(),
            steps,
        })
    }

    async fn fold<A: Aggregate>(
        &self,
        id: &str,
        until: ReplayUntil,
        diff: bool,
    ) -> Result<Vec<ReplayStep>, AppError> {
        let log = self.app.log().clone();
        let subject = log
            .subjects()
            .aggregate(A::TYPE, id)
            .map_err(|e| AppError::new(ErrorKind::NotFound, e.to_string()))?;
        // Verified as it is read: the chain from the first event, each version after the last.
        let commits = self.app.bounded(async { Ok(log.load(&subject).await?) }).await?;
        if commits.is_empty() {
            return Err(AppError::new(
                ErrorKind::NotFound,
                format!("{} {id} has no events", A::TYPE),
            ));
        }
        let mut state = A::default();
        let mut before = if diff { Some(to_json(&state)?) } else { None };
        let mut steps = Vec::new();
        for commit in commits {
            if until.sequence.is_some_and(|last| commit.sequence > last) {
                break;
            }
            for (index, envelope) in commit.events.into_iter().enumerate() {
                if until.time.is_some_and(|last| envelope.time > last) {
                    return Ok(steps);
                }
                let event: A::Event = envelope.decode(A::TYPE).map_err(|e| {
                    AppError::internal(format!(
                        "event {} of {} {id} cannot be read: {e}",
                        envelope.id,
                        A::TYPE
                    ))
                })?;
                state.apply(&event);
                let after = to_json(&state)?;
                let patch = before
                    .as_ref()
                    .map(|before| serde_json::to_value(json_patch::diff(before, &after)))
                    .transpose()
                    .map_err(AppError::internal)?;
                if let Some(before) = before.as_mut() {
                    before.clone_from(&after);
                }
                steps.push(ReplayStep {
                    sequence: commit.sequence,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    version: envelope.aggregateversion,
                    time: envelope.time,
                    event_type: envelope.ty,
                    actor: envelope.actor,
                    event: to_json(&event)?,
                    diff: patch,
                    state: after,
                });
            }
        }
        Ok(steps)
    }
}

fn to_json(value: &impl Serialize) -> Result<Value, AppError> {
    serde_json::to_value(value).map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_a_sequence_or_a_time() {
        let sequence = ReplayUntil {
            sequence: Some(42),
            time: None,
        };
        assert_eq!("42".parse(), Ok(sequence));
        let time = ReplayUntil {
            sequence: None,
            time: Some("2026-12-02T10:00:00Z".parse().unwrap()),
        };
        assert_eq!("2026-12-02T10:00:00Z".parse(), Ok(time));
        for bad in [
            "",
            "-1",
            "4 2",
            "yesterday",
            "2026-12-02",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<ReplayUntil>().is_err(), "{bad:?}");
        }
    }
}
