use chrono::{DateTime, Utc};

use super::event::{RevocationReason, SignInMethod};
use crate::ids::{SessionId, UserId};
use crate::values::SecretHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// Opens a session after a sign-in, with the first refresh token of its family. A token's expiry
    /// is capped at the family's.
    Start {
        id: SessionId,
        user: UserId,
        method: SignInMethod,
        refresh: SecretHash,
        expires_at: DateTime<Utc>,
        family_expires_at: DateTime<Utc>,
        /// The user's credential generation the sign-in was checked against.
        credentials: u32,
    },
    /// Spends the refresh token `presented` for `next`.
    ///
    /// When `presented` was already spent, the token has leaked (or a client replays it): the
    /// decision is **`Ok`** with `ReuseDetected` and `Revoked`, which the application layer must
    /// commit *and* then refuse the caller — [`super::Session::refresh_outcome`] turns those events
    /// into the error to answer with.
    Refresh {
        presented: SecretHash,
        next: SecretHash,
        expires_at: DateTime<Utc>,
    },
    /// Ends the session; ending an ended session changes nothing.
    Revoke { reason: RevocationReason },
}
