//! A run's path on the local backend, against its limits, in one run of the benchmark:
//!
//! 1. **Run request → result in hand.** A [`Platform`] with its own nats-server (`sync_interval:
//!    always`) and PostgreSQL database runs the local backend as `prism up` does (the emulated agent
//!    `prism-emulated-agent`, one process per CVM; attestation in insecure development mode). One
//!    participant holds every role and a key. Each round: `POST /{ws}/computations/{id}/runs` → the
//!    run is `awaiting_inputs` (CVM made, agent dialled in, run request sent, fresh evidence
//!    appraised) → the participant reads the connection details, dials the agent (TLS, pinned) and
//!    uploads a Python algorithm and a 1 MiB CSV dataset with [`ParticipantClient`] → the run is
//!    `results_ready` → the result (a zip) is fetched. The clock runs from the request to the result's
//!    bytes in hand; each phase is reported. The limits, measured in the same rounds: the same
//!    algorithm run directly as a process (`python3 algo` in a directory laid out as the agent lays it
//!    out) on the same input — the floor of the execution phase — and what the platform adds on top
//!    of it (the total less that floor). Target: under 2 s (reported, never asserted).
//!
//! 2. **Upload throughput to the agent.** `ParticipantClient::upload_dataset` of a large dataset
//!    (64 MiB by default, in the client's 1 MiB chunks) to a run's emulated agent over its TLS gRPC
//!    API, next to raw rustls over loopback: a rustls client writing the same bytes, in the same 1 MiB
//!    writes, to a rustls server in this process, both configured as the participant's dial and the
//!    agent's listener are (ring, the same protocol versions and cipher suites, ALPN `h2`, a P-256
//!    `agent_server` certificate of a Prism authority), TCP_NODELAY on both ends. The agent does
//!    more than receive: it checks the SHA3-256 of the whole dataset against the manifest and writes
//!    it to its directory (`emulated-agent/src/computation.rs`, `Agent::data`), so the run also shows
//!    where the time goes: raw rustls with the server hashing what it reads (SHA3-256), the same
//!    with the server also writing it to a new file (the agent's work without gRPC), and SHA3-256 of
//!    the same bytes in memory on one core. Both ends of the raw cases run in this process, on the
//!    runtime that also runs the (idle) platform. Target: the agent at ≥ 0.5× raw rustls.
//!
//! Run with `cargo build --release -p prism-emulated-agent && cargo bench -p prism-cli --bench
//! run_path`: the emulated agent is a program of its own, which `cargo bench` does not build. It is
//! looked for in `PRISM_EMULATED_AGENT`, else beside the benchmark's directory
//! (`target/release/prism-emulated-agent`); without it the benchmark says so and exits with status 2.
//! Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds of each part (default 5), after one warm-up round.
//! * `PRISM_BENCH_UPLOAD_MIB`: the size of the large dataset (default 64).
//! * `PRISM_BENCH_ONLY`: `latency` or `upload` to run one part.
//!
//! In part 2 the cases run in turn within a round, in reverse order every other round, so a drift of
//! the machine hits every case alike. It exits non-zero only when something fails (a run that does
//! not reach a state, a result that is not the algorithm's), never because a target is missed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use prism_agents::AgentEndpoint;
use prism_agents::participant::{CHUNK, ParticipantClient, ParticipantKey, Progress};
use prism_benchkit::{Cpu, CpuMeter, cores, cpu_model, median, process_cpu_seconds, thousands};
use prism_cli::{AgentsConfig, LocalBackendConfig, Platform, PlatformConfig, ProvisioningSettings};
use prism_domain::certificate::{Profile, Subject};
use prism_domain::run::manifest::consent_message;
use prism_domain::testing::keys::{ED25519_BASE64_DER, ED25519_PRIVATE_PEM};
use prism_embedded::{NatsServer, TestDatabase, find_nats_server};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use sha3::{Digest as _, Sha3_256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_UPLOAD_MIB: usize = 64;
/// The dataset of part 1: a CSV of at most this many bytes.
const DATASET_BYTES: usize = 1024 * 1024;
/// How often a run's state is read while waiting for it.
const POLL: Duration = Duration::from_millis(10);
/// How long a run may take to reach a state before the benchmark fails.
const STATE_LIMIT: Duration = Duration::from_secs(120);
const TARGET_LATENCY: Duration = Duration::from_secs(2);
const TARGET_UPLOAD_RATIO: f64 = 0.5;
/// The raw server reads as a plain TCP server would: into a 64 KiB buffer.
const RAW_READ_BUFFER: usize = 64 * 1024;

/// Part 1's algorithm: the sum of the CSV's `value` column, written to `results/total.txt`.
const SUM: &[u8] = b"import pathlib
total = 0
with open('datasets/data.csv') as f:
    next(f)
    for line in f:
        total += int(line.rsplit(',', 1)[1])
pathlib.Path('results/total.txt').write_text(str(total))
";

/// Part 2's algorithm: how many bytes it was given.
const COUNT: &[u8] = b"import pathlib
size = sum(p.stat().st_size for p in pathlib.Path('datasets').iterdir())
pathlib.Path('results/bytes.txt').write_text(str(size))
";

/// States a run passes through before it awaits its inputs.
const BEFORE_INPUTS: &[&str] = &["requested", "provisioning", "agent_connecting", "attesting"];
/// States that end waiting for the result: ready, or never going to be.
const RESULT_OR_END: &[&str] = &[
    "results_ready",
    "completed",
    "failed",
    "timed_out",
    "stopping",
    "cleaning_up",
    "closed",
];

#[derive(Debug)]
struct Settings {
    rounds: usize,
    upload_mib: usize,
    latency: bool,
    upload: bool,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number =
            |name: &str, default: usize| prism_benchkit::env_count(name, default).map_err(anyhow::Error::msg);
        let (latency, upload) = match std::env::var("PRISM_BENCH_ONLY").as_deref() {
            Err(_) => (true, true),
            Ok("latency") => (true, false),
            Ok("upload") => (false, true),
            Ok(other) => bail!("PRISM_BENCH_ONLY={other:?}: `latency` or `upload`"),
        };
        Ok(Self {
            rounds: number("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS)?,
            upload_mib: number("PRISM_BENCH_UPLOAD_MIB", DEFAULT_UPLOAD_MIB)?,
            latency,
            upload,
        })
    }
}

/// The emulated agent: `PRISM_EMULATED_AGENT`, else `target/<profile>/prism-emulated-agent` (this
/// benchmark runs from `target/<profile>/deps/`).
fn agent_program() -> PathBuf {
    if let Some(path) = std::env::var_os("PRISM_EMULATED_AGENT").filter(|p| !p.is_empty()) {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("prism-emulated-agent"))
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let program = agent_program();
    if !program.is_file() {
        eprintln!(
            "the emulated agent is not at {}: build it first with\n  cargo build --release -p prism-emulated-agent\n\
             (or name it in PRISM_EMULATED_AGENT)",
            program.display()
        );
        std::process::exit(2);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings, program))
}

