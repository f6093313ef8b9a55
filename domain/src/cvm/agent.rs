//! What a CVM's agent says on its two streams, as the platform records it: one event per message, so
//! that the log is the agent's whole account. Bytes travel as base64 text.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which of the agent VM's two connections a message came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStream {
    /// The agent's own: its start-up attestation report and its answers.
    Agent,
    /// The log forwarder's (`connection-type: log-forwarder`): every log line and event.
    LogForwarder,
}

/// One message of the agent's (`cvms.ClientStreamMessage`), field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentMessage {
    Log {
        level: String,
        message: String,
        computation_id: String,
        /// RFC 3339, as the agent stamped it; absent when it sent none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    Event {
        event_type: String,
        computation_id: String,
        originator: String,
        status: String,
        details_base64: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    RunResult {
        computation_id: String,
        error: String,
    },
    StopResult {
        computation_id: String,
        message: String,
    },
    State {
        id: String,
        state: String,
    },
    /// The start-up report (vTPM / SEV-SNP / NoCC evidence) over the agent's client certificate.
    AttestationReport {
        report_base64: String,
        /// The serial of the agent's client certificate, in decimal, as the agent writes it.
        certificate_serial: String,
    },
    AzureToken {
        token_base64: String,
        certificate_serial: String,
    },
}

/// A message as received: its content and the SHA-256 (hex) of its bytes on the wire, by which a
/// message the agent sends again after a reconnect is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub digest: String,
    pub message: AgentMessage,
}
