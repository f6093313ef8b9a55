//! What the tests of the agents' channel share: a workspace of the administrator's, a CVM recorded as
//! a provisioner records it, and its agent's certificate.

use std::time::{Duration, Instant};

use prism_app::{Caller, CertificateRequest, CommandOptions, IssuedCertificate, NewWorkspace};
use prism_domain::certificate::{Entity, EntityKind, Profile, Subject};
use prism_domain::cvm::{ConfidentialPlatform, Cvm, CvmCommand, CvmSpec};
use prism_domain::{BackendId, CvmId, WorkspaceId};
use prism_store::CommandRequest;

use super::Prism;

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

/// A CVM of `ws` made as a provisioner would record it, up to Starting.
pub async fn started_cvm(prism: &Prism, ws: WorkspaceId) -> CvmId {
    let id = CvmId(uuid::Uuid::now_v7());
    let repository = prism.platform().app().repository::<Cvm>();
    let meta = Caller::service("provisioner").metadata(Some(ws.to_string()));
    for command in [
        CvmCommand::Request {
            id,
            workspace: ws,
            spec: CvmSpec {
                provider: "local".into(),
                vcpus: 1,
                memory_mib: 512,
                platform: ConfidentialPlatform::None,
                ttl_seconds: 3600,
                labels: Default::default(),
            },
        },
        CvmCommand::AssignBackend {
            backend: BackendId(uuid::Uuid::now_v7()),
            reason: "the test's".into(),
            hourly_cost_micros: None,
        },
        CvmCommand::MarkStarted {
            backend_ref: "test".into(),
            agent_address: None,
        },
    ] {
        repository
            .execute(CommandRequest::new(&id, command, meta.clone()))
            .await
            .unwrap();
    }
    id
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
            CertificateRequest {
                entity: Entity {
                    kind: EntityKind::Cvm,
                    id: cvm.to_string(),
                },
                profile: Profile::AgentClient,
                subject: Subject {
                    common_name: cvm.to_string(),
                    uris: vec![format!("urn:prism:cvm:{cvm}")],
                    ..Default::default()
                },
                ttl: None,
            },
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
