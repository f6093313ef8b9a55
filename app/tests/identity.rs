//! Identity and the permission matrix on the memory log: sign-in, refresh rotation and reuse, sign-out,
//! API keys, membership-based authorisation with "not found" for outsiders, and denial records.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use prism_app::{App, Caller, CommandOptions, ErrorKind, IdentityConfig, Registration, RoleAuthorizer};
use prism_auth::{OpaqueToken, TokenKind};
use prism_domain::access::{Permission, WorkspaceRole};
use prism_domain::api_key::{ApiKey, ApiKeyCommand};
use prism_domain::values::Email;
use prism_domain::workspace::{Invitee, MembershipCommand, Workspace, WorkspaceCommand};
use prism_domain::{ApiKeyId, InvitationId, UserId, WorkspaceId};
use prism_store::{CommandRequest, MemoryLog, Metadata};

mod common;

use common::{PASSWORD, app, as_bearer, denials, register, rename, session, sign_in, workspace_of};

#[tokio::test]
async fn a_registered_user_signs_in_and_the_token_names_it() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let id = register(&app, "Ada@Example.org").await;
    let tokens = session(&app, "ada@example.org", PASSWORD).await.unwrap();
    assert_eq!(tokens.expires_in, 900);
    let caller = as_bearer(&app, &tokens.access_token).await.unwrap();
    assert_eq!(caller.user().unwrap().id, id);
    assert_eq!(caller.actor.0, format!("user:{id}"));
    // A second registration of the same address meets the first.
    let again = app
        .identity()
        .register(
            &Caller::anonymous(),
            Registration {
                email: "ada@example.org".into(),
                display_name: "Ada".into(),
                password: "another password".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists);
}

#[tokio::test]
async fn a_wrong_password_and_a_short_one_are_refused_and_failures_recorded() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    register(&app, "ada@example.org").await;
    let wrong = app
        .identity()
        .password_grant(&Caller::anonymous(), "ada@example.org", "wrong password")
        .await
        .unwrap_err();
    assert_eq!(wrong.kind, ErrorKind::Unauthenticated);
    let unknown = app
        .identity()
        .password_grant(&Caller::anonymous(), "nobody@example.org", "wrong password")
        .await
        .unwrap_err();
    // Unknown account and wrong password answer alike.
    assert_eq!(unknown.detail, wrong.detail);
    assert_eq!(denials(&log).await, 2);
    let short = app
        .identity()
        .register(
            &Caller::anonymous(),
            Registration {
                email: "bob@example.org".into(),
                display_name: "Bob".into(),
                password: "short".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(short.kind, ErrorKind::Invalid);
    assert!(short.detail.contains("at least 8"), "{}", short.detail);
}

#[tokio::test]
async fn five_failures_lock_the_account_even_for_the_right_password() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    register(&app, "ada@example.org").await;
    for _ in 0..5 {
        let _ = app
            .identity()
            .password_grant(&Caller::anonymous(), "ada@example.org", "wrong password")
            .await;
    }
    let locked = app
        .identity()
        .password_grant(&Caller::anonymous(), "ada@example.org", "correct horse battery")
        .await
        .unwrap_err();
    assert!(
        matches!(locked.kind, ErrorKind::Unauthenticated | ErrorKind::Throttled),
        "{locked:?}"
    );
}

