//! Replaying a long aggregate for an investigation: a workspace with 10,000 events replayed by
//! `Audit::replay` (every event with the state after it; and again with an RFC 6902 patch from the
//! state before, as `--diff` asks), next to the limits — reading the same 10,000 commits from JetStream without verifying
//! them, and reading them verified (`EventLog::load`: the replay's own read).
//!
//! Run with `cargo bench -p prism-cli --bench replay`. Environment overrides:
//! * `PRISM_BENCH_EVENTS`: events in the aggregate (default 10,000).
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 7); the median is reported.
//!
//! It exits non-zero only when something fails, never because a figure misses its target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prism_app::{AppConfig, Caller, ReplayUntil};
use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_embedded::{NatsServer, TestDatabase};
use prism_store::{CommandRequest, EventLog, Metadata, Repository, RepositoryConfig, StoreConfig};

const TARGET: Duration = Duration::from_millis(200);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = prism_benchkit::env_count("PRISM_BENCH_EVENTS", 10_000).map_err(anyhow::Error::msg)?;
    let rounds = prism_benchkit::env_count("PRISM_BENCH_ROUNDS", 7)
        .map_err(anyhow::Error::msg)?
        .max(1);
    let server = NatsServer::start_temp().await?;
    let db = TestDatabase::create().await?;
    let (store, app) = prism_cli::connect(
        &server.url(),
        &db.url,
        StoreConfig::default(),
        AppConfig::default(),
        None,
        None,
        None,
    )
    .await?;
    let log: Arc<dyn EventLog> = Arc::new(store);
    let meta = Metadata {
        actor: "user:benchmark".into(),
        ..Default::default()
    };

    println!("writing a workspace with {events} events (one per commit) ...");
    let writer = Repository::<Workspace>::with(log.clone(), None, RepositoryConfig::default());
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
    let subject = log.subjects().aggregate("workspace", &id.to_string())?;
    let caller = Caller::service("benchmark");
    let aggregate = id.to_string();

    let mut samples: [Vec<Duration>; 4] = Default::default();
    for round in 0..rounds {
        // Alternate the order, so that a drift in the machine hits every case alike.
        let order: [usize; 4] = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [3, 2, 1, 0]
        };
        for case in order {
            let started = Instant::now();
            let seen = match case {
                0 => log.commits_after(&subject, 0).await?.len(),
                1 => log.load(&subject).await?.len(),
                _ => {
                    let diff = case == 3;
                    let replay = app
                        .audit()
                        .replay(&caller, "workspace", &aggregate, ReplayUntil::default(), diff)
                        .await
                        .context("replay")?;
                    replay.steps.len()
                }
            };
            let took = started.elapsed();
            anyhow::ensure!(seen == events, "case {case} saw {seen} events, not {events}");
            samples[case].push(took);
        }
    }
    let [raw, verified, replayed, diffed] = samples.map(median);
    println!();
    println!(
        "aggregate of {events} events, {rounds} rounds, median; machine: {} cores, {}",
        prism_benchkit::cores(),
        prism_benchkit::cpu_model()
    );
    println!("{:<62} {:>10} {:>12}", "case", "median", "vs raw read");
    let ratio = |d: Duration| format!("{:.2}", d.as_secs_f64() / raw.as_secs_f64());
    println!(
        "{:<62} {:>10} {:>12}",
        "raw read of every commit (no verify, decode or fold)",
        ms(raw),
        "1.00"
    );
    println!(
        "{:<62} {:>10} {:>12}",
        "verified read (EventLog::load: addresses, hashes, chain)",
        ms(verified),
        ratio(verified)
    );
    println!(
        "{:<62} {:>10} {:>12}   target < {} {}",
        "replay (verified read, decode, fold, state per event)",
        ms(replayed),
        ratio(replayed),
        ms(TARGET),
        if replayed < TARGET { "met" } else { "MISSED" }
    );
    println!(
        "{:<62} {:>10} {:>12}",
        "replay --diff (the same, and an RFC 6902 patch per event)",
        ms(diffed),
        ratio(diffed)
    );
    println!(
        "per event: raw read {:.1} µs, replay {:.1} µs",
        raw.as_secs_f64() * 1e6 / events as f64,
        replayed.as_secs_f64() * 1e6 / events as f64
    );
    Ok(())
}
