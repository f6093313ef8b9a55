//! The platform's certificate authority: a root and an issuing intermediate (created on first start,
//! their keys sealed at rest), certificates issued by profile for keys it generates or for the public
//! key of a verified CSR, CRLs, and a delegated OCSP responder. It keeps no state of its own: which
//! certificates exist and which are revoked is the event log's, told to it by the caller.

mod aia;
mod authority;
mod csr;
mod ocsp;
mod seal;

pub use authority::{
    Authority, AuthorityMaterial, BACKDATE, CaUrls, Crl, Issued, KeySource, RESPONDER_LIFETIME,
    RESPONDER_RENEW_BEFORE, RevokedEntry, der_of, pem, public_key_of_certificate, public_key_of_key,
};
pub use csr::{CSR_MAX_BYTES, CsrRequest, read_csr};
pub use ocsp::{OCSP_MAX_BYTES, OCSP_MAX_REQUESTS, OCSP_VALIDITY, OcspStatus, ocsp_request_serials};
pub use seal::{FileKeyStore, KeyStore, KeyStoreError, MemoryKeyStore, SealError, SealedKeys, Sealer};

use prism_domain::certificate::ProfileError;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The request asks for what its profile does not allow.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The request is malformed or asks for what the authority does not issue (a CSR that does not
    /// verify, an extension it does not grant).
    #[error("{0}")]
    Request(String),
    /// The stored authority does not load (a certificate or key that does not parse).
    #[error("the certificate authority's material is unusable: {0}")]
    Material(String),
    #[error("signing failed: {0}")]
    Signing(#[from] rcgen::Error),
    #[error("{0}")]
    Internal(String),
}
