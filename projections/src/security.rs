//! Security events: refused requests and client certificates, failed sign-ins and lock-outs, refused
//! attestations — one table per aggregate type, each its own projection, read together by
//! [`ReadModels::security_events`].

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use prism_domain::cvm::{Cvm, CvmEvent};
use prism_domain::denial::{AccessDenial, DenialEvent};
use prism_domain::user::{User, UserEvent};
use prism_domain::{DomainEvent, WorkspaceId};
use prism_store::{EventMeta, Recorded};
use serde::Serialize;
use tokio_postgres::types::ToSql;

use crate::activity_queries::{SequencePage, page_of};
use crate::projection_support::{aggregate_uuid, version};
use crate::{Projection, ProjectionError, ReadModels};

/// Name of the projection of access denials.
pub const SECURITY_DENIALS: &str = "security_denials";
/// Name of the projection of failed sign-ins and lock-outs.
pub const SECURITY_SIGN_INS: &str = "security_sign_ins";
/// Name of the projection of refused attestations.
pub const SECURITY_ATTESTATIONS: &str = "security_attestations";

/// A value's serde name (`missing_permission`, `wrong_password`).
fn snake(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// One row of a security table, whichever it is.
struct Row<'a> {
    meta: &'a EventMeta,
    kind: String,
    subject: String,
    detail: String,
    source: Option<&'a str>,
    time: DateTime<Utc>,
}

impl Row<'_> {
    /// Inserts it into `table` with `scope` (`workspace_id` or `user_id`) set to `scope_id`.
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        table: &str,
        scope: &str,
        scope_id: Option<uuid::Uuid>,
    ) -> Result<(), ProjectionError> {
        // `table` and `scope` are this module's constants, never input.
        let statement = format!(
            "INSERT INTO {table} (sequence, version, event_id, type, {scope}, kind, actor, subject, detail, source, time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        );
        let params: [&(dyn ToSql + Sync); 11] = [
            &(self.meta.sequence as i64),
            &version(self.meta),
            &self.meta.id,
            &self.meta.event_type,
            &scope_id,
            &self.kind,
            &self.meta.actor,
            &self.subject,
            &self.detail,
            &self.source,
            &self.time,
        ];
        tx.execute(&statement, &params).await?;
        Ok(())
    }
}

/// The workspace a denied resource is in: `workspaces/<id>` and what is under it.
fn workspace_of(resource: &str) -> Option<uuid::Uuid> {
    let rest = resource.strip_prefix("workspaces/")?;
    uuid::Uuid::parse_str(rest.split('/').next()?).ok()
}

/// The `security_denials` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityDenialsProjection;

impl Projection for SecurityDenialsProjection {
    type Aggregate = AccessDenial;

    fn name(&self) -> &'static str {
        SECURITY_DENIALS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["security_denials"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<DenialEvent>,
    ) -> Result<(), ProjectionError> {
        let DenialEvent::Denied(e) = &recorded.event;
        let mut detail = e.detail.clone();
        if e.suppressed > 0 {
            detail = format!(
                "{detail} (and {} more from this source not recorded one by one)",
                e.suppressed
            );
        }
        let row = Row {
            meta: &recorded.meta,
            kind: snake(&e.reason),
            subject: e.resource.clone(),
            detail,
            source: e.source.as_deref(),
            time: e.at,
        };
        let workspace = workspace_of(&e.resource).or_else(|| {
            let ws = recorded.meta.workspace.as_deref()?;
            uuid::Uuid::parse_str(ws).ok()
        });
        row.insert(tx, "security_denials", "workspace_id", workspace)
            .await
    }
}

/// The `security_sign_ins` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecuritySignInsProjection;

impl Projection for SecuritySignInsProjection {
    type Aggregate = User;

    fn name(&self) -> &'static str {
        SECURITY_SIGN_INS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["security_sign_ins"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<UserEvent>,
    ) -> Result<(), ProjectionError> {
        let user = aggregate_uuid(&recorded.meta)?;
        let subject = format!("users/{user}");
        let row = match &recorded.event {
            UserEvent::SignInFailed(e) => Row {
                meta: &recorded.meta,
                kind: recorded.event.name().to_owned(),
                subject,
                detail: snake(&e.reason),
                source: e.source.as_deref(),
                time: e.failed_at,
            },
            UserEvent::LockedOut(e) => Row {
                meta: &recorded.meta,
                kind: recorded.event.name().to_owned(),
                subject,
                detail: format!("no sign-in accepted until {}", e.until.to_rfc3339()),
                source: None,
                time: e.locked_at,
            },
            _ => return Ok(()),
        };
        row.insert(tx, "security_sign_ins", "user_id", Some(user)).await
    }
}

/// The `security_attestations` and `security_cvm_workspaces` tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityAttestationsProjection;

impl Projection for SecurityAttestationsProjection {
    type Aggregate = Cvm;

