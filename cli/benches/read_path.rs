//! Read throughput: `GET /{ws}/computations/{id}` through the whole platform (HTTP, application layer,
//! read models), next to an axum server that answers the same bytes from memory, both measured with
//! `wrk` with the same connections and duration in one run.
//!
//! The in-memory server is the ceiling of any HTTP read on this machine: same HTTP stack, same
//! response, none of the work of finding it. The ratio Prism/ceiling is what reading costs. For
//! reference it also runs PostgreSQL's own single-row lookups (`pgbench -S`, prepared statements)
//! against the same server, when `pgbench` sits next to the embedded PostgreSQL binaries.
//!
//! Two more Prism cases, for information: the same GET with `?min_sequence=` (the read-your-writes
//! path: the application layer checks the projection's checkpoint before reading), and the
//! workspace's list of computations (one item), which always reads the database.
//!
//! Run with `cargo bench -p prism-cli --bench read_path` (needs `wrk`: `apt-get install wrk`).
//! Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 5); the median round is reported.
//! * `PRISM_BENCH_SECONDS`: duration of each `wrk` (and `pgbench`) round (default 5).
//! * `PRISM_BENCH_CONNECTIONS`: connections (default 32); `PRISM_BENCH_THREADS`: wrk threads (default 2).
//!
//! Cases run in turn within a round, and the order flips every round, so a drift in the machine hits
//! every case alike. Besides the rates it prints the CPU time per request of this process (the
//! servers), of `wrk`, and of the PostgreSQL backends serving the database, which says where the time
//! goes. It exits non-zero only when something fails, never because a ratio misses its target.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use prism_benchkit::{cores, cpu_model, median, process_cpu_seconds, thousands};
use prism_cli::{Platform, PlatformConfig};
use prism_embedded::{NatsServer, TestDatabase, find_postgres_bin_dir};
use serde_json::{Value, json};

const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_SECONDS: u64 = 5;
const DEFAULT_CONNECTIONS: usize = 32;
const DEFAULT_THREADS: usize = 2;
const WARMUP_SECONDS: u64 = 2;
const TARGET: f64 = 0.25;

const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
const HASH: &str = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

#[derive(Debug)]
struct Settings {
    rounds: usize,
    seconds: u64,
    connections: usize,
    threads: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number =
            |name: &str, default: usize| prism_benchkit::env_count(name, default).map_err(anyhow::Error::msg);
        Ok(Self {
            rounds: number("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS)?,
            seconds: number("PRISM_BENCH_SECONDS", DEFAULT_SECONDS as usize)? as u64,
            connections: number("PRISM_BENCH_CONNECTIONS", DEFAULT_CONNECTIONS)?,
            threads: number("PRISM_BENCH_THREADS", DEFAULT_THREADS)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Ceiling,
    Prism,
    PrismMinSequence,
    PrismList,
    Postgres,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Ceiling => "axum, same bytes from memory",
            Case::Prism => "Prism GET computation",
            Case::PrismMinSequence => "Prism GET, ?min_sequence=",
            Case::PrismList => "Prism GET list (1 item)",
            Case::Postgres => "PostgreSQL pgbench -S",
        }
    }
}

/// One timed round of one case.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    rate: f64,
    requests: f64,
    /// CPU seconds of this process (both HTTP servers, the platform), of the load generator, and of
    /// the PostgreSQL backends of the benchmark's database.
    cpu_self: f64,
    cpu_load: f64,
    cpu_postgres: f64,
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let Some(wrk) = find_on_path("wrk") else {
        eprintln!(
            "read_path: `wrk` not found on PATH; install it (Debian/Ubuntu: `apt-get install wrk`) and run again"
        );
        std::process::exit(2);
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings, wrk))
}

