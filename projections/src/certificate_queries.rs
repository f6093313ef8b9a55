//! Queries over the certificate read models: lineages by workspace (and entity), one by id or by the
//! serial of any of its certificates, what OCSP says of a serial, and what a CRL lists. Answered by the
//! database, one prepared statement each.

use chrono::{DateTime, Utc};
use prism_domain::certificate::Serial;
use prism_domain::{CertificateId, WorkspaceId};
use serde::Serialize;
use tokio_postgres::Row;

use crate::queries::paged;
use crate::{Page, PageRequest, ProjectionError, ReadModels};

/// A certificate lineage as listed: its current certificate, without the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateView {
    pub id: CertificateId,
    pub workspace_id: WorkspaceId,
    pub entity_kind: String,
    pub entity_id: String,
    pub profile: String,
    pub common_name: String,
    /// The subject's names, as the issuing event has them.
    pub subject: serde_json::Value,
    /// `authority` or `holder`.
    pub key_custody: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub serial: Serial,
    pub not_after: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// One certificate (one serial) of a lineage, with its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateSerialView {
    pub serial: Serial,
    pub certificate_id: CertificateId,
    pub workspace_id: Option<WorkspaceId>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// PEM.
    pub certificate: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// RFC 5280 `CRLReason` code.
    pub reason_code: Option<u8>,
}

/// An active lineage whose newest certificate ends soon (or has ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCertificate {
    pub id: CertificateId,
    pub workspace_id: Option<WorkspaceId>,
    pub serial: Serial,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// A revoked certificate as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    pub serial: Serial,
    pub revoked_at: DateTime<Utc>,
    pub reason_code: Option<u8>,
}

/// What a CRL lists now: the revoked certificates not yet expired, and the stream sequence of the
/// newest revocation (0: none), which numbers the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    pub number: u64,
    pub revoked: Vec<RevokedSerial>,
}

/// Which lineages a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    pub entity_id: Option<String>,
    /// `active`, `revoked` or `expired`.
    pub status: Option<String>,
}

const CERTIFICATE_COLUMNS: &str = "id, workspace_id, entity_kind, entity_id, profile, common_name, subject, \
     key_custody, status, current_serial, not_after, revoked_at, reason, created_at, updated_at, version";

const SERIAL_COLUMNS: &str =
    "serial, certificate_id, workspace_id, not_before, not_after, certificate, revoked_at, reason_code";

fn parse_serial(text: &str) -> Result<Serial, ProjectionError> {
    Serial::parse(text).map_err(|e| ProjectionError::Corrupt {
        what: "a certificate serial".into(),
        source: e.into(),
    })
}

fn certificate_view(row: &Row) -> Result<CertificateView, ProjectionError> {
    let serial: String = row.get(9);
    Ok(CertificateView {
        id: CertificateId(row.get(0)),
        workspace_id: WorkspaceId(row.get(1)),
        entity_kind: row.get(2),
        entity_id: row.get(3),
        profile: row.get(4),
        common_name: row.get(5),
        subject: row.get(6),
        key_custody: row.get(7),
        status: row.get(8),
        serial: parse_serial(&serial)?,
        not_after: row.get(10),
        revoked_at: row.get(11),
        reason: row.get(12),
        created_at: row.get(13),
        updated_at: row.get(14),
        version: row.get::<_, i64>(15) as u64,
    })
}

fn serial_view(row: &Row) -> Result<CertificateSerialView, ProjectionError> {
    let serial: String = row.get(0);
    Ok(CertificateSerialView {
        serial: parse_serial(&serial)?,
        certificate_id: CertificateId(row.get(1)),
        workspace_id: row.get::<_, Option<uuid::Uuid>>(2).map(WorkspaceId),
        not_before: row.get(3),
        not_after: row.get(4),
        certificate: row.get(5),
        revoked_at: row.get(6),
        reason_code: row.get::<_, Option<i16>>(7).map(|c| c as u8),
    })
}

