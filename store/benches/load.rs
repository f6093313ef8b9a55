//! Loading a long aggregate: a workspace with 10,000 events, loaded by a repository that has never seen
//! it, with and without snapshots, next to the limit — reading the same 10,000 stored commits from
//! JetStream without verifying, decoding or folding them.
//!
//! Run with `cargo bench -p prism-store --bench load`. Environment overrides:
//! * `PRISM_BENCH_EVENTS`: events in the aggregate (default 10,000).
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 7); the median is reported.
//!
//! It exits non-zero only when something fails, never because a figure misses its target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_embedded::NatsServer;
use prism_store::{
    CommandRequest, EventLog, EventStore, KvSnapshots, Metadata, Repository, RepositoryConfig,
    SignedSnapshots, SnapshotKey, StoreConfig,
};

const TARGET: Duration = Duration::from_millis(200);
const SNAPSHOT_EVERY: u64 = 100;

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_number("PRISM_BENCH_EVENTS", 10_000)?;
    let rounds = env_number("PRISM_BENCH_ROUNDS", 7)?.max(1);
    let server = NatsServer::start_temp().await?;
    let store = EventStore::connect(&server.url(), StoreConfig::default()).await?;
    let key = SnapshotKey::new(vec![7u8; 32])?;
    let snapshots = SignedSnapshots::new(Arc::new(KvSnapshots::open(&store, "PRISM_SNAPSHOTS").await?), key);
    let log: Arc<dyn EventLog> = Arc::new(store.clone());
    let config = RepositoryConfig {
        snapshot_every: SNAPSHOT_EVERY,
        ..RepositoryConfig::default()
    };
    let meta = Metadata {
        actor: "user:benchmark".into(),
        ..Default::default()
    };

    println!("writing a workspace with {events} events (one per commit) ...");
    let writer = Repository::<Workspace>::with(log.clone(), Some(snapshots.clone()), config.clone());
    let id = WorkspaceId(uuid::Uuid::now_v7());
    let create = WorkspaceCommand::Create {
        id,
        name: "Hospitals".into(),
        description: String::new(),
        admin: None,
    };
    writer
        .execute(CommandRequest::new(&id, create, meta.clone()))
        .await?;
    let started = Instant::now();
    for i in 1..events {
        let update = WorkspaceCommand::Update {
            name: None,
            description: Some(format!("description number {i}")),
        };
        writer
            .execute(CommandRequest::new(&id, update, meta.clone()))
            .await?;
    }
    println!("written in {:.1} s", started.elapsed().as_secs_f64());
    // Snapshots are stored in the background: give the last one time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let subject = log.subjects().aggregate("workspace", &id.to_string())?;

    let (mut raw, mut folded, mut snapshot) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate the order, so that a drift in the machine hits every case alike.
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for case in order {
            let started = Instant::now();
            let version = match case {
                0 => log.commits_after(&subject, 0).await?.len() as u64,
                1 => {
                    let fresh = Repository::<Workspace>::with(log.clone(), None, config.clone());
                    fresh.load(&id).await?.version
                }
                _ => {
                    let fresh =
                        Repository::<Workspace>::with(log.clone(), Some(snapshots.clone()), config.clone());
                    fresh.load(&id).await?.version
                }
            };
            let took = started.elapsed();
            anyhow::ensure!(
                version == events as u64,
                "case {case} saw {version} events, not {events}"
            );
            [&mut raw, &mut folded, &mut snapshot][case].push(took);
        }
    }
    let (raw, folded, snapshot) = (median(raw), median(folded), median(snapshot));
    let nats = store_version(&server);
    println!();
    println!(
        "aggregate of {events} events, {rounds} rounds, median; nats-server {nats}, sync_interval=always"
    );
    println!("{:<58} {:>10} {:>12}", "case", "median", "vs raw read");
    println!(
        "{:<58} {:>10} {:>12}",
        "raw read of every commit (no verify, decode or fold)",
        ms(raw),
        "1.00"
    );
    let ratio = |d: Duration| format!("{:.2}", d.as_secs_f64() / raw.as_secs_f64());
    println!(
        "{:<58} {:>10} {:>12}",
        "load without snapshot (verify chain, decode, fold)",
        ms(folded),
        ratio(folded)
    );
    println!(
        "{:<58} {:>10} {:>12}   target < {} {}",
        format!("load from snapshot (every {SNAPSHOT_EVERY} events)"),
        ms(snapshot),
        ratio(snapshot),
        ms(TARGET),
        if snapshot < TARGET { "met" } else { "MISSED" }
    );
    Ok(())
}

fn store_version(server: &NatsServer) -> String {
    let output = std::process::Command::new(prism_embedded::find_nats_server().unwrap_or_default())
        .arg("--version")
        .output();
    let _ = server;
    output
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("nats-server: ")
                .to_owned()
        })
        .unwrap_or_default()
}
