//! CVMs made and removed by the platform itself, end to end on real NATS and PostgreSQL: the
//! provisioner chooses a backend, issues the agent's certificate and launches the CVM — here on the
//! local backend, the emulated agent as a child process, which dials the platform's agents' channel
//! like a real agent —; destroying it removes the machine and revokes its certificates; placement
//! skips a full and a down backend and falls back when one cannot be reached; the reaper destroys a
//! CVM past its TTL; a bring-your-own machine enrols with a one-time token.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Prism;
use common::agent::admin_workspace;
use common::peers::{cvm_events as events, until};
use prism_agents::ServerRequest;
use prism_app::{Caller, CommandOptions};
use prism_cli::{LOCAL_BACKEND_ID, LocalBackendConfig, ProvisioningSettings};
use prism_domain::backend::{BackendSettings, Driver};
use prism_domain::cvm::{AgentMessage, AgentStream, ConfidentialPlatform, CvmEvent, CvmSpec, CvmStatus};
use prism_domain::{CvmId, WorkspaceId};
use prism_projections::CertificateFilter;
use prism_workers::CvmReaper;
use reqwest::StatusCode;

async fn platform(root: &std::path::Path, capacity: u32) -> Prism {
    Prism::builder()
        .provisioning(ProvisioningSettings {
            local: Some(LocalBackendConfig {
                program: common::emulated_agent(),
                root: root.to_owned(),
                capacity,
            }),
            reap_every: Duration::from_secs(3600),
            // Health is recorded by the tests themselves where it matters.
            check_every: Duration::from_secs(3600),
            agent_log_level: "debug".into(),
        })
        .start()
        .await
}

