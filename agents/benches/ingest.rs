//! Agent messages recorded per second through the agents' channel, next to raw JetStream publishes
//! of the same bytes, in one run against one nats-server.
//!
//! A [`Platform`] with its own nats-server (`sync_interval: always`: an append is acknowledged after
//! fsync) and PostgreSQL database serves the agents' channel (`prism_agents::AgentChannel` over
//! `prism-tls`, client certificates required). N simulated agents (1, 4 and 16 by default), each the
//! agent of its own CVM with an `agent_client` certificate the platform issued for it, each on its own
//! mutual-TLS connection, open a log forwarder's stream (`connection-type: log-forwarder`) and send
//! log lines and events (`AgentLog`, one `AgentEvent` in eight; about 200 bytes each, every one
//! different, so none is taken for a resent copy) as fast as HTTP/2 flow control lets them. What counts
//! is what the log holds: a round lasts until every message sent is an event of its CVM (the
//! aggregate's version), and the commits are then read back from the stream to check that each
//! message is one `agent_message_received` event.
//!
//! The limit: the channel records each batch (what arrived while the previous one was written, at most
//! `ChannelConfig::batch`) as one command of the CVM, which is one JetStream append guarded by the
//! aggregate's last sequence. The raw side is that append and nothing else, `EventStore::append` on a
//! stream of its own on the same server, by as many clients as there are agents, each on its own
//! subject with the correct expected last sequence:
//! * **raw, 1 message per publish** — the bytes of one recorded event (taken from a real commit of the
//!   channel): the ceiling for recording each message on its own.
//! * **raw, full batches** — the bytes of a real commit of `ChannelConfig::batch` events: the ceiling
//!   for a channel that always found a full batch waiting.
//!
//! The raw side goes through `prism_store` rather than async-nats directly: only `prism-store` may
//! depend on async-nats (`store/tests/nats_boundary.rs`), and `EventStore::append` is one JetStream
//! publish with its headers and the acknowledgement, nothing more.
//!
//! Run with `cargo bench -p prism-agents --bench ingest`. Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 5); the median round is reported.
//! * `PRISM_BENCH_SECONDS`: how long agents send in one round (default 2; fractions allowed).
//! * `PRISM_BENCH_AGENTS`: the agent counts, comma-separated (default `1,4,16`).
//!
//! Every case is warmed up for 1 s first. Within a round the cases run in turn, in reverse order every
//! other round, so a drift of the machine hits every case alike. It exits non-zero only when something
//! fails (a message missing from the log among them), never because of a ratio.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use prism_app::{App, Caller, CertificateRequest, CommandOptions, IssuedCertificate, NewWorkspace};
use prism_benchkit::{Cpu, CpuMeter, cpu_model, median, thousands};
use prism_cli::{AgentsConfig, Platform, PlatformConfig};
use prism_domain::backend::{BackendSettings, Driver};
use prism_domain::cvm::{ConfidentialPlatform, Cvm, CvmSpec, CvmStatus};
use prism_domain::{CvmId, WorkspaceId};
use prism_embedded::{NatsServer, TestDatabase, find_nats_server};
use prism_proto::cvms::service_client::ServiceClient;
use prism_proto::cvms::{AgentEvent, AgentLog, ClientStreamMessage, client_stream_message};
use prism_proto::prost::Message as _;
use prism_store::{Append, EventLog as _, EventStore, StoreConfig};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_SECONDS: f64 = 2.0;
const DEFAULT_AGENTS: &[usize] = &[1, 4, 16];
/// Untimed work per case before its first round.
const WARMUP: Duration = Duration::from_secs(1);
/// How long the log may take to hold every message sent in a round before the round fails.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Raw publishes go to a stream of their own whose subjects have the length of the platform's.
const RAW_STREAM: &str = "PRISM_RAWBENCH";
const RAW_PREFIX: &str = "prism.rw";
/// The event type every recorded message must have.
const RECEIVED: &str = "agent_message_received";

