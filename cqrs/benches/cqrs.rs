//! The same cqrs-es aggregate through `CqrsFramework` on two event stores, in one run: the JetStream
//! store of this crate (nats-server with `sync_interval: always`: fsync before every
//! acknowledgement) and postgres-es (PostgreSQL with its default `fsync = on`,
//! `synchronous_commit = on`).
//!
//! A command is what a cqrs-es application does for every request: `CqrsFramework::execute` loads the
//! aggregate, handles the command, and commits one event. postgres-es runs in its event-sourced mode
//! (`postgres_cqrs`: every load reads the whole history); the JetStream store keeps aggregate states
//! between commands (its default), so a load is one round trip that checks the kept state against
//! the subject's last stream sequence.
//!
//! Run with `cargo bench -p prism-cqrs --bench cqrs`. Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case and store (default 5); the median round is reported.
//! * `PRISM_BENCH_COMMANDS`: commands per aggregate and round (default 50). Every round starts on
//!   fresh aggregates, so histories grow from 1 to this many + 1 events in every round, alike for both
//!   stores.
//! * `PRISM_BENCH_PG_POOL`: connections in postgres-es's pool (default 10, what postgres-es's
//!   `default_postgress_pool` opens).
//!
//! Besides the rates it prints the CPU time (user + system, from `/proc`) per command of this process
//! and of the server (nats-server; the postmaster and its children). A round stops after 15 s even if
//! it has not made its commands (marked `*`). It exits non-zero only when something fails.

#[path = "../tests/support/account.rs"]
mod account;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{CqrsFramework, EventStore};
use postgres_es::PostgresEventRepository;
use prism_cqrs::{JetStreamEventStore, StoreConfig};
use prism_embedded::{NatsServer, Postgres, find_nats_server};
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinSet;

use account::{Account, AccountCommand};
use prism_benchkit::{cores, cpu_model, median, nats_server_pid, thousands};

const CONCURRENCY: usize = 64;
const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_COMMANDS: usize = 50;
/// What postgres-es's `default_postgress_pool` opens.
const DEFAULT_PG_POOL: u32 = 10;
/// A round stops here even if it has not made its commands yet (its rate is then what it did).
const ROUND_LIMIT: Duration = Duration::from_secs(15);
/// Untimed work per case and store before the rounds: connections, caches and the servers warm up.
const WARMUP: Duration = Duration::from_millis(500);
/// The tables postgres-es needs.
const POSTGRES_ES_SCHEMA: &str = include_str!("../tests/support/postgres_es.sql");

#[derive(Debug)]
struct Settings {
    rounds: usize,
    commands: usize,
    pg_pool: u32,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number =
            |name: &str, default: usize| prism_benchkit::env_count(name, default).map_err(anyhow::Error::msg);
        Ok(Self {
            rounds: number("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS)?,
            commands: number("PRISM_BENCH_COMMANDS", DEFAULT_COMMANDS)?,
            pg_pool: u32::try_from(number("PRISM_BENCH_PG_POOL", DEFAULT_PG_POOL as usize)?)?,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary = find_nats_server()?;
    let nats_version = command_output(&binary, "--version")?;
    let nats = NatsServer::start_temp().await?;
    let pg = EmbeddedPostgres::start().await;
    let result = match pg {
        Ok(pg) => {
            let result = run(&settings, &binary, &nats_version, &nats, &pg).await;
            pg.stop().await?;
            result
        }
        Err(e) => Err(e),
    };
    drop(nats);
    result
}

async fn run(
    settings: &Settings,
    nats_binary: &Path,
    nats_version: &str,
    nats: &NatsServer,
    pg: &EmbeddedPostgres,
) -> anyhow::Result<()> {
    // A saturated server can take longer than the default 5 s to answer one request; a benchmark
    // waits rather than fails.
    let config = StoreConfig {
        request_timeout: Duration::from_secs(60),
        ..StoreConfig::default()
    };
    let jetstream = JetStreamEventStore::<Account>::connect(&nats.url(), config).await?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.pg_pool)
        .connect(&pg.url)
        .await?;
    sqlx::raw_sql(POSTGRES_ES_SCHEMA).execute(&pool).await?;
    let pool_ref = &pool;
    let pg_settings: Vec<String> = ["server_version", "fsync", "synchronous_commit", "wal_sync_method"]
        .into_iter()
        .map(|name| async move {
            let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
                .fetch_one(pool_ref)
                .await?;
            anyhow::Ok(format!("{name}={value}"))
        })
        .collect::<futures::future::JoinAll<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    println!(
        "nats-server: {} ({nats_version}), sync_interval: always",
        nats_binary.display()
    );
    println!(
        "postgres: {} ({}), pool of {} connections",
        pg.bin_dir.display(),
        pg_settings.join(", "),
        settings.pg_pool
    );
    println!(
        "stores: prism-cqrs JetStreamEventStore (keeps up to {} aggregate states, each checked against \
         the subject's last sequence per load); postgres-es PersistedEventStore::new_event_store (reads \
         the whole history per load)",
        thousands(prism_cqrs::DEFAULT_CACHE_CAPACITY as f64)
    );
    println!(
        "machine: {} cores, {}; load average at start: {}",
        cores(),
        cpu_model(),
        load_average()
    );
    println!(
        "{} rounds per case, stores interleaved; median round reported; {} commands per aggregate and round",
        settings.rounds, settings.commands
    );

    let ours = Side {
        cqrs: Arc::new(CqrsFramework::new(jetstream, vec![], ())),
        cpu: CpuMeter {
            server_pids: ServerPids::Nats(nats_server_pid(nats.store_dir())),
        },
    };
    let theirs = Side {
        cqrs: Arc::new(CqrsFramework::new(
            PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone())),
            vec![],
            (),
        )),
        cpu: CpuMeter {
            server_pids: ServerPids::Postmaster(pg.postmaster_pid()),
        },
    };