async fn run(settings: Settings, program: PathBuf) -> anyhow::Result<()> {
    let nats = NatsServer::start_temp().await?;
    let db = TestDatabase::create().await?;
    let cvms = tempfile::Builder::new().prefix("prism-bench-cvms-").tempdir()?;
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
    // As `prism up` runs: signed snapshots, the agents' channel on loopback (30 s heartbeat gap), the
    // local backend (4 CVMs), evidence of machines without a TEE accepted as insecure.
    config.snapshot_key = Some(prism_store::SnapshotKey::new(vec![0x42; 32])?);
    config.agents = Some(AgentsConfig {
        listen: "127.0.0.1:0".parse()?,
        names: Vec::new(),
        heartbeat_gap: Duration::from_secs(30),
        dial: None,
    });
    config.provisioning = ProvisioningSettings {
        local: Some(LocalBackendConfig {
            program: program.clone(),
            root: cvms.path().to_owned(),
            capacity: 4,
        }),
        ..Default::default()
    };
    config.app.attestation = prism_app::AttestationConfig {
        mode: prism_attestation::Mode::InsecureDevelopment,
        vcek_cache: None,
    };
    let platform = Platform::start(config).await?;
    let result = measure(&settings, &program, &nats, &db, &platform).await;
    platform.shutdown().await?;
    drop(nats);
    result
}

