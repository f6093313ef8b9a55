//! Queries over the activity read model: the events of a computation's runs and of their CVMs, and
//! their agents' log lines, in the log's order, a page at a time.
//!
//! A page never cuts a commit in two (the events of one command share a stream sequence), so the
//! cursor is a stream sequence: `next_after` is the last sequence of the page.

use chrono::{DateTime, Utc};
use prism_domain::{ComputationId, CvmId, RunId, WorkspaceId};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::{ProjectionError, ReadModels};

/// One event of a run or of its CVM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityView {
    /// The stream sequence of its commit.
    pub sequence: u64,
    pub id: String,
    /// The CloudEvents type (`io.prism.run.attested.v1`).
    pub r#type: String,
    /// `run` or `cvm`.
    pub source: String,
    /// The event's name (`requested`, `agent_message_received`, …).
    pub event: String,
    pub run_id: RunId,
    pub cvm_id: Option<CvmId>,
    /// The run's state after a run event; the CVM's after a CVM event.
    pub status: String,
    /// `user`, `platform`, `manager` or `agent`.
    pub originator: String,
    pub actor: String,
    pub time: DateTime<Utc>,
    /// The event's payload, as its type's JSON Schema describes it.
    pub details: serde_json::Value,
}

/// One log line of a run's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLineView {
    pub sequence: u64,
    pub run_id: RunId,
    pub cvm_id: CvmId,
    pub time: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// Which events a query shows: every field given narrows it. The computation or the run is required.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    pub computation: Option<ComputationId>,
    pub run: Option<RunId>,
    /// Event names (`requested`, `attested`, …); empty for all.
    pub events: Vec<String>,
    /// The state of the run or CVM after the event.
    pub status: Option<String>,
    pub originator: Option<String>,
    /// At or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
    /// After this stream sequence.
    pub after: Option<u64>,
    pub limit: u32,
}

/// Which log lines a query shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub computation: Option<ComputationId>,
    pub run: Option<RunId>,
    /// Of this level, in any case.
    pub level: Option<String>,
    /// Containing this text.
    pub contains: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: Option<u64>,
    pub limit: u32,
}

/// One page of a query, ending with a whole commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequencePage<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<u64>,
}

/// The runs a query covers: `$1` workspace, `$2` computation, `$3` run. Found by their requests in
/// `run_activity` itself, not in the `runs` read model: a query then waits for the activity
/// projections alone to reach a sequence.
const RUNS_IN_SCOPE: &str = "SELECT run_id FROM run_activity WHERE event = 'requested' AND workspace_id = $1
       AND ($2::uuid IS NULL OR computation_id = $2) AND ($3::uuid IS NULL OR run_id = $3)";

const EVENT_COLUMNS: &str = "sequence, version, event_id, type, event, run_id, cvm_id, status, originator, actor, time, details, source";

fn activity_view(row: &Row) -> ActivityView {
    ActivityView {
        sequence: row.get::<_, i64>(0) as u64,
        id: row.get(2),
        r#type: row.get(3),
        event: row.get(4),
        run_id: RunId(row.get(5)),
        cvm_id: row.get::<_, Option<uuid::Uuid>>(6).map(CvmId),
        status: row.get(7),
        originator: row.get(8),
        actor: row.get(9),
        time: row.get(10),
        details: row.get(11),
        source: row.get(12),
    }
}

fn log_line_view(row: &Row) -> LogLineView {
    LogLineView {
        sequence: row.get::<_, i64>(0) as u64,
        run_id: RunId(row.get(2)),
        cvm_id: CvmId(row.get(3)),
        time: row.get(4),
        level: row.get(5),
        message: row.get(6),
    }
}

/// Reads a page through `query(count)` (the first `count` matching rows, in the log's order): at
/// least `limit` items, never half a commit. Commits are small, so asking for twice as many rows
/// soon reaches the end of the one the page stops in.
pub(crate) async fn page_of<T, Q, F>(
    limit: u32,
    sequence: impl Fn(&T) -> u64,
    query: Q,
) -> Result<SequencePage<T>, ProjectionError>
where
    Q: Fn(i64) -> F,
    F: std::future::Future<Output = Result<Vec<T>, ProjectionError>>,
{
    let limit = limit.max(1) as usize;
    let mut count = limit + 1;
    loop {
        let rows = query(count as i64).await?;
        let boundary = rows.get(limit - 1).map(&sequence);
        let complete = rows.len() < count || rows.last().map(&sequence) != boundary;
        if complete {
            return Ok(cut(rows, limit, sequence));
        }
        count *= 2;
    }
}

/// The first `limit` rows and the rest of the commit the last of them is in.
fn cut<T>(mut rows: Vec<T>, limit: usize, sequence: impl Fn(&T) -> u64) -> SequencePage<T> {
    let Some(boundary) = rows.get(limit.saturating_sub(1)).map(&sequence) else {
        return SequencePage {
            items: rows,
            next_after: None,
        };
    };
    let keep = rows.iter().take_while(|r| sequence(r) <= boundary).count();
    let follows = rows.len() > keep;
    rows.truncate(keep);
    SequencePage {
        items: rows,
        next_after: follows.then_some(boundary),
    }
}

