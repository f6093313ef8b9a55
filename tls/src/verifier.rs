//! Client certificate verification: WebPKI, then the revoked set.

use std::sync::Arc;

use prism_domain::certificate::Serial;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::{RevokedSerials, TlsError};

/// rustls's WebPKI client verifier, without CRLs, followed by a look-up of the end entity's serial in
/// [`RevokedSerials`]: a revoked certificate is refused with
/// `InvalidCertificate(CertificateError::Revoked)`.
///
/// WebPKI's own CRL support reads its CRLs once, when the verifier is built; the platform revokes at
/// any moment, so the check is a shared set read on every handshake instead. Only the end entity is
/// looked up: the platform revokes leaves, and an intermediate is replaced, not revoked.
#[derive(Debug)]
pub struct RevocationCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Arc<RevokedSerials>,
}

impl RevocationCheckingVerifier {
    /// A verifier requiring a client certificate that chains (through the intermediates the client
    /// sends) to one of `roots` (DER), with the signature algorithms of `provider`.
    pub fn new(
        roots: &[CertificateDer<'static>],
        revoked: Arc<RevokedSerials>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        Ok(Self::wrap(webpki_verifier(roots, provider)?, revoked))
    }

    /// Adds the revocation check to any verifier (one built with other WebPKI options, say).
    pub fn wrap(inner: Arc<dyn ClientCertVerifier>, revoked: Arc<RevokedSerials>) -> Self {
        Self { inner, revoked }
    }

    /// The revoked set this verifier reads.
    pub fn revoked(&self) -> &Arc<RevokedSerials> {
        &self.revoked
    }
}

/// rustls's WebPKI client verifier over `roots`, with client authentication required and no CRLs.
pub(crate) fn webpki_verifier(
    roots: &[CertificateDer<'static>],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(TlsError::Root)?;
    }
    // The provider is named here rather than taken from the process default: see the crate's docs.
    Ok(WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider).build()?)
}

/// The serial of a DER certificate, as the platform names it; `None` when the certificate does not
/// parse or its serial is zero or longer than 20 octets (RFC 5280), which the platform never issues.
pub fn serial_of(certificate: &CertificateDer<'_>) -> Option<Serial> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    Serial::from_bytes(parsed.raw_serial()).ok()
}

impl ClientCertVerifier for RevocationCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain first: a certificate from elsewhere is refused as such, whatever its serial.
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.revoked.is_revoked_bytes(parsed.raw_serial()) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}
