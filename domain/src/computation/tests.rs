use super::*;
use crate::ids::{ComputationId, WorkspaceId};
use crate::testing::samples::{dataset_digest, participant, pid, sample_definition};
use crate::testing::{ctx, given};
use crate::values::ValueError;

fn create_with(definition: Definition, workspace: WorkspaceStanding) -> ComputationCommand {
    ComputationCommand::Create {
        id: ComputationId(uuid::Uuid::from_u128(1)),
        workspace_id: WorkspaceId(uuid::Uuid::from_u128(2)),
        workspace,
        definition,
    }
}

fn created() -> ComputationEvent {
    ComputationEvent::Created(ComputationCreated {
        id: ComputationId(uuid::Uuid::from_u128(1)),
        workspace_id: WorkspaceId(uuid::Uuid::from_u128(2)),
        definition: sample_definition(),
        created_by: ctx().actor,
        created_at: ctx().now,
    })
}

fn archived() -> ComputationEvent {
    ComputationEvent::Archived(ComputationArchived {
        reason: None,
        archived_by: ctx().actor,
        archived_at: ctx().now,
    })
}

fn rejects_definition(definition: Definition, expected: DefinitionError) {
    given::<Computation>([])
        .when(create_with(definition, WorkspaceStanding::Active))
        .then_rejects(ComputationError::Invalid(expected));
}

#[test]
fn a_valid_definition_is_created() {
    let state = given::<Computation>([])
        .when(create_with(sample_definition(), WorkspaceStanding::Active))
        .then_expect([created()]);
    assert_eq!(state.status, ComputationStatus::Active);
    assert_eq!(state.definition.result_consumers().count(), 1);
}

#[test]
fn computations_are_created_only_in_an_active_workspace() {
    given::<Computation>([])
        .when(create_with(sample_definition(), WorkspaceStanding::Archived))
        .then_rejects(ComputationError::WorkspaceArchived);
    given::<Computation>([])
        .when(create_with(sample_definition(), WorkspaceStanding::Missing))
        .then_rejects(ComputationError::WorkspaceNotFound);
}

#[test]
fn a_computation_is_created_once() {
    given::<Computation>([created()])
        .when(create_with(sample_definition(), WorkspaceStanding::Active))
        .then_rejects(ComputationError::AlreadyExists);
}

#[test]
fn a_computation_needs_a_name() {
    let mut d = sample_definition();
    d.name = " ".into();
    rejects_definition(d, ValueError::Empty { field: "name" }.into());
}

#[test]
fn a_computation_needs_an_owner() {
    let mut d = sample_definition();
    d.participants[0].roles.remove(&Role::Owner);
    rejects_definition(d, DefinitionError::NoOwner);
}

#[test]
fn a_participant_is_listed_once() {
    let mut d = sample_definition();
    d.participants.push(participant("bob", &[Role::Viewer]));
    rejects_definition(d, DefinitionError::DuplicateParticipant(pid("bob")));
}

#[test]
fn a_participant_has_at_least_one_role() {
    let mut d = sample_definition();
    d.participants.push(participant("dave", &[]));
    rejects_definition(d, DefinitionError::NoRole(pid("dave")));
}

#[test]
fn a_dataset_provider_needs_a_public_key() {
    let mut d = sample_definition();
    d.participants[1].public_key = None;
    rejects_definition(
        d,
        DefinitionError::PublicKeyRequired {
            participant: pid("bob"),
            role: Role::DatasetProvider,
        },
    );
}

#[test]
fn a_viewer_needs_no_public_key() {
    let mut d = sample_definition();
    d.participants.push(participant("eve", &[Role::Viewer]));
    given::<Computation>([])
        .when(create_with(d, WorkspaceStanding::Active))
        .outcome()
        .unwrap();
}

#[test]
fn a_dataset_provider_cannot_provide_the_algorithm() {
    let mut d = sample_definition();
    d.algorithm.as_mut().unwrap().provider = pid("bob");
    rejects_definition(
        d,
        DefinitionError::ProviderLacksRole {
            provider: pid("bob"),
            role: Role::AlgorithmProvider,
        },
    );
}

#[test]
fn an_asset_provider_must_be_a_participant() {
    let mut d = sample_definition();
    d.datasets[0].provider = pid("mallory");
    rejects_definition(
        d,
        DefinitionError::UnknownProvider {
            provider: pid("mallory"),
        },
    );
}

#[test]
fn a_dataset_digest_is_listed_once() {
    let mut d = sample_definition();
    d.datasets.push(d.datasets[0].clone());
    rejects_definition(d, DefinitionError::DuplicateDataset(dataset_digest()));
}