#[tokio::test]
async fn a_refresh_token_works_once_and_its_reuse_ends_the_session() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    register(&app, "ada@example.org").await;
    let first = session(&app, "ada@example.org", PASSWORD).await.unwrap();
    let refresh = first.refresh_token.clone().unwrap();
    let second = app
        .identity()
        .refresh_grant(&Caller::anonymous(), &refresh)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    as_bearer(&app, &second.access_token).await.unwrap();
    // The spent token again: someone has a copy; the whole family ends.
    let reuse = app
        .identity()
        .refresh_grant(&Caller::anonymous(), &refresh)
        .await
        .unwrap_err();
    assert_eq!(reuse.kind, ErrorKind::Unauthenticated);
    let later = app
        .identity()
        .refresh_grant(&Caller::anonymous(), second.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(later.kind, ErrorKind::Unauthenticated);
    // And so do its access tokens.
    assert_eq!(
        as_bearer(&app, &second.access_token).await.unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn signing_out_ends_the_access_token_at_once() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    register(&app, "ada@example.org").await;
    let tokens = session(&app, "ada@example.org", PASSWORD).await.unwrap();
    let caller = as_bearer(&app, &tokens.access_token).await.unwrap();
    app.identity().sign_out(&caller).await.unwrap();
    assert_eq!(
        as_bearer(&app, &tokens.access_token).await.unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn malformed_and_tampered_tokens_are_refused_and_recorded() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    register(&app, "ada@example.org").await;
    let tokens = session(&app, "ada@example.org", PASSWORD).await.unwrap();
    let mut tampered = tokens.access_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let before = denials(&log).await;
    for bad in [
        "",
        "garbage",
        tampered.as_str(),
        "pak_00000000000000000000000000000000_x",
    ] {
        assert_eq!(
            as_bearer(&app, bad).await.unwrap_err().kind,
            ErrorKind::Unauthenticated,
            "{bad}"
        );
    }
    assert_eq!(denials(&log).await, before + 4);
    // A token signed by another platform's keys.
    let other = app_with_other_keys(&log);
    register(&other, "eve@example.org").await;
    let foreign = session(&other, "eve@example.org", PASSWORD).await.unwrap();
    assert_eq!(
        as_bearer(&app, &foreign.access_token).await.unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
}

fn app_with_other_keys(log: &MemoryLog) -> App {
    app(log, None)
}

/// Adds `user` to `workspace` with `role`, as the platform would after an accepted invitation.
async fn join(app: &App, workspace: WorkspaceId, user: UserId, email: &str, role: WorkspaceRole) {
    let repo = app.repository::<Workspace>();
    let invitation = InvitationId(uuid::Uuid::now_v7());
    let (_, token) = OpaqueToken::generate(TokenKind::Invitation, invitation.0);
    let meta = Metadata::default();
    let invite = WorkspaceCommand::Membership(MembershipCommand::Invite {
        invitation,
        invitee: Invitee::User(user),
        role,
        custom_roles: BTreeSet::new(),
        token: token.clone(),
        expires_at: Utc::now() + Duration::hours(1),
    });
    repo.execute(CommandRequest::new(&workspace, invite, meta.clone()))
        .await
        .unwrap();
    let accept = WorkspaceCommand::Membership(MembershipCommand::Accept {
        invitation,
        token,
        user,
        email: Email::parse(email).unwrap(),
    });
    repo.execute(CommandRequest::new(&workspace, accept, meta))
        .await
        .unwrap();
}

#[tokio::test]
async fn roles_decide_and_outsiders_see_nothing() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let ada_id = register(&app, "ada@example.org").await;
    let bob_id = register(&app, "bob@example.org").await;
    register(&app, "eve@example.org").await;
    let ada = sign_in(&app, "ada@example.org", PASSWORD).await.unwrap();
    let bob = sign_in(&app, "bob@example.org", PASSWORD).await.unwrap();
    let eve = sign_in(&app, "eve@example.org", PASSWORD).await.unwrap();
    let ws = workspace_of(&app, &ada).await;
    let state = app.repository::<Workspace>().load(&ws).await.unwrap().state;
    assert_eq!(
        state.admins().collect::<Vec<_>>(),
        vec![ada_id],
        "the creator is the admin"
    );
    join(&app, ws, bob_id, "bob@example.org", WorkspaceRole::Member).await;
    let none = CommandOptions::default();
    let before = denials(&log).await;
    // A member may not rename: forbidden, and it is told why.
    let forbidden = app
        .workspaces()
        .update(&bob, &none, ws, rename("Renamed"))
        .await
        .unwrap_err();
    assert_eq!(forbidden.kind, ErrorKind::Forbidden);
    assert!(
        forbidden.detail.contains("workspace.update"),
        "{}",
        forbidden.detail
    );
    // An outsider does not learn that the workspace exists.
    let hidden = app
        .workspaces()
        .update(&eve, &none, ws, rename("Renamed"))
        .await
        .unwrap_err();
    assert_eq!(hidden.kind, ErrorKind::NotFound);
    let missing = app
        .workspaces()
        .update(&eve, &none, WorkspaceId(uuid::Uuid::now_v7()), rename("Renamed"))
        .await
        .unwrap_err();
    assert_eq!(missing.kind, hidden.kind);
    assert_eq!(denials(&log).await, before + 3);
    // Anonymous callers must sign in.
    let anonymous = app
        .workspaces()
        .update(&Caller::anonymous(), &none, ws, rename("Renamed"))
        .await
        .unwrap_err();
    assert_eq!(anonymous.kind, ErrorKind::Unauthenticated);
    // The admin may.
    app.workspaces()
        .update(&ada, &none, ws, rename("Renamed"))
        .await
        .unwrap();
}

/// A new API key of `owner`'s that may only read `ws`, for a day: its id and the key itself.
async fn read_key(app: &App, owner: UserId, ws: WorkspaceId) -> (ApiKeyId, String) {
    let key_id = ApiKeyId(uuid::Uuid::now_v7());
    let (key, secret) = OpaqueToken::generate(TokenKind::ApiKey, key_id.0);
    let create = ApiKeyCommand::Create {
        id: key_id,
        owner,
        workspace: ws,
        name: "ci".into(),
        permissions: [Permission::WorkspaceRead].into(),
        secret,
        expires_at: Some(Utc::now() + Duration::days(1)),
    };
    app.repository::<ApiKey>()
        .execute(CommandRequest::new(&key_id, create, Metadata::default()))
        .await
        .unwrap();
    (key_id, key)
}

/// Revokes the API key `key_id`.
async fn revoke(app: &App, key_id: ApiKeyId) {
    app.repository::<ApiKey>()
        .execute(CommandRequest::new(
            &key_id,
            ApiKeyCommand::Revoke { reason: None },
            Metadata::default(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_api_key_allows_what_both_it_and_its_owner_allow_in_its_workspace_only() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let ada_id = register(&app, "ada@example.org").await;
    let ada = sign_in(&app, "ada@example.org", PASSWORD).await.unwrap();
    let ws = workspace_of(&app, &ada).await;
    let other_ws = workspace_of(&app, &ada).await;
    let (key_id, key) = read_key(&app, ada_id, ws).await;
    let with_key = as_bearer(&app, &key).await.unwrap();
    assert_eq!(with_key.actor.0, format!("api_key:{key_id}"));
    let none = CommandOptions::default();
    // The owner is admin, the key only reads.
    let refused = app
        .workspaces()
        .update(&with_key, &none, ws, rename("Renamed"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Forbidden);
    let elsewhere = app
        .workspaces()
        .update(&with_key, &none, other_ws, rename("Renamed"))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.kind, ErrorKind::NotFound);
    // A revoked key stops at once.
    revoke(&app, key_id).await;
    assert_eq!(
        as_bearer(&app, &key).await.unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn an_api_key_buys_an_access_token_that_holds_only_while_the_key_does() {
    let log = MemoryLog::default();
    let app = app(&log, None);
    let ada_id = register(&app, "ada@example.org").await;
    let ada = sign_in(&app, "ada@example.org", PASSWORD).await.unwrap();
    let ws = workspace_of(&app, &ada).await;
    let (key_id, key) = read_key(&app, ada_id, ws).await;
    let wrong_id = app
        .identity()
        .client_credentials_grant(&Caller::anonymous(), &uuid::Uuid::now_v7().to_string(), &key)
        .await
        .unwrap_err();
    assert_eq!(wrong_id.kind, ErrorKind::Unauthenticated);
    let tokens = app
        .identity()
        .client_credentials_grant(&Caller::anonymous(), &key_id.to_string(), &key)
        .await
        .unwrap();
    assert_eq!(tokens.refresh_token, None);
    let caller = as_bearer(&app, &tokens.access_token).await.unwrap();
    let scope = caller.user().unwrap().api_key.clone().unwrap();
    assert_eq!((scope.id, scope.workspace), (key_id, ws));
    app.workspaces()
        .get(&caller, ws, Default::default())
        .await
        .expect_err("no read models here, but authorisation passes first")
        .kind
        .eq(&ErrorKind::Internal)
        .then_some(())
        .expect("reading needs read models, not permission");
    revoke(&app, key_id).await;
    assert_eq!(
        as_bearer(&app, &tokens.access_token).await.unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn keys_rotated_in_their_file_reach_every_process() {
    use prism_auth::SigningKeys;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token-keys.json");
    SigningKeys::load_or_create(&path).unwrap();
    let process = |reread: std::time::Duration| {
        let mut config = IdentityConfig::new(SigningKeys::load(&path).unwrap(), "https://prism.test");
        config.keys_file = Some(path.clone());
        config.keys_reread = reread;
        config
    };
    let log = MemoryLog::default();
    // One process reads the file at every use; the other only when a token names a key it lacks.
    let signer = App::builder(Arc::new(log.clone()))
        .authorizer(Arc::new(RoleAuthorizer))
        .identity(process(std::time::Duration::ZERO))
        .build();
    let verifier = App::builder(Arc::new(log.clone()))
        .authorizer(Arc::new(RoleAuthorizer))
        .identity(process(std::time::Duration::from_secs(3600)))
        .build();
    register(&signer, "ada@example.org").await;
    let before = session(&signer, "ada@example.org", PASSWORD)
        .await
        .unwrap()
        .access_token;

    let mut keys = SigningKeys::load(&path).unwrap();
    keys.rotate(Utc::now()).unwrap();
    keys.save(&path).unwrap();
    let rotated = session(&signer, "ada@example.org", PASSWORD)
        .await
        .unwrap()
        .access_token;
    let kid = |token: &str| jsonwebtoken_kid(token);
    assert_ne!(kid(&before), kid(&rotated), "the signer signs with the new key");
    assert_eq!(kid(&rotated), keys.current_kid());

    // The verifier read the file less than a second ago; a moment later the unknown key makes it read
    // again, and both tokens hold.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    as_bearer(&verifier, &rotated).await.unwrap();
    as_bearer(&verifier, &before).await.unwrap();
    assert!(
        verifier.identity().jwks().unwrap()["keys"]
            .as_array()
            .unwrap()
            .len()
            == 2
    );
}

/// The `kid` of a JWT's header.
fn jsonwebtoken_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}
