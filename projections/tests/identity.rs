//! The identity read models — users, workspace membership, API keys — against a real nats-server and
//! a fresh PostgreSQL database per test.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use common::{Env, WAIT, dump, env};
use futures::StreamExt as _;
use prism_domain::access::{Permission, RoleName, WorkspaceRole};
use prism_domain::api_key::{ApiKey, ApiKeyCommand};
use prism_domain::user::{LockoutPolicy, SignInFailure, SignInOutcome, User, UserCommand};
use prism_domain::values::{Email, PasswordHash, SecretHash};
use prism_domain::workspace::{Invitee, MembershipCommand, WorkspaceCommand};
use prism_domain::{ApiKeyId, InvitationId, UserId, WorkspaceId};
use prism_projections::{
    API_KEYS, ApiKeyView, ApiKeysProjection, CustomRoleView, InvitationView, MemberView, PageRequest,
    ReadModels, RunProjection as _, USERS, UsersProjection, WORKSPACES, WorkspacesProjection, reset,
};
use prism_store::Repository;
use tokio::sync::mpsc;

const PASSWORD: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
const NEW_PASSWORD: &str = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA";
const ISSUER: &str = "https://id.example.org";

fn email(address: &str) -> Email {
    Email::parse(address).unwrap()
}

fn password(hash: &str) -> PasswordHash {
    PasswordHash::parse(hash).unwrap()
}

fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap()
}

fn policy(lockout: chrono::Duration) -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 3,
        window: chrono::Duration::minutes(15),
        lockout,
    }
}

struct Identity {
    env: Env,
    users: Repository<User>,
    api_keys: Repository<ApiKey>,
}

impl Identity {
    async fn new() -> Self {
        let env = env().await;
        Self {
            users: Repository::new(env.store.clone()),
            api_keys: Repository::new(env.store.clone()),
            env,
        }
    }

    fn read(&self) -> &ReadModels {
        &self.env.read
    }

    async fn user(&self, id: UserId, command: UserCommand) -> u64 {
        self.env.execute(&self.users, &id, command).await
    }

    async fn api_key(&self, id: ApiKeyId, command: ApiKeyCommand) -> u64 {
        self.env.execute(&self.api_keys, &id, command).await
    }

    async fn membership(&self, ws: WorkspaceId, command: MembershipCommand) -> u64 {
        self.env
            .workspace(ws, WorkspaceCommand::Membership(command))
            .await
    }

    /// Registers `address`; answers its id.
    async fn register(
        &self,
        address: &str,
        name: &str,
        password: Option<&str>,
        platform_admin: bool,
        verification: Option<&[u8]>,
    ) -> UserId {
        let address = email(address);
        let id = UserId::for_email(&address);
        let register = UserCommand::Register {
            id,
            email: address,
            display_name: name.into(),
            password: password.map(self::password),
            platform_admin,
            email_verified: verification.is_none(),
            verification: verification
                .map(|token| (SecretHash::of(token), Utc::now() + chrono::Duration::days(1))),
        };
        self.user(id, register).await;
        id
    }

    async fn sign_in(&self, id: UserId, outcome: SignInOutcome, lockout: chrono::Duration) -> u64 {
        let record = UserCommand::RecordSignIn {
            outcome,
            source: Some("192.0.2.7".into()),
            policy: policy(lockout),
        };
        self.user(id, record).await
    }

    /// Three wrong passwords: the third locks the account for `lockout`.
    async fn lock_out(&self, id: UserId, lockout: chrono::Duration) -> u64 {
        let wrong = SignInOutcome::Failed {
            reason: SignInFailure::WrongPassword,
        };
        let mut last = 0;
        for _ in 0..3 {
            last = self.sign_in(id, wrong, lockout).await;
        }
        last
    }

    async fn create_workspace(&self, name: &str, admin: UserId) -> WorkspaceId {
        let ws = WorkspaceId(uuid::Uuid::now_v7());
        let create = WorkspaceCommand::Create {
            id: ws,
            name: name.into(),
            description: String::new(),
            admin: Some(admin),
        };
        self.env.workspace(ws, create).await;
        ws
    }

