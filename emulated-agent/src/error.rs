//! What can stop the emulated agent.

use std::path::PathBuf;

/// Why the emulated agent could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("cannot reach the control plane at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the control plane refused the stream: {0}")]
    Stream(#[from] tonic::Status),
    #[error("working directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the test attestation chain: {0}")]
    TestChain(#[from] rcgen::Error),
    #[error("{0}")]
    Evidence(#[from] crate::attestation::EvidenceError),
    #[error("cannot make the EAT signing key: {0}")]
    EatKey(#[from] crate::eat::EatError),
}
