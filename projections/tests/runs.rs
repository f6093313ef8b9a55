//! The runs read model against a real nats-server and a fresh PostgreSQL database: the row follows a run
//! through its states, and the lists and daily counts answer from it.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::{Env, WAIT, env};
use prism_domain::cvm::{ConfidentialPlatform, CvmSpec};
use prism_domain::run::{Manifest, Run, RunCommand};
use prism_domain::testing::samples::minimal_definition;
use prism_domain::{ComputationId, CvmId, RunId, WorkspaceId};
use prism_projections::{PageRequest, RUNS, RunDayCount, RunFilter, RunView, RunsProjection};
use prism_store::Repository;

const POLICY: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

struct Runs<'a> {
    env: &'a Env,
    repository: Repository<Run>,
    workspace: WorkspaceId,
}

impl Runs<'_> {
    /// Asks for a run of `computation`; the minimal definition names no key, so no consent is needed.
    async fn request(&self, computation: ComputationId) -> (RunId, u64) {
        let id = RunId(uuid::Uuid::now_v7());
        let request = RunCommand::Request {
            id,
            workspace: self.workspace,
            computation,
            manifest: Box::new(Manifest::of(computation, &minimal_definition(), POLICY)),
            consents: BTreeMap::new(),
            retry_of: None,
            cvm: CvmSpec {
                provider: "any".into(),
                vcpus: 1,
                memory_mib: 1024,
                platform: ConfidentialPlatform::SevSnp,
                ttl_seconds: 7200,
                labels: BTreeMap::new(),
            },
        };
        (id, self.execute(id, request).await)
    }

    async fn execute(&self, id: RunId, command: RunCommand) -> u64 {
        self.env.execute(&self.repository, &id, command).await
    }

    /// The run's row once the projection has applied `sequence`.
    async fn row(&self, id: RunId, sequence: u64) -> RunView {
        self.env.read.wait_for(RUNS, sequence, WAIT).await.unwrap();
        self.env.read.run(self.workspace, id).await.unwrap().unwrap()
    }

    async fn list(&self, filter: RunFilter) -> Vec<RunId> {
        let page = PageRequest {
            after: None,
            limit: 100,
        };
        let page = self.env.read.runs(self.workspace, &filter, page).await.unwrap();
        assert_eq!(page.next_after, None);
        page.items.into_iter().map(|r| r.id).collect()
    }
}

/// The counts the views imply: per UTC day of the request and current status.
fn counted<'a>(views: impl IntoIterator<Item = (NaiveDate, &'a RunView)>) -> Vec<RunDayCount> {
    let mut counts: BTreeMap<(NaiveDate, String), u64> = BTreeMap::new();
    for (day, view) in views {
        *counts.entry((day, view.status.clone())).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((day, status), count)| RunDayCount { day, status, count })
        .collect()
}

