//! Commit throughput: commands through [`Repository::execute`] next to raw JetStream publishes of the
//! same size, with the same headers, on the same nats-server.
//!
//! A command commit is one JetStream publish plus client-side work (decide, envelope, hash chain,
//! JSON, cache). The raw publish is the same message without that work, so it is the ceiling a
//! command can reach on a given server; the ratio commands/raw is what the code costs.
//!
//! Run with `cargo bench -p prism-store --bench commit`. Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 5); the median round is reported.
//! * `PRISM_BENCH_N`: commits per round and case (default: sized so a raw round takes about 1.5 s).
//! * `PRISM_BENCH_SYNC`: `always`, `default` or `both` (the default): which server modes to measure.
//!
//! Besides the rates it prints the CPU time (user + system, from `/proc`) per commit of this process
//! and of nats-server, which says where a ratio below 1 goes. A round stops after 15 s even if it has
//! not made its commits, so a case that slows down cannot stretch the run without bound (marked `*`).
//!
//! It exits non-zero only when something fails, never because a ratio misses its target.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use prism_benchkit::{cores, cpu_model, median, nats_server_pid, process_cpu_seconds, thousands};
use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_embedded::{NatsOptions, NatsServer, find_nats_server};
use prism_store::{CommandRequest, EventLog as _, EventStore, Metadata, Repository, StoreConfig};
use tokio::task::JoinSet;

/// What `EventStore::append` sends as `Content-Type`.
const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
const CONCURRENCY: usize = 64;
const DEFAULT_ROUNDS: usize = 5;
/// A raw round is sized to take about this long.
const ROUND_TARGET: Duration = Duration::from_millis(1500);
/// A round stops here even if it has not made its commits yet (its rate is then what it did in this
/// time), so a case that slows down as history grows cannot stretch the run without bound.
const ROUND_LIMIT: Duration = Duration::from_secs(15);
/// Untimed work per case before sizing the rounds: connections, caches and the server's store warm up.
const WARMUP: Duration = Duration::from_millis(500);
/// Cold commands in the warm-up that sizes the cold rounds.
const COLD_WARMUP: usize = 64;
const SEQUENTIAL_TARGET: f64 = 0.80;
const CONCURRENT_TARGET: f64 = 0.70;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncMode {
    Always,
    Default,
}

impl SyncMode {
    fn label(self) -> &'static str {
        match self {
            SyncMode::Always => "sync_interval=always (fsync before every ack)",
            SyncMode::Default => "sync_interval=default (2 min; writes acked before fsync)",
        }
    }
}

#[derive(Debug)]
struct Settings {
    rounds: usize,
    n: Option<usize>,
    modes: Vec<SyncMode>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number = |name: &str| -> anyhow::Result<Option<usize>> {
            match std::env::var(name) {
                Ok(v) => {
                    let n: usize = v.trim().parse().with_context(|| format!("{name}={v:?}"))?;
                    ensure!(n > 0, "{name} must be at least 1");
                    Ok(Some(n))
                }
                Err(_) => Ok(None),
            }
        };
        let modes = match std::env::var("PRISM_BENCH_SYNC").as_deref() {
            Err(_) | Ok("both") => vec![SyncMode::Always, SyncMode::Default],
            Ok("always") => vec![SyncMode::Always],
            Ok("default") => vec![SyncMode::Default],
            Ok(other) => bail!("PRISM_BENCH_SYNC={other:?}: expected always, default or both"),
        };
        Ok(Self {
            rounds: number("PRISM_BENCH_ROUNDS")?.unwrap_or(DEFAULT_ROUNDS),
            n: number("PRISM_BENCH_N")?,
            modes,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary = find_nats_server()?;
    let version = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {} --version", binary.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    println!("nats-server: {} ({version})", binary.display());
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "{} rounds per case, raw and command rounds interleaved; median round reported",
        settings.rounds
    );

    for sync in &settings.modes {
        let server = Server::start(*sync).await?;
        let result = measure(&server.nats, &settings).await;
        server.stop().await?;
        let report = result?;
        report.print(*sync, &version);
    }
    Ok(())
}

/// A nats-server with its store directory, removed afterwards when the benchmark created it.
#[derive(Debug)]
struct Server {
    nats: NatsServer,
    dir: Option<DirGuard>,
}

impl Server {
    async fn start(sync: SyncMode) -> anyhow::Result<Self> {
        match sync {
            // The test fixture: temporary directory, `sync_interval: always`.
            SyncMode::Always => Ok(Self {
                nats: NatsServer::start_temp().await?,
                dir: None,
            }),
            SyncMode::Default => {
                let dir = DirGuard::create()?;
                let nats = NatsServer::start(NatsOptions {
                    store_dir: dir.0.clone(),
                    port: None,
                    sync_always: false,
                })
                .await?;
                Ok(Self { nats, dir: Some(dir) })
            }
        }
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.nats.stop().await?;
        drop(self.dir.take());
        Ok(())
    }
}

#[derive(Debug)]
struct DirGuard(PathBuf);

impl DirGuard {
    fn create() -> anyhow::Result<Self> {
        let name = format!("prism-bench-nats-{}", uuid::Uuid::now_v7().simple());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy)]
struct Round {
    commits: usize,
    elapsed: Duration,
}

impl Round {
    fn rate(self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }
}

/// One timed round as reported.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Commits per second.
    rate: f64,
    /// [`ROUND_LIMIT`] stopped the round before its planned commits.
    cut: bool,
    /// CPU time (user + system) per commit, in µs, of this process and of nats-server.
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
}

