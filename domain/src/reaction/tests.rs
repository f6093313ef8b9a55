use super::*;
use crate::testing::{ctx, given};

fn failed() -> ReactionEvent {
    ReactionEvent::Failed(ReactionFailed {
        worker: "workspace-archiver".into(),
        event_id: "e1".into(),
        event_type: "io.prism.workspace.archived.v1".into(),
        stream_sequence: 7,
        attempts: 10,
        error: "database down".into(),
        failed_at: ctx().now,
    })
}

fn retry_requested() -> ReactionEvent {
    ReactionEvent::RetryRequested(ReactionRetryRequested {
        worker: "workspace-archiver".into(),
        stream_sequence: 7,
        requested_by: ctx().actor,
        requested_at: ctx().now,
    })
}

fn record() -> ReactionCommand {
    match failed() {
        ReactionEvent::Failed(f) => ReactionCommand::RecordFailure(f),
        _ => unreachable!(),
    }
}

#[test]
fn a_failure_is_recorded_once() {
    given::<Reaction>([]).when(record()).then_expect([failed()]);
    given::<Reaction>([failed()])
        .when(record())
        .then_rejects(ReactionError::AlreadyRecorded);
}

#[test]
fn an_operator_retries_a_failure_naming_where_the_worker_finds_the_event() {
    given::<Reaction>([failed()])
        .when(ReactionCommand::Retry)
        .then_expect([retry_requested()]);
}

#[test]
fn only_a_recorded_failure_can_be_retried_and_only_once_at_a_time() {
    given::<Reaction>([])
        .when(ReactionCommand::Retry)
        .then_rejects(ReactionError::NotFound);
    given::<Reaction>([failed(), retry_requested()])
        .when(ReactionCommand::Retry)
        .then_rejects(ReactionError::RetryPending);
}

#[test]
fn a_retry_ends_resolved_or_failed_again() {
    let resolved = ReactionEvent::Resolved(ReactionResolved {
        resolved_at: ctx().now,
    });
    let state = given::<Reaction>([failed(), retry_requested()])
        .when(ReactionCommand::Resolve)
        .then_expect([resolved.clone()]);
    assert_eq!(state.status, ReactionStatus::Resolved);
    given::<Reaction>([failed(), retry_requested(), resolved])
        .when(ReactionCommand::Retry)
        .then_rejects(ReactionError::Resolved);
    let state = given::<Reaction>([failed(), retry_requested()])
        .when(record())
        .then_expect([failed()]);
    assert_eq!(state.status, ReactionStatus::Failed);
    given::<Reaction>([failed()])
        .when(ReactionCommand::Resolve)
        .then_rejects(ReactionError::NoRetryPending);
}
