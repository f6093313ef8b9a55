//! Runs a projection: reads the whole log from the projection's checkpoint, verifies every commit, and
//! applies each batch in one transaction together with the new checkpoint.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use futures::StreamExt as _;
use prism_domain::Aggregate;
use prism_store::{Checked, EventLog, Recorded, StoreError, Verifier};
use tokio::sync::watch;
use tracing::{error, info};

use crate::ProjectionError;

/// Most commits applied in one transaction: large enough to amortise the commit, small enough to keep
/// a rebuild's transactions short.
const BATCH: usize = 256;

/// A read model of one aggregate type: which tables it owns (emptied by a rebuild) and how one event
/// changes them. It receives verified, decoded events only.
pub trait Projection: Send + Sync + 'static {
    type Aggregate: Aggregate;
    fn name(&self) -> &'static str;
    fn tables(&self) -> &'static [&'static str];
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        event: &'a Recorded<<Self::Aggregate as Aggregate>::Event>,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;

    /// Whether each aggregate's events change only rows of that aggregate and read none that another
    /// aggregate's events change. A projector then applies a batch's aggregates side by side, their
    /// statements pipelined on one connection rather than each waiting a round trip for the one
    /// before; a projection that cannot promise it (it reads or updates rows of other aggregates)
    /// keeps the default, log order.
    const INDEPENDENT_AGGREGATES: bool = false;

    /// Applies one commit's events, in order. By default one at a time; a projection whose aggregate
    /// commits many like events at once may apply a run of them with one statement.
    fn apply_commit<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        events: &'a [Recorded<<Self::Aggregate as Aggregate>::Event>],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a {
        async move {
            for event in events {
                self.apply(tx, event).await?;
            }
            Ok(())
        }
    }
}

pub struct Projector<P: Projection> {
    projection: P,
    pool: Pool,
    log: Arc<dyn EventLog>,
}

impl<P: Projection> std::fmt::Debug for Projector<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("projection", &self.projection.name())
            .finish()
    }
}

/// A projector of any projection, for lists of them (the platform's registry, the CLI).
#[async_trait]
pub trait RunProjection: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Projects until `shutdown` turns true, recovering from errors with a capped backoff.
    async fn run(&self, shutdown: watch::Receiver<bool>);
    /// Projects everything up to the log's current end, then returns it.
    async fn catch_up(&self) -> Result<u64, ProjectionError>;
    /// Replays the whole log into shadow copies of the projection's tables while the live ones go on
    /// serving, then swaps them in atomically; returns the sequence the rebuild reached.
    async fn rebuild(&self) -> Result<u64, ProjectionError>;
}

impl<P: Projection> Projector<P> {
    pub fn new(projection: P, pool: Pool, log: Arc<dyn EventLog>) -> Self {
        Self {
            projection,
            pool,
            log,
        }
    }

