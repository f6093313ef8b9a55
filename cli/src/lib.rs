//! The `prism` binary's library half: the platform's registry of modules ([`modules`]) and the wiring
//! of every service into one process ([`Platform`]), so that the binary, the end-to-end tests and anyone
//! embedding Prism start the platform the same way.

pub mod attestation;
pub mod audit;
pub mod modules;
pub mod participant;
mod platform;

pub use platform::{
    AGENTS_CERTIFICATE_ENTITY, API_CERTIFICATE_ENTITY, AgentsConfig, BootstrapAdmin, HttpsConfig,
    LOCAL_BACKEND_ID, LocalBackendConfig, PROVISIONER_CERTIFICATE_ENTITY, Platform, PlatformConfig,
    ProvisioningSettings, authority_config, connect, mutual_tls, webhook_config,
};
