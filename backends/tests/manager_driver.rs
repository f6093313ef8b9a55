//! The cocos-manager driver over the wire, against a stand-in `ManagerService` served over mutual TLS
//! that answers the way the Cocos v0.10.2 manager does (its errors as UNKNOWN with their text). The
//! real manager is exercised by the conformance test in `tests/tests/cocos_manager.rs`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_backends::{Driver, DriverError, LaunchRequest, ManagerConfig, ManagerConfigError, ManagerDriver};
use prism_domain::CvmId;
use prism_domain::cvm::{ConfidentialPlatform, CvmSpec};
use prism_proto::manager::manager_service_server::{ManagerService, ManagerServiceServer};
use prism_proto::manager::{
    AttestationPolicyReq, AttestationPolicyRes, CreateReq, CreateRes, CvmInfoReq, CvmInfoRes, RemoveReq,
};
use prism_tls::{Alpn, ClientAuth, RevokedSerials, ServerIdentity, TlsServerConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tonic::{Request, Response, Status};

/// A certificate authority of the test's, and what it issued.
struct Pki {
    ca_pem: String,
    server_chain_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server.signed_by(&server_key, &ca).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["provisioner.prism.test".to_owned()]).unwrap();
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&client_key, &ca).unwrap();

    Pki {
        ca_pem: ca.pem(),
        server_chain_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Answers as the v0.10.2 manager does: ids it made, `entity not found` and `computationId … not
/// found` as UNKNOWN, `maximum number of VMs exceeded` when full, and a slow answer for id `slow`.
#[derive(Default)]
struct Recorded {
    created: Mutex<Vec<CreateReq>>,
    vms: Mutex<HashSet<String>>,
    max_vms: usize,
}

#[derive(Clone)]
struct StandIn(Arc<Recorded>);

impl std::ops::Deref for StandIn {
    type Target = Recorded;

    fn deref(&self) -> &Recorded {
        &self.0
    }
}

#[tonic::async_trait]
impl ManagerService for StandIn {
    async fn create_vm(&self, request: Request<CreateReq>) -> Result<Response<CreateRes>, Status> {
        let mut vms = self.vms.lock().unwrap();
        if vms.len() >= self.max_vms {
            return Err(Status::unknown("maximum number of VMs exceeded"));
        }
        let mut created = self.created.lock().unwrap();
        created.push(request.into_inner());
        let id = format!("vm-{}", created.len());
        vms.insert(id.clone());
        Ok(Response::new(CreateRes {
            forwarded_port: format!("{}", 6099 + created.len()),
            cvm_id: id,
        }))
    }

    async fn remove_vm(&self, request: Request<RemoveReq>) -> Result<Response<()>, Status> {
        if self.vms.lock().unwrap().remove(&request.get_ref().cvm_id) {
            Ok(Response::new(()))
        } else {
            Err(Status::unknown("entity not found"))
        }
    }

    async fn cvm_info(&self, request: Request<CvmInfoReq>) -> Result<Response<CvmInfoRes>, Status> {
        if request.get_ref().id == "slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Ok(Response::new(CvmInfoRes {
            id: request.into_inner().id,
            ovmf_version: "edk2-stable202408".into(),
            cpu_num: 4,
            cpu_type: "EPYC".into(),
            kernel_cmd: String::new(),
            eos_version: "v0.10.2".into(),
        }))
    }

    async fn attestation_policy(
        &self,
        request: Request<AttestationPolicyReq>,
    ) -> Result<Response<AttestationPolicyRes>, Status> {
        let id = request.into_inner().id;
        if !self.vms.lock().unwrap().contains(&id) {
            return Err(Status::unknown(format!("computationId {id} not found")));
        }
        Ok(Response::new(AttestationPolicyRes {
            info: b"\xd9\x01\xf5policy".to_vec(),
            id,
        }))
    }
}

