use std::collections::BTreeSet;

use super::*;
use crate::aggregate::{Rejection, RejectionKind};
use crate::cvm::{ConfidentialPlatform, CvmSpec};
use crate::ids::{ComputationId, CvmId, RunId, WorkspaceId};
use crate::testing::keys::sign_ed25519;
use crate::testing::samples::sample_definition;
use crate::testing::{ctx, given};
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;

const DIGEST: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

fn manifest() -> Manifest {
    Manifest::of(
        ComputationId(uuid::Uuid::from_u128(3)),
        &sample_definition(),
        DIGEST,
    )
}

/// Every signer's consent to `manifest`: the sample participants all hold the sample Ed25519 key.
fn consents(manifest: &Manifest) -> BTreeMap<String, String> {
    let signature = STANDARD.encode(sign_ed25519(&manifest::consent_message(&manifest.id())));
    manifest
        .participants
        .iter()
        .map(|p| (p.id.clone(), signature.clone()))
        .collect()
}

fn request_with(consents: BTreeMap<String, String>) -> RunCommand {
    RunCommand::Request {
        id: RunId(uuid::Uuid::from_u128(1)),
        workspace: WorkspaceId(uuid::Uuid::from_u128(2)),
        computation: ComputationId(uuid::Uuid::from_u128(3)),
        manifest: Box::new(manifest()),
        consents,
        cvm: CvmSpec {
            provider: "any".into(),
            vcpus: 1,
            memory_mib: 1024,
            platform: ConfidentialPlatform::SevSnp,
            ttl_seconds: 7200,
            labels: Default::default(),
        },
        retry_of: None,
    }
}