    for case in [Case::Sequential, Case::Concurrent] {
        ours.warm_up(case).await?;
        theirs.warm_up(case).await?;
    }
    let mut report = Report::default();
    for round in 0..settings.rounds {
        // Alternate which store goes first so a drift in the machine hits both alike.
        let ours_first = round % 2 == 0;
        for case in [Case::Sequential, Case::Concurrent] {
            for side_is_ours in [ours_first, !ours_first] {
                if side_is_ours {
                    let sample = ours.round(case, settings.commands).await?;
                    report.rates_mut(case, true).push(sample);
                } else {
                    let sample = theirs.round(case, settings.commands).await?;
                    report.rates_mut(case, false).push(sample);
                }
            }
        }
    }
    report.print(settings);
    println!("load average at end: {}", load_average());
    pool.close().await;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// One aggregate, one command after another.
    Sequential,
    /// [`CONCURRENCY`] tasks, each sending commands to its own aggregate one after another.
    Concurrent,
}

impl Case {
    fn aggregates(self) -> usize {
        match self {
            Case::Sequential => 1,
            Case::Concurrent => CONCURRENCY,
        }
    }
}

/// One store behind `CqrsFramework`.
struct Side<S: EventStore<Account>> {
    cqrs: Arc<CqrsFramework<Account, S>>,
    cpu: CpuMeter,
}

impl<S> Side<S>
where
    S: EventStore<Account> + 'static,
    S::AC: Send,
{
    /// Runs `case` in small rounds for [`WARMUP`], untimed.
    async fn warm_up(&self, case: Case) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < WARMUP {
            self.round(case, 10).await?;
        }
        Ok(())
    }

    /// Opens fresh aggregates (untimed), then times `commands` deposits on each.
    async fn round(&self, case: Case, commands: usize) -> anyhow::Result<Sample> {
        let ids: Vec<String> = (0..case.aggregates())
            .map(|_| format!("acc-{}", uuid::Uuid::now_v7().simple()))
            .collect();
        self.for_each(&ids, |cqrs, id| async move {
            let open = AccountCommand::Open {
                owner: "benchmark".into(),
            };
            cqrs.execute(&id, open).await?;
            anyhow::Ok(1)
        })
        .await?;

        let before = self.cpu.now();
        let start = Instant::now();
        let done = self
            .for_each(&ids, move |cqrs, id| async move {
                let mut done = 0;
                while done < commands && start.elapsed() < ROUND_LIMIT {
                    cqrs.execute(&id, AccountCommand::Deposit { amount: 1 }).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
            .await?;
        let elapsed = start.elapsed();
        let cpu = self.cpu.since(before);
        let per_command = |seconds: Option<f64>| seconds.map(|s| s * 1e6 / done.max(1) as f64);
        Ok(Sample {
            rate: done as f64 / elapsed.as_secs_f64(),
            cut: done < commands * ids.len(),
            client_cpu: per_command(cpu.client),
            server_cpu: per_command(cpu.server),
        })
    }

    /// Runs `work` once per id, all at once, and adds up what each returns.
    async fn for_each<F, Fut>(&self, ids: &[String], work: F) -> anyhow::Result<usize>
    where
        F: Fn(Arc<CqrsFramework<Account, S>>, String) -> Fut,
        Fut: Future<Output = anyhow::Result<usize>> + Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for id in ids {
            tasks.spawn(work(self.cqrs.clone(), id.clone()));
        }
        let mut total = 0;
        while let Some(done) = tasks.join_next().await {
            total += done??;
        }
        Ok(total)
    }
}

/// One timed round as reported.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Commands per second.
    rate: f64,
    /// [`ROUND_LIMIT`] stopped the round before its planned commands.
    cut: bool,
    /// CPU time (user + system) per command, in µs, of this process and of the server.
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
}

