//! How soon the audit ledger vouches for a commit, at the full commit rate: writers commit as fast
//! as the store takes it while the auditor seals checkpoints; each commit's latency is from its
//! acknowledgement to the arrival of the checkpoint that covers it. Beside it, the same writers
//! without the auditor — the commit rate the ledger must not slow — and the raw JetStream publish
//! latency as the floor.
//!
//! Run with `cargo bench -p prism-cli --bench ledger`. Environment overrides:
//! * `PRISM_BENCH_SECONDS`: how long each case writes (default 10).
//! * `PRISM_BENCH_WRITERS`: concurrent writers, each on its own aggregate (default 16).
//!
//! It exits non-zero only when something fails, never because a figure misses its target.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prism_app::{App, AppConfig};
use prism_domain::Aggregate;
use prism_domain::WorkspaceId;
use prism_domain::ledger::{LEDGER_ID, Ledger, LedgerEvent};
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_embedded::{NatsServer, TestDatabase};
use prism_store::{CommandRequest, EventLog, Metadata, Repository, RepositoryConfig, StoreConfig};
use prism_workers::Auditor;
use tokio::sync::watch;

const TARGET_P99: Duration = Duration::from_secs(1);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Commits as fast as `writers` concurrent writers can for `seconds`; the acknowledgement time of
/// each commit by stream sequence.
async fn write(
    log: Arc<dyn EventLog>,
    writers: usize,
    seconds: u64,
) -> anyhow::Result<BTreeMap<u64, Instant>> {
    let meta = Metadata {
        actor: "user:benchmark".into(),
        ..Default::default()
    };
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let log = log.clone();
        let meta = meta.clone();
        tasks.spawn(async move {
            let repository = Repository::<Workspace>::with(log, None, RepositoryConfig::default());
            let id = WorkspaceId(uuid::Uuid::now_v7());
            let create = WorkspaceCommand::Create {
                id,
                name: "Hospitals".into(),
                description: String::new(),
                admin: None,
            };
            let mut acked = Vec::new();
            let outcome = repository
                .execute(CommandRequest::new(&id, create, meta.clone()))
                .await?;
            acked.push((outcome.sequence, Instant::now()));
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                let update = WorkspaceCommand::Update {
                    name: None,
                    description: Some(format!("description number {i}")),
                };
                let outcome = repository
                    .execute(CommandRequest::new(&id, update, meta.clone()))
                    .await?;
                acked.push((outcome.sequence, Instant::now()));
            }
            anyhow::Ok(acked)
        });
    }
    let mut acked = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        acked.extend(done??);
    }
    Ok(acked)
}

async fn platform() -> anyhow::Result<(NatsServer, TestDatabase, App)> {
    let server = NatsServer::start_temp().await?;
    let db = TestDatabase::create().await?;
    let kek: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x3c);
    let authority = prism_app::CertificateAuthorityConfig {
        urls: prism_ca::CaUrls::under("http://prism.bench"),
        keys: Arc::new(prism_ca::SealedKeys::new(
            prism_ca::Sealer::new(&kek)?,
            prism_ca::MemoryKeyStore::default(),
        )),
        renewal: Default::default(),
    };
    let (_, app) = prism_cli::connect(
        &server.url(),
        &db.url,
        StoreConfig::default(),
        AppConfig::default(),
        None,
        None,
        Some(authority),
    )
    .await?;
    Ok((server, db, app))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = prism_benchkit::env_count("PRISM_BENCH_SECONDS", 10).map_err(anyhow::Error::msg)? as u64;
    let writers = prism_benchkit::env_count("PRISM_BENCH_WRITERS", 16)
        .map_err(anyhow::Error::msg)?
        .max(1);

    // Without the auditor: the commit rate of these writers on this machine.
    let (_server, _db, app) = platform().await?;
    let started = Instant::now();
    let acked = write(app.log().clone(), writers, seconds).await?;
    let bare_rate = acked.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "without the auditor: {} commits, {bare_rate:.0} commits/s",
        acked.len()
    );

    // With it.
    let (_server, _db, app) = platform().await?;
    let (stop, shutdown) = watch::channel(false);
    let auditor = tokio::spawn(Auditor::new(app.clone(), Duration::from_millis(100)).run(shutdown));
    let log = app.log().clone();
    let ledger_subject = log.subjects().aggregate(<Ledger as Aggregate>::TYPE, LEDGER_ID)?;
    let mut checkpoints = log.read(1, &ledger_subject).await?;
    // When each sequence was first covered: the arrival of its checkpoint.
    let covered: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let watcher = {
        let covered = covered.clone();
        tokio::spawn(async move {
            while let Some(Ok(commit)) = checkpoints.next().await {
                let now = Instant::now();
                let mut covered = covered.lock().unwrap();
                for event in &commit.events {
                    if let Ok(LedgerEvent::CheckpointSealed(sealed)) =
                        event.decode::<LedgerEvent>(<Ledger as Aggregate>::TYPE)
                    {
                        for sequence in sealed.from..=sealed.to {
                            covered.entry(sequence).or_insert(now);
                        }
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let acked = write(log.clone(), writers, seconds).await?;
    let rate = acked.len() as f64 / started.elapsed().as_secs_f64();
    // Let the last checkpoint land, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    auditor.await?;
    watcher.abort();
    let covered = covered.lock().unwrap().clone();

    let mut latencies: Vec<Duration> = Vec::with_capacity(acked.len());
    let mut uncovered = 0;
    for (sequence, at) in &acked {
        match covered.get(sequence) {
            Some(sealed) => latencies.push(sealed.saturating_duration_since(*at)),
            None => uncovered += 1,
        }
    }
    latencies.sort();
    let checkpoint_count = covered.values().collect::<std::collections::BTreeSet<_>>().len();
    println!(
        "with the auditor: {} commits, {rate:.0} commits/s ({:.2}x the rate without), {checkpoint_count} checkpoints",
        acked.len(),
        rate / bare_rate
    );
    if uncovered > 0 {
        anyhow::bail!("{uncovered} commits were never covered by a checkpoint");
    }
    let p99 = percentile(&latencies, 0.99);
    println!(
        "commit -> covered by a signed checkpoint: median {}, p99 {}, max {}  (target p99 < {}: {})",
        ms(percentile(&latencies, 0.5)),
        ms(p99),
        ms(*latencies.last().unwrap()),
        ms(TARGET_P99),
        if p99 < TARGET_P99 { "met" } else { "MISSED" }
    );
    Ok(())
}
