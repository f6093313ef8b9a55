use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::Manifest;
use super::state::RunStatus;
use crate::aggregate::DomainEvent;
use crate::cvm::CvmSpec;
use crate::ids::{Actor, BackendId, ComputationId, CvmId, RunId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum RunEvent {
    Requested(Box<RunRequested>),
    ProvisioningStarted(RunProvisioningStarted),
    AgentAwaited(RunStep),
    AttestingStarted(RunStep),
    Attested(RunAttested),
    RunningStarted(RunStep),
    ResultsReady(RunResultsReady),
    ReceiptRecorded(RunReceipt),
    Completed(RunStep),
    StopRequested(RunEnding),
    Failed(RunEnding),
    TimedOut(RunEnding),
    CleanupStarted(RunStep),
    Closed(RunClosed),
}

/// A run of a computation was asked for, of the manifest with this id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequested {
    pub id: RunId,
    pub workspace: WorkspaceId,
    pub computation: ComputationId,
    /// SHA-256 (hex) of the manifest's canonical encoding.
    pub manifest_id: String,
    pub manifest: Manifest,
    /// Every signer's consent: participant id → base64 signature over the manifest id.
    pub consents: BTreeMap<String, String>,
    /// The CVM to make for it.
    pub cvm: CvmSpec,
    /// The ended run this one tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RunId>,
    /// When it times out if it has not ended by then: the request plus the manifest's
    /// `max_run_seconds`.
    pub deadline: DateTime<Utc>,
    pub requested_by: Actor,
    pub at: DateTime<Utc>,
}

/// A CVM is being made for the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunProvisioningStarted {
    pub cvm: CvmId,
    pub at: DateTime<Utc>,
}

/// The result is ready for its consumers until `fetch_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunResultsReady {
    pub fetch_until: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// What a participant's receipt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// The algorithm, delivered to the agent by its provider.
    Algorithm,
    /// A dataset, delivered to the agent by its provider.
    Dataset,
    /// The result, received from the agent by a consumer.
    Result,
}

/// A participant's receipt: who delivered or received which file, with its SHA3-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunReceipt {
    pub participant: String,
    pub kind: ReceiptKind,
    pub file_name: String,
    pub sha3_256: String,
    pub at: DateTime<Utc>,
}

/// The run is over and cleaned up; what its CVM used, when it had one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunClosed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RunUsage>,
    pub at: DateTime<Utc>,
}

/// What a run's CVM used, from its start to its destruction: what a workspace is accountable for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunUsage {
    pub cvm: CvmId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendId>,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// From the CVM's start to its destruction; 0 when it never started.
    pub seconds: u64,
    /// At the backend's hourly price, when it has one: `seconds × hourly price / 3600`, in
    /// millionths of the price's currency, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
}

/// A step with nothing to say but when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStep {
    pub at: DateTime<Utc>,
}

/// The run's evidence was accepted; the appraisal is the CVM's event with these digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunAttested {
    pub evidence_sha256: String,
    pub policy_sha256: String,
    pub at: DateTime<Utc>,
}

/// The run stops, failed or timed out, in which state and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunEnding {
    /// The state it was in.
    pub during: RunStatus,
    pub reason: String,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

impl DomainEvent for RunEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Requested(_) => "requested",
            Self::ProvisioningStarted(_) => "provisioning_started",
            Self::AgentAwaited(_) => "agent_awaited",
            Self::AttestingStarted(_) => "attesting_started",
            Self::Attested(_) => "attested",
            Self::RunningStarted(_) => "running_started",
            Self::ResultsReady(_) => "results_ready",
            Self::ReceiptRecorded(_) => "receipt_recorded",
            Self::Completed(_) => "completed",
            Self::StopRequested(_) => "stop_requested",
            Self::Failed(_) => "failed",
            Self::TimedOut(_) => "timed_out",
            Self::CleanupStarted(_) => "cleanup_started",
            Self::Closed(_) => "closed",
        }
    }
}