/// One case's timed rounds on one store.
#[derive(Debug, Default)]
struct Rates(Vec<Sample>);

impl Rates {
    fn push(&mut self, sample: Sample) {
        self.0.push(sample);
    }

    fn any_cut(&self) -> bool {
        self.0.iter().any(|s| s.cut)
    }

    fn median(&self) -> f64 {
        median(self.0.iter().map(|s| s.rate).collect()).unwrap_or(0.0)
    }

    /// Median client and server CPU per command, `-` where unknown.
    fn cpu(&self) -> (String, String) {
        let show = |values: Vec<f64>| median(values).map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        (
            show(self.0.iter().filter_map(|s| s.client_cpu).collect()),
            show(self.0.iter().filter_map(|s| s.server_cpu).collect()),
        )
    }

    fn rounds(&self) -> String {
        self.0
            .iter()
            .map(|s| thousands(s.rate) + if s.cut { "*" } else { "" })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Default)]
struct Report {
    ours_sequential: Rates,
    theirs_sequential: Rates,
    ours_concurrent: Rates,
    theirs_concurrent: Rates,
}

impl Report {
    fn rates_mut(&mut self, case: Case, ours: bool) -> &mut Rates {
        match (case, ours) {
            (Case::Sequential, true) => &mut self.ours_sequential,
            (Case::Sequential, false) => &mut self.theirs_sequential,
            (Case::Concurrent, true) => &mut self.ours_concurrent,
            (Case::Concurrent, false) => &mut self.theirs_concurrent,
        }
    }

    fn print(&self, settings: &Settings) {
        println!();
        println!(
            "{:<28} {:>14} {:>15} {:>16}",
            "case", "jetstream cmd/s", "postgres-es cmd/s", "ratio jetstream/pg"
        );
        let row = |case: &str, ours: &Rates, theirs: &Rates| {
            let ratio = ours.median() / theirs.median();
            println!(
                "{case:<28} {:>15} {:>17} {ratio:>18.2}",
                thousands(ours.median()),
                thousands(theirs.median()),
            );
        };
        row(
            "sequential, 1 aggregate",
            &self.ours_sequential,
            &self.theirs_sequential,
        );
        row(
            "64 concurrent aggregates",
            &self.ours_concurrent,
            &self.theirs_concurrent,
        );
        println!(
            "per round: sequential 1 x {} commands, concurrent {CONCURRENCY} x {} commands (histories 1 to {} events)",
            settings.commands,
            settings.commands,
            settings.commands + 1
        );
        println!(
            "CPU per command, µs (user+system, median round): {:>10} {:>10} {:>10} {:>10}",
            "js client", "js server", "pg client", "pg server"
        );
        let cpu_row = |case: &str, ours: &Rates, theirs: &Rates| {
            let ((oc, os), (tc, ts)) = (ours.cpu(), theirs.cpu());
            println!("  {case:<46} {oc:>10} {os:>10} {tc:>10} {ts:>10}");
        };
        cpu_row(
            "sequential, 1 aggregate",
            &self.ours_sequential,
            &self.theirs_sequential,
        );
        cpu_row(
            "64 concurrent aggregates",
            &self.ours_concurrent,
            &self.theirs_concurrent,
        );
        println!("rounds, commands/s in run order:");
        println!("  jetstream sequential     {}", self.ours_sequential.rounds());
        println!("  postgres-es sequential   {}", self.theirs_sequential.rounds());
        println!("  jetstream concurrent     {}", self.ours_concurrent.rounds());
        println!("  postgres-es concurrent   {}", self.theirs_concurrent.rounds());
        let all = [
            &self.ours_sequential,
            &self.theirs_sequential,
            &self.ours_concurrent,
            &self.theirs_concurrent,
        ];
        if all.iter().any(|r| r.any_cut()) {
            println!(
                "  * stopped at the {} s round limit before its planned commands",
                ROUND_LIMIT.as_secs()
            );
        }
    }
}