async fn measure(
    settings: &Settings,
    program: &Path,
    nats: &NatsServer,
    db: &TestDatabase,
    platform: &Platform,
) -> anyhow::Result<()> {
    let base = platform.base_url();
    let token = sign_in_as_admin(platform, &base).await?;
    let admin = platform
        .app()
        .identity()
        .authenticate(prism_app::Caller::anonymous(), &token)
        .await?;
    let me = admin
        .user()
        .context("the administrator is a user")?
        .id
        .to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    let api = Api {
        http: reqwest::Client::builder().default_headers(headers).build()?,
        base: base.trim_end_matches('/').to_owned(),
    };
    let ws = api.post("/workspaces", json!({"name": "Run benchmark"})).await?["id"]
        .as_str()
        .context("a workspace id")?
        .to_owned();
    let key = ParticipantKey::from_pkcs8_pem(ED25519_PRIVATE_PEM)?;

    let nats_version = find_nats_server()
        .ok()
        .and_then(|bin| std::process::Command::new(bin).arg("--version").output().ok())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "nats-server (version unknown)".to_owned());
    let meter = CpuMeter::new(nats.store_dir(), &db.url).await?;
    let postgres = meter
        .postgres_version()
        .await
        .unwrap_or_else(|_| "PostgreSQL (version unknown)".into());
    // The agent runs `python3` from its PATH, which it inherits from this process; so does the
    // direct run. A version manager's shim (pyenv's is a shell script) makes every start slower.
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import platform, sys; print('Python', platform.python_version(), sys.executable)",
        ])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|_| "python3 missing".into());
    let shim = which("python3")
        .and_then(|path| std::fs::read(&path).ok().map(|bytes| (path, bytes)))
        .filter(|(_, bytes)| bytes.starts_with(b"#!"))
        .map(|(path, _)| {
            format!(
                "; `python3` on PATH is a script ({}), which starts the interpreter",
                path.display()
            )
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {}; load average at start: {}",
        cores(),
        cpu_model(),
        load()
    );
    println!("{nats_version} (sync_interval: always), {postgres}, {python}{shim}");
    println!("emulated agent: {}", program.display());
    println!(
        "{} timed rounds per part after one warm-up round; medians reported",
        settings.rounds
    );

    if settings.latency {
        latency(settings, &api, &meter, &ws, &me, &key).await?;
    }
    if settings.upload {
        upload(settings, &api, &ws, &me, &key).await?;
    }
    println!("\nload average at end: {}", load());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part 1: run request → result in hand.

/// One round of part 1.
#[derive(Debug, Clone)]
struct Latency {
    run: String,
    requested_at: DateTime<Utc>,
    /// Request → `awaiting_inputs` observed.
    to_inputs: Duration,
    /// Connection details read, agent dialled (TLS).
    connect: Duration,
    /// Algorithm and dataset uploaded.
    upload: Duration,
    /// Last upload answered → `results_ready` observed.
    to_results: Duration,
    /// Result fetched.
    fetch: Duration,
    total: Duration,
    /// The same algorithm on the same input as a direct process.
    direct: Duration,
    /// `python3 -c pass`: the interpreter's start alone.
    interpreter: Duration,
    /// CPU from the request to the result in hand: this process (the platform and the participant),
    /// nats-server, the database's backends.
    cpu: Cpu,
    /// CPU of the run's agent process over its life until the result was fetched (without the
    /// algorithm's own process).
    agent_cpu: Option<f64>,
}

async fn latency(
    settings: &Settings,
    api: &Api,
    meter: &CpuMeter,
    ws: &str,
    me: &str,
    key: &ParticipantKey,
) -> anyhow::Result<()> {
    let (dataset, expected) = csv_dataset(DATASET_BYTES);
    let computation = computation(
        api,
        ws,
        me,
        "Run latency",
        SUM,
        &[("data.csv".to_owned(), dataset.as_slice())],
    )
    .await?;
    consent(api, ws, &computation, key).await?;
    println!(
        "\n1. run request -> result in hand: algorithm `algo.py` (python, {} B), dataset `data.csv` ({} B of CSV, \
         1 MiB at most), one participant with every role",
        SUM.len(),
        thousands(dataset.len() as f64)
    );
    let mut rounds = Vec::new();
    for round in 0..=settings.rounds {
        let measured = latency_round(api, meter, ws, &computation, key, &dataset, expected).await?;
        let label = if round == 0 { "warm-up" } else { "round" };
        eprintln!(
            "  {label} {round}: total {} ms (awaiting_inputs {} ms), direct execution {} ms",
            ms(measured.total),
            ms(measured.to_inputs),
            ms(measured.direct)
        );
        if round > 0 {
            rounds.push(measured);
        }
    }

    let med = |f: &dyn Fn(&Latency) -> Duration| {
        Duration::from_secs_f64(
            median(rounds.iter().map(|r| f(r).as_secs_f64()).collect()).unwrap_or(f64::NAN),
        )
    };
    let total = med(&|r| r.total);
    let direct = med(&|r| r.direct);
    let execution = med(&|r| r.to_results);
    let overhead = med(&|r| r.total.saturating_sub(r.direct));
    let rows: [(&str, Duration); 5] = [
        (
            "request -> awaiting_inputs (provisioning, attestation)",
            med(&|r| r.to_inputs),
        ),
        ("connection details + TLS dial of the agent", med(&|r| r.connect)),
        ("upload algorithm + dataset", med(&|r| r.upload)),
        ("inputs in -> results_ready (execution)", execution),
        ("fetch the result", med(&|r| r.fetch)),
    ];
    println!(
        "phase (median of each over {} rounds)                         ms   of total",
        rounds.len()
    );
    for (label, value) in rows {
        println!(
            "  {label:<58} {:>7}   {:>5.1} %",
            ms(value),
            100.0 * value.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!(
        "total: request -> result in hand (median)                      {:>7}   target < {} ms {}",
        ms(total),
        ms(TARGET_LATENCY),
        if total < TARGET_LATENCY { "met" } else { "missed" }
    );
    println!(
        "limit: the same algorithm as a direct process, same input      {:>7}",
        ms(direct)
    );
    println!(
        "  of which python3's start alone (python3 -c pass)             {:>7}",
        ms(med(&|r| r.interpreter))
    );
    println!(
        "platform overhead: total - direct execution (median)           {:>7}",
        ms(overhead)
    );
    println!(
        "ratios: total / direct execution {:.1}x; execution phase / direct execution {:.1}x; overhead / total {:.2}",
        total.as_secs_f64() / direct.as_secs_f64(),
        execution.as_secs_f64() / direct.as_secs_f64(),
        overhead.as_secs_f64() / total.as_secs_f64()
    );
    let cpu_ms = |f: &dyn Fn(&Latency) -> Option<f64>| {
        median(rounds.iter().filter_map(|r| f(r).map(|s| s * 1000.0)).collect())
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
    };
    println!(
        "CPU per run, request -> result (median, ms): this process (platform + participant) {}, nats-server {}, \
         PostgreSQL {}, the agent process {}",
        cpu_ms(&|r| r.cpu.this),
        cpu_ms(&|r| r.cpu.nats),
        cpu_ms(&|r| r.cpu.postgres),
        cpu_ms(&|r| r.agent_cpu)
    );
    println!("rounds in run order, ms (total / awaiting_inputs / execution / direct):");
    for r in &rounds {
        println!(
            "  {} / {} / {} / {}",
            ms(r.total),
            ms(r.to_inputs),
            ms(r.to_results),
            ms(r.direct)
        );
    }
    // The round whose total is the median, told by the platform's own event times.
    let mut sorted = rounds.clone();
    sorted.sort_by_key(|r| r.total);
    let middle = &sorted[sorted.len() / 2];
    println!(
        "timeline of the median round (run {}), ms after the request, from the events' recorded times:",
        middle.run
    );
    for (at, what) in timeline(api, ws, &middle.run, middle.requested_at).await? {
        println!("  {at:>7}  {what}");
    }
    Ok(())
}

async fn latency_round(
    api: &Api,
    meter: &CpuMeter,
    ws: &str,
    computation: &str,
    key: &ParticipantKey,
    dataset: &[u8],
    expected: u64,
) -> anyhow::Result<Latency> {
    let (algorithm, data) = (SUM.to_vec(), dataset.to_vec());
    let cpu_before = meter.now().await?;
    let requested_at = Utc::now();
    let start = Instant::now();
    let run = api
        .post(&format!("/{ws}/computations/{computation}/runs"), json!({}))
        .await?["id"]
        .as_str()
        .context("a run id")?
        .to_owned();
    let attested = until_state(api, ws, &run, |s| !BEFORE_INPUTS.contains(&s)).await?;
    ensure!(
        attested["status"] == "awaiting_inputs",
        "the run did not await its inputs: {attested:#}"
    );
    let inputs = Instant::now();
    let mut agent = connect(api, ws, &run).await?;
    let connected = Instant::now();
    agent
        .upload_algorithm(key, algorithm, "python", Vec::new(), quiet())
        .await?;
    agent.upload_dataset(key, data, "data.csv", quiet()).await?;
    let uploaded = Instant::now();
    let ready = until_state(api, ws, &run, |s| RESULT_OR_END.contains(&s)).await?;
    ensure!(
        ready["status"] == "results_ready",
        "the run has no result: {ready:#}"
    );
    let results = Instant::now();
    let zip = agent.fetch_result(key, quiet()).await?;
    let fetched = Instant::now();
    let cpu = meter.since(cpu_before).await?;
    let agent_cpu = attested["cvm"]
        .as_str()
        .and_then(agent_pid)
        .and_then(|pid| process_cpu_seconds(&pid));

    let total = read_zip_entry(&zip, "total.txt")?;
    ensure!(
        total.trim() == expected.to_string(),
        "the result says {total}, the dataset sums to {expected}"
    );
    // The consumer's receipt completes the run; it is cleaned up before the next round starts.
    api.post(
        &format!("/{ws}/runs/{run}/receipts"),
        json!({"kind": "result", "file_name": "", "sha3_256": sha3_hex(&zip)}),
    )
    .await?;
    let closed = until_state(api, ws, &run, |s| s == "closed").await?;
    ensure!(closed["ending"].is_null(), "the run ended badly: {closed:#}");

    let direct = direct_execution(SUM, dataset, expected).await?;
    let interpreter = interpreter_start().await?;
    Ok(Latency {
        run,
        requested_at,
        to_inputs: inputs - start,
        connect: connected - inputs,
        upload: uploaded - connected,
        to_results: results - uploaded,
        fetch: fetched - results,
        total: fetched - start,
        direct,
        interpreter,
        cpu,
        agent_cpu,
    })
}

/// The algorithm run as the agent runs it — `python3 algo` in a directory holding `algo`,
/// `datasets/` and `results/` — from the spawn to its exit; its result checked.
async fn direct_execution(algorithm: &[u8], dataset: &[u8], expected: u64) -> anyhow::Result<Duration> {
    let dir = tempfile::Builder::new().prefix("prism-bench-direct-").tempdir()?;
    std::fs::write(dir.path().join("algo"), algorithm)?;
    std::fs::create_dir(dir.path().join("datasets"))?;
    std::fs::write(dir.path().join("datasets/data.csv"), dataset)?;
    std::fs::create_dir(dir.path().join("results"))?;
    let start = Instant::now();
    let output = tokio::process::Command::new("python3")
        .arg(dir.path().join("algo"))
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let elapsed = start.elapsed();
    ensure!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total = std::fs::read_to_string(dir.path().join("results/total.txt"))?;
    ensure!(total.trim() == expected.to_string(), "direct run says {total}");
    Ok(elapsed)
}

/// `python3 -c pass`, from the spawn to its exit.
async fn interpreter_start() -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = tokio::process::Command::new("python3")
        .args(["-c", "pass"])
        .stdin(std::process::Stdio::null())
        .status()
        .await?;
    ensure!(status.success(), "python3 -c pass failed");
    Ok(start.elapsed())
}

/// The run's events (and its CVM's), but for its agent's messages, at their recorded times.
async fn timeline(
    api: &Api,
    ws: &str,
    run: &str,
    requested_at: DateTime<Utc>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut lines = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = match after {
            Some(after) => format!("limit=100&after={after}"),
            None => "limit=100".to_owned(),
        };
        let page = api.get(&format!("/{ws}/runs/{run}/events?{query}")).await?;
        for event in page["items"].as_array().into_iter().flatten() {
            let name = event["event"].as_str().unwrap_or("?");
            let message = &event["data"]["message"];
            let what = if name == "agent_message_received" {
                // The agent's events and reports, not its log lines.
                match message["kind"].as_str() {
                    Some("event") => format!(
                        "agent: {} {}",
                        message["event_type"].as_str().unwrap_or("?"),
                        message["status"].as_str().unwrap_or("")
                    ),
                    Some("log") | None => continue,
                    Some(kind) => format!("agent: {kind}"),
                }
            } else {
                format!("{} {name}", event["source"].as_str().unwrap_or("?"))
            };
            let at = event["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    (t.with_timezone(&Utc) - requested_at)
                        .num_milliseconds()
                        .to_string()
                })
                .unwrap_or_else(|| "?".into());
            lines.push((at, what));
        }
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(lines)
}

/// A CSV `id,value` of at most `bytes` bytes, and the sum of its values.
fn csv_dataset(bytes: usize) -> (Vec<u8>, u64) {
    let mut csv = b"id,value\n".to_vec();
    let mut sum = 0u64;
    for id in 1u64.. {
        let value = id.wrapping_mul(7919) % 100_000;
        let row = format!("{id},{value}\n");
        if csv.len() + row.len() > bytes {
            break;
        }
        csv.extend_from_slice(row.as_bytes());
        sum += value;
    }
    (csv, sum)
}

fn read_zip_entry(zip: &[u8], name: &str) -> anyhow::Result<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).context("the result is no zip")?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut archive
            .by_name(name)
            .with_context(|| format!("no {name} in the result"))?,
        &mut text,
    )?;
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Part 2: upload throughput.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Raw,
    RawSha3,
    RawSha3File,
    Sha3,
    Agent,
}

