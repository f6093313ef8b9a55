//! Certificates the platform's authority issues. The profiles bound what each kind of entity's
//! certificate may say; the `Certificate` aggregate is one lineage (a certificate and its renewals,
//! one entity, profile and key) through issue, renewal, revocation with an RFC 5280 reason, expiry, and
//! one-time downloads of an authority-held key. Signing is the authority's (I/O, before the command);
//! deciding checks that the signed certificate is what the profile allows and what the command says.

mod command;
mod error;
mod event;
mod facts;
mod profile;
mod serial;
mod state;

pub use command::{CertificateCommand, KeyCustody};
pub use error::CertificateError;
pub use event::{
    CertificateDownloadTokenIssued, CertificateDownloaded, CertificateEvent, CertificateExpired,
    CertificateIssued, CertificateRenewed, CertificateRevoked, ENTITY_ID_MAX, Entity, EntityKind, Issuance,
    RevocationReason,
};
pub use facts::{CertificateFacts, FactsError};
pub use profile::{COMMON_NAME_MAX, DNS_NAME_MAX, NAMES_MAX, Profile, ProfileError, Subject, URI_MAX};
pub use serial::{SERIAL_MAX_OCTETS, Serial, SerialError};
pub use state::{Certificate, CertificateStatus};

use chrono::Duration;

use crate::aggregate::{Aggregate, CommandContext};
use crate::user::PendingToken;

/// The longest a download token may wait to be used.
pub const DOWNLOAD_TOKEN_MAX: Duration = Duration::hours(24);
/// How much earlier than the decision a certificate may start (the authority backdates a little for
/// clocks that lag, and signs a moment before the command is decided).
const START_SLACK: Duration = Duration::minutes(10);

/// The facts of `pem`, checked against what a command says of it.
fn checked(
    pem: &str,
    profile: Profile,
    subject: &Subject,
    ctx: &CommandContext,
) -> Result<Issuance, CertificateError> {
    let facts = CertificateFacts::of_pem(pem)?;
    if facts.is_ca {
        return Err(CertificateError::Mismatch("it is a CA certificate".into()));
    }
    if facts.subject != *subject {
        return Err(CertificateError::Mismatch(format!(
            "it names {:?}, not {:?}",
            facts.subject, subject
        )));
    }
    if facts.not_before > ctx.now || facts.not_before < ctx.now - START_SLACK || facts.not_after <= ctx.now {
        return Err(CertificateError::Mismatch(
            "its validity does not start now".into(),
        ));
    }
    let lifetime = (facts.not_after - ctx.now).to_std().unwrap_or_default();
    profile.check(subject, lifetime)?;
    Ok(Issuance {
        serial: facts.serial,
        not_before: facts.not_before,
        not_after: facts.not_after,
        certificate: pem.to_owned(),
    })
}

impl Aggregate for Certificate {
    const TYPE: &'static str = "certificate";
    type Command = CertificateCommand;
    type Event = CertificateEvent;
    type Error = CertificateError;

