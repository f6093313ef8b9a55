//! Applies the `.sql` files in `migrations/` once each, in name order. Hand-written because the job is
//! twenty lines, and a migration crate would bring its own runtime glue and configuration format.

use tokio_postgres::Client;

use crate::ProjectionError;

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_read_models",
        include_str!("../migrations/0001_read_models.sql"),
    ),
    (
        "0002_quarantine",
        include_str!("../migrations/0002_quarantine.sql"),
    ),
    (
        "0003_change_notifications",
        include_str!("../migrations/0003_change_notifications.sql"),
    ),
    ("0004_reactions", include_str!("../migrations/0004_reactions.sql")),
    (
        "0005_memberships",
        include_str!("../migrations/0005_memberships.sql"),
    ),
    ("0006_users", include_str!("../migrations/0006_users.sql")),
    ("0007_api_keys", include_str!("../migrations/0007_api_keys.sql")),
    (
        "0008_participant_custom_roles",
        include_str!("../migrations/0008_participant_custom_roles.sql"),
    ),
    (
        "0009_certificates",
        include_str!("../migrations/0009_certificates.sql"),
    ),
    (
        "0010_platform_certificates",
        include_str!("../migrations/0010_platform_certificates.sql"),
    ),
    ("0011_cvms", include_str!("../migrations/0011_cvms.sql")),
    (
        "0012_attestations",
        include_str!("../migrations/0012_attestations.sql"),
    ),
    ("0013_runs", include_str!("../migrations/0013_runs.sql")),
    ("0014_assets", include_str!("../migrations/0014_assets.sql")),
    (
        "0015_run_limits",
        include_str!("../migrations/0015_run_limits.sql"),
    ),
    ("0016_webhooks", include_str!("../migrations/0016_webhooks.sql")),
    ("0017_activity", include_str!("../migrations/0017_activity.sql")),
    ("0018_security", include_str!("../migrations/0018_security.sql")),
];

/// Brings the schema up to date. Safe to run from several processes at once (an advisory lock
/// serialises them).
pub async fn migrate(client: &mut Client) -> Result<(), ProjectionError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7470726973)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])
            .await?;
        if applied.is_none() {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
                .await?;
            tracing::info!(version, "applied migration");
        }
    }
    tx.commit().await?;
    Ok(())
}
