//! Certificates issued per second through the whole platform: `app.certificates().issue(..)` on a
//! started [`Platform`] (its own nats-server with `sync_interval: always` and its own PostgreSQL
//! database), next to its two limits measured in the same run.
//!
//! One issuance authorises the caller, checks that the workspace is active, signs a certificate with a
//! new P-256 key (`prism_ca::Authority::issue`), seals that key in the key store (AES-256-GCM, in
//! memory here) and commits one `io.prism.certificate.issued` event: one JetStream publish,
//! acknowledged once the server has fsynced it. Projectors then write it to the read models.
//!
//! The limits:
//! * **raw publish** — what the log can acknowledge: `EventStore::append` of the bytes of a real
//!   `certificate.issued` commit (same headers, a new subject and expected sequence 0 each time, as
//!   for a new certificate lineage) on a stream of its own (same settings, same server, subjects
//!   nothing of the platform reads), with the same number of clients.
//! * **signing** — what the authority can sign: `Authority::issue(AgentServer, .., KeySource::Generate,
//!   ..)` of the platform's own authority, alone, on one thread for the sequential case and on one
//!   thread per core for the concurrent one.
//!
//! Run with `cargo bench -p prism-cli --bench issuance`. Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 5); the median round is reported.
//! * `PRISM_BENCH_SECONDS`: how long one round of one case runs (default 2; fractions allowed). Every
//!   client starts operations until then; the round ends when the last one is done.
//! * `PRISM_BENCH_TASKS`: clients of the concurrent cases (default 16).
//!
//! Every case is warmed up for 1 s first. The cases run in turn within a round and their order is
//! reversed every other round, so a drift of the machine hits every case alike. After each platform
//! round the benchmark waits (untimed) until the `certificates` read model has applied the round's last
//! issuance, so that projection work does not spill into the next case; that wait is reported, and the
//! CPU time per issuance (this process, nats-server, the database's PostgreSQL backends) covers the
//! round and the wait. It exits non-zero only when something fails, never because a ratio misses a
//! target.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chrono::Utc;
use prism_app::{Caller, CertificateRequest, CommandOptions, NewWorkspace};
use prism_benchkit::{Cpu, CpuMeter, cpu_model, median, thousands};
use prism_ca::KeySource;
use prism_cli::{Platform, PlatformConfig};
use prism_domain::WorkspaceId;
use prism_domain::certificate::{Entity, EntityKind, Profile, Subject};
use prism_embedded::{NatsServer, TestDatabase, find_nats_server};
use prism_store::{Append, EventLog as _, EventStore, StoreConfig};
use tokio::task::JoinSet;

const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_SECONDS: f64 = 2.0;
const DEFAULT_TASKS: usize = 16;
/// Untimed work per case before its first round.
const WARMUP: Duration = Duration::from_secs(1);
/// How long the read model may take to catch up after a platform round.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Raw publishes go to a stream of their own whose subjects have the length of the platform's.
const RAW_STREAM: &str = "PRISM_RAWBENCH";
const RAW_PREFIX: &str = "prism.rw";
/// Certificate numbers start here, so every subject and event has the same length.
const FIRST_NUMBER: u64 = 1_000_000;

#[derive(Debug)]
struct Settings {
    rounds: usize,
    seconds: f64,
    tasks: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number =
            |name: &str, default: usize| prism_benchkit::env_count(name, default).map_err(anyhow::Error::msg);
        let seconds = prism_benchkit::env_seconds("PRISM_BENCH_SECONDS", DEFAULT_SECONDS)
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            rounds: number("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS)?,
            seconds,
            tasks: number("PRISM_BENCH_TASKS", DEFAULT_TASKS)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    RawSequential,
    IssueSequential,
    SignOne,
    RawConcurrent,
    IssueConcurrent,
    SignAll,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::RawSequential,
        Case::IssueSequential,
        Case::SignOne,
        Case::RawConcurrent,
        Case::IssueConcurrent,
        Case::SignAll,
    ];