async fn run(settings: Settings, wrk: PathBuf) -> anyhow::Result<()> {
    let nats = NatsServer::start_temp().await?;
    let db = TestDatabase::create().await?;
    let platform = Platform::start(PlatformConfig::new(
        nats.url(),
        db.url.clone(),
        "127.0.0.1:0".parse()?,
    ))
    .await?;
    let base = format!("http://{}", platform.addr());
    // Every read is authenticated and authorised, as in production: the platform administrator's
    // access token on every request (and on the ceiling's, so both parse the same header).
    let token = sign_in_as_admin(&platform, &base).await?;
    let authorization = format!("Bearer {token}");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&authorization)?);
    let http = reqwest::Client::builder().default_headers(headers).build()?;

    let workspace = post(
        &http,
        &format!("{base}/workspaces"),
        json!({"name": "Hospitals", "description": "EU"}),
    )
    .await?;
    let ws = workspace["id"].as_str().context("workspace id")?.to_owned();
    let created = post(&http, &format!("{base}/{ws}/computations"), computation()).await?;
    let id = created["id"].as_str().context("computation id")?.to_owned();
    let sequence = created["sequence"]
        .as_u64()
        .context("the create's response has no `sequence`")?;
    let path = format!("/{ws}/computations/{id}");

    // The exact response Prism gives, served by the ceiling server.
    let response = http.get(format!("{base}{path}")).send().await?;
    ensure!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    let etag = response
        .headers()
        .get(header::ETAG)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("\"1\""));
    let body = response.bytes().await?;
    let ceiling = serve_bytes(body.clone(), etag).await?;

    let pgbench = pgbench_ready(&db.url).await;
    let backends = Backends::connect(&db.url).await?;

    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "load: {}",
        tool_version(&wrk, &["-v"]).unwrap_or_else(|| wrk.display().to_string())
    );
    println!(
        "GET {path}: {} bytes of JSON; {} connections, {} wrk threads, {} s per round, {} rounds, cases interleaved (order flips every round); median round reported",
        body.len(),
        settings.connections,
        settings.threads,
        settings.seconds,
        settings.rounds
    );
    println!(
        "postgres: {} (the server of the benchmark's database)",
        backends.version().await?
    );
    match &pgbench {
        Ok(bin) => println!(
            "pgbench: {}",
            tool_version(bin, &["--version"]).unwrap_or_default()
        ),
        Err(why) => println!("pgbench: not measured ({why})"),
    }

    let prism_url = format!("{base}{path}");
    let prism_min_url = format!("{base}{path}?min_sequence={sequence}");
    let list_url = format!("{base}/{ws}/computations");
    let ceiling_url = format!("http://{ceiling}{path}");
    let load = Load {
        wrk: &wrk,
        authorization: &authorization,
        connections: settings.connections,
        threads: settings.threads,
        backends: &backends,
    };
    let wrk_run = |url: String, seconds: u64| load.run(url, seconds);

    // Warm-up: connections, pools, caches, CPU frequency.
    wrk_run(prism_url.clone(), WARMUP_SECONDS).await?;
    wrk_run(ceiling_url.clone(), WARMUP_SECONDS).await?;

    let mut cases = vec![
        Case::Ceiling,
        Case::Prism,
        Case::PrismMinSequence,
        Case::PrismList,
    ];
    if pgbench.is_ok() {
        cases.push(Case::Postgres);
    }
    let mut rounds: Vec<(Case, Round)> = Vec::new();
    for r in 0..settings.rounds {
        let mut order = cases.clone();
        if r % 2 == 1 {
            order.reverse();
        }
        for case in order {
            let round = match case {
                Case::Ceiling => wrk_run(ceiling_url.clone(), settings.seconds).await?,
                Case::Prism => wrk_run(prism_url.clone(), settings.seconds).await?,
                Case::PrismMinSequence => wrk_run(prism_min_url.clone(), settings.seconds).await?,
                Case::PrismList => wrk_run(list_url.clone(), settings.seconds).await?,
                Case::Postgres => {
                    let bin = pgbench.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                    run_pgbench(bin, &db.url, &settings, &backends).await?
                }
            };
            rounds.push((case, round));
        }
    }

    let median_of = |case: Case, f: &dyn Fn(&Round) -> f64| {
        median(
            rounds
                .iter()
                .filter(|(c, _)| *c == case)
                .map(|(_, r)| f(r))
                .collect(),
        )
        .unwrap_or(f64::NAN)
    };
    let ceiling_rate = median_of(Case::Ceiling, &|r| r.rate);
    println!();
    println!("{:<32} {:>12} {:>8}   target", "case", "requests/s", "ratio");
    for case in &cases {
        let rate = median_of(*case, &|r| r.rate);
        let ratio = rate / ceiling_rate;
        let target = match case {
            Case::Prism => format!(
                ">= {TARGET:.2}  {}",
                if ratio >= TARGET { "met" } else { "missed" }
            ),
            Case::Ceiling => "(ceiling)".to_owned(),
            _ => "none (information)".to_owned(),
        };
        println!(
            "{:<32} {:>12} {:>8.2}   {target}",
            case.label(),
            thousands(rate),
            ratio
        );
    }
    println!("CPU per request, µs (user+system, median round):  this process    wrk   postgres");
    for case in &cases {
        let per = |f: &dyn Fn(&Round) -> f64| median_of(*case, &|r| f(r) / r.requests * 1e6);
        let (server, postgres) = match case {
            // pgbench's backends come and go with it, out of reach of the before/after readings.
            Case::Postgres => ("-".to_owned(), "-".to_owned()),
            _ => (
                format!("{:.1}", per(&|r| r.cpu_self)),
                format!("{:.1}", per(&|r| r.cpu_postgres)),
            ),
        };
        println!(
            "  {:<32} {:>22} {:>6.1} {:>10}",
            case.label(),
            server,
            per(&|r| r.cpu_load),
            postgres,
        );
    }
    println!("rounds, requests/s in run order:");
    for case in &cases {
        let rates: Vec<String> = rounds
            .iter()
            .filter(|(c, _)| c == case)
            .map(|(_, r)| thousands(r.rate))
            .collect();
        println!("  {:<32} {}", case.label(), rates.join(" "));
    }

    platform.shutdown().await?;
    drop(nats);
    Ok(())
}