#[derive(Debug)]
struct Settings {
    rounds: usize,
    seconds: f64,
    agents: Vec<usize>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let rounds =
            prism_benchkit::env_count("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS).map_err(anyhow::Error::msg)?;
        let seconds = prism_benchkit::env_seconds("PRISM_BENCH_SECONDS", DEFAULT_SECONDS)
            .map_err(anyhow::Error::msg)?;
        let agents = match std::env::var("PRISM_BENCH_AGENTS") {
            Err(_) => DEFAULT_AGENTS.to_vec(),
            Ok(list) => list
                .split(',')
                .map(|n| match n.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("PRISM_BENCH_AGENTS={list:?}: agent counts of at least 1, comma-separated"),
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Self {
            rounds,
            seconds,
            agents,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    RawSingle,
    RawBatch,
    Channel,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::RawSingle, Kind::RawBatch, Kind::Channel];

    fn label(self) -> &'static str {
        match self {
            Kind::RawSingle => "raw, 1 message per publish",
            Kind::RawBatch => "raw, full batches",
            Kind::Channel => "channel, recorded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    agents: usize,
    kind: Kind,
}

/// One timed round of one case.
#[derive(Debug, Clone, Copy)]
struct Round {
    case: Case,
    /// Messages in the log (raw: messages the publishes stand for).
    messages: u64,
    /// JetStream appends.
    commits: u64,
    /// From the first message sent to the last one in the log (raw: the last acknowledgement).
    elapsed: Duration,
    /// Channel: from the end of sending to the last message in the log.
    drain: Option<Duration>,
    /// Channel: from the last message in the log until every read model had applied it (untimed,
    /// but its CPU is the round's).
    projected: Option<Duration>,
    cpu: Cpu,
}

impl Round {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Messages per second counting the read models' catch-up after the round as part of it.
    fn projected_rate(&self) -> Option<f64> {
        self.projected
            .map(|p| self.messages as f64 / (self.elapsed + p).as_secs_f64())
    }

    fn commit_rate(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
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
    // As `prism up` runs: aggregates load from signed snapshots, not from their whole history.
    config.snapshot_key = Some(prism_store::SnapshotKey::new(vec![0x42; 32])?);
    config.agents = Some(AgentsConfig {
        listen: "127.0.0.1:0".parse()?,
        names: Vec::new(),
        heartbeat_gap: Duration::from_secs(30),
        dial: None,
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
    let (addr, _) = platform
        .agents()
        .context("the platform runs the agents' channel")?;
    let most = settings.agents.iter().copied().max().unwrap_or(1);
    let agents = agents(&app, addr, most).await?;

    let cores = prism_benchkit::cores();
    let version = find_nats_server()
        .ok()
        .and_then(|bin| std::process::Command::new(bin).arg("--version").output().ok())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "nats-server (version unknown)".to_owned());
    let cpu = CpuMeter::new(nats.store_dir(), &db.url).await?;
    println!("machine: {cores} cores, {}", cpu_model());
    println!(
        "{version}, JetStream sync_interval=always (fsync before every ack); {}",
        cpu.postgres_version().await?
    );

    // A first round of the channel gives the commits whose bytes the raw side publishes.
    let mut bench = Bench {
        app: app.clone(),
        agents,
        raw: None,
        cpu,
        next: Arc::new(AtomicU64::new(0)),
    };
    bench.channel(most, WARMUP).await?;
    let raw = bench.raw_templates(nats).await?;
    println!(
        "message: {} B on the wire on average (AgentLog; AgentEvent one in eight); recorded event {} B; full batch commit {} events, {} B",
        sample_sizes(),
        raw.single.payload.len(),
        raw.batch_events,
        raw.batch.payload.len(),
    );
    println!(
        "raw publishes: EventStore::append on stream {RAW_STREAM} (same settings, same server), one subject per client, expected last sequence set"
    );
    println!(
        "{} rounds per case of {} s of sending after 1 s of warm-up, order reversed every other round; median round reported",
        settings.rounds, settings.seconds
    );
    bench.raw = Some(raw);

    let mut cases = Vec::new();
    for &agents in &settings.agents {
        for kind in Kind::ALL {
            cases.push(Case { agents, kind });
        }
    }
    for &case in &cases {
        bench.round(case, WARMUP).await?;
    }
    let seconds = Duration::from_secs_f64(settings.seconds);
    let mut rounds = Vec::new();
    for r in 0..settings.rounds {
        let mut order = cases.clone();
        if r % 2 == 1 {
            order.reverse();
        }
        for &case in &order {
            rounds.push(bench.round(case, seconds).await?);
        }
    }
    let batch = bench.raw.as_ref().map_or(0, |raw| raw.batch_events);
    report(&rounds, &settings.agents, batch);
    Ok(())
}

fn report(rounds: &[Round], agent_counts: &[usize], batch: usize) {
    let of = |case: Case| rounds.iter().filter(move |r| r.case == case);
    let median_of = |case: Case, f: &dyn Fn(&Round) -> Option<f64>| {
        median(of(case).filter_map(f).collect()).unwrap_or(f64::NAN)
    };
    let rate = |agents: usize, kind: Kind| median_of(Case { agents, kind }, &|r| Some(r.rate()));

    println!();
    println!(
        "{:<8} {:>18} {:>18} {:>16} {:>10} {:>12}",
        "agents",
        "raw 1/publish, /s",
        format!("raw {batch}/publish, /s"),
        "recorded msgs/s",
        "vs raw 1",
        "vs raw batch"
    );
    for &agents in agent_counts {
        let (single, full, channel) = (
            rate(agents, Kind::RawSingle),
            rate(agents, Kind::RawBatch),
            rate(agents, Kind::Channel),
        );
        println!(
            "{agents:<8} {:>18} {:>18} {:>16} {:>10.2} {:>12.2}",
            thousands(single),
            thousands(full),
            thousands(channel),
            channel / single,
            channel / full,
        );
    }
    println!("appends per second and messages per append (median round):");
    for &agents in agent_counts {
        let channel = Case {
            agents,
            kind: Kind::Channel,
        };
        let single = Case {
            agents,
            kind: Kind::RawSingle,
        };
        println!(
            "  {agents:>2} agents: channel {:>7} commits/s, {:>5.1} messages per commit; raw {:>7} publishes/s; log complete {:>5.0} ms after sending ended, read models {:>5.0} ms later: {:>6}/s counting them",
            thousands(median_of(channel, &|r| Some(r.commit_rate()))),
            median_of(channel, &|r| Some(r.messages as f64 / r.commits.max(1) as f64)),
            thousands(median_of(single, &|r| Some(r.commit_rate()))),
            median_of(channel, &|r| r.drain.map(|d| d.as_secs_f64() * 1e3)),
            median_of(channel, &|r| r.projected.map(|d| d.as_secs_f64() * 1e3)),
            thousands(median_of(channel, &Round::projected_rate)),
        );
    }
    println!("CPU per message, µs (user+system, median round; channel: until the read models applied it):");
    println!(
        "{:<50} {:>13} {:>12} {:>9}",
        "", "this process", "nats-server", "postgres"
    );
    for &agents in agent_counts {
        for kind in Kind::ALL {
            let case = Case { agents, kind };
            let per = |f: fn(&Cpu) -> Option<f64>| {
                let value = median_of(case, &|r| f(&r.cpu).map(|s| s * 1e6 / r.messages.max(1) as f64));
                if value.is_finite() {
                    format!("{value:.1}")
                } else {
                    "-".to_owned()
                }
            };
            println!(
                "  {agents:>2} agents, {:<38} {:>13} {:>12} {:>9}",
                kind.label(),
                per(|c| c.this),
                per(|c| c.nats),
                per(|c| c.postgres),
            );
        }
    }
    println!("rounds, messages/s in run order:");
    for &agents in agent_counts {
        for kind in Kind::ALL {
            let rates: Vec<String> = of(Case { agents, kind }).map(|r| thousands(r.rate())).collect();
            println!("  {agents:>2} agents, {:<28} {}", kind.label(), rates.join(" "));
        }
    }
}

/// The average encoded size of the messages agents send.
fn sample_sizes() -> usize {
    let total: usize = (0..64).map(|n| message(3, n).encoded_len()).sum();
    total / 64
}

/// Message `n` of agent `agent`: a line of an algorithm's output, or (one in eight) a progress event,
/// each about 200 bytes and unique, as the log forwarder sends them.
fn message(agent: usize, n: u64) -> ClientStreamMessage {
    let timestamp = Some(prism_proto::prost_types::Timestamp {
        seconds: 1_790_000_000 + (n / 1000) as i64,
        nanos: ((n % 1000) * 1_000_000) as i32,
    });
    let computation_id = format!("0196a7c4-5f2e-7b3d-9c41-{agent:012x}");
    let message = if n % 8 == 7 {
        client_stream_message::Message::AgentEvent(AgentEvent {
            event_type: "algorithm-run".into(),
            timestamp,
            computation_id,
            details: format!(
                r#"{{"step":{n:>9},"phase":"training","progress":0.{:04},"rows":4096,"dataset":"hospital-a.csv"}}"#,
                n % 10_000
            )
                .into_bytes(),
            originator: "agent".into(),
            status: "in-progress".into(),
        })
    } else {
        client_stream_message::Message::AgentLog(AgentLog {
            message: format!(
                "algorithm stdout: epoch {:>4} step {n:>9} loss=0.{:06} accuracy=0.{:06} samples=4096 batch=128 lr=0.000250 elapsed_ms={:>6}",
                n / 1000,
                (n * 7919) % 1_000_000,
                (n * 104_729) % 1_000_000,
                n % 100_000,
            ),
            computation_id,
            level: "INFO".into(),
            timestamp,
        })
    };
    ClientStreamMessage {
        message: Some(message),
    }
}

/// One simulated agent: its CVM and its own mutual-TLS connection to the channel.
#[derive(Clone)]
struct Agent {
    index: usize,
    cvm: CvmId,
    subject: String,
    channel: Channel,
}

/// `count` agents: a workspace, a bring-your-own backend, `count` CVMs the provisioner has started on
/// it, an `agent_client` certificate for each, and a connection for each.
async fn agents(app: &App, addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<Agent>> {
    // A service of the platform's own: authorised without a role lookup, like the workers.
    let caller = Caller::service("bench");
    let options = CommandOptions::default();
    let workspace: WorkspaceId = app
        .workspaces()
        .create(
            &caller,
            &options,
            NewWorkspace {
                name: "Ingest benchmark".into(),
                description: String::new(),
            },
        )
        .await?
        .id
        .parse()?;
    let settings = BackendSettings {
        name: "bench-machines".into(),
        driver: Driver::Byo { agent_address: None },
        platforms: vec![ConfidentialPlatform::None],
        capacity: 1000,
        labels: BTreeMap::new(),
        price: None,
    };
    let backend = app
        .backends()
        .register(&caller, &options, Some(workspace), settings)
        .await?
        .id;
    // The provisioner places CVMs on the backends its read model knows.
    eventually("the backend in the read model", async || {
        Ok(app
            .read_models()?
            .backends(Some(workspace))
            .await?
            .iter()
            .any(|b| b.id.to_string() == backend))
    })
    .await?;
    let root = app.certificates().authority().await?.root_pem();
    let mut agents = Vec::new();
    for index in 0..count {
        let spec = CvmSpec {
            provider: "byo".into(),
            vcpus: 1,
            memory_mib: 512,
            platform: ConfidentialPlatform::None,
            ttl_seconds: 24 * 3600,
            labels: BTreeMap::new(),
        };
        let cvm: CvmId = app
            .cvms()
            .create(&caller, &options, workspace, spec)
            .await?
            .id
            .parse()?;
        eventually("the CVM started", async || {
            let state = app.repository::<Cvm>().load(&cvm).await?.state;
            match state.status {
                CvmStatus::Starting => Ok(true),
                CvmStatus::Creating => Ok(false),
                other => bail!("CVM {cvm} is {other:?}: {:?}", state.failure),
            }
        })
        .await?;
        let issued = app
            .certificates()
            .issue(
                &caller,
                &options,
                workspace,
                CertificateRequest::agent_client(cvm),
            )
            .await?;
        // The channel finds the certificate in the read model.
        eventually("the certificate in the read model", async || {
            Ok(app
                .read_models()?
                .certificate_serial(&issued.serial)
                .await?
                .is_some())
        })
        .await?;
        agents.push(Agent {
            index,
            cvm,
            subject: app.log().subjects().aggregate("cvm", &cvm.to_string())?,
            channel: connect(addr, &issued, &root).await?,
        });
    }
    Ok(agents)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await? {
        ensure!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A tonic channel to `addr` over rustls, presenting `issued` and trusting `root`, offering ALPN h2
/// as grpc-go does.
async fn connect(
    addr: std::net::SocketAddr,
    issued: &IssuedCertificate,
    root: &str,
) -> anyhow::Result<Channel> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root.as_bytes())?)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(format!("{}{}", issued.certificate, issued.chain).as_bytes())
            .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(
        issued
            .private_key
            .as_deref()
            .context("the certificate came without its key")?
            .as_bytes(),
    )?;
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let connector = tower::service_fn(move |_: http::Uri| {
        let config = config.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(
                    ServerName::try_from("localhost").map_err(std::io::Error::other)?,
                    tcp,
                )
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Ok(Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await?)
}

/// What the raw side publishes, cut from a real commit of the channel.
struct RawTemplates {
    store: EventStore,
    /// One recorded event, as a commit of its own.
    single: Arc<Append>,
    /// A commit of a full batch.
    batch: Arc<Append>,
    batch_events: usize,
    msg_id_len: usize,
    /// The last sequence of each client's subject.
    last: Vec<Arc<AtomicU64>>,
}

struct Bench {
    app: App,
    agents: Vec<Agent>,
    raw: Option<RawTemplates>,
    cpu: CpuMeter,
    /// The next message number: every message of the run is different.
    next: Arc<AtomicU64>,
}

impl Bench {
    async fn round(&self, case: Case, duration: Duration) -> anyhow::Result<Round> {
        let before = self.cpu.now().await?;
        let mut round = match case.kind {
            Kind::Channel => self.channel(case.agents, duration).await?,
            Kind::RawSingle | Kind::RawBatch => self.raw(case, duration).await?,
        };
        round.case = case;
        round.cpu = self.cpu.since(before).await?;
        eprintln!(
            "  {:>2} agents, {:<28} {:>8} messages in {:>6.2} s ({} commits)",
            case.agents,
            case.kind.label(),
            round.messages,
            round.elapsed.as_secs_f64(),
            round.commits
        );
        Ok(round)
    }

    /// The first `count` agents send for `duration` on a new log forwarder's stream each; the round
    /// ends when the log holds every message they sent.
    async fn channel(&self, count: usize, duration: Duration) -> anyhow::Result<Round> {
        let agents = &self.agents[..count];
        let repository = self.app.repository::<Cvm>();
        let mut before = Vec::new();
        for agent in agents {
            let loaded = repository
                .load(&agent.cvm)
                .await
                .context("loading the CVM before the round")?;
            before.push((loaded.version, loaded.last_sequence));
        }
        // Streams open (the channel identifies each agent) before the clock starts; their messages
        // wait for the start.
        let (start, started) = watch::channel(None::<Instant>);
        let mut streams = Vec::new();
        let mut sent = Vec::new();
        for agent in agents {
            let counter = Arc::new(AtomicU64::new(0));
            let body = Body {
                agent: agent.index,
                started: started.clone(),
                deadline: None,
                next: self.next.clone(),
                sent: counter.clone(),
            };
            let mut request = tonic::Request::new(body.into_stream());
            request
                .metadata_mut()
                .insert("job-id", agent.cvm.to_string().parse()?);
            request
                .metadata_mut()
                .insert("connection-type", "log-forwarder".parse()?);
            let response = ServiceClient::new(agent.channel.clone())
                .process(request)
                .await
                .with_context(|| format!("the channel refused agent {}", agent.index))?;
            streams.push(response.into_inner());
            sent.push(counter);
        }
        let t0 = Instant::now();
        start.send_replace(Some(t0 + duration));
        tokio::time::sleep_until((t0 + duration).into()).await;
        // Each body ends at its first poll after the deadline; wait until they all did.
        let sent_all = loop {
            let ended = sent.iter().all(|s| s.load(Ordering::Acquire) & ENDED != 0);
            if ended {
                break sent
                    .iter()
                    .map(|s| s.load(Ordering::Acquire) & !ENDED)
                    .collect::<Vec<_>>();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let sending_ended = Instant::now();
        // The log holds a message once its CVM's version counts it.
        let mut pending: Vec<usize> = (0..agents.len()).collect();
        let drain_deadline = Instant::now() + DRAIN_LIMIT;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for i in pending {
                let version = repository
                    .load(&agents[i].cvm)
                    .await
                    .context("loading the CVM after the round")?
                    .version;
                if version < before[i].0 + sent_all[i] {
                    still.push(i);
                }
            }
            pending = still;
            if !pending.is_empty() {
                ensure!(
                    Instant::now() < drain_deadline,
                    "{} agents' messages never all reached the log",
                    pending.len()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let elapsed = t0.elapsed();
        let drain = sending_ended.elapsed();
        drop(streams);
        // Every projector reads every commit: let them finish this round's before the next case.
        let last = self.app.log().last_sequence().await?;
        let read = self.app.read_models()?;
        for name in prism_cli::modules::projection_names() {
            read.wait_for(name, last, DRAIN_LIMIT)
                .await
                .with_context(|| format!("read model {name} after the round"))?;
        }
        let projected = sending_ended.elapsed() - drain;

        // Read back what the log holds: every message once, as an agent_message_received event.
        let mut commits = 0;
        for (i, agent) in agents.iter().enumerate() {
            let stored = self
                .app
                .log()
                .commits_after(&agent.subject, before[i].1)
                .await
                .context("reading the round's commits back")?;
            let events: Vec<_> = stored.iter().flat_map(|c| &c.events).collect();
            ensure!(
                events.len() as u64 == sent_all[i] && events.iter().all(|e| e.ty.contains(RECEIVED)),
                "agent {} sent {} messages; its CVM has {} new events, of types {:?}",
                agent.index,
                sent_all[i],
                events.len(),
                events
                    .iter()
                    .map(|e| e.ty.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
            );
            commits += stored.len() as u64;
        }
        Ok(Round {
            case: Case {
                agents: count,
                kind: Kind::Channel,
            },
            messages: sent_all.iter().sum(),
            commits,
            elapsed,
            drain: Some(drain),
            projected: Some(projected),
            cpu: Cpu::default(),
        })
    }

    /// Cuts the raw side's payloads from the largest commit the first agent's CVM has.
    async fn raw_templates(&self, nats: &NatsServer) -> anyhow::Result<RawTemplates> {
        let agent = &self.agents[0];
        let commits = self.app.log().commits_after(&agent.subject, 0).await?;
        let largest = commits
            .iter()
            .filter(|c| c.events.iter().all(|e| e.ty.contains(RECEIVED)))
            .max_by_key(|c| c.events.len())
            .context("the warm-up recorded nothing")?;
        let batch_events = largest
            .events
            .len()
            .min(prism_agents::ChannelConfig::default().batch);
        let template = |events: &[prism_store::EventEnvelope]| -> anyhow::Result<Arc<Append>> {
            Ok(Arc::new(Append {
                subject: String::new(),
                expected_last_sequence: 0,
                msg_id: String::new(),
                fingerprint: largest.fingerprint.clone(),
                traceparent: events[0].traceparent.clone(),
                payload: serde_json::to_vec(events)?,
            }))
        };
        let store = EventStore::connect(
            &nats.url(),
            StoreConfig {
                stream: RAW_STREAM.into(),
                subject_prefix: RAW_PREFIX.into(),
                ..StoreConfig::default()
            },
        )
        .await?;
        Ok(RawTemplates {
            store,
            single: template(&largest.events[..1])?,
            batch: template(&largest.events[..batch_events])?,
            batch_events,
            msg_id_len: largest.msg_id.as_deref().map_or(32, str::len),
            last: (0..self.agents.len()).map(|_| Arc::default()).collect(),
        })
    }

    /// `case.agents` clients each append one commit after another on a subject of their own, until
    /// `duration` has passed.
    async fn raw(&self, case: Case, duration: Duration) -> anyhow::Result<Round> {
        let raw = self.raw.as_ref().context("raw templates first")?;
        let (template, per_commit) = match case.kind {
            Kind::RawSingle => (raw.single.clone(), 1),
            _ => (raw.batch.clone(), raw.batch_events as u64),
        };
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = JoinSet::new();
        for client in 0..case.agents {
            let store = raw.store.clone();
            let template = template.clone();
            let last = raw.last[client].clone();
            let next = self.next.clone();
            let width = raw.msg_id_len;
            // Subjects as long as a CVM's: `<prefix>.cvm.<UUID>`.
            let subject = store.subject("cvm", &format!("00000000-0000-7000-8000-{client:012x}"))?;
            tasks.spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let mut append = Append::clone(&template);
                    append.subject = subject.clone();
                    append.expected_last_sequence = last.load(Ordering::Relaxed);
                    append.msg_id = format!("{n:0>width$x}");
                    let ack = store.append(append).await?;
                    ensure!(!ack.duplicate, "raw publish {n} was taken for a duplicate");
                    last.store(ack.sequence, Ordering::Relaxed);
                    done += 1;
                }
                anyhow::Ok(done)
            });
        }
        let mut commits = 0;
        while let Some(done) = tasks.join_next().await {
            commits += done??;
        }
        Ok(Round {
            case,
            messages: commits * per_commit,
            commits,
            elapsed: start.elapsed(),
            drain: None,
            projected: None,
            cpu: Cpu::default(),
        })
    }
}

/// Set in a body's counter once it has ended.
const ENDED: u64 = 1 << 63;

/// The messages of one agent's stream: none before the start, then as many as the channel takes until
/// the deadline.
struct Body {
    agent: usize,
    started: watch::Receiver<Option<Instant>>,
    deadline: Option<Instant>,
    next: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl Body {
    fn into_stream(self) -> impl futures::Stream<Item = ClientStreamMessage> + Send + 'static {
        futures::stream::unfold(self, |mut body| async move {
            let deadline = match body.deadline {
                Some(deadline) => deadline,
                None => {
                    let deadline = body
                        .started
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|d| *d)?;
                    body.deadline = Some(deadline);
                    deadline
                }
            };
            if Instant::now() >= deadline {
                body.sent.fetch_or(ENDED, Ordering::AcqRel);
                return None;
            }
            let n = body.next.fetch_add(1, Ordering::Relaxed);
            body.sent.fetch_add(1, Ordering::AcqRel);
            Some((message(body.agent, n), body))
        })
        .boxed()
    }
}