#[tokio::test]
async fn the_row_follows_the_run_and_answers_lists_and_counts() {
    let env = env().await;
    let _r = env.start(RunsProjection);
    let runs = Runs {
        env: &env,
        repository: Repository::new(env.store.clone()),
        workspace: WorkspaceId(uuid::Uuid::now_v7()),
    };
    let (study, trial) = (
        ComputationId(uuid::Uuid::now_v7()),
        ComputationId(uuid::Uuid::now_v7()),
    );

    // One run through a failure to its close, checked at every step.
    let (first, at) = runs.request(study).await;
    let row = runs.row(first, at).await;
    assert_eq!(
        (row.status.as_str(), row.version, row.computation_id, row.cvm_id),
        ("requested", 1, study, None)
    );
    assert_eq!(row.updated_at, row.requested_at);
    assert_eq!(row.deadline - row.requested_at, chrono::Duration::hours(1));
    assert_eq!(row.requested_by, "alice");
    assert_eq!(row.manifest_id.len(), 64);
    assert_eq!((row.ended_at, row.closed_at), (None, None));

    let cvm = CvmId(uuid::Uuid::now_v7());
    let at = runs.execute(first, RunCommand::StartProvisioning { cvm }).await;
    let row = runs.row(first, at).await;
    assert_eq!(
        (row.status.as_str(), row.version, row.cvm_id),
        ("provisioning", 2, Some(cvm))
    );
    assert!(row.updated_at >= row.requested_at);

    let fail = RunCommand::Fail {
        reason: "no backend has room".into(),
    };
    let at = runs.execute(first, fail).await;
    let row = runs.row(first, at).await;
    assert_eq!(row.status, "failed");
    assert_eq!(row.version, 3);
    assert_eq!(row.ending_during.as_deref(), Some("provisioning"));
    assert_eq!(row.ending_reason.as_deref(), Some("no backend has room"));
    assert_eq!(row.ended_at, Some(row.updated_at));
    assert_eq!(row.cvm_id, Some(cvm));

    let at = runs.execute(first, RunCommand::StartCleanup).await;
    let row = runs.row(first, at).await;
    assert_eq!((row.status.as_str(), row.version), ("cleaning_up", 4));
    assert_eq!(row.closed_at, None);

    let at = runs.execute(first, RunCommand::Close { usage: None }).await;
    let closed = runs.row(first, at).await;
    assert_eq!((closed.status.as_str(), closed.version), ("closed", 5));
    assert_eq!(closed.closed_at, Some(closed.updated_at));
    // How it ended stays on the row after the cleanup.
    assert_eq!(closed.ending_during.as_deref(), Some("provisioning"));
    assert_eq!(closed.ended_at, row.ended_at);

    // A second run of the same computation, stopped while its evidence is appraised.
    let (second, _) = runs.request(study).await;
    for command in [
        RunCommand::StartProvisioning {
            cvm: CvmId(uuid::Uuid::now_v7()),
        },
        RunCommand::AwaitAgent,
        RunCommand::StartAttesting,
    ] {
        runs.execute(second, command).await;
    }
    let stop = RunCommand::Stop {
        reason: "wrong dataset".into(),
    };
    let at = runs.execute(second, stop).await;
    let stopped = runs.row(second, at).await;
    assert_eq!((stopped.status.as_str(), stopped.version), ("stopping", 5));
    assert_eq!(stopped.ending_during.as_deref(), Some("attesting"));
    assert_eq!(stopped.ending_reason.as_deref(), Some("wrong dataset"));
    assert_eq!(stopped.ended_at, Some(stopped.updated_at));

    // A run of another computation, just asked for.
    let (third, at) = runs.request(trial).await;
    let asked = runs.row(third, at).await;

    // Lists: newest request first, each filter narrowing.
    assert_eq!(runs.list(RunFilter::default()).await, vec![third, second, first]);
    let of_study = RunFilter {
        computation: Some(study),
        ..Default::default()
    };
    assert_eq!(runs.list(of_study.clone()).await, vec![second, first]);
    let closed_ones = RunFilter {
        status: Some("closed".into()),
        ..Default::default()
    };
    assert_eq!(runs.list(closed_ones).await, vec![first]);
    let requested_of_study = RunFilter {
        status: Some("requested".into()),
        ..of_study.clone()
    };
    assert_eq!(runs.list(requested_of_study).await, vec![]);
    let since_second = RunFilter {
        from: Some(stopped.requested_at),
        ..Default::default()
    };
    assert_eq!(runs.list(since_second).await, vec![third, second]);
    let before_second = RunFilter {
        to: Some(stopped.requested_at),
        ..Default::default()
    };
    assert_eq!(runs.list(before_second).await, vec![first]);

    // Pages of one run each walk the same order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = env
            .read
            .runs(
                runs.workspace,
                &RunFilter::default(),
                PageRequest { after, limit: 1 },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![third, second, first]);

    // Another workspace sees none of them.
    let elsewhere = WorkspaceId(uuid::Uuid::now_v7());
    assert_eq!(env.read.run(elsewhere, first).await.unwrap(), None);
    let page = env
        .read
        .runs(
            elsewhere,
            &RunFilter::default(),
            PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(
        env.read
            .run_counts_by_day(elsewhere, None)
            .await
            .unwrap()
            .is_empty()
    );

    // Counts by day and current status. The days come from the rows, not the test's clock, so a test
    // running across midnight still agrees with itself.
    let day = |view: &RunView| view.requested_at.date_naive();
    let views = [&closed, &stopped, &asked];
    assert_eq!(
        env.read.run_counts_by_day(runs.workspace, None).await.unwrap(),
        counted(views.iter().map(|v| (day(v), *v)))
    );

    // The store stamps events with the clock, so a run of an earlier day is made by moving the first
    // run's request back two days in the read model.
    let client = env.read.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE runs SET requested_at = requested_at - interval '2 days' WHERE id = $1",
            &[&first.as_uuid()],
        )
        .await
        .unwrap();
    let earlier = (closed.requested_at - chrono::Duration::days(2)).date_naive();
    let all = env.read.run_counts_by_day(runs.workspace, None).await.unwrap();
    assert_eq!(
        all,
        counted([
            (earlier, &closed),
            (day(&stopped), &stopped),
            (day(&asked), &asked)
        ])
    );
    assert_eq!(all[0].day, earlier);
    assert_eq!((all[0].status.as_str(), all[0].count), ("closed", 1));
    assert_eq!(
        env.read
            .run_counts_by_day(runs.workspace, Some(study))
            .await
            .unwrap(),
        counted([(earlier, &closed), (day(&stopped), &stopped)])
    );
    assert_eq!(
        env.read
            .run_counts_by_day(runs.workspace, Some(trial))
            .await
            .unwrap(),
        counted([(day(&asked), &asked)])
    );
}
