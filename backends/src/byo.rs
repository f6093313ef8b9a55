//! The `byo` driver: a machine its owner runs (bring your own CVM). There is nothing to make or
//! remove: the platform issues the agent's certificate, its owner fetches it with a one-time token
//! and starts the agent, which dials in; destroying the CVM revokes the certificate, which closes the
//! agent's connection and keeps it out.

use crate::{Driver, DriverError, LaunchRequest, Launched, MachineInfo};

#[derive(Debug, Clone, Default)]
pub struct ByoDriver {
    /// Where participants reach the machine's agent, when its owner said.
    pub agent_address: Option<String>,
}

#[async_trait::async_trait]
impl Driver for ByoDriver {
    async fn launch(&self, request: LaunchRequest) -> Result<Launched, DriverError> {
        Ok(Launched {
            backend_ref: format!("byo-{}", request.cvm),
            agent_address: self.agent_address.clone(),
            test_attestation_root: None,
        })
    }

    async fn remove(&self, _backend_ref: &str) -> Result<(), DriverError> {
        Ok(())
    }

    async fn info(&self, _backend_ref: &str) -> Result<MachineInfo, DriverError> {
        Err(DriverError::Unsupported(
            "a bring-your-own machine reports nothing about itself",
        ))
    }

    async fn attestation_policy(&self, _backend_ref: &str) -> Result<Vec<u8>, DriverError> {
        Err(DriverError::Unsupported(
            "a bring-your-own machine has no backend attestation policy",
        ))
    }

    async fn check(&self) -> Result<(), DriverError> {
        Ok(())
    }
}