impl Case {
    const ALL: [Case; 5] = [
        Case::Raw,
        Case::RawSha3,
        Case::RawSha3File,
        Case::Sha3,
        Case::Agent,
    ];

    fn label(self) -> &'static str {
        match self {
            Case::Raw => "raw rustls loopback",
            Case::RawSha3 => "raw rustls + SHA3-256 as it arrives",
            Case::RawSha3File => "raw rustls + SHA3-256 + file, as it arrives",
            Case::Sha3 => "SHA3-256 of the bytes in memory, one core",
            Case::Agent => "upload_dataset to the agent (TLS gRPC)",
        }
    }
}

/// What the raw server does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Keep {
    /// Nothing: read and drop.
    Nothing = 0,
    /// Hash them (SHA3-256).
    Hash = 1,
    /// Hash them and write them to a new file.
    HashAndFile = 2,
}

#[derive(Debug, Clone, Copy)]
struct Transfer {
    case: Case,
    elapsed: Duration,
    /// CPU seconds of this process during the transfer.
    this_cpu: Option<f64>,
    /// CPU seconds of the agent's process during the transfer.
    agent_cpu: Option<f64>,
}

async fn upload(
    settings: &Settings,
    api: &Api,
    ws: &str,
    me: &str,
    key: &ParticipantKey,
) -> anyhow::Result<()> {
    let size = settings.upload_mib * 1024 * 1024;
    // One dataset per round and one for the warm-up: the agent takes each declared dataset once.
    let datasets: Vec<(String, Vec<u8>)> = (0..=settings.rounds)
        .map(|i| (format!("part-{i}.bin"), noise(size, i as u64 + 1)))
        .collect();
    let declared: Vec<(String, &[u8])> = datasets
        .iter()
        .map(|(name, bytes)| (name.clone(), bytes.as_slice()))
        .collect();
    let computation = computation(api, ws, me, "Upload throughput", COUNT, &declared).await?;
    consent(api, ws, &computation, key).await?;
    let run = api
        .post(&format!("/{ws}/computations/{computation}/runs"), json!({}))
        .await?["id"]
        .as_str()
        .context("a run id")?
        .to_owned();
    let attested = until_state(api, ws, &run, |s| !BEFORE_INPUTS.contains(&s)).await?;
    ensure!(
        attested["status"] == "awaiting_inputs",
        "the run did not await its inputs: {attested:#}"
    );
    let cvm = attested["cvm"].as_str().context("the run's CVM")?.to_owned();
    let endpoint = endpoint(api, ws, &run).await?;
    let mut agent = ParticipantClient::connect(&endpoint).await?;
    agent
        .upload_algorithm(key, COUNT.to_vec(), "python", Vec::new(), quiet())
        .await?;
    let agent_pid = agent_pid(&cvm);
    let agent_suite = negotiated(&endpoint).await?;
    let files = tempfile::Builder::new().prefix("prism-bench-raw-").tempdir()?;
    let mut raw = RawTls::start(files.path().to_owned()).await?;

    println!(
        "\n2. upload of {} MiB in {} KiB chunks: ParticipantClient::upload_dataset to the run's emulated agent, \
         next to raw rustls over loopback",
        settings.upload_mib,
        CHUNK / 1024
    );
    println!(
        "TLS: agent {agent_suite}; raw {} (both: ring, P-256 agent_server certificate of a Prism authority, ALPN h2, TCP_NODELAY)",
        raw.suite
    );
    println!(
        "the agent hashes and writes each chunk to a file as it arrives (a blocking thread, a few chunks queued) and checks \
         the SHA3-256 against the manifest once the last is in ({}); the raw server reads into a {} KiB buffer, hashing \
         and writing as it reads",
        if agent_pid.is_some() {
            "its CPU is read from /proc"
        } else {
            "its process was not found: no CPU figures"
        },
        RAW_READ_BUFFER / 1024
    );

    let mut transfers = Vec::new();
    let mut next_dataset = 0;
    for round in 0..=settings.rounds {
        let mut order = Case::ALL.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for case in order {
            let payload = &datasets[next_dataset.min(datasets.len() - 1)].1;
            let this_before = process_cpu_seconds("self");
            let agent_before = agent_pid.as_deref().and_then(process_cpu_seconds);
            let elapsed = match case {
                Case::Raw => raw.send(payload, Keep::Nothing).await?.0,
                Case::RawSha3 | Case::RawSha3File => {
                    let keep = if case == Case::RawSha3 {
                        Keep::Hash
                    } else {
                        Keep::HashAndFile
                    };
                    let (elapsed, digest) = raw.send(payload, keep).await?;
                    ensure!(
                        digest == Sha3_256::digest(payload).as_slice(),
                        "the raw server hashed other bytes"
                    );
                    elapsed
                }
                Case::Sha3 => {
                    let start = Instant::now();
                    std::hint::black_box(Sha3_256::digest(std::hint::black_box(payload)));
                    start.elapsed()
                }
                Case::Agent => {
                    let (name, bytes) = &datasets[next_dataset];
                    next_dataset += 1;
                    let bytes = bytes.clone();
                    let start = Instant::now();
                    agent.upload_dataset(key, bytes, name, quiet()).await?;
                    start.elapsed()
                }
            };
            let diff = |after: Option<f64>, before: Option<f64>| Some(after? - before?);
            let transfer = Transfer {
                case,
                elapsed,
                this_cpu: diff(process_cpu_seconds("self"), this_before),
                agent_cpu: diff(agent_pid.as_deref().and_then(process_cpu_seconds), agent_before),
            };
            if round > 0 {
                transfers.push(transfer);
            }
        }
        eprintln!("  {} {round} done", if round == 0 { "warm-up" } else { "round" });
    }
    // Every dataset is in: the run goes on; it is stopped and cleaned up.
    api.post(
        &format!("/{ws}/runs/{run}/stop"),
        json!({"reason": "benchmark finished"}),
    )
    .await?;
    until_state(api, ws, &run, |s| s == "closed").await?;

    let mib = settings.upload_mib as f64;
    let rate = |case: Case| {
        median(
            transfers
                .iter()
                .filter(|t| t.case == case)
                .map(|t| mib / t.elapsed.as_secs_f64())
                .collect(),
        )
        .unwrap_or(f64::NAN)
    };
    let cpu = |case: Case, f: &dyn Fn(&Transfer) -> Option<f64>| {
        median(
            transfers
                .iter()
                .filter(|t| t.case == case)
                .filter_map(|t| f(t).map(|s| 1000.0 * s / mib))
                .collect(),
        )
    };
    let raw_rate = rate(Case::Raw);
    println!(
        "case                                            MiB/s   vs raw   CPU ms/MiB: this process   agent"
    );
    for case in Case::ALL {
        let value = rate(case);
        let verdict = if case == Case::Agent {
            let ratio = value / raw_rate;
            format!(
                "   target >= {TARGET_UPLOAD_RATIO:.1} {}",
                if ratio >= TARGET_UPLOAD_RATIO {
                    "met"
                } else {
                    "missed"
                }
            )
        } else {
            String::new()
        };
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "  {:<44} {:>6}   {:>5.2}   {:>24}   {:>5}{verdict}",
            case.label(),
            thousands(value),
            value / raw_rate,
            show(cpu(case, &|t| t.this_cpu)),
            if case == Case::Agent {
                show(cpu(case, &|t| t.agent_cpu))
            } else {
                "-".to_owned()
            },
        );
    }
    println!(
        "agent vs raw rustls + SHA3-256: {:.2}; vs raw rustls + SHA3-256 + file: {:.2}",
        rate(Case::Agent) / rate(Case::RawSha3),
        rate(Case::Agent) / rate(Case::RawSha3File)
    );
    println!("rounds, MiB/s in run order:");
    for case in Case::ALL {
        let rates: Vec<String> = transfers
            .iter()
            .filter(|t| t.case == case)
            .map(|t| thousands(mib / t.elapsed.as_secs_f64()))
            .collect();
        println!("  {:<44} {}", case.label(), rates.join(" "));
    }
    Ok(())
}

