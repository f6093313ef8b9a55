use chrono::{DateTime, Utc};

use super::agent::{AgentStream, ReceivedMessage};
use super::event::{CvmAttestationAppraised, CvmSpec, DestroyReason, MachineDescription};
use crate::ids::{BackendId, CvmId, RunId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CvmCommand {
    /// Asks for a CVM in a workspace.
    Request {
        id: CvmId,
        workspace: WorkspaceId,
        spec: CvmSpec,
        /// The run it is made for, if any.
        run: Option<RunId>,
    },
    /// Records the backend chosen to run it (again, after the one chosen before refused).
    AssignBackend {
        backend: BackendId,
        reason: String,
        hourly_cost_micros: Option<u64>,
    },
    /// Records that the backend made the machine.
    MarkStarted {
        backend_ref: String,
        agent_address: Option<String>,
        test_attestation_root: Option<String>,
    },
    /// Records that the agent is connected.
    MarkOnline,
    /// Records that the agent has been silent since `last_heard`.
    MarkOffline { last_heard: DateTime<Utc> },
    /// Asks for the CVM to be destroyed.
    Destroy { reason: DestroyReason },
    /// Records that the backend removed it.
    MarkDestroyed,
    /// Records that it could not be made, started or removed.
    Fail { reason: String },
    /// Records what the backend reports about the machine; the same description again is no event.
    Describe { description: MachineDescription },
    /// Records what the agent said on `stream`; messages seen before (resent after a reconnect) are
    /// left out.
    RecordAgentMessages {
        stream: AgentStream,
        messages: Vec<ReceivedMessage>,
    },
    /// Records a fresh attestation request: a new nonce (hex, 32 bytes) valid until `expires_at`,
    /// bound to the agent's TLS key.
    RequestAttestation {
        nonce: String,
        agent_key_sha256: String,
        expires_at: DateTime<Utc>,
    },
    /// Records the appraisal of evidence; `appraisal.nonce` must be a pending, unexpired nonce of
    /// this CVM, used once.
    RecordAttestation(Box<CvmAttestationAppraised>),
}
