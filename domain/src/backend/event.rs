use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::DomainEvent;
use crate::cvm::{ConfidentialPlatform, CvmSpec};
use crate::ids::{Actor, BackendId, WorkspaceId};

/// How the platform makes CVMs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Driver {
    /// The emulated agent as a child process of the platform. **Insecure: no hardware protection.**
    Local,
    /// A Cocos manager, reached over gRPC with mutual TLS.
    CocosManager {
        /// `host:port` of its gRPC server.
        address: String,
        /// The certificates (PEM) that sign the manager's server certificate.
        ca_pem: String,
    },
    /// A machine its owner runs: its agent fetches its certificates with a one-time token and dials in.
    Byo {
        /// Where participants reach its agent (`host:port`), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_address: Option<String>,
    },
}

impl Driver {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::CocosManager { .. } => "cocos_manager",
            Self::Byo { .. } => "byo",
        }
    }
}

/// What a backend charges, in millionths of a currency unit per hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub vcpu_hour_micros: u64,
    #[serde(default)]
    pub gib_hour_micros: u64,
}

impl Price {
    /// The hourly price of a CVM of `spec` (memory rounded up to whole GiB).
    pub fn hourly_micros(&self, spec: &CvmSpec) -> u64 {
        let gib = spec.memory_mib.div_ceil(1024);
        self.vcpu_hour_micros
            .saturating_mul(u64::from(spec.vcpus))
            .saturating_add(self.gib_hour_micros.saturating_mul(gib))
    }
}

/// What a backend offers and how it is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendSettings {
    /// 1–64 characters from letters, digits and `-_.`.
    pub name: String,
    pub driver: Driver,
    pub platforms: Vec<ConfidentialPlatform>,
    /// The most CVMs it runs at once.
    pub capacity: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum BackendEvent {
    Registered(BackendRegistered),
    Updated(BackendUpdated),
    HealthChanged(BackendHealthChanged),
    Removed(BackendRemoved),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendRegistered {
    pub id: BackendId,
    /// Absent for a backend of the whole platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceId>,
    pub settings: BackendSettings,
    pub registered_by: Actor,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendUpdated {
    pub settings: BackendSettings,
    pub updated_by: Actor,
    pub updated_at: DateTime<Utc>,
}

/// A health check's outcome differs from the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendHealthChanged {
    pub healthy: bool,
    /// What the check saw (the error, when unhealthy).
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendRemoved {
    pub removed_by: Actor,
    pub removed_at: DateTime<Utc>,
}

impl DomainEvent for BackendEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Registered(_) => "registered",
            Self::Updated(_) => "updated",
            Self::HealthChanged(_) => "health_changed",
            Self::Removed(_) => "removed",
        }
    }
}
