use chrono::Duration;

use super::*;
use crate::aggregate::{Rejection, RejectionKind};
use crate::ids::{BackendId, CvmId, WorkspaceId};
use crate::testing::{ctx, given};

fn spec() -> CvmSpec {
    CvmSpec {
        provider: "cocos_manager".into(),
        vcpus: 2,
        memory_mib: 2048,
        platform: ConfidentialPlatform::SevSnp,
        ttl_seconds: 3600,
        labels: Default::default(),
    }
}

fn request(spec: CvmSpec) -> CvmCommand {
    CvmCommand::Request {
        id: CvmId(uuid::Uuid::from_u128(1)),
        workspace: WorkspaceId(uuid::Uuid::from_u128(2)),
        spec,
        run: None,
    }
}

fn requested() -> CvmEvent {
    CvmEvent::Requested(CvmRequested {
        id: CvmId(uuid::Uuid::from_u128(1)),
        workspace: WorkspaceId(uuid::Uuid::from_u128(2)),
        spec: spec(),
        run: None,
        expires_at: ctx().now + Duration::hours(1),
        requested_by: ctx().actor,
        requested_at: ctx().now,
    })
}

fn assigned() -> CvmEvent {
    CvmEvent::BackendAssigned(CvmBackendAssigned {
        backend: BackendId(uuid::Uuid::from_u128(3)),
        reason: "sev_snp, 3 of 8 VMs free".into(),
        hourly_cost_micros: Some(250_000),
        assigned_at: ctx().now,
    })
}

fn started() -> CvmEvent {
    CvmEvent::Started(CvmStarted {
        backend_ref: "vm-17".into(),
        agent_address: Some("10.0.0.7:7002".into()),
        test_attestation_root: None,
        started_at: ctx().now,
    })
}

fn online() -> CvmEvent {
    CvmEvent::Online(CvmOnline { at: ctx().now })
}

fn destroying(reason: DestroyReason) -> CvmEvent {
    CvmEvent::DestroyRequested(CvmDestroyRequested {
        reason,
        requested_by: ctx().actor,
        at: ctx().now,
    })
}

#[test]
fn a_requested_cvm_is_creating_until_its_ttl_ends() {
    let state = given::<Cvm>([]).when(request(spec())).then_expect([requested()]);
    assert_eq!(state.status, CvmStatus::Creating);
    assert!(!state.is_overdue(ctx().now));
    assert!(state.is_overdue(ctx().now + Duration::hours(1)));
}

#[test]
fn a_request_beyond_the_limits_is_refused() {
    let with = |change: fn(&mut CvmSpec)| {
        let mut spec = spec();
        change(&mut spec);
        request(spec)
    };
    let cases: [(CvmCommand, CvmError); 6] = [
        (with(|s| s.provider = String::new()), CvmError::Provider),
        (with(|s| s.provider = "a b".into()), CvmError::Provider),
        (with(|s| s.vcpus = 0), CvmError::Vcpus { max: VCPUS_MAX }),
        (
            with(|s| s.memory_mib = 64),
            CvmError::Memory {
                min: MEMORY_MIN_MIB,
                max: MEMORY_MAX_MIB,
            },
        ),
        (with(|s| s.ttl_seconds = 10), CvmError::Ttl { max_days: 30 }),
        (
            with(|s| s.ttl_seconds = TTL_MAX_SECONDS + 1),
            CvmError::Ttl { max_days: 30 },
        ),
    ];
    for (command, error) in cases {
        assert_eq!(error.kind(), RejectionKind::Invalid);
        given::<Cvm>([]).when(command).then_rejects(error);
    }
    given::<Cvm>([requested()])
        .when(request(spec()))
        .then_rejects(CvmError::AlreadyExists);
    given::<Cvm>([])
        .when(CvmCommand::MarkOnline)
        .then_rejects(CvmError::NotFound);
}

#[test]
fn the_lifecycle_goes_creating_starting_online_offline_and_back() {
    let state = given::<Cvm>([requested(), assigned()])
        .when(CvmCommand::MarkStarted {
            backend_ref: "vm-17".into(),
            agent_address: Some("10.0.0.7:7002".into()),
            test_attestation_root: None,
        })
        .then_expect([started()]);
    assert_eq!(state.status, CvmStatus::Starting);
    assert_eq!(state.hourly_cost_micros, Some(250_000));
    given::<Cvm>([requested(), assigned(), started()])
        .when(CvmCommand::MarkOnline)
        .then_expect([online()]);
    let silent_since = ctx().now - Duration::seconds(30);
    let state = given::<Cvm>([requested(), assigned(), started(), online()])
        .when(CvmCommand::MarkOffline {
            last_heard: silent_since,
        })
        .then_expect([CvmEvent::Offline(CvmOffline {
            last_heard: silent_since,
            at: ctx().now,
        })]);
    assert_eq!(state.status, CvmStatus::Offline);
    let offline = CvmEvent::Offline(CvmOffline {
        last_heard: silent_since,
        at: ctx().now,
    });
    given::<Cvm>([requested(), assigned(), started(), online(), offline])
        .when(CvmCommand::MarkOnline)
        .then_expect([online()]);
    // Saying it again changes nothing.
    given::<Cvm>([requested(), assigned(), started(), online()])
        .when(CvmCommand::MarkOnline)
        .then_expect([]);
}

