//! Prism's consent check, which upstream's agent does not have: before taking a run request, the
//! agent checks for itself that the request is what every participant agreed to.
//!
//! The request carries, in Prism's extension field ([`prism_proto::prism`]), the run's manifest in
//! its canonical encoding and every participant's signature over `prism-consent-v1:<manifest id>`,
//! the id being the SHA-256 of that encoding (`docs/manifest.md`). The agent refuses the request
//! unless
//! * every participant the manifest names with a key has signed, and each signature verifies with
//!   that key;
//! * the request asks for exactly what the manifest says: the algorithm's digest and its
//!   provider's key, each dataset's digest, file name and provider's key, and the result
//!   consumers' keys.
//!
//! The manifest is read as JSON with `serde_json`; its digests as hex, its keys as base64 DER.

use std::collections::BTreeSet;

use base64::Engine as _;
use prism_proto::cvms::ComputationRunReq;
use prism_proto::prism::RunConsent;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::auth::ParticipantKey;

/// What a participant signs to consent (`prism_domain::run::manifest::consent_message`).
fn consent_message(manifest_id: &str) -> Vec<u8> {
    format!("prism-consent-v1:{manifest_id}").into_bytes()
}

fn text<'a>(value: &'a Value, field: &str) -> Result<&'a str, String> {
    value[field]
        .as_str()
        .ok_or_else(|| format!("the manifest's `{field}` is missing"))
}

/// The DER key of the participant `id` in the manifest.
fn key_of(manifest: &Value, id: &str) -> Result<Vec<u8>, String> {
    let participant = manifest["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == id)
        .ok_or_else(|| format!("the manifest names `{id}` but not as a participant"))?;
    let key = text(participant, "public_key")?;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| format!("`{id}`'s key in the manifest is not base64"))
}

