//! A projection's full rebuild against the limit: the store's ordered consumer draining the same
//! stream. The log holds many workspaces' histories; the workspaces projection is rebuilt the way
//! `prism projections rebuild` does it — the log replayed and verified into shadow tables, then
//! swapped in — and its throughput in commits per second is set beside the raw consumer's.
//!
//! Run with `cargo bench -p prism-cli --bench rebuild`. Environment overrides:
//! * `PRISM_BENCH_COMMITS`: commits in the log (default 20,000).
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 5); the median is reported.
//!
//! It exits non-zero only when something fails, never because a figure misses its target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prism_app::AppConfig;
use prism_domain::WorkspaceId;
use prism_domain::workspace::{Workspace, WorkspaceCommand};
use prism_embedded::{NatsServer, TestDatabase};
use prism_projections::{Projector, RunProjection as _, WorkspacesProjection};
use prism_store::{CommandRequest, EventLog, Metadata, Repository, RepositoryConfig, StoreConfig};

/// Throughput the rebuild must reach, as a share of the raw consumer's.
const TARGET_RATIO: f64 = 0.5;
/// Commits per workspace: a creation, then updates.
const PER_WORKSPACE: usize = 10;
/// Concurrent writers while the log is filled (filling is not measured).
const WRITERS: usize = 16;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Drains the whole stream with the store's ordered consumer (decoded, not verified, nothing
/// applied). The benchmark does not use async-nats itself: only `prism-store` knows NATS.
async fn drain(log: &Arc<dyn EventLog>, last: u64) -> anyhow::Result<u64> {
    let mut commits = log.read(1, &log.subjects().all()).await?;
    let mut seen = 0;
    while let Some(commit) = commits.next().await {
        seen += 1;
        if commit?.sequence >= last {
            break;
        }
    }
    Ok(seen)
}

/// Fills the log with `commits` commits: workspaces of [`PER_WORKSPACE`] commits each.
async fn fill(log: Arc<dyn EventLog>, commits: usize) -> anyhow::Result<()> {
    let meta = Metadata {
        actor: "user:benchmark".into(),
        ..Default::default()
    };
    let workspaces = commits.div_ceil(PER_WORKSPACE);
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (log, meta) = (log.clone(), meta.clone());
        tasks.spawn(async move {
            let repository = Repository::<Workspace>::with(log, None, RepositoryConfig::default());
            for _ in (writer..workspaces).step_by(WRITERS) {
                let id = WorkspaceId(uuid::Uuid::now_v7());
                let create = WorkspaceCommand::Create {
                    id,
                    name: "Hospitals".into(),
                    description: String::new(),
                    admin: None,
                };
                repository
                    .execute(CommandRequest::new(&id, create, meta.clone()))
                    .await?;
                for i in 1..PER_WORKSPACE {
                    let update = WorkspaceCommand::Update {
                        name: None,
                        description: Some(format!("description number {i}")),
                    };
                    repository
                        .execute(CommandRequest::new(&id, update, meta.clone()))
                        .await?;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let commits = prism_benchkit::env_count("PRISM_BENCH_COMMITS", 20_000).map_err(anyhow::Error::msg)?;
    let rounds = prism_benchkit::env_count("PRISM_BENCH_ROUNDS", 5)
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
    println!("writing {commits} commits ({PER_WORKSPACE} per workspace, {WRITERS} writers) ...");
    let started = Instant::now();
    fill(log.clone(), commits).await?;
    println!("written in {:.1} s", started.elapsed().as_secs_f64());
    let last = log.last_sequence().await?;
    let pool = app.read_models().map_err(anyhow::Error::msg)?.pool().clone();
    let projector = Projector::new(WorkspacesProjection, pool.clone(), log.clone());
    // The live read model, as a running platform has it: the rebuild replaces it.
    projector.catch_up().await?;

    let mut samples: [Vec<Duration>; 2] = Default::default();
    for round in 0..rounds {
        // Alternate the order, so that a drift in the machine hits both cases alike.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for case in order {
            let started = Instant::now();
            match case {
                0 => {
                    let seen = drain(&log, last).await?;
                    anyhow::ensure!(seen as u64 == last, "drained {seen} of {last} messages");
                }
                _ => {
                    let reached = projector.rebuild().await?;
                    anyhow::ensure!(reached >= last, "rebuilt up to {reached}, not {last}");
                }
            }
            samples[case].push(started.elapsed());
        }
    }
    let rows: i64 = pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM workspaces", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        rows as usize == commits.div_ceil(PER_WORKSPACE),
        "{rows} workspaces after the rebuilds"
    );
    let [raw, rebuilt] = samples.map(median);
    let rate = |d: Duration| last as f64 / d.as_secs_f64();
    println!();
    println!(
        "log of {last} commits, {rounds} rounds, median; machine: {} cores, {}",
        prism_benchkit::cores(),
        prism_benchkit::cpu_model()
    );
    println!(
        "{:<66} {:>10} {:>14} {:>8}",
        "case", "median", "commits/s", "ratio"
    );
    println!(
        "{:<66} {:>8.1} s {:>14.0} {:>8}",
        "ordered consumer draining the stream (decode only, no verify)",
        raw.as_secs_f64(),
        rate(raw),
        "1.00"
    );
    let ratio = rate(rebuilt) / rate(raw);
    println!(
        "{:<66} {:>8.1} s {:>14.0} {:>8.2}   target >= {TARGET_RATIO} {}",
        "rebuild (verify, decode, apply into shadow tables, swap)",
        rebuilt.as_secs_f64(),
        rate(rebuilt),
        ratio,
        if ratio >= TARGET_RATIO { "met" } else { "MISSED" }
    );
    Ok(())
}
