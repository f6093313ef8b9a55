use std::collections::BTreeMap;

use super::*;
use crate::aggregate::{Rejection, RejectionKind};
use crate::cvm::CvmSpec;
use crate::ids::{BackendId, WorkspaceId};
use crate::testing::{ctx, given};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn manager() -> BackendSettings {
    BackendSettings {
        name: "eu-snp-1".into(),
        driver: Driver::CocosManager {
            address: "10.0.0.5:7002".into(),
            ca_pem: CA.into(),
        },
        platforms: vec![ConfidentialPlatform::SevSnp],
        capacity: 8,
        labels: BTreeMap::from([("region".into(), "eu-west".into())]),
        price: Some(Price {
            vcpu_hour_micros: 40_000,
            gib_hour_micros: 5_000,
        }),
    }
}

fn register(settings: BackendSettings) -> BackendCommand {
    BackendCommand::Register {
        id: BackendId(uuid::Uuid::from_u128(1)),
        workspace: Some(WorkspaceId(uuid::Uuid::from_u128(2))),
        settings,
    }
}

fn registered() -> BackendEvent {
    BackendEvent::Registered(BackendRegistered {
        id: BackendId(uuid::Uuid::from_u128(1)),
        workspace: Some(WorkspaceId(uuid::Uuid::from_u128(2))),
        settings: manager(),
        registered_by: ctx().actor,
        registered_at: ctx().now,
    })
}

#[test]
fn a_registered_backend_is_active_and_presumed_healthy() {
    let state = given::<Backend>([])
        .when(register(manager()))
        .then_expect([registered()]);
    assert_eq!(state.status, BackendStatus::Active);
    assert!(state.healthy);
    given::<Backend>([registered()])
        .when(register(manager()))
        .then_rejects(BackendError::AlreadyExists);
    given::<Backend>([])
        .when(BackendCommand::Remove)
        .then_rejects(BackendError::NotFound);
}

#[test]
fn settings_out_of_bounds_are_refused() {
    let with = |change: fn(&mut BackendSettings)| {
        let mut settings = manager();
        change(&mut settings);
        register(settings)
    };
    let cases: [(BackendCommand, BackendError); 10] = [
        (with(|s| s.name = "a b".into()), BackendError::Name),
        (with(|s| s.platforms.clear()), BackendError::NoPlatform),
        (
            with(|s| s.platforms = vec![ConfidentialPlatform::Tdx, ConfidentialPlatform::Tdx]),
            BackendError::RepeatedPlatform,
        ),
        (
            with(|s| s.capacity = 0),
            BackendError::Capacity { max: CAPACITY_MAX },
        ),
        (
            with(|s| {
                s.labels.insert("bad key".into(), "x".into());
            }),
            BackendError::Label("bad key".into()),
        ),
        (
            with(|s| {
                s.driver = Driver::CocosManager {
                    address: "no-port".into(),
                    ca_pem: CA.into(),
                }
            }),
            BackendError::Address("no-port".into()),
        ),
        (
            with(|s| {
                s.driver = Driver::CocosManager {
                    address: "h:0".into(),
                    ca_pem: CA.into(),
                }
            }),
            BackendError::Address("h:0".into()),
        ),
        (
            with(|s| {
                s.driver = Driver::CocosManager {
                    address: "h:1".into(),
                    ca_pem: "not pem".into(),
                }
            }),
            BackendError::CaPem,
        ),
        // The emulated agent may not claim a TEE.
        (with(|s| s.driver = Driver::Local), BackendError::LocalIsInsecure),
        (
            with(|s| {
                s.driver = Driver::Byo {
                    agent_address: Some("[::1]:x".into()),
                }
            }),
            BackendError::Address("[::1]:x".into()),
        ),
    ];
    for (command, error) in cases {
        assert_eq!(error.kind(), RejectionKind::Invalid);
        given::<Backend>([]).when(command).then_rejects(error);
    }
    let mut local = manager();
    local.driver = Driver::Local;
    local.platforms = vec![ConfidentialPlatform::None];
    assert!(given::<Backend>([]).when(register(local)).outcome().is_ok());
}

#[test]
fn health_is_recorded_only_when_it_changes() {
    let down = BackendEvent::HealthChanged(BackendHealthChanged {
        healthy: false,
        detail: "connection refused".into(),
        at: ctx().now,
    });
    given::<Backend>([registered()])
        .when(BackendCommand::RecordHealth {
            healthy: true,
            detail: String::new(),
        })
        .then_expect([]);
    let state = given::<Backend>([registered()])
        .when(BackendCommand::RecordHealth {
            healthy: false,
            detail: "connection refused".into(),
        })
        .then_expect([down.clone()]);
    assert!(!state.healthy);
    given::<Backend>([registered(), down])
        .when(BackendCommand::RecordHealth {
            healthy: false,
            detail: "still refused".into(),
        })
        .then_expect([]);
}

#[test]
fn an_update_keeps_the_kind_and_a_removed_backend_takes_no_command() {
    let mut bigger = manager();
    bigger.capacity = 16;
    given::<Backend>([registered()])
        .when(BackendCommand::Update {
            settings: bigger.clone(),
        })
        .then_expect([BackendEvent::Updated(BackendUpdated {
            settings: bigger,
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    given::<Backend>([registered()])
        .when(BackendCommand::Update { settings: manager() })
        .then_expect([]);
    let mut byo = manager();
    byo.driver = Driver::Byo { agent_address: None };
    given::<Backend>([registered()])
        .when(BackendCommand::Update { settings: byo })
        .then_rejects(BackendError::KindChange);
    let removed = BackendEvent::Removed(BackendRemoved {
        removed_by: ctx().actor,
        removed_at: ctx().now,
    });
    given::<Backend>([registered(), removed])
        .when(BackendCommand::Update { settings: manager() })
        .then_rejects(BackendError::Removed);
}

#[test]
fn the_price_of_a_cvm_counts_vcpus_and_started_gib() {
    let price = manager().price.unwrap();
    let spec = CvmSpec {
        provider: "cocos-manager".into(),
        vcpus: 4,
        memory_mib: 4097,
        platform: ConfidentialPlatform::SevSnp,
        ttl_seconds: 3600,
        labels: Default::default(),
    };
    assert_eq!(price.hourly_micros(&spec), 4 * 40_000 + 5 * 5_000);
}
