use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::agent::{AgentMessage, AgentStream};
use super::state::CvmStatus;
use crate::aggregate::DomainEvent;
use prism_attestation::{Policy, Verdict};

use crate::ids::{Actor, BackendId, ComputationId, CvmId, RunId, WorkspaceId};

/// The hardware that protects a CVM's memory, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfidentialPlatform {
    /// AMD SEV-SNP.
    SevSnp,
    /// Intel TDX.
    Tdx,
    /// No hardware protection: an emulated agent, or a real one in NoCC mode. Only for development.
    None,
}

impl ConfidentialPlatform {
    pub const ALL: [ConfidentialPlatform; 3] = [Self::SevSnp, Self::Tdx, Self::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevSnp => "sev_snp",
            Self::Tdx => "tdx",
            Self::None => "none",
        }
    }

    /// Whether the platform protects anything at all.
    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

impl fmt::Display for ConfidentialPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a CVM is asked to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmSpec {
    /// Which kind of backend should run it (`local`, `cocos_manager`, `byo`), or `any`: 1–64
    /// characters from letters, digits and `-_.`.
    pub provider: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub platform: ConfidentialPlatform,
    /// How long it may live; the reaper destroys it after.
    pub ttl_seconds: u64,
    /// Labels its backend must carry with these values (e.g. `region=eu-west`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Why a CVM is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestroyReason {
    /// Someone asked for it.
    Requested,
    /// It outlived its TTL.
    TtlExpired,
    /// The run it served has ended.
    RunEnded,
    /// It failed to come up, and what was made of it is cleaned up.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum CvmEvent {
    Requested(CvmRequested),
    BackendAssigned(CvmBackendAssigned),
    Started(CvmStarted),
    Online(CvmOnline),
    Offline(CvmOffline),
    DestroyRequested(CvmDestroyRequested),
    Destroyed(CvmDestroyed),
    Failed(CvmFailed),
    AgentMessageReceived(CvmAgentMessageReceived),
    Described(CvmDescribed),
    AttestationRequested(CvmAttestationRequested),
    AttestationAppraised(Box<CvmAttestationAppraised>),
}

/// The platform asked the CVM's agent for fresh evidence, bound to a single-use nonce and to the
/// agent's TLS key (`prism_attestation::binding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmAttestationRequested {
    /// The platform nonce: 32 bytes, hex.
    pub nonce: String,
    /// SHA-256 (hex) of the agent's TLS SubjectPublicKeyInfo the evidence must be bound to.
    pub agent_key_sha256: String,
    /// After this the nonce is spent without use.
    pub expires_at: DateTime<Utc>,
    pub requested_by: Actor,
    pub at: DateTime<Utc>,
}

/// Where the policy a verdict applied came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicySource {
    /// No computation policy applied: the platform's default (`{}`: debug refused, no provisional
    /// firmware, …).
    PlatformDefault,
    /// A computation's policy at a version.
    Computation {
        computation: ComputationId,
        version: u32,
    },
    /// The policy that replaces a computation's own for runs placed on `backend`, at a version.
    BackendOverride {
        computation: ComputationId,
        backend: BackendId,
        version: u32,
    },
}

/// Evidence from the CVM was appraised: the evidence as received, the policy, the verdict (every
/// failing field with its expected and actual value) and the verdict as a signed EAR. Anyone holding
/// this event can re-verify the evidence offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmAttestationAppraised {
    /// The evidence exactly as the agent sent it, base64.
    pub evidence_base64: String,
    /// The nonce it answered; absent for the agent's start-up report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// What the evidence had to be bound to, as the verifier was told.
    pub expected_report_data: String,
    pub expected_eat_nonce: String,
    /// The test-only root (PEM) an emulated agent's evidence was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_attestation_root: Option<String>,
    pub policy: Policy,
    pub policy_source: PolicySource,
    pub verdict: Verdict,
    /// The verdict as an EAR (IETF RATS attestation result) JWT signed by the platform.
    pub ear: String,
    pub at: DateTime<Utc>,
}

