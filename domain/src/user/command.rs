use chrono::{DateTime, Duration, Utc};

use super::event::SignInFailure;
use crate::ids::{SessionId, UserId};
use crate::values::{Email, PasswordHash, SecretHash};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Opens an account. `id` must be [`UserId::for_email`] of `email`, so that two registrations of
    /// one address meet at the same aggregate. `verification` is the hash and expiry of the link mailed
    /// to an address that is not verified yet.
    Register {
        id: UserId,
        email: Email,
        display_name: String,
        /// `None` for a user who signs in only through OpenID Connect.
        password: Option<PasswordHash>,
        platform_admin: bool,
        email_verified: bool,
        verification: Option<(SecretHash, DateTime<Utc>)>,
    },
    /// The user followed a verification link. Verifying a verified address changes nothing.
    VerifyEmail {
        token: SecretHash,
    },
    /// Sends a new verification link; it replaces the pending one.
    IssueEmailVerification {
        token: SecretHash,
        expires_at: DateTime<Utc>,
    },
    /// Records a sign-in attempt the application layer judged. The domain records the reason that
    /// applies: an attempt on a disabled account fails as `Disabled`, one on a locked account as
    /// `Locked`, whatever the application saw ([`super::User::sign_in_outcome`] reads the result).
    RecordSignIn {
        outcome: SignInOutcome,
        /// The address the attempt came from.
        source: Option<String>,
        policy: LockoutPolicy,
    },
    /// The application layer verified the current password.
    ChangePassword {
        new_password: PasswordHash,
        /// The session the change is made from, if any: it stays signed in.
        keep_session: Option<SessionId>,
    },
    /// Mails a password reset link; it replaces an earlier pending one.
    RequestPasswordReset {
        token: SecretHash,
        expires_at: DateTime<Utc>,
    },
    ResetPassword {
        token: SecretHash,
        new_password: PasswordHash,
    },
    /// Links an OpenID Connect identity. That no other user holds it is the application layer's
    /// check, as it spans users.
    LinkIdentity {
        issuer: String,
        subject: String,
    },
    /// `sole_owner_of` names what this user is the only owner or administrator of (the application
    /// layer looks it up): disabling them would leave it ownerless, so it is refused.
    Disable {
        reason: Option<String>,
        sole_owner_of: Vec<String>,
    },
    Enable,
    GrantPlatformAdmin,
    RevokePlatformAdmin,
}

/// What the application layer found when it checked the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    Succeeded,
    Failed { reason: SignInFailure },
}

/// When failed sign-ins lock an account: `max_failures` wrong passwords within `window` lock it for
/// `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}
