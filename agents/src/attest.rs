//! Fresh attestation: the platform dials a CVM's agent (`agent.AgentService`, the participants' API,
//! served once the agent has accepted a run request) over TLS, notes the key the agent's
//! certificate holds, records a single-use nonce bound to that key, asks for evidence carrying it
//! (`Attestation` with `tee_nonce` = the bound report data and `vtpm_nonce` = the nonce), and has the
//! evidence appraised and recorded ([`prism_app::Attestations::appraise_fresh`]). The connection is
//! pinned to that certificate: were it to reconnect to another key, the call fails.

use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use prism_app::{App, AppError, Caller};
use prism_domain::CvmId;
use prism_domain::cvm::CvmAttestationAppraised;
use prism_proto::agent::AttestationRequest;
use prism_proto::agent::agent_service_client::AgentServiceClient;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Endpoint, Uri};

/// The `type` of an `Attestation` request (Cocos's `attestation.PlatformType`).
pub mod evidence_type {
    pub const SNP: i32 = 0;
    pub const TDX: i32 = 4;
}

/// Evidence larger than this is not read (a report with its chain is a few KiB).
const MAX_EVIDENCE: usize = 256 * 1024;

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

/// Why fresh evidence could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("the agent's endpoint is not usable: {0}")]
    Endpoint(String),
    #[error("cannot reach the agent: {0}")]
    Connect(String),
    #[error("the agent refused the attestation request: {0}")]
    Agent(String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Asks the CVM's agent for fresh evidence of `kind` ([`evidence_type`]), and has it appraised
/// and recorded; answers the recorded appraisal.
pub async fn attest_fresh(
    app: &App,
    caller: &Caller,
    cvm: CvmId,
    endpoint: &AgentEndpoint,
    kind: i32,
) -> Result<CvmAttestationAppraised, AttestError> {
    let tls = Arc::new(client_tls(endpoint)?);
    let server_name = ServerName::try_from(endpoint.server_name.clone())
        .map_err(|e| AttestError::Endpoint(format!("{}: {e}", endpoint.server_name)))?;
    let uri: Uri = format!("http://{}", endpoint.address)
        .parse()
        .map_err(|_| AttestError::Endpoint(endpoint.address.clone()))?;
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
        .timeout(std::time::Duration::from_secs(30))
        .connect_with_connector(connector)
        .await
        .map_err(|e| AttestError::Connect(format!("{}: {e}", endpoint.address)))?;
    let leaf = seen
        .lock()
        .expect("not poisoned")
        .clone()
        .ok_or_else(|| AttestError::Connect("no TLS session".into()))?;
    let spki = subject_public_key_info(&leaf)?;

    let attestations = app.attestations();
    let (nonce, expected) = attestations.issue_nonce(caller, cvm, &spki).await?;
    let request = AttestationRequest {
        tee_nonce: expected.report_data.to_vec(),
        vtpm_nonce: nonce.0.to_vec(),
        r#type: kind,
    };
    let mut stream = AgentServiceClient::new(channel)
        .attestation(request)
        .await
        .map_err(|status| AttestError::Agent(status.message().to_owned()))?
        .into_inner();
    let mut evidence = Vec::new();
    while let Some(part) = stream.next().await {
        let part = part.map_err(|status| AttestError::Agent(status.message().to_owned()))?;
        if evidence.len() + part.file.len() > MAX_EVIDENCE {
            return Err(AttestError::Agent(format!(
                "evidence larger than {MAX_EVIDENCE} bytes"
            )));
        }
        evidence.extend_from_slice(&part.file);
    }
    Ok(attestations
        .appraise_fresh(caller, cvm, &nonce, &expected, &evidence)
        .await?)
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
fn subject_public_key_info(der: &[u8]) -> Result<Vec<u8>, AttestError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| AttestError::Connect(format!("the agent's certificate does not parse: {e}")))?;
    Ok(certificate.tbs_certificate.subject_pki.raw.to_vec())
}

/// rustls on ring trusting only `roots_pem`, with the client certificate when there is one, offering
/// ALPN h2 as grpc-go requires.
fn client_tls(endpoint: &AgentEndpoint) -> Result<rustls::ClientConfig, AttestError> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| AttestError::Endpoint(format!("{what}: {e}"));
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
