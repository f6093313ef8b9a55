//! Accounts: what signed-in users do with their own account (password, e-mail verification, closing
//! it), password reset by mail, and what platform administrators do with everyone's (disable, enable,
//! the platform administrator role, the list of users).
//!
//! One-time links travel by mail: [`Mailer`] is the pluggable sender ([`LogMailer`], the default, only
//! logs the message, for development). A link carries an opaque token (`pwr_…` for a password reset,
//! `evt_…` for an e-mail verification) whose id part is the user's id and whose secret only the mail
//! holds; the user aggregate keeps the hash and the expiry, and decides whether a presented token holds.
//!
//! Like identity's own commands, these skip the [`crate::Authorizer`] where the caller's identity is the
//! whole question (your own password, a token from your mailbox); the platform administrators'
//! operations ask it for [`Permission::PlatformOperate`].
//!
//! Not done here, and why:
//! * changing or resetting a password does not end the user's other sessions: that needs the list of a
//!   user's sessions, which no read model keeps yet. Disabling the account does end them at once
//!   (every request checks that its user is active).
//! * registration does not mail a verification link (registration is identity's, unchanged); a client
//!   calls [`Accounts::send_verification`] after registering.
//! * "the last platform administrator" is protected by refusing to revoke one's own role: whoever
//!   revokes is an administrator and stays one, so users alone can never leave the platform without
//!   one. A platform service (which needs no role) is not held to this.

use std::net::IpAddr;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use prism_auth::{OpaqueToken, TokenKind};
use prism_domain::access::Permission;
use prism_domain::denial::DenialReason;
use prism_domain::user::{User, UserCommand, UserError, UserStatus};
use prism_domain::values::Email;
use prism_domain::{Aggregate, UserId};
use prism_projections::{COMPUTATIONS, Page, PageRequest, USERS, UserView, WORKSPACES};
use prism_store::{CommandOutcome, CommandRequest};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::identity::{self, Identity, IdentityState};
use crate::{Action, App, AppError, Caller, CommandOptions, Denial, ErrorKind, ReadOptions, UserPrincipal};

/// How long a password reset token works.
pub const PASSWORD_RESET_LIFETIME: Duration = Duration::hours(1);
/// How long an e-mail verification token works.
pub const EMAIL_VERIFICATION_LIFETIME: Duration = Duration::hours(24);
/// At most one reset mail per account in this interval, so the form cannot be used to flood a mailbox.
pub const PASSWORD_RESET_INTERVAL: Duration = Duration::minutes(1);

/// Sends the platform's mail (one-time links). Implementations deliver it (SMTP, an API); a failure
/// is an [`AppError`] (usually `Unavailable`).
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug + 'static {
    async fn send(&self, to: &Email, subject: &str, body: &str) -> Result<(), AppError>;
}

/// The development sender: logs each message (tokens included: never in production) and delivers
/// nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, to: &Email, subject: &str, body: &str) -> Result<(), AppError> {
        info!(to = %to, subject, body, "mail (development sender: logged, not delivered)");
        Ok(())
    }
}

/// A recorded change of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountChange {
    pub user: UserId,
    /// The account's version after the change (for `ETag`/`If-Match`).
    pub version: u64,
    /// Stream sequence a reader waits for to see it ([`ReadOptions::at_least`]).
    pub sequence: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Accounts<'a> {
    app: &'a App,
}

#[derive(Serialize)]
struct DisableInput<'a> {
    reason: &'a Option<String>,
}

