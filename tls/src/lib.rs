//! TLS and mutual-TLS serving for the platform's listeners: the HTTPS API (`h2` and `http/1.1`) and
//! the gRPC servers agents and managers dial (`h2` only — grpc-go refuses a server without ALPN `h2`).
//!
//! Client certificates come from the platform's own authority and can be revoked at any moment, so
//! revocation is live rather than a CRL read at start-up:
//!
//! * [`RevokedSerials`] holds the revoked serials and the open connections by client serial;
//!   [`RevokedSerials::revoke`] adds serials and closes every open connection made with one of them.
//! * [`RevocationCheckingVerifier`] is rustls's WebPKI verifier (no CRLs) with one more rule: an end
//!   entity whose serial is revoked is refused at the handshake.
//! * [`TlsServerConfig`] builds the rustls configuration (ring only, TLS 1.2 and 1.3, no session
//!   resumption under client authentication so that every connection is verified afresh).
//! * [`Server`] / [`serve`] run the accept loop: handshakes with a timeout, each connection served by
//!   hyper (HTTP/2, and HTTP/1.1 where offered) through any cloneable tower service — an
//!   `axum::Router`, a tonic-generated server — with the caller's [`PeerCertificate`] in every
//!   request's extensions.
//!
//! Nothing here relies on rustls's process-wide `CryptoProvider`: with both ring and aws-lc-rs in
//! the build it cannot be chosen automatically, and picking it is the binary's business.

#![warn(missing_docs)]

mod config;
mod revocation;
mod serve;
mod verifier;

pub use config::{Alpn, ClientAuth, IdentityHandle, ServerIdentity, TlsServerConfig};
pub use revocation::{RevokedSerials, Tracked};
pub use serve::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_GRACE, OnRefusal, PeerAddr, PeerCertificate, Refusal, Server,
    serve,
};
pub use verifier::{RevocationCheckingVerifier, serial_of};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The server's certificate chain PEM holds no certificate.
    #[error("the certificate chain holds no certificate")]
    EmptyChain,
    /// A PEM document could not be read.
    #[error("unreadable {what}: {source}")]
    Pem {
        /// What was being read (`certificate chain`, `private key`).
        what: &'static str,
        /// The PEM reader's complaint.
        source: rustls::pki_types::pem::Error,
    },
    /// No client certificate roots were given for client authentication.
    #[error("client authentication needs at least one root certificate")]
    NoRoots,
    /// A client root certificate is not one WebPKI can use as a trust anchor.
    #[error("unusable client root certificate: {0}")]
    Root(rustls::Error),
    /// rustls's client-certificate verifier refused its configuration.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration (a key that does not match the certificate, no common
    /// protocol version).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}