    /// Invites `invitee` as a member with `custom_roles`, the token being `token`; answers the
    /// invitation's id.
    async fn invite(
        &self,
        ws: WorkspaceId,
        invitee: Invitee,
        custom_roles: &[&str],
        token: &[u8],
        expires_at: DateTime<Utc>,
    ) -> InvitationId {
        let invitation = InvitationId(uuid::Uuid::now_v7());
        let invite = MembershipCommand::Invite {
            invitation,
            invitee,
            role: WorkspaceRole::Member,
            custom_roles: custom_roles.iter().map(|r| role(r)).collect(),
            token: SecretHash::of(token),
            expires_at,
        };
        self.membership(ws, invite).await;
        invitation
    }

    async fn accept(&self, ws: WorkspaceId, invitation: InvitationId, token: &[u8], address: &str) {
        let accept = MembershipCommand::Accept {
            invitation,
            token: SecretHash::of(token),
            user: UserId::for_email(&email(address)),
            email: email(address),
        };
        self.membership(ws, accept).await;
    }

    async fn create_key(
        &self,
        owner: UserId,
        ws: WorkspaceId,
        name: &str,
        permissions: &[Permission],
        secret: &[u8],
    ) -> (ApiKeyId, u64) {
        let id = ApiKeyId(uuid::Uuid::now_v7());
        let create = ApiKeyCommand::Create {
            id,
            owner,
            workspace: ws,
            name: name.into(),
            permissions: permissions.iter().copied().collect(),
            secret: SecretHash::of(secret),
            expires_at: None,
        };
        let sequence = self.api_key(id, create).await;
        (id, sequence)
    }
}

