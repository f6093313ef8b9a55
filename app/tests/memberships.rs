//! Memberships on the memory log: invitations sent and answered with their token, denials of tokens
//! that do not hold, leaving and the last admin, custom roles. (The membership queries read PostgreSQL
//! and are tested with the read models.)

use prism_app::{Action, App, AppError, Caller, CommandOptions, ErrorKind, Invite, InviteeInput};
use prism_domain::WorkspaceId;
use prism_domain::access::{Permission, WorkspaceRole};
use prism_domain::workspace::{InvitationStatus, Workspace};
use prism_store::MemoryLog;

mod common;

use common::{app, denials, invite, join, send, user, workspace_of};

async fn can(app: &App, caller: &Caller, permission: Permission, ws: WorkspaceId) -> Result<(), AppError> {
    app.authorize(caller, Action::in_workspace(permission, ws)).await
}

#[tokio::test]
async fn an_invitee_accepts_with_the_token_and_can_then_read_the_workspace() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    assert_eq!(
        can(&app, &bob, Permission::WorkspaceRead, ws)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    // Invited by address (case as typed): the account with that address takes it.
    let sent = send(&app, &ada, ws, InviteeInput::Email("Bob@Example.org".into())).await;
    assert!(sent.token.starts_with("inv_"), "{}", sent.token);
    assert!(
        sent.token.contains(&ws.0.simple().to_string()),
        "the token names its workspace"
    );
    assert!(sent.expires_at > chrono::Utc::now() + chrono::Duration::hours(167));
    let answer = app.memberships().accept(&bob, &sent.token).await.unwrap();
    assert_eq!((answer.workspace, answer.invitation), (ws, sent.invitation));
    can(&app, &bob, Permission::WorkspaceRead, ws).await.unwrap();
    let state = app.repository::<Workspace>().load(&ws).await.unwrap().state;
    assert_eq!(state.member(bob_id).unwrap().role, WorkspaceRole::Member);
    assert_eq!(
        state.invitations[&sent.invitation].status,
        InvitationStatus::Accepted
    );
    // A member may not invite; an address whose account is a member already is refused up front.
    assert_eq!(
        app.memberships()
            .invite(
                &bob,
                &CommandOptions::default(),
                ws,
                invite(InviteeInput::Email("carol@example.org".into()))
            )
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
    let again = app
        .memberships()
        .invite(
            &ada,
            &CommandOptions::default(),
            ws,
            invite(InviteeInput::Email("bob@example.org".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists, "{}", again.detail);
}

#[tokio::test]
async fn an_invitee_may_decline_and_the_token_then_holds_no_more() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let sent = send(&app, &ada, ws, InviteeInput::User(bob_id)).await;
    app.memberships().reject(&bob, &sent.token).await.unwrap();
    let closed = app.memberships().accept(&bob, &sent.token).await.unwrap_err();
    assert_eq!(closed.kind, ErrorKind::StateConflict, "{}", closed.detail);
    assert!(closed.detail.contains("rejected"), "{}", closed.detail);
    assert_eq!(
        can(&app, &bob, Permission::WorkspaceRead, ws)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn tokens_that_do_not_hold_are_refused_as_the_domain_says_and_recorded() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let (_, eve) = user(&app, "eve@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let sent = send(&app, &ada, ws, InviteeInput::User(bob_id)).await;
    let before = denials(&log).await;

    // Another secret for the same workspace (changed inside: the last character has spare bits).
    let mut chars: Vec<char> = sent.token.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    let wrong = app.memberships().accept(&bob, &forged).await.unwrap_err();
    assert_eq!(wrong.kind, ErrorKind::Invalid);
    assert_eq!(wrong.detail, "the invitation token is invalid or has expired");
    // Not a token at all.
    let malformed = app.memberships().accept(&bob, "inv_nonsense").await.unwrap_err();
    assert_eq!(malformed.kind, ErrorKind::Invalid);
    // The right token in someone else's hands.
    let stolen = app.memberships().accept(&eve, &sent.token).await.unwrap_err();
    assert_eq!(stolen.kind, ErrorKind::Invalid);
    assert_eq!(stolen.detail, "this invitation is for someone else");
    assert_eq!(denials(&log).await, before + 3);
    assert_eq!(
        can(&app, &eve, Permission::WorkspaceRead, ws)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );

    // Anonymous callers must sign in; the invitation still works for its invitee.
    let anonymous = app
        .memberships()
        .accept(&Caller::anonymous(), &sent.token)
        .await
        .unwrap_err();
    assert_eq!(anonymous.kind, ErrorKind::Unauthenticated);
    app.memberships().accept(&bob, &sent.token).await.unwrap();
}

#[tokio::test]
async fn a_resent_invitation_has_a_new_token_and_a_revoked_one_none() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let (carol_id, carol) = user(&app, "carol@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let none = CommandOptions::default();

    // A retry under the same key names the invitation but cannot show its token again.
    let key = CommandOptions::keyed("invite-bob");
    let first = app
        .memberships()
        .invite(&ada, &key, ws, invite(InviteeInput::User(bob_id)))
        .await
        .unwrap();
    let retry = app
        .memberships()
        .invite(&ada, &key, ws, invite(InviteeInput::User(bob_id)))
        .await
        .unwrap_err();
    assert_eq!(retry.kind, ErrorKind::AlreadyExists);
    assert!(
        retry.detail.contains(&first.invitation.to_string()),
        "{}",
        retry.detail
    );

    let resent = app
        .memberships()
        .resend(&ada, &none, ws, first.invitation)
        .await
        .unwrap();
    assert_eq!(resent.invitation, first.invitation);
    assert_ne!(resent.token, first.token);
    assert_eq!(
        app.memberships()
            .accept(&bob, &first.token)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );
    app.memberships().accept(&bob, &resent.token).await.unwrap();

    let to_carol = send(&app, &ada, ws, InviteeInput::User(carol_id)).await;
    app.memberships()
        .revoke(&ada, &none, ws, to_carol.invitation)
        .await
        .unwrap();
    let revoked = app
        .memberships()
        .accept(&carol, &to_carol.token)
        .await
        .unwrap_err();
    assert_eq!(revoked.kind, ErrorKind::StateConflict);
    assert!(revoked.detail.contains("revoked"), "{}", revoked.detail);
}

#[tokio::test]
async fn members_may_leave_but_the_last_admin_may_not() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (ada_id, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let (carol_id, carol) = user(&app, "carol@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let none = CommandOptions::default();
    for (id, caller) in [(bob_id, &bob), (carol_id, &carol)] {
        join(&app, &ada, ws, id, caller).await;
    }

    let last = app
        .memberships()
        .remove(&ada, &none, ws, ada_id)
        .await
        .unwrap_err();
    assert_eq!(last.kind, ErrorKind::StateConflict);
    assert!(last.detail.contains("at least one admin"), "{}", last.detail);
    // A member removes no one but themself.
    assert_eq!(
        app.memberships()
            .remove(&bob, &none, ws, carol_id)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
    app.memberships().remove(&bob, &none, ws, bob_id).await.unwrap();
    assert_eq!(
        can(&app, &bob, Permission::WorkspaceRead, ws)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    // With a second admin, the first may step down and leave.
    app.memberships()
        .change_role(&ada, &none, ws, carol_id, WorkspaceRole::Admin, vec![])
        .await
        .unwrap();
    app.memberships().remove(&ada, &none, ws, ada_id).await.unwrap();
    can(&app, &carol, Permission::MembersManage, ws).await.unwrap();
}

#[tokio::test]
async fn a_custom_role_grants_its_permissions() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let (carol_id, carol) = user(&app, "carol@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let none = CommandOptions::default();
    join(&app, &ada, ws, bob_id, &bob).await;

    // Names arrive as strings and are checked, naming the bad one.
    let unknown = app
        .memberships()
        .define_role(
            &ada,
            &none,
            ws,
            "inviters",
            vec!["members.invite".into(), "members.dance".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::Invalid);
    assert!(unknown.detail.contains("members.dance"), "{}", unknown.detail);
    let bad_name = app
        .memberships()
        .define_role(&ada, &none, ws, "Inviters!", vec!["members.invite".into()])
        .await
        .unwrap_err();
    assert_eq!(bad_name.kind, ErrorKind::Invalid);
    assert!(bad_name.detail.contains("Inviters!"), "{}", bad_name.detail);
    let platform = app
        .memberships()
        .define_role(&ada, &none, ws, "operators", vec!["platform.operate".into()])
        .await
        .unwrap_err();
    assert_eq!(platform.kind, ErrorKind::Invalid);
    // Only who may manage roles defines them.
    assert_eq!(
        app.memberships()
            .define_role(&bob, &none, ws, "inviters", vec!["members.invite".into()])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
    let unknown_role = app
        .memberships()
        .change_role(
            &ada,
            &none,
            ws,
            bob_id,
            WorkspaceRole::Member,
            vec!["inviters".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(unknown_role.kind, ErrorKind::Invalid);

    app.memberships()
        .define_role(&ada, &none, ws, "inviters", vec!["members.invite".into()])
        .await
        .unwrap();
    assert_eq!(
        can(&app, &bob, Permission::MembersInvite, ws)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
    app.memberships()
        .change_role(
            &ada,
            &none,
            ws,
            bob_id,
            WorkspaceRole::Member,
            vec!["inviters".into()],
        )
        .await
        .unwrap();
    let to_carol = send(&app, &bob, ws, InviteeInput::User(carol_id)).await;
    app.memberships().accept(&carol, &to_carol.token).await.unwrap();
    can(&app, &carol, Permission::WorkspaceRead, ws).await.unwrap();

    // A role held by a member stays; once nobody holds it, it goes, and so do its permissions.
    let in_use = app
        .memberships()
        .delete_role(&ada, &none, ws, "inviters")
        .await
        .unwrap_err();
    assert_eq!(in_use.kind, ErrorKind::StateConflict);
    app.memberships()
        .change_role(&ada, &none, ws, bob_id, WorkspaceRole::Member, vec![])
        .await
        .unwrap();
    app.memberships()
        .delete_role(&ada, &none, ws, "inviters")
        .await
        .unwrap();
    assert_eq!(
        can(&app, &bob, Permission::MembersInvite, ws)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
}

#[tokio::test]
async fn an_invitation_may_not_outlive_its_maximum_or_start_expired() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, _) = user(&app, "bob@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    for expires_at in [
        chrono::Utc::now() + chrono::Duration::days(31),
        chrono::Utc::now() - chrono::Duration::minutes(1),
    ] {
        let refused = app
            .memberships()
            .invite(
                &ada,
                &CommandOptions::default(),
                ws,
                Invite {
                    expires_at: Some(expires_at),
                    ..invite(InviteeInput::User(bob_id))
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Invalid, "{}", refused.detail);
    }
}