impl ReadModels {
    /// A workspace's certificate lineages, oldest first, filtered.
    pub async fn certificates(
        &self,
        workspace: WorkspaceId,
        filter: &CertificateFilter,
        page: PageRequest,
    ) -> Result<Page<CertificateView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificates
                 WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
                   AND ($3::text IS NULL OR entity_id = $3) AND ($4::text IS NULL OR status = $4)
                 ORDER BY id LIMIT $5"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &workspace.as_uuid(),
                    &page.after,
                    &filter.entity_id,
                    &filter.status,
                    &limit,
                ],
            )
            .await?;
        let items = rows.iter().map(certificate_view).collect::<Result<Vec<_>, _>>()?;
        Ok(paged(items, page.limit, |c| c.id.as_uuid()))
    }

    /// One lineage of a workspace.
    pub async fn certificate(
        &self,
        workspace: WorkspaceId,
        id: CertificateId,
    ) -> Result<Option<CertificateView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE workspace_id = $1 AND id = $2"
            ))
            .await?;
        let row = client
            .query_opt(&statement, &[&workspace.as_uuid(), &id.as_uuid()])
            .await?;
        row.as_ref().map(certificate_view).transpose()
    }

    /// The certificate with `serial`, whatever its workspace (the caller checks that).
    pub async fn certificate_serial(
        &self,
        serial: &Serial,
    ) -> Result<Option<CertificateSerialView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {SERIAL_COLUMNS} FROM certificate_serials WHERE serial = $1"
            ))
            .await?;
        let row = client.query_opt(&statement, &[&serial.to_string()]).await?;
        row.as_ref().map(serial_view).transpose()
    }

    /// The lineages of an entity that are still active, oldest first: in a workspace, or among the
    /// platform's own certificates (`None`).
    pub async fn active_certificates_of(
        &self,
        scope: Option<WorkspaceId>,
        entity_id: &str,
    ) -> Result<Vec<CertificateId>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id FROM certificates
                 WHERE workspace_id IS NOT DISTINCT FROM $1 AND entity_id = $2 AND status = 'active'
                 ORDER BY id",
            )
            .await?;
        let rows = client
            .query(&statement, &[&scope.map(|w| w.as_uuid()), &entity_id])
            .await?;
        Ok(rows.iter().map(|r| CertificateId(r.get(0))).collect())
    }

    /// Active lineages whose newest certificate has expired by `now`, or ends within `window` of it and
    /// within the last third of its lifetime (so a short-lived certificate is not renewed on every
    /// look): the soonest first, at most `limit`. A certificate's lifetime is its validity less
    /// `backdate`, the time it was made to start before it was issued.
    pub async fn certificates_due(
        &self,
        now: DateTime<Utc>,
        window: std::time::Duration,
        backdate: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueCertificate>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached(
                "SELECT c.id, c.workspace_id, c.current_serial, s.not_before, s.not_after
                 FROM certificates c JOIN certificate_serials s ON s.serial = c.current_serial
                 WHERE c.status = 'active'
                   AND c.not_after <= $1::timestamptz + make_interval(secs => $2::float8)
                   AND c.not_after <= $1::timestamptz + LEAST(
                         make_interval(secs => $2::float8),
                         (s.not_after - s.not_before - make_interval(secs => $3::float8)) / 3)
                 ORDER BY c.not_after, c.id
                 LIMIT $4",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &now,
                    &window.as_secs_f64(),
                    &backdate.as_secs_f64(),
                    &i64::from(limit),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let serial: String = row.get(2);
                Ok(DueCertificate {
                    id: CertificateId(row.get(0)),
                    workspace_id: row.get::<_, Option<uuid::Uuid>>(1).map(WorkspaceId),
                    serial: parse_serial(&serial)?,
                    not_before: row.get(3),
                    not_after: row.get(4),
                })
            })
            .collect()
    }

    /// The revoked certificates not expired at `now`, and the number of the CRL that lists them.
    pub async fn revocations(&self, now: DateTime<Utc>) -> Result<Revocations, ProjectionError> {
        let mut client = self.pool().get().await?;
        // One snapshot for the number and the list.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let number = tx
            .query_one(
                "SELECT COALESCE(MAX(revoked_sequence), 0) FROM certificate_serials",
                &[],
            )
            .await?
            .get::<_, i64>(0) as u64;
        let rows = tx
            .query(
                "SELECT serial, revoked_at, reason_code FROM certificate_serials
                 WHERE revoked_sequence IS NOT NULL AND not_after > $1
                 ORDER BY revoked_sequence, serial",
                &[&now],
            )
            .await?;
        tx.commit().await?;
        let revoked = rows
            .iter()
            .map(|row| {
                let serial: String = row.get(0);
                Ok(RevokedSerial {
                    serial: parse_serial(&serial)?,
                    revoked_at: row.get(1),
                    reason_code: row.get::<_, Option<i16>>(2).map(|c| c as u8),
                })
            })
            .collect::<Result<Vec<_>, ProjectionError>>()?;
        Ok(Revocations { number, revoked })
    }
}