#[test]
fn steps_out_of_order_are_refused() {
    // Started before a backend was chosen; online before it was made; destroyed before asked to be.
    given::<Cvm>([requested()])
        .when(CvmCommand::MarkStarted {
            backend_ref: "vm".into(),
            agent_address: None,
            test_attestation_root: None,
        })
        .then_rejects(CvmError::State {
            status: CvmStatus::Creating,
            action: "started",
        });
    given::<Cvm>([requested(), assigned()])
        .when(CvmCommand::MarkOnline)
        .then_rejects(CvmError::State {
            status: CvmStatus::Creating,
            action: "online",
        });
    let refused = CvmError::State {
        status: CvmStatus::Online,
        action: "destroyed before its destruction was asked for",
    };
    assert_eq!(refused.kind(), RejectionKind::StateConflict);
    given::<Cvm>([requested(), assigned(), started(), online()])
        .when(CvmCommand::MarkDestroyed)
        .then_rejects(refused);
    given::<Cvm>([requested(), assigned(), started()])
        .when(CvmCommand::AssignBackend {
            backend: BackendId(uuid::Uuid::from_u128(4)),
            reason: "later".into(),
            hourly_cost_micros: None,
        })
        .then_rejects(CvmError::State {
            status: CvmStatus::Starting,
            action: "given a backend",
        });
}

#[test]
fn destruction_is_asked_for_then_recorded_and_a_failed_cvm_is_cleaned_up() {
    let state = given::<Cvm>([requested(), assigned(), started(), online()])
        .when(CvmCommand::Destroy {
            reason: DestroyReason::TtlExpired,
        })
        .then_expect([destroying(DestroyReason::TtlExpired)]);
    assert_eq!(state.destroy_reason, Some(DestroyReason::TtlExpired));
    let state = given::<Cvm>([
        requested(),
        assigned(),
        started(),
        destroying(DestroyReason::Requested),
    ])
    .when(CvmCommand::MarkDestroyed)
    .then_expect([CvmEvent::Destroyed(CvmDestroyed { at: ctx().now })]);
    assert!(!state.status.is_live());
    given::<Cvm>([requested(), destroying(DestroyReason::Requested)])
        .when(CvmCommand::Destroy {
            reason: DestroyReason::Requested,
        })
        .then_expect([]);

    // A CVM that failed to start is recorded with why, and may still be destroyed.
    let failed = CvmEvent::Failed(CvmFailed {
        reason: "the manager refused: no capacity".into(),
        at: ctx().now,
    });
    let state = given::<Cvm>([requested(), assigned()])
        .when(CvmCommand::Fail {
            reason: "the manager refused: no capacity".into(),
        })
        .then_expect([failed.clone()]);
    assert_eq!(state.status, CvmStatus::Failed);
    given::<Cvm>([requested(), assigned(), failed])
        .when(CvmCommand::Destroy {
            reason: DestroyReason::Failed,
        })
        .then_expect([destroying(DestroyReason::Failed)]);
    given::<Cvm>([
        requested(),
        destroying(DestroyReason::Requested),
        CvmEvent::Destroyed(CvmDestroyed { at: ctx().now }),
    ])
    .when(CvmCommand::Fail {
        reason: "late".into(),
    })
    .then_rejects(CvmError::State {
        status: CvmStatus::Destroyed,
        action: "failed",
    });
}

fn log(text: &str) -> ReceivedMessage {
    ReceivedMessage {
        digest: format!(
            "{:064x}",
            text.len() * 7919 + text.bytes().map(usize::from).sum::<usize>()
        ),
        message: AgentMessage::Log {
            level: "INFO".into(),
            message: text.into(),
            computation_id: "run-1".into(),
            timestamp: None,
        },
    }
}

fn received(stream: AgentStream, message: &ReceivedMessage) -> CvmEvent {
    CvmEvent::AgentMessageReceived(CvmAgentMessageReceived {
        stream,
        digest: message.digest.clone(),
        message: message.message.clone(),
        received_at: ctx().now,
    })
}

