//! An emulated Cocos v0.10.2 agent — **INSECURE: no hardware protection; evidence is signed by a
//! test-only chain** — for development and as the `local` backend of `prism up`.
//!
//! On the wire it behaves as the real agent VM (agent, computation runner, log forwarder and
//! ingress in one process): it dials `cvms.Service/Process` with the real agent's environment
//! ([`config`]), opens the agent's and the log forwarder's streams ([`cvms`]), follows the real
//! state machine and checks ([`computation`]), serves `agent.AgentService` to participants
//! ([`participants`]) — who authenticate by signing a fresh single-use challenge of Prism's
//! `prism.agent.v1.ParticipantAuth`, or, only with `PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH`, by
//! upstream's replayable signature over their role ([`auth`]) —, runs `bin` and `python`
//! algorithms as subprocesses in a private directory, and answers attestation requests with the
//! evidence of an SEV-SNP guest — an EAT ([`eat`]) over a go-sev-guest `Attestation` ([`sevsnp`])
//! whose report is signed by a chain it generates ([`attestation`]).
//!
//! Where it departs from upstream is said in each module.
//!
//! The agent's directory (`PRISM_EMULATED_AGENT_DIR`, else a temporary directory removed at exit)
//! holds `pending_messages.json`, `test-attestation-chain/{ark,ask,vcek}.pem`, the EAT's public
//! key `test-attestation-chain/eat-key.pem` (which upstream does not publish) and, during a
//! computation, `computation/` (0700), which is wiped when the run ends, on a stop and at exit.

pub mod attestation;
pub mod auth;
pub mod computation;
pub mod config;
pub mod consent;
pub mod cvms;
mod error;
pub mod participants;
pub mod pending;
pub mod telemetry;

/// The wire formats of the evidence, shared with the platform's verifier.
pub use prism_attestation::{eat, sevsnp};

use std::future::Future;
use std::path::{Path, PathBuf};

use prism_proto::cvms::{AttestationResponse, ClientStreamMessage, client_stream_message};
use sha2::{Digest as _, Sha256, Sha512};
use tokio::sync::{mpsc, watch};

pub use config::Config;
pub use error::Error;

use computation::{Agent, create_private_dir};
use cvms::{AgentLink, Dialer};
use pending::PendingMessages;
use telemetry::Telemetry;

/// The directory, under the agent's, of the computation's files.
pub const COMPUTATION_DIR: &str = "computation";
/// The directory, under the agent's, of the test attestation chain's PEM files.
pub const TEST_CHAIN_DIR: &str = "test-attestation-chain";

/// Runs the emulated agent until `shutdown` completes; fails when the control plane cannot be
/// reached the first time (as upstream exits then) or the configuration is unusable.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let temporary;
    let dir: PathBuf = match &config.work_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("prism-emulated-agent-")
                .tempdir()
                .map_err(|source| Error::WorkDir {
                    path: std::env::temp_dir(),
                    source,
                })?;
            temporary.path().to_owned()
        }
    };
    create_private_dir(&dir).map_err(|source| Error::WorkDir {
        path: dir.clone(),
        source,
    })?;
    write_test_chain(&dir)?;

    let (telemetry, records) = Telemetry::new(config.log_level);
    telemetry
        .warn("INSECURE: emulated agent, no hardware protection; attestation is signed by a TEST ONLY chain");
    let agent = Agent::new(telemetry.clone(), dir.join(COMPUTATION_DIR));
    // A computation left by a killed predecessor is not resumed.
    agent.wipe();

    let dialer = Dialer::new(&config)?;
    let log_stream = dialer.open(&config.cvm_id, true).await?;
    let agent_stream = dialer.open(&config.cvm_id, false).await?;

    let (outbox, queue) = mpsc::unbounded_channel();
    let pending = PendingMessages::in_dir(&dir);
    let link = AgentLink::new(agent.clone(), dialer, config.clone(), pending, outbox.clone());
    let (stop, stopped) = watch::channel(false);
    let forwarder = tokio::spawn(cvms::forward_logs(log_stream, records, stopped.clone()));
    let agent_task = {
        let link = link.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move { link.run(agent_stream, queue, stopped).await })
    };

    // Queued after the agent's stream has started: it goes after any pending message.
    let startup = startup_attestation(config.client_cert.as_deref());
    let outcome = match startup {
        Ok(message) => {
            let _ = outbox.send(message);
            shutdown.await;
            Ok(())
        }
        Err(e) => {
            telemetry.error(&format!("failed to get attestation: {e}"));
            Err(e)
        }
    };

    telemetry.info("Received signal, shutting down...");
    let _ = stop.send(true);
    let _ = agent_task.await;
    link.stop_ingress().await;
    agent.wipe();
    let _ = forwarder.await;
    outcome
}

/// The start-up message (`cmd/agent/main.go:280-311, 328-355`): SEV-SNP evidence with report data
/// SHA-512 and nonce SHA-256 of the client certificate's PEM file bytes, and the certificate's
/// serial in decimal; both empty without a client certificate.
pub fn startup_attestation(client_cert: Option<&Path>) -> Result<ClientStreamMessage, Error> {
    let (file, cert_serial_number) = match client_cert {
        None => (Vec::new(), String::new()),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            let serial = certificate_serial(&pem)
                .ok_or_else(|| Error::Tls(format!("{}: failed to decode certificate PEM", path.display())))?;
            let report_data: [u8; 64] = Sha512::digest(&pem).into();
            let nonce: [u8; 32] = Sha256::digest(&pem).into();
            (attestation::evidence(&report_data, &nonce)?, serial)
        }
    };
    Ok(ClientStreamMessage {
        message: Some(client_stream_message::Message::VTpMattestationReport(
            AttestationResponse {
                file,
                cert_serial_number,
            },
        )),
    })
}

/// The serial of the first certificate in `pem`, in decimal.
fn certificate_serial(pem: &[u8]) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let certificate = pem.parse_x509().ok()?;
    Some(certificate.tbs_certificate.serial.to_string())
}

fn write_test_chain(dir: &Path) -> Result<(), Error> {
    let chain = attestation::test_chain()?;
    let chain_dir = dir.join(TEST_CHAIN_DIR);
    let write = |name: &str, pem: &str| {
        let path = chain_dir.join(name);
        std::fs::create_dir_all(&chain_dir)
            .and_then(|()| std::fs::write(&path, pem))
            .map_err(|source| Error::WorkDir { path, source })
    };
    write("ark.pem", &chain.ark_pem)?;
    write("ask.pem", &chain.ask_pem)?;
    write("vcek.pem", &chain.vcek_pem)?;
    write("eat-key.pem", &attestation::eat_signing_key()?.public_key_pem())?;
    write(
        "README",
        "TEST ONLY — NOT AMD. These certificates were generated by prism-emulated-agent.\n\
         Reports they sign prove nothing about any hardware; a verifier must refuse them\n\
         against AMD's real roots. eat-key.pem is the public key of this run's EAT signatures;\n\
         the real attestation-service generates one at each start and publishes it nowhere.\n",
    )
}
