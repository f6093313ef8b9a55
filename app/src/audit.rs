//! The audit trail as it is written: a workspace's events, in the log's order, each verified (its
//! hash chain and address) before it is shown, from any point of the log on and then live.
//!
//! The same service replays one aggregate's history (`replay.rs`).
//!
//! A place in the feed is an event's [`FeedPosition`]: the stream sequence of its commit and its
//! index in that commit (the events of one command share a sequence), so a consumer that resumes
//! after the last event it saw gets neither a gap nor a repeat, even within a commit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use prism_domain::WorkspaceId;
use prism_domain::access::Permission;
use prism_projections::{
    SECURITY_ATTESTATIONS, SECURITY_DENIALS, SECURITY_SIGN_INS, SecurityEventView, SecurityFilter,
    SequencePage,
};
use prism_store::{Checked, EventEnvelope, EventLog, StoredCommit, Verifier};
use tokio::sync::mpsc;
use tracing::warn;

use crate::auth::Action;
use crate::{App, AppError, Caller, ErrorKind, ReadOptions};

/// How often a feed asks again whether its caller may still read the workspace's audit trail: a
/// member removed, or whose roles no longer grant `audit.read`, loses the feed within this time.
const REAUTHORIZE_EVERY: Duration = Duration::from_secs(15);
/// How often a feed with an end time looks whether it is over while no event arrives.
const END_CHECK_EVERY: Duration = Duration::from_millis(500);
/// Events a feed holds for a consumer that reads slower than the log is written; beyond them the
/// log is read no further until the consumer catches up.
const FEED_BUFFER: usize = 256;

/// After which event a feed resumes: event `index` of the commit at stream sequence `sequence`,
/// or the whole commit when `index` is absent. Written `<sequence>.<index>` (an event's id in the
/// feed) or `<sequence>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    pub sequence: u64,
    pub index: Option<u32>,
}

impl fmt::Display for FeedPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "{}.{index}", self.sequence),
            None => write!(f, "{}", self.sequence),
        }
    }
}

/// A position that is not `<sequence>` or `<sequence>.<index>` in decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a position in the log: <sequence> or <sequence>.<index>, both decimal")]
pub struct BadPosition(pub String);

impl FromStr for FeedPosition {
    type Err = BadPosition;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(text.to_owned());
        let decimal =
            |part: &str| !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit());
        let (sequence, index) = match text.split_once('.') {
            Some((sequence, index)) if decimal(sequence) && decimal(index) => {
                (sequence, Some(index.parse().map_err(|_| bad())?))
            }
            None if decimal(text) => (text, None),
            _ => return Err(bad()),
        };
        Ok(FeedPosition {
            sequence: sequence.parse().map_err(|_| bad())?,
            index,
        })
    }
}

/// Which of the workspace's events a feed shows.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    /// CloudEvents types (`io.prism.run.closed.v1`); empty: every type.
    pub types: Vec<String>,
    /// Only events of this aggregate type (`run`, `computation`, …).
    pub aggregate_type: Option<String>,
    /// Only events of the aggregate with this id.
    pub aggregate_id: Option<String>,
    /// Where to begin when no position is given: the first event recorded at or after this time
    /// (absent: the events recorded from now on).
    pub since: Option<DateTime<Utc>>,
    /// Where to end: the feed closes at the first event recorded at or after this time, or, when
    /// the time has passed, once it has shown everything the log held before it.
    pub until: Option<DateTime<Utc>>,
}

impl FeedFilter {
    fn shows(&self, workspace: WorkspaceId, event: &EventEnvelope) -> bool {
        let workspace = workspace.to_string();
        event.workspace.as_deref() == Some(workspace.as_str())
            && (self.types.is_empty() || self.types.contains(&event.ty))
            && self
                .aggregate_type
                .as_ref()
                .is_none_or(|t| *t == event.aggregatetype)
            && self
                .aggregate_id
                .as_ref()
                .is_none_or(|id| *id == event.aggregateid)
            && self.since.is_none_or(|since| event.time >= since)
    }
}

/// What a feed delivers.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// An event, verified, as the log holds it (a CloudEvents 1.0 record).
    Event {
        position: FeedPosition,
        event: Box<EventEnvelope>,
    },
    /// A commit that failed verification (altered, misplaced, out of its chain): not shown, but
    /// never passed over in silence. Resuming after `sequence` goes on past it.
    Quarantined { sequence: u64, reason: String },
}