/// Serves the stand-in over mutual TLS (clients of `pki`'s authority) until the test ends.
async fn serve(pki: &Pki, max_vms: usize) -> (SocketAddr, StandIn) {
    let stand_in = StandIn(Arc::new(Recorded {
        max_vms,
        ..Default::default()
    }));
    let tls = TlsServerConfig::new(
        ServerIdentity::from_pem(&pki.server_chain_pem, &pki.server_key_pem).unwrap(),
        ClientAuth::Required {
            roots: vec![CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()],
            revoked: RevokedSerials::new(),
        },
        Alpn::Http2,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ManagerServiceServer::new(stand_in.clone());
    tokio::spawn(prism_tls::serve(listener, tls, service, std::future::pending()));
    (addr, stand_in)
}

fn config(pki: &Pki, addr: SocketAddr) -> ManagerConfig {
    let mut config = ManagerConfig::new(
        addr.to_string(),
        &pki.ca_pem,
        &pki.client_cert_pem,
        &pki.client_key_pem,
    );
    config.connect_timeout = Duration::from_secs(2);
    config.call_timeout = Duration::from_millis(500);
    config
}

fn launch_request() -> LaunchRequest {
    LaunchRequest {
        cvm: CvmId(uuid::Uuid::now_v7()),
        spec: CvmSpec {
            provider: "cocos_manager".into(),
            vcpus: 2,
            memory_mib: 2048,
            platform: ConfidentialPlatform::None,
            ttl_seconds: 3600,
            labels: Default::default(),
        },
        agent_client_cert_pem: "-----BEGIN CERTIFICATE-----\nagent\n-----END CERTIFICATE-----\n".into(),
        agent_client_key_pem: "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n".into(),
        server_ca_pem: "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n".into(),
        control_plane_url: "prism.example:7001".into(),
        ttl: Duration::from_secs(3600),
        log_level: "info".into(),
    }
}

#[tokio::test]
async fn launches_describes_and_removes_through_the_manager() {
    let pki = pki();
    let (addr, stand_in) = serve(&pki, 10).await;
    let driver = ManagerDriver::new(config(&pki, addr)).unwrap();
    driver.check().await.unwrap();

    let request = launch_request();
    let launched = driver.launch(request.clone()).await.unwrap();
    assert_eq!(launched.backend_ref, "vm-1");
    assert_eq!(launched.agent_address.as_deref(), Some("127.0.0.1:6100"));
    let sent = stand_in.created.lock().unwrap()[0].clone();
    assert_eq!(
        sent,
        CreateReq {
            agent_log_level: "info".into(),
            agent_cvm_server_ca_cert: request.server_ca_pem.into_bytes(),
            agent_cvm_client_key: request.agent_client_key_pem.into_bytes(),
            agent_cvm_client_cert: request.agent_client_cert_pem.into_bytes(),
            agent_cvm_server_url: "prism.example:7001".into(),
            ttl: "3600s".into(),
            ..Default::default()
        }
    );

    let info = driver.info("vm-1").await.unwrap();
    assert_eq!(info.ovmf_version, "edk2-stable202408");
    assert_eq!(info.cpu_count, 4);
    assert_eq!(info.cpu_type, "EPYC");
    assert_eq!(info.eos_version, "v0.10.2");
    assert_eq!(
        driver.attestation_policy("vm-1").await.unwrap(),
        b"\xd9\x01\xf5policy"
    );

    driver.remove("vm-1").await.unwrap();
    // Gone: removing again succeeds; its policy is an unknown machine's.
    driver.remove("vm-1").await.unwrap();
    assert_eq!(
        driver.attestation_policy("vm-1").await,
        Err(DriverError::UnknownMachine("vm-1".into()))
    );
}

#[tokio::test]
async fn a_full_manager_refuses() {
    let pki = pki();
    let (addr, _stand_in) = serve(&pki, 1).await;
    let driver = ManagerDriver::new(config(&pki, addr)).unwrap();
    driver.launch(launch_request()).await.unwrap();
    assert_eq!(
        driver.launch(launch_request()).await,
        Err(DriverError::Refused(
            "Unknown: maximum number of VMs exceeded".into()
        ))
    );
}

#[tokio::test]
async fn no_answer_in_time_is_unreachable() {
    let pki = pki();
    let (addr, _stand_in) = serve(&pki, 1).await;
    let driver = ManagerDriver::new(config(&pki, addr)).unwrap();
    let started = std::time::Instant::now();
    let answer = driver.info("slow").await;
    assert!(matches!(answer, Err(DriverError::Unreachable(_))), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The connection is still good for the next call.
    driver.check().await.unwrap();
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let pki = pki();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let driver = ManagerDriver::new(config(&pki, closed)).unwrap();
    for answer in [
        driver.check().await,
        driver.remove("vm-1").await,
        driver.launch(launch_request()).await.map(drop),
    ] {
        assert!(matches!(answer, Err(DriverError::Unreachable(_))), "{answer:?}");
    }
}

#[tokio::test]
async fn a_manager_of_another_authority_or_refusing_our_certificate_is_unreachable() {
    let ours = pki();
    let theirs = pki();
    let (addr, _stand_in) = serve(&theirs, 1).await;
    // Their server certificate is not signed by the CA we trust.
    let answer = ManagerDriver::new(config(&ours, addr)).unwrap().check().await;
    assert!(matches!(answer, Err(DriverError::Unreachable(_))), "{answer:?}");
    // We trust their CA, but they do not trust our client certificate.
    let mut mixed = config(&ours, addr);
    mixed.server_ca_pem = theirs.ca_pem.clone();
    let answer = ManagerDriver::new(mixed).unwrap().check().await;
    assert!(matches!(answer, Err(DriverError::Unreachable(_))), "{answer:?}");
}

#[test]
fn unusable_configurations_are_refused_up_front() {
    let pki = pki();
    let good = config(&pki, "127.0.0.1:7011".parse().unwrap());
    let with = |change: fn(&mut ManagerConfig)| {
        let mut config = good.clone();
        change(&mut config);
        ManagerDriver::new(config).map(drop)
    };
    assert!(with(|_| {}).is_ok());
    assert!(matches!(
        with(|c| c.address = "127.0.0.1".into()),
        Err(ManagerConfigError::Address(_))
    ));
    assert!(matches!(
        with(|c| c.server_ca_pem = String::new()),
        Err(ManagerConfigError::ServerCa(_))
    ));
    assert!(matches!(
        with(|c| c.client_cert_pem = String::new()),
        Err(ManagerConfigError::ClientCertificate(_))
    ));
    assert!(matches!(
        with(|c| c.client_key_pem = String::new()),
        Err(ManagerConfigError::ClientKey(_))
    ));
    assert!(matches!(
        with(|c| c.server_name = Some("not a name".into())),
        Err(ManagerConfigError::ServerName(_))
    ));
    // A key that is not the certificate's is caught before any connection.
    let mut mismatched = good.clone();
    mismatched.client_key_pem = self::pki().client_key_pem;
    assert!(matches!(
        ManagerDriver::new(mismatched),
        Err(ManagerConfigError::Tls(_))
    ));
}
