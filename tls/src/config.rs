//! The server's rustls configuration: identity, client authentication, ALPN.

use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;

use crate::verifier::RevocationCheckingVerifier;
use crate::{RevokedSerials, TlsError};

/// The server's certificate chain (leaf first, then the intermediate) and its private key.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ServerIdentity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Reads the chain (every `CERTIFICATE` block, leaf first) and the private key (the first key
    /// block: PKCS#8 `PRIVATE KEY` as the platform's authority writes it; SEC1 and PKCS#1 are read
    /// too).
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::EmptyChain);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| TlsError::Pem {
            what: "private key",
            source,
        })?;
        Ok(Self { chain, key })
    }

    /// An identity from DER: the chain leaf first, and its key.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
    }
}

/// Whether and how clients authenticate.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No client certificate is asked for (the HTTPS API: users authenticate with tokens).
    None,
    /// A client certificate chaining to one of `roots` is required, and refused when its serial is
    /// in `revoked`; connections made with it are closed when it is revoked later.
    Required {
        /// Trust anchors (DER): the platform's root certificate.
        roots: Vec<CertificateDer<'static>>,
        /// The revoked serials, shared with whatever follows the revocations.
        revoked: Arc<RevokedSerials>,
    },
}

/// The application protocols the server offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `h2` only: gRPC servers. grpc-go clients (the Cocos agent) insist on ALPN `h2`, and a client
    /// offering only `http/1.1` is refused at the handshake.
    Http2,
    /// `h2` and `http/1.1`, in that order of preference: the HTTPS API.
    Http2AndHttp1,
}

impl Alpn {
    /// The protocol identifiers, in the server's order of preference.
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Self::Http2 => vec![b"h2".to_vec()],
            Self::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// A server's TLS configuration, ready for [`Server`](crate::Server).
#[derive(Debug, Clone)]
pub struct TlsServerConfig {
    config: Arc<ServerConfig>,
    revoked: Option<Arc<RevokedSerials>>,
    alpn: Alpn,
}

impl TlsServerConfig {
    /// Builds the configuration: ring as the crypto provider (never the process default), TLS 1.3
    /// and 1.2, the given identity, client authentication and ALPN.
    ///
    /// Under client authentication, session resumption is off (no session cache, no TLS 1.3
    /// tickets): a resumed session skips the client certificate verifier, so a certificate revoked
    /// since its first handshake could otherwise come back without being checked. The serving loop
    /// checks the set again after every handshake as well.
    pub fn new(identity: ServerIdentity, client_auth: ClientAuth, alpn: Alpn) -> Result<Self, TlsError> {
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let (builder, revoked) = match client_auth {
            ClientAuth::None => (builder.with_no_client_auth(), None),
            ClientAuth::Required { roots, revoked } => {
                let verifier = RevocationCheckingVerifier::new(&roots, Arc::clone(&revoked), provider)?;
                (
                    builder.with_client_cert_verifier(Arc::new(verifier)),
                    Some(revoked),
                )
            }
        };
        let mut config = builder.with_single_cert(identity.chain, identity.key)?;
        config.alpn_protocols = alpn.protocols();
        if revoked.is_some() {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Self {
            config: Arc::new(config),
            revoked,
            alpn,
        })
    }

    /// The rustls configuration, for a caller with its own acceptor.
    pub fn rustls(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The revoked set, when clients authenticate.
    pub fn revoked(&self) -> Option<&Arc<RevokedSerials>> {
        self.revoked.as_ref()
    }

    /// The ALPN protocols offered.
    pub fn alpn(&self) -> Alpn {
        self.alpn
    }
}