impl<'a> Accounts<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    fn identity(&self) -> Result<&'a IdentityState, AppError> {
        Identity::new(self.app).state()
    }

    /// The caller's own account, as the users read model shows it.
    pub async fn me(&self, caller: &Caller) -> Result<UserView, AppError> {
        let user = signed_in(self.app, caller, "account").await?;
        self.app.read_models()?.user(user.id).await?.ok_or_else(|| {
            AppError::new(
                ErrorKind::Lagging,
                "your account is not in the users read model yet; retry shortly",
            )
        })
    }

    /// Every user (platform administrators only), in id order.
    pub async fn users(&self, caller: &Caller, page: PageRequest) -> Result<Page<UserView>, AppError> {
        self.app
            .authorize(caller, Action::platform(Permission::PlatformOperate))
            .await?;
        Ok(self.app.read_models()?.users(page).await?)
    }

    /// Sets a new password after checking the current one (signed-in session only). A wrong current
    /// password counts against the sign-in throttle, so a stolen session cannot guess it quickly.
    pub async fn change_password(&self, caller: &Caller, current: &str, new: &str) -> Result<(), AppError> {
        const RESOURCE: &str = "account/password";
        let user = in_session(self.app, caller, RESOURCE, "changing the password").await?;
        let state = self.identity()?;
        check_password(state, new)?;
        let account = self.load(user.id).await?;
        let Some(hash) = account.password.clone() else {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                "this account has no password (it signs in through OpenID Connect): ask for a password \
                 reset to set one",
            ));
        };
        let source = caller.source.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let email = user.email.as_str();
        if let Err(throttled) = state.throttle.check(email, source, Instant::now()) {
            let denial = Denial::new(
                DenialReason::Throttled,
                RESOURCE,
                format!(
                    "too many wrong passwords; retry in {} s",
                    throttled.retry_after.as_secs().max(1)
                ),
            );
            return Err(self.app.deny(caller, denial).await);
        }
        if !identity::verify(state, current.to_owned(), hash).await {
            state.throttle.record_failure(email, source, Instant::now());
            let denial = Denial::new(
                DenialReason::InvalidCredentials,
                RESOURCE,
                "the current password is wrong",
            );
            self.app.deny(caller, denial).await;
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "the current password is wrong",
            ));
        }
        state.throttle.record_success(email, Instant::now());
        let new_password = identity::hash(state, new.to_owned()).await?;
        commit::<User, _>(
            self.app,
            caller,
            &CommandOptions::default(),
            "change_password",
            &user.id.to_string(),
            None,
            &(),
            UserCommand::ChangePassword {
                new_password,
                // The session the change is made from stays signed in; every other one ends.
                keep_session: caller.user().and_then(|user| user.session),
            },
        )
        .await?;
        Ok(())
    }

    /// Mails a password reset token to `email` if an active account has that address. Answers `Ok` at
    /// once either way, and does the work (looking the account up, recording the request, mailing)
    /// in the background, so neither the answer nor its timing tells whether the address is
    /// registered. Only a malformed address is refused.
    pub async fn request_password_reset(&self, caller: &Caller, email: &str) -> Result<(), AppError> {
        self.identity()?;
        let email = Email::parse(email).map_err(|e| AppError::new(ErrorKind::Invalid, e.to_string()))?;
        let app = self.app.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            if let Err(e) = app.accounts().mail_password_reset(&caller, &email).await {
                warn!(error = %e, "could not send a password reset");
            }
        });
        Ok(())
    }

    async fn mail_password_reset(&self, caller: &Caller, email: &Email) -> Result<(), AppError> {
        let id = UserId::for_email(email);
        let account = self.load(id).await?;
        let now = Utc::now();
        if account.status != UserStatus::Active {
            return Ok(());
        }
        let recently = account
            .pending_reset
            .as_ref()
            .is_some_and(|p| p.expires_at - PASSWORD_RESET_LIFETIME > now - PASSWORD_RESET_INTERVAL);
        if recently {
            return Ok(());
        }
        let (token, hash) = OpaqueToken::generate(TokenKind::PasswordReset, id.0);
        let expires_at = now + PASSWORD_RESET_LIFETIME;
        commit::<User, _>(
            self.app,
            caller,
            &CommandOptions::default(),
            "request_password_reset",
            &id.to_string(),
            None,
            &(),
            UserCommand::RequestPasswordReset {
                token: hash,
                expires_at,
            },
        )
        .await?;
        let body = format!(
            "Someone asked to reset the password of your Prism account.\n\n\
             To choose a new password, present this token (it works once, until {}):\n\n{token}\n\n\
             If it was not you, ignore this message: your password stays as it is.\n",
            expires_at.to_rfc3339()
        );
        self.app
            .inner
            .mailer
            .send(email, "Reset your Prism password", &body)
            .await
    }

    /// Sets a new password with a reset token from the mail (no sign-in needed). A token that does
    /// not hold is recorded as a denial and answered as the account's refusal, alike for every cause.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        token: &str,
        new_password: &str,
    ) -> Result<(), AppError> {
        const RESOURCE: &str = "account/password-reset";
        let state = self.identity()?;
        let Ok((id, presented)) = OpaqueToken::parse(TokenKind::PasswordReset, token) else {
            return Err(self
                .refuse(
                    caller,
                    RESOURCE,
                    "malformed token",
                    UserError::InvalidPasswordReset,
                )
                .await);
        };
        check_password(state, new_password)?;
        let new_password = identity::hash(state, new_password.to_owned()).await?;
        let id = UserId(id);
        let command = UserCommand::ResetPassword {
            token: presented,
            new_password,
        };
        self.redeem(caller, RESOURCE, id, command, UserError::InvalidPasswordReset)
            .await?;
        // A reset ends a lockout; so it does the throttle's count of this address.
        if let Some(email) = self.load(id).await?.email {
            state.throttle.record_success(email.as_str(), Instant::now());
        }
        Ok(())
    }

    /// Mails the caller (signed-in session) a new e-mail verification token; it replaces a pending one.
    pub async fn send_verification(&self, caller: &Caller) -> Result<(), AppError> {
        let user = in_session(
            self.app,
            caller,
            "account/email-verification",
            "verifying the e-mail address",
        )
        .await?;
        self.identity()?;
        let (token, hash) = OpaqueToken::generate(TokenKind::EmailVerification, user.id.0);
        let expires_at = Utc::now() + EMAIL_VERIFICATION_LIFETIME;
        commit::<User, _>(
            self.app,
            caller,
            &CommandOptions::default(),
            "issue_email_verification",
            &user.id.to_string(),
            None,
            &(),
            UserCommand::IssueEmailVerification {
                token: hash,
                expires_at,
            },
        )
        .await?;
        let body = format!(
            "Please confirm that this address belongs to your Prism account by presenting this token \
             (it works until {}):\n\n{token}\n\nIf you have no Prism account, ignore this message.\n",
            expires_at.to_rfc3339()
        );
        self.app
            .inner
            .mailer
            .send(&user.email, "Verify your e-mail address", &body)
            .await
    }

    /// Marks the address of the token's account verified. The token is the proof (it reached the
    /// mailbox), so no sign-in is needed; one that does not hold is recorded as a denial.
    pub async fn verify_email(&self, caller: &Caller, token: &str) -> Result<(), AppError> {
        const RESOURCE: &str = "account/email-verification";
        let Ok((id, presented)) = OpaqueToken::parse(TokenKind::EmailVerification, token) else {
            return Err(self
                .refuse(
                    caller,
                    RESOURCE,
                    "malformed token",
                    UserError::InvalidVerification,
                )
                .await);
        };
        let command = UserCommand::VerifyEmail { token: presented };
        self.redeem(
            caller,
            RESOURCE,
            UserId(id),
            command,
            UserError::InvalidVerification,
        )
        .await
    }

    /// Disables an account: the user themself (signed-in session) or a platform administrator. Its
    /// access tokens, refresh tokens and API keys stop working at once. Refused while the user is the
    /// only admin of an active workspace; that is looked up in the workspaces read model, after it has
    /// caught up with everything committed before this request (so an application without read
    /// models cannot disable accounts: it answers `Internal`).
    pub async fn disable(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        user: UserId,
        reason: Option<String>,
    ) -> Result<AccountChange, AppError> {
        let own = caller.user().is_some_and(|u| u.id == user && u.api_key.is_none());
        if !own {
            self.admin(caller).await?;
        }
        let sole_owner_of = self.sole_owner_of(user).await?;
        self.change(
            caller,
            options,
            "disable",
            user,
            &DisableInput { reason: &reason },
            UserCommand::Disable {
                reason: reason.clone(),
                sole_owner_of,
            },
        )
        .await
    }

    /// Enables a disabled account (platform administrators).
    pub async fn enable(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        user: UserId,
    ) -> Result<AccountChange, AppError> {
        self.admin(caller).await?;
        self.change(caller, options, "enable", user, &(), UserCommand::Enable)
            .await
    }

    /// Makes `user` a platform administrator (platform administrators). Granting it twice changes
    /// nothing.
    pub async fn grant_platform_admin(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        user: UserId,
    ) -> Result<AccountChange, AppError> {
        self.admin(caller).await?;
        self.change(
            caller,
            options,
            "grant_platform_admin",
            user,
            &(),
            UserCommand::GrantPlatformAdmin,
        )
        .await
    }

    /// Takes the platform administrator role from `user` (platform administrators), never from the
    /// caller themself: another administrator must, so the platform always keeps one.
    pub async fn revoke_platform_admin(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        user: UserId,
    ) -> Result<AccountChange, AppError> {
        self.admin(caller).await?;
        if caller.user().is_some_and(|u| u.id == user) {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                "you cannot revoke your own platform administrator role: another administrator must, \
                 so that the platform always keeps one",
            ));
        }
        self.change(
            caller,
            options,
            "revoke_platform_admin",
            user,
            &(),
            UserCommand::RevokePlatformAdmin,
        )
        .await
    }

    async fn admin(&self, caller: &Caller) -> Result<(), AppError> {
        self.app
            .authorize(caller, Action::platform(Permission::PlatformOperate))
            .await
    }

    async fn change<I: Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        operation: &str,
        user: UserId,
        input: &I,
        command: UserCommand,
    ) -> Result<AccountChange, AppError> {
        let outcome = commit::<User, _>(
            self.app,
            caller,
            options,
            operation,
            &user.to_string(),
            None,
            input,
            command,
        )
        .await?;
        Ok(AccountChange {
            user,
            version: outcome.version,
            sequence: outcome.sequence,
        })
    }

    /// The active workspaces `user` is the only admin of, as "name (id)".
    async fn sole_owner_of(&self, user: UserId) -> Result<Vec<String>, AppError> {
        let models = self.app.read_models()?;
        let last = self
            .app
            .bounded(async { Ok(self.app.log().last_sequence().await?) })
            .await?;
        self.app
            .wait_read(&[WORKSPACES, COMPUTATIONS, USERS], ReadOptions::at_least(last))
            .await?;
        let mut named = Vec::new();
        for id in models.sole_admin_of(user).await? {
            named.push(match models.workspace(id).await? {
                Some(w) => format!("workspace \"{}\" ({id})", w.name),
                None => format!("workspace {id}"),
            });
        }
        let account = self.load(user).await?;
        if let Some(email) = &account.email {
            for (id, name) in models.sole_owner_of_computations(user, email).await? {
                named.push(format!("computation \"{name}\" ({id})"));
            }
        }
        // Someone must remain who can enable accounts again.
        if account.platform_admin && models.active_platform_admins().await?.iter().all(|a| *a == user) {
            named.push("the platform (its only active administrator)".into());
        }
        Ok(named)
    }

    async fn load(&self, id: UserId) -> Result<User, AppError> {
        self.app
            .bounded(async { Ok(self.app.repository::<User>().load(&id).await?.state) })
            .await
    }

    /// Commits a token's command; a refusal of the account's is recorded as a denial and answered
    /// as `answer`.
    async fn redeem(
        &self,
        caller: &Caller,
        resource: &str,
        id: UserId,
        command: UserCommand,
        answer: UserError,
    ) -> Result<(), AppError> {
        let committed = commit::<User, _>(
            self.app,
            caller,
            &CommandOptions::default(),
            "redeem",
            &id.to_string(),
            None,
            &(),
            command,
        )
        .await;
        match committed {
            Ok(_) => Ok(()),
            Err(e) => match rejection::<UserError>(&e) {
                Some(refused) => Err(self.refuse(caller, resource, &refused.to_string(), answer).await),
                None => Err(e),
            },
        }
    }

    /// Records a token that did not hold and answers `answer`, whatever the cause (unknown account,
    /// wrong or spent token, disabled account), so the answer tells nothing about the account.
    async fn refuse(&self, caller: &Caller, resource: &str, detail: &str, answer: UserError) -> AppError {
        let denial = Denial::new(DenialReason::InvalidCredentials, resource, detail);
        self.app.deny(caller, denial).await;
        AppError::rejected(answer)
    }
}

