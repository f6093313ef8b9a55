//! Blobs: bytes the platform keeps beside the log, which only ever records what identifies them (their
//! name and digest). An asset's sample is one: too large for an event, and something its owner may take
//! back, which an event, once in the log, never is.
//!
//! [`ObjectBlobs`] keeps them in a JetStream object store, on the same servers and with the same
//! replicas as the log; [`MemoryBlobs`] in memory, for tests. A blob is written whole before any event
//! names it, and read back whole; whoever reads one checks it against the digest the log recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, object_store};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncReadExt as _;

use crate::StoreError;

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Keeps `bytes` under `name`, replacing what was there.
    async fn put(&self, name: &str, bytes: Bytes) -> Result<(), StoreError>;
    /// The bytes kept under `name`, if any.
    async fn get(&self, name: &str) -> Result<Option<Bytes>, StoreError>;
    /// Forgets what is kept under `name`; nothing happens when there is nothing.
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
}

/// Blobs in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobs {
    blobs: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl MemoryBlobs {
    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bytes>> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names kept now, in order (for tests).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.blobs().keys().cloned().collect();
        names.sort();
        names
    }
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, name: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.blobs().insert(name.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.blobs().get(name).cloned())
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.blobs().remove(name);
        Ok(())
    }
}

/// Blobs in a JetStream object store bucket (file storage, the log's replicas).
#[derive(Clone)]
pub struct ObjectBlobs {
    bucket: object_store::ObjectStore,
}

impl std::fmt::Debug for ObjectBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobs").finish_non_exhaustive()
    }
}

impl ObjectBlobs {
    /// Opens the bucket, creating it if needed.
    pub async fn open(store: &crate::EventStore, bucket: &str) -> Result<Self, StoreError> {
        let bucket = store
            .jetstream()
            .create_object_store(object_store::Config {
                bucket: bucket.to_owned(),
                description: Some("Prism: bytes kept beside the log (asset samples), named by it".into()),
                storage: jetstream::stream::StorageType::File,
                num_replicas: store.config().replicas,
                ..Default::default()
            })
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Self { bucket })
    }
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn put(&self, name: &str, bytes: Bytes) -> Result<(), StoreError> {
        let mut reader: &[u8] = &bytes;
        self.bucket
            .put(name, &mut reader)
            .await
            .map(|_| ())
            .map_err(|e| match e.kind() {
                object_store::PutErrorKind::InvalidName => StoreError::request(e),
                _ => StoreError::unavailable(e),
            })
    }

    async fn get(&self, name: &str) -> Result<Option<Bytes>, StoreError> {
        let mut object = match self.bucket.get(name).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == object_store::GetErrorKind::InvalidName => {
                return Err(StoreError::request(e));
            }
            Err(e) => return Err(StoreError::unavailable(e)),
        };
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Some(Bytes::from(bytes)))
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.bucket.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}
