//! The agent's wire messages as the CVM records them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prism_domain::cvm::{AgentMessage, ReceivedMessage};
use prism_proto::cvms::{ClientStreamMessage, client_stream_message::Message};
use prism_proto::prost::Message as _;
use sha2::{Digest as _, Sha256};

fn timestamp(ts: Option<&prism_proto::prost_types::Timestamp>) -> Option<String> {
    let ts = ts?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    chrono::DateTime::from_timestamp(ts.seconds, nanos).map(|t| t.to_rfc3339())
}

/// `message` as the CVM records it, with the digest of its bytes by which a resent copy is known;
/// `None` for a message with nothing set (which says nothing).
pub fn received(message: &ClientStreamMessage) -> Option<ReceivedMessage> {
    let recorded = match message.message.as_ref()? {
        Message::AgentLog(log) => AgentMessage::Log {
            level: log.level.clone(),
            message: log.message.clone(),
            computation_id: log.computation_id.clone(),
            timestamp: timestamp(log.timestamp.as_ref()),
        },
        Message::AgentEvent(event) => AgentMessage::Event {
            event_type: event.event_type.clone(),
            computation_id: event.computation_id.clone(),
            originator: event.originator.clone(),
            status: event.status.clone(),
            details_base64: STANDARD.encode(&event.details),
            timestamp: timestamp(event.timestamp.as_ref()),
        },
        Message::RunRes(run) => AgentMessage::RunResult {
            computation_id: run.computation_id.clone(),
            error: run.error.clone(),
        },
        Message::StopComputationRes(stop) => AgentMessage::StopResult {
            computation_id: stop.computation_id.clone(),
            message: stop.message.clone(),
        },
        Message::AgentStateRes(state) => AgentMessage::State {
            id: state.id.clone(),
            state: state.state.clone(),
        },
        Message::VTpMattestationReport(report) => AgentMessage::AttestationReport {
            report_base64: STANDARD.encode(&report.file),
            certificate_serial: report.cert_serial_number.clone(),
        },
        Message::AzureAttestationToken(token) => AgentMessage::AzureToken {
            token_base64: STANDARD.encode(&token.file),
            certificate_serial: token.cert_serial_number.clone(),
        },
    };
    let digest = Sha256::digest(message.encode_to_vec());
    Some(ReceivedMessage {
        digest: hex::encode(digest),
        message: recorded,
    })
}
