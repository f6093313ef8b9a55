//! Accounts and API keys on the memory log: password change and reset by mail, e-mail verification,
//! the platform administrators' operations, and API keys made by their owners. (The queries — `me`,
//! `users`, a user's keys — and the precondition of disabling read PostgreSQL, and are tested with the
//! read models.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use prism_app::{Action, App, AppError, Caller, CommandOptions, ErrorKind, Mailer, NewApiKey};
use prism_domain::access::Permission;
use prism_domain::user::User;
use prism_domain::values::Email;
use prism_domain::{UserId, WorkspaceId};
use prism_store::MemoryLog;

mod common;

use common::{PASSWORD, app, as_bearer, denials, join, register, session, sign_in, user, workspace_of};

/// Keeps what it is asked to send, so a test can read the token in a mail.
#[derive(Debug, Default)]
struct Outbox {
    sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, to: &Email, _subject: &str, body: &str) -> Result<(), AppError> {
        self.sent
            .lock()
            .unwrap()
            .push((to.as_str().to_owned(), body.to_owned()));
        Ok(())
    }
}

impl Outbox {
    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// The token with `prefix` in the `n`th mail, waiting for it (some mail is sent in the background).
    async fn token(&self, n: usize, prefix: &str) -> (String, String) {
        for _ in 0..500 {
            if let Some((to, body)) = self.sent.lock().unwrap().get(n) {
                let token = body
                    .split_whitespace()
                    .find(|w| w.starts_with(prefix))
                    .unwrap_or_else(|| panic!("no {prefix} token in {body}"));
                return (to.clone(), token.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("mail {n} was not sent");
    }
}

async fn account(app: &App, id: UserId) -> User {
    app.repository::<User>().load(&id).await.unwrap().state
}

fn key_request(ws: WorkspaceId, permissions: &[&str]) -> NewApiKey {
    NewApiKey {
        workspace: ws,
        name: "ci".into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        expires_at: None,
    }
}

#[tokio::test]
async fn a_changed_password_replaces_the_old_one() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    let (_, ada) = user(&app, "ada@example.org").await;
    let before = denials(&log).await;
    let wrong = app
        .accounts()
        .change_password(&ada, "not my password", "a brand new password")
        .await
        .unwrap_err();
    assert_eq!(wrong.kind, ErrorKind::Forbidden);
    assert_eq!(denials(&log).await, before + 1);
    let short = app
        .accounts()
        .change_password(&ada, PASSWORD, "short")
        .await
        .unwrap_err();
    assert_eq!(short.kind, ErrorKind::Invalid);
    assert_eq!(
        app.accounts()
            .change_password(&Caller::anonymous(), PASSWORD, "a brand new password")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Unauthenticated
    );

    app.accounts()
        .change_password(&ada, PASSWORD, "a brand new password")
        .await
        .unwrap();
    assert_eq!(
        sign_in(&app, "ada@example.org", PASSWORD).await.unwrap_err().kind,
        ErrorKind::Unauthenticated
    );
    sign_in(&app, "ada@example.org", "a brand new password")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_a_reset_ends_all() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    register(&app, "ada@example.org").await;
    let laptop = session(&app, "ada@example.org", PASSWORD).await.unwrap();
    let phone = session(&app, "ada@example.org", PASSWORD).await.unwrap();
    let at_laptop = as_bearer(&app, &laptop.access_token).await.unwrap();

    app.accounts()
        .change_password(&at_laptop, PASSWORD, "a brand new password")
        .await
        .unwrap();
    // The session the change was made from goes on; the other one has ended, both its tokens.
    as_bearer(&app, &laptop.access_token).await.unwrap();
    let ended = as_bearer(&app, &phone.access_token).await.unwrap_err();
    assert_eq!(ended.kind, ErrorKind::Unauthenticated);
    assert!(ended.detail.contains("password"), "{}", ended.detail);
    let refused = app
        .identity()
        .refresh_grant(&Caller::anonymous(), phone.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Unauthenticated);
    let laptop = app
        .identity()
        .refresh_grant(&Caller::anonymous(), laptop.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    let tablet = session(&app, "ada@example.org", "a brand new password")
        .await
        .unwrap();
    as_bearer(&app, &tablet.access_token).await.unwrap();

    // A reset (the password may be known to someone else) ends every session.
    app.accounts()
        .request_password_reset(&Caller::anonymous(), "ada@example.org")
        .await
        .unwrap();
    let (_, token) = outbox.token(0, "pwr_").await;
    app.accounts()
        .reset_password(&Caller::anonymous(), &token, "yet another password")
        .await
        .unwrap();
    for tokens in [&laptop, &tablet] {
        assert_eq!(
            as_bearer(&app, &tokens.access_token).await.unwrap_err().kind,
            ErrorKind::Unauthenticated
        );
    }
    sign_in(&app, "ada@example.org", "yet another password")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_password_is_reset_with_the_mailed_token_once() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    let ada_id = register(&app, "ada@example.org").await;
    let anonymous = Caller::anonymous();

    // Unknown addresses are answered alike, and get no mail.
    app.accounts()
        .request_password_reset(&anonymous, "nobody@example.org")
        .await
        .unwrap();
    app.accounts()
        .request_password_reset(&anonymous, "Ada@Example.org")
        .await
        .unwrap();
    let (to, token) = outbox.token(0, "pwr_").await;
    assert_eq!(to, "ada@example.org");
    assert!(token.contains(&ada_id.0.simple().to_string()));
    // A second request at once sends no second mail (no flooding a mailbox).
    app.accounts()
        .request_password_reset(&anonymous, "ada@example.org")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(outbox.count(), 1);
    assert_eq!(
        app.accounts()
            .request_password_reset(&anonymous, "not an address")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );

    let before = denials(&log).await;
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    for bad in [forged.as_str(), "pwr_garbage"] {
        let refused = app
            .accounts()
            .reset_password(&anonymous, bad, "a brand new password")
            .await
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Invalid, "{bad}");
        assert_eq!(
            refused.detail,
            "the password reset link is invalid or has expired"
        );
    }
    assert_eq!(denials(&log).await, before + 2);

    app.accounts()
        .reset_password(&anonymous, &token, "a brand new password")
        .await
        .unwrap();
    sign_in(&app, "ada@example.org", "a brand new password")
        .await
        .unwrap();
    let spent = app
        .accounts()
        .reset_password(&anonymous, &token, "yet another password")
        .await
        .unwrap_err();
    assert_eq!(spent.kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn an_address_is_verified_with_the_mailed_token() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    let (ada_id, ada) = user(&app, "ada@example.org").await;
    app.accounts().send_verification(&ada).await.unwrap();
    let (to, token) = outbox.token(0, "evt_").await;
    assert_eq!(to, "ada@example.org");
    assert!(!account(&app, ada_id).await.email_verified);
    let refused = app
        .accounts()
        .verify_email(&Caller::anonymous(), "evt_garbage")
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    // The token is the proof: no sign-in needed.
    app.accounts()
        .verify_email(&Caller::anonymous(), &token)
        .await
        .unwrap();
    assert!(account(&app, ada_id).await.email_verified);
    let again = app.accounts().send_verification(&ada).await.unwrap_err();
    assert_eq!(again.kind, ErrorKind::StateConflict);
}

#[tokio::test]
async fn platform_administrators_grant_revoke_and_enable() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    let none = CommandOptions::default();
    let (ada_id, ada) = user(&app, "ada@example.org").await;
    let (bob_id, _) = user(&app, "bob@example.org").await;
    // Users cannot make themselves administrators; the platform (a service) can.
    assert_eq!(
        app.accounts()
            .grant_platform_admin(&ada, &none, ada_id)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
    app.accounts()
        .grant_platform_admin(&Caller::service("operator"), &none, ada_id)
        .await
        .unwrap();
    // The role is read from the account when a request authenticates.
    let ada = sign_in(&app, "ada@example.org", PASSWORD).await.unwrap();
    app.authorize(&ada, Action::platform(Permission::PlatformOperate))
        .await
        .unwrap();
    let granted = app
        .accounts()
        .grant_platform_admin(&ada, &none, bob_id)
        .await
        .unwrap();
    assert!(account(&app, bob_id).await.platform_admin);
    assert_eq!(granted.user, bob_id);
    let bob_admin = sign_in(&app, "bob@example.org", PASSWORD).await.unwrap();
    let own = app
        .accounts()
        .revoke_platform_admin(&bob_admin, &none, bob_id)
        .await
        .unwrap_err();
    assert_eq!(own.kind, ErrorKind::StateConflict);
    app.accounts()
        .revoke_platform_admin(&ada, &none, bob_id)
        .await
        .unwrap();
    assert!(!account(&app, bob_id).await.platform_admin);
    let bob = sign_in(&app, "bob@example.org", PASSWORD).await.unwrap();

    // Disabling someone else takes an administrator; the check of sole workspace admins needs the
    // read models, which this application lacks.
    assert_eq!(
        app.accounts()
            .disable(&bob, &none, ada_id, None)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Forbidden
    );
    assert_eq!(
        app.accounts()
            .disable(&bob, &none, bob_id, None)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Internal
    );
    let active = app.accounts().enable(&ada, &none, bob_id).await.unwrap_err();
    assert_eq!(active.kind, ErrorKind::StateConflict, "{}", active.detail);
    assert_eq!(
        app.accounts().enable(&bob, &none, ada_id).await.unwrap_err().kind,
        ErrorKind::Forbidden
    );
    // Retried under one key: the first outcome, nothing new.
    let key = CommandOptions::keyed("grant-bob");
    let first = app
        .accounts()
        .grant_platform_admin(&ada, &key, bob_id)
        .await
        .unwrap();
    let again = app
        .accounts()
        .grant_platform_admin(&ada, &key, bob_id)
        .await
        .unwrap();
    assert_eq!(again, first);
}

#[tokio::test]
async fn an_api_key_is_made_by_its_owner_within_their_permissions_and_works_as_a_bearer() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    let none = CommandOptions::default();
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let (_, eve) = user(&app, "eve@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    join(&app, &ada, ws, bob_id, &bob).await;

    let issued = app
        .api_keys()
        .create(
            &bob,
            &none,
            key_request(ws, &["workspace.read", "computation.read"]),
        )
        .await
        .unwrap();
    assert!(issued.key.starts_with("pak_"));
    let with_key = app
        .identity()
        .authenticate(Caller::anonymous(), &issued.key)
        .await
        .unwrap();
    assert_eq!(with_key.actor.0, format!("api_key:{}", issued.id));
    app.authorize(&with_key, Action::in_workspace(Permission::WorkspaceRead, ws))
        .await
        .unwrap();

    // Only what the owner holds in the workspace.
    let before = denials(&log).await;
    let beyond = app
        .api_keys()
        .create(
            &bob,
            &none,
            key_request(ws, &["workspace.read", "workspace.update"]),
        )
        .await
        .unwrap_err();
    assert_eq!(beyond.kind, ErrorKind::Forbidden);
    assert!(beyond.detail.contains("workspace.update"), "{}", beyond.detail);
    assert_eq!(denials(&log).await, before + 1);
    let outsider = app
        .api_keys()
        .create(&eve, &none, key_request(ws, &["workspace.read"]))
        .await
        .unwrap_err();
    assert_eq!(outsider.kind, ErrorKind::NotFound);
    let unknown = app
        .api_keys()
        .create(&bob, &none, key_request(ws, &["workspace.fly"]))
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::Invalid);
    assert!(unknown.detail.contains("workspace.fly"), "{}", unknown.detail);
    let platform = app
        .api_keys()
        .create(&ada, &none, key_request(ws, &["platform.operate"]))
        .await
        .unwrap_err();
    assert_eq!(platform.kind, ErrorKind::Invalid);
    let empty = app
        .api_keys()
        .create(&ada, &none, key_request(ws, &[]))
        .await
        .unwrap_err();
    assert_eq!(empty.kind, ErrorKind::Invalid);
    // A key cannot make keys.
    let by_key = app
        .api_keys()
        .create(&with_key, &none, key_request(ws, &["workspace.read"]))
        .await
        .unwrap_err();
    assert_eq!(by_key.kind, ErrorKind::Forbidden);

    // Revoked by its owner only (others are told it does not exist); it stops at once.
    let hidden = app.api_keys().revoke(&eve, &none, issued.id).await.unwrap_err();
    assert_eq!(hidden.kind, ErrorKind::NotFound);
    app.api_keys().revoke(&bob, &none, issued.id).await.unwrap();
    assert_eq!(
        app.identity()
            .authenticate(Caller::anonymous(), &issued.key)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn a_retried_key_creation_does_not_show_the_secret_twice() {
    let log = MemoryLog::default();
    let outbox = Arc::new(Outbox::default());
    let app = app(&log, Some(outbox.clone()));
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    join(&app, &ada, ws, bob_id, &bob).await;
    let key = CommandOptions::keyed("key-1");
    let first = app
        .api_keys()
        .create(&ada, &key, key_request(ws, &["workspace.read"]))
        .await
        .unwrap();
    let retry = app
        .api_keys()
        .create(&ada, &key, key_request(ws, &["workspace.read"]))
        .await
        .unwrap_err();
    assert_eq!(retry.kind, ErrorKind::AlreadyExists);
    assert!(retry.detail.contains(&first.id.to_string()), "{}", retry.detail);
    // Another user's request under the same key is its own: idempotency keys are scoped to their caller.
    let other = app
        .api_keys()
        .create(&bob, &key, key_request(ws, &["workspace.read"]))
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
}
