//! The user aggregate: one account, keyed by its e-mail address ([`UserId::for_email`]). It holds what
//! signing in needs — the password hash, the linked OpenID Connect identities, the pending
//! verification and reset links (hashes only), the recent failures and the lockout — and whether the
//! user administers the platform. Hashing, mailing and checking credentials are the application
//! layer's; the domain records what happened and decides what that implies.

mod command;
mod error;
mod event;
mod state;

pub use command::{LockoutPolicy, SignInOutcome, UserCommand};
pub use error::UserError;
pub use event::{
    ExternalIdentity, PendingToken, SignInFailure, UserDisabled, UserEmailVerificationIssued,
    UserEmailVerified, UserEnabled, UserEvent, UserIdentityLinked, UserLockedOut, UserPasswordChanged,
    UserPasswordReset, UserPasswordResetRequested, UserPlatformAdminGranted, UserPlatformAdminRevoked,
    UserRegistered, UserSignInFailed, UserSignedIn,
};
pub use state::{User, UserStatus};

use chrono::{DateTime, Duration, Utc};

use crate::aggregate::{Aggregate, CommandContext};
use crate::ids::UserId;
use crate::values::{SecretHash, check_text};

pub const DISPLAY_NAME_MAX: usize = 128;
pub const ISSUER_MAX: usize = 512;
pub const SUBJECT_MAX: usize = 255;
pub const REASON_MAX: usize = 1024;
pub const SOURCE_MAX: usize = 256;
/// How many recent wrong passwords the state remembers, and so the most a [`LockoutPolicy`] may allow.
pub const FAILURES_KEPT: usize = 100;

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: UserCommand, ctx: &CommandContext) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        use UserStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Register {
                    id,
                    email,
                    display_name,
                    password,
                    platform_admin,
                    email_verified,
                    verification,
                },
            ) => {
                if id != UserId::for_email(&email) {
                    return Err(UserError::IdDoesNotMatchEmail);
                }
                let display_name = display_name.trim().to_owned();
                check_text("display name", &display_name, DISPLAY_NAME_MAX, true)?;
                if email_verified && verification.is_some() {
                    return Err(UserError::VerifiedNeedsNoVerification);
                }
                let verification = verification
                    .map(|(hash, expires_at)| pending(hash, expires_at, ctx.now))
                    .transpose()?;
                Ok(vec![UserEvent::Registered(UserRegistered {
                    id,
                    email,
                    display_name,
                    password,
                    platform_admin,
                    email_verified,
                    verification,
                    registered_by: ctx.actor.clone(),
                    registered_at: ctx.now,
                })])
            }
            (S::New, _) => Err(UserError::NotFound),
            (_, C::Register { .. }) => Err(UserError::AlreadyExists),
            (S::Disabled, C::Enable) => Ok(vec![UserEvent::Enabled(UserEnabled {
                enabled_by: ctx.actor.clone(),
                enabled_at: ctx.now,
            })]),
            (S::Active, C::Enable) => Err(UserError::NotDisabled),
            (S::Disabled, C::Disable { .. }) => Err(UserError::AlreadyDisabled),
            // Attempts on a disabled account are still recorded (as failures), and a disabled
            // administrator can still lose the role.
            (
                _,
                C::RecordSignIn {
                    outcome,
                    source,
                    policy,
                },
            ) => self.record_sign_in(outcome, source, policy, ctx),
            (_, C::RevokePlatformAdmin) if !self.platform_admin => Ok(vec![]),
            (_, C::RevokePlatformAdmin) => {
                Ok(vec![UserEvent::PlatformAdminRevoked(UserPlatformAdminRevoked {
                    revoked_by: ctx.actor.clone(),
                    revoked_at: ctx.now,
                })])
            }
            (S::Disabled, _) => Err(UserError::Disabled),
            (S::Active, C::VerifyEmail { .. }) if self.email_verified => Ok(vec![]),
            (S::Active, C::VerifyEmail { token }) => match &self.pending_verification {
                Some(link) if link.accepts(&token, ctx.now) => {
                    Ok(vec![UserEvent::EmailVerified(UserEmailVerified {
                        verified_at: ctx.now,
                    })])
                }
                _ => Err(UserError::InvalidVerification),
            },
            (S::Active, C::IssueEmailVerification { .. }) if self.email_verified => {
                Err(UserError::AlreadyVerified)
            }
            (S::Active, C::IssueEmailVerification { token, expires_at }) => {
                Ok(vec![UserEvent::EmailVerificationIssued(
                    UserEmailVerificationIssued {
                        verification: pending(token, expires_at, ctx.now)?,
                        issued_at: ctx.now,
                    },
                )])
            }
            (
                S::Active,
                C::ChangePassword {
                    new_password,
                    keep_session,
                },
            ) => Ok(vec![UserEvent::PasswordChanged(UserPasswordChanged {
                password: new_password,
                kept_session: keep_session,
                changed_at: ctx.now,
            })]),
            (S::Active, C::RequestPasswordReset { token, expires_at }) => {
                Ok(vec![UserEvent::PasswordResetRequested(
                    UserPasswordResetRequested {
                        reset: pending(token, expires_at, ctx.now)?,
                        requested_at: ctx.now,
                    },
                )])
            }
            (S::Active, C::ResetPassword { token, new_password }) => match &self.pending_reset {
                Some(link) if link.accepts(&token, ctx.now) => {
                    Ok(vec![UserEvent::PasswordReset(UserPasswordReset {
                        password: new_password,
                        reset_at: ctx.now,
                    })])
                }
                _ => Err(UserError::InvalidPasswordReset),
            },
            (S::Active, C::LinkIdentity { issuer, subject }) => {
                check_text("issuer", &issuer, ISSUER_MAX, true)?;
                if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                    return Err(UserError::IssuerNotUrl(issuer));
                }
                check_text("subject", &subject, SUBJECT_MAX, true)?;
                let identity = ExternalIdentity { issuer, subject };
                if self.identities.contains(&identity) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::IdentityLinked(UserIdentityLinked {
                    identity,
                    linked_at: ctx.now,
                })])
            }
            (
                S::Active,
                C::Disable {
                    reason,
                    sole_owner_of,
                },
            ) => {
                if !sole_owner_of.is_empty() {
                    return Err(UserError::SoleOwner(sole_owner_of));
                }
                if let Some(reason) = &reason {
                    check_text("reason", reason, REASON_MAX, false)?;
                }
                Ok(vec![UserEvent::Disabled(UserDisabled {
                    reason,
                    disabled_by: ctx.actor.clone(),
                    disabled_at: ctx.now,
                })])
            }
            (S::Active, C::GrantPlatformAdmin) if self.platform_admin => Ok(vec![]),
            (S::Active, C::GrantPlatformAdmin) => {
                Ok(vec![UserEvent::PlatformAdminGranted(UserPlatformAdminGranted {
                    granted_by: ctx.actor.clone(),
                    granted_at: ctx.now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Registered(e) => {
                self.status = UserStatus::Active;
                self.id = Some(e.id);
                self.email = Some(e.email.clone());
                self.display_name = e.display_name.clone();
                self.password = e.password.clone();
                self.email_verified = e.email_verified;
                self.platform_admin = e.platform_admin;
                self.pending_verification = e.verification.clone();
            }
            UserEvent::EmailVerificationIssued(e) => self.pending_verification = Some(e.verification.clone()),
            UserEvent::EmailVerified(_) => {
                self.email_verified = true;
                self.pending_verification = None;
            }
            UserEvent::SignedIn(_) => {
                self.recent_failures.clear();
                self.locked_until = None;
            }
            UserEvent::SignInFailed(e) => {
                if e.reason == SignInFailure::WrongPassword {
                    self.recent_failures.push(e.failed_at);
                    let excess = self.recent_failures.len().saturating_sub(FAILURES_KEPT);
                    self.recent_failures.drain(..excess);
                }
            }
            UserEvent::LockedOut(e) => {
                self.locked_until = Some(e.until);
                self.recent_failures.clear();
            }
            UserEvent::PasswordChanged(e) => {
                self.password = Some(e.password.clone());
                self.pending_reset = None;
                self.credentials += 1;
                self.kept_session = e.kept_session;
            }
            UserEvent::PasswordResetRequested(e) => self.pending_reset = Some(e.reset.clone()),
            UserEvent::PasswordReset(e) => {
                self.password = Some(e.password.clone());
                self.pending_reset = None;
                self.credentials += 1;
                self.kept_session = None;
                self.recent_failures.clear();
                self.locked_until = None;
            }
            UserEvent::IdentityLinked(e) => {
                self.identities.insert(e.identity.clone());
            }
            UserEvent::Disabled(_) => {
                self.status = UserStatus::Disabled;
                self.pending_reset = None;
            }
            UserEvent::Enabled(_) => self.status = UserStatus::Active,
            UserEvent::PlatformAdminGranted(_) => self.platform_admin = true,
            UserEvent::PlatformAdminRevoked(_) => self.platform_admin = false,
        }
    }
}

impl User {
    fn record_sign_in(
        &self,
        outcome: SignInOutcome,
        source: Option<String>,
        policy: LockoutPolicy,
        ctx: &CommandContext,
    ) -> Result<Vec<UserEvent>, UserError> {
        if let Some(source) = &source {
            check_text("source", source, SOURCE_MAX, false)?;
        }
        let (window_start, lockout_end) = policy.bounds(ctx.now)?;
        // The account's state overrules what the application saw: a disabled or locked account
        // never signs in.
        let outcome = match self.can_sign_in(ctx.now) {
            Err(reason) => SignInOutcome::Failed { reason },
            Ok(()) => outcome,
        };
        let reason = match outcome {
            SignInOutcome::Succeeded => {
                return Ok(vec![UserEvent::SignedIn(UserSignedIn {
                    source,
                    signed_in_at: ctx.now,
                })]);
            }
            SignInOutcome::Failed { reason } => reason,
        };
        let mut events = vec![UserEvent::SignInFailed(UserSignInFailed {
            reason,
            source,
            failed_at: ctx.now,
        })];
        if reason == SignInFailure::WrongPassword {
            let within_window = self
                .recent_failures
                .iter()
                .filter(|at| **at > window_start)
                .count()
                + 1;
            if within_window >= policy.max_failures as usize {
                events.push(UserEvent::LockedOut(UserLockedOut {
                    until: lockout_end,
                    locked_at: ctx.now,
                }));
            }
        }
        Ok(events)
    }
}

impl LockoutPolicy {
    /// When the window that counts failures at `now` starts (exclusive: a failure exactly `window`
    /// old no longer counts), and when a lockout beginning at `now` ends.
    fn bounds(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), UserError> {
        let invalid = |why: &str| UserError::LockoutPolicy(why.to_owned());
        if self.max_failures == 0 || self.max_failures as usize > FAILURES_KEPT {
            return Err(invalid(&format!(
                "max_failures must be between 1 and {FAILURES_KEPT}"
            )));
        }
        if self.window <= Duration::zero() || self.lockout <= Duration::zero() {
            return Err(invalid("window and lockout must be positive"));
        }
        let start = now
            .checked_sub_signed(self.window)
            .ok_or_else(|| invalid("window is too long"))?;
        let end = now
            .checked_add_signed(self.lockout)
            .ok_or_else(|| invalid("lockout is too long"))?;
        Ok((start, end))
    }
}

/// A link's token, refused when it would be void from the start.
fn pending(
    hash: SecretHash,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<PendingToken, UserError> {
    if expires_at <= now {
        return Err(UserError::ExpiresInThePast);
    }
    Ok(PendingToken { hash, expires_at })
}

#[cfg(test)]
mod tests;