fn check_password(state: &IdentityState, password: &str) -> Result<(), AppError> {
    state
        .config
        .password_policy
        .check(password)
        .map_err(|e| AppError::new(ErrorKind::Invalid, format!("password {e}")))
}

/// The signed-in user behind `caller` (through a session or an API key); anyone else is refused
/// (and recorded) as unauthenticated.
pub(crate) async fn signed_in<'c>(
    app: &App,
    caller: &'c Caller,
    resource: &str,
) -> Result<&'c UserPrincipal, AppError> {
    match caller.user() {
        Some(user) => Ok(user),
        None => {
            let denial = Denial::new(DenialReason::Unauthenticated, resource, "no user credentials");
            Err(app.deny(caller, denial).await)
        }
    }
}

/// The user signed in with a session (an access token): an API key acts in one workspace with a
/// few permissions, and may not manage its owner's account or credentials. `what` names the action
/// for the answer ("changing the password").
pub(crate) async fn in_session<'c>(
    app: &App,
    caller: &'c Caller,
    resource: &str,
    what: &str,
) -> Result<&'c UserPrincipal, AppError> {
    let user = signed_in(app, caller, resource).await?;
    if user.api_key.is_some() {
        let denial = Denial::new(
            DenialReason::MissingPermission,
            resource,
            format!("{what} needs a signed-in session, not an API key"),
        );
        app.deny(caller, denial).await;
        return Err(AppError::new(
            ErrorKind::Forbidden,
            format!("{what} needs a signed-in session (an access token), not an API key"),
        ));
    }
    Ok(user)
}

