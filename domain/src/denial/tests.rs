use super::*;
use crate::access::Permission;
use crate::testing::{ctx, given};

fn record(detail: &str) -> DenialCommand {
    DenialCommand::Record {
        reason: DenialReason::MissingPermission,
        permission: Some(Permission::WorkspaceUpdate),
        resource: "workspaces/1".into(),
        detail: detail.into(),
        source: Some("192.0.2.7".into()),
        suppressed: 3,
    }
}

#[test]
fn a_denial_is_recorded_once_with_its_actor() {
    let state = given::<AccessDenial>([])
        .when(record("role member lacks workspace.update"))
        .then_expect([DenialEvent::Denied(AccessDenied {
            actor: ctx().actor,
            reason: DenialReason::MissingPermission,
            permission: Some(Permission::WorkspaceUpdate),
            resource: "workspaces/1".into(),
            detail: "role member lacks workspace.update".into(),
            source: Some("192.0.2.7".into()),
            suppressed: 3,
            at: ctx().now,
        })]);
    assert!(state.recorded);
}

#[test]
fn a_record_never_changes() {
    let first = given::<AccessDenial>([]).when(record("x")).outcome().unwrap();
    given::<AccessDenial>(first)
        .when(record("y"))
        .then_rejects(DenialError::AlreadyRecorded);
}

#[test]
fn request_supplied_text_is_clipped_not_refused() {
    let events = given::<AccessDenial>([])
        .when(record(&"x".repeat(5000)))
        .outcome()
        .unwrap();
    let DenialEvent::Denied(e) = &events[0];
    assert_eq!(e.detail.chars().count(), TEXT_MAX);
}
