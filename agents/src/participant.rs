//! The participants' side of an agent's API: upload the algorithm or a dataset straight to the
//! attested agent, fetch the result — the platform never sees the bytes. Uploads go in 1 MiB
//! chunks, as cocos-cli cuts them.
//!
//! Each call is authenticated with the key registered for the participant in the run's manifest.
//! Before each call the client asks the agent's `prism.agent.v1.ParticipantAuth/Challenge` for a
//! fresh challenge for the call's role and signs
//! [`prism_proto::prism_agent::signed_message`] — the role, the challenge and the SHA-256 of the
//! key of the TLS certificate this connection was shown — sending metadata `prism-challenge` and
//! `signature`: the agent accepts it once, for that role, on that agent only, so it can be neither
//! replayed nor relayed. An agent that answers `UNIMPLEMENTED` (the unmodified Cocos agent, which
//! knows only its own scheme) gets what cocos-cli sends instead: `signature` = base64 of the
//! signature over the role string (`algorithm-provider`, `data-provider`, `consumer`), which that
//! agent can replay. Any other answer to the challenge request fails the call.

use std::sync::Arc;

use base64::Engine as _;
use futures::StreamExt as _;
use prism_proto::agent::agent_service_client::AgentServiceClient;
use prism_proto::agent::{AlgoRequest, DataRequest, ResultRequest};
use prism_proto::prism_agent::v1::ChallengeRequest;
use prism_proto::prism_agent::v1::participant_auth_client::ParticipantAuthClient;
use prism_proto::prism_agent::{CHALLENGE_METADATA, SIGNATURE_METADATA, signed_message};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::dial::{AgentEndpoint, DialError, dial};

/// The size of the chunks an upload is cut into.
pub const CHUNK: usize = 1024 * 1024;

/// The roles of the calls, as a participant names them when it signs (Cocos's `agent/auth`).
pub mod role {
    pub const ALGORITHM_PROVIDER: &str = "algorithm-provider";
    pub const DATA_PROVIDER: &str = "data-provider";
    pub const CONSUMER: &str = "consumer";
}

/// Reports how many bytes have gone (or come) so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Why a participant's call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("the agent refused: {0}")]
    Agent(String),
    #[error("{0}")]
    Key(String),
}

fn refused(status: tonic::Status) -> ParticipantError {
    ParticipantError::Agent(status.message().to_owned())
}

/// A participant's private key, from an unencrypted PKCS #8 PEM file (`openssl genpkey` writes
/// one), signing as Cocos verifies: RSA PKCS #1 v1.5 with SHA-256, ECDSA with SHA-256 whatever the
/// curve (ASN.1 DER), Ed25519 over the message itself — the same schemes consent signatures use.
pub struct ParticipantKey(Kind);

enum Kind {
    Rsa(ring::signature::RsaKeyPair),
    Ed25519(ring::signature::Ed25519KeyPair),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

impl std::fmt::Debug for ParticipantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Kind::Rsa(_) => "RSA",
            Kind::Ed25519(_) => "Ed25519",
            Kind::P256(_) => "P-256",
            Kind::P384(_) => "P-384",
            Kind::P521(_) => "P-521",
        };
        write!(f, "ParticipantKey({kind})")
    }
}

