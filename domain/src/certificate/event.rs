use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::KeyCustody;
use super::profile::{Profile, Subject};
use super::serial::Serial;
use crate::aggregate::DomainEvent;
use crate::ids::{Actor, CertificateId, WorkspaceId};
use crate::values::SecretHash;

/// Longest entity id.
pub const ENTITY_ID_MAX: usize = 128;

/// What kind of thing a certificate identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Cvm,
    Computation,
    Service,
    User,
}

impl EntityKind {
    pub const ALL: [EntityKind; 4] = [Self::Cvm, Self::Computation, Self::Service, Self::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cvm => "cvm",
            Self::Computation => "computation",
            Self::Service => "service",
            Self::User => "user",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The entity a certificate identifies: its kind and its id (a CVM's, a service's name, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub kind: EntityKind,
    pub id: String,
}

impl Entity {
    /// An entity id is 1–128 characters from letters, digits and `._:@-`.
    pub fn is_valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= ENTITY_ID_MAX
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c))
    }
}

/// Why a certificate was revoked: RFC 5280's `CRLReason` (without `removeFromCRL`, which only delta
/// CRLs use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 9] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The `CRLReason` code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key_compromise",
            Self::CaCompromise => "ca_compromise",
            Self::AffiliationChanged => "affiliation_changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation_of_operation",
            Self::CertificateHold => "certificate_hold",
            Self::PrivilegeWithdrawn => "privilege_withdrawn",
            Self::AaCompromise => "aa_compromise",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// One certificate of a lineage: its serial, validity and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Issuance {
    pub serial: Serial,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The certificate, PEM.
    pub certificate: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum CertificateEvent {
    Issued(CertificateIssued),
    Renewed(CertificateRenewed),
    Revoked(CertificateRevoked),
    Expired(CertificateExpired),
    DownloadTokenIssued(CertificateDownloadTokenIssued),
    Downloaded(CertificateDownloaded),
}

/// The authority issued a certificate for an entity, by profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateIssued {
    pub id: CertificateId,
    /// Absent for a certificate of the platform's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceId>,
    pub entity: Entity,
    pub profile: Profile,
    pub subject: Subject,
    pub issuance: Issuance,
    pub key: KeyCustody,
    pub issued_by: Actor,
    pub issued_at: DateTime<Utc>,
}

/// A new certificate (new serial) for the same subject and key; the earlier ones stay valid until they
/// expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRenewed {
    pub issuance: Issuance,
    pub previous_serial: Serial,
    pub renewed_by: Actor,
    pub renewed_at: DateTime<Utc>,
}

/// Every unexpired certificate of the lineage is revoked: verifiers refuse them from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRevoked {
    pub serials: Vec<Serial>,
    pub reason: RevocationReason,
    pub revoked_by: Actor,
    pub revoked_at: DateTime<Utc>,
}

/// The newest certificate of the lineage has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateExpired {
    pub serial: Serial,
    pub expired_at: DateTime<Utc>,
}

/// A one-time download token was handed out (its hash only is recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateDownloadTokenIssued {
    pub token: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub issued_by: Actor,
    pub issued_at: DateTime<Utc>,
}

/// The certificate and its key were downloaded with the token, which is spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateDownloaded {
    pub serial: Serial,
    pub downloaded_by: Actor,
    pub downloaded_at: DateTime<Utc>,
}

impl DomainEvent for CertificateEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Issued(_) => "issued",
            Self::Renewed(_) => "renewed",
            Self::Revoked(_) => "revoked",
            Self::Expired(_) => "expired",
            Self::DownloadTokenIssued(_) => "download_token_issued",
            Self::Downloaded(_) => "downloaded",
        }
    }
}
