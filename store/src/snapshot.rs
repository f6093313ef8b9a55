//! Snapshots of aggregate state, so that a long history is not replayed on every load. A snapshot is a
//! cache, never a source of truth: it is signed with the platform's snapshot key (HMAC-SHA-256 over the
//! subject and the whole snapshot, so whoever can write the bucket but does not hold the key cannot
//! forge a state), it names the commit it was taken after, and a load uses it only if that commit is in
//! the log at that sequence, on that subject, with that version and hash; the commits after it are
//! verified against the chain from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A commit of a command sent with an idempotency key, remembered so that a retry is answered with
/// the first result at any age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedCommit {
    pub sequence: u64,
    /// The aggregate's version after the commit.
    pub version: u64,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The aggregate's `SNAPSHOT_VERSION` when it was taken; another one means the state changed shape.
    pub state_version: u32,
    /// Stream sequence of the last commit folded in.
    pub sequence: u64,
    pub version: u64,
    /// Hash of the last event folded in.
    pub hash: String,
    pub state: serde_json::Value,
    /// Idempotency records of keyed commits, by message id.
    pub keyed: HashMap<String, KeyedCommit>,
    /// HMAC-SHA-256 (hex) of the subject and of this snapshot without `mac`; see [`SignedSnapshots`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
}

/// The key snapshots are signed with: secret, and the same for every process of one platform.
#[derive(Clone)]
pub struct SnapshotKey(Arc<[u8]>);

impl SnapshotKey {
    /// At least 32 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, StoreError> {
        let bytes = bytes.into();
        if bytes.len() < 32 {
            return Err(StoreError::request("a snapshot key needs at least 32 bytes"));
        }
        Ok(Self(bytes.into()))
    }
}

impl std::fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotKey(..)")
    }
}

/// A snapshot store whose snapshots are signed on the way in and checked on the way out; the
/// repository only takes snapshots through one.
#[derive(Debug, Clone)]
pub struct SignedSnapshots {
    store: Arc<dyn SnapshotStore>,
    key: SnapshotKey,
}

impl SignedSnapshots {
    pub fn new(store: Arc<dyn SnapshotStore>, key: SnapshotKey) -> Self {
        Self { store, key }
    }

    fn mac(&self, subject: &str, snapshot: &Snapshot) -> Result<String, StoreError> {
        use hmac::{Hmac, Mac as _};
        let mut unsigned = snapshot.clone();
        unsigned.mac.clear();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key.0).map_err(StoreError::request)?;
        mac.update(subject.as_bytes());
        mac.update(b"\n");
        // `keyed` is a map: serialise it in key order so the same snapshot always gives the same bytes.
        let canonical = serde_json::to_value(&unsigned).map_err(StoreError::request)?;
        mac.update(&serde_json::to_vec(&canonical).map_err(StoreError::request)?);
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// The snapshot of `subject`, if there is one signed with this key; a forged or damaged one is a
    /// permanent error (the caller folds the whole history instead).
    pub async fn get(&self, subject: &str) -> Result<Option<Snapshot>, StoreError> {
        let Some(snapshot) = self.store.get(subject).await? else {
            return Ok(None);
        };
        let expected = self.mac(subject, &snapshot)?;
        // Constant-time comparison is not needed: the attacker learns nothing useful from timing
        // here, because a mismatch only makes the reader ignore the snapshot.
        if snapshot.mac != expected {
            return Err(StoreError::Tampered {
                subject: subject.to_owned(),
                sequence: snapshot.sequence,
                reason: "the snapshot's signature does not match".into(),
            });
        }
        Ok(Some(snapshot))
    }

    pub async fn put(&self, subject: &str, mut snapshot: Snapshot) -> Result<(), StoreError> {
        snapshot.mac = self.mac(subject, &snapshot)?;
        self.store.put(subject, &snapshot).await
    }
}

#[async_trait]
pub trait SnapshotStore: Send + Sync + std::fmt::Debug + 'static {
    async fn get(&self, subject: &str) -> Result<Option<Snapshot>, StoreError>;
    async fn put(&self, subject: &str, snapshot: &Snapshot) -> Result<(), StoreError>;
}

/// Snapshots in memory (tests, and a process that wants no shared snapshot store).
#[derive(Debug, Clone, Default)]
pub struct MemorySnapshots {
    snapshots: Arc<Mutex<HashMap<String, Snapshot>>>,
}

impl MemorySnapshots {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Snapshot>> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes a stored snapshot (for tests of what a load does with a forged one).
    pub fn tamper(&self, subject: &str, change: impl FnOnce(&mut Snapshot)) {
        if let Some(s) = self.map().get_mut(subject) {
            change(s);
        }
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn get(&self, subject: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.map().get(subject).cloned())
    }

    async fn put(&self, subject: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.map().insert(subject.to_owned(), snapshot.clone());
        Ok(())
    }
}

/// Snapshots in a JetStream key-value bucket (one entry per aggregate subject, latest only).
#[derive(Debug, Clone)]
pub struct KvSnapshots {
    kv: async_nats::jetstream::kv::Store,
}

impl KvSnapshots {
    pub async fn open(store: &crate::EventStore, bucket: &str) -> Result<Self, StoreError> {
        use async_nats::jetstream::{kv, stream::StorageType};
        let kv = store
            .jetstream()
            .create_or_update_key_value(kv::Config {
                bucket: bucket.to_owned(),
                description: "Prism: aggregate snapshots (a cache, verified against the event log)".into(),
                history: 1,
                storage: StorageType::File,
                num_replicas: store.config().replicas,
                ..Default::default()
            })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Self { kv })
    }
}

#[async_trait]
impl SnapshotStore for KvSnapshots {
    async fn get(&self, subject: &str) -> Result<Option<Snapshot>, StoreError> {
        let Some(entry) = self.kv.entry(subject).await.map_err(StoreError::unavailable)? else {
            return Ok(None);
        };
        if entry.value.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                sequence: entry.revision,
                source: e.into(),
            })
    }

    async fn put(&self, subject: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(snapshot).map_err(StoreError::request)?;
        self.kv
            .put(subject, bytes.into())
            .await
            .map(drop)
            .map_err(StoreError::unavailable)
    }
}
