//! Dialing an agent's participants' API (`agent.AgentService`) over TLS: rustls on ring trusting
//! only the roots given, ALPN `h2` as grpc-go requires, and the connection pinned to the
//! certificate the agent showed first — were the channel to reconnect to another key, the call
//! fails. Both the platform (fresh attestation) and participants (uploads, results) dial this way.

use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint, Uri};

/// Where and how to reach an agent's participants' API.
#[derive(Debug, Clone)]
pub struct AgentEndpoint {
    /// `host:port`.
    pub address: String,
    /// The name its certificate must carry (a DNS name or an IP address).
    pub server_name: String,
    /// The certificates (PEM) its certificate must chain to.
    pub roots_pem: String,
    /// A client certificate chain and key (PEM), for an agent that requires mutual TLS.
    pub client: Option<(String, String)>,
}

/// Why an agent could not be dialled.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("the agent's endpoint is not usable: {0}")]
    Endpoint(String),
    #[error("cannot reach the agent: {0}")]
    Connect(String),
}

/// A channel to the agent, and the DER of the certificate it showed (every later connection of the
/// channel must show the same).
pub async fn dial(endpoint: &AgentEndpoint) -> Result<(Channel, Vec<u8>), DialError> {
    let tls = Arc::new(client_tls(endpoint)?);
    let server_name = ServerName::try_from(endpoint.server_name.clone())
        .map_err(|e| DialError::Endpoint(format!("{}: {e}", endpoint.server_name)))?;
    let uri: Uri = format!("http://{}", endpoint.address)
        .parse()
        .map_err(|_| DialError::Endpoint(endpoint.address.clone()))?;
    // The agent's leaf certificate, as the first connection saw it; later connections must match.
    let seen: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let connector = {
        let address = endpoint.address.clone();
        let seen = seen.clone();
        tower::service_fn(move |_: Uri| {
            let (address, tls, server_name, seen) =
                (address.clone(), tls.clone(), server_name.clone(), seen.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(address.as_str()).await?;
                tcp.set_nodelay(true)?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(server_name, tcp)
                    .await?;
                let leaf = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| leaf.to_vec())
                    .ok_or_else(|| std::io::Error::other("the agent presented no certificate"))?;
                let mut seen = seen.lock().expect("not poisoned");
                match seen.as_ref() {
                    Some(first) if *first != leaf => {
                        return Err(std::io::Error::other("the agent presented another certificate"));
                    }
                    Some(_) => {}
                    None => *seen = Some(leaf),
                }
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        })
    };
    let channel = Endpoint::from(uri)
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .map_err(|e| DialError::Connect(format!("{}: {e}", endpoint.address)))?;
    let leaf = seen
        .lock()
        .expect("not poisoned")
        .clone()
        .ok_or_else(|| DialError::Connect("no TLS session".into()))?;
    Ok((channel, leaf))
}

/// rustls on ring trusting only `roots_pem`, with the client certificate when there is one, offering
/// ALPN h2 as grpc-go requires.
fn client_tls(endpoint: &AgentEndpoint) -> Result<rustls::ClientConfig, DialError> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| DialError::Endpoint(format!("{what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(endpoint.roots_pem.as_bytes()) {
        let certificate = certificate.map_err(|e| invalid("roots", &e))?;
        roots.add(certificate).map_err(|e| invalid("roots", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?
        .with_root_certificates(roots);
    let mut tls = match &endpoint.client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("client certificate", &e))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| invalid("client key", &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid("client certificate", &e))?
        }
    };
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tls)
}
