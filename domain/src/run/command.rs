use std::collections::BTreeMap;

use super::Manifest;
use super::event::{ReceiptKind, RunUsage};
use crate::cvm::CvmSpec;
use crate::ids::{ComputationId, CvmId, RunId, WorkspaceId};

/// What the process manager (and a user, to stop a run) asks of a run. Each names one step of
/// [`super::TRANSITIONS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// Runs `manifest`, to which every participant it names with a key has consented (`consents`:
    /// participant id → base64 signature over [`super::manifest::consent_message`]), on a CVM made
    /// as `cvm` asks.
    Request {
        id: RunId,
        workspace: WorkspaceId,
        computation: ComputationId,
        manifest: Box<Manifest>,
        consents: BTreeMap<String, String>,
        cvm: CvmSpec,
        /// The ended run this one tries again, if any.
        retry_of: Option<RunId>,
    },
    /// A CVM is being made for the run.
    StartProvisioning {
        cvm: CvmId,
    },
    /// The CVM is made; its agent is expected.
    AwaitAgent,
    /// The agent is connected; its evidence is being appraised.
    StartAttesting,
    /// The evidence was accepted (the verdict is recorded on the CVM, named here by its digests).
    RecordAttested {
        evidence_sha256: String,
        policy_sha256: String,
    },
    /// The inputs are in; the algorithm runs.
    StartRunning,
    /// The result is ready; its consumers may fetch it until `fetch_until`, when the run completes
    /// whoever has not.
    MarkResultsReady {
        fetch_until: chrono::DateTime<chrono::Utc>,
    },
    /// A participant says what it delivered to the agent or received from it (the platform never
    /// sees the bytes): checked against the manifest.
    RecordReceipt {
        participant: String,
        kind: ReceiptKind,
        file_name: String,
        sha3_256: String,
    },
    Complete,
    Stop {
        reason: String,
    },
    Fail {
        reason: String,
    },
    TimeOut,
    StartCleanup,
    /// The cleanup is done; `usage` is what the run's CVM used, when it had one.
    Close {
        usage: Option<RunUsage>,
    },
}
