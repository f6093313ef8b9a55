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
        admin: None,
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
        admin: None,
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

mod membership {
    use std::collections::BTreeSet;

    use chrono::Duration;

    use super::super::*;
    use super::id;
    use crate::access::{Permission, RoleName, WorkspaceRole};
    use crate::ids::{InvitationId, UserId};
    use crate::testing::{ctx, given};
    use crate::values::{Email, SecretHash};

    fn user(n: u128) -> UserId {
        UserId(uuid::Uuid::from_u128(n))
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    const ADA: u128 = 1;
    const BOB: u128 = 2;

    fn created_by_ada() -> WorkspaceEvent {
        WorkspaceEvent::Created(WorkspaceCreated {
            id: id(),
            name: "Hospitals".into(),
            description: "".into(),
            created_by: ctx().actor,
            created_at: ctx().now,
            admin: Some(user(ADA)),
        })
    }

    fn invitation() -> InvitationId {
        InvitationId(uuid::Uuid::from_u128(9))
    }

    fn invited(invitee: Invitee, role: WorkspaceRole) -> WorkspaceEvent {
        WorkspaceEvent::MemberInvited(MemberInvited {
            invitation: invitation(),
            invitee,
            role,
            custom_roles: BTreeSet::new(),
            token: SecretHash::of(b"token"),
            expires_at: ctx().now + Duration::hours(168),
            invited_by: ctx().actor,
            invited_at: ctx().now,
        })
    }

    fn accepted(by: u128, role: WorkspaceRole) -> WorkspaceEvent {
        WorkspaceEvent::InvitationAccepted(InvitationAccepted {
            invitation: invitation(),
            user: user(by),
            role,
            custom_roles: BTreeSet::new(),
            accepted_at: ctx().now,
        })
    }

    fn accept(token: &[u8], by: u128, address: &str) -> WorkspaceCommand {
        WorkspaceCommand::Membership(MembershipCommand::Accept {
            invitation: invitation(),
            token: SecretHash::of(token),
            user: user(by),
            email: email(address),
        })
    }

    fn invite(invitee: Invitee) -> WorkspaceCommand {
        WorkspaceCommand::Membership(MembershipCommand::Invite {
            invitation: invitation(),
            invitee,
            role: WorkspaceRole::Member,
            custom_roles: BTreeSet::new(),
            token: SecretHash::of(b"token"),
            expires_at: ctx().now + Duration::hours(168),
        })
    }

    #[test]
    fn the_creator_is_the_first_admin() {
        let given = given::<Workspace>([created_by_ada()]);
        let state = given.state();
        assert_eq!(state.admins().collect::<Vec<_>>(), vec![user(ADA)]);
        assert!(state.grants_of(user(ADA)).allows(Permission::MembersManage));
        assert!(!state.grants_of(user(BOB)).allows(Permission::WorkspaceRead));
    }

    #[test]
    fn an_invitation_by_email_is_taken_with_its_token_by_that_address() {
        let by_email = Invitee::Email(email("bob@example.org"));
        given::<Workspace>([created_by_ada()])
            .when(invite(by_email.clone()))
            .then_expect([invited(by_email.clone(), WorkspaceRole::Member)]);
        let state = given::<Workspace>([created_by_ada(), invited(by_email, WorkspaceRole::Member)])
            .when(accept(b"token", BOB, "Bob@example.org"))
            .then_expect([accepted(BOB, WorkspaceRole::Member)]);
        assert_eq!(
            state.member(user(BOB)).map(|m| m.role),
            Some(WorkspaceRole::Member)
        );
    }

    #[test]
    fn an_invitation_is_refused_with_a_wrong_token_to_someone_else_or_after_expiry() {
        let history = [
            created_by_ada(),
            invited(Invitee::Email(email("bob@example.org")), WorkspaceRole::Member),
        ];
        given::<Workspace>(history.clone())
            .when(accept(b"guess", BOB, "bob@example.org"))
            .then_rejects(WorkspaceError::InvitationTokenInvalid);
        given::<Workspace>(history.clone())
            .when(accept(b"token", 3, "eve@example.org"))
            .then_rejects(WorkspaceError::NotTheInvitee);
        given::<Workspace>(history)
            .at(ctx().now + Duration::hours(168))
            .when(accept(b"token", BOB, "bob@example.org"))
            .then_rejects(WorkspaceError::InvitationTokenInvalid);
    }

    #[test]
    fn an_accepted_invitation_cannot_be_used_twice() {
        let invitee = Invitee::User(user(BOB));
        given::<Workspace>([
            created_by_ada(),
            invited(invitee, WorkspaceRole::Member),
            accepted(BOB, WorkspaceRole::Member),
        ])
        .when(accept(b"token", BOB, "bob@example.org"))
        .then_rejects(WorkspaceError::InvitationClosed("accepted"));
    }

    #[test]
    fn a_pending_invitee_is_not_invited_twice_and_a_member_not_at_all() {
        let invitee = Invitee::User(user(BOB));
        let mut second = invite(invitee.clone());
        if let WorkspaceCommand::Membership(MembershipCommand::Invite { invitation, .. }) = &mut second {
            *invitation = InvitationId(uuid::Uuid::from_u128(10));
        }
        given::<Workspace>([created_by_ada(), invited(invitee, WorkspaceRole::Member)])
            .when(second)
            .then_rejects(WorkspaceError::InvitationPending);
        given::<Workspace>([created_by_ada()])
            .when(invite(Invitee::User(user(ADA))))
            .then_rejects(WorkspaceError::AlreadyMember);
    }

    #[test]
    fn a_resent_invitation_takes_only_the_new_token() {
        let invitee = Invitee::User(user(BOB));
        let resent = WorkspaceEvent::InvitationResent(InvitationResent {
            invitation: invitation(),
            token: SecretHash::of(b"new"),
            expires_at: ctx().now + Duration::hours(1),
            resent_by: ctx().actor,
            resent_at: ctx().now,
        });
        let history = [created_by_ada(), invited(invitee, WorkspaceRole::Member), resent];
        given::<Workspace>(history.clone())
            .when(accept(b"token", BOB, "bob@example.org"))
            .then_rejects(WorkspaceError::InvitationTokenInvalid);
        given::<Workspace>(history)
            .when(accept(b"new", BOB, "bob@example.org"))
            .then_expect([accepted(BOB, WorkspaceRole::Member)]);
    }

    #[test]
    fn the_last_admin_can_be_neither_demoted_nor_removed() {
        given::<Workspace>([created_by_ada()])
            .when(WorkspaceCommand::Membership(MembershipCommand::Remove {
                user: user(ADA),
            }))
            .then_rejects(WorkspaceError::LastAdmin);
        given::<Workspace>([created_by_ada()])
            .when(WorkspaceCommand::Membership(MembershipCommand::ChangeRole {
                user: user(ADA),
                role: WorkspaceRole::Member,
                custom_roles: BTreeSet::new(),
            }))
            .then_rejects(WorkspaceError::LastAdmin);
        // With a second admin, the first may go.
        given::<Workspace>([
            created_by_ada(),
            invited(Invitee::User(user(BOB)), WorkspaceRole::Admin),
            accepted(BOB, WorkspaceRole::Admin),
        ])
        .when(WorkspaceCommand::Membership(MembershipCommand::Remove {
            user: user(ADA),
        }))
        .then_expect([WorkspaceEvent::MemberRemoved(MemberRemoved {
            user: user(ADA),
            removed_by: ctx().actor,
            removed_at: ctx().now,
        })]);
    }

    #[test]
    fn custom_roles_grant_their_permissions_and_are_checked() {
        let auditor = RoleName::parse("auditor").unwrap();
        let defined = WorkspaceEvent::RoleDefined(RoleDefined {
            name: auditor.clone(),
            permissions: [Permission::ComputationResultsRead].into(),
            defined_by: ctx().actor,
            defined_at: ctx().now,
        });
        given::<Workspace>([created_by_ada()])
            .when(WorkspaceCommand::Membership(MembershipCommand::DefineRole {
                name: auditor.clone(),
                permissions: [Permission::PlatformOperate].into(),
            }))
            .then_rejects(WorkspaceError::PlatformPermission(Permission::PlatformOperate));
        let changed = WorkspaceEvent::MemberRoleChanged(MemberRoleChanged {
            user: user(BOB),
            role: WorkspaceRole::Member,
            custom_roles: [auditor.clone()].into(),
            changed_by: ctx().actor,
            changed_at: ctx().now,
        });
        let history = [
            created_by_ada(),
            defined,
            invited(Invitee::User(user(BOB)), WorkspaceRole::Member),
            accepted(BOB, WorkspaceRole::Member),
        ];
        let state = given::<Workspace>(history.clone())
            .when(WorkspaceCommand::Membership(MembershipCommand::ChangeRole {
                user: user(BOB),
                role: WorkspaceRole::Member,
                custom_roles: [auditor.clone()].into(),
            }))
            .then_expect([changed.clone()]);
        assert!(
            state
                .grants_of(user(BOB))
                .allows(Permission::ComputationResultsRead)
        );
        given::<Workspace>(history.into_iter().chain([changed]))
            .when(WorkspaceCommand::Membership(MembershipCommand::DeleteRole {
                name: auditor.clone(),
            }))
            .then_rejects(WorkspaceError::RoleInUse(auditor));
    }

    #[test]
    fn membership_cannot_change_in_an_archived_workspace() {
        given::<Workspace>([created_by_ada(), super::archived()])
            .when(invite(Invitee::User(user(BOB))))
            .then_rejects(WorkspaceError::Archived);
    }
}