    fn name(&self) -> &'static str {
        SECURITY_ATTESTATIONS
    }

    fn tables(&self) -> &'static [&'static str] {
        &["security_attestations", "security_cvm_workspaces"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<CvmEvent>,
    ) -> Result<(), ProjectionError> {
        let cvm = aggregate_uuid(&recorded.meta)?;
        match &recorded.event {
            CvmEvent::Requested(e) => {
                tx.execute(
                    "INSERT INTO security_cvm_workspaces (cvm_id, workspace_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&cvm, &e.workspace.as_uuid()],
                )
                .await?;
                Ok(())
            }
            CvmEvent::AttestationAppraised(e) if !e.verdict.outcome.accepted() => {
                let Some(workspace) = tx
                    .query_opt(
                        "SELECT workspace_id FROM security_cvm_workspaces WHERE cvm_id = $1",
                        &[&cvm],
                    )
                    .await?
                else {
                    return Ok(());
                };
                let failures: Vec<String> = e
                    .verdict
                    .failures
                    .iter()
                    .map(|f| format!("{}: expected {}, got {}", f.field, f.expected, f.actual))
                    .collect();
                let row = Row {
                    meta: &recorded.meta,
                    kind: "attestation_refused".into(),
                    subject: format!("cvms/{cvm}"),
                    detail: failures.join("; "),
                    source: None,
                    time: e.at,
                };
                row.insert(tx, "security_attestations", "workspace_id", workspace.get(0))
                    .await
            }
            _ => Ok(()),
        }
    }
}

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityEventView {
    pub sequence: u64,
    pub id: String,
    /// The CloudEvents type of the event it comes from.
    pub r#type: String,
    pub kind: String,
    pub actor: String,
    /// What it concerns: the resource asked for, `users/<id>`, `cvms/<id>`, a listener.
    pub subject: String,
    pub detail: String,
    /// The source address, when known.
    pub source: Option<String>,
    pub time: DateTime<Utc>,
}

/// Which security events a query shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityFilter {
    /// Kinds (`missing_permission`, `sign_in_failed`, `attestation_refused`, …); empty for all.
    pub kinds: Vec<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: Option<u64>,
    pub limit: u32,
}

const SECURITY_EVENTS: &str =
    "SELECT sequence, version, event_id, type, kind, actor, subject, detail, source, time FROM (
        SELECT sequence, version, event_id, type, kind, actor, subject, detail, source, time
        FROM security_denials WHERE $1::uuid IS NULL OR workspace_id = $1
        UNION ALL
        SELECT sequence, version, event_id, type, kind, actor, subject, detail, source, time
        FROM security_sign_ins
        WHERE $1::uuid IS NULL OR user_id IN (SELECT user_id FROM workspace_members WHERE workspace_id = $1)
        UNION ALL
        SELECT sequence, version, event_id, type, kind, actor, subject, detail, source, time
        FROM security_attestations WHERE $1::uuid IS NULL OR workspace_id = $1
    ) e
    WHERE sequence > $2 AND (cardinality($3::text[]) = 0 OR kind = ANY($3))
      AND ($4::timestamptz IS NULL OR time >= $4) AND ($5::timestamptz IS NULL OR time < $5)
    ORDER BY sequence, version LIMIT $6";

impl ReadModels {
    /// The security events of `workspace` (its resources, its members' sign-ins, its CVMs'
    /// attestations), or of the whole platform when `None`, in the log's order.
    pub async fn security_events(
        &self,
        workspace: Option<WorkspaceId>,
        filter: &SecurityFilter,
    ) -> Result<SequencePage<SecurityEventView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(SECURITY_EVENTS).await?;
        let (workspace, after) = (workspace.map(|w| w.0), filter.after.unwrap_or(0) as i64);
        page_of(
            filter.limit,
            |e: &SecurityEventView| e.sequence,
            |count| {
                let (client, statement) = (&client, &statement);
                async move {
                    let params: [&(dyn ToSql + Sync); 6] = [
                        &workspace,
                        &after,
                        &filter.kinds,
                        &filter.from,
                        &filter.to,
                        &count,
                    ];
                    let rows = client.query(statement, &params).await?;
                    Ok(rows
                        .iter()
                        .map(|row| SecurityEventView {
                            sequence: row.get::<_, i64>(0) as u64,
                            id: row.get(2),
                            r#type: row.get(3),
                            kind: row.get(4),
                            actor: row.get(5),
                            subject: row.get(6),
                            detail: row.get(7),
                            source: row.get(8),
                            time: row.get(9),
                        })
                        .collect())
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_resource_names_its_workspace() {
        let ws = uuid::Uuid::now_v7();
        assert_eq!(workspace_of(&format!("workspaces/{ws}")), Some(ws));
        assert_eq!(workspace_of(&format!("workspaces/{ws}/computations/x")), Some(ws));
        assert_eq!(workspace_of("platform"), None);
        assert_eq!(workspace_of("workspaces/not-a-uuid"), None);
        assert_eq!(
            snake(&prism_domain::denial::DenialReason::CertificateRefused),
            "certificate_refused"
        );
    }
}
