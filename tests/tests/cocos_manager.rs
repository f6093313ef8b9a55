//! Conformance with the real Cocos v0.10.2 manager: the manager runs as a child process, serving
//! `manager.ManagerService` over mutual TLS with a certificate of the platform's authority and
//! admitting clients of the same authority, and starts each VM as the NoCC agent stack as processes
//! (`infra/cocos/qemu-as-processes.sh` in place of QEMU).
//!
//! The platform drives it itself: the manager is registered as a workspace's backend, a CVM is asked
//! for, and the platform's provisioner places it there, issues its agent's certificate and launches
//! it (presenting the platform's own `prism-provisioner` certificate to the manager). The manager
//! hands the agent its certificate, key, trusted roots and the channel's address, the real agent
//! dials in presenting the manager's VM id as its `job-id`, and the CVM turns Online; destroying it
//! removes the VM and revokes the agent's certificate. A second test drives the `cocos-manager`
//! driver directly for what the platform does not exercise: health, unknown VMs, and the lifetime
//! the manager enforces on its own.
//!
//! The programs are built from source with Go (`infra/cocos/build.sh`, cached). Without Go, or not as
//! root (the agent stack uses fixed paths under /run and /var/lib), these tests say so loudly and
//! pass — unless `PRISM_REQUIRE_COCOS` is set, as CI sets it, and then they fail.

mod common;
#[path = "common/manager.rs"]
mod manager;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Prism;
use common::agent::{admin_workspace, agent_certificate};
use common::peers::{cocos_programs_or_skip, cvm_events, until};
use manager::{processes_in, provisioner_driver, start_manager, until_healthy};
use prism_app::{Caller, CommandOptions};
use prism_backends::{Driver as _, DriverError, LaunchRequest};
use prism_cli::ProvisioningSettings;
use prism_domain::DomainEvent as _;
use prism_domain::cvm::{AgentMessage, AgentStream, ConfidentialPlatform, CvmEvent, CvmSpec, CvmStatus};
use prism_domain::{CvmId, WorkspaceId};
use prism_projections::{CertificateFilter, PageRequest};

/// One agent stack fits on a host (its programs use fixed paths): the tests of this file take
/// turns. A test that fails releases it all the same (a tokio mutex is not poisoned).
static ONE_AGENT_STACK_PER_HOST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the tests name the manager as a backend.
const BACKEND_NAME: &str = "cocos-manager";

/// `KEY=VALUE` lines (the manager writes them in no particular order).
fn environment(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A platform whose reaper and health checker stay out of the way: the tests decide when a CVM
/// ends and whether the manager is healthy.
async fn platform() -> Prism {
    Prism::builder()
        .provisioning(ProvisioningSettings {
            local: None,
            reap_every: Duration::from_secs(3600),
            check_every: Duration::from_secs(3600),
            agent_log_level: "debug".into(),
        })
        .start()
        .await
}

/// The CVM's active certificates (their lineages' current serials).
async fn active_certificates(
    prism: &Prism,
    admin: &Caller,
    ws: WorkspaceId,
    cvm: CvmId,
) -> Vec<prism_projections::CertificateView> {
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
            PageRequest {
                after: None,
                limit: 100,
            },
            Default::default(),
        )
        .await
        .unwrap()
        .items
}

async fn status(prism: &Prism, cvm: CvmId) -> CvmStatus {
    prism.platform().app().cvms().state(cvm).await.unwrap().status
}