impl ReadModels {
    /// The events of a computation's runs, or of one run, and of their CVMs, in the log's order.
    pub async fn activity(
        &self,
        workspace: WorkspaceId,
        filter: &ActivityFilter,
    ) -> Result<SequencePage<ActivityView>, ProjectionError> {
        let client = self.pool().get().await?;
        // One statement for both tables.
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM (
                     SELECT sequence, version, event_id, type, event, run_id, NULL::uuid AS cvm_id, status,
                            originator, actor, time, details, 'run' AS source
                     FROM run_activity WHERE run_id IN ({RUNS_IN_SCOPE})
                     UNION ALL
                     SELECT sequence, version, event_id, type, event, run_id, cvm_id, status,
                            originator, actor, time, details, 'cvm' AS source
                     FROM cvm_activity WHERE run_id IN ({RUNS_IN_SCOPE})
                 ) a
                 WHERE sequence > $4
                   AND (cardinality($5::text[]) = 0 OR event = ANY($5))
                   AND ($6::text IS NULL OR status = $6) AND ($7::text IS NULL OR originator = $7)
                   AND ($8::timestamptz IS NULL OR time >= $8) AND ($9::timestamptz IS NULL OR time < $9)
                 ORDER BY sequence, version LIMIT $10"
            ))
            .await?;
        let after = filter.after.unwrap_or(0) as i64;
        let (computation, run) = (filter.computation.map(|c| c.0), filter.run.map(|r| r.0));
        page_of(
            filter.limit,
            |e: &ActivityView| e.sequence,
            |count| {
                let (client, statement) = (&client, &statement);
                async move {
                    let params: [&(dyn ToSql + Sync); 10] = [
                        &workspace.0,
                        &computation,
                        &run,
                        &after,
                        &filter.events,
                        &filter.status,
                        &filter.originator,
                        &filter.from,
                        &filter.to,
                        &count,
                    ];
                    let rows = client.query(statement, &params).await?;
                    Ok(rows.iter().map(activity_view).collect())
                }
            },
        )
        .await
    }

    /// The log lines of the agents of a computation's runs, or of one run, oldest first.
    pub async fn log_lines(
        &self,
        workspace: WorkspaceId,
        filter: &LogFilter,
    ) -> Result<SequencePage<LogLineView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT sequence, version, run_id, cvm_id, time, log_level, log_message FROM cvm_activity
                 WHERE run_id IN ({RUNS_IN_SCOPE}) AND log_level IS NOT NULL AND sequence > $4
                   AND ($5::text IS NULL OR lower(log_level) = lower($5))
                   AND ($6::text IS NULL OR strpos(log_message, $6) > 0)
                   AND ($7::timestamptz IS NULL OR time >= $7) AND ($8::timestamptz IS NULL OR time < $8)
                 ORDER BY sequence, version LIMIT $9"
            ))
            .await?;
        let after = filter.after.unwrap_or(0) as i64;
        let (computation, run) = (filter.computation.map(|c| c.0), filter.run.map(|r| r.0));
        page_of(
            filter.limit,
            |l: &LogLineView| l.sequence,
            |count| {
                let (client, statement) = (&client, &statement);
                async move {
                    let params: [&(dyn ToSql + Sync); 9] = [
                        &workspace.0,
                        &computation,
                        &run,
                        &after,
                        &filter.level,
                        &filter.contains,
                        &filter.from,
                        &filter.to,
                        &count,
                    ];
                    let rows = client.query(statement, &params).await?;
                    Ok(rows.iter().map(log_line_view).collect())
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_ends_with_a_whole_commit() {
        let page = cut(vec![1, 2, 2, 3], 2, |n| *n);
        assert_eq!((page.items, page.next_after), (vec![1, 2, 2], Some(2)));
        let last = cut(vec![1, 2], 2, |n| *n);
        assert_eq!((last.items, last.next_after), (vec![1, 2], None));
        let whole = cut(vec![4, 4, 4], 2, |n| *n);
        assert_eq!((whole.items, whole.next_after), (vec![4, 4, 4], None));
        let short = cut(vec![1], 3, |n| *n);
        assert_eq!((short.items, short.next_after), (vec![1], None));
    }

    #[tokio::test]
    async fn a_commit_longer_than_a_page_is_read_whole() {
        // One commit of five events at sequence 7, then one at 8.
        let log = [5, 7, 7, 7, 7, 7, 8];
        let page = page_of(
            2,
            |n: &u64| *n,
            |count| async move { Ok(log.iter().copied().take(count as usize).collect()) },
        )
        .await
        .unwrap();
        assert_eq!((page.items, page.next_after), (vec![5, 7, 7, 7, 7, 7], Some(7)));
    }
}