    fn label(self) -> &'static str {
        match self {
            Case::RawSequential => "raw publish, 1 client",
            Case::IssueSequential => "issue, 1 client",
            Case::SignOne => "signing alone, 1 thread",
            Case::RawConcurrent => "raw publish, concurrent",
            Case::IssueConcurrent => "issue, concurrent",
            Case::SignAll => "signing alone, all cores",
        }
    }

    fn is_issue(self) -> bool {
        matches!(self, Case::IssueSequential | Case::IssueConcurrent)
    }
}

/// One timed round of one case.
#[derive(Debug, Clone, Copy)]
struct Round {
    case: Case,
    done: usize,
    elapsed: Duration,
    /// After a platform round: how long the `certificates` read model took to apply its last issuance.
    drain: Option<Duration>,
    /// After a platform round: issuances the read model had yet to apply when the round ended.
    behind: Option<u64>,
    cpu: Cpu,
}

impl Round {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    /// Issuances the read model applied per second while it caught up after the round.
    fn catch_up_rate(&self) -> Option<f64> {
        let (drain, behind) = (self.drain?, self.behind?);
        (behind > 0).then(|| behind as f64 / drain.as_secs_f64())
    }

    /// Issuances per second counting the read model's catch-up after the round as part of it.
    fn projected_rate(&self) -> Option<f64> {
        self.drain
            .map(|drain| self.done as f64 / (self.elapsed + drain).as_secs_f64())
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let nats = NatsServer::start_temp().await?;
    let db = TestDatabase::create().await?;
    let mut config = PlatformConfig::new(nats.url(), db.url.clone(), "127.0.0.1:0".parse()?);
    // As in the end-to-end tests: the authority's keys (and every generated key) sealed in memory.
    let kek: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x5a);
    config.certificate_authority = Some(prism_app::CertificateAuthorityConfig {
        urls: prism_ca::CaUrls::under("http://prism.bench"),
        keys: Arc::new(prism_ca::SealedKeys::new(
            prism_ca::Sealer::new(&kek)?,
            prism_ca::MemoryKeyStore::default(),
        )),
        renewal: prism_app::RenewalPolicy::default(),
    });
    let platform = Platform::start(config).await?;
    let result = measure(&settings, &nats, &db, &platform).await;
    platform.shutdown().await?;
    drop(nats);
    result
}