#[test]
fn every_agent_message_is_an_event_and_one_sent_again_is_recorded_once() {
    let (a, b) = (log("algorithm received"), log("running"));
    let history = [requested(), assigned(), started(), online()];
    let state = given::<Cvm>(history.clone())
        .when(CvmCommand::RecordAgentMessages {
            stream: AgentStream::LogForwarder,
            // The same message twice in one batch counts once.
            messages: vec![a.clone(), b.clone(), a.clone()],
        })
        .then_expect([
            received(AgentStream::LogForwarder, &a),
            received(AgentStream::LogForwarder, &b),
        ]);
    assert_eq!(state.recent_messages.len(), 2);

    // After a reconnect the agent resends what it had pending: only the new one is recorded.
    let c = log("complete");
    let mut after = history.to_vec();
    after.extend([
        received(AgentStream::LogForwarder, &a),
        received(AgentStream::LogForwarder, &b),
    ]);
    given::<Cvm>(after)
        .when(CvmCommand::RecordAgentMessages {
            stream: AgentStream::LogForwarder,
            messages: vec![b.clone(), c.clone()],
        })
        .then_expect([received(AgentStream::LogForwarder, &c)]);

    // Nobody speaks for a CVM that is not made yet, or is gone.
    given::<Cvm>([requested()])
        .when(CvmCommand::RecordAgentMessages {
            stream: AgentStream::Agent,
            messages: vec![c],
        })
        .then_rejects(CvmError::State {
            status: CvmStatus::Creating,
            action: "heard from",
        });
}

#[test]
fn a_cvm_remembers_only_its_latest_messages() {
    let mut state = Cvm::default();
    for event in [requested(), assigned(), started(), online()] {
        crate::aggregate::Aggregate::apply(&mut state, &event);
    }
    for i in 0..RECENT_MESSAGES + 10 {
        let message = ReceivedMessage {
            digest: format!("{i:064x}"),
            message: log("x").message,
        };
        crate::aggregate::Aggregate::apply(&mut state, &received(AgentStream::Agent, &message));
    }
    assert_eq!(state.recent_messages.len(), RECENT_MESSAGES);
    assert_eq!(state.recent_messages.front(), Some(&format!("{:064x}", 10)));
}

#[test]
fn the_local_backend_cannot_be_asked_for_a_tee() {
    let mut local = spec();
    local.provider = "local".into();
    given::<Cvm>([])
        .when(request(local.clone()))
        .then_rejects(CvmError::LocalIsInsecure);
    local.platform = ConfidentialPlatform::None;
    assert!(given::<Cvm>([]).when(request(local)).outcome().is_ok());
}

mod attestation {
    use prism_attestation::binding::Binding;
    use prism_attestation::{HexBytes, Outcome, Platform, Policy, Verdict};

    use super::*;

    const NONCE: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const KEY: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    fn ask() -> CvmCommand {
        CvmCommand::RequestAttestation {
            nonce: NONCE.into(),
            agent_key_sha256: KEY.into(),
            expires_at: ctx().now + Duration::minutes(5),
        }
    }

    fn asked() -> CvmEvent {
        CvmEvent::AttestationRequested(CvmAttestationRequested {
            nonce: NONCE.into(),
            agent_key_sha256: KEY.into(),
            expires_at: ctx().now + Duration::minutes(5),
            requested_by: ctx().actor,
            at: ctx().now,
        })
    }

    fn appraisal(nonce: Option<&str>) -> CvmAttestationAppraised {
        CvmAttestationAppraised {
            evidence_base64: "ZXZpZGVuY2U=".into(),
            nonce: nonce.map(Into::into),
            expected_report_data: "00".repeat(64),
            expected_eat_nonce: NONCE.into(),
            test_attestation_root: None,
            policy: Policy::default(),
            policy_source: PolicySource::PlatformDefault,
            verdict: Verdict {
                outcome: Outcome::Verified,
                platform: Platform::SevSnp,
                binding: Binding::Fresh {
                    nonce: HexBytes(vec![1; 32]),
                    agent_key_sha256: HexBytes(vec![2; 32]),
                },
                failures: vec![],
                claims: None,
                evidence_sha256: HexBytes(vec![3; 32]),
                policy_sha256: HexBytes(Policy::default().digest().to_vec()),
                warnings: vec![],
            },
            ear: "header.payload.signature".into(),
            at: ctx().now,
        }
    }

    fn record(nonce: Option<&str>) -> CvmCommand {
        CvmCommand::RecordAttestation(Box::new(appraisal(nonce)))
    }

    fn appraised(nonce: Option<&str>) -> CvmEvent {
        CvmEvent::AttestationAppraised(Box::new(appraisal(nonce)))
    }

