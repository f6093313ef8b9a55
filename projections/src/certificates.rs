use deadpool_postgres::Transaction;
use prism_domain::certificate::{Certificate, CertificateEvent, Issuance, KeyCustody};
use prism_store::Recorded;

use crate::projection_support::{aggregate_uuid, version};
use crate::{CERTIFICATES, Projection, ProjectionError};

/// The `certificates` table (one row per lineage) and `certificate_serials` (one per certificate of a
/// lineage, with its revocation): what lists, lookups by serial, OCSP answers and CRLs read.
#[derive(Debug, Clone, Copy, Default)]
pub struct CertificatesProjection;

async fn insert_serial(
    tx: &Transaction<'_>,
    certificate: uuid::Uuid,
    workspace: Option<uuid::Uuid>,
    issuance: &Issuance,
) -> Result<(), ProjectionError> {
    tx.execute(
        "INSERT INTO certificate_serials (serial, certificate_id, workspace_id, not_before, not_after, certificate)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &issuance.serial.to_string(),
            &certificate,
            &workspace,
            &issuance.not_before,
            &issuance.not_after,
            &issuance.certificate,
        ],
    )
    .await?;
    Ok(())
}

impl Projection for CertificatesProjection {
    type Aggregate = Certificate;

    fn name(&self) -> &'static str {
        CERTIFICATES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["certificate_serials", "certificates"]
    }

    async fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        recorded: &'a Recorded<CertificateEvent>,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(&recorded.meta)?;
        let v = version(&recorded.meta);
        match &recorded.event {
            CertificateEvent::Issued(e) => {
                let custody = match e.key {
                    KeyCustody::Authority { .. } => "authority",
                    KeyCustody::Holder => "holder",
                };
                let subject = serde_json::to_value(&e.subject).expect("a subject serialises");
                tx.execute(
                    "INSERT INTO certificates (id, workspace_id, entity_kind, entity_id, profile, common_name, subject,
                                               key_custody, status, current_serial, not_after, created_at,
                                               updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $11, $12)",
                    &[
                        &id,
                        &e.workspace.map(|w| w.as_uuid()),
                        &e.entity.kind.as_str(),
                        &e.entity.id,
                        &e.profile.as_str(),
                        &e.subject.common_name,
                        &subject,
                        &custody,
                        &e.issuance.serial.to_string(),
                        &e.issuance.not_after,
                        &e.issued_at,
                        &v,
                    ],
                )
                .await?;
                insert_serial(tx, id, e.workspace.map(|w| w.as_uuid()), &e.issuance).await?;
            }
            CertificateEvent::Renewed(e) => {
                let row = tx
                    .query_one(
                        "UPDATE certificates SET current_serial = $2, not_after = $3, updated_at = $4, version = $5
                         WHERE id = $1 RETURNING workspace_id",
                        &[
                            &id,
                            &e.issuance.serial.to_string(),
                            &e.issuance.not_after,
                            &e.renewed_at,
                            &v,
                        ],
                    )
                    .await?;
                insert_serial(tx, id, row.get(0), &e.issuance).await?;
            }
            CertificateEvent::Revoked(e) => {
                tx.execute(
                    "UPDATE certificates SET status = 'revoked', revoked_at = $2, reason = $3, updated_at = $2,
                                             version = $4
                     WHERE id = $1",
                    &[&id, &e.revoked_at, &e.reason.as_str(), &v],
                )
                .await?;
                let serials: Vec<String> = e.serials.iter().map(ToString::to_string).collect();
                let sequence = recorded.meta.sequence as i64;
                tx.execute(
                    "UPDATE certificate_serials SET revoked_at = $2, reason_code = $3, revoked_sequence = $4
                     WHERE certificate_id = $1 AND serial = ANY($5)",
                    &[
                        &id,
                        &e.revoked_at,
                        &i16::from(e.reason.code()),
                        &sequence,
                        &serials,
                    ],
                )
                .await?;
            }
            CertificateEvent::Expired(e) => {
                tx.execute(
                    "UPDATE certificates SET status = 'expired', updated_at = $2, version = $3 WHERE id = $1",
                    &[&id, &e.expired_at, &v],
                )
                .await?;
            }
            CertificateEvent::DownloadTokenIssued(e) => {
                tx.execute(
                    "UPDATE certificates SET updated_at = $2, version = $3 WHERE id = $1",
                    &[&id, &e.issued_at, &v],
                )
                .await?;
            }
            CertificateEvent::Downloaded(e) => {
                tx.execute(
                    "UPDATE certificates SET updated_at = $2, version = $3 WHERE id = $1",
                    &[&id, &e.downloaded_at, &v],
                )
                .await?;
            }
        }
        Ok(())
    }
}
