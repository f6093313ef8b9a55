use super::*;
use crate::ids::{ComputationId, WorkspaceId};
use crate::run::RunLimits;
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

fn created_event() -> ComputationCreated {
    ComputationCreated {
        id: ComputationId(uuid::Uuid::from_u128(1)),
        workspace_id: WorkspaceId(uuid::Uuid::from_u128(2)),
        definition: sample_definition(),
        created_by: ctx().actor,
        created_at: ctx().now,
    }
}

fn created() -> ComputationEvent {
    ComputationEvent::Created(created_event())
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
fn a_computation_sets_its_runs_limit_within_bounds() {
    for seconds in [0, RunLimits::MIN_RUN_SECONDS - 1, RunLimits::MAX_RUN_SECONDS + 1] {
        let mut d = sample_definition();
        d.limits.max_run_seconds = seconds;
        rejects_definition(d, DefinitionError::RunLimit(seconds));
    }
    for seconds in [RunLimits::MIN_RUN_SECONDS, RunLimits::MAX_RUN_SECONDS] {
        let mut d = sample_definition();
        d.limits.max_run_seconds = seconds;
        let state = given::<Computation>([])
            .when(create_with(d.clone(), WorkspaceStanding::Active))
            .then_expect([ComputationEvent::Created(ComputationCreated {
                definition: d,
                ..created_event()
            })]);
        assert_eq!(state.manifest().unwrap().limits.max_run_seconds, seconds);
    }
}

#[test]
fn a_definition_recorded_before_limits_existed_has_the_default() {
    let mut json = serde_json::to_value(created()).unwrap();
    json["data"]["definition"]
        .as_object_mut()
        .unwrap()
        .remove("limits");
    let ComputationEvent::Created(event) = serde_json::from_value(json).unwrap() else {
        panic!("a created event");
    };
    assert_eq!(event.definition.limits, RunLimits::DEFAULT);
}

#[test]
fn an_update_changes_the_limit_and_with_it_the_manifest() {
    let history = [created()];
    let before = given::<Computation>(history.clone())
        .when(ComputationCommand::Update(ComputationChanges::default()))
        .then_expect([]);
    let limits = RunLimits { max_run_seconds: 600 };
    let after = given::<Computation>(history.clone())
        .when(ComputationCommand::Update(ComputationChanges {
            limits: Some(limits),
            ..Default::default()
        }))
        .then_expect([ComputationEvent::Updated(ComputationUpdated {
            changes: ComputationChanges {
                limits: Some(limits),
                ..Default::default()
            },
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    assert_eq!(after.manifest().unwrap().limits, limits);
    assert_ne!(after.manifest().unwrap().id(), before.manifest().unwrap().id());
    given::<Computation>(history)
        .when(ComputationCommand::Update(ComputationChanges {
            limits: Some(RunLimits { max_run_seconds: 1 }),
            ..Default::default()
        }))
        .then_rejects(ComputationError::Invalid(DefinitionError::RunLimit(1)));
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
                asset: None,
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

mod governance {
    use super::*;
    use crate::run::manifest::consent_message;
    use crate::testing::keys::sign_ed25519;

    /// Decides `command` on `history` and appends what it records.
    fn record(history: &mut Vec<ComputationEvent>, command: ComputationCommand) -> Vec<ComputationEvent> {
        let events = given::<Computation>(history.clone())
            .when(command)
            .outcome()
            .unwrap_or_else(|e| panic!("refused: {e}"));
        history.extend(events.clone());
        events
    }

    fn state(history: &[ComputationEvent]) -> Computation {
        given::<Computation>(history.to_vec()).state().clone()
    }

    fn sign(participant: &str, manifest_id: &str) -> ComputationCommand {
        ComputationCommand::SignConsent {
            participant: pid(participant),
            manifest_id: manifest_id.to_owned(),
            signature: sign_ed25519(&consent_message(manifest_id)),
        }
    }

    /// Every participant with a key (alice, bob, carol) signs the current manifest.
    fn consent_all(history: &mut Vec<ComputationEvent>) {
        let id = state(history).manifest().unwrap().id();
        for name in ["alice", "bob", "carol"] {
            record(history, sign(name, &id));
        }
    }

    fn approved() -> Vec<ComputationEvent> {
        let mut history = vec![created()];
        consent_all(&mut history);
        assert!(state(&history).approved);
        history
    }

    /// A change of the manifest: another dataset of bob's.
    fn new_dataset(seed: &[u8]) -> Change {
        Change::Update(ComputationChanges {
            datasets: Some(vec![ExpectedAsset {
                provider: pid("bob"),
                hash: crate::values::Sha3Digest::of(seed),
                name: "other.csv".into(),
                asset: None,
            }]),
            ..Default::default()
        })
    }

    fn propose(change: Change, by: &str) -> ComputationCommand {
        ComputationCommand::Change {
            change,
            by: Some(pid(by)),
        }
    }

    fn approve(proposal: u32, by: &str) -> ComputationCommand {
        ComputationCommand::ApproveChange {
            proposal,
            participant: pid(by),
        }
    }

    fn veto(proposal: u32, by: &str) -> ComputationCommand {
        ComputationCommand::VetoChange {
            proposal,
            participant: pid(by),
            reason: "not this cohort".into(),
        }
    }

    fn halt(by: &str) -> ComputationCommand {
        ComputationCommand::HaltExecution {
            participant: pid(by),
            reason: "audit of our dataset".into(),
        }
    }

    fn lift(by: &str) -> ComputationCommand {
        ComputationCommand::LiftHalt { participant: pid(by) }
    }

    fn names(events: &[ComputationEvent]) -> Vec<&'static str> {
        use crate::aggregate::DomainEvent as _;
        events.iter().map(|e| e.name()).collect()
    }

    #[test]
    fn a_computation_is_approved_once_every_participant_with_a_key_has_signed() {
        let mut history = vec![created()];
        let id = state(&history).manifest().unwrap().id();
        record(&mut history, sign("alice", &id));
        record(&mut history, sign("bob", &id));
        assert!(!state(&history).approved);
        record(&mut history, sign("carol", &id));
        assert!(state(&history).approved);
        // A new manifest awaiting signatures does not make it unapproved again.
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        record(&mut history, approve(1, "bob"));
        record(&mut history, approve(1, "carol"));
        let changed = state(&history);
        assert!(!changed.consent_status().unwrap().is_complete());
        assert!(changed.approved);
    }

    #[test]
    fn a_change_to_an_unapproved_computation_applies_directly() {
        let mut history = vec![created()];
        let id = state(&history).manifest().unwrap().id();
        // Two of three signatures: not approved yet.
        record(&mut history, sign("alice", &id));
        record(&mut history, sign("bob", &id));
        let events = record(&mut history, propose(new_dataset(b"x"), "alice"));
        assert_eq!(names(&events), ["updated"]);
        assert!(state(&history).proposals.is_empty());
        assert_ne!(state(&history).manifest().unwrap().id(), id);
    }

    #[test]
    fn a_change_of_the_manifest_of_an_approved_computation_becomes_a_proposal() {
        let history = approved();
        let before = state(&history).manifest().unwrap().id();
        let after = given::<Computation>(history.clone())
            .when(propose(new_dataset(b"x"), "alice"))
            .then_expect([ComputationEvent::ChangeProposed(Box::new(ChangeProposed {
                proposal: 1,
                change: new_dataset(b"x"),
                manifest_id: before.clone(),
                proposer: Some(pid("alice")),
                proposed_by: ctx().actor,
                proposed_at: ctx().now,
            }))]);
        // Nothing of it is applied: the manifest and its consents stand.
        assert_eq!(after.manifest().unwrap().id(), before);
        assert!(after.consent_status().unwrap().is_complete());
        let proposal = &after.proposals[&1];
        assert_eq!(proposal.status, ProposalStatus::Open);
        assert_eq!(proposal.approvals, [pid("alice")].into());

        // The plain update command and the policy command take the same path.
        let events = given::<Computation>(history.clone())
            .when(ComputationCommand::Update(ComputationChanges {
                datasets: Some(Vec::new()),
                ..Default::default()
            }))
            .outcome()
            .unwrap();
        assert_eq!(names(&events), ["change_proposed"]);
        let events = given::<Computation>(history)
            .when(ComputationCommand::SetAttestationPolicy {
                policy: Box::default(),
                backend: None,
            })
            .outcome()
            .unwrap();
        let [ComputationEvent::ChangeProposed(proposed)] = events.as_slice() else {
            panic!("a proposal, got {events:?}");
        };
        // Proposed by no participant: nobody's approval counts yet.
        assert_eq!(proposed.proposer, None);
    }

    #[test]
    fn a_change_that_leaves_the_manifest_as_it_is_applies_directly() {
        let history = approved();
        let events = given::<Computation>(history)
            .when(propose(
                Change::Update(ComputationChanges {
                    name: Some("Renamed study".into()),
                    ..Default::default()
                }),
                "alice",
            ))
            .outcome()
            .unwrap();
        assert_eq!(names(&events), ["updated"]);
    }

    #[test]
    fn a_proposal_is_adopted_when_every_participant_has_approved_by_default() {
        let mut history = approved();
        let before = state(&history).manifest().unwrap().id();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        let events = record(&mut history, approve(1, "bob"));
        assert_eq!(names(&events), ["change_approved"], "two of three is not all");
        assert_eq!(state(&history).manifest().unwrap().id(), before);

        let events = record(&mut history, approve(1, "carol"));
        assert_eq!(names(&events), ["change_approved", "change_adopted", "updated"]);
        let ComputationEvent::ChangeAdopted(adopted) = &events[1] else {
            unreachable!()
        };
        assert_eq!(adopted.required, 3);
        assert_eq!(adopted.approvals, [pid("alice"), pid("bob"), pid("carol")]);
        let after = state(&history);
        assert!(matches!(
            after.proposals[&1].status,
            ProposalStatus::Adopted { .. }
        ));
        // Consent is unchanged: the new manifest needs everyone's signature again.
        assert_ne!(after.manifest().unwrap().id(), before);
        assert_eq!(
            after.consent_status().unwrap().missing,
            [pid("alice"), pid("bob"), pid("carol")]
        );
    }

    #[test]
    fn with_a_threshold_of_two_of_three_two_approvals_adopt_a_change() {
        let mut history = vec![created()];
        // Not approved yet: the threshold is set directly.
        let events = record(
            &mut history,
            propose(Change::ChangeThreshold(ChangeThreshold::AtLeast(2)), "alice"),
        );
        assert_eq!(names(&events), ["change_threshold_set"]);
        consent_all(&mut history);
        assert_eq!(state(&history).required_approvals(), 2);

        record(&mut history, propose(new_dataset(b"x"), "alice"));
        let events = record(&mut history, approve(1, "carol"));
        assert_eq!(names(&events), ["change_approved", "change_adopted", "updated"]);
        // Carol's approval was the second; bob never needed to vote, and can no longer.
        given::<Computation>(history)
            .when(approve(1, "bob"))
            .then_rejects(ComputationError::ProposalClosed {
                proposal: 1,
                status: "adopted",
            });
    }

    #[test]
    fn changing_the_threshold_of_an_approved_computation_needs_the_current_threshold() {
        let mut history = approved();
        let events = record(
            &mut history,
            propose(Change::ChangeThreshold(ChangeThreshold::AtLeast(1)), "alice"),
        );
        assert_eq!(names(&events), ["change_proposed"]);
        assert_eq!(state(&history).change_threshold, ChangeThreshold::All);
        record(&mut history, approve(1, "bob"));
        let events = record(&mut history, approve(1, "carol"));
        assert_eq!(
            names(&events),
            ["change_approved", "change_adopted", "change_threshold_set"]
        );
        assert_eq!(state(&history).change_threshold, ChangeThreshold::AtLeast(1));
        // Now one participant decides alone: the proposal is adopted as it is made.
        let events = record(&mut history, propose(new_dataset(b"y"), "bob"));
        assert_eq!(names(&events), ["change_proposed", "change_adopted", "updated"]);
    }

    #[test]
    fn a_threshold_is_between_one_and_the_number_of_participants_with_a_key() {
        given::<Computation>([created()])
            .when(propose(
                Change::ChangeThreshold(ChangeThreshold::AtLeast(4)),
                "alice",
            ))
            .then_rejects(ComputationError::ThresholdOutOfRange {
                threshold: 4,
                participants: 3,
            });
        given::<Computation>([created()])
            .when(propose(
                Change::ChangeThreshold(ChangeThreshold::AtLeast(0)),
                "alice",
            ))
            .then_rejects(ComputationError::ThresholdOutOfRange {
                threshold: 0,
                participants: 3,
            });
        assert_eq!(
            serde_json::from_str::<ChangeThreshold>("\"all\"").unwrap(),
            ChangeThreshold::All
        );
        assert_eq!(
            serde_json::from_str::<ChangeThreshold>("2").unwrap(),
            ChangeThreshold::AtLeast(2)
        );
        assert!(serde_json::from_str::<ChangeThreshold>("0").is_err());
        assert!(serde_json::from_str::<ChangeThreshold>("\"most\"").is_err());
        assert_eq!(serde_json::to_string(&ChangeThreshold::All).unwrap(), "\"all\"");
    }

    #[test]
    fn a_lowered_threshold_adopts_a_proposal_that_already_meets_it() {
        let mut history = approved();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        record(&mut history, approve(1, "bob"));
        record(
            &mut history,
            propose(Change::ChangeThreshold(ChangeThreshold::AtLeast(2)), "alice"),
        );
        record(&mut history, approve(2, "bob"));
        let events = record(&mut history, approve(2, "carol"));
        assert_eq!(
            names(&events),
            [
                "change_approved",
                "change_adopted",
                "change_threshold_set",
                "change_adopted",
                "updated"
            ]
        );
        assert!(matches!(
            state(&history).proposals[&1].status,
            ProposalStatus::Adopted { .. }
        ));
    }

    #[test]
    fn a_veto_ends_a_proposal() {
        let mut history = approved();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        record(&mut history, approve(1, "bob"));
        let events = record(&mut history, veto(1, "carol"));
        assert_eq!(names(&events), ["change_vetoed"]);
        let after = state(&history);
        assert_eq!(
            after.proposals[&1].status.as_str(),
            "vetoed",
            "{:?}",
            after.proposals[&1]
        );
        given::<Computation>(history.clone())
            .when(approve(1, "carol"))
            .then_rejects(ComputationError::ProposalClosed {
                proposal: 1,
                status: "vetoed",
            });
        // One who approved may still veto, until the proposal is adopted.
        let mut again = approved();
        record(&mut again, propose(new_dataset(b"x"), "alice"));
        let events = record(&mut again, veto(1, "alice"));
        assert_eq!(names(&events), ["change_vetoed"]);
        // A veto gives its reason.
        let mut history = approved();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        given::<Computation>(history)
            .when(ComputationCommand::VetoChange {
                proposal: 1,
                participant: pid("bob"),
                reason: " ".into(),
            })
            .then_rejects(ValueError::Empty { field: "reason" }.into());
    }

    #[test]
    fn only_participants_with_a_key_vote_veto_or_halt() {
        let mut history = vec![created()];
        // Dave takes part as a viewer, without a key; mallory does not take part at all.
        record(
            &mut history,
            ComputationCommand::Update(ComputationChanges {
                participants: Some(
                    sample_definition()
                        .participants
                        .into_iter()
                        .chain([participant("dave", &[Role::Viewer])])
                        .collect(),
                ),
                ..Default::default()
            }),
        );
        consent_all(&mut history);
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        for outsider in ["dave", "mallory"] {
            given::<Computation>(history.clone())
                .when(approve(1, outsider))
                .then_rejects(ComputationError::NotAParticipant(pid(outsider)));
            given::<Computation>(history.clone())
                .when(veto(1, outsider))
                .then_rejects(ComputationError::NotAParticipant(pid(outsider)));
            given::<Computation>(history.clone())
                .when(halt(outsider))
                .then_rejects(ComputationError::NotAParticipant(pid(outsider)));
        }
        // Nor does their proposal count as anyone's approval.
        let events = given::<Computation>(history)
            .when(propose(new_dataset(b"y"), "dave"))
            .outcome()
            .unwrap();
        let [ComputationEvent::ChangeProposed(proposed)] = events.as_slice() else {
            panic!("a proposal, got {events:?}");
        };
        assert_eq!(proposed.proposer, None);
    }

    #[test]
    fn a_participant_approves_once() {
        let mut history = approved();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        // The proposal is the proposer's approval already.
        given::<Computation>(history.clone())
            .when(approve(1, "alice"))
            .then_rejects(ComputationError::AlreadyApproved {
                proposal: 1,
                participant: pid("alice"),
            });
        record(&mut history, approve(1, "bob"));
        given::<Computation>(history.clone())
            .when(approve(1, "bob"))
            .then_rejects(ComputationError::AlreadyApproved {
                proposal: 1,
                participant: pid("bob"),
            });
        assert_eq!(
            state(&history).approvals_counted(&state(&history).proposals[&1]),
            2
        );
        given::<Computation>(history)
            .when(approve(7, "bob"))
            .then_rejects(ComputationError::ProposalNotFound(7));
    }

    #[test]
    fn a_proposal_made_for_another_manifest_is_superseded_and_cannot_be_adopted() {
        let mut history = approved();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        record(&mut history, propose(new_dataset(b"y"), "bob"));
        record(&mut history, approve(1, "bob"));
        // Adopting the first changes the manifest the second was proposed for, in the same commit.
        let events = record(&mut history, approve(1, "carol"));
        assert_eq!(
            names(&events),
            [
                "change_approved",
                "change_adopted",
                "updated",
                "change_superseded"
            ]
        );
        let current = state(&history).manifest().unwrap().id();
        let ComputationEvent::ChangeSuperseded(superseded) = &events[3] else {
            unreachable!()
        };
        assert_eq!((superseded.proposal, &superseded.manifest_id), (2, &current));
        for command in [approve(2, "alice"), veto(2, "carol")] {
            given::<Computation>(history.clone()).when(command).then_rejects(
                ComputationError::ProposalClosed {
                    proposal: 2,
                    status: "superseded",
                },
            );
        }
    }

    #[test]
    fn a_halt_by_two_holds_until_both_have_lifted_their_own() {
        let mut history = approved();
        assert_eq!(state(&history).execution_allowed(), Ok(()));
        let events = record(&mut history, halt("bob"));
        let [ComputationEvent::ExecutionHalted(halted)] = events.as_slice() else {
            panic!("a halt, got {events:?}");
        };
        assert_eq!(
            (halted.computation, &halted.participant, halted.reason.as_str()),
            (
                ComputationId(uuid::Uuid::from_u128(1)),
                &pid("bob"),
                "audit of our dataset"
            )
        );
        record(&mut history, halt("carol"));
        // Halting again is refused: the first reason stays on record.
        given::<Computation>(history.clone())
            .when(halt("bob"))
            .then_rejects(ComputationError::AlreadyHalted(pid("bob")));
        // Nobody lifts another's halt, not even one who never halted.
        given::<Computation>(history.clone())
            .when(lift("alice"))
            .then_rejects(ComputationError::NotHalted {
                participant: pid("alice"),
                halted_by: vec![pid("bob"), pid("carol")],
            });

        record(&mut history, lift("bob"));
        assert_eq!(
            state(&history).execution_allowed(),
            Err(ComputationError::Halted {
                by: vec![pid("carol")]
            })
        );
        given::<Computation>(history.clone())
            .when(lift("bob"))
            .then_rejects(ComputationError::NotHalted {
                participant: pid("bob"),
                halted_by: vec![pid("carol")],
            });
        record(&mut history, lift("carol"));
        assert_eq!(state(&history).execution_allowed(), Ok(()));
        assert!(state(&history).halts.is_empty());
    }

    #[test]
    fn a_run_is_refused_while_the_computation_is_halted() {
        let mut history = approved();
        record(&mut history, halt("carol"));
        let halted = state(&history);
        // Consents are complete: only the halt stands in the way.
        assert!(halted.consent_status().unwrap().is_complete());
        let refusal = halted.execution_allowed().unwrap_err();
        assert_eq!(
            refusal,
            ComputationError::Halted {
                by: vec![pid("carol")]
            }
        );
        assert!(refusal.to_string().contains("`carol@example.org`"), "{refusal}");
        assert_eq!(
            crate::aggregate::Rejection::kind(&refusal),
            crate::aggregate::RejectionKind::StateConflict
        );
        // A computation that was never approved can be halted as well: a party may withdraw at any time.
        let events = given::<Computation>([created()])
            .when(halt("bob"))
            .outcome()
            .unwrap();
        assert_eq!(names(&events), ["execution_halted"]);
        given::<Computation>([created(), archived()])
            .when(halt("bob"))
            .then_rejects(ComputationError::Archived);
    }

    #[test]
    fn governance_survives_a_snapshot_and_its_events_round_trip_through_json() {
        let mut history = approved();
        record(&mut history, propose(new_dataset(b"x"), "alice"));
        record(
            &mut history,
            ComputationCommand::SetAttestationPolicy {
                policy: Box::default(),
                backend: Some(crate::ids::BackendId(uuid::Uuid::from_u128(5))),
            },
        );
        record(&mut history, veto(2, "bob"));
        record(&mut history, halt("carol"));
        let state = state(&history);
        let restored: Computation = serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        assert_eq!(restored, state);
        for event in &history {
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(&serde_json::from_value::<ComputationEvent>(json).unwrap(), event);
        }
        let proposed = serde_json::to_value(&history[history.len() - 4]).unwrap();
        assert_eq!(proposed["event"], "change_proposed");
        assert!(
            proposed["data"]["change"]["update"]["datasets"].is_array(),
            "{proposed}"
        );
    }

    /// Assets of the workspace linked to the computation by their providers.
    mod linking {
        use super::*;
        use crate::asset::AssetKind;
        use crate::ids::AssetId;
        use crate::testing::samples::algorithm_digest;
        use crate::values::{FileName, Sha3Digest};

        fn asset(n: u128) -> AssetId {
            AssetId(uuid::Uuid::from_u128(0xa55e_0000 + n))
        }

        fn linked(kind: AssetKind, n: u128, provider: &str, content: &[u8], name: &str) -> LinkedAsset {
            LinkedAsset {
                asset: asset(n),
                kind,
                provider: pid(provider),
                hash: Sha3Digest::of(content),
                name: FileName::parse(name).unwrap(),
            }
        }

        /// Alice's algorithm asset `survival.py`.
        fn algorithm() -> LinkedAsset {
            linked(AssetKind::Algorithm, 1, "alice", b"survival", "survival.py")
        }

        /// Bob's dataset asset `cohort.csv`.
        fn dataset() -> LinkedAsset {
            linked(AssetKind::Dataset, 2, "bob", b"1,2,3", "cohort.csv")
        }

        fn link(asset: LinkedAsset, by: &str) -> ComputationCommand {
            propose(Change::LinkAsset(asset), by)
        }

        fn unlink(n: u128, by: &str) -> ComputationCommand {
            propose(Change::UnlinkAsset { asset: asset(n) }, by)
        }

        fn asset_linked(asset: LinkedAsset) -> ComputationEvent {
            ComputationEvent::AssetLinked(AssetLinked {
                asset,
                linked_by: ctx().actor,
                linked_at: ctx().now,
            })
        }

        #[test]
        fn a_provider_links_its_own_algorithm_and_dataset_into_the_manifest() {
            let mut history = vec![created()];
            let before = state(&history).manifest().unwrap();
            let events = record(&mut history, link(algorithm(), "alice"));
            assert_eq!(events, [asset_linked(algorithm())]);
            record(&mut history, link(dataset(), "bob"));
            let after = state(&history);
            let definition = &after.definition;
            // The algorithm is alice's asset now, in place of the one she declared; bob's dataset is one
            // more, next to the one he declared.
            assert_eq!(
                definition.algorithm,
                Some(ExpectedAsset {
                    provider: pid("alice"),
                    hash: Sha3Digest::of(b"survival"),
                    name: "survival.py".into(),
                    asset: Some(asset(1)),
                })
            );
            assert_eq!(definition.datasets.len(), 2);
            assert_eq!(definition.datasets[1].asset, Some(asset(2)));
            assert_eq!(definition.linked(asset(2)).unwrap().0, AssetKind::Dataset);
            // The manifest names them, digest and file name, and so needs new consent.
            let manifest = after.manifest().unwrap();
            assert_ne!(manifest.id(), before.id());
            let canonical = String::from_utf8(manifest.canonical_bytes()).unwrap();
            assert!(canonical.contains("survival.py"), "{canonical}");
            assert!(
                canonical.contains(Sha3Digest::of(b"1,2,3").as_str()),
                "{canonical}"
            );
            assert!(
                !canonical.contains(&asset(2).to_string()),
                "asset ids are not in the manifest"
            );
        }

        #[test]
        fn only_a_participant_with_the_matching_role_links_an_asset() {
            // Bob provides datasets, not the algorithm; carol only receives the result.
            let bobs_algorithm = linked(AssetKind::Algorithm, 3, "bob", b"other", "other.py");
            given::<Computation>([created()])
                .when(link(bobs_algorithm, "bob"))
                .then_rejects(ComputationError::NotAProvider {
                    participant: pid("bob"),
                    role: Role::AlgorithmProvider,
                });
            let carols_dataset = linked(AssetKind::Dataset, 4, "carol", b"4,5", "carol.csv");
            given::<Computation>([created()])
                .when(link(carols_dataset, "carol"))
                .then_rejects(ComputationError::NotAProvider {
                    participant: pid("carol"),
                    role: Role::DatasetProvider,
                });
            // Someone who is no participant at all (an administrator) has no such role either.
            given::<Computation>([created()])
                .when(link(dataset(), "admin"))
                .then_rejects(ComputationError::NotAProvider {
                    participant: pid("admin"),
                    role: Role::DatasetProvider,
                });
            given::<Computation>([created()])
                .when(ComputationCommand::Change {
                    change: Change::LinkAsset(dataset()),
                    by: None,
                })
                .then_rejects(ComputationError::NoParticipant);
        }

        #[test]
        fn a_provider_links_only_its_own_asset() {
            let mut definition = sample_definition();
            definition
                .participants
                .push(participant("dave", &[Role::DatasetProvider]));
            let history = [ComputationEvent::Created(ComputationCreated {
                definition,
                ..match created() {
                    ComputationEvent::Created(c) => c,
                    _ => unreachable!(),
                }
            })];
            // Dave holds the role, but the asset is bob's: bob is who will send its file.
            given::<Computation>(history)
                .when(link(dataset(), "dave"))
                .then_rejects(ComputationError::NotTheProvider {
                    asset: asset(2),
                    provider: pid("bob"),
                });
        }

        #[test]
        fn linking_twice_and_unlinking_what_is_not_linked_are_refused() {
            let mut history = vec![created()];
            record(&mut history, link(dataset(), "bob"));
            given::<Computation>(history.clone())
                .when(link(dataset(), "bob"))
                .then_rejects(ComputationError::AssetAlreadyLinked(asset(2)));
            given::<Computation>(history)
                .when(unlink(9, "bob"))
                .then_rejects(ComputationError::AssetNotLinked(asset(9)));
            for error in [
                ComputationError::AssetAlreadyLinked(asset(2)),
                ComputationError::AssetNotLinked(asset(9)),
            ] {
                assert_eq!(
                    crate::Rejection::kind(&error),
                    crate::RejectionKind::StateConflict
                );
            }
        }

        #[test]
        fn a_dataset_whose_file_name_or_digest_the_computation_has_is_refused() {
            let mut history = vec![created()];
            record(&mut history, link(dataset(), "bob"));
            let same_name = linked(AssetKind::Dataset, 5, "bob", b"7,8,9", "cohort.csv");
            given::<Computation>(history.clone())
                .when(link(same_name, "bob"))
                .then_rejects(ComputationError::DatasetNameTaken {
                    name: "cohort.csv".into(),
                    provider: pid("bob"),
                });
            // The sample definition's own dataset has this digest already.
            let mut same_digest = linked(AssetKind::Dataset, 6, "bob", b"", "again.csv");
            same_digest.hash = dataset_digest();
            given::<Computation>(history)
                .when(link(same_digest, "bob"))
                .then_rejects(ComputationError::DatasetDigestTaken {
                    hash: dataset_digest(),
                    provider: pid("bob"),
                });
        }

        #[test]
        fn an_algorithm_is_replaced_only_by_its_own_provider() {
            let mut definition = sample_definition();
            definition
                .participants
                .push(participant("dave", &[Role::AlgorithmProvider]));
            let history = vec![ComputationEvent::Created(ComputationCreated {
                definition,
                ..match created() {
                    ComputationEvent::Created(c) => c,
                    _ => unreachable!(),
                }
            })];
            let daves = linked(AssetKind::Algorithm, 7, "dave", b"dave", "dave.py");
            given::<Computation>(history.clone())
                .when(link(daves, "dave"))
                .then_rejects(ComputationError::AlgorithmProvidedByAnother {
                    provider: pid("alice"),
                });
            let replaced = given::<Computation>(history)
                .when(link(algorithm(), "alice"))
                .then_expect([asset_linked(algorithm())]);
            assert_ne!(replaced.definition.algorithm.unwrap().hash, algorithm_digest());
        }

        #[test]
        fn unlinking_takes_out_what_the_link_put_in_and_only_its_provider_does_it() {
            let mut history = vec![created()];
            record(&mut history, link(algorithm(), "alice"));
            record(&mut history, link(dataset(), "bob"));
            given::<Computation>(history.clone())
                .when(unlink(1, "bob"))
                .then_rejects(ComputationError::NotTheProvider {
                    asset: asset(1),
                    provider: pid("alice"),
                });
            let events = record(&mut history, unlink(1, "alice"));
            assert_eq!(
                events,
                [ComputationEvent::AssetUnlinked(AssetUnlinked {
                    asset: asset(1),
                    kind: AssetKind::Algorithm,
                    unlinked_by: ctx().actor,
                    unlinked_at: ctx().now,
                })]
            );
            record(&mut history, unlink(2, "bob"));
            let definition = state(&history).definition;
            assert_eq!(definition.algorithm, None);
            assert_eq!(definition.datasets, sample_definition().datasets);
        }

        #[test]
        fn on_an_approved_computation_a_link_is_a_proposal_adopted_as_any_change() {
            let mut history = approved();
            let approved_manifest = state(&history).manifest().unwrap().id();
            let events = record(&mut history, link(dataset(), "bob"));
            let [ComputationEvent::ChangeProposed(proposed)] = events.as_slice() else {
                panic!("a proposal, got {events:?}");
            };
            assert_eq!(proposed.change, Change::LinkAsset(dataset()));
            assert_eq!(proposed.proposer, Some(pid("bob")));
            // Nothing is linked until the participants agree.
            assert_eq!(state(&history).definition.linked(asset(2)), None);
            assert_eq!(state(&history).manifest().unwrap().id(), approved_manifest);
            record(&mut history, approve(1, "alice"));
            let events = record(&mut history, approve(1, "carol"));
            assert_eq!(
                names(&events),
                ["change_approved", "change_adopted", "asset_linked"]
            );
            assert!(state(&history).definition.linked(asset(2)).is_some());

            // Unlinking changes the manifest too, and is decided the same way; a veto ends it.
            let events = record(&mut history, unlink(2, "bob"));
            assert_eq!(names(&events), ["change_proposed"]);
            record(&mut history, veto(2, "carol"));
            assert!(state(&history).definition.linked(asset(2)).is_some());
            // Who may ask is checked before anything is proposed.
            given::<Computation>(history)
                .when(unlink(2, "alice"))
                .then_rejects(ComputationError::NotTheProvider {
                    asset: asset(2),
                    provider: pid("bob"),
                });
        }

        #[test]
        fn a_definition_names_an_asset_only_as_a_link_made_it() {
            let mut claimed = sample_definition();
            claimed.datasets[0].asset = Some(asset(2));
            given::<Computation>([])
                .when(create_with(claimed, WorkspaceStanding::Active))
                .then_rejects(ComputationError::AssetNotAsLinked(asset(2)));

            let mut history = vec![created()];
            record(&mut history, link(dataset(), "bob"));
            let linked_entry = state(&history).definition.datasets[1].clone();
            // An edit may keep the link as it is, and drop it…
            let kept = ComputationChanges {
                datasets: Some(vec![linked_entry.clone()]),
                ..Default::default()
            };
            record(&mut history.clone(), ComputationCommand::Update(kept));
            // …but not claim one, nor change what a link put in.
            let mut other = linked_entry.clone();
            other.hash = Sha3Digest::of(b"forged");
            let forged = ComputationChanges {
                datasets: Some(vec![linked_entry, other]),
                ..Default::default()
            };
            given::<Computation>(history)
                .when(ComputationCommand::Update(forged))
                .then_rejects(ComputationError::AssetNotAsLinked(asset(2)));
        }

        #[test]
        fn dataset_file_names_are_unique_within_a_computation() {
            let mut d = sample_definition();
            d.datasets[0].name = "cohort.csv".into();
            d.datasets.push(ExpectedAsset {
                provider: pid("bob"),
                hash: Sha3Digest::of(b"other"),
                name: "cohort.csv".into(),
                asset: None,
            });
            rejects_definition(d, DefinitionError::DuplicateDatasetName("cohort.csv".into()));
        }

        #[test]
        fn linked_assets_survive_a_snapshot() {
            let mut history = vec![created()];
            record(&mut history, link(algorithm(), "alice"));
            let state = state(&history);
            let restored: Computation =
                serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
            assert_eq!(restored, state);
            let json = serde_json::to_value(&history[1]).unwrap();
            assert_eq!(json["event"], "asset_linked");
            assert_eq!(json["data"]["asset"]["kind"], "algorithm");
        }
    }
}

mod import {
    use std::collections::BTreeMap;

    use prism_attestation::Policy;

    use super::*;
    use crate::ids::BackendId;

    fn strict() -> Policy {
        let mut policy = Policy::default();
        policy.sev_snp.vmpl = Some(2);
        policy
    }

    fn import(import: ComputationImport) -> ComputationCommand {
        ComputationCommand::Import {
            id: ComputationId(uuid::Uuid::from_u128(1)),
            workspace_id: WorkspaceId(uuid::Uuid::from_u128(2)),
            workspace: WorkspaceStanding::Active,
            import: Box::new(import),
        }
    }

    fn everything() -> ComputationImport {
        ComputationImport {
            definition: sample_definition(),
            attestation_policy: Some(Policy::default()),
            backend_policies: BTreeMap::from([(BackendId(uuid::Uuid::from_u128(9)), strict())]),
            change_threshold: ChangeThreshold::AtLeast(1),
            linked: Vec::new(),
        }
    }

    #[test]
    fn an_import_records_the_definition_policies_and_threshold_in_one_commit() {
        // What creating it and then setting each part records, one command after the other.
        let mut expected = vec![created()];
        let mut original = Computation::default();
        original.apply(&created());
        for command in [
            ComputationCommand::SetAttestationPolicy {
                policy: Box::default(),
                backend: None,
            },
            ComputationCommand::SetAttestationPolicy {
                policy: Box::new(strict()),
                backend: Some(BackendId(uuid::Uuid::from_u128(9))),
            },
            ComputationCommand::Change {
                change: Change::ChangeThreshold(ChangeThreshold::AtLeast(1)),
                by: None,
            },
        ] {
            for event in original.decide(command, &ctx()).unwrap() {
                original.apply(&event);
                expected.push(event);
            }
        }
        let state = given::<Computation>([])
            .when(import(everything()))
            .then_expect(expected);
        assert_eq!(state.status, ComputationStatus::Active);
        assert_eq!(state.change_threshold, ChangeThreshold::AtLeast(1));
        assert_eq!(state.policy_version, 2);
        assert_eq!(
            state
                .attestation_policy_for(Some(BackendId(uuid::Uuid::from_u128(9))))
                .unwrap()
                .policy,
            strict()
        );
        // Nothing of a history comes along: no consent, so not approved.
        assert!(!state.approved);
        assert!(state.consents.is_empty());
        // An imported computation exists: neither created nor imported again.
        let again = state.decide(import(everything()), &ctx());
        assert_eq!(again, Err(ComputationError::AlreadyExists));
    }

    #[test]
    fn an_import_with_the_defaults_is_a_creation() {
        given::<Computation>([])
            .when(import(ComputationImport {
                definition: sample_definition(),
                attestation_policy: None,
                backend_policies: BTreeMap::new(),
                change_threshold: ChangeThreshold::All,
                linked: Vec::new(),
            }))
            .then_expect([created()]);
    }

    #[test]
    fn an_import_follows_the_rules_of_each_part() {
        let mut no_owner = everything();
        no_owner.definition.participants[0].roles.remove(&Role::Owner);
        given::<Computation>([])
            .when(import(no_owner))
            .then_rejects(ComputationError::Invalid(DefinitionError::NoOwner));
        let participants = sample_definition()
            .participants
            .iter()
            .filter(|p| p.public_key.is_some())
            .count() as u32;
        let mut too_many = everything();
        too_many.change_threshold = ChangeThreshold::AtLeast(participants + 1);
        let refused = given::<Computation>([])
            .when(import(too_many))
            .outcome()
            .unwrap_err();
        assert!(
            matches!(refused, ComputationError::ThresholdOutOfRange { .. }),
            "{refused:?}"
        );
        let mut archived_workspace = import(everything());
        if let ComputationCommand::Import { workspace, .. } = &mut archived_workspace {
            *workspace = WorkspaceStanding::Archived;
        }
        given::<Computation>([])
            .when(archived_workspace)
            .then_rejects(ComputationError::WorkspaceArchived);
    }
}
