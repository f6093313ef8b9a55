//! The OCSP responder (RFC 6960): answers, for each certificate a request names by its `CertID`,
//! whether it is good, revoked (when and why) or unknown, in a response signed by the delegated
//! responder certificate (EKU `OCSPSigning`, issued by the intermediate, sent with the intermediate),
//! echoing the request's nonce.
//! `CertID`s made with SHA-1 (OpenSSL's default) and SHA-256 are both recognised.

use chrono::{DateTime, Utc};
use der::asn1::BitString;
use der::{Decode as _, Encode as _};
use prism_domain::certificate::Serial;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::{Authority, CaError};

const SHA1: der::asn1::ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_1;
const SHA256: der::asn1::ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_256;
const ECDSA_WITH_SHA256: der::asn1::ObjectIdentifier = const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
const NONCE: der::asn1::ObjectIdentifier = const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;

/// Most certificates one request may ask about.
pub const OCSP_MAX_REQUESTS: usize = 16;
/// Largest request accepted.
pub const OCSP_MAX_BYTES: usize = 8 * 1024;
/// How long a response may be relied on (`nextUpdate`).
pub const OCSP_VALIDITY: chrono::Duration = chrono::Duration::hours(1);

/// What the platform knows of one serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    Good,
    Revoked {
        at: DateTime<Utc>,
        /// RFC 5280 `CRLReason` code.
        reason: Option<u8>,
    },
    /// Not a certificate this authority issued.
    Unknown,
}

/// The issuing CA as `CertID`s name it: hashes of its subject name and of its public key.
#[derive(Debug, Clone)]
pub(crate) struct IssuerIds {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerIds {
    pub(crate) fn of(issuer_der: &[u8]) -> Result<Self, CaError> {
        let issuer = Certificate::from_der(issuer_der)
            .map_err(|e| CaError::Material(format!("the intermediate does not parse: {e}")))?;
        let name = issuer
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|e| CaError::Internal(e.to_string()))?;
        let key = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let hash = |algorithm: &'static ring::digest::Algorithm, data: &[u8]| {
            ring::digest::digest(algorithm, data).as_ref().to_vec()
        };
        Ok(Self {
            sha1: (
                hash(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &name),
                hash(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &key),
            ),
            sha256: (
                hash(&ring::digest::SHA256, &name),
                hash(&ring::digest::SHA256, &key),
            ),
        })
    }

    /// Whether `id` names a certificate of this issuer.
    fn names_us(&self, id: &CertId) -> bool {
        let (name, key) = match id.hash_algorithm.oid {
            SHA1 => &self.sha1,
            SHA256 => &self.sha256,
            _ => return false,
        };
        id.issuer_name_hash.as_bytes() == name.as_slice() && id.issuer_key_hash.as_bytes() == key.as_slice()
    }
}

/// The serials a DER OCSP request asks about (none when it does not parse), so that a caller can look
/// them up before answering with [`Authority::respond_ocsp`].
pub fn ocsp_request_serials(request: &[u8]) -> Vec<Serial> {
    if request.len() > OCSP_MAX_BYTES {
        return Vec::new();
    }
    let Ok(parsed) = OcspRequest::from_der(request) else {
        return Vec::new();
    };
    parsed
        .tbs_request
        .request_list
        .iter()
        .take(OCSP_MAX_REQUESTS)
        .filter_map(|r| Serial::from_bytes(r.req_cert.serial_number.as_bytes()).ok())
        .collect()
}

impl Authority {
    /// The DER response to the DER request `request`, asking `lookup` about each serial of ours. A
    /// request that does not parse is answered `malformedRequest`, as RFC 6960 says, not refused.
    pub fn respond_ocsp(
        &self,
        request: &[u8],
        lookup: impl Fn(&Serial) -> OcspStatus,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, CaError> {
        let encode = |response: OcspResponse| {
            response
                .to_der()
                .map_err(|e| CaError::Internal(format!("an OCSP response does not encode: {e}")))
        };
        let parsed = (request.len() <= OCSP_MAX_BYTES)
            .then(|| OcspRequest::from_der(request).ok())
            .flatten();
        let Some(parsed) = parsed else {
            return encode(OcspResponse::malformed_request());
        };
        let asked = &parsed.tbs_request.request_list;
        if asked.is_empty() || asked.len() > OCSP_MAX_REQUESTS {
            return encode(OcspResponse::malformed_request());
        }
        let time = |at: DateTime<Utc>| -> Result<OcspGeneralizedTime, CaError> {
            let seconds = u64::try_from(at.timestamp()).map_err(|e| CaError::Internal(e.to_string()))?;
            let system = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
            OcspGeneralizedTime::try_from(system).map_err(|e| CaError::Internal(e.to_string()))
        };
        let mut responses = Vec::with_capacity(asked.len());
        for single in asked {
            let id = &single.req_cert;
            let status = match Serial::from_bytes(id.serial_number.as_bytes()) {
                Ok(serial) if self.ids.names_us(id) => lookup(&serial),
                _ => OcspStatus::Unknown,
            };
            let cert_status = match status {
                OcspStatus::Good => CertStatus::good(),
                OcspStatus::Unknown => CertStatus::unknown(),
                OcspStatus::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                    revocation_time: time(at)?,
                    revocation_reason: reason.and_then(crl_reason),
                }),
            };
            responses.push(SingleResponse {
                cert_id: id.clone(),
                cert_status,
                this_update: time(now)?,
                next_update: Some(time(now + OCSP_VALIDITY)?),
                single_extensions: None,
            });
        }
        // The nonce comes back as it came (RFC 8954), binding the answer to this request.
        let nonce: Vec<_> = parsed
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == NONCE)
            .cloned()
            .collect();
        let responder = Certificate::from_der(&self.responder)
            .map_err(|e| CaError::Material(format!("the responder certificate does not parse: {e}")))?;
        let intermediate = Certificate::from_der(self.intermediate_der())
            .map_err(|e| CaError::Material(format!("the intermediate does not parse: {e}")))?;
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByName(responder.tbs_certificate.subject.clone()),
            produced_at: time(now)?,
            responses,
            response_extensions: (!nonce.is_empty()).then(|| Extensions::from(nonce)),
        };
        let signed = data
            .to_der()
            .map_err(|e| CaError::Internal(format!("OCSP response data does not encode: {e}")))?;
        let signature = self.responder_sign(&signed)?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            signature: BitString::from_bytes(&signature).map_err(|e| CaError::Internal(e.to_string()))?,
            // The responder and the intermediate above it: a client that trusts only the root can
            // build the path.
            certs: Some(vec![responder, intermediate]),
        };
        encode(OcspResponse::successful(basic).map_err(|e| CaError::Internal(e.to_string()))?)
    }
}

fn crl_reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        0 => CrlReason::Unspecified,
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}