/// Every page of `users`, `limit` at a time.
async fn all_users(read: &ReadModels, limit: u32) -> Vec<UserId> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = read.users(PageRequest { after, limit }).await.unwrap();
        assert!(page.items.len() <= limit as usize);
        seen.extend(page.items.iter().map(|u| u.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
}

/// Every page of `workspaces_of(user)`, `limit` at a time.
async fn all_workspaces_of(read: &ReadModels, user: UserId, limit: u32) -> Vec<WorkspaceId> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = read
            .workspaces_of(user, PageRequest { after, limit })
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        seen.extend(page.items.iter().map(|w| w.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
}

/// `(invitee, status)` of each invitation, in the order given.
fn invitees(invitations: &[InvitationView]) -> Vec<(String, String)> {
    invitations
        .iter()
        .map(|i| {
            let invitee = match (&i.invitee_user, &i.invitee_email) {
                (Some(user), None) => user.to_string(),
                (None, Some(address)) => address.clone(),
                other => panic!("an invitation names exactly one invitee: {other:?}"),
            };
            (invitee, i.status.clone())
        })
        .collect()
}

const IDENTITY_TABLES: &[&str] = &[
    "users",
    "user_identities",
    "api_keys",
    "workspaces",
    "workspace_members",
    "workspace_invitations",
    "workspace_roles",
];

async fn dump_all(read: &ReadModels) -> Vec<Vec<serde_json::Value>> {
    let mut tables = Vec::new();
    for table in IDENTITY_TABLES {
        tables.push(dump(read, table).await);
    }
    tables
}

#[tokio::test]
async fn identity_read_models_follow_the_log_and_rebuild_the_same() {
    let id = Identity::new().await;
    let read = id.read();
    let users = id.env.start(UsersProjection);
    let workspaces = id.env.start(WorkspacesProjection);
    let keys = id.env.start(ApiKeysProjection);
    assert!(!read.platform_has_users().await.unwrap());

    // Users.
    let alice = id
        .register("alice@example.org", "Alice", Some(PASSWORD), true, None)
        .await;
    let bob = id
        .register("Bob@Example.org", "Bob", None, false, Some(b"verify-bob"))
        .await;
    let carol = id
        .register("carol@example.org", "Carol", Some(PASSWORD), false, None)
        .await;
    let dave = id
        .register("dave@example.org", "Dave", Some(PASSWORD), false, None)
        .await;
    let erin = id
        .register("erin@example.org", "Erin", Some(PASSWORD), false, None)
        .await;
    id.sign_in(alice, SignInOutcome::Succeeded, chrono::Duration::minutes(15))
        .await;
    id.user(
        alice,
        UserCommand::ChangePassword {
            new_password: password(NEW_PASSWORD),
            keep_session: None,
        },
    )
    .await;
    id.user(
        bob,
        UserCommand::VerifyEmail {
            token: SecretHash::of(b"verify-bob"),
        },
    )
    .await;
    id.user(
        bob,
        UserCommand::LinkIdentity {
            issuer: ISSUER.into(),
            subject: "bob-123".into(),
        },
    )
    .await;
    id.user(bob, UserCommand::GrantPlatformAdmin).await;
    id.user(bob, UserCommand::RevokePlatformAdmin).await;
    // Carol is locked out briefly, then signs in: the sign-in clears the lockout.
    let locked = id.lock_out(carol, chrono::Duration::milliseconds(300)).await;
    read.wait_for(USERS, locked, WAIT).await.unwrap();
    let carol_locked = read.user(carol).await.unwrap().unwrap();
    assert!(carol_locked.locked_until.is_some());
    assert_eq!(carol_locked.version, 1 + 3 + 1, "three failures, one lockout");
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(400)).await;
    id.sign_in(carol, SignInOutcome::Succeeded, chrono::Duration::minutes(15))
        .await;
    // Dave stays locked out; Erin is disabled, enabled, disabled.
    id.lock_out(dave, chrono::Duration::hours(1)).await;
    id.user(
        erin,
        UserCommand::Disable {
            reason: Some("left".into()),
            sole_owner_of: vec![],
        },
    )
    .await;
    id.user(erin, UserCommand::Enable).await;
    id.user(
        erin,
        UserCommand::Disable {
            reason: None,
            sole_owner_of: vec![],
        },
    )
    .await;

    // Workspaces: alice administers all of them; bob joins ws1 and becomes a second admin there.
    let ws1 = id.create_workspace("Hospitals", alice).await;
    // PostgreSQL keeps microseconds.
    let frank_expires = (Utc::now() + chrono::Duration::seconds(1)).trunc_subsecs(6);
    let frank = id
        .invite(
            ws1,
            Invitee::Email(email("frank@example.org")),
            &[],
            b"inv-frank",
            frank_expires,
        )
        .await;
    let later = (Utc::now() + chrono::Duration::days(7)).trunc_subsecs(6);
    id.membership(
        ws1,
        MembershipCommand::DefineRole {
            name: role("auditor"),
            permissions: BTreeSet::from([Permission::MembersRead, Permission::WorkspaceRead]),
        },
    )
    .await;
    let to_bob = id
        .invite(ws1, Invitee::User(bob), &["auditor"], b"inv-bob", later)
        .await;
    let to_carol = id
        .invite(
            ws1,
            Invitee::Email(email("carol@example.org")),
            &[],
            b"inv-carol",
            later,
        )
        .await;
    let to_dora = id
        .invite(
            ws1,
            Invitee::Email(email("dora@example.org")),
            &[],
            b"inv-dora",
            later,
        )
        .await;
    let to_gina = id
        .invite(
            ws1,
            Invitee::Email(email("gina@example.org")),
            &[],
            b"inv-gina",
            later,
        )
        .await;
    id.membership(ws1, MembershipCommand::Revoke { invitation: to_gina })
        .await;
    id.accept(ws1, to_bob, b"inv-bob", "bob@example.org").await;
    id.accept(ws1, to_carol, b"inv-carol", "carol@example.org").await;
    id.membership(
        ws1,
        MembershipCommand::ChangeRole {
            user: bob,
            role: WorkspaceRole::Admin,
            custom_roles: BTreeSet::from([role("auditor")]),
        },
    )
    .await;
    id.membership(ws1, MembershipCommand::Remove { user: carol })
        .await;

    let ws2 = id.create_workspace("Labs", alice).await;
    let bob_to_ws2 = id
        .invite(
            ws2,
            Invitee::Email(email("bob@example.org")),
            &[],
            b"inv-bob-2",
            later,
        )
        .await;
    let ws3 = id.create_workspace("Old", alice).await;
    id.invite(ws3, Invitee::User(bob), &[], b"inv-bob-3", later).await;
    id.env.workspace(ws3, WorkspaceCommand::Archive).await;
    // Its admin never registered.
    let ghost = UserId::for_email(&email("ghost@example.org"));
    let ws4 = id.create_workspace("Haunted", ghost).await;

    // API keys.
    let (k1, _) = id
        .create_key(
            alice,
            ws1,
            "ci",
            &[Permission::WorkspaceRead, Permission::ComputationRead],
            b"pak-1",
        )
        .await;
    let (k2, _) = id
        .create_key(alice, ws2, "old", &[Permission::ComputationRead], b"pak-2")
        .await;
    id.api_key(
        k2,
        ApiKeyCommand::Revoke {
            reason: Some("rotated".into()),
        },
    )
    .await;
    let (k3, last) = id
        .create_key(bob, ws1, "bob's", &[Permission::MembersRead], b"pak-3")
        .await;
    for name in [USERS, WORKSPACES, API_KEYS] {
        read.wait_for(name, last, WAIT).await.unwrap();
    }

    // Users.
    assert!(read.platform_has_users().await.unwrap());
    let a = read.user(alice).await.unwrap().unwrap();
    assert_eq!(
        (
            a.email.as_str(),
            a.display_name.as_str(),
            a.status.as_str(),
            a.email_verified,
            a.platform_admin,
            a.has_password,
            a.version,
        ),
        ("alice@example.org", "Alice", "active", true, true, true, 3)
    );
    assert!(a.last_sign_in_at.is_some() && a.locked_until.is_none());
    assert!(a.created_at < a.updated_at);
    let b = read.user(bob).await.unwrap().unwrap();
    assert_eq!(
        (
            b.email.as_str(),
            b.email_verified,
            b.platform_admin,
            b.has_password,
            b.last_sign_in_at,
            b.version,
        ),
        ("bob@example.org", true, false, false, None, 5)
    );
    let c = read.user(carol).await.unwrap().unwrap();
    assert_eq!(
        (c.locked_until, c.version),
        (None, 6),
        "the sign-in ended the lockout"
    );
    assert!(c.last_sign_in_at.is_some());
    let d = read.user(dave).await.unwrap().unwrap();
    assert!(d.locked_until.is_some_and(|until| until > Utc::now()));
    assert_eq!(d.last_sign_in_at, None);
    assert_eq!(read.user(erin).await.unwrap().unwrap().status, "disabled");
    assert_eq!(read.user(ghost).await.unwrap(), None);
    assert_eq!(
        read.user_by_email(&email("BOB@example.ORG")).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        read.user_by_email(&email("nobody@example.org")).await.unwrap(),
        None
    );
    assert_eq!(
        read.user_by_identity(ISSUER, "bob-123").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(read.user_by_identity(ISSUER, "bob-124").await.unwrap(), None);
    assert_eq!(
        read.user_by_identity("https://other.example.org", "bob-123")
            .await
            .unwrap(),
        None
    );
    let mut registered = vec![alice, bob, carol, dave, erin];
    registered.sort();
    assert_eq!(all_users(read, 2).await, registered);
    assert_eq!(all_users(read, 5).await, registered);

    // Members, with the name and address of their accounts; a member without one still shows.
    let members = read.members(ws1).await.unwrap();
    let since = |user: UserId| members.iter().find(|m| m.user_id == user).unwrap().since;
    assert_eq!(
        members,
        vec![
            MemberView {
                user_id: alice,
                email: "alice@example.org".into(),
                display_name: "Alice".into(),
                role: "admin".into(),
                custom_roles: vec![],
                since: since(alice),
            },
            MemberView {
                user_id: bob,
                email: "bob@example.org".into(),
                display_name: "Bob".into(),
                role: "admin".into(),
                custom_roles: vec!["auditor".into()],
                since: since(bob),
            },
        ]
    );
    assert!(since(alice) < since(bob));
    let haunted = read.members(ws4).await.unwrap();
    assert_eq!(
        haunted
            .iter()
            .map(|m| (
                m.user_id,
                m.email.as_str(),
                m.display_name.as_str(),
                m.role.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![(ghost, "", "", "admin")]
    );
    assert!(
        read.members(WorkspaceId(uuid::Uuid::now_v7()))
            .await
            .unwrap()
            .is_empty()
    );

    // Invitations: pending ones (expired included), then all of them.
    let until_expired = (frank_expires - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_expired + Duration::from_millis(50)).await;
    let open = read.invitations(ws1, false).await.unwrap();
    assert_eq!(
        invitees(&open),
        vec![
            ("frank@example.org".into(), "expired".into()),
            ("dora@example.org".into(), "pending".into()),
        ]
    );
    assert_eq!(open[0].id, frank);
    assert_eq!(open[0].expires_at, frank_expires);
    let all = read.invitations(ws1, true).await.unwrap();
    assert_eq!(
        invitees(&all),
        vec![
            ("frank@example.org".into(), "expired".into()),
            (bob.to_string(), "accepted".into()),
            ("carol@example.org".into(), "accepted".into()),
            ("dora@example.org".into(), "pending".into()),
            ("gina@example.org".into(), "revoked".into()),
        ]
    );
    let bob_invited = &all[1];
    assert_eq!(
        bob_invited,
        &InvitationView {
            id: to_bob,
            workspace_id: ws1,
            invitee_user: Some(bob),
            invitee_email: None,
            role: "member".into(),
            custom_roles: vec!["auditor".into()],
            status: "accepted".into(),
            expires_at: later,
            invited_by: "alice".into(),
            invited_at: bob_invited.invited_at,
        }
    );
    // What a user can accept now: addressed to their id or address, pending, unexpired, in an active
    // workspace (ws1's was accepted, ws3 is archived).
    let for_bob = read
        .invitations_for(bob, &email("bob@example.org"))
        .await
        .unwrap();
    assert_eq!(
        for_bob.iter().map(|i| (i.id, i.workspace_id)).collect::<Vec<_>>(),
        vec![(bob_to_ws2, ws2)]
    );
    let dora = email("dora@example.org");
    let for_dora = read
        .invitations_for(UserId::for_email(&dora), &dora)
        .await
        .unwrap();
    assert_eq!(
        invitees(&for_dora),
        vec![("dora@example.org".into(), "pending".into())]
    );
    assert_eq!(for_dora[0].id, to_dora);
    let frank_address = email("frank@example.org");
    assert!(
        read.invitations_for(UserId::for_email(&frank_address), &frank_address)
            .await
            .unwrap()
            .is_empty(),
        "an expired invitation cannot be accepted"
    );

    // Custom roles.
    assert_eq!(
        read.custom_roles(ws1).await.unwrap(),
        vec![CustomRoleView {
            name: "auditor".into(),
            permissions: vec!["workspace.read".into(), "members.read".into()],
        }]
    );
    assert!(read.custom_roles(ws2).await.unwrap().is_empty());

    // Whose workspaces, and who administers one alone.
    assert_eq!(all_workspaces_of(read, alice, 2).await, vec![ws1, ws2, ws3]);
    assert_eq!(all_workspaces_of(read, alice, 3).await, vec![ws1, ws2, ws3]);
    assert_eq!(all_workspaces_of(read, bob, 2).await, vec![ws1]);
    assert!(all_workspaces_of(read, carol, 2).await.is_empty());
    let page = read
        .workspaces_of(
            alice,
            PageRequest {
                after: None,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items, vec![read.workspace(ws1).await.unwrap().unwrap()]);
    assert_eq!(page.next_after, Some(ws1.as_uuid()));
    // ws1 has two admins, ws3 is archived.
    assert_eq!(read.sole_admin_of(alice).await.unwrap(), vec![ws2]);
    assert!(read.sole_admin_of(bob).await.unwrap().is_empty());
    assert!(read.sole_admin_of(carol).await.unwrap().is_empty());
    assert_eq!(read.sole_admin_of(ghost).await.unwrap(), vec![ws4]);

    // API keys.
    let alices = read.api_keys_of(alice).await.unwrap();
    assert_eq!(
        alices
            .iter()
            .map(|k| (
                k.id,
                k.workspace_id,
                k.name.as_str(),
                k.status.as_str(),
                k.version
            ))
            .collect::<Vec<_>>(),
        vec![(k1, ws1, "ci", "active", 1), (k2, ws2, "old", "revoked", 2)]
    );
    assert_eq!(alices[0].permissions, vec!["workspace.read", "computation.read"]);
    assert_eq!(alices[0].revoked_at, None);
    assert!(alices[1].revoked_at.is_some_and(|at| at >= alices[1].created_at));
    assert!(alices[0].expires_at > alices[0].created_at);
    let bobs = read.api_key(k3).await.unwrap().unwrap();
    assert_eq!(
        bobs,
        ApiKeyView {
            id: k3,
            owner: bob,
            workspace_id: ws1,
            name: "bob's".into(),
            permissions: vec!["members.read".into()],
            status: "active".into(),
            expires_at: bobs.expires_at,
            created_at: bobs.created_at,
            revoked_at: None,
            version: 1,
        }
    );
    assert_eq!(read.api_keys_of(bob).await.unwrap(), vec![bobs]);
    assert!(read.api_keys_of(carol).await.unwrap().is_empty());
    assert_eq!(read.api_key(ApiKeyId(uuid::Uuid::now_v7())).await.unwrap(), None);

    assert!(
        read.quarantined(10).await.unwrap().is_empty(),
        "every event was applied"
    );

    // No credential reaches a read model.
    let live = dump_all(read).await;
    let text = serde_json::to_string(&live).unwrap();
    for secret in [PASSWORD, NEW_PASSWORD] {
        assert!(!text.contains(secret), "a password hash was projected");
    }
    for token in [
        &b"verify-bob"[..],
        b"inv-frank",
        b"inv-bob",
        b"inv-carol",
        b"pak-1",
        b"pak-2",
        b"pak-3",
    ] {
        assert!(
            !text.contains(SecretHash::of(token).as_str()),
            "a secret hash was projected"
        );
    }

    // A rebuild replays the log into the same rows.
    for stop in [users, workspaces, keys] {
        stop.send(true).unwrap();
    }
    reset(read.pool(), &UsersProjection).await.unwrap();
    reset(read.pool(), &ApiKeysProjection).await.unwrap();
    reset(read.pool(), &WorkspacesProjection).await.unwrap();
    for table in IDENTITY_TABLES {
        assert!(dump(read, table).await.is_empty(), "{table} was not emptied");
    }
    assert!(!read.platform_has_users().await.unwrap());
    assert_eq!(read.checkpoint(USERS).await.unwrap(), 0);
    id.env.projector(UsersProjection).catch_up().await.unwrap();
    id.env.projector(ApiKeysProjection).catch_up().await.unwrap();
    id.env.projector(WorkspacesProjection).catch_up().await.unwrap();
    assert_eq!(dump_all(read).await, live);
    assert_eq!(read.checkpoint(USERS).await.unwrap(), last);
    assert_eq!(read.checkpoint(API_KEYS).await.unwrap(), last);

    // The same through `RunProjection::rebuild`, which replays aside and swaps in one call.
    assert_eq!(id.env.projector(UsersProjection).rebuild().await.unwrap(), last);
    assert_eq!(id.env.projector(ApiKeysProjection).rebuild().await.unwrap(), last);
    assert_eq!(dump_all(read).await, live);
    assert_eq!(read.user(bob).await.unwrap(), Some(b));
}

#[tokio::test]
async fn an_identity_linked_twice_stays_with_its_first_user() {
    let id = Identity::new().await;
    let bob = id.register("bob@example.org", "Bob", None, false, None).await;
    let carol = id.register("carol@example.org", "Carol", None, false, None).await;
    let link = || UserCommand::LinkIdentity {
        issuer: ISSUER.into(),
        subject: "shared".into(),
    };
    // The application layer refuses this; two links racing past its check could still both land.
    id.user(bob, link()).await;
    let last = id.user(carol, link()).await;
    assert_eq!(id.env.projector(UsersProjection).catch_up().await.unwrap(), last);
    let read = id.read();
    assert_eq!(
        read.user_by_identity(ISSUER, "shared")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob)
    );
    // Carol's commit is applied all the same (not quarantined).
    assert_eq!(read.user(carol).await.unwrap().unwrap().version, 2);
    assert!(read.quarantined(10).await.unwrap().is_empty());
}

/// Listens on the read models' change channel; hands over every payload.
async fn listen(url: &str) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let (sender, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message
                && sender.send(n.payload().to_owned()).is_err()
            {
                return;
            }
        }
    });
    client.batch_execute("LISTEN prism_read_models").await.unwrap();
    (client, received)
}

/// Waits until every one of `expected` has been announced.
async fn announced(received: &mut mpsc::UnboundedReceiver<String>, expected: &[String]) {
    let mut missing: HashSet<&String> = expected.iter().collect();
    tokio::time::timeout(WAIT, async {
        while !missing.is_empty() {
            let payload = received.recv().await.expect("the listener stopped");
            missing.remove(&payload);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never announced: {missing:?}"));
}

#[tokio::test]
async fn identity_tables_announce_their_changes() {
    let id = Identity::new().await;
    let (_listener, mut received) = listen(&id.env.db.url).await;
    let bob = id.register("bob@example.org", "Bob", None, false, None).await;
    let ws = id.create_workspace("Hospitals", bob).await;
    let (key, _) = id
        .create_key(bob, ws, "ci", &[Permission::WorkspaceRead], b"pak")
        .await;
    id.env.projector(UsersProjection).catch_up().await.unwrap();
    id.env.projector(ApiKeysProjection).catch_up().await.unwrap();
    announced(
        &mut received,
        &[format!("row users {bob}"), format!("row api_keys {key}")],
    )
    .await;

    // A linked identity belongs to its user's view.
    id.user(
        bob,
        UserCommand::LinkIdentity {
            issuer: ISSUER.into(),
            subject: "bob".into(),
        },
    )
    .await;
    let link = id.env.projector(UsersProjection);
    link.catch_up().await.unwrap();
    announced(&mut received, &[format!("row users {bob}")]).await;

    reset(id.read().pool(), &UsersProjection).await.unwrap();
    reset(id.read().pool(), &ApiKeysProjection).await.unwrap();
    announced(
        &mut received,
        &["truncate users".into(), "truncate api_keys".into()],
    )
    .await;
}

/// Disabling a user is refused while it is a computation's only owner: the read models say which.
#[tokio::test]
async fn the_computations_a_user_alone_owns_are_found_by_id_or_address() {
    use prism_domain::computation::{ComputationCommand, Definition, Role, WorkspaceStanding};
    use prism_domain::testing::samples::participant;
    use prism_domain::{ComputationId, WorkspaceId};

    let env = env().await;
    let _projecting = env.start(prism_projections::ComputationsProjection);
    let ada = Email::parse("ada@example.org").unwrap();
    let ada_id = UserId::for_email(&ada);
    let ws = WorkspaceId(uuid::Uuid::now_v7());
    let owned = |name: &str, owners: &[String]| Definition {
        name: name.into(),
        description: String::new(),
        participants: owners.iter().map(|o| participant(o, &[Role::Owner])).collect(),
        algorithm: None,
        datasets: vec![],
        limits: Default::default(),
    };
    let (by_id, bob) = (ada_id.to_string(), "bob@example.org".to_owned());
    let mut last = 0;
    let mut alone = Vec::new();
    for (name, owners) in [
        ("by address", vec!["Ada@example.org".to_owned()]),
        ("by id", vec![by_id]),
        ("shared", vec!["ada@example.org".to_owned(), bob.clone()]),
        ("not hers", vec![bob]),
    ] {
        let id = ComputationId(uuid::Uuid::now_v7());
        let create = ComputationCommand::Create {
            id,
            workspace_id: ws,
            workspace: WorkspaceStanding::Active,
            definition: owned(name, &owners),
        };
        last = env.computation(id, create).await;
        if name.starts_with("by ") {
            alone.push((id, name.to_owned()));
        }
    }
    env.read
        .wait_for(prism_projections::COMPUTATIONS, last, WAIT)
        .await
        .unwrap();
    let found = env.read.sole_owner_of_computations(ada_id, &ada).await.unwrap();
    assert_eq!(found, alone);
}
