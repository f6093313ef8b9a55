//! Conformance of the `cocos-manager` driver with the real Cocos v0.10.2 manager: the manager runs as
//! a child process, serving `manager.ManagerService` over mutual TLS with a certificate of the
//! platform's authority, and starts each VM as the NoCC agent stack as processes
//! (`infra/cocos/qemu-as-processes.sh` in place of QEMU). A CVM recorded as a provisioner records it
//! is launched through the driver; the manager hands the agent its certificate, key, trusted roots
//! and the agents' channel's address, the real agent dials in presenting the manager's VM id as its
//! `job-id`, and the CVM turns Online. Then the manager describes it, gives its attestation policy,
//! and removes it: the agent's processes end and the CVM goes Offline.
//!
//! The programs are built from source with Go (`infra/cocos/build.sh`, cached). Without Go, or not as
//! root (the agent stack uses fixed paths under /run and /var/lib), this test says so loudly and
//! passes — unless `PRISM_REQUIRE_COCOS` is set, as CI sets it, and then it fails. Only one agent
//! stack fits on a host, so this file has one test, and cargo runs it apart from tests/cocos.rs (test
//! binaries run one after another).

mod common;
#[path = "common/manager.rs"]
mod manager;

use std::time::{Duration, Instant};

use common::Prism;
use common::agent::{admin_workspace, agent_certificate};
use manager::{CocosManager, ManagerTls, processes_in};
use prism_app::Caller;
use prism_backends::{Driver, DriverError, LaunchRequest, Launched, ManagerConfig, ManagerDriver};
use prism_domain::certificate::Subject;
use prism_domain::cvm::{
    AgentMessage, AgentStream, ConfidentialPlatform, Cvm, CvmCommand, CvmEvent, CvmSpec, CvmStatus,
};
use prism_domain::{BackendId, CvmId, WorkspaceId};
use prism_store::CommandRequest;

