use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Manifest;
use super::event::RunUsage;
use super::event::{ReceiptKind, RunReceipt};
use crate::cvm::CvmSpec;
use crate::ids::{ComputationId, CvmId, RunId, WorkspaceId};

/// Where a run is. The happy path is Requested → Provisioning → AgentConnecting → Attesting →
/// AwaitingInputs → Running → ResultsReady → Completed; any step may end in Stopping, Failed or
/// TimedOut; every ending goes through CleaningUp to Closed. [`super::TRANSITIONS`] is the whole
/// machine.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// No event yet: the run does not exist.
    #[default]
    New,
    /// Asked for; a backend is to be chosen.
    Requested,
    /// A CVM is being made for it.
    Provisioning,
    /// The CVM is made; its agent is expected to dial in.
    AgentConnecting,
    /// The agent is connected; its evidence is being appraised.
    Attesting,
    /// Attested; the participants send the algorithm and the datasets.
    AwaitingInputs,
    Running,
    /// The result is ready for its consumers.
    ResultsReady,
    Completed,
    /// Someone asked it to stop.
    Stopping,
    Failed,
    /// A step took longer than it may.
    TimedOut,
    /// The agent's data is wiped, the CVM destroyed, the run's certificates revoked.
    CleaningUp,
    Closed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 14] = [
        Self::New,
        Self::Requested,
        Self::Provisioning,
        Self::AgentConnecting,
        Self::Attesting,
        Self::AwaitingInputs,
        Self::Running,
        Self::ResultsReady,
        Self::Completed,
        Self::Stopping,
        Self::Failed,
        Self::TimedOut,
        Self::CleaningUp,
        Self::Closed,
    ];

    /// The state `text` names (as [`RunStatus::as_str`] writes it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Requested => "requested",
            Self::Provisioning => "provisioning",
            Self::AgentConnecting => "agent_connecting",
            Self::Attesting => "attesting",
            Self::AwaitingInputs => "awaiting_inputs",
            Self::Running => "running",
            Self::ResultsReady => "results_ready",
            Self::Completed => "completed",
            Self::Stopping => "stopping",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::CleaningUp => "cleaning_up",
            Self::Closed => "closed",
        }
    }

    /// Whether the run is on its way and has not ended (nor been asked to stop).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Requested
                | Self::Provisioning
                | Self::AgentConnecting
                | Self::Attesting
                | Self::AwaitingInputs
                | Self::Running
                | Self::ResultsReady
        )
    }

    /// Whether the run has ended and is to be cleaned up.
    pub fn is_ending(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::TimedOut | Self::Stopping
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Run {
    /// Whether every result consumer the manifest names has said it received the result.
    pub fn every_consumer_has_the_result(&self) -> bool {
        let Some(manifest) = &self.manifest else {
            return false;
        };
        manifest.result_consumers.iter().all(|consumer| {
            self.receipts
                .iter()
                .any(|r| r.kind == ReceiptKind::Result && r.participant == *consumer)
        })
    }
}

/// One run of a computation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub status: RunStatus,
    pub id: Option<RunId>,
    pub workspace: Option<WorkspaceId>,
    pub computation: Option<ComputationId>,
    /// SHA-256 (hex) of the manifest the run executes.
    pub manifest_id: Option<String>,
    pub manifest: Option<Manifest>,
    /// The CVM to make for it, and the one made.
    pub cvm_spec: Option<CvmSpec>,
    pub cvm: Option<CvmId>,
    pub deadline: Option<DateTime<Utc>>,
    /// Every signer's consent: participant id → base64 signature over the manifest id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consents: BTreeMap<String, String>,
    /// The ended run this one tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RunId>,
    /// Until when the result may be fetched, once it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_until: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the evidence whose appraisal let the participants' inputs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_sha256: Option<String>,
    /// What its CVM used, once it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RunUsage>,
    /// The participants' receipts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<RunReceipt>,
    /// Why it failed, timed out or was stopped, and in which state.
    pub ending: Option<(RunStatus, String)>,
    pub requested_at: Option<DateTime<Utc>>,
}
