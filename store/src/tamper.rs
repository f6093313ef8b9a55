//! Rewriting the event log the way only someone with full control of the store could: every message
//! read, changed, dropped or moved, and the stream made again with the same settings. Tests use it
//! to show what the audit ledger detects; nothing in the platform does (the `testing` feature).

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::StoreError;
use crate::jetstream::{EventStore, stream_config};

/// One stored message as the store holds it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub sequence: u64,
    pub subject: String,
    headers: Option<HeaderMap>,
    pub payload: Bytes,
}

/// Reads the whole stream, lets `edit` change the messages, deletes the stream, makes it again
/// with the platform's settings, and publishes what `edit` returned, in that order (the sequences
/// are those of the new stream). Stop the platform's processes first: their consumers go with the
/// stream.
pub async fn rewrite(
    store: &EventStore,
    edit: impl FnOnce(Vec<RawMessage>) -> Vec<RawMessage>,
) -> Result<(), StoreError> {
    let js = store.jetstream();
    let name = store.config().stream.clone();
    let mut stream = js.get_stream(&name).await.map_err(StoreError::unavailable)?;
    let last = stream
        .info()
        .await
        .map_err(StoreError::request)?
        .state
        .last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        let Ok(message) = stream.direct_get(sequence).await else {
            continue;
        };
        messages.push(RawMessage {
            sequence,
            subject: message.subject.to_string(),
            headers: Some(message.headers.clone()),
            payload: message.payload.clone(),
        });
    }
    let messages = edit(messages);
    js.delete_stream(&name).await.map_err(StoreError::request)?;
    js.create_stream(stream_config(store.config()))
        .await
        .map_err(StoreError::request)?;
    for message in messages {
        // The stored headers hold the server's own (Nats-Sequence, Nats-Time-Stamp, …) besides
        // the commit's: keep only what a publisher sets.
        let mut headers = HeaderMap::new();
        if let Some(stored) = &message.headers {
            for (name, values) in stored.iter() {
                let name = name.to_string();
                let kept = !name.starts_with("Nats-") || name == "Nats-Msg-Id";
                if kept {
                    for value in values {
                        headers.append(name.as_str(), value.as_str());
                    }
                }
            }
        }
        js.publish_with_headers(message.subject, headers, message.payload)
            .await
            .map_err(StoreError::request)?
            .await
            .map_err(StoreError::request)?;
    }
    Ok(())
}
