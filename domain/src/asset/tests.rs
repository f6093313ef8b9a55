use super::*;
use crate::ids::{AssetId, ComputationId, UserId, WorkspaceId};
use crate::testing::{ctx, given};
use crate::values::{FileName, MimeType, Sha3Digest, ValueError};

fn id() -> AssetId {
    AssetId(uuid::Uuid::from_u128(7))
}

fn alice() -> UserId {
    UserId(uuid::Uuid::from_u128(0xa))
}

fn bob() -> UserId {
    UserId(uuid::Uuid::from_u128(0xb))
}

fn dataset() -> AssetRecord {
    AssetRecord {
        kind: AssetKind::Dataset,
        algorithm_type: None,
        mime_type: MimeType::parse("text/csv").unwrap(),
        sha3_256: Sha3Digest::of(b"1,2,3"),
        file_name: FileName::parse("cohort.csv").unwrap(),
        description: "Patients of 2025".into(),
    }
}

fn algorithm() -> AssetRecord {
    AssetRecord {
        kind: AssetKind::Algorithm,
        algorithm_type: Some(AlgorithmType::Python),
        mime_type: MimeType::parse("text/x-python").unwrap(),
        sha3_256: Sha3Digest::of(b"print(1)"),
        file_name: FileName::parse("survival.py").unwrap(),
        description: String::new(),
    }
}

fn register(record: AssetRecord) -> AssetCommand {
    AssetCommand::Register {
        id: id(),
        workspace_id: WorkspaceId(uuid::Uuid::from_u128(2)),
        owner: alice(),
        record,
    }
}

fn registered() -> AssetEvent {
    AssetEvent::Registered(AssetRegistered {
        id: id(),
        workspace_id: WorkspaceId(uuid::Uuid::from_u128(2)),
        owner: alice(),
        record: dataset(),
        registered_by: ctx().actor,
        registered_at: ctx().now,
    })
}

fn sample(bytes: &[u8]) -> Sample {
    use sha2::Digest as _;
    Sample {
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
        size: bytes.len() as u64,
        mime_type: MimeType::parse("text/csv").unwrap(),
    }
}

fn attached(bytes: &[u8]) -> AssetEvent {
    AssetEvent::SampleAttached(SampleAttached {
        sample: sample(bytes),
        replaced: None,
        attached_by: ctx().actor,
        attached_at: ctx().now,
    })
}

fn archived() -> AssetEvent {
    AssetEvent::Archived(AssetArchived {
        archived_by: ctx().actor,
        archived_at: ctx().now,
    })
}

#[test]
fn an_asset_is_registered_with_what_its_file_is() {
    let state = given::<Asset>([])
        .when(register(dataset()))
        .then_expect([registered()]);
    assert_eq!(state.status, AssetStatus::Active);
    assert_eq!(state.owner, Some(alice()));
    assert_eq!(state.record().file_name.as_str(), "cohort.csv");

    given::<Asset>([registered()])
        .when(register(dataset()))
        .then_rejects(AssetError::AlreadyExists);
}

#[test]
fn an_algorithm_says_how_it_runs_and_a_dataset_does_not() {
    given::<Asset>([]).when(register(algorithm())).outcome().unwrap();
    let mut untyped = algorithm();
    untyped.algorithm_type = None;
    given::<Asset>([])
        .when(register(untyped))
        .then_rejects(AssetError::AlgorithmTypeRequired);
    let mut typed = dataset();
    typed.algorithm_type = Some(AlgorithmType::Wasm);
    given::<Asset>([])
        .when(register(typed))
        .then_rejects(AssetError::AlgorithmTypeForDataset);
}

#[test]
fn a_description_is_text_of_bounded_length() {
    let mut record = dataset();
    record.description = "x".repeat(DESCRIPTION_MAX + 1);
    given::<Asset>([])
        .when(register(record))
        .then_rejects(AssetError::Invalid(ValueError::TooLong {
            field: "description",
            len: DESCRIPTION_MAX + 1,
            max: DESCRIPTION_MAX,
        }));
    let mut record = dataset();
    record.description = "bell\u{7}".into();
    given::<Asset>([])
        .when(register(record))
        .then_rejects(AssetError::Invalid(ValueError::ControlCharacter {
            field: "description",
            code: 7,
        }));
}