/// Commits `command` to the existing aggregate `id` without asking the authorizer: the service has
/// decided who may (the account's own user, an invitee with its token, a key's owner). Honours the
/// expected version, and the idempotency key through the repository's keyed commits, which is
/// enough for a command on an existing aggregate (there is no id to choose): a retry with the same
/// key and content answers the first commit, the same key with other content is refused.
/// `workspace` goes into the events' metadata.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn commit<A: Aggregate, I: Serialize>(
    app: &App,
    caller: &Caller,
    options: &CommandOptions,
    operation: &str,
    id: &str,
    workspace: Option<String>,
    input: &I,
    command: A::Command,
) -> Result<CommandOutcome<A>, AppError> {
    let mut request = CommandRequest::<A>::new(&id, command, caller.metadata(workspace))
        .expecting_version(options.expected_version);
    if let Some(key) = &options.idempotency_key {
        let scope = format!("{}:{operation}:{id}", A::TYPE);
        let scoped_key = hex::encode(Sha256::digest(format!("{scope}\n{key}")));
        request = request.idempotent(scoped_key, crate::fingerprint(&scope, input)?);
    }
    let what = A::TYPE.replace('_', " ");
    app.bounded(async {
        app.repository::<A>()
            .execute(request)
            .await
            .map_err(|e| AppError::command(&what, e))
    })
    .await
}

/// The domain's refusal inside `error`, when it is one of `E`.
pub(crate) fn rejection<E: std::error::Error + 'static>(error: &AppError) -> Option<&E> {
    error.source.as_deref().and_then(|s| s.downcast_ref::<E>())
}