/// `bytes` of xorshift noise from `seed`: every dataset different, none compressible.
fn noise(bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(bytes + 8);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(bytes);
    out
}

/// The pid of the emulated agent of `cvm`, a child of this process (the local backend's driver
/// runs in it): its environment names the CVM.
fn agent_pid(cvm: &str) -> Option<String> {
    let me = std::process::id().to_string();
    let wanted = format!("AGENT_CVM_ID={cvm}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
        if parent != me {
            return None;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes())
            .then_some(pid)
    })
}

/// The cipher suite and protocol a client configured as the participant's dial agrees with the
/// agent (a connection of its own, closed at once).
async fn negotiated(endpoint: &AgentEndpoint) -> anyhow::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(endpoint.roots_pem.as_bytes()) {
        roots.add(certificate?)?;
    }
    let tcp = TcpStream::connect(endpoint.address.as_str()).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(endpoint.server_name.clone())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_config(roots)?))
        .connect(name, tcp)
        .await?;
    Ok(describe(tls.get_ref().1))
}

fn describe(connection: &rustls::CommonState) -> String {
    let suite = connection
        .negotiated_cipher_suite()
        .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
    let version = connection
        .protocol_version()
        .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
    format!("{version} {suite}")
}

/// The participant's TLS client as `prism_agents`'s dial builds it: rustls on ring, its safe
/// default protocol versions and cipher suites, ALPN `h2`.
fn client_config(roots: rustls::RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Raw rustls over loopback: one connection, a server task in this process reading what the
/// client writes (and hashing it when asked), answering 32 bytes once it has it all.
struct RawTls {
    client: tokio_rustls::client::TlsStream<TcpStream>,
    suite: String,
}

impl RawTls {
    /// A server that writes the files it is asked to keep into `files`, and a client of it.
    async fn start(files: PathBuf) -> anyhow::Result<Self> {
        let now = Utc::now();
        let (authority, _) = prism_ca::Authority::create(prism_ca::CaUrls::under("http://prism.bench"), now)?;
        let subject = Subject {
            common_name: "raw-rustls".into(),
            ip_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ..Default::default()
        };
        // The certificate the platform gives a run's agent: profile `agent_server`, a new P-256 key.
        let issued = authority.issue(
            Profile::AgentServer,
            &subject,
            Duration::from_secs(24 * 3600),
            prism_ca::KeySource::Generate,
            now,
        )?;
        let chain_pem = format!("{}{}", issued.pem, authority.intermediate_pem());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(
            issued
                .private_key_pem
                .as_ref()
                .context("a generated key")?
                .as_bytes(),
        )?;
        // As the emulated agent's listener (`participants::tls_config`): ring, safe defaults, no
        // client authentication, ALPN h2.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let address = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                if let Ok(tls) = acceptor.accept(tcp).await
                    && let Err(e) = serve_raw(tls, &files).await
                {
                    eprintln!("raw rustls server: {e}");
                }
            }
        });

        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(authority.root_der().to_vec()))?;
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let client = tokio_rustls::TlsConnector::from(Arc::new(client_config(roots)?))
            .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
            .await?;
        let suite = describe(client.get_ref().1);
        Ok(Self { client, suite })
    }

    /// Writes `payload` in the participant's chunks and waits for the server's answer (the
    /// SHA3-256 unless it keeps nothing); the time from the first byte written to the answer.
    async fn send(&mut self, payload: &[u8], keep: Keep) -> anyhow::Result<(Duration, [u8; 32])> {
        let mut header = [0u8; 9];
        header[0] = keep as u8;
        header[1..].copy_from_slice(&(payload.len() as u64).to_be_bytes());
        let start = Instant::now();
        self.client.write_all(&header).await?;
        for chunk in payload.chunks(CHUNK) {
            self.client.write_all(chunk).await?;
        }
        self.client.flush().await?;
        let mut answer = [0u8; 32];
        self.client.read_exact(&mut answer).await?;
        Ok((start.elapsed(), answer))
    }
}

