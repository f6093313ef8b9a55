//! The setup shared by the application layer's tests on the memory log: an application that
//! authorises by role and signs its own tokens, users registered and signed in, workspaces and their
//! members, and the count of denial records.

// Each test file is a crate of its own that compiles this whole module and uses only part of it; the
// rest would warn as dead code there.
#![allow(dead_code)]

use std::sync::Arc;

use prism_app::{
    App, AppError, Caller, CommandOptions, IdentityConfig, Invite, InviteeInput, IssuedInvitation, Mailer,
    NewWorkspace, Registration, RoleAuthorizer, Tokens, WorkspaceChanges,
};
use prism_domain::access::WorkspaceRole;
use prism_domain::{UserId, WorkspaceId};
use prism_store::{EventLog, MemoryLog};

/// Every registered user's password.
pub const PASSWORD: &str = "correct horse battery";

/// An application on `log` that authorises by role and signs its own tokens; it sends mail with
/// `mailer` when there is one, and only logs it otherwise.
pub fn app(log: &MemoryLog, mailer: Option<Arc<dyn Mailer>>) -> App {
    let builder = App::builder(Arc::new(log.clone()))
        .authorizer(Arc::new(RoleAuthorizer))
        .identity(IdentityConfig::ephemeral("https://prism.test"));
    match mailer {
        Some(mailer) => builder.mailer(mailer),
        None => builder,
    }
    .build()
}

/// Registers `email` with [`PASSWORD`].
pub async fn register(app: &App, email: &str) -> UserId {
    app.identity()
        .register(
            &Caller::anonymous(),
            Registration {
                email: email.into(),
                display_name: "Someone".into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap()
}

/// The tokens of a new session of `email`, signed in with `password`.
pub async fn session(app: &App, email: &str, password: &str) -> Result<Tokens, AppError> {
    app.identity()
        .password_grant(&Caller::anonymous(), email, password)
        .await
}

/// The caller that presents `token`.
pub async fn as_bearer(app: &App, token: &str) -> Result<Caller, AppError> {
    app.identity().authenticate(Caller::anonymous(), token).await
}

/// `email` signed in with `password`: the caller that presents the new session's access token.
pub async fn sign_in(app: &App, email: &str, password: &str) -> Result<Caller, AppError> {
    let tokens = session(app, email, password).await?;
    as_bearer(app, &tokens.access_token).await
}

/// Registers `email` and answers the caller signed in with a session.
pub async fn user(app: &App, email: &str) -> (UserId, Caller) {
    let id = register(app, email).await;
    (id, sign_in(app, email, PASSWORD).await.unwrap())
}

/// How many records of denied access `log` holds.
pub async fn denials(log: &MemoryLog) -> usize {
    let last = log.last_sequence().await.unwrap();
    let mut n = 0;
    for sequence in 1..=last {
        if log
            .commit_at(sequence)
            .await
            .unwrap()
            .unwrap()
            .subject
            .contains(".access.")
        {
            n += 1;
        }
    }
    n
}

/// The workspace "Hospitals", with no description.
pub fn hospitals() -> NewWorkspace {
    NewWorkspace {
        name: "Hospitals".into(),
        description: String::new(),
    }
}

/// The change of a workspace's name to `name`, and of nothing else.
pub fn rename(name: &str) -> WorkspaceChanges {
    WorkspaceChanges {
        name: Some(name.into()),
        description: None,
    }
}

/// A new workspace "Hospitals" created by `owner`, who is its admin.
pub async fn workspace_of(app: &App, owner: &Caller) -> WorkspaceId {
    app.workspaces()
        .create(owner, &CommandOptions::default(), hospitals())
        .await
        .unwrap()
        .id
        .parse()
        .unwrap()
}

/// An invitation of `invitee` as a member, with no custom roles, for the default time.
pub fn invite(invitee: InviteeInput) -> Invite {
    Invite {
        invitee,
        role: WorkspaceRole::Member,
        custom_roles: vec![],
        expires_at: None,
    }
}

/// `by` invites `invitee` to `ws` as in [`invite`]: the invitation and its token.
pub async fn send(app: &App, by: &Caller, ws: WorkspaceId, invitee: InviteeInput) -> IssuedInvitation {
    app.memberships()
        .invite(by, &CommandOptions::default(), ws, invite(invitee))
        .await
        .unwrap()
}

/// Makes user `id` (signed in as `member`) a member of `ws`: `admin` invites, and `member` accepts.
pub async fn join(app: &App, admin: &Caller, ws: WorkspaceId, id: UserId, member: &Caller) {
    let sent = send(app, admin, ws, InviteeInput::User(id)).await;
    app.memberships().accept(member, &sent.token).await.unwrap();
}
