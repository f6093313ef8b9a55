//! Messages of the agent's stream that could not be sent, kept on disk until the stream is back
//! (upstream: `agent/cvms/api/grpc/storage/storage.go`, `pending_messages.json`).
//!
//! Upstream writes Go's `encoding/json` rendering of the protobuf structs; this file keeps each
//! message's protobuf encoding in base64 instead, so that what is resent is byte for byte what
//! would have been sent.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prism_proto::cvms::ClientStreamMessage;
use prism_proto::prost::Message as _;
use serde::{Deserialize, Serialize};

/// The file's name, as upstream names it.
pub const PENDING_FILE: &str = "pending_messages.json";

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// Base64 of the message's protobuf encoding.
    message: String,
    /// When it was put aside (RFC 3339).
    time: String,
}

/// The pending-messages file of one agent.
#[derive(Debug, Clone)]
pub struct PendingMessages {
    path: PathBuf,
}

impl PendingMessages {
    pub fn in_dir(dir: &Path) -> Self {
        PendingMessages {
            path: dir.join(PENDING_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored message, oldest first; a missing file holds none.
    pub fn load(&self) -> std::io::Result<Vec<ClientStreamMessage>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let stored: Vec<Stored> = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        stored
            .iter()
            .map(|entry| {
                let bytes = STANDARD.decode(&entry.message).map_err(std::io::Error::other)?;
                ClientStreamMessage::decode(bytes.as_slice()).map_err(std::io::Error::other)
            })
            .collect()
    }

    /// Appends `message` and writes the file at once, so it survives the process.
    pub fn add(&self, message: &ClientStreamMessage) -> std::io::Result<()> {
        let mut stored: Vec<Stored> = match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        stored.push(Stored {
            message: STANDARD.encode(message.encode_to_vec()),
            time: chrono::Utc::now().to_rfc3339(),
        });
        self.write(&stored)
    }

    /// Empties the file (`[]`, as upstream leaves it).
    pub fn clear(&self) -> std::io::Result<()> {
        self.write(&[])
    }

    fn write(&self, stored: &[Stored]) -> std::io::Result<()> {
        let text = serde_json::to_vec(stored).map_err(std::io::Error::other)?;
        // Written beside and renamed, so a crash never leaves half a file.
        let partial = self.path.with_extension("json.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(partial, &self.path)
    }
}