    /// Reads from the checkpoint on; stops after `until` if given, or when NATS reconnects.
    async fn follow(&self, target: &Target, until: Option<u64>) -> Result<(), ProjectionError> {
        let (checkpoint, generation) = self.checkpoint(target).await?;
        let mut verifier = if checkpoint == 0 {
            Verifier::from_first(self.log.clone())
        } else {
            Verifier::new(self.log.clone())
        };
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
                // A restarted server forgot our consumer: start a new one from the checkpoint now.
                _ = reconnected.changed() => {
                    info!(projection = self.projection.name(), "reconnected to NATS; resuming from the checkpoint");
                    return Ok(());
                }
            };
            let Some(batch) = batch else { return Ok(()) };
            let mut checked = Vec::with_capacity(batch.len());
            for commit in batch {
                checked.push(verifier.check(commit?).await?);
            }
            let last = self.apply_batch(target, &checked, generation).await?;
            if until.is_some_and(|end| last >= end) {
                return Ok(());
            }
        }
    }

    /// Applies a batch in one transaction. First without a savepoint per commit (two round trips
    /// each, as many as the statements of a typical commit); only when a commit holds a value the read
    /// model refuses is the batch done again with savepoints, to quarantine that commit alone.
    async fn apply_batch(
        &self,
        target: &Target,
        batch: &[Checked],
        generation: i64,
    ) -> Result<u64, ProjectionError> {
        match self
            .apply_batch_with(target, batch, generation, Isolate::No)
            .await
        {
            // With aggregates side by side, the statement that fails first may be one that came
            // after the refused one in the pipeline ("transaction aborted").
            Err(e) if refusal(&e).is_some() || is_aborted(&e) => {
                self.apply_batch_with(target, batch, generation, Isolate::EachCommit)
                    .await
            }
            applied => applied,
        }
    }

    async fn apply_batch_with(
        &self,
        target: &Target,
        batch: &[Checked],
        generation: i64,
        isolate: Isolate,
    ) -> Result<u64, ProjectionError> {
        let name = target.reader(&self.projection);
        let mut client = self.pool.get().await?;
        let mut tx = client.transaction().await?;
        if let Target::Shadow { search_path, .. } = target {
            // The projection's statements name its tables unqualified: here they find the shadow
            // copies first, and every other table where it always is.
            tx.batch_execute(&format!("SET LOCAL search_path TO {search_path}"))
                .await?;
        }
        let row = tx
            .query_one(
                "SELECT sequence, generation FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await?;
        let (applied, current_generation): (i64, i64) = (row.get(0), row.get(1));
        if current_generation != generation {
            return Err(ProjectionError::Superseded(name.into()));
        }
        // Another projector of the same generation may have got here first; never apply twice.
        let pending: Vec<&Checked> = batch.iter().filter(|c| c.sequence() as i64 > applied).collect();
        let applied = pending.last().map_or(applied, |c| c.sequence() as i64);
        match isolate {
            Isolate::No if P::INDEPENDENT_AGGREGATES => {
                // Each aggregate's commits in order, the aggregates side by side: their statements
                // share the connection's pipeline instead of waiting for one another.
                let (tx, lanes) = (&tx, lanes(&pending));
                futures::future::try_join_all(lanes.into_iter().map(|lane| async move {
                    for checked in lane {
                        self.apply_checked(tx, name, checked).await?;
                    }
                    Ok::<_, ProjectionError>(())
                }))
                .await?;
            }
            Isolate::No => {
                for checked in pending {
                    self.apply_checked(&tx, name, checked).await?;
                }
            }
            Isolate::EachCommit => {
                for checked in pending {
                    if let Checked::Verified(commit) = checked
                        && let Some(Ok(events)) = commit.events::<P::Aggregate>()
                    {
                        let subject = &commit.commit().subject;
                        self.apply_isolated(&mut tx, name, checked.sequence(), subject, &events)
                            .await?;
                    } else {
                        self.apply_checked(&tx, name, checked).await?;
                    }
                }
            }
        }
        tx.execute(
            "UPDATE projection_checkpoints SET sequence = $2, updated_at = now() WHERE name = $1",
            &[&name, &applied],
        )
        .await?;
        tx.commit().await?;
        Ok(applied as u64)
    }

    /// Applies one checked commit, or quarantines it when it failed verification or cannot be decoded.
    async fn apply_checked(
        &self,
        tx: &Transaction<'_>,
        reader: &str,
        checked: &Checked,
    ) -> Result<(), ProjectionError> {
        let sequence = checked.sequence();
        match checked {
            Checked::Verified(commit) => match commit.events::<P::Aggregate>() {
                None => Ok(()),
                Some(Ok(events)) => self.projection.apply_commit(tx, &events).await,
                Some(Err(reason)) => {
                    let subject = &commit.commit().subject;
                    quarantine(tx, reader, sequence, subject, &ids(commit.commit()), &reason).await
                }
            },
            Checked::Quarantined { commit, reason } => {
                quarantine(tx, reader, sequence, &commit.subject, &ids(commit), reason).await
            }
        }
    }

    /// Applies one commit's events inside a savepoint: an event the read model cannot hold (a value the
    /// database refuses) is quarantined instead of stopping the projection for good.
    async fn apply_isolated(
        &self,
        tx: &mut Transaction<'_>,
        reader: &str,
        sequence: u64,
        subject: &str,
        events: &[Recorded<<P::Aggregate as Aggregate>::Event>],
    ) -> Result<(), ProjectionError> {
        let savepoint = tx.savepoint("commit").await?;
        let outcome = self.projection.apply_commit(&savepoint, events).await;
        let reason = match outcome {
            Ok(()) => return Ok(savepoint.commit().await?),
            Err(e) => refusal(&e).ok_or(e)?,
        };
        savepoint.rollback().await?;
        let event_ids: Vec<String> = events.iter().map(|e| e.meta.id.clone()).collect();
        let reason = StoreError::Corrupt {
            sequence,
            source: reason.into(),
        };
        quarantine(tx, reader, sequence, subject, &event_ids, &reason).await
    }

    async fn checkpoint(&self, target: &Target) -> Result<(u64, i64), ProjectionError> {
        let client = self.pool.get().await?;
        let name = target.reader(&self.projection);
        client
            .execute(
                "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&name],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT sequence, generation FROM projection_checkpoints WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok((row.get::<_, i64>(0) as u64, row.get(1)))
    }
}

#[async_trait]
impl<P: Projection> RunProjection for Projector<P> {
    fn name(&self) -> &'static str {
        self.projection.name()
    }

    async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                r = self.follow(&Target::Live, None) => r,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(ProjectionError::Superseded(name)) => {
                    info!(name, "projection rebuilt elsewhere; restarting")
                }
                Err(e) => {
                    error!(projection = self.projection.name(), error = %e, "projection failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    // Capped low: a projector waiting out an outage that has ended delays every read-your-write.
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn catch_up(&self) -> Result<u64, ProjectionError> {
        let end = self.log.last_sequence().await?;
        self.reach(&Target::Live, end).await?;
        Ok(end)
    }

    async fn rebuild(&self) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        // One rebuild of a projection at a time: a session lock, which a crash releases with its
        // connection.
        let guard = self.pool.get().await?;
        let key = format!("prism-rebuild:{name}");
        let locked: bool = guard
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
            .await?
            .get(0);
        if !locked {
            return Err(ProjectionError::RebuildUnderWay(name.into()));
        }
        let rebuilt = self.rebuild_aside().await;
        guard
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
            .await?;
        rebuilt
    }
}

/// Where a projector writes: the live tables, or the shadow copies a rebuild fills.
enum Target {
    Live,
    Shadow {
        /// The checkpoint row's name and the quarantine's reader: `<name>~rebuild`.
        reader: String,
        /// The shadow schema, then the live one.
        search_path: String,
    },
}

impl Target {
    fn reader<'a>(&'a self, projection: &'a impl Projection) -> &'a str {
        match self {
            Self::Live => projection.name(),
            Self::Shadow { reader, .. } => reader,
        }
    }
}

/// A name quoted for SQL.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table's name quoted for SQL, qualified by its schema.
fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

impl<P: Projection> Projector<P> {
    /// Applies the log to `target` up to `end`.
    async fn reach(&self, target: &Target, end: u64) -> Result<(), ProjectionError> {
        // `follow` also returns when NATS reconnects; go on until the end is really reached.
        while self.checkpoint(target).await?.0 < end {
            self.follow(target, Some(end)).await?;
        }
        Ok(())
    }

    /// Rebuilds without downtime: replays the whole log into shadow copies of the projection's
    /// tables while the live ones go on serving and following the log, then makes the live tables
    /// hold exactly what the copies hold, with the checkpoint, in one transaction.
    ///
    /// The swap applies the difference instead of renaming tables: the live tables keep their
    /// triggers (the read cache's change announcements), the foreign keys other read models hold
    /// to them and their index names, readers never wait for a lock, and only rows that differ
    /// change (and are announced).
    async fn rebuild_aside(&self) -> Result<u64, ProjectionError> {
        let name = self.projection.name();
        let mut client = self.pool.get().await?;
        let live: String = client.query_one("SELECT current_schema()", &[]).await?.get(0);
        let shadow = format!("prism_rebuild_{name}");
        let target = Target::Shadow {
            reader: format!("{name}~rebuild"),
            search_path: format!("{}, {}", quote(&shadow), quote(&live)),
        };
        let reader = target.reader(&self.projection).to_owned();
        let tx = client.transaction().await?;
        let schema = quote(&shadow);
        tx.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await?;
        for table in self.projection.tables() {
            // Constraints and indexes, not foreign keys: the copies are filled in log order, and
            // checked against the live tables' keys when the difference is applied.
            tx.batch_execute(&format!(
                "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)",
                qualified(&shadow, table),
                qualified(&live, table)
            ))
            .await?;
        }
        tx.execute("DELETE FROM projection_checkpoints WHERE name = $1", &[&reader])
            .await?;
        tx.execute("DELETE FROM quarantine WHERE reader = $1", &[&reader])
            .await?;
        // A projection that has never run has no live checkpoint yet: the swap moves it.
        tx.execute(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await?;
        tx.commit().await?;
        info!(name, "rebuilding into shadow tables from sequence 1");

        let end = self.log.last_sequence().await?;
        self.reach(&target, end).await?;

        // Hold the live checkpoint: the live projector waits, and the shadow catches up with it.
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "SELECT sequence FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await?;
        let live_at = row.get::<_, i64>(0) as u64;
        self.reach(&target, live_at).await?;
        let built_at = self.checkpoint(&target).await?.0;
        let mut shapes = Vec::new();
        for table in self.projection.tables() {
            shapes.push(Shape::of(&tx, &live, &shadow, table).await?);
        }
        // Children first (the order of `tables()`) when deleting, parents first when inserting.
        for shape in &shapes {
            tx.batch_execute(&shape.delete_missing()).await?;
        }
        for shape in shapes.iter().rev() {
            tx.batch_execute(&shape.upsert_all()).await?;
        }
        tx.execute(
            "UPDATE projection_checkpoints SET sequence = $2, generation = generation + 1, updated_at = now()
             WHERE name = $1",
            &[&name, &(built_at as i64)],
        )
        .await?;
        tx.execute("DELETE FROM quarantine WHERE reader = $1", &[&name])
            .await?;
        tx.execute(
            "UPDATE quarantine SET reader = $1 WHERE reader = $2",
            &[&name, &reader],
        )
        .await?;
        tx.execute("DELETE FROM projection_checkpoints WHERE name = $1", &[&reader])
            .await?;
        tx.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
        tx.commit().await?;
        info!(
            name,
            sequence = built_at,
            "rebuilt; the live tables now hold the rebuild"
        );
        Ok(built_at)
    }
}

/// A table of a projection as the swap needs it: its live and shadow names, its columns and those
/// of its primary key (all quoted), read from the catalogue once.
struct Shape {
    live: String,
    shadow: String,
    columns: Vec<String>,
    key: Vec<String>,
}

impl Shape {
    async fn of(
        tx: &Transaction<'_>,
        live: &str,
        shadow: &str,
        table: &str,
    ) -> Result<Self, ProjectionError> {
        let relation = qualified(live, table);
        let columns = tx
            .query(
                "SELECT attname::text FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
                 ORDER BY attnum",
                &[&relation],
            )
            .await?;
        let key = tx
            .query(
                "SELECT a.attname::text FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY a.attnum",
                &[&relation],
            )
            .await?;
        let name = |row: &tokio_postgres::Row| quote(&row.get::<_, String>(0));
        Ok(Self {
            live: relation,
            shadow: qualified(shadow, table),
            columns: columns.iter().map(name).collect(),
            key: key.iter().map(name).collect(),
        })
    }

    /// Deletes the live rows the rebuild does not have (by primary key; all of them without one).
    fn delete_missing(&self) -> String {
        let Self {
            live, shadow, key, ..
        } = self;
        if key.is_empty() {
            return format!("DELETE FROM {live}");
        }
        let same = joined(key, " AND ", |k| format!("s.{k} = l.{k}"));
        format!("DELETE FROM {live} AS l WHERE NOT EXISTS (SELECT 1 FROM {shadow} AS s WHERE {same})")
    }

    /// Inserts the rebuild's rows, and updates the live rows that differ from them.
    fn upsert_all(&self) -> String {
        let Self {
            live,
            shadow,
            columns,
            key,
        } = self;
        let list = columns.join(", ");
        let insert = format!("INSERT INTO {live} AS l ({list}) SELECT {list} FROM {shadow}");
        let rest: Vec<&String> = columns.iter().filter(|c| !key.contains(c)).collect();
        if key.is_empty() {
            return insert;
        }
        let key = key.join(", ");
        if rest.is_empty() {
            return format!("{insert} ON CONFLICT ({key}) DO NOTHING");
        }
        let set = joined(&rest, ", ", |c| format!("{c} = EXCLUDED.{c}"));
        let old = joined(&rest, ", ", |c| format!("l.{c}"));
        let new = joined(&rest, ", ", |c| format!("EXCLUDED.{c}"));
        format!(
            "{insert} ON CONFLICT ({key}) DO UPDATE SET {set} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
        )
    }
}

/// Each of `items` written by `each`, separated by `separator`.
fn joined<T>(items: &[T], separator: &str, each: impl Fn(&T) -> String) -> String {
    items.iter().map(each).collect::<Vec<_>>().join(separator)
}

/// A batch's commits by aggregate (their subject), each aggregate's in log order.
fn lanes<'c>(batch: &[&'c Checked]) -> Vec<Vec<&'c Checked>> {
    let mut lanes: Vec<Vec<&Checked>> = Vec::new();
    let mut lane_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for &checked in batch {
        let subject = match checked {
            Checked::Verified(commit) => commit.commit().subject.as_str(),
            Checked::Quarantined { commit, .. } => commit.subject.as_str(),
        };
        let lane = *lane_of.entry(subject).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(checked);
    }
    lanes
}