/// A workspace's audit trail.
#[derive(Debug)]
pub struct Audit<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The security events of `workspace` — requests refused on its resources, failed sign-ins and
    /// lock-outs of its members, refused attestations of its CVMs (`audit.read`) — or, for `None`,
    /// of the whole platform, refused client certificates and sign-ins of unknown accounts
    /// included (`platform.operate`); in the log's order.
    pub async fn security_events(
        &self,
        caller: &Caller,
        workspace: Option<WorkspaceId>,
        filter: &SecurityFilter,
        read: ReadOptions,
    ) -> Result<SequencePage<SecurityEventView>, AppError> {
        let action = match workspace {
            Some(workspace) => Action::in_workspace(Permission::AuditRead, workspace),
            None => Action::platform(Permission::PlatformOperate),
        };
        self.app.authorize(caller, action).await?;
        self.app
            .wait_read(
                &[SECURITY_DENIALS, SECURITY_SIGN_INS, SECURITY_ATTESTATIONS],
                read,
            )
            .await?;
        Ok(self.app.read_models()?.security_events(workspace, filter).await?)
    }

    /// The workspace's events after `after` (else from `filter.since`, else from now on), as they
    /// are recorded (`audit.read`). The feed ends when the caller stops reading it, when `filter.until`
    /// is reached, when the caller loses the permission (a last `Err`), or when the log cannot be
    /// read (a last `Err`: resume after the last position seen).
    pub async fn feed(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: FeedFilter,
        after: Option<FeedPosition>,
    ) -> Result<mpsc::Receiver<Result<FeedItem, AppError>>, AppError> {
        let action = || Action::in_workspace(Permission::AuditRead, workspace);
        self.app.authorize(caller, action()).await?;
        let log = self.app.log().clone();
        let last = self.app.bounded(async { Ok(log.last_sequence().await?) }).await?;
        let start = match (after, filter.since) {
            (Some(after), _) if after.index.is_some() => after.sequence,
            (Some(after), _) => after.sequence.saturating_add(1),
            (None, Some(since)) => {
                self.app
                    .bounded(first_at_or_after(log.as_ref(), last, since))
                    .await?
            }
            (None, None) => last + 1,
        };
        let commits = self
            .app
            .bounded(async { Ok(log.read(start, &log.subjects().all()).await?) })
            .await?;
        let (items, feed) = mpsc::channel(FEED_BUFFER);
        let reader = FeedReader {
            app: self.app.clone(),
            caller: caller.clone(),
            workspace,
            filter,
            after,
            last_at_start: last,
            items,
        };
        // Nothing before `start` is to be shown: as good as seen.
        let seen = start.saturating_sub(1);
        tokio::spawn(reader.run(commits, action(), seen));
        Ok(feed)
    }
}

/// The stream sequence of the first commit recorded at or after `since` (`last + 1` when none
/// is): a binary search, commit times growing with the sequence.
pub(crate) async fn first_at_or_after(
    log: &dyn EventLog,
    last: u64,
    since: DateTime<Utc>,
) -> Result<u64, AppError> {
    let (mut low, mut high) = (1, last + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        let time = log
            .commit_at(middle)
            .await?
            .and_then(|commit| commit.events.first().map(|e| e.time));
        match time {
            Some(time) if time >= since => high = middle,
            // A sequence holding nothing (never the case in a log that forbids deletes) counts as
            // earlier: the filter drops what is too early all the same.
            _ => low = middle + 1,
        }
    }
    Ok(low)
}

struct FeedReader {
    app: App,
    caller: Caller,
    workspace: WorkspaceId,
    filter: FeedFilter,
    after: Option<FeedPosition>,
    /// The log's last sequence when the feed began: with an end time already past, the feed ends
    /// once it has shown everything up to here.
    last_at_start: u64,
    items: mpsc::Sender<Result<FeedItem, AppError>>,
}

/// Whether a feed goes on.
enum Flow {
    Continue,
    End,
}

