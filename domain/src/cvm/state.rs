use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use prism_attestation::Outcome;
use serde::{Deserialize, Serialize};

use super::event::{CvmSpec, DestroyReason, MachineDescription};
use crate::ids::{BackendId, CvmId, RunId, WorkspaceId};
use crate::run::RunUsage;

/// Creating → Starting → Online ⇄ Offline → Destroying → Destroyed; Failed from any state before
/// Destroyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CvmStatus {
    /// No event yet: the CVM does not exist.
    #[default]
    New,
    /// Asked for; a backend is being chosen, or is making it.
    Creating,
    /// Made; its agent has not dialled in yet.
    Starting,
    Online,
    Offline,
    Destroying,
    Destroyed,
    Failed,
}

impl CvmStatus {
    pub const ALL: [CvmStatus; 8] = [
        Self::New,
        Self::Creating,
        Self::Starting,
        Self::Online,
        Self::Offline,
        Self::Destroying,
        Self::Destroyed,
        Self::Failed,
    ];

    /// The state `text` names (as [`CvmStatus::as_str`] writes it).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Creating => "creating",
            Self::Starting => "starting",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
        }
    }

    /// Whether the machine may still exist somewhere (and so must be destroyed in the end).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Starting | Self::Online | Self::Offline | Self::Destroying
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cvm {
    pub status: CvmStatus,
    pub id: Option<CvmId>,
    pub workspace: Option<WorkspaceId>,
    pub spec: Option<CvmSpec>,
    /// The run it is made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub backend: Option<BackendId>,
    pub hourly_cost_micros: Option<u64>,
    pub backend_ref: Option<String>,
    pub agent_address: Option<String>,
    /// An emulated agent's test-only attestation root (PEM).
    #[serde(default)]
    pub test_attestation_root: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub destroy_reason: Option<DestroyReason>,
    /// When it was recorded destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub description: Option<MachineDescription>,
    /// The digests of the agent's latest messages, oldest first (at most [`RECENT_MESSAGES`]): a
    /// message resent after a reconnect is among them.
    pub recent_messages: VecDeque<String>,
    /// Nonces issued for fresh attestation and not yet answered, with their expiry.
    #[serde(default)]
    pub pending_nonces: BTreeMap<String, DateTime<Utc>>,
    /// Nonces answered: a second answer is a replay.
    #[serde(default)]
    pub spent_nonces: BTreeSet<String>,
    /// The latest verdict's outcome.
    #[serde(default)]
    pub attestation: Option<Outcome>,
}

/// How many of the agent's latest messages a CVM remembers, to know one that is sent again. The agent
/// resends the messages whose sending failed when it lost its connection: the last few it had in
/// flight may have arrived all the same, older ones cannot have. A bound keeps the state (and its
/// snapshots) small: 1024 digests are about 70 KB.
pub const RECENT_MESSAGES: usize = 1024;

impl Cvm {
    /// What the machine used, once destroyed: from its start to its destruction (nothing, when it
    /// never started), at its backend's hourly price when it has one. `None` before it is destroyed.
    pub fn usage(&self) -> Option<RunUsage> {
        let (Some(id), Some(spec), Some(destroyed_at)) = (self.id, self.spec.as_ref(), self.destroyed_at)
        else {
            return None;
        };
        let seconds = self
            .started_at
            .map_or(0, |started| (destroyed_at - started).num_seconds().max(0) as u64);
        Some(RunUsage {
            cvm: id,
            backend: self.backend,
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            seconds,
            cost_micros: self.hourly_cost_micros.map(|hourly| {
                u64::try_from((u128::from(seconds) * u128::from(hourly)).div_ceil(3600)).unwrap_or(u64::MAX)
            }),
        })
    }

    /// Whether the CVM has outlived its TTL at `now` and is still to be destroyed.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.status,
            CvmStatus::Creating | CvmStatus::Starting | CvmStatus::Online | CvmStatus::Offline
        ) && self.expires_at.is_some_and(|end| now >= end)
    }
}