impl ParticipantKey {
    /// Reads the key: RSA, EC on P-256, P-384 or P-521, or Ed25519.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, ParticipantError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            ParticipantError::Key(format!(
                "not an unencrypted PKCS #8 private key ({e}); convert one with \
                 `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8.pem`"
            ))
        })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// Reads a DER PKCS #8 key; each kind is tried in turn, as a key says which it is only inside.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ParticipantError> {
        use p256::pkcs8::DecodePrivateKey as _;
        if let Ok(key) = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self(Kind::Ed25519(key)));
        }
        if let Ok(key) = ring::signature::RsaKeyPair::from_pkcs8(der) {
            return Ok(Self(Kind::Rsa(key)));
        }
        if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self(Kind::P256(key)));
        }
        if let Ok(key) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self(Kind::P384(key)));
        }
        if let Ok(key) = p521::SecretKey::from_pkcs8_der(der) {
            let key = p521::ecdsa::SigningKey::from_bytes(&key.to_bytes())
                .map_err(|e| ParticipantError::Key(format!("P-521 key: {e}")))?;
            return Ok(Self(Kind::P521(key)));
        }
        Err(ParticipantError::Key(
            "the private key is none of RSA, EC on P-256, P-384 or P-521, or Ed25519".into(),
        ))
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ParticipantError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        let digest = Sha256::digest(message);
        let failed = |e: &dyn std::fmt::Display| ParticipantError::Key(format!("signing failed: {e}"));
        Ok(match &self.0 {
            Kind::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|e| failed(&e))?;
                signature
            }
            Kind::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            Kind::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign_prehash(&digest).map_err(|e| failed(&e))?;
                signature.to_der().as_bytes().to_vec()
            }
            Kind::P384(key) => {
                let signature: p384::ecdsa::Signature = key.sign_prehash(&digest).map_err(|e| failed(&e))?;
                signature.to_der().as_bytes().to_vec()
            }
            Kind::P521(key) => {
                // As the verifier does: the SHA-256 digest widened to the field, its value unchanged.
                let mut widened = [0u8; 66];
                widened[66 - digest.len()..].copy_from_slice(&digest);
                use p521::ecdsa::signature::hazmat::PrehashSigner as _;
                let signature: p521::ecdsa::Signature = key.sign_prehash(&widened).map_err(|e| failed(&e))?;
                signature.to_der().as_bytes().to_vec()
            }
        })
    }
}

/// A participant's connection to an agent.
#[derive(Debug, Clone)]
pub struct ParticipantClient {
    client: AgentServiceClient<Channel>,
    /// Prism's challenge service, on the same connection.
    auth: ParticipantAuthClient<Channel>,
    /// The agent's TLS certificate (DER), as the connection saw it; the channel is pinned to it.
    agent_certificate: Vec<u8>,
}

/// `bytes` in chunks, each made by `wrap`, reporting the bytes sent as the stream is read.
fn chunks<T: Send + 'static>(
    bytes: Vec<u8>,
    progress: Progress,
    mut wrap: impl FnMut(Vec<u8>, bool) -> T + Send + 'static,
) -> impl futures::Stream<Item = T> + Send + 'static {
    let bytes = Arc::new(bytes);
    let count = bytes.len().div_ceil(CHUNK).max(1);
    futures::stream::iter(0..count).map(move |index| {
        let start = index * CHUNK;
        let end = (start + CHUNK).min(bytes.len());
        progress(end as u64);
        wrap(bytes[start..end].to_vec(), index == 0)
    })
}

impl ParticipantClient {
    /// Dials the agent (TLS to the platform's roots, pinned to the certificate it shows).
    pub async fn connect(endpoint: &AgentEndpoint) -> Result<Self, ParticipantError> {
        let (channel, agent_certificate) = dial(endpoint).await?;
        Ok(Self {
            auth: ParticipantAuthClient::new(channel.clone()),
            client: AgentServiceClient::new(channel)
                .max_decoding_message_size(2 * CHUNK)
                .max_encoding_message_size(2 * CHUNK),
            agent_certificate,
        })
    }

    /// The SubjectPublicKeyInfo (DER) of the agent's TLS certificate: what fresh evidence of the
    /// agent must be bound to.
    pub fn agent_key(&self) -> Result<Vec<u8>, ParticipantError> {
        let (_, certificate) = x509_parser::parse_x509_certificate(&self.agent_certificate)
            .map_err(|e| ParticipantError::Agent(format!("the agent's certificate does not parse: {e}")))?;
        Ok(certificate.tbs_certificate.subject_pki.raw.to_vec())
    }