impl FeedReader {
    /// Shows the commits as they come, `seen` being the last sequence before them.
    async fn run(self, mut commits: prism_store::CommitStream, action: Action, mut seen: u64) {
        let mut verifier = Verifier::new(self.app.log().clone());
        let mut reauthorize = tokio::time::interval(REAUTHORIZE_EVERY);
        reauthorize.tick().await;
        let mut end_check = tokio::time::interval(END_CHECK_EVERY);
        loop {
            let flow = tokio::select! {
                () = self.items.closed() => Flow::End,
                _ = reauthorize.tick() => match self.app.authorize(&self.caller, action.clone()).await {
                    Ok(()) => Flow::Continue,
                    Err(e) => self.fail(e).await,
                },
                _ = end_check.tick(), if self.filter.until.is_some() => self.end_if_over(seen),
                next = commits.next() => match next {
                    Some(Ok(commit)) => {
                        seen = commit.sequence;
                        self.show(&mut verifier, commit).await
                    }
                    Some(Err(e)) => self.fail(e.into()).await,
                    None => self.fail(AppError::unavailable("the event log closed the feed")).await,
                },
            };
            if let Flow::End = flow {
                return;
            }
        }
    }

    /// With an end time that has passed, the feed is over once it has shown what the log held
    /// when it began (what came later is later than the end time).
    fn end_if_over(&self, seen: u64) -> Flow {
        match self.filter.until {
            Some(until) if Utc::now() >= until && seen >= self.last_at_start => Flow::End,
            _ => Flow::Continue,
        }
    }

    async fn show(&self, verifier: &mut Verifier, commit: StoredCommit) -> Flow {
        let sequence = commit.sequence;
        let checked = match verifier.check(commit).await {
            Ok(checked) => checked,
            Err(e) => return self.fail(e.into()).await,
        };
        let commit = match checked {
            Checked::Verified(verified) => verified.commit().clone(),
            Checked::Quarantined { commit, reason } => {
                // Only a commit of this workspace (as it claims) is named: another's is not this
                // caller's to know about.
                let workspace = self.workspace.to_string();
                if commit
                    .events
                    .iter()
                    .any(|e| e.workspace.as_deref() == Some(workspace.as_str()))
                {
                    warn!(sequence, %reason, "the audit feed passes over a commit that failed verification");
                    let item = FeedItem::Quarantined {
                        sequence,
                        reason: reason.to_string(),
                    };
                    return self.send(Ok(item)).await;
                }
                return Flow::Continue;
            }
        };
        for (index, event) in commit.events.into_iter().enumerate() {
            let position = FeedPosition {
                sequence,
                index: Some(u32::try_from(index).unwrap_or(u32::MAX)),
            };
            if self.after.is_some_and(|after| position <= after) {
                continue;
            }
            if self.filter.until.is_some_and(|until| event.time >= until) {
                return Flow::End;
            }
            if !self.filter.shows(self.workspace, &event) {
                continue;
            }
            let item = FeedItem::Event {
                position,
                event: Box::new(event),
            };
            if let Flow::End = self.send(Ok(item)).await {
                return Flow::End;
            }
        }
        self.end_if_over(sequence)
    }

    async fn send(&self, item: Result<FeedItem, AppError>) -> Flow {
        match self.items.send(item).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::End,
        }
    }

    async fn fail(&self, error: AppError) -> Flow {
        if error.kind != ErrorKind::Forbidden && error.kind != ErrorKind::Unauthenticated {
            warn!(error = %error, "the audit feed ends");
        }
        let _ = self.items.send(Err(error)).await;
        Flow::End
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_is_a_sequence_with_or_without_an_index() {
        let whole: FeedPosition = "42".parse().unwrap();
        assert_eq!(
            whole,
            FeedPosition {
                sequence: 42,
                index: None
            }
        );
        let one: FeedPosition = "42.3".parse().unwrap();
        assert_eq!(
            one,
            FeedPosition {
                sequence: 42,
                index: Some(3)
            }
        );
        assert_eq!(one.to_string(), "42.3");
        assert_eq!(whole.to_string(), "42");
        // Within a commit, later events come later.
        assert!(
            FeedPosition {
                sequence: 42,
                index: Some(0)
            } < one
        );
        assert!(
            one < FeedPosition {
                sequence: 43,
                index: Some(0)
            }
        );
        for bad in [
            "",
            ".",
            "42.",
            ".3",
            "-1",
            "4 2",
            "42.3.1",
            "0x10",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<FeedPosition>().is_err(), "{bad:?}");
        }
    }
}
