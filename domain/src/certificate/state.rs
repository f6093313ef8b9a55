use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::KeyCustody;
use super::event::{Entity, Issuance, RevocationReason};
use super::profile::{Profile, Subject};
use super::serial::Serial;
use crate::ids::{CertificateId, WorkspaceId};
use crate::user::PendingToken;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// No event yet: the certificate does not exist.
    #[default]
    New,
    Active,
    Revoked,
    Expired,
}

/// A certificate lineage: the first certificate and its renewals, for one entity, profile and key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub status: CertificateStatus,
    pub id: Option<CertificateId>,
    pub workspace: Option<WorkspaceId>,
    pub entity: Option<Entity>,
    pub profile: Option<Profile>,
    pub subject: Subject,
    pub key: Option<KeyCustody>,
    /// Every certificate of the lineage, oldest first; the last is the current one.
    pub issuances: Vec<Issuance>,
    pub revoked: Option<(RevocationReason, DateTime<Utc>)>,
    /// The outstanding one-time download token, if any.
    pub download: Option<PendingToken>,
}

impl Certificate {
    /// The newest certificate of the lineage.
    pub fn current(&self) -> Option<&Issuance> {
        self.issuances.last()
    }

    /// The certificates of the lineage still valid at `now` (before their end), newest last.
    pub fn unexpired(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Issuance> {
        self.issuances.iter().filter(move |i| now < i.not_after)
    }

    /// The issuance with `serial`, if it is one of this lineage's.
    pub fn issuance(&self, serial: &Serial) -> Option<&Issuance> {
        self.issuances.iter().find(|i| i.serial == *serial)
    }
}
