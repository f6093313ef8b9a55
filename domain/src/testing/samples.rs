//! Sample participants and computation definitions, valid unless a test changes them.

use std::collections::BTreeSet;

use super::keys;
use crate::computation::{Definition, ExpectedAsset, Participant, Role};
use crate::ids::ParticipantId;
use crate::run::RunLimits;
use crate::values::Sha3Digest;

/// A participant named by the address `<name>@example.org` (a pending invitation until linked), or by
/// `name` itself when it is an address or a user id.
pub fn pid(name: &str) -> ParticipantId {
    let written = if name.contains('@') || uuid::Uuid::try_parse(name).is_ok() {
        name.to_owned()
    } else {
        format!("{name}@example.org")
    };
    ParticipantId::parse(written).expect("a valid sample participant id")
}

/// A participant with these roles, holding the sample Ed25519 key ([`keys::ed25519`]) exactly when
/// one of the roles needs a key.
pub fn participant(id: &str, roles: &[Role]) -> Participant {
    let roles: BTreeSet<Role> = roles.iter().copied().collect();
    let public_key = roles.iter().any(|r| r.needs_public_key()).then(keys::ed25519);
    Participant {
        id: pid(id),
        roles,
        custom_roles: BTreeSet::new(),
        public_key,
    }
}

/// The digest of the algorithm in [`sample_definition`].
pub fn algorithm_digest() -> Sha3Digest {
    Sha3Digest::of(b"algorithm")
}

/// The digest of the dataset in [`sample_definition`].
pub fn dataset_digest() -> Sha3Digest {
    Sha3Digest::of(b"dataset")
}

/// "Rare disease study": `alice` owns it and provides the algorithm, `bob` provides the one dataset,
/// `carol` receives the result; the three hold the sample key.
pub fn sample_definition() -> Definition {
    Definition {
        name: "Rare disease study".into(),
        description: String::new(),
        participants: vec![
            participant("alice", &[Role::Owner, Role::AlgorithmProvider]),
            participant("bob", &[Role::DatasetProvider]),
            participant("carol", &[Role::ResultConsumer]),
        ],
        algorithm: Some(ExpectedAsset {
            provider: pid("alice"),
            hash: algorithm_digest(),
            name: String::new(),
            asset: None,
        }),
        datasets: vec![ExpectedAsset {
            provider: pid("bob"),
            hash: dataset_digest(),
            name: String::new(),
            asset: None,
        }],
        limits: RunLimits::DEFAULT,
    }
}

/// The smallest valid definition: `alice` as owner, no key, no assets.
pub fn minimal_definition() -> Definition {
    Definition {
        name: "Minimal study".into(),
        description: String::new(),
        participants: vec![participant("alice", &[Role::Owner])],
        algorithm: None,
        datasets: Vec::new(),
        limits: RunLimits::DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_definitions_are_valid() {
        assert_eq!(sample_definition().validate(), Ok(()));
        assert_eq!(minimal_definition().validate(), Ok(()));
    }
}