#[test]
fn an_update_records_only_real_changes_and_is_validated_as_a_whole() {
    let changes = ComputationChanges {
        name: Some("Rare disease study".into()),
        description: Some("Phase 2".into()),
        ..Default::default()
    };
    let state = given::<Computation>([created()])
        .when(ComputationCommand::Update(changes))
        .then_expect([ComputationEvent::Updated(ComputationUpdated {
            changes: ComputationChanges {
                description: Some("Phase 2".into()),
                ..Default::default()
            },
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    assert_eq!(state.definition.description, "Phase 2");

    let removes_owner = ComputationChanges {
        participants: Some(vec![participant("bob", &[Role::DatasetProvider])]),
        ..Default::default()
    };
    given::<Computation>([created()])
        .when(ComputationCommand::Update(removes_owner))
        .then_rejects(ComputationError::Invalid(DefinitionError::NoOwner));
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    let same = ComputationChanges {
        participants: Some(sample_definition().participants),
        ..Default::default()
    };
    given::<Computation>([created()])
        .when(ComputationCommand::Update(same))
        .then_expect([]);
}

#[test]
fn an_archived_computation_cannot_change() {
    given::<Computation>([created(), archived()])
        .when(ComputationCommand::Update(ComputationChanges {
            name: Some("x".into()),
            ..Default::default()
        }))
        .then_rejects(ComputationError::Archived);
    given::<Computation>([created(), archived()])
        .when(ComputationCommand::Archive { reason: None })
        .then_rejects(ComputationError::AlreadyArchived);
}

#[test]
fn an_unknown_computation_cannot_be_archived() {
    given::<Computation>([])
        .when(ComputationCommand::Archive { reason: None })
        .then_rejects(ComputationError::NotFound);
}

#[test]
fn events_round_trip_through_json() {
    let event = created();
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["event"], "created");
    assert_eq!(serde_json::from_value::<ComputationEvent>(json).unwrap(), event);
}

#[test]
fn text_with_control_characters_is_refused_before_it_reaches_the_log() {
    let mut d = sample_definition();
    d.datasets[0].name = "cohort\u{0}A".into();
    rejects_definition(
        d,
        ValueError::ControlCharacter {
            field: "dataset name",
            code: 0,
        }
        .into(),
    );
    given::<Computation>([created()])
        .when(ComputationCommand::Archive {
            reason: Some("done\u{7}".into()),
        })
        .then_rejects(
            ValueError::ControlCharacter {
                field: "reason",
                code: 7,
            }
            .into(),
        );
}

fn bob() -> crate::values::Email {
    crate::values::Email::parse("bob@example.org").unwrap()
}

#[test]
fn a_participant_is_a_user_id_or_an_address_and_nothing_else() {
    let user = crate::ids::UserId(uuid::Uuid::from_u128(9));
    assert_eq!(
        ParticipantId::parse(user.to_string()),
        Ok(ParticipantId::User(user))
    );
    assert_eq!(
        ParticipantId::parse("Bob@Example.org"),
        Ok(ParticipantId::Invited(bob()))
    );
    assert_eq!(
        ParticipantId::parse("hospital-a"),
        Err(ValueError::ParticipantId("hospital-a".into()))
    );
}

#[test]
fn an_address_and_its_accounts_id_are_the_same_participant() {
    let mut definition = sample_definition();
    let bob_by_id = ParticipantId::User(crate::ids::UserId::for_email(&bob()));
    definition.participants.push(Participant {
        id: bob_by_id.clone(),
        ..participant("carol", &[Role::Viewer])
    });
    rejects_definition(definition, DefinitionError::DuplicateParticipant(bob_by_id));
}

#[test]
fn custom_roles_alone_make_a_participant() {
    let mut definition = sample_definition();
    let mut dave = participant("dave", &[]);
    definition.participants.push(dave.clone());
    rejects_definition(definition.clone(), DefinitionError::NoRole(pid("dave")));
    dave.custom_roles = [crate::access::RoleName::parse("auditor").unwrap()].into();
    definition.participants.pop();
    definition.participants.push(dave);
    assert_eq!(definition.validate(), Ok(()));
}

#[test]
fn a_verified_address_links_its_pending_participant_and_the_assets_it_provides() {
    let user = crate::ids::UserId::for_email(&bob());
    let linked = ComputationEvent::ParticipantLinked(ParticipantLinked {
        email: bob(),
        user,
        linked_at: ctx().now,
    });
    let state = given::<Computation>([created()])
        .when(ComputationCommand::LinkParticipant { email: bob() })
        .then_expect([linked.clone()]);
    let now_bob = ParticipantId::User(user);
    assert!(state.definition.participant(&now_bob).is_some());
    assert_eq!(state.definition.datasets[0].provider, now_bob);
    assert_eq!(state.definition.validate(), Ok(()));

    // Linked already, or never named: nothing to do.
    given::<Computation>([created(), linked])
        .when(ComputationCommand::LinkParticipant { email: bob() })
        .then_expect([]);
    given::<Computation>([created()])
        .when(ComputationCommand::LinkParticipant {
            email: crate::values::Email::parse("mallory@example.org").unwrap(),
        })
        .then_expect([]);
    given::<Computation>([created(), archived()])
        .when(ComputationCommand::LinkParticipant { email: bob() })
        .then_expect([]);
}

mod attestation_policy {
    use prism_attestation::Policy;

    use super::*;
    use crate::ids::BackendId;

    fn strict() -> Policy {
        let mut policy = Policy::default();
        policy.sev_snp.vmpl = Some(2);
        policy
    }

    #[test]
    fn policies_are_versioned_and_a_backend_override_replaces_the_computations_own() {
        let backend = BackendId(uuid::Uuid::from_u128(9));
        let mut state = given::<Computation>([created()])
            .when(ComputationCommand::SetAttestationPolicy {
                policy: Box::default(),
                backend: None,
            })
            .then_expect([ComputationEvent::AttestationPolicySet(Box::new(
                AttestationPolicySet {
                    version: 1,
                    policy_sha256: hex::encode(Policy::default().digest()),
                    policy: Policy::default(),
                    backend: None,
                    set_by: ctx().actor,
                    set_at: ctx().now,
                },
            ))]);
        let events = state
            .decide(
                ComputationCommand::SetAttestationPolicy {
                    policy: Box::new(strict()),
                    backend: Some(backend),
                },
                &ctx(),
            )
            .unwrap();
        for event in &events {
            state.apply(event);
        }
        assert_eq!(state.policy_version, 2);
        assert_eq!(
            state.attestation_policy_for(Some(backend)).unwrap().policy,
            strict()
        );
        assert_eq!(state.attestation_policy_for(Some(backend)).unwrap().version, 2);
        assert_eq!(state.attestation_policy_for(None).unwrap().version, 1);
        let other = BackendId(uuid::Uuid::from_u128(10));
        assert_eq!(state.attestation_policy_for(Some(other)).unwrap().version, 1);

        // The same policy again is no new version.
        let again = state
            .decide(
                ComputationCommand::SetAttestationPolicy {
                    policy: Box::new(strict()),
                    backend: Some(backend),
                },
                &ctx(),
            )
            .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn an_archived_computations_policy_cannot_change() {
        given::<Computation>([created(), archived()])
            .when(ComputationCommand::SetAttestationPolicy {
                policy: Box::default(),
                backend: None,
            })
            .then_rejects(ComputationError::Archived);
    }
}

mod consent {
    use super::*;
    use crate::run::manifest::consent_message;
    use crate::testing::keys::sign_ed25519;

    fn active() -> Computation {
        given::<Computation>([created()]).state().clone()
    }

    fn sign(participant: &str, manifest_id: &str) -> ComputationCommand {
        ComputationCommand::SignConsent {
            participant: pid(participant),
            manifest_id: manifest_id.to_owned(),
            signature: sign_ed25519(&consent_message(manifest_id)),
        }
    }

    #[test]
    fn every_participant_with_a_key_must_sign_the_current_manifest() {
        let computation = active();
        let status = computation.consent_status().unwrap();
        // alice, bob and carol hold keys; nobody has signed yet.
        assert_eq!(status.missing, vec![pid("alice"), pid("bob"), pid("carol")]);
        let id = status.manifest_id;
        assert_eq!(id, computation.manifest().unwrap().id());

        let mut history = vec![created()];
        for name in ["alice", "bob", "carol"] {
            let events = given::<Computation>(history.clone())
                .when(sign(name, &id))
                .outcome()
                .unwrap();
            let [ComputationEvent::ConsentSigned(signed)] = events.as_slice() else {
                panic!("one consent event, got {events:?}");
            };
            assert_eq!(
                (signed.participant.clone(), signed.manifest_id.clone()),
                (pid(name), id.clone())
            );
            history.extend(events);
        }
        let state = given::<Computation>(history).state().clone();
        let status = state.consent_status().unwrap();
        assert!(status.is_complete(), "{status:?}");
        assert_eq!(status.signed.len(), 3);
    }

    #[test]
    fn signing_again_with_the_same_signature_records_nothing() {
        let id = active().manifest().unwrap().id();
        let events = given::<Computation>([created()])
            .when(sign("bob", &id))
            .outcome()
            .unwrap();
        given::<Computation>([created()].into_iter().chain(events))
            .when(sign("bob", &id))
            .then_expect([]);
    }

    #[test]
    fn consent_to_another_manifest_is_refused_naming_the_current_one() {
        let current = active().manifest().unwrap().id();
        let stale = "00".repeat(32);
        given::<Computation>([created()])
            .when(sign("bob", &stale))
            .then_rejects(ComputationError::ManifestChanged { current });
    }

    #[test]
    fn a_signature_that_does_not_verify_is_refused() {
        let id = active().manifest().unwrap().id();
        // Signed over another message: the bare id, without the consent prefix.
        given::<Computation>([created()])
            .when(ComputationCommand::SignConsent {
                participant: pid("bob"),
                manifest_id: id.clone(),
                signature: sign_ed25519(id.as_bytes()),
            })
            .then_rejects(ComputationError::Signature(
                crate::values::SignatureError::Invalid,
            ));
        let mut signature = sign_ed25519(&consent_message(&id));
        signature[10] ^= 1;
        given::<Computation>([created()])
            .when(ComputationCommand::SignConsent {
                participant: pid("bob"),
                manifest_id: id,
                signature,
            })
            .then_rejects(ComputationError::Signature(
                crate::values::SignatureError::Invalid,
            ));
    }

    #[test]
    fn only_participants_with_a_key_consent() {
        let id = active().manifest().unwrap().id();
        given::<Computation>([created()])
            .when(sign("mallory", &id))
            .then_rejects(ComputationError::NotASigner(pid("mallory")));
    }

    #[test]
    fn a_change_to_the_definition_needs_new_signatures() {
        let before = active().manifest().unwrap().id();
        let consented = given::<Computation>([created()])
            .when(sign("bob", &before))
            .outcome()
            .unwrap();
        let changed_name = ComputationChanges {
            name: Some("Renamed study".into()),
            ..Default::default()
        };
        let mut history: Vec<ComputationEvent> = [created()].into_iter().chain(consented).collect();
        // A new name is not in the manifest: the consent still holds.
        history.extend(
            given::<Computation>(history.clone())
                .when(ComputationCommand::Update(changed_name))
                .outcome()
                .unwrap(),
        );
        let renamed = given::<Computation>(history.clone()).state().clone();
        assert_eq!(renamed.manifest().unwrap().id(), before);
        assert!(!renamed.consent_status().unwrap().missing.contains(&pid("bob")));
        // Another dataset is: a new manifest id, which bob has not signed.
        let new_dataset = ComputationChanges {
            datasets: Some(vec![ExpectedAsset {
                provider: pid("bob"),
                hash: crate::values::Sha3Digest::of(b"another dataset"),
                name: "other.csv".into(),
            }]),
            ..Default::default()
        };
        history.extend(
            given::<Computation>(history.clone())
                .when(ComputationCommand::Update(new_dataset))
                .outcome()
                .unwrap(),
        );
        let changed = given::<Computation>(history.clone()).state().clone();
        let after = changed.manifest().unwrap().id();
        assert_ne!(after, before);
        assert!(changed.consent_status().unwrap().missing.contains(&pid("bob")));
        // ...and so does a new attestation policy.
        history.extend(
            given::<Computation>(history.clone())
                .when(ComputationCommand::SetAttestationPolicy {
                    policy: Box::new(serde_json::from_str(r#"{"sev_snp":{"minimum_guest_svn":1}}"#).unwrap()),
                    backend: None,
                })
                .outcome()
                .unwrap(),
        );
        let with_policy = given::<Computation>(history).state().clone();
        assert_ne!(with_policy.manifest().unwrap().id(), after);
    }

    #[test]
    fn an_archived_computation_takes_no_consent() {
        let id = active().manifest().unwrap().id();
        given::<Computation>([created(), archived()])
            .when(sign("bob", &id))
            .then_rejects(ComputationError::Archived);
    }

    #[test]
    fn consents_survive_a_snapshot() {
        let id = active().manifest().unwrap().id();
        let events = given::<Computation>([created()])
            .when(sign("bob", &id))
            .outcome()
            .unwrap();
        let state = given::<Computation>([created()].into_iter().chain(events))
            .state()
            .clone();
        let restored: Computation = serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        assert_eq!(restored, state);
    }
}