/// Waits up to a minute for `cvm` to be Online; if it never is, fails with its events, which say
/// where it stopped.
async fn until_online(prism: &Prism, cvm: CvmId) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while status(prism, cvm).await != CvmStatus::Online {
        if std::time::Instant::now() > deadline {
            panic!(
                "the CVM never came online; its events: {:#?}",
                events(prism, cvm).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spec(provider: &str) -> CvmSpec {
    CvmSpec {
        provider: provider.into(),
        vcpus: 1,
        memory_mib: 512,
        platform: ConfidentialPlatform::None,
        ttl_seconds: 3600,
        labels: BTreeMap::new(),
    }
}

async fn create(prism: &Prism, admin: &Caller, ws: WorkspaceId, spec: CvmSpec) -> CvmId {
    let executed = prism
        .platform()
        .app()
        .cvms()
        .create(admin, &CommandOptions::default(), ws, spec)
        .await
        .unwrap();
    executed.id.parse().unwrap()
}

async fn status(prism: &Prism, cvm: CvmId) -> CvmStatus {
    prism.platform().app().cvms().state(cvm).await.unwrap().status
}

async fn active_certificates(prism: &Prism, admin: &Caller, ws: WorkspaceId, cvm: CvmId) -> usize {
    let filter = CertificateFilter {
        entity_id: Some(cvm.to_string()),
        status: Some("active".into()),
    };
    prism
        .platform()
        .app()
        .certificates()
        .list(
            admin,
            ws,
            &filter,
            prism_projections::PageRequest {
                after: None,
                limit: 100,
            },
            Default::default(),
        )
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cvm_on_the_local_backend_is_launched_dials_in_answers_and_is_destroyed_with_its_certificates() {
    let root = tempfile::tempdir().unwrap();
    let prism = platform(root.path(), 2).await;
    let (admin, ws) = admin_workspace(&prism, "Local").await;
    let cvm = create(&prism, &admin, ws, spec("any")).await;
    until_online(&prism, cvm).await;
    let state = prism.platform().app().cvms().state(cvm).await.unwrap();
    assert_eq!(state.backend, Some(LOCAL_BACKEND_ID));
    let backend_ref = state.backend_ref.clone().unwrap();
    assert!(
        root.path().join(&backend_ref).is_dir(),
        "the emulated agent runs in its own directory"
    );
    let description = state
        .description
        .clone()
        .expect("the local backend describes the machine");
    assert_eq!(description.cpu_type, "emulated");
    assert!(description.attestation_policy.is_none());

    // What the real agent does on connecting, the emulated one does: its start-up report over its
    // certificate on the agent's stream, its events on the log forwarder's; and it answers a state
    // request with a real state name.
    until("the start-up report", Duration::from_secs(20), async || {
        events(&prism, cvm).await.iter().any(|e| {
            matches!(e, CvmEvent::AgentMessageReceived(m)
                if m.stream == AgentStream::Agent
                && matches!(&m.message, AgentMessage::AttestationReport { certificate_serial, .. } if !certificate_serial.is_empty()))
        })
    })
    .await;
    let (_, channel) = prism.platform().agents().unwrap();
    until("both streams", Duration::from_secs(20), async || {
        channel.is_connected(cvm)
    })
    .await;
    channel
        .send(
            cvm,
            ServerRequest::State {
                id: "provisioning".into(),
            },
        )
        .await
        .unwrap();
    until("the state answer", Duration::from_secs(20), async || {
        events(&prism, cvm).await.iter().any(|e| {
            matches!(e, CvmEvent::AgentMessageReceived(m)
                if matches!(&m.message, AgentMessage::State { id, state } if id == "provisioning" && state == "ReceivingManifest"))
        })
    })
    .await;
    // The read model counts every message heard and keeps the agent's latest state: once it has
    // applied every event the log holds, its count is the log's.
    until("the read model", Duration::from_secs(10), async || {
        let recorded = events(&prism, cvm).await;
        let Some(view) = prism
            .platform()
            .app()
            .read_models()
            .unwrap()
            .cvm(ws, cvm)
            .await
            .unwrap()
        else {
            return false;
        };
        if view.version != recorded.len() as u64 {
            return false;
        }
        let heard = recorded
            .iter()
            .filter(|e| matches!(e, CvmEvent::AgentMessageReceived(_)))
            .count() as u64;
        assert_eq!(view.messages_received, heard);
        assert_eq!(view.agent_state.as_deref(), Some("ReceivingManifest"));
        true
    })
    .await;
    // The choice was recorded with its reason, then the start, then what the backend said.
    let recorded = events(&prism, cvm).await;
    // The agent may dial in before or after the backend has described the machine; its evidence is
    // appraised whenever the attestor gets to it.
    let mut names: Vec<&str> = recorded
        .iter()
        .filter(|e| {
            !matches!(
                e,
                CvmEvent::AgentMessageReceived(_) | CvmEvent::AttestationAppraised(_)
            )
        })
        .map(prism_domain::DomainEvent::name)
        .collect();
    names[3..5].sort_unstable();
    assert_eq!(
        &names[..5],
        ["requested", "backend_assigned", "started", "described", "online"],
        "{names:?}"
    );
    match &recorded[1] {
        CvmEvent::BackendAssigned(a) => assert!(
            a.reason.starts_with("local offers none, 2 of 2 VMs free"),
            "{}",
            a.reason
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(active_certificates(&prism, &admin, ws, cvm).await, 1);

    prism
        .platform()
        .app()
        .cvms()
        .destroy(&admin, &CommandOptions::default(), ws, cvm)
        .await
        .unwrap();
    until("the CVM destroyed", Duration::from_secs(30), async || {
        status(&prism, cvm).await == CvmStatus::Destroyed
    })
    .await;
    assert!(
        !root.path().join(&backend_ref).exists(),
        "the machine's directory is wiped"
    );
    until("the certificates revoked", Duration::from_secs(10), async || {
        active_certificates(&prism, &admin, ws, cvm).await == 0
    })
    .await;
    until("the agent gone", Duration::from_secs(10), async || {
        !channel.is_connected(cvm)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_skips_a_full_and_a_down_backend_and_falls_back_from_an_unreachable_one() {
    let root = tempfile::tempdir().unwrap();
    let prism = platform(root.path(), 4).await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Placement").await;
    let register = async |name: &str, driver: Driver, capacity: u32| {
        let executed = app
            .backends()
            .register(
                &admin,
                &CommandOptions::default(),
                Some(ws),
                BackendSettings {
                    name: name.into(),
                    driver,
                    platforms: vec![ConfidentialPlatform::None],
                    capacity,
                    labels: BTreeMap::new(),
                    price: None,
                },
            )
            .await
            .unwrap();
        prism_domain::BackendId(executed.id.parse().unwrap())
    };
    // Full: one slot, taken by a bring-your-own CVM.
    register("full", Driver::Byo { agent_address: None }, 1).await;
    let occupant = create(&prism, &admin, ws, spec("byo")).await;
    until("the occupant started", Duration::from_secs(20), async || {
        status(&prism, occupant).await == CvmStatus::Starting
    })
    .await;
    // Down: its last health check failed.
    let down = register("down", Driver::Byo { agent_address: None }, 8).await;
    app.backends()
        .record_health(down, false, "connection refused".into())
        .await
        .unwrap();
    // Unreachable: a Cocos manager on a port nobody listens on, with the most free slots, so it is
    // tried first.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let chain = app.certificates().chain().await.unwrap();
    let unreachable = register(
        "unreachable",
        Driver::CocosManager {
            address: closed.to_string(),
            ca_pem: chain,
        },
        100,
    )
    .await;
    until("the read models", Duration::from_secs(10), async || {
        let backends = app.read_models().unwrap().backends(Some(ws)).await.unwrap();
        backends.len() == 4
            && backends
                .iter()
                .any(|b| b.settings.name == "full" && b.running == 1)
            && backends.iter().any(|b| b.settings.name == "down" && !b.healthy)
    })
    .await;

    let cvm = create(&prism, &admin, ws, spec("any")).await;
    until_online(&prism, cvm).await;
    let assignments: Vec<_> = events(&prism, cvm)
        .await
        .into_iter()
        .filter_map(|e| match e {
            CvmEvent::BackendAssigned(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(assignments.len(), 2, "{assignments:?}");
    assert_eq!(assignments[0].backend, unreachable);
    assert!(
        assignments[0].reason.contains("full (1 of 1 VMs)"),
        "{}",
        assignments[0].reason
    );
    assert!(
        assignments[0].reason.contains("down down"),
        "{}",
        assignments[0].reason
    );
    assert_eq!(assignments[1].backend, LOCAL_BACKEND_ID);
    let second = &assignments[1].reason;
    assert!(
        second.contains("1 better backend(s) refused or were unreachable"),
        "{second}"
    );
    assert!(
        second.contains("unreachable: the backend cannot be reached"),
        "{second}"
    );
    // The unreachable manager is now recorded down, so the next placement leaves it out.
    until("the manager recorded down", Duration::from_secs(10), async || {
        !app.read_models()
            .unwrap()
            .backend(unreachable)
            .await
            .unwrap()
            .unwrap()
            .healthy
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_backend_able_to_run_it_the_cvm_fails_saying_why_and_keeps_no_certificate() {
    let root = tempfile::tempdir().unwrap();
    let prism = platform(root.path(), 1).await;
    let (admin, ws) = admin_workspace(&prism, "Nowhere").await;
    let mut snp = spec("any");
    snp.platform = ConfidentialPlatform::SevSnp;
    let cvm = create(&prism, &admin, ws, snp).await;
    until("the CVM failed", Duration::from_secs(20), async || {
        status(&prism, cvm).await == CvmStatus::Failed
    })
    .await;
    let failure = prism
        .platform()
        .app()
        .cvms()
        .state(cvm)
        .await
        .unwrap()
        .failure
        .unwrap();
    assert_eq!(
        failure,
        "no backend can run a sev_snp CVM; local does not offer sev_snp"
    );
    assert_eq!(active_certificates(&prism, &admin, ws, cvm).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_destroys_a_cvm_past_its_ttl_and_records_why() {
    let root = tempfile::tempdir().unwrap();
    let prism = platform(root.path(), 2).await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Reaper").await;
    let cvm = create(&prism, &admin, ws, spec("local")).await;
    until_online(&prism, cvm).await;
    let reaper = CvmReaper::new(app.clone(), Duration::from_secs(3600));
    // Within its TTL nothing happens; an hour and a minute later it is destroyed.
    assert_eq!(reaper.reap_once(chrono::Utc::now()).await.unwrap(), 0);
    until("the read model", Duration::from_secs(10), async || {
        app.read_models()
            .unwrap()
            .cvm(ws, cvm)
            .await
            .unwrap()
            .is_some_and(|c| c.status == "online")
    })
    .await;
    let later = chrono::Utc::now() + chrono::Duration::seconds(3660);
    assert_eq!(reaper.reap_once(later).await.unwrap(), 1);
    until("the CVM destroyed", Duration::from_secs(30), async || {
        status(&prism, cvm).await == CvmStatus::Destroyed
    })
    .await;
    let state = app.cvms().state(cvm).await.unwrap();
    assert_eq!(
        state.destroy_reason,
        Some(prism_domain::cvm::DestroyReason::TtlExpired)
    );
    // Asking again changes nothing.
    until("the read model", Duration::from_secs(10), async || {
        app.read_models()
            .unwrap()
            .cvm(ws, cvm)
            .await
            .unwrap()
            .is_some_and(|c| c.status == "destroyed")
    })
    .await;
    assert_eq!(reaper.reap_once(later).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bring_your_own_machine_fetches_its_certificate_once_and_its_agent_dials_in() {
    let root = tempfile::tempdir().unwrap();
    let prism = platform(root.path(), 1).await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Own machine").await;
    app.backends()
        .register(
            &admin,
            &CommandOptions::default(),
            Some(ws),
            BackendSettings {
                name: "lab".into(),
                driver: Driver::Byo {
                    agent_address: Some("10.1.2.3:7002".into()),
                },
                platforms: vec![ConfidentialPlatform::None],
                capacity: 1,
                labels: BTreeMap::from([("site".into(), "lab".into())]),
                price: None,
            },
        )
        .await
        .unwrap();
    let mut wanted = spec("byo");
    wanted.labels = BTreeMap::from([("site".into(), "lab".into())]);
    let cvm = create(&prism, &admin, ws, wanted).await;
    until("the CVM started", Duration::from_secs(20), async || {
        status(&prism, cvm).await == CvmStatus::Starting
    })
    .await;
    let enrolment = app
        .cvms()
        .enrol(&admin, ws, cvm, Default::default())
        .await
        .unwrap();

    // On the machine: the token fetches the certificate and key, once, without signing in.
    let download = || {
        prism
            .request(reqwest::Method::POST, "/certs/download", None)
            .json(&serde_json::json!({ "token": enrolment.token }))
            .send()
    };
    let bundle = common::json(download().await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        download().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a token works once"
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca = bundle["ca"].as_str().unwrap();
    let cert = write(
        "cert.pem",
        &format!("{}{ca}", bundle["certificate"].as_str().unwrap()),
    );
    let key = write("key.pem", bundle["private_key"].as_str().unwrap());
    let ca = write("ca.pem", ca);
    let (addr, channel) = prism.platform().agents().unwrap();
    let mut agent = tokio::process::Command::new(common::emulated_agent())
        .env("AGENT_CVM_GRPC_URL", addr.to_string())
        .env("AGENT_CVM_GRPC_CLIENT_CERT", &cert)
        .env("AGENT_CVM_GRPC_CLIENT_KEY", &key)
        .env("AGENT_CVM_GRPC_SERVER_CA_CERTS", &ca)
        .env("AGENT_CVM_ID", cvm.to_string())
        .env("PRISM_EMULATED_AGENT_LISTEN", "127.0.0.1:0")
        .env("PRISM_EMULATED_AGENT_DIR", dir.path().join("agent"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    until_online(&prism, cvm).await;
    assert_eq!(
        app.cvms().state(cvm).await.unwrap().agent_address.as_deref(),
        Some("10.1.2.3:7002")
    );

    // Destroying it revokes the certificate: the agent's connection is cut and it cannot come back.
    app.cvms()
        .destroy(&admin, &CommandOptions::default(), ws, cvm)
        .await
        .unwrap();
    until("the CVM destroyed", Duration::from_secs(30), async || {
        status(&prism, cvm).await == CvmStatus::Destroyed
    })
    .await;
    until("the agent cut off", Duration::from_secs(10), async || {
        !channel.is_connected(cvm)
    })
    .await;
    let _ = agent.kill().await;
}
