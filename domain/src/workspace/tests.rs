use super::*;
use crate::ids::WorkspaceId;
use crate::testing::{ctx, given};
use crate::values::ValueError;

fn id() -> WorkspaceId {
    WorkspaceId(uuid::Uuid::from_u128(7))
}

fn created() -> WorkspaceEvent {
    WorkspaceEvent::Created(WorkspaceCreated {
        id: id(),
        name: "Hospitals".into(),
        description: "".into(),
        created_by: ctx().actor,
        created_at: ctx().now,
    })
}

fn archived() -> WorkspaceEvent {
    WorkspaceEvent::Archived(WorkspaceArchived {
        archived_by: ctx().actor,
        archived_at: ctx().now,
    })
}

fn create(name: &str) -> WorkspaceCommand {
    WorkspaceCommand::Create {
        id: id(),
        name: name.into(),
        description: "".into(),
    }
}

#[test]
fn a_workspace_is_created_with_a_trimmed_name() {
    given::<Workspace>([])
        .when(create("  Hospitals "))
        .then_expect([created()]);
}

#[test]
fn a_workspace_needs_a_name() {
    given::<Workspace>([])
        .when(create("   "))
        .then_rejects(ValueError::Empty { field: "name" }.into());
}

#[test]
fn a_workspace_name_is_bounded() {
    given::<Workspace>([])
        .when(create(&"x".repeat(NAME_MAX + 1)))
        .then_rejects(
            ValueError::TooLong {
                field: "name",
                len: NAME_MAX + 1,
                max: NAME_MAX,
            }
            .into(),
        );
}

#[test]
fn a_workspace_is_created_once() {
    given::<Workspace>([created()])
        .when(create("Again"))
        .then_rejects(WorkspaceError::AlreadyExists);
}

#[test]
fn an_unknown_workspace_cannot_change() {
    given::<Workspace>([])
        .when(WorkspaceCommand::Archive)
        .then_rejects(WorkspaceError::NotFound);
}

#[test]
fn an_update_records_only_what_changed() {
    let update = WorkspaceCommand::Update {
        name: Some("Hospitals".into()),
        description: Some("EU only".into()),
    };
    let state = given::<Workspace>([created()])
        .when(update)
        .then_expect([WorkspaceEvent::Updated(WorkspaceUpdated {
            name: None,
            description: Some("EU only".into()),
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    assert_eq!(state.description, "EU only");
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    let update = WorkspaceCommand::Update {
        name: Some("Hospitals".into()),
        description: None,
    };
    given::<Workspace>([created()]).when(update).then_expect([]);
}

#[test]
fn archiving_is_final() {
    let state = given::<Workspace>([created()])
        .when(WorkspaceCommand::Archive)
        .then_expect([archived()]);
    assert_eq!(state.status, WorkspaceStatus::Archived);
    given::<Workspace>([created(), archived()])
        .when(WorkspaceCommand::Update {
            name: Some("New".into()),
            description: None,
        })
        .then_rejects(WorkspaceError::Archived);
    given::<Workspace>([created(), archived()])
        .when(WorkspaceCommand::Archive)
        .then_rejects(WorkspaceError::AlreadyArchived);
}