async fn measure(
    settings: &Settings,
    nats: &NatsServer,
    db: &TestDatabase,
    platform: &Platform,
) -> anyhow::Result<()> {
    let app = platform.app().clone();
    app.identity()
        .bootstrap_admin("admin@prism.bench", None)
        .await?
        .context("an empty platform gets its administrator")?;
    // A service of the platform's own: authorised without a role lookup, like the workers.
    let caller = Caller::service("bench");
    let workspace: WorkspaceId = app
        .workspaces()
        .create(
            &caller,
            &CommandOptions::default(),
            NewWorkspace {
                name: "Benchmark hospitals".into(),
                description: String::new(),
            },
        )
        .await?
        .id
        .parse()?;

    // The first issuance establishes the authority; its commit is the raw side's payload.
    let counter = Arc::new(AtomicU64::new(FIRST_NUMBER));
    let issuer = Issuer {
        app: app.clone(),
        caller,
        workspace,
        counter: counter.clone(),
        last: Arc::new(AtomicU64::new(0)),
    };
    let sequence = issuer.issue().await?;
    let commit = app
        .log()
        .commit_at(sequence)
        .await?
        .context("the issuance's commit is not in the log")?;
    ensure!(
        commit.events.len() == 1 && commit.events[0].ty.contains("certificate.issued"),
        "the issuance committed {:?}",
        commit.events.iter().map(|e| e.ty.as_str()).collect::<Vec<_>>()
    );
    let template = Append {
        subject: String::new(),
        expected_last_sequence: 0,
        msg_id: String::new(),
        fingerprint: commit.fingerprint.clone(),
        traceparent: commit.events[0].traceparent.clone(),
        payload: serde_json::to_vec(&commit.events)?,
    };
    let msg_id_len = commit.msg_id.as_deref().map_or(32, str::len);
    let raw_store = EventStore::connect(
        &nats.url(),
        StoreConfig {
            stream: RAW_STREAM.into(),
            subject_prefix: RAW_PREFIX.into(),
            ..StoreConfig::default()
        },
    )
    .await?;
    let raw = Raw {
        store: raw_store,
        template: Arc::new(template),
        msg_id_len,
        counter: Arc::new(AtomicU64::new(FIRST_NUMBER)),
    };
    let signer = Signer {
        authority: app.certificates().authority().await?,
        counter,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let bench = Bench {
        issuer,
        raw,
        signer,
        tasks: settings.tasks,
        cores,
        cpu: CpuMeter::new(nats.store_dir(), &db.url).await?,
    };

    let version = find_nats_server()
        .ok()
        .and_then(|bin| std::process::Command::new(bin).arg("--version").output().ok())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "nats-server (version unknown)".to_owned());
    println!("machine: {cores} cores, {}", cpu_model());
    println!(
        "{version}, JetStream sync_interval=always (fsync before every ack); {}",
        bench.cpu.postgres_version().await?
    );
    println!(
        "certificate.issued commit: {} B payload (stored {} B), 1 event; raw publishes: same bytes and headers, stream {RAW_STREAM} (same settings, same server)",
        bench.raw.template.payload.len(),
        commit.bytes,
    );
    println!(
        "concurrent cases: {} clients (signing alone: {cores} threads); {} rounds per case of {} s after 1 s of warm-up, order reversed every other round; median round reported",
        settings.tasks, settings.rounds, settings.seconds
    );

    for case in Case::ALL {
        bench.round(case, WARMUP).await?;
    }
    let seconds = Duration::from_secs_f64(settings.seconds);

    let mut rounds: Vec<Round> = Vec::new();
    for r in 0..settings.rounds {
        let mut order = Case::ALL.to_vec();
        if r % 2 == 1 {
            order.reverse();
        }
        for case in order {
            rounds.push(bench.round(case, seconds).await?);
        }
    }

    report(&rounds, settings, cores);
    Ok(())
}

fn report(rounds: &[Round], settings: &Settings, cores: usize) {
    let of = |case: Case| rounds.iter().filter(move |r| r.case == case);
    let median_of = |case: Case, f: &dyn Fn(&Round) -> Option<f64>| {
        median(of(case).filter_map(f).collect()).unwrap_or(f64::NAN)
    };
    let rate = |case: Case| median_of(case, &|r| Some(r.rate()));

    println!();
    println!(
        "{:<26} {:>13} {:>10} {:>10} {:>11} {:>11}",
        "case", "raw publish/s", "signing/s", "issued/s", "vs publish", "vs signing"
    );
    for (label, raw, sign, issue) in [
        (
            "sequential, 1 client".to_owned(),
            Case::RawSequential,
            Case::SignOne,
            Case::IssueSequential,
        ),
        (
            format!("concurrent, {} clients", settings.tasks),
            Case::RawConcurrent,
            Case::SignAll,
            Case::IssueConcurrent,
        ),
    ] {
        println!(
            "{label:<26} {:>13} {:>10} {:>10} {:>11.2} {:>11.2}",
            thousands(rate(raw)),
            thousands(rate(sign)),
            thousands(rate(issue)),
            rate(issue) / rate(raw),
            rate(issue) / rate(sign),
        );
    }
    let serial = 1.0 / (1.0 / rate(Case::RawSequential) + 1.0 / rate(Case::SignOne));
    println!(
        "signing alone: Authority::issue(agent_server, KeySource::Generate) on 1 thread (sequential) and on {cores} threads (concurrent)"
    );
    println!(
        "one client signs, then publishes: 1/(1/publish + 1/signing) = {}/s; issued/that = {:.2}",
        thousands(serial),
        rate(Case::IssueSequential) / serial
    );
    println!(
        "certificates read model after a round (median):   behind at its end   caught up after   catching up at   issued/s counting the wait"
    );
    for case in [Case::IssueSequential, Case::IssueConcurrent] {
        println!(
            "  {:<46} {:>8} issuances {:>12.0} ms {:>14}/s {:>14}/s",
            case.label(),
            thousands(median_of(case, &|r| r.behind.map(|b| b as f64))),
            median_of(case, &|r| r.drain.map(|d| d.as_secs_f64() * 1e3)),
            thousands(median_of(case, &Round::catch_up_rate)),
            thousands(median_of(case, &Round::projected_rate)),
        );
    }
    println!("CPU per operation, µs (user+system, median round):  this process  nats-server  postgres");
    for case in Case::ALL {
        let per = |f: fn(&Cpu) -> Option<f64>| {
            let value = median_of(case, &|r| f(&r.cpu).map(|s| s * 1e6 / r.done.max(1) as f64));
            if value.is_finite() {
                format!("{value:.0}")
            } else {
                "-".to_owned()
            }
        };
        println!(
            "  {:<48} {:>13} {:>12} {:>9}",
            case.label(),
            per(|c| c.this),
            per(|c| c.nats),
            per(|c| c.postgres),
        );
    }
    println!("rounds, per second in run order:");
    for case in Case::ALL {
        let rates: Vec<String> = of(case).map(|r| thousands(r.rate())).collect();
        println!(
            "  {:<26} {}   (median {} per round)",
            case.label(),
            rates.join(" "),
            thousands(median_of(case, &|r| Some(r.done as f64)))
        );
    }
}

