//! CVM backends: where confidential VMs are made. A provisioner asks a [`Driver`] to launch a CVM
//! with its agent's certificates and the address of the agents' channel, to remove it, and to
//! describe it; the driver talks to whatever makes the machine. Drivers decide nothing about the
//! platform's records: what they answer is recorded by the caller.
//!
//! Three drivers: `cocos-manager` (a gRPC + mutual-TLS client of the Cocos manager's
//! `ManagerService`), `local` (the emulated agent as a child process: **insecure, no hardware
//! protection**, for development) and `byo` (a machine its owner runs: nothing to launch, its agent
//! fetches its certificates with a one-time token and dials in).

mod byo;
mod drivers;
mod local;

pub use byo::ByoDriver;
pub use drivers::{ClientIdentity, Drivers};
pub use local::LocalDriver;

use std::fmt;
use std::time::Duration;

use prism_domain::CvmId;
use prism_domain::cvm::CvmSpec;

/// What a CVM's agent needs to reach the platform, handed to the backend that makes the CVM.
#[derive(Clone)]
pub struct LaunchRequest {
    pub cvm: CvmId,
    pub spec: CvmSpec,
    /// The agent's client certificate for the agents' channel (PEM) and its private key (PEM).
    pub agent_client_cert_pem: String,
    pub agent_client_key_pem: String,
    /// The certificates (PEM) the agent trusts for the channel's server certificate.
    pub server_ca_pem: String,
    /// The agents' channel as the agent dials it: `host:port`.
    pub control_plane_url: String,
    /// How long the CVM may live; a backend that enforces lifetimes is told.
    pub ttl: Duration,
    /// The agent's log level (`debug`, `info`, `warn`, `error`).
    pub log_level: String,
}

// The key is a secret: never print it.
impl fmt::Debug for LaunchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchRequest")
            .field("cvm", &self.cvm)
            .field("spec", &self.spec)
            .field("control_plane_url", &self.control_plane_url)
            .field("ttl", &self.ttl)
            .field("log_level", &self.log_level)
            .finish_non_exhaustive()
    }
}

/// A CVM the backend has made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// The backend's own name for the machine (the manager's VM id, a process id), by which it is
    /// removed and described later. It is also the `job-id` the agent may present.
    pub backend_ref: String,
    /// Where participants reach the agent (`host:port`), when the backend knows it.
    pub agent_address: Option<String>,
    /// The test-only attestation root (PEM) an emulated agent signs its evidence with; `None` for
    /// real machines.
    pub test_attestation_root: Option<String>,
}

/// What the backend reports about a CVM (the manager's `CVMInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineInfo {
    pub ovmf_version: String,
    pub cpu_count: u32,
    pub cpu_type: String,
    pub kernel_cmdline: String,
    pub eos_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The backend answered and said no (full, a request it does not accept): another may say yes.
    #[error("the backend refused: {0}")]
    Refused(String),
    /// The backend could not be reached, or did not answer in time.
    #[error("the backend cannot be reached: {0}")]
    Unreachable(String),
    /// The backend knows no such machine.
    #[error("the backend has no machine `{0}`")]
    UnknownMachine(String),
    /// This kind of backend cannot do that.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// One backend's machine maker.
#[async_trait::async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    /// Makes and starts a CVM whose agent dials the agents' channel as `request` says.
    async fn launch(&self, request: LaunchRequest) -> Result<Launched, DriverError>;

    /// Stops and removes the machine. Removing one that is already gone succeeds.
    async fn remove(&self, backend_ref: &str) -> Result<(), DriverError>;

    /// Describes the machine.
    async fn info(&self, backend_ref: &str) -> Result<MachineInfo, DriverError>;

    /// The attestation policy the backend made the machine with, as it reports it (the Cocos
    /// manager's v0.10.2: an unsigned CoRIM in CBOR).
    async fn attestation_policy(&self, backend_ref: &str) -> Result<Vec<u8>, DriverError>;

    /// Whether the backend can be reached and works.
    async fn check(&self) -> Result<(), DriverError>;
}

pub mod manager;
pub use manager::{ManagerConfig, ManagerConfigError, ManagerDriver};