/// Whether a batch's commits each get a savepoint.
#[derive(Debug, Clone, Copy)]
enum Isolate {
    No,
    EachCommit,
}

/// Why a commit cannot be applied, when the commit itself is the problem (so it is quarantined, and
/// retrying would never help): a value the database refuses, or an event the read model cannot use
/// (an aggregate id it cannot key on, …). `None` for a failure of the infrastructure.
fn refusal(e: &ProjectionError) -> Option<String> {
    match e {
        ProjectionError::Database(e) if is_data_error(e) => Some(data_error(e)),
        ProjectionError::Corrupt { what, source } => Some(format!("{what} cannot be read: {source}")),
        _ => None,
    }
}

/// SQLSTATE 25P02: a statement sent after another failed in the same transaction.
fn is_aborted(e: &ProjectionError) -> bool {
    matches!(e, ProjectionError::Database(e) if e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION))
}

/// SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the event's content,
/// not the database's health, is the problem, so retrying can never help.
fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

/// What PostgreSQL said about a refused value: its SQLSTATE and message (the client error's own text
/// is only "db error").
fn data_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "the read model refused it: {} ({})",
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

fn ids(commit: &prism_store::StoredCommit) -> Vec<String> {
    commit.events.iter().map(|e| e.id.clone()).collect()
}