    /// Puts the authentication of a call of `role` signed with `key` in `request`'s metadata: a
    /// signed fresh challenge, or Cocos's signature over the role where the agent offers no
    /// challenge (see the module's documentation).
    async fn authenticate<T>(
        &mut self,
        key: &ParticipantKey,
        request: &mut tonic::Request<T>,
        role: &str,
    ) -> Result<(), ParticipantError> {
        let asked = self
            .auth
            .challenge(ChallengeRequest {
                role: role.to_owned(),
            })
            .await;
        let (challenge, message) = match asked {
            Ok(answer) => {
                let challenge = answer.into_inner().challenge;
                let agent_key: [u8; 32] = Sha256::digest(self.agent_key()?).into();
                let message = signed_message(role, &challenge, Some(&agent_key));
                (Some(challenge), message)
            }
            // The unmodified Cocos agent: it knows no challenge, only its own scheme.
            Err(status) if status.code() == tonic::Code::Unimplemented => (None, role.as_bytes().to_vec()),
            Err(status) => return Err(refused(status)),
        };
        let base64 = base64::engine::general_purpose::STANDARD;
        let value = |text: String| MetadataValue::try_from(text).expect("base64 is a valid header value");
        let signature = base64.encode(key.sign(&message)?);
        let metadata = request.metadata_mut();
        if let Some(challenge) = challenge {
            metadata.insert(CHALLENGE_METADATA, value(base64.encode(challenge)));
        }
        metadata.insert(SIGNATURE_METADATA, value(signature));
        // cocos-cli sends it; the agent does not read it.
        metadata.insert("user-id", MetadataValue::from_static("prism"));
        Ok(())
    }

    /// Sends the algorithm (`algo_type`: `bin`, `python`, `wasm`, `docker`) with its requirements
    /// file (Python's, or empty), as its provider.
    pub async fn upload_algorithm(
        &mut self,
        key: &ParticipantKey,
        algorithm: Vec<u8>,
        algo_type: &str,
        requirements: Vec<u8>,
        progress: Progress,
    ) -> Result<(), ParticipantError> {
        let mut requirements = Some(requirements);
        let stream = chunks(algorithm, progress, move |algorithm, first| AlgoRequest {
            algorithm,
            requirements: if first {
                requirements.take().unwrap_or_default()
            } else {
                Vec::new()
            },
        });
        let mut request = tonic::Request::new(stream);
        self.authenticate(key, &mut request, role::ALGORITHM_PROVIDER)
            .await?;
        let algo_type = MetadataValue::try_from(algo_type)
            .map_err(|_| ParticipantError::Key(format!("`{algo_type}` is no algorithm type")))?;
        request.metadata_mut().insert("algo_type", algo_type);
        self.client.algo(request).await.map_err(refused)?;
        Ok(())
    }

    /// Sends a dataset under the file name the manifest declares for it, as its provider.
    pub async fn upload_dataset(
        &mut self,
        key: &ParticipantKey,
        dataset: Vec<u8>,
        file_name: &str,
        progress: Progress,
    ) -> Result<(), ParticipantError> {
        let file_name = file_name.to_owned();
        let stream = chunks(dataset, progress, move |dataset, _| DataRequest {
            dataset,
            filename: file_name.clone(),
        });
        let mut request = tonic::Request::new(stream);
        self.authenticate(key, &mut request, role::DATA_PROVIDER).await?;
        self.client.data(request).await.map_err(refused)?;
        Ok(())
    }

    /// Fetches the result (a zip of the algorithm's `results/` directory), as a result consumer.
    pub async fn fetch_result(
        &mut self,
        key: &ParticipantKey,
        progress: Progress,
    ) -> Result<Vec<u8>, ParticipantError> {
        let mut request = tonic::Request::new(ResultRequest {});
        self.authenticate(key, &mut request, role::CONSUMER).await?;
        let mut stream = self.client.result(request).await.map_err(refused)?.into_inner();
        let mut result = Vec::new();
        while let Some(part) = stream.next().await {
            result.extend_from_slice(&part.map_err(refused)?.file);
            progress(result.len() as u64);
        }
        Ok(result)
    }
}