async fn events(prism: &Prism, cvm: CvmId) -> Vec<CvmEvent> {
    let log = prism.platform().app().log();
    let subject = log.subjects().aggregate("cvm", &cvm.to_string()).unwrap();
    log.load(&subject)
        .await
        .unwrap()
        .iter()
        .flat_map(|commit| commit.events.iter())
        .map(|envelope| envelope.decode::<CvmEvent>("cvm").unwrap())
        .collect()
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spec() -> CvmSpec {
    CvmSpec {
        provider: "cocos_manager".into(),
        vcpus: manager::VCPUS,
        memory_mib: 2048,
        platform: ConfidentialPlatform::None,
        ttl_seconds: 3600,
        labels: Default::default(),
    }
}

/// Records the CVM `cvm` of `ws` that the manager has made as `launched`: requested, its backend
/// chosen, started. The platform's own provisioner places and launches a requested CVM that has no
/// backend's name yet (and fails it when the workspace has no backend), so the request is recorded
/// together with the start, once the manager has answered: the provisioner finds nothing to do.
async fn record_launched(prism: &Prism, ws: WorkspaceId, cvm: CvmId, launched: &Launched) {
    for command in [
        CvmCommand::Request {
            id: cvm,
            workspace: ws,
            spec: spec(),
        },
        CvmCommand::AssignBackend {
            backend: BackendId(uuid::Uuid::now_v7()),
            reason: "the conformance test's Cocos manager".into(),
            hourly_cost_micros: None,
        },
        CvmCommand::MarkStarted {
            backend_ref: launched.backend_ref.clone(),
            agent_address: launched.agent_address.clone(),
        },
    ] {
        record(prism, cvm, ws, command).await;
    }
}

async fn record(prism: &Prism, cvm: CvmId, ws: WorkspaceId, command: CvmCommand) {
    let meta = Caller::service("provisioner").metadata(Some(ws.to_string()));
    prism
        .platform()
        .app()
        .repository::<Cvm>()
        .execute(CommandRequest::new(&cvm, command, meta))
        .await
        .unwrap();
}

/// `KEY=VALUE` lines (the manager writes them in no particular order).
fn environment(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_cocos_manager_launches_describes_and_removes_a_cvm_whose_agent_dials_in() {
    let programs = match manager::cocos_programs() {
        Ok(dir) => dir,
        Err(why) => {
            let banner = "!".repeat(100);
            eprintln!(
                "{banner}\n!! NOT RUN: the conformance test against the real Cocos manager: {why}\n{banner}"
            );
            assert!(
                std::env::var_os("PRISM_REQUIRE_COCOS").is_none(),
                "PRISM_REQUIRE_COCOS is set, and the real Cocos manager cannot run here: {why}"
            );
            return;
        }
    };
    let prism = Prism::start().await;
    let app = prism.platform().app().clone();
    let certificates = app.certificates();
    let (admin, ws) = admin_workspace(&prism, "Cocos manager").await;
    let (channel_addr, channel) = prism
        .platform()
        .agents()
        .expect("the test platform runs the agents' channel");

    // The manager serves with a certificate of the platform's authority for the address it is
    // dialled at, and admits clients of the same authority: the platform's provisioner.
    let localhost = Subject {
        common_name: "cocos-manager".into(),
        ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    };
    let manager_identity = certificates
        .platform_identity(&Caller::service("cocos-manager"), "cocos-manager", localhost)
        .await
        .unwrap();
    let provisioner_name = Subject {
        common_name: "provisioner".into(),
        dns_names: vec!["provisioner.prism.test".into()],
        ..Default::default()
    };
    let provisioner = certificates
        .platform_identity(&Caller::service("provisioner"), "provisioner", provisioner_name)
        .await
        .unwrap();
    let mut cocos_manager = CocosManager::start(
        &programs,
        &ManagerTls {
            server_chain_pem: manager_identity.certificate_chain.clone(),
            server_key_pem: manager_identity.private_key.clone(),
            client_ca_pem: manager_identity.root.clone(),
        },
        &std::env::temp_dir(),
    );
    let driver = ManagerDriver::new(ManagerConfig::new(
        cocos_manager.addr().to_string(),
        &provisioner.root,
        &provisioner.certificate_chain,
        &provisioner.private_key,
    ))
    .unwrap();
    let started = Instant::now();
    loop {
        match driver.check().await {
            Ok(()) => break,
            Err(DriverError::Unreachable(_)) if started.elapsed() < Duration::from_secs(30) => {
                cocos_manager.assert_running();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the manager is not healthy: {e}\n{}", cocos_manager.log()),
        }
    }
    eprintln!("the manager answered after {:?}", started.elapsed());

    // A CVM as a provisioner makes it: its agent's certificate issued, launched, recorded.
    let cvm = CvmId(uuid::Uuid::now_v7());
    let issued = agent_certificate(&prism, &admin, ws, cvm).await;
    let request = LaunchRequest {
        cvm,
        spec: spec(),
        agent_client_cert_pem: format!("{}{}", issued.certificate, issued.chain),
        agent_client_key_pem: issued.private_key.clone().unwrap(),
        server_ca_pem: certificates.chain().await.unwrap(),
        control_plane_url: channel_addr.to_string(),
        ttl: Duration::from_secs(3600),
        log_level: "debug".into(),
    };
    let launching = Instant::now();
    let launched = driver.launch(request.clone()).await.unwrap_or_else(|e| {
        panic!("CreateVm failed: {e}\n{}", cocos_manager.log());
    });
    eprintln!("CreateVm answered {launched:?} after {:?}", launching.elapsed());
    let vm_id = launched.backend_ref.clone();
    assert!(
        uuid::Uuid::parse_str(&vm_id).is_ok(),
        "the manager's VM id is a UUID: {vm_id}"
    );
    let agent_address = launched.agent_address.clone().unwrap();
    let port: u16 = agent_address.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert!(
        (6100..=6200).contains(&port),
        "forwarded from the manager's default range: {port}"
    );
    record_launched(&prism, ws, cvm, &launched).await;

    // The manager handed over exactly what was sent: the three files and the agent's environment.
    // The stand-in copies them into the VM's directory one after another, the environment first.
    let handed_over = |dir: &std::path::Path| {
        ["environment", "cert.pem", "key.pem", "ca.pem"]
            .iter()
            .all(|name| dir.join("handover").join(name).exists())
    };
    let mut vm_dir = None;
    until(
        "the VM's working directory",
        Duration::from_secs(30),
        async || {
            vm_dir = cocos_manager.vm_dir(&vm_id).filter(|d| handed_over(d));
            vm_dir.is_some()
        },
    )
    .await;
    // The stand-in's log line comes after its copies are complete.
    until("the stand-in's start", Duration::from_secs(30), async || {
        cocos_manager
            .log()
            .contains(&format!("cvm {vm_id}: agent stack in"))
    })
    .await;
    let vm_dir = vm_dir.unwrap();
    let handover = vm_dir.join("handover");
    let read = |name: &str| std::fs::read_to_string(handover.join(name)).unwrap();
    assert_eq!(read("cert.pem"), request.agent_client_cert_pem);
    assert_eq!(read("key.pem"), request.agent_client_key_pem);
    assert_eq!(read("ca.pem"), request.server_ca_pem);
    let env = environment(&read("environment"));
    eprintln!("the VM's environment: {env:?}");
    assert_eq!(env["AGENT_CVM_GRPC_URL"], channel_addr.to_string());
    assert_eq!(env["AGENT_CVM_ID"], vm_id);
    assert_eq!(env["AGENT_LOG_LEVEL"], "debug");
    assert_eq!(env["AGENT_CVM_GRPC_CLIENT_CERT"], "/etc/certs/cert.pem");
    assert_eq!(env["AGENT_CVM_GRPC_CLIENT_KEY"], "/etc/certs/key.pem");
    assert_eq!(env["AGENT_CVM_GRPC_SERVER_CA_CERTS"], "/etc/certs/ca.pem");

    // The real agent dials in with the handed-over certificate, presenting the manager's VM id as
    // its job-id: the CVM is Online and its start-up report is over that certificate.
    until("the CVM online", Duration::from_secs(90), async || {
        cocos_manager.assert_running();
        app.repository::<Cvm>().load(&cvm).await.unwrap().state.status == CvmStatus::Online
    })
    .await;
    eprintln!("the CVM was online {:?} after CreateVm", launching.elapsed());
    until("the start-up report", Duration::from_secs(30), async || {
        events(&prism, cvm).await.iter().any(|e| {
            matches!(e, CvmEvent::AgentMessageReceived(m)
                if m.stream == AgentStream::Agent
                && matches!(&m.message, AgentMessage::AttestationReport { certificate_serial, .. }
                    if *certificate_serial == issued.serial.to_decimal()))
        })
    })
    .await;
    assert!(channel.is_connected(cvm));
    let agent_processes = processes_in(&vm_dir);
    assert!(
        agent_processes.iter().any(|(_, name)| name == "agent"),
        "the agent runs in the VM's directory: {agent_processes:?}"
    );

    // What the manager says of it: its configuration (v0.10.2 leaves the kernel command line out).
    let info = driver.info(&vm_id).await.unwrap();
    assert_eq!(info.ovmf_version, manager::OVMF_VERSION);
    assert_eq!(info.cpu_count, manager::VCPUS);
    assert_eq!(info.cpu_type, manager::CPU_MODEL);
    assert_eq!(info.eos_version, manager::EOS_VERSION);
    assert_eq!(info.kernel_cmdline, "");
    // Its attestation policy: an unsigned CoRIM (CBOR map: its id `<platform>-corim-<uuid>`, then
    // its tags). v0.10.2 names the platform `tdx` for any VM without SEV-SNP, and drops the CoMID it
    // cannot validate, so here the tags are null: nothing a verifier could check against.
    let policy = driver.attestation_policy(&vm_id).await.unwrap();
    eprintln!("the attestation policy ({} bytes): {policy:02x?}", policy.len());
    assert_eq!(policy[0] & 0xe0, 0xa0, "a CBOR map");
    assert!(policy.windows(7).any(|w| w == b"-corim-"), "a CoRIM id");
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        driver.attestation_policy(&unknown).await,
        Err(DriverError::UnknownMachine(unknown.clone()))
    );

    // Removed, its agent's processes end and the CVM goes Offline; removing again succeeds.
    let removing = Instant::now();
    driver.remove(&vm_id).await.unwrap();
    eprintln!("RemoveVm answered after {:?}", removing.elapsed());
    until("the agent stack gone", Duration::from_secs(30), async || {
        processes_in(&vm_dir).is_empty()
    })
    .await;
    until("the CVM offline", Duration::from_secs(30), async || {
        app.repository::<Cvm>().load(&cvm).await.unwrap().state.status == CvmStatus::Offline
    })
    .await;
    driver.remove(&vm_id).await.unwrap();
    driver.remove(&unknown).await.unwrap();
    assert_eq!(
        driver.attestation_policy(&vm_id).await,
        Err(DriverError::UnknownMachine(vm_id.clone()))
    );

    // The manager enforces the lifetime it is told: a CVM launched for 3 s is removed by the manager
    // itself, and removing it afterwards succeeds.
    let short_lived = CvmId(uuid::Uuid::now_v7());
    let short_issued = agent_certificate(&prism, &admin, ws, short_lived).await;
    let launched = driver
        .launch(LaunchRequest {
            cvm: short_lived,
            agent_client_cert_pem: format!("{}{}", short_issued.certificate, short_issued.chain),
            agent_client_key_pem: short_issued.private_key.clone().unwrap(),
            ttl: Duration::from_secs(3),
            ..request.clone()
        })
        .await
        .unwrap();
    let launched_at = Instant::now();
    record_launched(&prism, ws, short_lived, &launched).await;
    until(
        "the short-lived CVM online",
        Duration::from_secs(60),
        async || {
            app.repository::<Cvm>()
                .load(&short_lived)
                .await
                .unwrap()
                .state
                .status
                == CvmStatus::Online
        },
    )
    .await;
    let short_dir = cocos_manager.vm_dir(&launched.backend_ref).unwrap();
    until("the lifetime's end", Duration::from_secs(30), async || {
        processes_in(&short_dir).is_empty()
            && app
                .repository::<Cvm>()
                .load(&short_lived)
                .await
                .unwrap()
                .state
                .status
                == CvmStatus::Offline
    })
    .await;
    eprintln!(
        "the manager removed the 3 s CVM {:?} after CreateVm",
        launched_at.elapsed()
    );
    assert!(launched_at.elapsed() >= Duration::from_secs(3));
    driver.remove(&launched.backend_ref).await.unwrap();

    // Healthy still; a manager that is not there is unreachable.
    driver.check().await.unwrap();
    let closed = manager::free_addr();
    let nobody = ManagerDriver::new(ManagerConfig::new(
        closed.to_string(),
        &provisioner.root,
        &provisioner.certificate_chain,
        &provisioner.private_key,
    ))
    .unwrap();
    let answer = nobody.check().await;
    assert!(matches!(answer, Err(DriverError::Unreachable(_))), "{answer:?}");

    drop(cocos_manager);
    prism.stop().await;
}
