use chrono::{DateTime, Utc};

use super::event::{Entity, RevocationReason};
use super::profile::{Profile, Subject};
use crate::ids::{CertificateId, WorkspaceId};
use crate::values::SecretHash;

/// Where the certificate's private key is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyCustody {
    /// The authority generated it and keeps it, sealed, under `key_name` until the certificate is
    /// revoked or has expired, for one-time downloads.
    Authority { key_name: String },
    /// The holder generated it and sent a CSR: the platform never had it.
    Holder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateCommand {
    /// Records a certificate the authority has just signed (signing is I/O: it happens before, and this
    /// checks that the certificate is what the profile allows and what the command says).
    Issue {
        id: CertificateId,
        /// `None`: a certificate of the platform's own (its API server, its agent channel), which no
        /// workspace holds.
        workspace: Option<WorkspaceId>,
        entity: Entity,
        profile: Profile,
        subject: Subject,
        certificate: String,
        key: KeyCustody,
    },
    /// Records a new certificate for the same subject and key (a new serial); the previous ones stay
    /// valid until they expire.
    Renew {
        certificate: String,
    },
    Revoke {
        reason: RevocationReason,
    },
    /// Marks the lineage expired once its newest certificate has.
    Expire,
    /// A one-time token for downloading the certificate with its authority-held key.
    IssueDownloadToken {
        token: SecretHash,
        expires_at: DateTime<Utc>,
    },
    /// Spends the download token: the bundle may be handed over once.
    RedeemDownloadToken {
        token: SecretHash,
    },
}
