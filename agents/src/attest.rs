//! Fresh attestation: the platform dials a CVM's agent (`agent.AgentService`, the participants' API,
//! served once the agent has accepted a run request) over TLS, notes the key the agent's
//! certificate holds, records a single-use nonce bound to that key, asks for evidence carrying it
//! (`Attestation` with `tee_nonce` = the bound report data and `vtpm_nonce` = the nonce), and has the
//! evidence appraised and recorded ([`prism_app::Attestations::appraise_fresh`]). The connection is
//! pinned to that certificate: were it to reconnect to another key, the call fails.

use futures::StreamExt as _;
use prism_app::{App, AppError, Caller};
use prism_domain::CvmId;
use prism_domain::cvm::CvmAttestationAppraised;
use prism_proto::agent::AttestationRequest;
use prism_proto::agent::agent_service_client::AgentServiceClient;

use crate::dial::{AgentEndpoint, DialError, dial};

/// The `type` of an `Attestation` request (Cocos's `attestation.PlatformType`).
pub mod evidence_type {
    pub const SNP: i32 = 0;
    pub const TDX: i32 = 4;
}

/// Evidence larger than this is not read (a report with its chain is a few KiB).
const MAX_EVIDENCE: usize = 256 * 1024;

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

impl From<DialError> for AttestError {
    fn from(e: DialError) -> Self {
        match e {
            DialError::Endpoint(detail) => Self::Endpoint(detail),
            DialError::Connect(detail) => Self::Connect(detail),
        }
    }
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
    let (channel, leaf) = dial(endpoint).await?;
    let spki = subject_public_key_info(&leaf)?;

    let attestations = app.attestations();
    let (nonce, expected) = attestations.issue_nonce(caller, cvm, &spki).await?;
    let request = AttestationRequest {
        tee_nonce: expected.report_data.to_vec(),
        vtpm_nonce: nonce.0.to_vec(),
        r#type: kind,
    };
    let evidence = tokio::time::timeout(EVIDENCE_WAIT, read_evidence(channel, request))
        .await
        .map_err(|_| AttestError::Agent(format!("no evidence within {EVIDENCE_WAIT:?}")))??;
    Ok(attestations
        .appraise_fresh(caller, cvm, &nonce, &expected, &evidence)
        .await?)
}

/// How long an agent may take to answer with its evidence.
const EVIDENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn read_evidence(
    channel: tonic::transport::Channel,
    request: AttestationRequest,
) -> Result<Vec<u8>, AttestError> {
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
    Ok(evidence)
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
fn subject_public_key_info(der: &[u8]) -> Result<Vec<u8>, AttestError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| AttestError::Connect(format!("the agent's certificate does not parse: {e}")))?;
    Ok(certificate.tbs_certificate.subject_pki.raw.to_vec())
}
