use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use prism_domain::user::{User, UserEvent};
use prism_store::Recorded;
use tracing::warn;
use uuid::Uuid;

use crate::projection_support::{aggregate_uuid, version};
use crate::{Projection, ProjectionError, USERS};

/// The `users` table (one row per account, as of its last event) and the OpenID Connect identities
/// linked to them (`user_identities`). No password hash and no token hash reaches these tables: a row
/// says only whether the user has a password.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersProjection;

impl Projection for UsersProjection {
    type Aggregate = User;

    fn name(&self) -> &'static str {
        USERS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["user_identities", "users"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<UserEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        // Each arm sets what its event changes ($3 onwards) besides the version ($1) and time ($2).
        let (at, change): (DateTime<Utc>, Change) = match &recorded.event {
            UserEvent::Registered(e) => {
                tx.execute(
                    "INSERT INTO users (id, email, display_name, status, email_verified, platform_admin,
                                        has_password, version, created_at, updated_at)
                     VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $8)",
                    &[
                        &id,
                        &e.email.as_str(),
                        &e.display_name,
                        &e.email_verified,
                        &e.platform_admin,
                        &e.password.is_some(),
                        &v,
                        &e.registered_at,
                    ],
                )
                .await?;
                return Ok(());
            }
            UserEvent::EmailVerificationIssued(e) => (e.issued_at, Change::Nothing),
            UserEvent::EmailVerified(e) => (e.verified_at, Change::EmailVerified),
            UserEvent::SignedIn(e) => (e.signed_in_at, Change::SignedIn),
            UserEvent::SignInFailed(e) => (e.failed_at, Change::Nothing),
            UserEvent::LockedOut(e) => (e.locked_at, Change::LockedUntil(e.until)),
            UserEvent::PasswordChanged(e) => (e.changed_at, Change::HasPassword),
            UserEvent::PasswordResetRequested(e) => (e.requested_at, Change::Nothing),
            // A reset also lifts a lockout.
            UserEvent::PasswordReset(e) => (e.reset_at, Change::PasswordReset),
            UserEvent::IdentityLinked(e) => {
                link(tx, id, &e.identity.issuer, &e.identity.subject, e.linked_at).await?;
                (e.linked_at, Change::Nothing)
            }
            UserEvent::Disabled(e) => (e.disabled_at, Change::Status("disabled")),
            UserEvent::Enabled(e) => (e.enabled_at, Change::Status("active")),
            UserEvent::PlatformAdminGranted(e) => (e.granted_at, Change::PlatformAdmin(true)),
            UserEvent::PlatformAdminRevoked(e) => (e.revoked_at, Change::PlatformAdmin(false)),
        };
        const SET: &str = "UPDATE users SET version = $2, updated_at = $3";
        match change {
            Change::Nothing => {
                tx.execute(&format!("{SET} WHERE id = $1"), &[&id, &v, &at])
                    .await?
            }
            Change::EmailVerified => {
                tx.execute(
                    &format!("{SET}, email_verified = true WHERE id = $1"),
                    &[&id, &v, &at],
                )
                .await?
            }
            Change::SignedIn => {
                tx.execute(
                    &format!("{SET}, last_sign_in_at = $3, locked_until = NULL WHERE id = $1"),
                    &[&id, &v, &at],
                )
                .await?
            }
            Change::LockedUntil(until) => {
                tx.execute(
                    &format!("{SET}, locked_until = $4 WHERE id = $1"),
                    &[&id, &v, &at, &until],
                )
                .await?
            }
            Change::HasPassword => {
                tx.execute(
                    &format!("{SET}, has_password = true WHERE id = $1"),
                    &[&id, &v, &at],
                )
                .await?
            }
            Change::PasswordReset => {
                tx.execute(
                    &format!("{SET}, has_password = true, locked_until = NULL WHERE id = $1"),
                    &[&id, &v, &at],
                )
                .await?
            }
            Change::Status(status) => {
                tx.execute(
                    &format!("{SET}, status = $4 WHERE id = $1"),
                    &[&id, &v, &at, &status],
                )
                .await?
            }
            Change::PlatformAdmin(admin) => {
                tx.execute(
                    &format!("{SET}, platform_admin = $4 WHERE id = $1"),
                    &[&id, &v, &at, &admin],
                )
                .await?
            }
        };
        Ok(())
    }
}

/// What an event changes in a user's row besides its version and `updated_at`.
enum Change {
    Nothing,
    EmailVerified,
    SignedIn,
    LockedUntil(DateTime<Utc>),
    HasPassword,
    PasswordReset,
    Status(&'static str),
    PlatformAdmin(bool),
}

/// Links an identity to `user`. That no other user holds it is the application layer's check; should
/// two links race past it, the first one in the log keeps the identity (a rebuild decides the same).
async fn link(
    tx: &Transaction<'_>,
    user: Uuid,
    issuer: &str,
    subject: &str,
    at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let inserted = tx
        .execute(
            "INSERT INTO user_identities (user_id, issuer, subject, linked_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (issuer, subject) DO NOTHING",
            &[&user, &issuer, &subject, &at],
        )
        .await?;
    if inserted == 0 {
        warn!(
            %user,
            issuer,
            subject,
            "an identity another user already holds was linked; the first user keeps it"
        );
    }
    Ok(())
}