struct Bench {
    issuer: Issuer,
    raw: Raw,
    signer: Signer,
    tasks: usize,
    cores: usize,
    cpu: CpuMeter,
}

impl Bench {
    /// One round of `case`: operations started until `duration` has passed, then the wait for the
    /// read model after a platform round.
    async fn round(&self, case: Case, duration: Duration) -> anyhow::Result<Round> {
        let before = self.cpu.now().await?;
        let (done, elapsed) = self.run(case, duration).await?;
        let (behind, drain) = if case.is_issue() {
            let behind = self.issuer.behind().await?;
            let start = Instant::now();
            self.issuer.drained().await?;
            (Some(behind), Some(start.elapsed()))
        } else {
            (None, None)
        };
        let cpu = self.cpu.since(before).await?;
        Ok(Round {
            case,
            done,
            elapsed,
            drain,
            behind,
            cpu,
        })
    }

    /// Operations of `case` by its clients, each starting new ones until `duration` has passed: how
    /// many were done, and in what time (until the last one ended).
    async fn run(&self, case: Case, duration: Duration) -> anyhow::Result<(usize, Duration)> {
        let start = Instant::now();
        let deadline = start + duration;
        let done = match case {
            Case::RawSequential => {
                let mut done = 0;
                while Instant::now() < deadline {
                    self.raw.publish().await?;
                    done += 1;
                }
                done
            }
            Case::IssueSequential => {
                let mut done = 0;
                while Instant::now() < deadline {
                    self.issuer.issue().await?;
                    done += 1;
                }
                done
            }
            Case::RawConcurrent => {
                let mut tasks = JoinSet::new();
                for _ in 0..self.tasks {
                    let raw = self.raw.clone();
                    tasks.spawn(async move {
                        let mut done = 0;
                        while Instant::now() < deadline {
                            raw.publish().await?;
                            done += 1;
                        }
                        anyhow::Ok(done)
                    });
                }
                joined(tasks).await?
            }
            Case::IssueConcurrent => {
                let mut tasks = JoinSet::new();
                for _ in 0..self.tasks {
                    let issuer = self.issuer.clone();
                    tasks.spawn(async move {
                        let mut done = 0;
                        while Instant::now() < deadline {
                            issuer.issue().await?;
                            done += 1;
                        }
                        anyhow::Ok(done)
                    });
                }
                joined(tasks).await?
            }
            Case::SignOne | Case::SignAll => {
                let threads = if case == Case::SignOne { 1 } else { self.cores };
                let mut tasks = JoinSet::new();
                for _ in 0..threads {
                    let signer = self.signer.clone();
                    tasks.spawn_blocking(move || {
                        let mut done = 0;
                        while Instant::now() < deadline {
                            signer.sign()?;
                            done += 1;
                        }
                        anyhow::Ok(done)
                    });
                }
                joined(tasks).await?
            }
        };
        Ok((done, start.elapsed()))
    }
}