    fn decide(
        &self,
        command: CertificateCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<CertificateEvent>, CertificateError> {
        use CertificateCommand as C;
        use CertificateStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Issue {
                    id,
                    workspace,
                    entity,
                    profile,
                    subject,
                    certificate,
                    key,
                },
            ) => {
                if !Entity::is_valid_id(&entity.id) {
                    return Err(CertificateError::EntityId(entity.id));
                }
                let issuance = checked(&certificate, profile, &subject, ctx)?;
                Ok(vec![CertificateEvent::Issued(CertificateIssued {
                    id,
                    workspace,
                    entity,
                    profile,
                    subject,
                    issuance,
                    key,
                    issued_by: ctx.actor.clone(),
                    issued_at: ctx.now,
                })])
            }
            (S::New, _) => Err(CertificateError::NotFound),
            (_, C::Issue { .. }) => Err(CertificateError::AlreadyExists),
            (S::Revoked, C::Revoke { .. }) => Ok(vec![]),
            (S::Revoked, _) => Err(CertificateError::Revoked),
            (S::Expired, C::Expire) => Ok(vec![]),
            (S::Expired, _) => Err(CertificateError::Expired),
            (S::Active, C::Renew { certificate }) => {
                let (Some(profile), Some(previous)) = (self.profile, self.current()) else {
                    return Err(CertificateError::NotFound);
                };
                let issuance = checked(&certificate, profile, &self.subject, ctx)?;
                if self.issuance(&issuance.serial).is_some() {
                    return Err(CertificateError::Mismatch(
                        "a renewal has a new serial number".into(),
                    ));
                }
                Ok(vec![CertificateEvent::Renewed(CertificateRenewed {
                    previous_serial: previous.serial.clone(),
                    issuance,
                    renewed_by: ctx.actor.clone(),
                    renewed_at: ctx.now,
                })])
            }
            (S::Active, C::Revoke { reason }) => Ok(vec![CertificateEvent::Revoked(CertificateRevoked {
                serials: self.unexpired(ctx.now).map(|i| i.serial.clone()).collect(),
                reason,
                revoked_by: ctx.actor.clone(),
                revoked_at: ctx.now,
            })]),
            (S::Active, C::Expire) => match self.current() {
                Some(current) if current.not_after <= ctx.now => {
                    Ok(vec![CertificateEvent::Expired(CertificateExpired {
                        serial: current.serial.clone(),
                        expired_at: ctx.now,
                    })])
                }
                _ => Err(CertificateError::NotExpired),
            },
            (S::Active, C::IssueDownloadToken { token, expires_at }) => {
                if !matches!(self.key, Some(KeyCustody::Authority { .. })) {
                    return Err(CertificateError::KeyNotHeld);
                }
                if expires_at <= ctx.now || expires_at > ctx.now + DOWNLOAD_TOKEN_MAX {
                    return Err(CertificateError::DownloadTokenLifetime);
                }
                Ok(vec![CertificateEvent::DownloadTokenIssued(
                    CertificateDownloadTokenIssued {
                        token,
                        expires_at,
                        issued_by: ctx.actor.clone(),
                        issued_at: ctx.now,
                    },
                )])
            }
            (S::Active, C::RedeemDownloadToken { token }) => match (&self.download, self.current()) {
                (Some(pending), Some(current)) if pending.accepts(&token, ctx.now) => {
                    Ok(vec![CertificateEvent::Downloaded(CertificateDownloaded {
                        serial: current.serial.clone(),
                        downloaded_by: ctx.actor.clone(),
                        downloaded_at: ctx.now,
                    })])
                }
                _ => Err(CertificateError::InvalidDownloadToken),
            },
        }
    }

    fn apply(&mut self, event: &CertificateEvent) {
        match event {
            CertificateEvent::Issued(e) => {
                self.status = CertificateStatus::Active;
                self.id = Some(e.id);
                self.workspace = e.workspace;
                self.entity = Some(e.entity.clone());
                self.profile = Some(e.profile);
                self.subject = e.subject.clone();
                self.key = Some(e.key.clone());
                self.issuances = vec![e.issuance.clone()];
            }
            CertificateEvent::Renewed(e) => self.issuances.push(e.issuance.clone()),
            CertificateEvent::Revoked(e) => {
                self.status = CertificateStatus::Revoked;
                self.revoked = Some((e.reason, e.revoked_at));
                self.download = None;
            }
            CertificateEvent::Expired(_) => {
                self.status = CertificateStatus::Expired;
                self.download = None;
            }
            CertificateEvent::DownloadTokenIssued(e) => {
                self.download = Some(PendingToken {
                    hash: e.token.clone(),
                    expires_at: e.expires_at,
                });
            }
            // One use: the token is spent.
            CertificateEvent::Downloaded(_) => self.download = None,
        }
    }
}

#[cfg(test)]
mod tests;