/// Reads transfers until the client goes: a 9-byte header ([`Keep`], length), the bytes, then 32
/// bytes back (their SHA3-256, or zeros). Files go to `files`, a new one per transfer, written as
/// the agent writes a dataset (a plain `write`, no sync), and stay until the benchmark ends, as the
/// agent's stay until its run ends.
async fn serve_raw(mut tls: tokio_rustls::server::TlsStream<TcpStream>, files: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut buffer = vec![0u8; RAW_READ_BUFFER];
    for transfer in 0u64.. {
        let mut header = [0u8; 9];
        match tls.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let hash = header[0] != Keep::Nothing as u8;
        let mut file = if header[0] == Keep::HashAndFile as u8 {
            Some(std::fs::File::create(
                files.join(format!("transfer-{transfer}.bin")),
            )?)
        } else {
            None
        };
        let mut left = u64::from_be_bytes(header[1..].try_into().expect("8 bytes"));
        let mut hasher = Sha3_256::new();
        while left > 0 {
            let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = tls.read(&mut buffer[..want]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if hash {
                hasher.update(&buffer[..n]);
            }
            if let Some(file) = &mut file {
                file.write_all(&buffer[..n])?;
            }
            left -= n as u64;
        }
        let answer: [u8; 32] = if hash { hasher.finalize().into() } else { [0; 32] };
        tls.write_all(&answer).await?;
        tls.flush().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The platform's HTTP API, as a participant uses it.

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "GET {path}: {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "POST {path}: {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Creates the platform administrator and signs in as it.
async fn sign_in_as_admin(platform: &Platform, base: &str) -> anyhow::Result<String> {
    let email = "admin@prism.bench";
    let password = platform
        .app()
        .identity()
        .bootstrap_admin(email, None)
        .await?
        .context("an empty platform gets its administrator")?;
    let tokens: Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", base.trim_end_matches('/')))
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", &password),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(tokens["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned())
}

/// A computation of `me` alone — every role, the RFC 8410 Ed25519 key — with `algorithm` as
/// `algo.py` and `datasets` by name: its id.
async fn computation(
    api: &Api,
    ws: &str,
    me: &str,
    name: &str,
    algorithm: &[u8],
    datasets: &[(String, &[u8])],
) -> anyhow::Result<String> {
    let datasets: Vec<Value> = datasets
        .iter()
        .map(|(name, bytes)| json!({"provider": me, "hash": sha3_hex(bytes), "name": name}))
        .collect();
    let created = api
        .post(
            &format!("/{ws}/computations"),
            json!({
                "name": name,
                "participants": [{
                    "id": me,
                    "roles": ["owner", "algorithm_provider", "dataset_provider", "result_consumer"],
                    "public_key": ED25519_BASE64_DER
                }],
                "algorithm": {"provider": me, "hash": sha3_hex(algorithm), "name": "algo.py"},
                "datasets": datasets
            }),
        )
        .await?;
    Ok(created["id"].as_str().context("a computation id")?.to_owned())
}

/// The participant signs the computation's current manifest.
async fn consent(api: &Api, ws: &str, computation: &str, key: &ParticipantKey) -> anyhow::Result<()> {
    let base = format!("/{ws}/computations/{computation}");
    let manifest = api.get(&format!("{base}/manifest")).await?;
    let manifest_id = manifest["manifest_id"].as_str().context("a manifest id")?;
    let signature =
        base64::engine::general_purpose::STANDARD.encode(key.sign(&consent_message(manifest_id))?);
    api.post(
        &format!("{base}/consents"),
        json!({"manifest_id": manifest_id, "signature": signature}),
    )
    .await?;
    Ok(())
}

/// Reads the run every [`POLL`] until `done` holds for its status; fails after [`STATE_LIMIT`].
async fn until_state(api: &Api, ws: &str, run: &str, done: impl Fn(&str) -> bool) -> anyhow::Result<Value> {
    let deadline = Instant::now() + STATE_LIMIT;
    loop {
        let state = api.get(&format!("/{ws}/runs/{run}")).await?;
        if done(state["status"].as_str().unwrap_or_default()) {
            return Ok(state);
        }
        ensure!(Instant::now() < deadline, "the run is stuck: {state:#}");
        tokio::time::sleep(POLL).await;
    }
}

/// The run's agent as its connection details describe it.
async fn endpoint(api: &Api, ws: &str, run: &str) -> anyhow::Result<AgentEndpoint> {
    let connection = api.get(&format!("/{ws}/runs/{run}/connection")).await?;
    let text = |field: &str| {
        connection[field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {field} in {connection:#}"))
    };
    Ok(AgentEndpoint {
        address: text("agent_address")?,
        server_name: text("server_name")?,
        roots_pem: text("ca_pem")?,
        client: None,
    })
}

async fn connect(api: &Api, ws: &str, run: &str) -> anyhow::Result<ParticipantClient> {
    Ok(ParticipantClient::connect(&endpoint(api, ws, run).await?).await?)
}

fn quiet() -> Progress {
    Arc::new(|_| {})
}

fn sha3_hex(bytes: &[u8]) -> String {
    hex::encode(Sha3_256::digest(bytes))
}

fn ms(duration: Duration) -> String {
    thousands(duration.as_secs_f64() * 1000.0)
}

/// The first `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
