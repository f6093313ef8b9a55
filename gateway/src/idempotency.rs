//! `Idempotency-Key` records: which aggregate a key chose, and which request it was first used with.
//!
//! The repository already makes a command safe to retry once it knows the aggregate id: the key becomes
//! the commit's `Nats-Msg-Id` and a retry answers the first result. A create has no id until the server
//! picks one, so without a record a retry would pick another id and create a second resource. The
//! record lives in a JetStream key-value bucket, written with `create` (atomic: exactly one request wins
//! a key), which is shared by every gateway process and survives restarts.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::GatewayError;
use crate::problem::{Problem, ProblemKind};

/// What was recorded for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// The aggregate the command went to.
    id: Uuid,
    /// SHA-256 of the canonical request (method, path and parsed body).
    request: String,
}

/// A key claimed for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The aggregate id: the proposed one for the first request, the recorded one for a retry.
    pub id: Uuid,
    /// Passed to the repository as the idempotency key. Derived from the route as well as the client's
    /// key, so one key reused on two different operations of the same aggregate never replays the
    /// wrong one.
    pub command_key: String,
    record_key: String,
}

#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    kv: kv::Store,
}

impl IdempotencyStore {
    /// Opens the bucket, creating it if needed (or updating its settings to these).
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        retention: Duration,
        replicas: usize,
    ) -> Result<Self, GatewayError> {
        let kv = js
            .create_or_update_key_value(kv::Config {
                bucket: bucket.to_owned(),
                description: "Prism gateway: Idempotency-Key → aggregate id and request fingerprint".into(),
                history: 1,
                max_age: retention,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| GatewayError::Idempotency(e.to_string()))?;
        Ok(Self { kv })
    }

    /// Claims `key` for a request on `route` (e.g. `POST /workspaces`) whose canonical content hashes to
    /// `fingerprint`. The first request records `proposed`; a retry gets the recorded id back; the same
    /// key with a different request is refused (422).
    pub async fn claim(
        &self,
        route: &str,
        key: &str,
        fingerprint: &str,
        proposed: Uuid,
    ) -> Result<Claim, Problem> {
        let record_key = record_key(route, key);
        let command_key = record_key.clone();
        let mine = Record {
            id: proposed,
            request: fingerprint.to_owned(),
        };
        let value = serde_json::to_vec(&mine).map_err(|e| Problem::internal(&e))?;
        match self.kv.create(&record_key, value.into()).await {
            Ok(_) => {
                return Ok(Claim {
                    id: proposed,
                    command_key,
                    record_key,
                });
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable(&e)),
        }
        let stored = self
            .kv
            .get(&record_key)
            .await
            .map_err(|e| unavailable(&e))?
            // Expired or forgotten between our create and this read: the caller may simply retry.
            .ok_or_else(|| Problem::unavailable("the idempotency record changed concurrently; retry"))?;
        let stored: Record = serde_json::from_slice(&stored).map_err(|e| Problem::internal(&e))?;
        if stored.request != fingerprint {
            return Err(Problem::new(
                ProblemKind::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request; use a new key for a new request",
            ));
        }
        Ok(Claim {
            id: stored.id,
            command_key,
            record_key,
        })
    }

    /// Forgets a claim whose command was rejected: nothing was stored under it, so the client may reuse
    /// the key once it has corrected the request. Best effort — a leftover record only means the key
    /// stays bound to the rejected request until it expires.
    pub async fn release(&self, claim: &Claim) {
        if let Err(e) = self.kv.delete(&claim.record_key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "idempotency store unavailable");
    Problem::unavailable("the idempotency store is unavailable; retry shortly")
}

/// Key of the record: hashed, so any client key maps to a valid KV key of fixed length.
fn record_key(route: &str, key: &str) -> String {
    hex::encode(Sha256::digest(format!("{route}\n{key}")))
}

/// Fingerprint of a request: its route and its parsed body re-serialised, so formatting differences
/// (whitespace, key order of the client's JSON) do not make a genuine retry look like a new request.
pub fn fingerprint(route: &str, body: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    // Serialising the request types (strings, numbers, lists) cannot fail.
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::CreateWorkspace;

    #[test]
    fn record_keys_are_valid_kv_keys_and_scoped_by_route() {
        let a = record_key("POST /workspaces", "k");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, record_key("POST /x/computations", "k"));
        assert_eq!(a, record_key("POST /workspaces", "k"));
    }

    #[test]
    fn fingerprints_ignore_formatting_but_not_content() {
        let parse = |s: &str| serde_json::from_str::<CreateWorkspace>(s).unwrap();
        let one = fingerprint("POST /workspaces", &parse(r#"{"name":"a","description":"d"}"#));
        let same = fingerprint(
            "POST /workspaces",
            &parse(r#"{ "description": "d",  "name": "a" }"#),
        );
        let other = fingerprint("POST /workspaces", &parse(r#"{"name":"b","description":"d"}"#));
        assert_eq!(one, same);
        assert_ne!(one, other);
        assert_ne!(
            one,
            fingerprint("PATCH /workspaces", &parse(r#"{"name":"a","description":"d"}"#))
        );
    }
}