/// Checks `request` against `consent`; `Err` says why the request is refused.
pub fn check(request: &ComputationRunReq, consent: &RunConsent) -> Result<(), String> {
    let manifest: Value =
        serde_json::from_slice(&consent.manifest).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if manifest["format"] != "prism-manifest-v1" {
        return Err("the manifest is not prism-manifest-v1".into());
    }
    let manifest_id = hex::encode(Sha256::digest(&consent.manifest));
    let message = consent_message(&manifest_id);

    // Everyone with a key has signed this manifest.
    for participant in manifest["participants"].as_array().into_iter().flatten() {
        let id = text(participant, "id")?;
        if participant["public_key"].is_null() {
            continue;
        }
        let key = ParticipantKey::from_spki_der(&key_of(&manifest, id)?)
            .map_err(|e| format!("`{id}`'s key: {e}"))?;
        let signed = consent
            .consents
            .iter()
            .filter(|c| c.participant == id)
            .any(|c| key.verifies_message(&message, &c.signature));
        if !signed {
            return Err(format!("`{id}` has not consented to manifest {manifest_id}"));
        }
    }

    // The request is the manifest's.
    let asset = |value: &Value| -> Result<(Vec<u8>, String, Vec<u8>), String> {
        let digest = hex::decode(text(value, "sha3_256")?).map_err(|_| "a digest is not hex".to_owned())?;
        Ok((
            digest,
            text(value, "file_name")?.to_owned(),
            key_of(&manifest, text(value, "provider")?)?,
        ))
    };
    let algorithm = request
        .algorithm
        .as_ref()
        .ok_or("the request declares no algorithm")?;
    let (digest, _, key) = asset(&manifest["algorithm"])?;
    if algorithm.hash != digest || algorithm.user_key != key {
        return Err(format!("the algorithm is not the one of manifest {manifest_id}"));
    }
    let declared: BTreeSet<(Vec<u8>, String, Vec<u8>)> = manifest["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(asset)
        .collect::<Result<_, _>>()?;
    let requested: BTreeSet<(Vec<u8>, String, Vec<u8>)> = request
        .datasets
        .iter()
        .map(|d| (d.hash.clone(), d.filename.clone(), d.user_key.clone()))
        .collect();
    if declared != requested || requested.len() != request.datasets.len() {
        return Err(format!("the datasets are not those of manifest {manifest_id}"));
    }
    let consumers: BTreeSet<Vec<u8>> = manifest["result_consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| key_of(&manifest, id.as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let requested: BTreeSet<Vec<u8>> = request
        .result_consumers
        .iter()
        .map(|c| c.user_key.clone())
        .collect();
    if consumers != requested {
        return Err(format!(
            "the result consumers are not those of manifest {manifest_id}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_proto::cvms::{Algorithm, Dataset, ResultConsumer};
    use prism_proto::prism::ParticipantConsent;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

    /// An Ed25519 participant: its key pair and its SubjectPublicKeyInfo (RFC 8410).
    fn participant(seed: u8) -> (Ed25519KeyPair, Vec<u8>) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let mut spki = hex::decode("302a300506032b6570032100").unwrap();
        spki.extend_from_slice(pair.public_key().as_ref());
        (pair, spki)
    }

    struct Case {
        request: ComputationRunReq,
        consent: RunConsent,
    }

    /// Alice provides the algorithm, Bob a dataset and receives the result; both consented.
    fn case() -> Case {
        let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
        let (alice, alice_key) = participant(1);
        let (bob, bob_key) = participant(2);
        let manifest = json!({
            "algorithm": {"file_name": "algo.py", "provider": "alice", "sha3_256": "aa".repeat(32)},
            "attestation_policy_sha256": "00".repeat(32),
            "computation": "c",
            "datasets": [{"file_name": "data.csv", "provider": "bob", "sha3_256": "bb".repeat(32)}],
            "format": "prism-manifest-v1",
            "limits": {"max_run_seconds": 3600},
            "participants": [
                {"id": "alice", "public_key": b64(&alice_key), "roles": ["algorithm_provider"]},
                {"id": "bob", "public_key": b64(&bob_key), "roles": ["dataset_provider", "result_consumer"]},
                {"id": "carol", "public_key": null, "roles": ["owner"]}
            ],
            "result_consumers": ["bob"]
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let message = consent_message(&hex::encode(Sha256::digest(&manifest)));
        let consent = RunConsent {
            manifest,
            consents: vec![
                ParticipantConsent {
                    participant: "alice".into(),
                    signature: alice.sign(&message).as_ref().to_vec(),
                },
                ParticipantConsent {
                    participant: "bob".into(),
                    signature: bob.sign(&message).as_ref().to_vec(),
                },
            ],
        };
        let request = ComputationRunReq {
            id: "run".into(),
            algorithm: Some(Algorithm {
                hash: vec![0xaa; 32],
                user_key: alice_key,
                ..Default::default()
            }),
            datasets: vec![Dataset {
                hash: vec![0xbb; 32],
                user_key: bob_key.clone(),
                filename: "data.csv".into(),
                ..Default::default()
            }],
            result_consumers: vec![ResultConsumer { user_key: bob_key }],
            ..Default::default()
        };
        Case { request, consent }
    }

    #[test]
    fn a_request_everyone_consented_to_is_taken() {
        let case = case();
        assert_eq!(check(&case.request, &case.consent), Ok(()));
    }

    #[test]
    fn a_missing_or_false_signature_is_refused() {
        let mut case = case();
        case.consent.consents.pop();
        assert!(
            check(&case.request, &case.consent)
                .unwrap_err()
                .contains("`bob` has not consented")
        );
        let mut case = self::case();
        case.consent.consents[0].signature[0] ^= 1;
        assert!(
            check(&case.request, &case.consent)
                .unwrap_err()
                .contains("`alice` has not consented")
        );
    }

    #[test]
    fn a_request_that_is_not_the_manifest_is_refused() {
        let mut case = case();
        case.request.datasets[0].hash = vec![0xcc; 32];
        assert!(
            check(&case.request, &case.consent)
                .unwrap_err()
                .contains("datasets")
        );
        let mut case = self::case();
        case.request.algorithm.as_mut().unwrap().user_key = participant(3).1;
        assert!(
            check(&case.request, &case.consent)
                .unwrap_err()
                .contains("algorithm")
        );
        let mut case = self::case();
        case.request.result_consumers.push(ResultConsumer {
            user_key: participant(3).1,
        });
        assert!(
            check(&case.request, &case.consent)
                .unwrap_err()
                .contains("result consumers")
        );
        // A manifest changed after the signatures: they are over another id.
        let mut case = self::case();
        let mut manifest: Value = serde_json::from_slice(&case.consent.manifest).unwrap();
        manifest["computation"] = json!("another");
        case.consent.manifest = serde_json::to_vec(&manifest).unwrap();
        assert!(
            check(&case.request, &case.consent)
                .unwrap_err()
                .contains("has not consented")
        );
    }
}
