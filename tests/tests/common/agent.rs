//! What the tests of the agents' channel share: a platform with a local backend, a workspace of the
//! administrator's, a CVM the provisioner has started on a bring-your-own backend, and its agent's
//! certificate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prism_app::{Caller, CertificateRequest, CommandOptions, IssuedCertificate, NewWorkspace};
use prism_domain::backend::{BackendSettings, Driver};
use prism_domain::cvm::{ConfidentialPlatform, Cvm, CvmSpec, CvmStatus};
use prism_domain::{CvmId, WorkspaceId};

use super::Prism;

/// A platform whose local backend runs emulated agents (two at once, their directories under
/// `root`), appraising evidence in `mode`.
pub async fn with_local_backend(root: &std::path::Path, mode: prism_attestation::Mode) -> Prism {
    Prism::builder()
        .provisioning(prism_cli::ProvisioningSettings {
            local: Some(prism_cli::LocalBackendConfig {
                program: super::emulated_agent(),
                root: root.to_owned(),
                capacity: 2,
            }),
            reap_every: Duration::from_secs(3600),
            check_every: Duration::from_secs(3600),
            agent_log_level: "info".into(),
        })
        .attestation(prism_app::AttestationConfig {
            mode,
            vcek_cache: None,
        })
        .start()
        .await
}

/// The platform administrator as a caller, and a new workspace of theirs called `name`.
pub async fn admin_workspace(prism: &Prism, name: &str) -> (Caller, WorkspaceId) {
    let app = prism.platform().app();
    let admin = app
        .identity()
        .authenticate(Caller::anonymous(), prism.admin_token())
        .await
        .unwrap();
    let ws = app
        .workspaces()
        .create(
            &admin,
            &CommandOptions::default(),
            NewWorkspace {
                name: name.into(),
                description: String::new(),
            },
        )
        .await
        .unwrap()
        .id
        .parse()
        .unwrap();
    (admin, ws)
}

/// A CVM of `ws`, made by the platform's provisioner on a bring-your-own backend of the workspace
/// (nothing is launched: its agent is whoever presents its certificate), once it is Starting.
pub async fn started_cvm(prism: &Prism, ws: WorkspaceId) -> CvmId {
    let app = prism.platform().app();
    let admin = app
        .identity()
        .authenticate(Caller::anonymous(), prism.admin_token())
        .await
        .unwrap();
    let settings = BackendSettings {
        name: "test-machines".into(),
        driver: Driver::Byo { agent_address: None },
        platforms: vec![ConfidentialPlatform::None],
        capacity: 1000,
        labels: BTreeMap::from([("purpose".into(), "test".into())]),
        price: None,
    };
    let registered = app
        .read_models()
        .unwrap()
        .backends(Some(ws))
        .await
        .unwrap()
        .iter()
        .any(|b| b.workspace_id == Some(ws) && b.settings == settings);
    if !registered {
        let id = app
            .backends()
            .register(&admin, &CommandOptions::default(), Some(ws), settings)
            .await
            .unwrap()
            .id;
        // The provisioner places CVMs on the backends its read model knows.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !app
            .read_models()
            .unwrap()
            .backends(Some(ws))
            .await
            .unwrap()
            .iter()
            .any(|b| b.id.to_string() == id)
        {
            assert!(
                Instant::now() < deadline,
                "the backend never reached the read model"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let spec = CvmSpec {
        provider: "byo".into(),
        vcpus: 1,
        memory_mib: 512,
        platform: ConfidentialPlatform::None,
        ttl_seconds: 3600,
        labels: BTreeMap::from([("purpose".into(), "test".into())]),
    };
    let id: CvmId = app
        .cvms()
        .create(&admin, &CommandOptions::default(), ws, spec)
        .await
        .unwrap()
        .id
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = app.repository::<Cvm>().load(&id).await.unwrap().state;
        match state.status {
            CvmStatus::Starting => return id,
            CvmStatus::Creating => {}
            other => panic!("the CVM is {other:?}: {:?}", state.failure),
        }
        assert!(Instant::now() < deadline, "the CVM never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An agent client certificate for `cvm`, once the read model knows it (the channel looks it up).
pub async fn agent_certificate(
    prism: &Prism,
    admin: &Caller,
    ws: WorkspaceId,
    cvm: CvmId,
) -> IssuedCertificate {
    let certificates = prism.platform().app().certificates();
    let issued = certificates
        .issue(
            admin,
            &CommandOptions::default(),
            ws,
            CertificateRequest::agent_client(cvm),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while certificates
        .get(admin, ws, &issued.serial, Default::default())
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the certificate never reached the read model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    issued
}
