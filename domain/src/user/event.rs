use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::DomainEvent;
use crate::ids::{Actor, SessionId, UserId};
use crate::values::{Email, PasswordHash, SecretHash};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum UserEvent {
    Registered(UserRegistered),
    EmailVerificationIssued(UserEmailVerificationIssued),
    EmailVerified(UserEmailVerified),
    SignedIn(UserSignedIn),
    SignInFailed(UserSignInFailed),
    LockedOut(UserLockedOut),
    PasswordChanged(UserPasswordChanged),
    PasswordResetRequested(UserPasswordResetRequested),
    PasswordReset(UserPasswordReset),
    IdentityLinked(UserIdentityLinked),
    Disabled(UserDisabled),
    Enabled(UserEnabled),
    PlatformAdminGranted(UserPlatformAdminGranted),
    PlatformAdminRevoked(UserPlatformAdminRevoked),
}

/// The hash of a single-use secret mailed to the user (verification or password reset link), and
/// until when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingToken {
    pub hash: SecretHash,
    pub expires_at: DateTime<Utc>,
}

impl PendingToken {
    /// `presented` is this token, and it has not expired (it is accepted strictly before `expires_at`).
    pub fn accepts(&self, presented: &SecretHash, now: DateTime<Utc>) -> bool {
        self.hash.matches(presented) && now < self.expires_at
    }
}

/// An account at an OpenID Connect provider: `subject` is unique within `issuer`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
}

/// Why a sign-in attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInFailure {
    /// The credentials did not match. Only these failures count towards a lockout.
    WrongPassword,
    /// The account was locked after too many wrong passwords.
    Locked,
    /// The account is disabled.
    Disabled,
}

/// An account was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRegistered {
    pub id: UserId,
    pub email: Email,
    pub display_name: String,
    /// `None` for a user who signs in only through OpenID Connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordHash>,
    pub platform_admin: bool,
    pub email_verified: bool,
    /// The verification link mailed to an address that is not verified yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<PendingToken>,
    pub registered_by: Actor,
    pub registered_at: DateTime<Utc>,
}

/// A new verification link was mailed; it replaces the pending one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEmailVerificationIssued {
    pub verification: PendingToken,
    pub issued_at: DateTime<Utc>,
}

/// The user proved they receive mail at their address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEmailVerified {
    pub verified_at: DateTime<Utc>,
}

/// The user signed in; earlier failures no longer count towards a lockout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSignedIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub signed_in_at: DateTime<Utc>,
}

/// A sign-in attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSignInFailed {
    pub reason: SignInFailure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub failed_at: DateTime<Utc>,
}

/// Too many wrong passwords: no sign-in is accepted before `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLockedOut {
    pub until: DateTime<Utc>,
    pub locked_at: DateTime<Utc>,
}

/// The user changed their password (knowing the current one). A pending reset link is void, and every
/// session but the one it was changed from ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordChanged {
    pub password: PasswordHash,
    /// The session the change was made from, which stays signed in; every other session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_session: Option<SessionId>,
    pub changed_at: DateTime<Utc>,
}

/// A password reset link was mailed; it replaces an earlier pending one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordResetRequested {
    pub reset: PendingToken,
    pub requested_at: DateTime<Utc>,
}

/// The user set a new password through a reset link; the link is spent, a lockout lifted, and every
/// session ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordReset {
    pub password: PasswordHash,
    pub reset_at: DateTime<Utc>,
}

/// The user may sign in with this OpenID Connect identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIdentityLinked {
    pub identity: ExternalIdentity,
    pub linked_at: DateTime<Utc>,
}

/// The account was disabled: no sign-in is accepted, a pending reset link is void.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDisabled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub disabled_by: Actor,
    pub disabled_at: DateTime<Utc>,
}

/// A disabled account was enabled again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEnabled {
    pub enabled_by: Actor,
    pub enabled_at: DateTime<Utc>,
}

/// The user became a platform administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPlatformAdminGranted {
    pub granted_by: Actor,
    pub granted_at: DateTime<Utc>,
}

/// The user is no longer a platform administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPlatformAdminRevoked {
    pub revoked_by: Actor,
    pub revoked_at: DateTime<Utc>,
}

impl DomainEvent for UserEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Registered(_) => "registered",
            Self::EmailVerificationIssued(_) => "email_verification_issued",
            Self::EmailVerified(_) => "email_verified",
            Self::SignedIn(_) => "signed_in",
            Self::SignInFailed(_) => "sign_in_failed",
            Self::LockedOut(_) => "locked_out",
            Self::PasswordChanged(_) => "password_changed",
            Self::PasswordResetRequested(_) => "password_reset_requested",
            Self::PasswordReset(_) => "password_reset",
            Self::IdentityLinked(_) => "identity_linked",
            Self::Disabled(_) => "disabled",
            Self::Enabled(_) => "enabled",
            Self::PlatformAdminGranted(_) => "platform_admin_granted",
            Self::PlatformAdminRevoked(_) => "platform_admin_revoked",
        }
    }
}