async fn joined(mut tasks: JoinSet<anyhow::Result<usize>>) -> anyhow::Result<usize> {
    let mut done = 0;
    while let Some(result) = tasks.join_next().await {
        done += result??;
    }
    Ok(done)
}

/// Issues certificates through the application layer, as the API does.
#[derive(Clone)]
struct Issuer {
    app: prism_app::App,
    caller: Caller,
    workspace: WorkspaceId,
    counter: Arc<AtomicU64>,
    /// The highest stream sequence an issuance committed at.
    last: Arc<AtomicU64>,
}

impl Issuer {
    /// One certificate for a new CVM, with a key the authority generates; its commit's sequence.
    async fn issue(&self) -> anyhow::Result<u64> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let issued = self
            .app
            .certificates()
            .issue(
                &self.caller,
                &CommandOptions::default(),
                self.workspace,
                certificate_request(n)?,
            )
            .await?;
        ensure!(issued.private_key.is_some(), "issuance {n} handed back no key");
        self.last.fetch_max(issued.sequence, Ordering::Relaxed);
        Ok(issued.sequence)
    }

    /// How many issuances (stream sequences) the `certificates` read model has yet to apply.
    async fn behind(&self) -> anyhow::Result<u64> {
        let at = self
            .app
            .read_models()?
            .checkpoint(prism_projections::CERTIFICATES)
            .await?;
        Ok(self.last.load(Ordering::Relaxed).saturating_sub(at))
    }

    /// Waits until the `certificates` read model has applied every issuance so far.
    async fn drained(&self) -> anyhow::Result<()> {
        self.app
            .read_models()?
            .wait_for(
                prism_projections::CERTIFICATES,
                self.last.load(Ordering::Relaxed),
                DRAIN_LIMIT,
            )
            .await?;
        Ok(())
    }
}

fn certificate_request(n: u64) -> anyhow::Result<CertificateRequest> {
    Ok(CertificateRequest {
        entity: Entity {
            kind: EntityKind::Cvm,
            id: format!("cvm-{n}"),
        },
        profile: Profile::AgentServer,
        subject: subject(n)?,
        ttl: Some(LIFETIME),
    })
}

fn subject(n: u64) -> anyhow::Result<Subject> {
    Ok(Subject {
        common_name: format!("cvm-{n}"),
        dns_names: vec![format!("cvm-{n}.prism.internal")],
        ip_addresses: vec!["10.0.0.7".parse::<IpAddr>()?],
        ..Default::default()
    })
}

/// Raw publishes of a real commit's bytes: the store's append, nothing else.
#[derive(Clone)]
struct Raw {
    store: EventStore,
    template: Arc<Append>,
    msg_id_len: usize,
    counter: Arc<AtomicU64>,
}

impl Raw {
    /// One publish on a new subject (expected last sequence 0), as a new certificate lineage's.
    async fn publish(&self) -> anyhow::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // A UUID-shaped id and a message id as long as the platform's.
        let id = format!("00000000-0000-7000-8000-{n:012x}");
        let mut append = Append::clone(&self.template);
        append.subject = self.store.subject("certificate", &id)?;
        append.msg_id = format!("{n:0>width$x}", width = self.msg_id_len);
        let ack = self.store.append(append).await?;
        ensure!(
            !ack.duplicate && ack.sequence > 0,
            "raw publish {n} was not stored"
        );
        Ok(())
    }
}

/// Signs with the platform's own authority, nothing else.
#[derive(Clone)]
struct Signer {
    authority: Arc<prism_ca::Authority>,
    counter: Arc<AtomicU64>,
}

impl Signer {
    fn sign(&self) -> anyhow::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let issued = self.authority.issue(
            Profile::AgentServer,
            &subject(n)?,
            LIFETIME,
            KeySource::Generate,
            Utc::now(),
        )?;
        std::hint::black_box(issued);
        Ok(())
    }
}