/// One case's timed rounds.
#[derive(Debug, Default)]
struct Rates(Vec<Sample>);

impl Rates {
    fn push(&mut self, round: Round, planned: usize, cpu: CpuTimes) {
        let per_commit = |seconds: Option<f64>| seconds.map(|s| s * 1e6 / round.commits.max(1) as f64);
        self.0.push(Sample {
            rate: round.rate(),
            cut: round.commits < planned,
            client_cpu: per_commit(cpu.client),
            server_cpu: per_commit(cpu.server),
        });
    }

    fn any_cut(&self) -> bool {
        self.0.iter().any(|s| s.cut)
    }

    fn median(&self) -> f64 {
        median(self.0.iter().map(|s| s.rate).collect()).unwrap_or(0.0)
    }

    /// Median client and server CPU per commit, `-` where unknown.
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

/// CPU seconds (user + system) used so far by this process and by nats-server, read from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    client: Option<f64>,
    server: Option<f64>,
}

#[derive(Debug)]
struct CpuMeter {
    server_pid: Option<String>,
}

impl CpuMeter {
    fn new(server: &NatsServer) -> Self {
        Self {
            server_pid: nats_server_pid(server.store_dir()),
        }
    }

    fn now(&self) -> CpuTimes {
        CpuTimes {
            client: process_cpu_seconds("self"),
            server: self.server_pid.as_deref().and_then(process_cpu_seconds),
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

#[derive(Debug)]
struct Report {
    payload_bytes: usize,
    n_sequential: usize,
    per_task: usize,
    n_cold: usize,
    /// Events in the sequential aggregate before the first and after the last timed round.
    history: (u64, u64),
    raw_sequential: Rates,
    command_sequential: Rates,
    raw_concurrent: Rates,
    command_concurrent: Rates,
    cold: Rates,
}

impl Report {
    fn print(&self, sync: SyncMode, version: &str) {
        let version = version.strip_prefix("nats-server: ").unwrap_or(version);
        println!();
        println!("mode: {} (nats-server {version})", sync.label());
        println!(
            "{:<36} {:>13} {:>12} {:>7}   target",
            "case", "raw publish/s", "commands/s", "ratio"
        );
        let row = |case: &str, raw: &Rates, command: &Rates, target: Option<f64>| {
            // Judged as printed (two decimals), so the verdict never contradicts the number shown.
            let ratio = (command.median() / raw.median() * 100.0).round() / 100.0;
            let target = match target {
                Some(t) if ratio >= t => format!(">= {t:.2}  met"),
                Some(t) => format!(">= {t:.2}  MISSED"),
                None => "none (information)".to_owned(),
            };
            println!(
                "{case:<36} {:>13} {:>12} {ratio:>7.2}   {target}",
                thousands(raw.median()),
                thousands(command.median()),
            );
        };
        row(
            "sequential, 1 client",
            &self.raw_sequential,
            &self.command_sequential,
            Some(SEQUENTIAL_TARGET),
        );
        row(
            "64 concurrent aggregates",
            &self.raw_concurrent,
            &self.command_concurrent,
            Some(CONCURRENT_TARGET),
        );
        row(
            "cold, 1 client (load+decide+commit)",
            &self.raw_sequential,
            &self.cold,
            None,
        );
        println!(
            "payload {} B; per round: sequential {} commits, concurrent {CONCURRENCY} x {} commits, cold {} commands",
            self.payload_bytes,
            thousands(self.n_sequential as f64),
            thousands(self.per_task as f64),
            thousands(self.n_cold as f64),
        );
        println!(
            "sequential aggregate: {} events before the first timed round, {} after the last",
            thousands(self.history.0 as f64),
            thousands(self.history.1 as f64),
        );
        println!(
            "CPU per commit, µs (user+system, median round): {:>12} {:>12} {:>12} {:>12}",
            "raw client", "raw server", "cmd client", "cmd server"
        );
        let cpu_row = |case: &str, raw: &Rates, command: &Rates| {
            let ((raw_client, raw_server), (command_client, command_server)) = (raw.cpu(), command.cpu());
            println!(
                "  {case:<46} {raw_client:>12} {raw_server:>12} {command_client:>12} {command_server:>12}"
            );
        };
        cpu_row(
            "sequential, 1 client",
            &self.raw_sequential,
            &self.command_sequential,
        );
        cpu_row(
            "64 concurrent aggregates",
            &self.raw_concurrent,
            &self.command_concurrent,
        );
        cpu_row("cold (cmd columns)", &self.raw_sequential, &self.cold);
        println!("rounds, commits/s in run order:");
        println!("  raw sequential         {}", self.raw_sequential.rounds());
        println!("  command sequential     {}", self.command_sequential.rounds());
        println!("  raw concurrent         {}", self.raw_concurrent.rounds());
        println!("  command concurrent     {}", self.command_concurrent.rounds());
        println!("  cold                   {}", self.cold.rounds());
        let all = [
            &self.raw_sequential,
            &self.command_sequential,
            &self.raw_concurrent,
            &self.command_concurrent,
            &self.cold,
        ];
        if all.iter().any(|r| r.any_cut()) {
            println!(
                "  * stopped at the {} s round limit before its planned commits",
                ROUND_LIMIT.as_secs()
            );
        }
    }
}

async fn measure(server: &NatsServer, settings: &Settings) -> anyhow::Result<Report> {
    let mut bench = Bench::new(server).await?;
    let cpu = CpuMeter::new(server);

    // Warm up every case, and size the rounds from the warm-up rates.
    let raw_sequential = bench.warm_up(Case::RawSequential).await?;
    bench.warm_up(Case::CommandSequential).await?;
    let raw_concurrent = bench.warm_up(Case::RawConcurrent).await?;
    bench.warm_up(Case::CommandConcurrent).await?;
    let cold = bench.warm_up(Case::Cold).await?;
    let sized = |rate: f64| ((rate * ROUND_TARGET.as_secs_f64()) as usize).max(20);
    let n_sequential = settings.n.unwrap_or_else(|| sized(raw_sequential));
    let per_task = settings
        .n
        .unwrap_or_else(|| sized(raw_concurrent))
        .div_ceil(CONCURRENCY);
    let n_cold = settings.n.unwrap_or_else(|| sized(cold));

    let mut report = Report {
        payload_bytes: bench.payload.len(),
        n_sequential,
        per_task,
        n_cold,
        history: (bench.sequential_version, 0),
        raw_sequential: Rates::default(),
        command_sequential: Rates::default(),
        raw_concurrent: Rates::default(),
        command_concurrent: Rates::default(),
        cold: Rates::default(),
    };
    for round in 0..settings.rounds {
        // Alternate which side goes first so a drift in the machine hits both alike.
        let raw_first = round % 2 == 0;
        for side in [raw_first, !raw_first] {
            if side {
                let before = cpu.now();
                let done = bench.raw_sequential(n_sequential).await?;
                report.raw_sequential.push(done, n_sequential, cpu.since(before));
            } else {
                let before = cpu.now();
                let done = bench.command_sequential(n_sequential).await?;
                report
                    .command_sequential
                    .push(done, n_sequential, cpu.since(before));
            }
        }
        for side in [raw_first, !raw_first] {
            if side {
                let before = cpu.now();
                let done = bench.raw_concurrent(per_task).await?;
                report
                    .raw_concurrent
                    .push(done, per_task * CONCURRENCY, cpu.since(before));
            } else {
                let before = cpu.now();
                let done = bench.command_concurrent(per_task).await?;
                report
                    .command_concurrent
                    .push(done, per_task * CONCURRENCY, cpu.since(before));
            }
        }
        let ids = bench.create_aggregates(n_cold).await?;
        let before = cpu.now();
        let done = bench.cold(&ids).await?;
        report.cold.push(done, n_cold, cpu.since(before));
    }
    report.history.1 = bench.sequential_version;
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Case {
    RawSequential,
    CommandSequential,
    RawConcurrent,
    CommandConcurrent,
    Cold,
}

/// A subject written with raw publishes, and the stream sequence of its last message.
#[derive(Debug)]
struct RawSubject {
    subject: String,
    last: u64,
}

#[derive(Debug)]
struct Bench {
    store: EventStore,
    js: jetstream::Context,
    /// One repository (one cache) shared by every writer, as in one gateway process.
    repo: Arc<Repository<Workspace>>,
    meta: Arc<Metadata>,
    /// Makes every description new, so every update decides one event.
    counter: Arc<AtomicU64>,
    /// A real commit's bytes: the `events` of an update commit loaded back from the stream.
    payload: Bytes,
    sequential: WorkspaceId,
    /// Events in the sequential aggregate so far (its version).
    sequential_version: u64,
    concurrent: Vec<WorkspaceId>,
    raw_sequential: RawSubject,
    raw_concurrent: Vec<RawSubject>,
}

impl Bench {
    async fn new(server: &NatsServer) -> anyhow::Result<Self> {
        let client = async_nats::connect(server.url()).await?;
        // Raw publishes go over the same connection as the store's.
        let js = jetstream::new(client.clone());
        let store = EventStore::open(client, StoreConfig::default()).await?;
        let repo = Arc::new(Repository::<Workspace>::new(store.clone()));
        let meta = Arc::new(Metadata {
            actor: "user:benchmark".into(),
            ..Default::default()
        });
        let counter = Arc::new(AtomicU64::new(0));

        let sequential = WorkspaceId(uuid::Uuid::now_v7());
        create(&repo, sequential, &meta).await?;
        let sequential_version = update(&repo, &sequential, &meta, &counter).await?;
        let subject = store.subject("workspace", &sequential.to_string())?;
        let commits = store.load(&subject).await?;
        let last = commits.last().context("the update was not stored")?;
        let payload = Bytes::from(serde_json::to_vec(&last.events)?);

        let mut bench = Self {
            store,
            js,
            repo,
            meta,
            counter,
            payload,
            sequential,
            sequential_version,
            concurrent: Vec::new(),
            raw_sequential: RawSubject {
                subject: String::new(),
                last: 0,
            },
            raw_concurrent: Vec::new(),
        };
        bench.concurrent = bench.create_aggregates(CONCURRENCY).await?;
        bench.raw_sequential = bench.raw_subject()?;
        bench.raw_concurrent = (0..CONCURRENCY)
            .map(|_| bench.raw_subject())
            .collect::<Result<_, _>>()?;
        Ok(bench)
    }

    /// A fresh subject in the event stream for raw publishes.
    fn raw_subject(&self) -> anyhow::Result<RawSubject> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        Ok(RawSubject {
            subject: self.store.subject("rawbench", &id)?,
            last: 0,
        })
    }

    /// Runs `case` in small batches for [`WARMUP`] and returns its rate in commits per second.
    async fn warm_up(&mut self, case: Case) -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut done = 0;
        while start.elapsed() < WARMUP {
            let round = match case {
                Case::RawSequential => self.raw_sequential(20).await?,
                Case::CommandSequential => self.command_sequential(20).await?,
                Case::RawConcurrent => self.raw_concurrent(2).await?,
                Case::CommandConcurrent => self.command_concurrent(2).await?,
                Case::Cold => {
                    // Creating the aggregates is setup, not part of the cold path: time only the commands.
                    let ids = self.create_aggregates(COLD_WARMUP).await?;
                    return Ok(self.cold(&ids).await?.rate());
                }
            };
            done += round.commits;
        }
        Ok(done as f64 / start.elapsed().as_secs_f64())
    }

    async fn raw_sequential(&mut self, n: usize) -> anyhow::Result<Round> {
        let start = Instant::now();
        let mut commits = 0;
        while commits < n && start.elapsed() < ROUND_LIMIT {
            raw_publish(&self.js, &mut self.raw_sequential, &self.payload).await?;
            commits += 1;
        }
        Ok(Round {
            commits,
            elapsed: start.elapsed(),
        })
    }

    async fn command_sequential(&mut self, n: usize) -> anyhow::Result<Round> {
        let start = Instant::now();
        let mut commits = 0;
        while commits < n && start.elapsed() < ROUND_LIMIT {
            self.sequential_version = update(&self.repo, &self.sequential, &self.meta, &self.counter).await?;
            commits += 1;
        }
        Ok(Round {
            commits,
            elapsed: start.elapsed(),
        })
    }

    async fn raw_concurrent(&mut self, per_task: usize) -> anyhow::Result<Round> {
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        for mut subject in std::mem::take(&mut self.raw_concurrent) {
            let js = self.js.clone();
            let payload = self.payload.clone();
            tasks.spawn(async move {
                let mut commits = 0;
                while commits < per_task && start.elapsed() < ROUND_LIMIT {
                    raw_publish(&js, &mut subject, &payload).await?;
                    commits += 1;
                }
                anyhow::Ok((subject, commits))
            });
        }
        let mut commits = 0;
        while let Some(done) = tasks.join_next().await {
            let (subject, done) = done??;
            self.raw_concurrent.push(subject);
            commits += done;
        }
        Ok(Round {
            commits,
            elapsed: start.elapsed(),
        })
    }

    async fn command_concurrent(&self, per_task: usize) -> anyhow::Result<Round> {
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        for &id in &self.concurrent {
            let (repo, meta, counter) = (self.repo.clone(), self.meta.clone(), self.counter.clone());
            tasks.spawn(async move {
                let mut commits = 0;
                while commits < per_task && start.elapsed() < ROUND_LIMIT {
                    update(&repo, &id, &meta, &counter).await?;
                    commits += 1;
                }
                anyhow::Ok(commits)
            });
        }
        let mut commits = 0;
        while let Some(done) = tasks.join_next().await {
            commits += done??;
        }
        Ok(Round {
            commits,
            elapsed: start.elapsed(),
        })
    }

    /// One update per aggregate, each through a repository that has never seen it: load (with hash
    /// chain check) + decide + commit.
    async fn cold(&self, ids: &[WorkspaceId]) -> anyhow::Result<Round> {
        let start = Instant::now();
        let mut commits = 0;
        for id in ids {
            if start.elapsed() >= ROUND_LIMIT {
                break;
            }
            let repo = Repository::<Workspace>::new(self.store.clone());
            update(&repo, id, &self.meta, &self.counter).await?;
            commits += 1;
        }
        Ok(Round {
            commits,
            elapsed: start.elapsed(),
        })
    }

    /// `n` new workspaces, created [`CONCURRENCY`] at a time (untimed setup).
    async fn create_aggregates(&self, n: usize) -> anyhow::Result<Vec<WorkspaceId>> {
        let ids: Vec<WorkspaceId> = (0..n).map(|_| WorkspaceId(uuid::Uuid::now_v7())).collect();
        for chunk in ids.chunks(CONCURRENCY) {
            let mut tasks = JoinSet::new();
            for &id in chunk {
                let (repo, meta) = (self.repo.clone(), self.meta.clone());
                tasks.spawn(async move { create(&repo, id, &meta).await });
            }
            while let Some(done) = tasks.join_next().await {
                done??;
            }
        }
        Ok(ids)
    }
}

async fn create(repo: &Repository<Workspace>, id: WorkspaceId, meta: &Metadata) -> anyhow::Result<()> {
    let command = WorkspaceCommand::Create {
        id,
        name: "Benchmark hospitals".into(),
        description: String::new(),
        admin: None,
    };
    let outcome = repo
        .execute(CommandRequest::new(&id, command, meta.clone()))
        .await?;
    ensure!(outcome.version == 1, "workspace {id} already existed");
    Ok(())
}

/// One `Update` with a description never used before: exactly one event, one commit. Returns the
/// aggregate's new version.
async fn update(
    repo: &Repository<Workspace>,
    id: &WorkspaceId,
    meta: &Metadata,
    counter: &AtomicU64,
) -> anyhow::Result<u64> {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let command = WorkspaceCommand::Update {
        name: None,
        description: Some(format!("Benchmark description number {n}")),
    };
    let outcome = repo
        .execute(CommandRequest::new(id, command, meta.clone()))
        .await?;
    ensure!(
        outcome.events.len() == 1 && !outcome.replayed,
        "update {n} of {id} committed nothing"
    );
    Ok(outcome.version)
}

/// What `EventStore::append` puts on the wire, minus the command: same headers, a real commit's bytes.
async fn raw_publish(
    js: &jetstream::Context,
    subject: &mut RawSubject,
    payload: &Bytes,
) -> anyhow::Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", BATCH_CONTENT_TYPE);
    let message = PublishMessage::build()
        .payload(payload.clone())
        .headers(headers)
        .message_id(uuid::Uuid::now_v7().simple().to_string())
        .expected_last_subject_sequence(subject.last);
    let ack = js.send_publish(subject.subject.clone(), message).await?.await?;
    ensure!(
        !ack.duplicate,
        "raw publish on {} was a duplicate",
        subject.subject
    );
    subject.last = ack.sequence;
    Ok(())
}