/// A PostgreSQL cluster of the benchmark's own, with default settings, in a temporary directory.
#[derive(Debug)]
struct EmbeddedPostgres {
    server: Postgres,
    url: String,
    bin_dir: PathBuf,
    dir: PathBuf,
}

impl EmbeddedPostgres {
    async fn start() -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("prism-bench-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // As root the server runs as `nobody`, which must be able to enter this directory.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let server = match Postgres::start(&dir.join("data"), None).await {
            Ok(server) => server,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server.url("postgres"))
            .await?;
        sqlx::raw_sql("CREATE DATABASE bench").execute(&admin).await?;
        admin.close().await;
        let url = server.url("bench");
        Ok(Self {
            bin_dir: server.bin_dir().to_owned(),
            server,
            url,
            dir,
        })
    }

    fn postmaster_pid(&self) -> Option<String> {
        let pid_file = std::fs::read_to_string(self.server.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().next().map(|l| l.trim().to_owned())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await?;
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("cannot remove {}", self.dir.display()))?;
        Ok(())
    }
}

/// CPU seconds (user + system) used so far by this process and by the server's processes.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    client: Option<f64>,
    server: Option<f64>,
}

#[derive(Debug)]
enum ServerPids {
    Nats(Option<String>),
    /// The postmaster; its children (one backend per connection, WAL writer, …) are added up with it.
    Postmaster(Option<String>),
}

#[derive(Debug)]
struct CpuMeter {
    server_pids: ServerPids,
}

impl CpuMeter {
    fn now(&self) -> CpuTimes {
        let server = match &self.server_pids {
            ServerPids::Nats(pid) => pid.as_deref().and_then(process_cpu_seconds),
            ServerPids::Postmaster(pid) => pid.as_deref().and_then(process_tree_cpu_seconds),
        };
        CpuTimes {
            client: process_cpu_seconds("self"),
            server,
        }
    }

    fn since(&self, before: CpuTimes) -> CpuTimes {
        let now = self.now();
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CpuTimes {
            client: diff(now.client, before.client),
            server: diff(now.server, before.server),
        }
    }
}

/// `(ppid, utime + stime in seconds)` from `/proc/<pid>/stat`. Linux reports times in USER_HZ ticks,
/// which is 100 per second on every architecture it runs on.
fn process_stat(pid: &str) -> Option<(String, f64)> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); ppid is field 4, utime 14.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ppid = fields.get(1)?.to_string();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((ppid, (utime + stime) / USER_HZ))
}

fn process_cpu_seconds(pid: &str) -> Option<f64> {
    process_stat(pid).map(|(_, cpu)| cpu)
}

/// CPU seconds of `pid` and of its live children (PostgreSQL's backends are children of the
/// postmaster, and the benchmark's pool keeps its connections for the whole run).
fn process_tree_cpu_seconds(pid: &str) -> Option<f64> {
    let own = process_cpu_seconds(pid)?;
    let children: f64 = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (ppid, cpu) = process_stat(&name)?;
            (ppid == pid).then_some(cpu)
        })
        .sum();
    Some(own + children)
}

fn command_output(binary: &Path, arg: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary)
        .arg(arg)
        .output()
        .with_context(|| format!("cannot run {} {arg}", binary.display()))?;
    if !output.status.success() {
        bail!("{} {arg} failed", binary.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows in every rate.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}