#[test]
fn only_the_description_and_the_mime_type_change_and_only_the_owner_changes_them() {
    let changes = AssetChanges {
        description: Some("Patients of 2025, anonymised".into()),
        mime_type: Some(MimeType::parse("text/csv").unwrap()),
    };
    let state = given::<Asset>([registered()])
        .when(AssetCommand::Update {
            by: alice(),
            changes: changes.clone(),
        })
        .then_expect([AssetEvent::Updated(AssetUpdated {
            // The MIME type is the same: only the description is recorded.
            changes: AssetChanges {
                description: changes.description.clone(),
                mime_type: None,
            },
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    assert_eq!(state.record().description, "Patients of 2025, anonymised");
    // The digest and the file name are not among what changes: there is no way to ask.
    assert_eq!(state.record().sha3_256, dataset().sha3_256);

    given::<Asset>([registered()])
        .when(AssetCommand::Update { by: bob(), changes })
        .then_rejects(AssetError::NotOwner { owner: alice() });
    given::<Asset>([registered()])
        .when(AssetCommand::Update {
            by: alice(),
            changes: AssetChanges::default(),
        })
        .then_expect([]);
}

#[test]
fn the_owner_attaches_replaces_and_removes_a_sample() {
    let state = given::<Asset>([registered()])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: sample(b"1,2"),
        })
        .then_expect([attached(b"1,2")]);
    assert_eq!(state.sample.as_ref().unwrap().sample, sample(b"1,2"));

    // The same sample again records nothing; another replaces it, naming what it replaced.
    given::<Asset>([registered(), attached(b"1,2")])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: sample(b"1,2"),
        })
        .then_expect([]);
    given::<Asset>([registered(), attached(b"1,2")])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: sample(b"3,4"),
        })
        .then_expect([AssetEvent::SampleAttached(SampleAttached {
            sample: sample(b"3,4"),
            replaced: Some(sample(b"1,2").sha256),
            attached_by: ctx().actor,
            attached_at: ctx().now,
        })]);

    let state = given::<Asset>([registered(), attached(b"1,2")])
        .when(AssetCommand::RemoveSample { by: alice() })
        .then_expect([AssetEvent::SampleRemoved(SampleRemoved {
            sha256: sample(b"1,2").sha256,
            removed_by: ctx().actor,
            removed_at: ctx().now,
        })]);
    assert_eq!(state.sample, None);
    // Nothing to remove: nothing happens.
    given::<Asset>([registered()])
        .when(AssetCommand::RemoveSample { by: alice() })
        .then_expect([]);
}

#[test]
fn a_sample_of_an_asset_that_is_not_the_callers_is_refused() {
    given::<Asset>([registered()])
        .when(AssetCommand::AttachSample {
            by: bob(),
            sample: sample(b"1,2"),
        })
        .then_rejects(AssetError::NotOwner { owner: alice() });
    given::<Asset>([registered(), attached(b"1,2")])
        .when(AssetCommand::RemoveSample { by: bob() })
        .then_rejects(AssetError::NotOwner { owner: alice() });
}

#[test]
fn a_sample_has_one_byte_to_ten_mebibytes_and_a_sha256_digest() {
    let mut largest = sample(b"x");
    largest.size = SAMPLE_MAX;
    given::<Asset>([registered()])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: largest.clone(),
        })
        .outcome()
        .unwrap();
    let mut too_large = largest;
    too_large.size = SAMPLE_MAX + 1;
    given::<Asset>([registered()])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: too_large,
        })
        .then_rejects(AssetError::SampleTooLarge {
            size: SAMPLE_MAX + 1,
            max: SAMPLE_MAX,
        });
    let mut empty = sample(b"");
    empty.size = 0;
    given::<Asset>([registered()])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: empty,
        })
        .then_rejects(AssetError::EmptySample);
    let mut upper = sample(b"x");
    upper.sha256 = upper.sha256.to_uppercase();
    given::<Asset>([registered()])
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: upper.clone(),
        })
        .then_rejects(AssetError::SampleDigest(upper.sha256));
}

#[test]
fn an_asset_linked_to_an_active_computation_is_not_archived() {
    let computation = ComputationId(uuid::Uuid::from_u128(1));
    given::<Asset>([registered()])
        .when(AssetCommand::Archive {
            by: alice(),
            linked_to: vec![computation],
        })
        .then_rejects(AssetError::StillLinked {
            computations: vec![computation],
        });
    let error = AssetError::StillLinked {
        computations: vec![computation],
    };
    assert!(error.to_string().contains(&computation.to_string()), "{error}");
}

#[test]
fn archiving_removes_the_sample_and_ends_every_change() {
    let state = given::<Asset>([registered(), attached(b"1,2")])
        .when(AssetCommand::Archive {
            by: alice(),
            linked_to: vec![],
        })
        .then_expect([
            AssetEvent::SampleRemoved(SampleRemoved {
                sha256: sample(b"1,2").sha256,
                removed_by: ctx().actor,
                removed_at: ctx().now,
            }),
            archived(),
        ]);
    assert_eq!(state.status, AssetStatus::Archived);
    assert_eq!(state.sample, None);

    let history = [registered(), archived()];
    given::<Asset>(history.clone())
        .when(AssetCommand::AttachSample {
            by: alice(),
            sample: sample(b"1,2"),
        })
        .then_rejects(AssetError::Archived);
    given::<Asset>(history.clone())
        .when(AssetCommand::Update {
            by: alice(),
            changes: AssetChanges::default(),
        })
        .then_rejects(AssetError::Archived);
    // Archiving again changes nothing; a stranger is told whose it is, not what state it is in.
    given::<Asset>(history.clone())
        .when(AssetCommand::Archive {
            by: alice(),
            linked_to: vec![],
        })
        .then_expect([]);
    given::<Asset>(history)
        .when(AssetCommand::Archive {
            by: bob(),
            linked_to: vec![],
        })
        .then_rejects(AssetError::NotOwner { owner: alice() });
}

#[test]
fn nothing_happens_to_an_asset_that_does_not_exist() {
    given::<Asset>([])
        .when(AssetCommand::RemoveSample { by: alice() })
        .then_rejects(AssetError::NotFound);
}

#[test]
fn events_and_state_round_trip_through_json() {
    let events = [registered(), attached(b"1,2"), archived()];
    for event in &events {
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(serde_json::from_value::<AssetEvent>(json).unwrap(), *event);
    }
    let state = Asset::from_events(&events);
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<Asset>(&json).unwrap(), state);
    // A file name that is a path never reads back from an event.
    let mut json = serde_json::to_value(registered()).unwrap();
    json["data"]["record"]["file_name"] = "../x".into();
    assert!(serde_json::from_value::<AssetEvent>(json).is_err());
}
