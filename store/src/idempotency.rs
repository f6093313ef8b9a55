//! Idempotency records: what each `Idempotency-Key` was first used for.
//!
//! The repository already answers a retried command once it knows the aggregate and the commit is in
//! the log (the fingerprint is stored with the commit). Three things need a record besides: a create,
//! whose aggregate id the server picks (a retry must reach the same one); a command that changed
//! nothing and so left no commit (a retry must answer the same, not decide again); and a key whose first
//! attempt is still in flight (a second request with another body must be refused, not run). A record
//! is claimed atomically (exactly one request wins a key), shared by every process, and kept until
//! deleted: a key is remembered for good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecordedOutcome {
    /// Claimed; the command has not finished (or its process died before it could say).
    Pending,
    /// Decided and accepted without any change: nothing was stored.
    Unchanged { version: u64, sequence: u64 },
    /// Committed at this stream sequence.
    Committed { version: u64, sequence: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The aggregate the command went to.
    pub aggregate_id: String,
    /// Fingerprint of the request's content.
    pub fingerprint: String,
    pub outcome: RecordedOutcome,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request is the first with the key; `revision` lets it settle or release the record.
    Won { revision: u64 },
    /// Another request has the key already.
    Held {
        record: IdempotencyRecord,
        revision: u64,
    },
}

#[async_trait]
pub trait IdempotencyRecords: Send + Sync + std::fmt::Debug + 'static {
    /// Records `record` under `key` unless the key has a record already.
    async fn claim(&self, key: &str, record: &IdempotencyRecord) -> Result<Claim, StoreError>;
    /// Replaces the record if it is still at `revision` (a later writer wins otherwise).
    async fn settle(&self, key: &str, record: &IdempotencyRecord, revision: u64) -> Result<(), StoreError>;
    /// Forgets the record if it is still at `revision`, so the key can be used again (only the request
    /// that won the claim does this, and only when nothing was stored).
    async fn release(&self, key: &str, revision: u64) -> Result<(), StoreError>;
}

/// The last revision given out, and every record with its revision.
type Records = (u64, HashMap<String, (IdempotencyRecord, u64)>);

/// Records in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryIdempotency {
    records: Arc<Mutex<Records>>,
}

impl MemoryIdempotency {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl IdempotencyRecords for MemoryIdempotency {
    async fn claim(&self, key: &str, record: &IdempotencyRecord) -> Result<Claim, StoreError> {
        let mut guard = self.records();
        let (next, map) = &mut *guard;
        if let Some((record, revision)) = map.get(key) {
            return Ok(Claim::Held {
                record: record.clone(),
                revision: *revision,
            });
        }
        *next += 1;
        map.insert(key.to_owned(), (record.clone(), *next));
        Ok(Claim::Won { revision: *next })
    }

    async fn settle(&self, key: &str, record: &IdempotencyRecord, revision: u64) -> Result<(), StoreError> {
        let mut guard = self.records();
        let (next, map) = &mut *guard;
        if let Some(entry) = map.get_mut(key)
            && entry.1 == revision
        {
            *next += 1;
            *entry = (record.clone(), *next);
        }
        Ok(())
    }

    async fn release(&self, key: &str, revision: u64) -> Result<(), StoreError> {
        let mut guard = self.records();
        if guard.1.get(key).is_some_and(|(_, r)| *r == revision) {
            guard.1.remove(key);
        }
        Ok(())
    }
}

/// Records in a JetStream key-value bucket.
#[derive(Debug, Clone)]
pub struct KvIdempotency {
    kv: kv::Store,
}

/// How often a claim tries again when the key is released under it.
const CLAIM_ATTEMPTS: usize = 5;

impl KvIdempotency {
    /// Opens the bucket, creating it if needed (or bringing its settings to these). `retention` of
    /// zero keeps records for good.
    pub async fn open(
        store: &crate::EventStore,
        bucket: &str,
        retention: Duration,
    ) -> Result<Self, StoreError> {
        let kv = store
            .jetstream()
            .create_or_update_key_value(kv::Config {
                bucket: bucket.to_owned(),
                description: "Prism: Idempotency-Key → aggregate, request fingerprint and outcome".into(),
                history: 1,
                max_age: retention,
                storage: jetstream::stream::StorageType::File,
                num_replicas: store.config().replicas,
                ..Default::default()
            })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Self { kv })
    }

    fn encode(record: &IdempotencyRecord) -> Result<Bytes, StoreError> {
        serde_json::to_vec(record)
            .map(Bytes::from)
            .map_err(StoreError::request)
    }
}

#[async_trait]
impl IdempotencyRecords for KvIdempotency {
    async fn claim(&self, key: &str, record: &IdempotencyRecord) -> Result<Claim, StoreError> {
        // A key released (deleted) between our create and our read leaves a delete marker, which
        // `entry` answers with an empty value: the key is free again, so try to create it again.
        for _ in 0..CLAIM_ATTEMPTS {
            match self.kv.create(key, Self::encode(record)?).await {
                Ok(revision) => return Ok(Claim::Won { revision }),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::unavailable(e)),
            }
            let Some(entry) = self.kv.entry(key).await.map_err(StoreError::unavailable)? else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let record = serde_json::from_slice(&entry.value).map_err(|e| StoreError::Corrupt {
                sequence: entry.revision,
                source: e.into(),
            })?;
            return Ok(Claim::Held {
                record,
                revision: entry.revision,
            });
        }
        Err(StoreError::unavailable(
            "the idempotency record keeps changing concurrently; retry",
        ))
    }

    async fn settle(&self, key: &str, record: &IdempotencyRecord, revision: u64) -> Result<(), StoreError> {
        match self.kv.update(key, Self::encode(record)?, revision).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn release(&self, key: &str, revision: u64) -> Result<(), StoreError> {
        match self.kv.delete_expect_revision(key, Some(revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}