/// Records a commit this projection will not apply, and says so loudly; the projection goes on.
pub(crate) async fn quarantine(
    tx: &Transaction<'_>,
    reader: &str,
    sequence: u64,
    subject: &str,
    event_ids: &[String],
    reason: &StoreError,
) -> Result<(), ProjectionError> {
    error!(reader, sequence, subject, %reason, "quarantined a commit: it is not applied");
    tx.execute(
        "INSERT INTO quarantine (reader, sequence, subject, event_ids, reason) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (reader, sequence) DO NOTHING",
        &[
            &reader,
            &(sequence as i64),
            &subject,
            &event_ids,
            &reason.to_string(),
        ],
    )
    .await?;
    Ok(())
}

/// Empties a projection's tables and resets its checkpoint (and forgets what it quarantined) in one
/// transaction; the next projector run (or [`RunProjection::catch_up`]) replays the log from its
/// start. Projectors of the old generation notice and restart. Readers see the tables empty until
/// the replay catches up: [`RunProjection::rebuild`] replays aside instead, and is what operators use.
pub async fn reset(pool: &Pool, projection: &impl Projection) -> Result<(), ProjectionError> {
    let name = projection.name();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .await?;
    tx.query_one(
        "SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
        &[&name],
    )
    .await?;
    for table in projection.tables() {
        // Table names are static strings owned by the projection, never user input.
        tx.batch_execute(&format!("TRUNCATE {table} CASCADE")).await?;
    }
    tx.execute("DELETE FROM quarantine WHERE reader = $1", &[&name])
        .await?;
    tx.execute(
        "UPDATE projection_checkpoints SET sequence = 0, generation = generation + 1, updated_at = now() WHERE name = $1",
        &[&name],
    )
    .await?;
    tx.commit().await?;
    info!(name, "projection reset; replaying from sequence 1");
    Ok(())
}
