//! The contract of [`BlobStore`], run against a JetStream object store (a nats-server per test) and
//! memory: what is put is got back byte for byte, replaced by a later put, and gone once deleted.

use bytes::Bytes;
use prism_store::{BlobStore, EventStore, MemoryBlobs, ObjectBlobs, StoreConfig};

async fn contract(blobs: &dyn BlobStore) {
    assert_eq!(blobs.get("a.1").await.unwrap(), None);
    // Larger than a NATS message and than one object chunk: kept in pieces, read back whole.
    let large: Bytes = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    blobs.put("a.1", large.clone()).await.unwrap();
    assert_eq!(blobs.get("a.1").await.unwrap(), Some(large));
    blobs.put("a.1", Bytes::from_static(b"replaced")).await.unwrap();
    blobs.put("b.2", Bytes::from_static(b"other")).await.unwrap();
    assert_eq!(
        blobs.get("a.1").await.unwrap(),
        Some(Bytes::from_static(b"replaced"))
    );
    blobs.delete("a.1").await.unwrap();
    assert_eq!(blobs.get("a.1").await.unwrap(), None);
    // Deleting what is not there is no failure.
    blobs.delete("a.1").await.unwrap();
    blobs.delete("never").await.unwrap();
    assert_eq!(
        blobs.get("b.2").await.unwrap(),
        Some(Bytes::from_static(b"other"))
    );
}

#[tokio::test]
async fn memory_blobs_keep_the_contract() {
    contract(&MemoryBlobs::default()).await;
}

#[tokio::test]
async fn object_store_blobs_keep_the_contract() {
    let server = prism_embedded::NatsServer::start_temp()
        .await
        .expect("nats-server starts");
    let store = EventStore::connect(&server.url(), StoreConfig::default())
        .await
        .expect("the store opens");
    let blobs = ObjectBlobs::open(&store, "PRISM_TEST_BLOBS").await.unwrap();
    contract(&blobs).await;
    // Opening the bucket again finds what it holds.
    blobs.put("c.3", Bytes::from_static(b"kept")).await.unwrap();
    let again = ObjectBlobs::open(&store, "PRISM_TEST_BLOBS").await.unwrap();
    assert_eq!(again.get("c.3").await.unwrap(), Some(Bytes::from_static(b"kept")));
}