/// The CVM's events other than its agent's messages and the appraisals of its evidence (which come
/// whenever the attestor gets to them), by name.
fn lifecycle(events: &[CvmEvent]) -> Vec<&'static str> {
    events
        .iter()
        .filter(|e| {
            !matches!(
                e,
                CvmEvent::AgentMessageReceived(_) | CvmEvent::AttestationAppraised(_)
            )
        })
        .map(|e| e.name())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_launches_a_cvm_on_the_real_cocos_manager_whose_agent_dials_in_and_destroys_it() {
    let Some(programs) = cocos_programs_or_skip("the conformance test against the real Cocos manager") else {
        return;
    };
    let _turn = ONE_AGENT_STACK_PER_HOST.lock().await;
    let prism = platform().await;
    let app = prism.platform().app().clone();
    let certificates = app.certificates();
    let (admin, ws) = admin_workspace(&prism, "Cocos manager").await;
    let (channel_addr, channel) = prism
        .platform()
        .agents()
        .expect("the test platform runs the agents' channel");
    let mut cocos_manager = start_manager(&prism, &programs).await;
    let driver = provisioner_driver(&prism, cocos_manager.addr().to_string()).await;
    until_healthy(&driver, &mut cocos_manager).await;

    // The manager as the workspace's backend, trusted through the platform's own root.
    let backend = manager::register_backend(&prism, &admin, ws, &cocos_manager, BACKEND_NAME).await;

    // A CVM asked for as a user asks: the provisioner places and launches it.
    let spec = CvmSpec {
        provider: "cocos_manager".into(),
        vcpus: manager::VCPUS,
        memory_mib: 2048,
        platform: ConfidentialPlatform::None,
        ttl_seconds: 3600,
        labels: BTreeMap::new(),
    };
    let asked = Instant::now();
    let cvm: CvmId = app
        .cvms()
        .create(&admin, &CommandOptions::default(), ws, spec)
        .await
        .unwrap()
        .id
        .parse()
        .unwrap();
    until("the CVM online", Duration::from_secs(90), async || {
        cocos_manager.assert_running();
        match status(&prism, cvm).await {
            CvmStatus::Failed => panic!(
                "the CVM failed: {:?}\n{}",
                app.cvms().state(cvm).await.unwrap().failure,
                cocos_manager.log()
            ),
            status => status == CvmStatus::Online,
        }
    })
    .await;
    eprintln!("the CVM was online {:?} after it was asked for", asked.elapsed());

    // Placed with its reason, started with the manager's answer, described by the manager, online.
    let events = cvm_events(&prism, cvm).await;
    // The agent may dial in before or after the manager has described the machine.
    let mut order = lifecycle(&events)[..5].to_vec();
    order[3..].sort_unstable();
    assert_eq!(
        order,
        ["requested", "backend_assigned", "started", "described", "online"],
        "{events:#?}"
    );
    let find = |name: &str| events.iter().find(|e| e.name() == name).unwrap().clone();
    let CvmEvent::BackendAssigned(assigned) = find("backend_assigned") else {
        unreachable!()
    };
    assert_eq!(assigned.backend, backend);
    assert!(
        assigned.reason.starts_with(&format!("{BACKEND_NAME} ")),
        "the reason names the backend: {}",
        assigned.reason
    );
    let CvmEvent::Started(started) = find("started") else {
        unreachable!()
    };
    let vm_id = started.backend_ref.clone();
    assert!(
        uuid::Uuid::parse_str(&vm_id).is_ok(),
        "the manager's VM id is a UUID: {vm_id}"
    );
    let agent_address = started.agent_address.clone().unwrap();
    let port: u16 = agent_address
        .strip_prefix("127.0.0.1:")
        .unwrap_or_else(|| panic!("the forwarded port on 127.0.0.1: {agent_address}"))
        .parse()
        .unwrap();
    assert!(
        (6100..=6200).contains(&port),
        "forwarded from the manager's default range: {port}"
    );
    // What the manager says of it: its configuration (v0.10.2 leaves the kernel command line out),
    // and its attestation policy: an unsigned CoRIM (CBOR map: its id `<platform>-corim-<uuid>`,
    // then its tags). v0.10.2 names the platform `tdx` for any VM without SEV-SNP, and drops the
    // CoMID it cannot validate, so here the tags are null: nothing a verifier could check against.
    let CvmEvent::Described(described) = find("described") else {
        unreachable!()
    };
    let description = described.description;
    assert_eq!(description.ovmf_version, manager::OVMF_VERSION);
    assert_eq!(description.cpu_count, manager::VCPUS);
    assert_eq!(description.cpu_type, manager::CPU_MODEL);
    assert_eq!(description.eos_version, manager::EOS_VERSION);
    assert_eq!(description.kernel_cmdline, "");
    let policy = base64::engine::general_purpose::STANDARD
        .decode(
            description
                .attestation_policy
                .expect("the manager gives a policy"),
        )
        .expect("the policy in base64");
    assert_eq!(policy[0] & 0xe0, 0xa0, "a CBOR map: {policy:02x?}");
    assert!(policy.windows(7).any(|w| w == b"-corim-"), "a CoRIM id");

    // The agent's one certificate, issued by the provisioner.
    let active = active_certificates(&prism, &admin, ws, cvm).await;
    assert_eq!(active.len(), 1, "{active:#?}");
    let agent_serial = active[0].serial.clone();
    let (_, agent_certificate_pem) = certificates
        .get(&admin, ws, &agent_serial, Default::default())
        .await
        .unwrap();

    // The manager handed over what the provisioner sent: the three files and the agent's
    // environment. The stand-in copies them into the VM's directory, then logs its start.
    let mut vm_dir = None;
    until("the stand-in's start", Duration::from_secs(30), async || {
        vm_dir = cocos_manager.vm_dir(&vm_id);
        vm_dir.is_some()
            && cocos_manager
                .log()
                .contains(&format!("cvm {vm_id}: agent stack in"))
    })
    .await;
    let vm_dir = vm_dir.unwrap();
    let handover = vm_dir.join("handover");
    let read = |name: &str| std::fs::read_to_string(handover.join(name)).unwrap();
    let chain = certificates.chain().await.unwrap();
    assert_eq!(
        read("cert.pem"),
        format!("{}{chain}", agent_certificate_pem.certificate),
        "the agent's certificate, then the chain the channel's root needs"
    );
    assert!(read("key.pem").starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(read("ca.pem"), chain);
    let env = environment(&read("environment"));
    eprintln!("the VM's environment: {env:?}");
    assert_eq!(env["AGENT_CVM_GRPC_URL"], channel_addr.to_string());
    assert_eq!(env["AGENT_CVM_ID"], vm_id);
    assert_eq!(env["AGENT_LOG_LEVEL"], "debug");
    assert_eq!(env["AGENT_CVM_GRPC_CLIENT_CERT"], "/etc/certs/cert.pem");
    assert_eq!(env["AGENT_CVM_GRPC_CLIENT_KEY"], "/etc/certs/key.pem");
    assert_eq!(env["AGENT_CVM_GRPC_SERVER_CA_CERTS"], "/etc/certs/ca.pem");

    // The real agent dialled in with that certificate, presenting the manager's VM id as its
    // job-id: its start-up report is over the CVM's active agent certificate.
    until("the start-up report", Duration::from_secs(30), async || {
        cvm_events(&prism, cvm).await.iter().any(|e| {
            matches!(e, CvmEvent::AgentMessageReceived(m)
                if m.stream == AgentStream::Agent
                && matches!(&m.message, AgentMessage::AttestationReport { certificate_serial, .. }
                    if *certificate_serial == agent_serial.to_decimal()))
        })
    })
    .await;
    until("both streams", Duration::from_secs(30), async || {
        channel.is_connected(cvm)
    })
    .await;
    let agent_processes = processes_in(&vm_dir);
    assert!(
        agent_processes.iter().any(|(_, name)| name == "agent"),
        "the agent runs in the VM's directory: {agent_processes:?}"
    );

    // Destroyed: the provisioner has the manager remove the VM (its agent's processes end and the
    // manager no longer knows it), revokes the agent's certificate, and records it destroyed; the
    // agent is cut off.
    let destroying = Instant::now();
    app.cvms()
        .destroy(&admin, &CommandOptions::default(), ws, cvm)
        .await
        .unwrap();
    until("the CVM destroyed", Duration::from_secs(60), async || {
        status(&prism, cvm).await == CvmStatus::Destroyed
    })
    .await;
    eprintln!(
        "the CVM was destroyed {:?} after it was asked",
        destroying.elapsed()
    );
    assert!(
        processes_in(&vm_dir).is_empty(),
        "RemoveVm ended the agent stack: {:?}",
        processes_in(&vm_dir)
    );
    assert_eq!(
        driver.attestation_policy(&vm_id).await,
        Err(DriverError::UnknownMachine(vm_id.clone()))
    );
    until("the certificates revoked", Duration::from_secs(10), async || {
        active_certificates(&prism, &admin, ws, cvm).await.is_empty()
    })
    .await;
    until("the agent cut off", Duration::from_secs(10), async || {
        !channel.is_connected(cvm)
    })
    .await;
    let events = cvm_events(&prism, cvm).await;
    let names = lifecycle(&events);
    let asked_at = names.iter().position(|n| *n == "destroy_requested");
    let destroyed_at = names.iter().position(|n| *n == "destroyed");
    assert!(
        matches!((asked_at, destroyed_at), (Some(a), Some(d)) if a < d && d == names.len() - 1),
        "{names:?}"
    );

    drop(cocos_manager);
    prism.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cocos_manager_driver_sees_health_forgets_removed_vms_and_the_manager_enforces_a_lifetime() {
    let Some(programs) = cocos_programs_or_skip("the conformance test against the real Cocos manager") else {
        return;
    };
    let _turn = ONE_AGENT_STACK_PER_HOST.lock().await;
    let prism = platform().await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Cocos manager driver").await;
    let (channel_addr, _) = prism.platform().agents().unwrap();
    let mut cocos_manager = start_manager(&prism, &programs).await;
    let driver = provisioner_driver(&prism, cocos_manager.addr().to_string()).await;
    until_healthy(&driver, &mut cocos_manager).await;

    // A VM it never made: unknown to it, and removing it succeeds (it is gone, as asked).
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        driver.attestation_policy(&unknown).await,
        Err(DriverError::UnknownMachine(unknown.clone()))
    );
    driver.remove(&unknown).await.unwrap();

    // The manager enforces the lifetime it is told: a VM launched for 3 s is removed by the manager
    // itself, and removing it afterwards succeeds. Its agent has a certificate of a CVM the platform
    // never recorded, so the channel refuses its streams; its processes run on all the same (the
    // agent dials again every 5 s) until the manager removes the VM.
    let unrecorded = CvmId(uuid::Uuid::now_v7());
    let issued = agent_certificate(&prism, &admin, ws, unrecorded).await;
    let chain = app.certificates().chain().await.unwrap();
    let launching = Instant::now();
    let launched = driver
        .launch(LaunchRequest {
            cvm: unrecorded,
            spec: CvmSpec {
                provider: "cocos_manager".into(),
                vcpus: manager::VCPUS,
                memory_mib: 2048,
                platform: ConfidentialPlatform::None,
                ttl_seconds: 60,
                labels: BTreeMap::new(),
            },
            agent_client_cert_pem: format!("{}{chain}", issued.certificate),
            agent_client_key_pem: issued.private_key.clone().unwrap(),
            server_ca_pem: chain,
            control_plane_url: channel_addr.to_string(),
            ttl: Duration::from_secs(3),
            log_level: "debug".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("CreateVm failed: {e}\n{}", cocos_manager.log()));
    let vm_id = launched.backend_ref;
    let mut vm_dir = None;
    until("the VM's agent running", Duration::from_secs(30), async || {
        vm_dir = cocos_manager.vm_dir(&vm_id);
        vm_dir
            .as_deref()
            .is_some_and(|dir| processes_in(dir).iter().any(|(_, name)| name == "agent"))
    })
    .await;
    let vm_dir = vm_dir.unwrap();
    until("the end of its lifetime", Duration::from_secs(30), async || {
        processes_in(&vm_dir).is_empty()
    })
    .await;
    let lived = launching.elapsed();
    eprintln!("the manager removed the 3 s VM {lived:?} after CreateVm");
    assert!(lived >= Duration::from_secs(3), "{lived:?}");
    // The manager logs the removal once its RemoveVm has waited for the stand-in to exit.
    let said = |what: &str| {
        cocos_manager
            .log()
            .lines()
            .any(|line| line.contains(&vm_id) && line.contains(what))
    };
    until(
        "the manager's account of it",
        Duration::from_secs(30),
        async || said("after TTL expiry"),
    )
    .await;
    assert!(
        said("Successfully removed VM after TTL expiry"),
        "{}",
        cocos_manager.log()
    );
    assert_eq!(
        driver.attestation_policy(&vm_id).await,
        Err(DriverError::UnknownMachine(vm_id.clone()))
    );
    driver.remove(&vm_id).await.unwrap();

    // Healthy still; a manager that is not there is unreachable.
    driver.check().await.unwrap();
    let nobody = provisioner_driver(&prism, manager::free_addr().to_string()).await;
    let answer = nobody.check().await;
    assert!(matches!(answer, Err(DriverError::Unreachable(_))), "{answer:?}");

    drop(cocos_manager);
    prism.stop().await;
}