fn computation() -> Value {
    json!({
        "name": "Rare disease study",
        "description": "phase 1",
        "participants": [
            {"id": "alice@example.org", "roles": ["owner", "algorithm_provider", "dataset_provider"], "public_key": KEY},
            {"id": "bob@example.org", "roles": ["viewer"]}
        ],
        "algorithm": {"provider": "alice@example.org", "hash": HASH},
        "datasets": [{"provider": "alice@example.org", "hash": HASH, "name": "cohort A"}]
    })
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
        .post(format!("{base}/oauth/token"))
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

async fn post(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let response = http.post(url).json(&body).send().await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "POST {url}: {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// The ceiling: the same route shape, answering fixed bytes with the same headers.
async fn serve_bytes(body: Bytes, etag: HeaderValue) -> anyhow::Result<std::net::SocketAddr> {
    let app = Router::new().route(
        "/{workspace}/computations/{computation}",
        get(move || {
            let body = body.clone();
            let etag = etag.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                        (header::ETAG, etag),
                    ],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// `wrk` with the benchmark's connections and threads.
struct Load<'a> {
    wrk: &'a Path,
    /// The `Authorization` header every request carries.
    authorization: &'a str,
    connections: usize,
    threads: usize,
    backends: &'a Backends,
}

impl Load<'_> {
    async fn run(&self, url: String, seconds: u64) -> anyhow::Result<Round> {
        let args = [
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{seconds}s"),
            "-H".to_owned(),
            format!("Authorization: {}", self.authorization),
            url.clone(),
        ];
        let (output, cpu) = measured(self.wrk, &args, self.backends).await?;
        let rate = parse_after(&output, "Requests/sec:")
            .with_context(|| format!("no Requests/sec in wrk's output:\n{output}"))?;
        if let Some(line) = output.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
            bail!("{url}: {}", line.trim());
        }
        let requests = output
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(rate * seconds as f64);
        Ok(Round {
            rate,
            requests,
            ..cpu
        })
    }
}

/// `pgbench` next to the PostgreSQL binaries, with its tables initialised in the benchmark's database.
async fn pgbench_ready(url: &str) -> Result<PathBuf, String> {
    let bin = find_postgres_bin_dir()
        .map_err(|e| e.to_string())?
        .join("pgbench");
    if !bin.is_file() {
        return Err(format!("{} does not exist", bin.display()));
    }
    let out = tokio::process::Command::new(&bin)
        .args(["-i", "-q", "-s", "1", url])
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(bin)
}

async fn run_pgbench(
    bin: &Path,
    url: &str,
    settings: &Settings,
    backends: &Backends,
) -> anyhow::Result<Round> {
    let args = [
        "-S".to_owned(),
        "-n".to_owned(),
        "-M".to_owned(),
        "prepared".to_owned(),
        format!("-c{}", settings.connections),
        format!("-j{}", settings.threads),
        format!("-T{}", settings.seconds),
        url.to_owned(),
    ];
    let (output, cpu) = measured(bin, &args, backends).await?;
    let rate =
        parse_after(&output, "tps =").with_context(|| format!("no tps in pgbench's output:\n{output}"))?;
    let requests = parse_after(&output, "number of transactions actually processed:")
        .unwrap_or(rate * settings.seconds as f64);
    Ok(Round {
        rate,
        requests,
        ..cpu
    })
}

/// Runs a load generator to its end, with the CPU time it, this process and the database's backends
/// used meanwhile. The generator's own time is read from `/proc` once it has exited but before it is
/// reaped (a zombie keeps its counters).
async fn measured(program: &Path, args: &[String], backends: &Backends) -> anyhow::Result<(String, Round)> {
    let pg_before = backends.cpu_seconds().await?;
    let self_before = process_cpu_seconds("self").unwrap_or(0.0);
    let child = std::process::Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let pid = child.id().to_string();
    let (output, load_cpu) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        use std::io::Read as _;
        let mut child = child;
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .context("stdout")?
            .read_to_string(&mut stdout)?;
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .context("stderr")?
            .read_to_string(&mut stderr)?;
        // Both pipes are closed: the process is exiting. Wait (without reaping) for the zombie.
        let mut cpu = 0.0;
        for _ in 0..200 {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                cpu = process_cpu_seconds(&pid).unwrap_or(cpu);
                if stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = child.wait()?;
        ensure!(status.success(), "{status}: {stdout}{stderr}");
        Ok((stdout, cpu))
    })
    .await??;
    let cpu = Round {
        cpu_self: process_cpu_seconds("self").unwrap_or(0.0) - self_before,
        cpu_load: load_cpu,
        cpu_postgres: backends.cpu_seconds().await? - pg_before,
        ..Round::default()
    };
    Ok((output, cpu))
}

/// The PostgreSQL backends connected to the benchmark's database, to read their CPU time.
struct Backends {
    client: tokio_postgres::Client,
}

impl Backends {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(Self { client })
    }

    async fn version(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .query_one("SELECT current_setting('server_version')", &[])
            .await?
            .get(0))
    }

    /// CPU seconds used so far by every backend of this database other than this one (backends that
    /// ended meanwhile are not counted; the pools keep theirs open).
    async fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let rows = self
            .client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| process_cpu_seconds(&r.get::<_, i32>(0).to_string()))
            .sum())
    }
}

fn parse_after(output: &str, label: &str) -> Option<f64> {
    let line = output.lines().find(|l| l.trim_start().starts_with(label))?;
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn tool_version(bin: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(bin).args(args).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().next().map(|l| l.trim().to_owned())
}