/// What the backend reports about the machine it made (the Cocos manager's `CVMInfo` and the
/// attestation policy it launched it with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineDescription {
    pub ovmf_version: String,
    pub cpu_count: u32,
    pub cpu_type: String,
    pub kernel_cmdline: String,
    pub eos_version: String,
    /// The attestation policy as the backend reports it, base64 (a Cocos manager's is a CBOR CoRIM),
    /// when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_policy: Option<String>,
}

/// The backend described the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmDescribed {
    pub description: MachineDescription,
    pub at: DateTime<Utc>,
}

/// The agent said something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmAgentMessageReceived {
    pub stream: AgentStream,
    /// SHA-256 (hex) of the message's bytes on the wire.
    pub digest: String,
    pub message: AgentMessage,
    pub received_at: DateTime<Utc>,
}

/// A CVM was asked for; a backend is chosen next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmRequested {
    pub id: CvmId,
    pub workspace: WorkspaceId,
    pub spec: CvmSpec,
    /// The run it is made for; absent for a CVM asked for by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    pub expires_at: DateTime<Utc>,
    pub requested_by: Actor,
    pub requested_at: DateTime<Utc>,
}

/// A backend was chosen to run the CVM, and why; a later assignment (after a refusal) replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmBackendAssigned {
    pub backend: BackendId,
    pub reason: String,
    /// The backend's price for this CVM, in millionths of a currency unit per hour, when it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_cost_micros: Option<u64>,
    pub assigned_at: DateTime<Utc>,
}

/// The backend made the machine; its agent is expected to dial in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmStarted {
    /// The backend's own name for the machine (the manager's VM id, a process id).
    pub backend_ref: String,
    /// Where participants reach the agent (`host:port`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_address: Option<String>,
    /// The test-only attestation root (PEM) of an emulated agent, which its evidence is checked
    /// against in insecure development mode; absent for real machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_attestation_root: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// The CVM's agent is connected (again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmOnline {
    pub at: DateTime<Utc>,
}

/// The CVM's agent has not been heard from since `last_heard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmOffline {
    pub last_heard: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// The CVM is to be destroyed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmDestroyRequested {
    pub reason: DestroyReason,
    pub requested_by: Actor,
    pub at: DateTime<Utc>,
}

/// The backend has removed the CVM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmDestroyed {
    pub at: DateTime<Utc>,
}

/// The CVM could not be made, started or removed; `reason` says what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CvmFailed {
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl CvmEvent {
    /// The CVM's state after this event, from `current`: the one place that says which events move
    /// it (the aggregate's `apply` and the read models both ask).
    pub fn status_after(&self, current: CvmStatus) -> CvmStatus {
        match self {
            Self::Requested(_) => CvmStatus::Creating,
            Self::Started(_) => CvmStatus::Starting,
            Self::Online(_) => CvmStatus::Online,
            Self::Offline(_) => CvmStatus::Offline,
            Self::DestroyRequested(_) => CvmStatus::Destroying,
            Self::Destroyed(_) => CvmStatus::Destroyed,
            Self::Failed(_) => CvmStatus::Failed,
            Self::BackendAssigned(_)
            | Self::AgentMessageReceived(_)
            | Self::Described(_)
            | Self::AttestationRequested(_)
            | Self::AttestationAppraised(_) => current,
        }
    }
}

impl DomainEvent for CvmEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Requested(_) => "requested",
            Self::BackendAssigned(_) => "backend_assigned",
            Self::Started(_) => "started",
            Self::Online(_) => "online",
            Self::Offline(_) => "offline",
            Self::DestroyRequested(_) => "destroy_requested",
            Self::Destroyed(_) => "destroyed",
            Self::Failed(_) => "failed",
            Self::AgentMessageReceived(_) => "agent_message_received",
            Self::Described(_) => "described",
            Self::AttestationRequested(_) => "attestation_requested",
            Self::AttestationAppraised(_) => "attestation_appraised",
        }
    }
}
