use std::collections::BTreeSet;

use super::*;
use crate::aggregate::{Rejection, RejectionKind};
use crate::ids::{ComputationId, CvmId, RunId, WorkspaceId};
use crate::testing::{ctx, given};

const MANIFEST: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const DIGEST: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

fn request() -> RunCommand {
    RunCommand::Request {
        id: RunId(uuid::Uuid::from_u128(1)),
        workspace: WorkspaceId(uuid::Uuid::from_u128(2)),
        computation: ComputationId(uuid::Uuid::from_u128(3)),
        manifest_id: MANIFEST.into(),
    }
}

/// The commands of the happy path, in order, after the request.
fn happy_path() -> Vec<RunCommand> {
    vec![
        RunCommand::StartProvisioning {
            cvm: CvmId(uuid::Uuid::from_u128(4)),
        },
        RunCommand::AwaitAgent,
        RunCommand::StartAttesting,
        RunCommand::RecordAttested {
            evidence_sha256: DIGEST.into(),
            policy_sha256: DIGEST.into(),
        },
        RunCommand::StartRunning,
        RunCommand::MarkResultsReady,
        RunCommand::Complete,
        RunCommand::StartCleanup,
        RunCommand::Close,
    ]
}

/// Runs `commands` from a fresh run, answering the states passed through.
fn drive(commands: impl IntoIterator<Item = RunCommand>) -> (Run, Vec<RunStatus>) {
    let mut run = Run::default();
    let mut states = Vec::new();
    for command in std::iter::once(request()).chain(commands) {
        let events = run
            .decide(command.clone(), &ctx())
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        for event in &events {
            run.apply(event);
        }
        states.push(run.status);
    }
    (run, states)
}

#[test]
fn a_run_goes_through_every_step_to_closed() {
    let (run, states) = drive(happy_path());
    use RunStatus as S;
    assert_eq!(
        states,
        [
            S::Requested,
            S::Provisioning,
            S::AgentConnecting,
            S::Attesting,
            S::AwaitingInputs,
            S::Running,
            S::ResultsReady,
            S::Completed,
            S::CleaningUp,
            S::Closed
        ]
    );
    assert_eq!(run.manifest_id.as_deref(), Some(MANIFEST));
    assert_eq!(run.cvm, Some(CvmId(uuid::Uuid::from_u128(4))));
}

#[test]
fn a_step_out_of_order_is_a_domain_rejection() {
    let (run, _) = drive([]);
    let error = run.decide(RunCommand::StartRunning, &ctx()).unwrap_err();
    assert_eq!(
        error,
        RunError::IllegalTransition {
            from: RunStatus::Requested,
            event: "running_started"
        }
    );
    assert_eq!(error.kind(), RejectionKind::StateConflict);
    // A closed run takes nothing more.
    let (closed, _) = drive(happy_path());
    for command in happy_path().into_iter().chain([RunCommand::Stop {
        reason: "late".into(),
    }]) {
        assert!(matches!(
            closed.decide(command, &ctx()),
            Err(RunError::IllegalTransition { .. })
        ));
    }
}

#[test]
fn a_stop_failure_or_timeout_in_any_step_ends_in_cleanup_and_closed() {
    let steps = happy_path();
    // After the request and after each of the first six steps the run is active.
    for done in 0..=6 {
        for ending in [
            RunCommand::Stop {
                reason: "asked".into(),
            },
            RunCommand::Fail {
                reason: "the agent vanished".into(),
            },
            RunCommand::TimeOut,
        ] {
            let (run, _) = drive(steps[..done].to_vec());
            let during = run.status;
            let outcome = run.decide(ending.clone(), &ctx());
            if during == RunStatus::Requested && ending == RunCommand::TimeOut {
                assert!(outcome.is_err(), "a request does not time out");
                continue;
            }
            let mut run = run;
            for event in outcome.unwrap() {
                run.apply(&event);
            }
            assert_eq!(run.ending.as_ref().map(|(state, _)| *state), Some(during));
            for command in [RunCommand::StartCleanup, RunCommand::Close] {
                for event in run.decide(command, &ctx()).unwrap() {
                    run.apply(&event);
                }
            }
            assert_eq!(run.status, RunStatus::Closed, "{ending:?} during {during}");
        }
    }
}

#[test]
fn asking_a_stopping_run_to_stop_again_changes_nothing() {
    let (run, _) = drive([RunCommand::Stop {
        reason: "asked".into(),
    }]);
    let again = run
        .decide(
            RunCommand::Stop {
                reason: "again".into(),
            },
            &ctx(),
        )
        .unwrap();
    assert!(again.is_empty());
}

#[test]
fn bad_input_is_refused() {
    let mut bad = request();
    if let RunCommand::Request { manifest_id, .. } = &mut bad {
        *manifest_id = "not a digest".into();
    }
    given::<Run>([])
        .when(bad)
        .then_rejects(RunError::Digest("manifest_id"));
    given::<Run>([])
        .when(RunCommand::AwaitAgent)
        .then_rejects(RunError::NotFound);
    let (run, _) = drive([]);
    assert_eq!(run.decide(request(), &ctx()), Err(RunError::AlreadyExists));
    assert!(matches!(
        run.decide(RunCommand::Fail { reason: " ".into() }, &ctx()),
        Err(RunError::Invalid(_))
    ));
}

#[test]
fn every_state_is_reachable_and_every_one_can_reach_closed() {
    let all = transitions();
    let mut reached = BTreeSet::from([RunStatus::New]);
    loop {
        let more: BTreeSet<_> = all
            .iter()
            .filter(|t| reached.contains(&t.from))
            .map(|t| t.to)
            .collect();
        if more.is_subset(&reached) {
            break;
        }
        reached.extend(more);
    }
    assert_eq!(reached, RunStatus::ALL.into_iter().collect());
    for state in RunStatus::ALL.into_iter().filter(|s| *s != RunStatus::Closed) {
        let mut from = BTreeSet::from([state]);
        while !from.contains(&RunStatus::Closed) {
            let more: BTreeSet<_> = all
                .iter()
                .filter(|t| from.contains(&t.from))
                .map(|t| t.to)
                .collect();
            assert!(!more.is_subset(&from), "{state} cannot reach closed");
            from.extend(more);
        }
    }
    // Each step of the table is one event, from one state.
    let pairs: BTreeSet<_> = all.iter().map(|t| (t.from, t.event)).collect();
    assert_eq!(pairs.len(), all.len());
}
