//! Who takes part in a computation, on the memory log: participants are users (by id) or addresses
//! still pending; what a computation-level custom role grants; what the application checks that the
//! computation itself cannot.

use prism_app::{App, Caller, CommandOptions, ErrorKind};
use prism_domain::access::RoleName;
use prism_domain::computation::{ComputationChanges, Definition, Participant, Role};
use prism_domain::testing::samples::participant;
use prism_domain::values::Email;
use prism_domain::{ComputationId, ParticipantId, UserId, WorkspaceId};
use prism_store::MemoryLog;

mod common;

use common::{app, user, workspace_of};

fn named(id: ParticipantId, roles: &[Role], custom: &[&str]) -> Participant {
    Participant {
        id,
        custom_roles: custom.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
        ..participant("x", roles)
    }
}

fn definition(participants: Vec<Participant>) -> Definition {
    Definition {
        name: "Study".into(),
        description: String::new(),
        participants,
        algorithm: None,
        datasets: Vec::new(),
        limits: Default::default(),
    }
}

async fn create(
    app: &App,
    by: &Caller,
    ws: WorkspaceId,
    d: Definition,
) -> Result<ComputationId, prism_app::AppError> {
    let executed = app
        .computations()
        .create(by, &CommandOptions::default(), ws, d)
        .await?;
    Ok(executed.id.parse().unwrap())
}

fn rename(name: &str) -> ComputationChanges {
    ComputationChanges {
        name: Some(name.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn participants_are_registered_users_or_pending_addresses() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (ada_id, ada) = user(&app, "ada@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let owner = named(ParticipantId::User(ada_id), &[Role::Owner], &[]);

    // A user id that names no account is refused, saying how to name someone without one.
    let stranger = UserId(uuid::Uuid::now_v7());
    let refused = create(
        &app,
        &ada,
        ws,
        definition(vec![
            owner.clone(),
            named(ParticipantId::User(stranger), &[Role::Viewer], &[]),
        ]),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    assert!(
        refused.detail.contains("not a registered user"),
        "{}",
        refused.detail
    );

    // A custom role must be one of the workspace's.
    let refused = create(
        &app,
        &ada,
        ws,
        definition(vec![
            owner.clone(),
            named(ParticipantId::User(ada_id), &[], &["auditor"]),
        ]),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);

    // An address is a pending invitation: accepted, and it grants its holder nothing yet.
    let (_, bob) = user(&app, "bob@example.org").await;
    let bob_by_address = ParticipantId::Invited(Email::parse("bob@example.org").unwrap());
    let c = create(
        &app,
        &ada,
        ws,
        definition(vec![owner, named(bob_by_address, &[Role::Editor], &[])]),
    )
    .await
    .unwrap();
    let denied = app
        .computations()
        .update(&bob, &CommandOptions::default(), ws, c, rename("Bob's"))
        .await
        .unwrap_err();
    assert_eq!(
        denied.kind,
        ErrorKind::NotFound,
        "an unverified address sees nothing"
    );

    // Once linked (as the platform does when the address is verified), the user holds the roles.
    app.computations()
        .link_participant(
            &Caller::service("test"),
            &CommandOptions::default(),
            ws,
            c,
            Email::parse("bob@example.org").unwrap(),
        )
        .await
        .unwrap();
    app.computations()
        .update(&bob, &CommandOptions::default(), ws, c, rename("Bob's"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_custom_role_on_a_computation_grants_its_computation_permissions_there_only() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (ada_id, ada) = user(&app, "ada@example.org").await;
    let (carol_id, carol) = user(&app, "carol@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let none = CommandOptions::default();
    app.memberships()
        .define_role(
            &ada,
            &none,
            ws,
            "curators",
            vec!["computation.update".into(), "workspace.update".into()],
        )
        .await
        .unwrap();
    let owner = named(ParticipantId::User(ada_id), &[Role::Owner], &[]);
    let curated = create(
        &app,
        &ada,
        ws,
        definition(vec![
            owner.clone(),
            named(ParticipantId::User(carol_id), &[], &["curators"]),
        ]),
    )
    .await
    .unwrap();
    let other = create(&app, &ada, ws, definition(vec![owner])).await.unwrap();

    // Carol (not a member of the workspace) may change the computation that names her...
    app.computations()
        .update(&carol, &none, ws, curated, rename("Curated"))
        .await
        .unwrap();
    // ...but not archive it (the role does not grant that), nor touch another computation, nor use
    // the role's workspace permission.
    let archive = app
        .computations()
        .archive(&carol, &none, ws, curated, None)
        .await
        .unwrap_err();
    assert_eq!(archive.kind, ErrorKind::Forbidden);
    assert!(
        archive.detail.contains("computation.archive"),
        "{}",
        archive.detail
    );
    let elsewhere = app
        .computations()
        .update(&carol, &none, ws, other, rename("Not hers"))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.kind, ErrorKind::NotFound);
    let workspace = app
        .workspaces()
        .update(&carol, &none, ws, common::rename("Carol's"))
        .await
        .unwrap_err();
    assert_eq!(workspace.kind, ErrorKind::NotFound);

    // The role's definition is the workspace's: narrowed there, narrowed here at once.
    app.memberships()
        .define_role(&ada, &none, ws, "curators", vec!["computation.read".into()])
        .await
        .unwrap();
    let narrowed = app
        .computations()
        .update(&carol, &none, ws, curated, rename("Again"))
        .await
        .unwrap_err();
    assert_eq!(narrowed.kind, ErrorKind::Forbidden);
}