    #[test]
    fn a_nonce_is_issued_to_an_online_cvm_and_answered_once() {
        given::<Cvm>([requested(), assigned(), started(), online()])
            .when(ask())
            .then_expect([asked()]);
        let state = given::<Cvm>([requested(), assigned(), started(), online(), asked()])
            .when(record(Some(NONCE)))
            .then_expect([appraised(Some(NONCE))]);
        assert_eq!(state.attestation, Some(Outcome::Verified));
        assert!(state.pending_nonces.is_empty());
    }

    #[test]
    fn a_replayed_nonce_is_refused_both_as_an_answer_and_as_a_new_request() {
        let history = [
            requested(),
            assigned(),
            started(),
            online(),
            asked(),
            appraised(Some(NONCE)),
        ];
        given::<Cvm>(history.clone())
            .when(record(Some(NONCE)))
            .then_rejects(CvmError::NonceUsed(NONCE.into()));
        given::<Cvm>(history)
            .when(ask())
            .then_rejects(CvmError::NonceUsed(NONCE.into()));
        given::<Cvm>([requested(), assigned(), started(), online(), asked()])
            .when(ask())
            .then_rejects(CvmError::NonceUsed(NONCE.into()));
    }

    #[test]
    fn an_unknown_or_expired_nonce_is_refused() {
        given::<Cvm>([requested(), assigned(), started(), online()])
            .when(record(Some(NONCE)))
            .then_rejects(CvmError::NonceUnknown(NONCE.into()));
        let expired = CvmEvent::AttestationRequested(CvmAttestationRequested {
            expires_at: ctx().now - Duration::seconds(1),
            ..match asked() {
                CvmEvent::AttestationRequested(e) => e,
                _ => unreachable!(),
            }
        });
        let error = given::<Cvm>([requested(), assigned(), started(), online(), expired])
            .when(record(Some(NONCE)))
            .outcome()
            .unwrap_err();
        assert!(matches!(error, CvmError::NonceExpired { .. }), "{error:?}");
        assert_eq!(error.kind(), RejectionKind::StateConflict);
    }

    #[test]
    fn the_start_up_report_needs_no_nonce_but_a_live_machine() {
        given::<Cvm>([requested(), assigned(), started()])
            .when(record(None))
            .then_expect([appraised(None)]);
        given::<Cvm>([requested()])
            .when(record(None))
            .then_rejects(CvmError::State {
                status: CvmStatus::Creating,
                action: "attested",
            });
        given::<Cvm>([requested(), assigned(), started()])
            .when(ask())
            .then_rejects(CvmError::State {
                status: CvmStatus::Starting,
                action: "asked for attestation",
            });
    }

    #[test]
    fn a_malformed_nonce_is_refused() {
        let command = CvmCommand::RequestAttestation {
            nonce: "not hex".into(),
            agent_key_sha256: KEY.into(),
            expires_at: ctx().now,
        };
        given::<Cvm>([requested(), assigned(), started(), online()])
            .when(command)
            .then_rejects(CvmError::Hex {
                field: "nonce",
                bytes: 32,
            });
    }
}

#[test]
fn a_destroyed_cvm_used_its_machine_from_its_start_to_its_destruction_at_its_backends_price() {
    let mut state = Cvm::default();
    for event in [requested(), assigned(), started(), online()] {
        state.apply(&event);
    }
    assert_eq!(state.usage(), None, "nothing to account for before the end");
    state.apply(&destroying(DestroyReason::Requested));
    // 90 minutes at 0.25 an hour.
    state.apply(&CvmEvent::Destroyed(CvmDestroyed {
        at: ctx().now + Duration::minutes(90),
    }));
    let usage = state.usage().unwrap();
    assert_eq!(usage.cvm, CvmId(uuid::Uuid::from_u128(1)));
    assert_eq!(usage.backend, Some(BackendId(uuid::Uuid::from_u128(3))));
    assert_eq!((usage.vcpus, usage.memory_mib), (spec().vcpus, spec().memory_mib));
    assert_eq!(usage.seconds, 5400);
    assert_eq!(usage.cost_micros, Some(375_000));

    // A part of a second's price is a whole micro-unit; a machine that never started cost nothing.
    let mut brief = Cvm::default();
    for event in [requested(), assigned(), started()] {
        brief.apply(&event);
    }
    brief.apply(&CvmEvent::Destroyed(CvmDestroyed {
        at: ctx().now + Duration::seconds(1),
    }));
    assert_eq!(brief.usage().unwrap().cost_micros, Some(70));
    let mut never = Cvm::default();
    for event in [requested(), assigned()] {
        never.apply(&event);
    }
    never.apply(&CvmEvent::Destroyed(CvmDestroyed { at: ctx().now }));
    assert_eq!(never.usage().unwrap().seconds, 0);
    assert_eq!(never.usage().unwrap().cost_micros, Some(0));
}