fn request() -> RunCommand {
    request_with(consents(&manifest()))
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
        RunCommand::MarkResultsReady {
            fetch_until: ctx().now + chrono::Duration::hours(1),
        },
        RunCommand::Complete,
        RunCommand::StartCleanup,
        RunCommand::Close { usage: None },
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
    assert_eq!(run.manifest_id, Some(manifest().id()));
    assert_eq!(run.deadline, Some(ctx().now + chrono::Duration::hours(1)));
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
            let mut run = run;
            for event in outcome.unwrap() {
                run.apply(&event);
            }
            assert_eq!(run.ending.as_ref().map(|(state, _)| *state), Some(during));
            for command in [RunCommand::StartCleanup, RunCommand::Close { usage: None }] {
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

#[test]
fn no_run_without_every_signers_consent() {
    let manifest_id = manifest().id();
    let all = consents(&manifest());
    let mut without_bob = all.clone();
    let bob = without_bob
        .keys()
        .find(|id| id.starts_with("bob"))
        .unwrap()
        .clone();
    without_bob.remove(&bob);
    given::<Run>([])
        .when(request_with(without_bob))
        .then_rejects(RunError::ConsentMissing {
            participant: bob.clone(),
            manifest_id: manifest_id.clone(),
            reason: "no signature".into(),
        });
    // A signature over another manifest is no consent to this one.
    let mut stale = all.clone();
    stale.insert(
        bob.clone(),
        STANDARD.encode(sign_ed25519(&manifest::consent_message(&"00".repeat(32)))),
    );
    given::<Run>([])
        .when(request_with(stale))
        .then_rejects(RunError::ConsentMissing {
            participant: bob.clone(),
            manifest_id: manifest_id.clone(),
            reason: crate::values::SignatureError::Invalid.to_string(),
        });
    let mut garbled = all;
    garbled.insert(bob.clone(), "%%%".into());
    assert!(matches!(
        given::<Run>([]).when(request_with(garbled)).outcome(),
        Err(RunError::ConsentMissing { reason, .. }) if reason.contains("base64")
    ));
}

mod receipts {
    use super::*;

    /// A run awaiting its inputs.
    fn awaiting() -> Run {
        drive(happy_path().into_iter().take(4)).0
    }

    fn receipt(participant: &str, kind: ReceiptKind, file_name: &str, sha3_256: &str) -> RunCommand {
        RunCommand::RecordReceipt {
            participant: participant.into(),
            kind,
            file_name: file_name.into(),
            sha3_256: sha3_256.into(),
        }
    }

    fn id_of(name: &str) -> String {
        manifest()
            .participants
            .iter()
            .find(|p| p.id.starts_with(name))
            .unwrap()
            .id
            .clone()
    }

    #[test]
    fn a_receipt_names_what_the_manifest_declares_from_its_sender() {
        let run = awaiting();
        assert_eq!(run.status, RunStatus::AwaitingInputs);
        let algorithm = manifest().algorithm.unwrap();
        let events = run
            .decide(
                receipt(
                    &algorithm.provider,
                    ReceiptKind::Algorithm,
                    &algorithm.file_name,
                    &algorithm.sha3_256,
                ),
                &ctx(),
            )
            .unwrap();
        assert!(matches!(events.as_slice(), [RunEvent::ReceiptRecorded(_)]));
        let mut again = run.clone();
        again.apply(&events[0]);
        assert_eq!(
            again.status,
            RunStatus::AwaitingInputs,
            "a receipt changes no state"
        );
        // The same receipt twice is recorded once.
        let repeat = receipt(
            &algorithm.provider,
            ReceiptKind::Algorithm,
            &algorithm.file_name,
            &algorithm.sha3_256,
        );
        assert_eq!(again.decide(repeat, &ctx()), Ok(vec![]));

        // Another digest, another sender, another name: refused.
        let wrong_digest = receipt(
            &algorithm.provider,
            ReceiptKind::Algorithm,
            &algorithm.file_name,
            DIGEST,
        );
        assert!(matches!(
            run.decide(wrong_digest, &ctx()),
            Err(RunError::Receipt(_))
        ));
        let dataset = manifest().datasets[0].clone();
        let not_the_provider = receipt(
            &id_of("carol"),
            ReceiptKind::Dataset,
            &dataset.file_name,
            &dataset.sha3_256,
        );
        assert!(matches!(
            run.decide(not_the_provider, &ctx()),
            Err(RunError::Receipt(_))
        ));
        let stranger = receipt(
            "mallory@example.org",
            ReceiptKind::Dataset,
            &dataset.file_name,
            &dataset.sha3_256,
        );
        assert!(matches!(run.decide(stranger, &ctx()), Err(RunError::Receipt(_))));
    }

    #[test]
    fn only_result_consumers_receive_and_the_run_knows_when_all_have() {
        let (mut run, _) = drive(happy_path().into_iter().take(6));
        assert_eq!(run.status, RunStatus::ResultsReady);
        assert!(!run.every_consumer_has_the_result());
        let digest = "cd".repeat(32);
        let bob = receipt(&id_of("bob"), ReceiptKind::Result, "", &digest);
        assert!(matches!(run.decide(bob, &ctx()), Err(RunError::Receipt(_))));
        let carol = receipt(&id_of("carol"), ReceiptKind::Result, "", &digest);
        for event in run.decide(carol, &ctx()).unwrap() {
            run.apply(&event);
        }
        assert!(run.every_consumer_has_the_result());
        let malformed = receipt(&id_of("carol"), ReceiptKind::Result, "", "not hex");
        assert_eq!(run.decide(malformed, &ctx()), Err(RunError::Digest("sha3_256")));
    }

    #[test]
    fn receipts_are_taken_only_while_inputs_or_results_are_exchanged() {
        let algorithm = manifest().algorithm.unwrap();
        let command = receipt(
            &algorithm.provider,
            ReceiptKind::Algorithm,
            &algorithm.file_name,
            &algorithm.sha3_256,
        );
        let (requested, _) = drive([]);
        assert!(matches!(
            requested.decide(command, &ctx()),
            Err(RunError::IllegalTransition {
                event: "receipt_recorded",
                ..
            })
        ));
    }
}
