//! What the real agent VM tells the control plane on the log forwarder's stream: every log record
//! of the agent and the computation runner as an `AgentLog`, every state change as an `AgentEvent`.
//!
//! Upstream, records travel agent → `/run/cocos/log.sock` → log-forwarder → its own CVMS stream
//! (`cmd/agent/main.go:84-139`, `agent/log/service/service.go`); here they go straight into the
//! forwarder's queue, with the same fields:
//! * `AgentLog`: the record's message only (no attributes), cut in 500-byte pieces, level as
//!   `slog.Level.String()`, empty computation id (`internal/logger/protohandler.go`).
//! * `AgentEvent`: `event_type` = the state entered (or `Stopped`, `AlgorithmRun`), `status`, the
//!   computation id, empty `details`, `originator` `agent` — or `computation-runner`, which sends no
//!   timestamp (`agent/events/events.go`, `agent/runner/events/adapter.go`).

use prism_proto::cvms::{AgentEvent, AgentLog, ClientStreamMessage, client_stream_message};
use prism_proto::prost_types::Timestamp;
use tokio::sync::mpsc;

use crate::config::LogLevel;

/// `svcName` of the agent (`cmd/agent/main.go:46`).
pub const AGENT_ORIGINATOR: &str = "agent";
/// `svcName` of the computation runner (`cmd/computation-runner/main.go:28`).
pub const RUNNER_ORIGINATOR: &str = "computation-runner";
/// The protohandler's piece size for long messages.
const LOG_PIECE: usize = 500;

/// The statuses of `AgentEvent` (`agent/status_string.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Ready,
    Completed,
    Starting,
    Warning,
    Failed,
    Stopped,
}

impl Status {
    pub fn wire_name(self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Ready => "Ready",
            Status::Completed => "Completed",
            Status::Starting => "Starting",
            Status::Warning => "Warning",
            // These two are the state's name used as a status (`agent/service.go:247, 350`).
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        }
    }
}

/// The agent's logger and event publisher: writes through `tracing` and queues the wire message
/// for the log forwarder's stream.
#[derive(Debug, Clone)]
pub struct Telemetry {
    queue: mpsc::UnboundedSender<ClientStreamMessage>,
    level: LogLevel,
}

impl Telemetry {
    pub fn new(level: LogLevel) -> (Self, mpsc::UnboundedReceiver<ClientStreamMessage>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        (Telemetry { queue, level }, receiver)
    }

    pub fn debug(&self, message: &str) {
        tracing::debug!("{message}");
        self.log(LogLevel::Debug, message);
    }

    pub fn info(&self, message: &str) {
        tracing::info!("{message}");
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&self, message: &str) {
        tracing::warn!("{message}");
        self.log(LogLevel::Warn, message);
    }

    pub fn error(&self, message: &str) {
        tracing::error!("{message}");
        self.log(LogLevel::Error, message);
    }

    fn log(&self, level: LogLevel, message: &str) {
        if level < self.level {
            return;
        }
        let timestamp = now();
        for piece in pieces(message, LOG_PIECE) {
            self.send(client_stream_message::Message::AgentLog(AgentLog {
                message: piece.to_owned(),
                computation_id: String::new(),
                level: level.wire_name().into(),
                timestamp: Some(timestamp),
            }));
        }
    }

    /// An event of the agent itself: `event_type` is the state entered (or `Stopped`).
    pub fn agent_event(&self, computation_id: &str, event_type: &str, status: Status) {
        tracing::info!(computation_id, event_type, status = status.wire_name(), "event");
        self.send(client_stream_message::Message::AgentEvent(AgentEvent {
            event_type: event_type.into(),
            timestamp: Some(now()),
            computation_id: computation_id.into(),
            details: Vec::new(),
            originator: AGENT_ORIGINATOR.into(),
            status: status.wire_name().into(),
        }));
    }

    /// An event of the computation runner (it sets no timestamp).
    pub fn runner_event(&self, computation_id: &str, event_type: &str, status: Status) {
        tracing::info!(
            computation_id,
            event_type,
            status = status.wire_name(),
            "runner event"
        );
        self.send(client_stream_message::Message::AgentEvent(AgentEvent {
            event_type: event_type.into(),
            timestamp: None,
            computation_id: computation_id.into(),
            details: Vec::new(),
            originator: RUNNER_ORIGINATOR.into(),
            status: status.wire_name().into(),
        }));
    }

    fn send(&self, message: client_stream_message::Message) {
        // Nobody listening any more (the forwarder's stream is gone): the record is dropped, as
        // the real log forwarder drops it once its stream has failed.
        let _ = self.queue.send(ClientStreamMessage {
            message: Some(message),
        });
    }
}

/// `text` in pieces of at most `size` bytes, never splitting a character.
fn pieces(text: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, after) = rest.split_at(end);
        pieces.push(piece);
        rest = after;
    }
    pieces
}

pub fn now() -> Timestamp {
    let now = chrono::Utc::now();
    Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_in_500_byte_pieces_as_the_protohandler_cuts_them() {
        let text = "x".repeat(1100);
        let cut = pieces(&text, LOG_PIECE);
        assert_eq!(cut.iter().map(|p| p.len()).collect::<Vec<_>>(), [500, 500, 100]);
    }
}
