//! Run requests on the CVMS stream, cut into chunks as upstream's server cuts them and put together
//! again as the agent does (`agent/cvms/api/grpc/server.go` and `client.go` at v0.10.2): the encoded
//! `ComputationRunReq` goes in `RunReqChunks` of at most [`CHUNK_SIZE`] bytes under the request's id,
//! and a last, empty chunk with `is_last` ends it. The agent gives up on a request whose next chunk
//! takes longer than [`CHUNK_TIMEOUT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::cvms::{ComputationRunReq, RunReqChunks, ServerStreamMessage, server_stream_message};
use crate::prism::{RunConsent, consent_of, encode_with_consent};

/// The largest chunk: 1 MiB, as upstream cuts them.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// How long the agent waits for a request's next chunk before it forgets the request.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// The messages that carry `request`: every full 1 MiB of its encoding, what remains, then an empty
/// chunk marked `is_last` — the very sequence upstream sends (it marks the read that meets the end of
/// the data, which is always an empty one).
pub fn run_request_chunks(request: &ComputationRunReq) -> Vec<ServerStreamMessage> {
    run_request_chunks_with(request, None)
}

/// [`run_request_chunks`] of `request` carrying Prism's `consent` ([`crate::prism`]).
pub fn run_request_chunks_with(
    request: &ComputationRunReq,
    consent: Option<&RunConsent>,
) -> Vec<ServerStreamMessage> {
    let encoded = encode_with_consent(request, consent);
    let chunk = |data: &[u8], is_last: bool| ServerStreamMessage {
        message: Some(server_stream_message::Message::RunReqChunks(RunReqChunks {
            data: data.to_vec(),
            id: request.id.clone(),
            is_last,
        })),
    };
    encoded
        .chunks(CHUNK_SIZE)
        .map(|data| chunk(data, false))
        .chain(std::iter::once(chunk(&[], true)))
        .collect()
}

/// Why chunks did not make a request.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("the run request {id} does not decode: {source}")]
    Decode {
        id: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error("the run request {id} would exceed {limit} bytes")]
    TooLarge { id: String, limit: usize },
}

/// Puts run requests together from their chunks, several at once, by id; a request whose next chunk
/// comes later than [`CHUNK_TIMEOUT`] after the one before is forgotten, as the agent forgets it.
#[derive(Debug)]
pub struct RunRequestAssembler {
    pending: HashMap<String, Pending>,
    limit: usize,
    timeout: Duration,
}

#[derive(Debug)]
struct Pending {
    buffer: Vec<u8>,
    last_chunk: Instant,
}

impl RunRequestAssembler {
    /// An assembler that refuses requests larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            pending: HashMap::new(),
            limit,
            timeout: CHUNK_TIMEOUT,
        }
    }

    /// Waits `timeout` between chunks instead of [`CHUNK_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Takes one chunk received at `now`; answers the whole request when it was the last.
    pub fn add(
        &mut self,
        chunk: RunReqChunks,
        now: Instant,
    ) -> Result<Option<ComputationRunReq>, ChunkError> {
        Ok(self.add_with_consent(chunk, now)?.map(|(request, _)| request))
    }

    /// [`RunRequestAssembler::add`], answering also the consent Prism put in the request, if any.
    pub fn add_with_consent(
        &mut self,
        chunk: RunReqChunks,
        now: Instant,
    ) -> Result<Option<(ComputationRunReq, Option<RunConsent>)>, ChunkError> {
        let timeout = self.timeout;
        self.pending
            .retain(|_, pending| now.duration_since(pending.last_chunk) <= timeout);
        let pending = self.pending.entry(chunk.id.clone()).or_insert_with(|| Pending {
            buffer: Vec::new(),
            last_chunk: now,
        });
        if pending.buffer.len() + chunk.data.len() > self.limit {
            self.pending.remove(&chunk.id);
            return Err(ChunkError::TooLarge {
                id: chunk.id,
                limit: self.limit,
            });
        }
        pending.buffer.extend_from_slice(&chunk.data);
        pending.last_chunk = now;
        if !chunk.is_last {
            return Ok(None);
        }
        let buffer = self
            .pending
            .remove(&chunk.id)
            .map(|p| p.buffer)
            .unwrap_or_default();
        let request = ComputationRunReq::decode(buffer.as_slice())
            .map_err(|source| ChunkError::Decode { id: chunk.id, source })?;
        Ok(Some((request, consent_of(&buffer))))
    }

    /// How many requests are partly received.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
