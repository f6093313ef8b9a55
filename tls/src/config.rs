//! The server's rustls configuration: identity, client authentication, ALPN.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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

/// The certificate a server presents, replaceable while it serves: a renewed certificate is
/// presented from the next handshake on, without a restart (connections open keep the old one).
pub struct IdentityHandle {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for IdentityHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityHandle").finish_non_exhaustive()
    }
}

impl IdentityHandle {
    fn new(identity: ServerIdentity, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let certified = certified(identity, &provider)?;
        Ok(Self {
            current: RwLock::new(certified),
            provider,
        })
    }

    /// Presents `identity` from the next handshake on; an identity whose key is not its
    /// certificate's is refused and the current one kept.
    pub fn replace(&self, identity: ServerIdentity) -> Result<(), TlsError> {
        let certified = certified(identity, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = certified;
        Ok(())
    }

    /// The certificate presented now (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }
}

fn certified(identity: ServerIdentity, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = provider.key_provider.load_private_key(identity.key)?;
    let certified = CertifiedKey::new(identity.chain, key);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

impl ResolvesServerCert for IdentityHandle {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
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
    identity: Arc<IdentityHandle>,
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
                let verifier =
                    RevocationCheckingVerifier::new(&roots, Arc::clone(&revoked), Arc::clone(&provider))?;
                (
                    builder.with_client_cert_verifier(Arc::new(verifier)),
                    Some(revoked),
                )
            }
        };
        let identity = Arc::new(IdentityHandle::new(identity, Arc::clone(&provider))?);
        let mut config = builder.with_cert_resolver(Arc::clone(&identity) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.protocols();
        if revoked.is_some() {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Self {
            config: Arc::new(config),
            identity,
            revoked,
            alpn,
        })
    }

    /// The rustls configuration, for a caller with its own acceptor.
    pub fn rustls(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The certificate the server presents, to replace it when it is renewed.
    pub fn identity(&self) -> &Arc<IdentityHandle> {
        &self.identity
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
