//! Certificates: the platform's authority (established on first use, its OCSP responder replaced
//! before it ends), issuance for an entity by profile — with a key the authority generates, or for the
//! key of a CSR —, renewal, revocation of one lineage or of all of an entity's, one-time downloads of
//! an authority-held key, and the public chain, CRL and OCSP answers.
//!
//! Signing is done before the command that records the certificate, which checks the signed text
//! against the profile and the request (`prism_domain::certificate`). A generated key is sealed in the
//! key store before the event that names it is written, so no event names a key that is not there.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
use prism_auth::{OpaqueToken, TokenKind};
use prism_ca::{CaUrls, KeySource, OcspStatus, RevokedEntry, SealedKeys};
use prism_domain::Aggregate as _;
use prism_domain::access::Permission;
use prism_domain::authority::{AUTHORITY_ID, Authority, AuthorityCommand, AuthorityKeys, AuthorityStatus};
use prism_domain::certificate::{
    Certificate, CertificateCommand, CertificateEvent, CertificateStatus, Entity, EntityKind, KeyCustody,
    Profile, RevocationReason, Serial, Subject,
};
use prism_domain::workspace::{Workspace, WorkspaceStatus};
use prism_domain::{CertificateId, WorkspaceId};
use prism_projections::{
    CERTIFICATES, CertificateFilter, CertificateSerialView, CertificateView, Page, PageRequest,
};
use prism_store::CommandRequest;
use serde::Serialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "certificate";
/// How long a CRL may be relied on (`nextUpdate`); one is made again when a revocation lands anyway.
const CRL_VALIDITY: Duration = Duration::from_secs(3600);
/// A cached CRL older than this is made again, so that `thisUpdate` stays recent.
const CRL_REFRESH: chrono::Duration = chrono::Duration::minutes(15);
/// How long a download token waits to be used.
pub const DOWNLOAD_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

/// How the platform's certificate authority is set up: the public URLs every certificate names, and
/// where the authority's (and generated certificates') keys are sealed.
#[derive(Debug, Clone)]
pub struct CertificateAuthorityConfig {
    pub urls: CaUrls,
    pub keys: Arc<SealedKeys>,
    pub renewal: RenewalPolicy,
}

/// When certificates are renewed, and how often the platform looks for those that are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// A certificate is renewed when it has this long left, or a third of its lifetime, whichever is
    /// shorter (so a certificate that lives less than the window is not renewed on every look).
    pub before: Duration,
    /// How often the renewal worker looks.
    pub every: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self {
            before: Duration::from_secs(2 * 24 * 3600),
            every: Duration::from_secs(60),
        }
    }
}

/// What one look for due certificates did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub renewed: usize,
    pub expired: usize,
    /// Lineages that could not be renewed or expired this time (logged; tried again on the next look).
    pub failed: usize,
}

/// A platform certificate with less left than this is not served any more: a new one is issued.
const IDENTITY_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// How many due lineages one look handles; the rest wait for the next.
const MAINTENANCE_BATCH: u32 = 200;

/// The authority as loaded, and the CRL made last.
#[derive(Debug)]
pub(crate) struct AuthorityState {
    config: CertificateAuthorityConfig,
    loaded: Mutex<Option<Loaded>>,
    crl: std::sync::Mutex<Option<CachedCrl>>,
}

#[derive(Debug)]
struct Loaded {
    /// The responder certificate it was loaded with: another one in the log means reload.
    responder: String,
    authority: Arc<prism_ca::Authority>,
}

#[derive(Debug, Clone)]
struct CachedCrl {
    number: u64,
    made_at: chrono::DateTime<Utc>,
    crl: prism_ca::Crl,
}

impl AuthorityState {
    pub(crate) fn new(config: CertificateAuthorityConfig) -> Self {
        Self {
            config,
            loaded: Mutex::new(None),
            crl: std::sync::Mutex::new(None),
        }
    }
}

/// What a caller asks a certificate for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRequest {
    pub entity: Entity,
    pub profile: Profile,
    pub subject: Subject,
    /// The lifetime; the profile's default when absent.
    pub ttl: Option<Duration>,
}

impl CertificateRequest {
    /// The client certificate a CVM's agent dials the agents' channel with: profile `agent_client`,
    /// the CVM's id as entity and common name, `urn:prism:cvm:<id>` as URI.
    pub fn agent_client(cvm: prism_domain::CvmId) -> Self {
        Self {
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
        }
    }
}

impl CertificateRequest {
    /// The TLS server certificate of a CVM's agent for its participants' API, for `host` (the host
    /// part of the address the agent announced: an IP address or a DNS name).
    pub fn agent_server(cvm: prism_domain::CvmId, host: &str) -> Self {
        let (dns_names, ip_addresses) = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => (Vec::new(), vec![ip]),
            Err(_) => (vec![host.to_owned()], Vec::new()),
        };
        Self {
            entity: Entity {
                kind: EntityKind::Cvm,
                id: cvm.to_string(),
            },
            profile: Profile::AgentServer,
            subject: Subject {
                common_name: cvm.to_string(),
                dns_names,
                ip_addresses,
                ..Default::default()
            },
            ttl: None,
        }
    }
}

/// A certificate just issued or renewed: its lineage, its text, the chain above it, and — once, for a
/// key the authority generated — the private key.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub id: CertificateId,
    pub entity: Entity,
    pub profile: Profile,
    pub serial: Serial,
    pub certificate: String,
    pub chain: String,
    pub not_after: chrono::DateTime<Utc>,
    /// PKCS#8 PEM; `None` for a CSR, and on a retried request (it is shown once).
    pub private_key: Option<String>,
    pub sequence: u64,
}

/// What one of the platform's own services serves TLS with.
#[derive(Clone)]
pub struct PlatformIdentity {
    pub id: CertificateId,
    /// The certificate, then the intermediate (PEM): what a server sends.
    pub certificate_chain: String,
    /// PKCS#8 PEM.
    pub private_key: String,
    /// The root (PEM), which clients trust.
    pub root: String,
    pub not_after: chrono::DateTime<Utc>,
}

impl std::fmt::Debug for PlatformIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformIdentity")
            .field("id", &self.id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A certificate with its key and chain, downloaded once with a token.
#[derive(Debug, Clone)]
pub struct CertificateBundle {
    pub serial: Serial,
    pub certificate: String,
    pub private_key: String,
    pub chain: String,
}

/// A CSR to sign for an entity, within a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsrSigning {
    pub entity: Entity,
    pub profile: Profile,
    /// PEM (`CERTIFICATE REQUEST`).
    pub csr: String,
    /// The lifetime; the profile's default when absent.
    pub ttl: Option<Duration>,
}

#[derive(Serialize)]
struct EntityInput<'a> {
    entity_id: &'a str,
    reason: RevocationReason,
}

#[derive(Serialize)]
struct SerialInput<'a> {
    serial: &'a Serial,
    reason: Option<RevocationReason>,
}

#[derive(Debug, Clone, Copy)]
pub struct Certificates<'a> {
    app: &'a App,
}

impl<'a> Certificates<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The lineage that holds `serial`, as the log has it; `None` when this platform never issued
    /// it. (Which lineage is read from the serials' read model; the lineage itself from the log.)
    pub(crate) async fn lineage_by_serial(&self, serial: &Serial) -> Result<Option<Certificate>, AppError> {
        let Some(found) = self.app.read_models()?.certificate_serial(serial).await? else {
            return Ok(None);
        };
        let lineage = self
            .app
            .bounded(async {
                Ok(self
                    .app
                    .repository::<Certificate>()
                    .view(&found.certificate_id)
                    .await?)
            })
            .await?;
        Ok(Some(lineage))
    }

    /// Where the authority seals keys; the platform's other signing keys are sealed there too.
    pub fn sealed_keys(&self) -> Result<Arc<SealedKeys>, AppError> {
        Ok(self.state()?.config.keys.clone())
    }

    /// The platform key sealed under `name`, made by `generate` and sealed on first use. Processes
    /// that make one at the same moment each seal theirs; all then use what the store holds, so
    /// every process signs with the same key.
    pub(crate) async fn sealed_key_or_new(
        &self,
        name: &str,
        generate: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<Vec<u8>, AppError> {
        let keys = self.sealed_keys()?;
        let failed = |e: &dyn std::fmt::Display| AppError::internal(format!("the key {name}: {e}"));
        if let Some(stored) = keys.get(name).await.map_err(|e| failed(&e))? {
            return Ok(stored.to_vec());
        }
        let made = generate().map_err(|e| failed(&e))?;
        keys.put(name, &made).await.map_err(|e| failed(&e))?;
        Ok(keys
            .get(name)
            .await
            .map_err(|e| failed(&e))?
            .map(|stored| stored.to_vec())
            .unwrap_or(made))
    }

    fn state(&self) -> Result<&AuthorityState, AppError> {
        self.app
            .inner
            .authority
            .as_ref()
            .ok_or_else(|| AppError::not_found("this platform has no certificate authority configured"))
    }

    /// The authority: loaded from the log and the key store, or established when there is none yet.
    pub async fn authority(&self) -> Result<Arc<prism_ca::Authority>, AppError> {
        let state = self.state()?;
        let mut loaded = state.loaded.lock().await;
        let repository = self.app.repository::<Authority>();
        let mut record = self
            .app
            .bounded(async { Ok(repository.view(&AUTHORITY_ID).await?) })
            .await?;
        if record.status == AuthorityStatus::New {
            record = self.establish(state).await?;
        }
        if let Some(current) = loaded.as_ref()
            && current.responder == record.responder
        {
            return Ok(current.authority.clone());
        }
        let mut authority = self.load(state, &record).await?;
        if authority.responder_due(Utc::now()).map_err(AppError::internal)? {
            record = self.replace_responder(state, &authority).await?;
            authority = self.load(state, &record).await?;
        }
        let authority = Arc::new(authority);
        *loaded = Some(Loaded {
            responder: record.responder.clone(),
            authority: authority.clone(),
        });
        Ok(authority)
    }

    /// Creates the authority and records it. Processes that start together race: one establishment
    /// wins (the log takes one first event); the others drop their keys and load the winner's.
    async fn establish(&self, state: &AuthorityState) -> Result<Authority, AppError> {
        let (created, material) =
            prism_ca::Authority::create(state.config.urls.clone(), Utc::now()).map_err(AppError::internal)?;
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let keys = AuthorityKeys {
            root: format!("ca.{tag}.root"),
            intermediate: format!("ca.{tag}.intermediate"),
            responder: format!("ca.{tag}.responder"),
        };
        for (name, key) in [
            (&keys.root, &material.root_key),
            (&keys.intermediate, &material.intermediate_key),
            (&keys.responder, &material.responder_key),
        ] {
            let pem = prism_ca::pem("PRIVATE KEY", key);
            state
                .config
                .keys
                .put(name, pem.as_bytes())
                .await
                .map_err(AppError::internal)?;
        }
        let command = AuthorityCommand::Establish {
            root: created.root_pem(),
            intermediate: created.intermediate_pem(),
            responder: created.responder_pem(),
            keys: keys.clone(),
        };
        let request =
            CommandRequest::<Authority>::new(&AUTHORITY_ID, command, Caller::service("ca").metadata(None));
        let repository = self.app.repository::<Authority>();
        match self
            .app
            .bounded(async { Ok(repository.execute(request).await) })
            .await?
        {
            Ok(outcome) => {
                info!("established the platform's certificate authority");
                Ok(outcome.state)
            }
            Err(prism_store::CommandError::Rejected(_)) => {
                for name in [&keys.root, &keys.intermediate, &keys.responder] {
                    if let Err(e) = state.config.keys.delete(name).await {
                        warn!(error = %e, "could not delete the key of an authority that lost the race");
                    }
                }
                Ok(self
                    .app
                    .bounded(async { Ok(repository.load(&AUTHORITY_ID).await?.state) })
                    .await?)
            }
            Err(e) => Err(AppError::command("certificate authority", e)),
        }
    }

    async fn key(&self, state: &AuthorityState, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, AppError> {
        state
            .config
            .keys
            .get(name)
            .await
            .map_err(AppError::internal)?
            .ok_or_else(|| AppError::internal(format!("the key `{name}` is missing from the key store")))
    }

    async fn load(
        &self,
        state: &AuthorityState,
        record: &Authority,
    ) -> Result<prism_ca::Authority, AppError> {
        let keys = record
            .keys
            .as_ref()
            .ok_or_else(|| AppError::internal("an established authority names its keys"))?;
        let der = |pem: &str| prism_ca::der_of("CERTIFICATE", pem).map_err(AppError::internal);
        let key = |pem: zeroize::Zeroizing<Vec<u8>>| {
            let text = std::str::from_utf8(&pem).map_err(AppError::internal)?;
            prism_ca::der_of("PRIVATE KEY", text)
                .map(zeroize::Zeroizing::new)
                .map_err(AppError::internal)
        };
        let material = prism_ca::AuthorityMaterial {
            root: der(&record.root)?,
            root_key: key(self.key(state, &keys.root).await?)?,
            intermediate: der(&record.intermediate)?,
            intermediate_key: key(self.key(state, &keys.intermediate).await?)?,
            responder: der(&record.responder)?,
            responder_key: key(self.key(state, &keys.responder).await?)?,
        };
        prism_ca::Authority::load(&material, state.config.urls.clone()).map_err(AppError::internal)
    }

    async fn replace_responder(
        &self,
        state: &AuthorityState,
        authority: &prism_ca::Authority,
    ) -> Result<Authority, AppError> {
        let (certificate, key) = authority.new_responder(Utc::now()).map_err(AppError::internal)?;
        let name = format!("ca.{}.responder", uuid::Uuid::now_v7().simple());
        state
            .config
            .keys
            .put(&name, prism_ca::pem("PRIVATE KEY", &key).as_bytes())
            .await
            .map_err(AppError::internal)?;
        let command = AuthorityCommand::ReplaceResponder {
            responder: prism_ca::pem("CERTIFICATE", &certificate),
            key: name,
        };
        let request =
            CommandRequest::<Authority>::new(&AUTHORITY_ID, command, Caller::service("ca").metadata(None));
        let repository = self.app.repository::<Authority>();
        let outcome = self
            .app
            .bounded(async { Ok(repository.execute(request).await) })
            .await?
            .map_err(|e| AppError::command("certificate authority", e))?;
        info!("replaced the OCSP responder's certificate");
        Ok(outcome.state)
    }

    /// Issues a certificate for `request.entity` with a key the authority generates.
    pub async fn issue(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        request: CertificateRequest,
    ) -> Result<IssuedCertificate, AppError> {
        self.issue_in(caller, options, Some(workspace), request).await
    }

    /// Issues a certificate of the platform's own (for one of its services), which no workspace holds:
    /// only the platform's own processes and its administrators may.
    pub async fn issue_for_platform(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        request: CertificateRequest,
    ) -> Result<IssuedCertificate, AppError> {
        self.issue_in(caller, options, None, request).await
    }

    async fn issue_in(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        scope: Option<WorkspaceId>,
        request: CertificateRequest,
    ) -> Result<IssuedCertificate, AppError> {
        let command = self.new_certificate(scope, "issue", &request);
        self.app
            .authorize_command::<Certificate, _>(caller, &command)
            .await?;
        if let Some(workspace) = scope {
            self.ensure_active(workspace).await?;
        }
        let authority = self.authority().await?;
        let lifetime = request.ttl.unwrap_or_else(|| request.profile.default_lifetime());
        let issued = authority
            .issue(
                request.profile,
                &request.subject,
                lifetime,
                KeySource::Generate,
                Utc::now(),
            )
            .map_err(refused)?;
        let key = issued
            .private_key_pem
            .clone()
            .ok_or_else(|| AppError::internal("a generated key is handed back"))?;
        let key_name = format!("cert.{}", issued.serial);
        let state = self.state()?;
        state
            .config
            .keys
            .put(&key_name, key.as_bytes())
            .await
            .map_err(AppError::internal)?;
        let custody = KeyCustody::Authority { key_name };
        let executed = self
            .record_issue(caller, options, command, &request, &issued, custody)
            .await?;
        let first = executed.outcome.state.current().map(|i| &i.serial) == Some(&issued.serial);
        if !first {
            // A retry: the first attempt's certificate stands; the key just made is of no use.
            let _ = state.config.keys.delete(&format!("cert.{}", issued.serial)).await;
        }
        self.answer(&executed, &authority, first.then(|| key.to_string()))
    }

    /// Signs a CSR for an entity within a profile: the holder keeps its key.
    pub async fn sign_csr(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        signing: CsrSigning,
    ) -> Result<IssuedCertificate, AppError> {
        let command = self.new_certificate(Some(workspace), "sign_csr", &signing);
        let CsrSigning {
            entity,
            profile,
            csr,
            ttl,
        } = &signing;
        let (profile, ttl) = (*profile, *ttl);
        self.app
            .authorize_command::<Certificate, _>(caller, &command)
            .await?;
        self.ensure_active(workspace).await?;
        let read = prism_ca::read_csr(csr.as_bytes(), profile).map_err(refused)?;
        let authority = self.authority().await?;
        let lifetime = ttl.unwrap_or_else(|| profile.default_lifetime());
        let issued = authority
            .issue(
                profile,
                &read.subject,
                lifetime,
                KeySource::PublicKey(&read.public_key),
                Utc::now(),
            )
            .map_err(refused)?;
        let request = CertificateRequest {
            entity: entity.clone(),
            profile,
            subject: read.subject,
            ttl,
        };
        let executed = self
            .record_issue(caller, options, command, &request, &issued, KeyCustody::Holder)
            .await?;
        self.answer(&executed, &authority, None)
    }

    fn new_certificate<'i, I: Serialize>(
        &self,
        scope: Option<WorkspaceId>,
        operation: &'static str,
        input: &'i I,
    ) -> Command<'i, I> {
        Command {
            what: WHAT,
            operation,
            permission: Permission::CertificatesIssue,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: scope,
            input,
        }
    }

    async fn record_issue<I: Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        command: Command<'_, I>,
        request: &CertificateRequest,
        issued: &prism_ca::Issued,
        key: KeyCustody,
    ) -> Result<Executed<Certificate>, AppError> {
        let workspace = command.workspace;
        self.app
            .execute_authorized(caller, options, command, |id| CertificateCommand::Issue {
                id: CertificateId(id.parse().expect("the service proposes UUIDs")),
                workspace,
                entity: request.entity.clone(),
                profile: request.profile,
                subject: request.subject.clone(),
                certificate: issued.pem.clone(),
                key,
            })
            .await
    }

    fn answer(
        &self,
        executed: &Executed<Certificate>,
        authority: &prism_ca::Authority,
        private_key: Option<String>,
    ) -> Result<IssuedCertificate, AppError> {
        let current = executed
            .outcome
            .state
            .current()
            .ok_or_else(|| AppError::internal("an issued lineage has a certificate"))?;
        let state = &executed.outcome.state;
        let (Some(entity), Some(profile)) = (state.entity.clone(), state.profile) else {
            return Err(AppError::internal(
                "an issued lineage has an entity and a profile",
            ));
        };
        Ok(IssuedCertificate {
            id: CertificateId(executed.id.parse().map_err(AppError::internal)?),
            entity,
            profile,
            serial: current.serial.clone(),
            certificate: current.certificate.clone(),
            chain: authority.chain_pem(),
            not_after: current.not_after,
            private_key,
            sequence: executed.outcome.sequence,
        })
    }

    /// The certificate and key with which one of the platform's own services (`entity_id`, a
    /// `service`) serves TLS under the names of `subject`: the newest certificate of its newest
    /// active lineage of those names (the renewal worker renews it before it ends, and a later call
    /// answers the renewal), else a new lineage — and the lineages it supersedes (other names, or
    /// none left alive) are revoked (`superseded`).
    pub async fn platform_identity(
        &self,
        caller: &Caller,
        entity_id: &str,
        subject: Subject,
    ) -> Result<PlatformIdentity, AppError> {
        let models = self.app.read_models()?;
        let lineages = models.active_certificates_of(None, entity_id).await?;
        let now = Utc::now();
        let mut found = None;
        for id in lineages.iter().rev() {
            let lineage = self
                .app
                .bounded(async { Ok(self.app.repository::<Certificate>().view(id).await?) })
                .await?;
            let (Some(current), Some(KeyCustody::Authority { key_name })) =
                (lineage.current(), lineage.key.as_ref())
            else {
                continue;
            };
            if lineage.status == CertificateStatus::Active
                && lineage.subject == subject
                && current.not_after - now > IDENTITY_MARGIN
            {
                let key = self.key(self.state()?, key_name).await?;
                found = Some((
                    *id,
                    current.clone(),
                    String::from_utf8(key.to_vec()).map_err(AppError::internal)?,
                ));
                break;
            }
        }
        let authority = self.authority().await?;
        let (id, certificate, not_after, private_key) = match found {
            Some((id, current, key)) => (id, current.certificate, current.not_after, key),
            None => {
                let request = CertificateRequest {
                    entity: Entity {
                        kind: EntityKind::Service,
                        id: entity_id.to_owned(),
                    },
                    profile: Profile::Service,
                    subject,
                    ttl: None,
                };
                let issued = self
                    .issue_for_platform(caller, &CommandOptions::default(), request)
                    .await?;
                let key = issued
                    .private_key
                    .ok_or_else(|| AppError::internal("a new certificate comes with its key"))?;
                (issued.id, issued.certificate, issued.not_after, key)
            }
        };
        for superseded in lineages.iter().filter(|l| **l != id) {
            let input = EntityInput {
                entity_id,
                reason: RevocationReason::Superseded,
            };
            if let Err(e) = self
                .revoke_lineage(
                    caller,
                    &CommandOptions::default(),
                    None,
                    *superseded,
                    &input,
                    RevocationReason::Superseded,
                )
                .await
            {
                warn!(certificate = %superseded, error = %e, "could not revoke a superseded platform certificate");
            }
        }
        Ok(PlatformIdentity {
            id,
            certificate_chain: format!("{certificate}{}", authority.chain_pem()),
            private_key,
            root: authority.root_pem(),
            not_after,
        })
    }

    /// Issues a new certificate (new serial) for the lineage of `serial`, same subject and key.
    pub async fn renew(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        serial: &Serial,
    ) -> Result<IssuedCertificate, AppError> {
        self.renew_in(caller, options, Some(workspace), serial).await
    }

    /// Renews in `scope`: a workspace, or the platform's own certificates (`None`).
    async fn renew_in(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        scope: Option<WorkspaceId>,
        serial: &Serial,
    ) -> Result<IssuedCertificate, AppError> {
        let input = SerialInput { serial, reason: None };
        let id = self.lineage_of(scope, serial).await?;
        let command = Command {
            what: WHAT,
            operation: "renew",
            permission: Permission::CertificatesIssue,
            target: Target::Existing(id.to_string()),
            workspace: scope,
            input: &input,
        };
        self.app
            .authorize_command::<Certificate, _>(caller, &command)
            .await?;
        let lineage = self
            .app
            .bounded(async { Ok(self.app.repository::<Certificate>().load(&id).await?.state) })
            .await?;
        match lineage.status {
            CertificateStatus::Active => {}
            CertificateStatus::Revoked => {
                return Err(AppError::new(
                    ErrorKind::StateConflict,
                    "the certificate is revoked: it cannot be renewed",
                ));
            }
            _ => {
                return Err(AppError::new(
                    ErrorKind::StateConflict,
                    "the certificate has expired",
                ));
            }
        }
        let (Some(profile), Some(current), Some(custody)) =
            (lineage.profile, lineage.current(), lineage.key.as_ref())
        else {
            return Err(AppError::internal(
                "an active lineage has a profile, a certificate and a key",
            ));
        };
        let public_key = match custody {
            KeyCustody::Authority { key_name } => {
                let key = self.key(self.state()?, key_name).await?;
                let text = std::str::from_utf8(&key).map_err(AppError::internal)?;
                prism_ca::public_key_of_key(text).map_err(AppError::internal)?
            }
            KeyCustody::Holder => {
                prism_ca::public_key_of_certificate(&current.certificate).map_err(AppError::internal)?
            }
        };
        // The same lifetime as the certificate it follows.
        let lifetime = (current.not_after - current.not_before)
            .to_std()
            .map(|validity| validity.saturating_sub(prism_ca::BACKDATE))
            .unwrap_or_else(|_| profile.default_lifetime())
            .min(profile.max_lifetime());
        let authority = self.authority().await?;
        let issued = authority
            .issue(
                profile,
                &lineage.subject,
                lifetime,
                KeySource::PublicKey(&public_key),
                Utc::now(),
            )
            .map_err(refused)?;
        let executed = self
            .app
            .execute_authorized(caller, options, command, |_| CertificateCommand::Renew {
                certificate: issued.pem.clone(),
            })
            .await?;
        self.answer(&executed, &authority, None)
    }

    /// The renewal policy the platform was configured with.
    pub fn renewal_policy(&self) -> Result<RenewalPolicy, AppError> {
        Ok(self.state()?.config.renewal)
    }

    /// Renews the active lineages whose newest certificate is due (see [`RenewalPolicy`]) and records
    /// the expiry of those whose newest certificate has ended. Each command is keyed by the lineage and
    /// its newest serial, so that several processes looking at once renew a lineage once.
    pub async fn maintain(
        &self,
        caller: &Caller,
        now: chrono::DateTime<Utc>,
    ) -> Result<Maintenance, AppError> {
        let policy = self.renewal_policy()?;
        let due = self
            .app
            .read_models()?
            .certificates_due(now, policy.before, prism_ca::BACKDATE, MAINTENANCE_BATCH)
            .await?;
        let mut done = Maintenance::default();
        for lineage in due {
            let expired = lineage.not_after <= now;
            let operation = if expired { "expire" } else { "renew" };
            let options = CommandOptions::keyed(format!("{operation}:{}:{}", lineage.id, lineage.serial));
            let result = if expired {
                self.expire(
                    caller,
                    &options,
                    lineage.workspace_id,
                    lineage.id,
                    &lineage.serial,
                )
                .await
                .map(|_| ())
            } else {
                self.renew_in(caller, &options, lineage.workspace_id, &lineage.serial)
                    .await
                    .map(|_| ())
            };
            match result {
                Ok(()) if expired => done.expired += 1,
                Ok(()) => done.renewed += 1,
                // Revoked or expired meanwhile: the read model will say so.
                Err(e) if e.kind == ErrorKind::StateConflict => {}
                Err(e) => {
                    warn!(certificate = %lineage.id, serial = %lineage.serial, error = %e, "could not {operation} a certificate");
                    done.failed += 1;
                }
            }
        }
        if done != Maintenance::default() {
            info!(
                renewed = done.renewed,
                expired = done.expired,
                failed = done.failed,
                "certificate maintenance"
            );
        }
        Ok(done)
    }

    /// Records that the lineage's newest certificate (`serial`) has ended.
    async fn expire(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        scope: Option<WorkspaceId>,
        id: CertificateId,
        serial: &Serial,
    ) -> Result<Executed<Certificate>, AppError> {
        let input = SerialInput { serial, reason: None };
        let command = Command {
            what: WHAT,
            operation: "expire",
            permission: Permission::CertificatesRevoke,
            target: Target::Existing(id.to_string()),
            workspace: scope,
            input: &input,
        };
        self.app
            .execute(caller, options, command, |_| CertificateCommand::Expire)
            .await
    }

    /// Revokes every unexpired certificate of the lineage of `serial`.
    pub async fn revoke(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<Executed<Certificate>, AppError> {
        let id = self.lineage_of(Some(workspace), serial).await?;
        let input = SerialInput {
            serial,
            reason: Some(reason),
        };
        self.revoke_lineage(caller, options, Some(workspace), id, &input, reason)
            .await
    }

    async fn revoke_lineage<I: Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        scope: Option<WorkspaceId>,
        id: CertificateId,
        input: &I,
        reason: RevocationReason,
    ) -> Result<Executed<Certificate>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "revoke",
            permission: Permission::CertificatesRevoke,
            target: Target::Existing(id.to_string()),
            workspace: scope,
            input,
        };
        self.app
            .execute(caller, options, command, |_| CertificateCommand::Revoke {
                reason,
            })
            .await
    }

    /// Revokes every active certificate of an entity; "not found" when it has none.
    pub async fn revoke_entity(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        entity_id: &str,
        reason: RevocationReason,
        read: ReadOptions,
    ) -> Result<Vec<CertificateId>, AppError> {
        self.app
            .authorize(
                caller,
                Action::in_workspace(Permission::CertificatesRevoke, workspace),
            )
            .await?;
        self.app.wait_read(&[CERTIFICATES], read).await?;
        let lineages = self
            .app
            .read_models()?
            .active_certificates_of(Some(workspace), entity_id)
            .await?;
        if lineages.is_empty() {
            return Err(AppError::not_found(format!(
                "entity `{entity_id}` has no active certificate in this workspace"
            )));
        }
        for id in &lineages {
            // One key per lineage, derived from the request's: a retry revokes nothing twice.
            let options = CommandOptions {
                idempotency_key: options.idempotency_key.as_ref().map(|k| format!("{k}:{id}")),
                expected_version: None,
            };
            let input = EntityInput { entity_id, reason };
            self.revoke_lineage(caller, &options, Some(workspace), *id, &input, reason)
                .await?;
        }
        Ok(lineages)
    }

    /// A one-time token with which the certificate of `serial` and its authority-held key are
    /// downloaded (by a machine that has nothing else yet: a bring-your-own CVM at boot).
    pub async fn download_token(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        serial: &Serial,
    ) -> Result<(String, chrono::DateTime<Utc>), AppError> {
        let id = self.lineage_of(Some(workspace), serial).await?;
        let (token, hash) = OpaqueToken::generate(TokenKind::CertificateDownload, id.as_uuid());
        let expires_at = Utc::now() + DOWNLOAD_TOKEN_LIFETIME;
        let input = SerialInput { serial, reason: None };
        let command = Command {
            what: WHAT,
            operation: "download_token",
            permission: Permission::CertificatesIssue,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &input,
        };
        self.app
            .execute::<Certificate, _>(caller, &CommandOptions::default(), command, |_| {
                CertificateCommand::IssueDownloadToken {
                    token: hash.clone(),
                    expires_at,
                }
            })
            .await?;
        Ok((token, expires_at))
    }

    /// The certificate and its key, for the one-time `token` (which is the credential: no sign-in).
    pub async fn download(&self, caller: &Caller, token: &str) -> Result<CertificateBundle, AppError> {
        let invalid = || {
            AppError::new(
                ErrorKind::Unauthenticated,
                "the download token is invalid, spent or expired",
            )
        };
        let (id, hash) = OpaqueToken::parse(TokenKind::CertificateDownload, token).map_err(|_| invalid())?;
        let id = CertificateId(id);
        let request = CommandRequest::<Certificate>::new(
            &id,
            CertificateCommand::RedeemDownloadToken { token: hash },
            caller.metadata(None),
        );
        let repository = self.app.repository::<Certificate>();
        let outcome = self
            .app
            .bounded(async { Ok(repository.execute(request).await) })
            .await?
            .map_err(|_| invalid())?;
        let Some(KeyCustody::Authority { key_name }) = &outcome.state.key else {
            return Err(invalid());
        };
        let current = outcome.state.current().ok_or_else(invalid)?;
        let key = self.key(self.state()?, key_name).await?;
        let authority = self.authority().await?;
        Ok(CertificateBundle {
            serial: current.serial.clone(),
            certificate: current.certificate.clone(),
            private_key: String::from_utf8(key.to_vec()).map_err(AppError::internal)?,
            chain: authority.chain_pem(),
        })
    }

    /// A workspace's certificate lineages.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        filter: &CertificateFilter,
        page: PageRequest,
        read: ReadOptions,
    ) -> Result<Page<CertificateView>, AppError> {
        self.app
            .authorize(
                caller,
                Action::in_workspace(Permission::CertificatesRead, workspace),
            )
            .await?;
        self.app.wait_read(&[CERTIFICATES], read).await?;
        Ok(self
            .app
            .read_models()?
            .certificates(workspace, filter, page)
            .await?)
    }

    /// The certificate `serial` of `workspace`, with its lineage.
    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        serial: &Serial,
        read: ReadOptions,
    ) -> Result<(CertificateView, CertificateSerialView), AppError> {
        self.app
            .authorize(
                caller,
                Action::in_workspace(Permission::CertificatesRead, workspace),
            )
            .await?;
        self.app.wait_read(&[CERTIFICATES], read).await?;
        let models = self.app.read_models()?;
        let found = models
            .certificate_serial(serial)
            .await?
            .filter(|s| s.workspace_id == Some(workspace))
            .ok_or_else(|| not_found(serial))?;
        let view = models
            .certificate(workspace, found.certificate_id)
            .await?
            .ok_or_else(|| not_found(serial))?;
        Ok((view, found))
    }

    /// The chain every issued certificate ends in: the intermediate, then the root (PEM).
    pub async fn chain(&self) -> Result<String, AppError> {
        Ok(self.authority().await?.chain_pem())
    }

    /// The issuing intermediate's certificate (DER), where certificates' AIA points.
    pub async fn issuer(&self) -> Result<Vec<u8>, AppError> {
        Ok(self.authority().await?.intermediate_der().to_vec())
    }

    /// The CRL, made again when a revocation has landed since the last one, or when it is getting old.
    pub async fn crl(&self) -> Result<prism_ca::Crl, AppError> {
        let state = self.state()?;
        let now = Utc::now();
        let revocations = self.app.read_models()?.revocations(now).await?;
        if let Some(cached) = state.crl.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && cached.number == revocations.number
            && now - cached.made_at < CRL_REFRESH
        {
            return Ok(cached.crl.clone());
        }
        let entries: Vec<RevokedEntry> = revocations
            .revoked
            .into_iter()
            .map(|r| RevokedEntry {
                serial: r.serial,
                revoked_at: r.revoked_at,
                reason: r.reason_code,
            })
            .collect();
        let authority = self.authority().await?;
        // The CRL number must grow with every CRL any process makes, also one made again with
        // nothing new: the time it is made, in microseconds.
        let number = u64::try_from(now.timestamp_micros()).map_err(AppError::internal)?;
        let crl = authority
            .crl(&entries, number, now, CRL_VALIDITY)
            .map_err(AppError::internal)?;
        *state.crl.lock().unwrap_or_else(|p| p.into_inner()) = Some(CachedCrl {
            number: revocations.number,
            made_at: now,
            crl: crl.clone(),
        });
        Ok(crl)
    }

    /// The OCSP response (DER) to the DER request `request`.
    pub async fn ocsp(&self, request: &[u8]) -> Result<Vec<u8>, AppError> {
        let authority = self.authority().await?;
        let models = self.app.read_models()?;
        let now = Utc::now();
        let mut statuses = Vec::new();
        for serial in prism_ca::ocsp_request_serials(request) {
            let status = match models.certificate_serial(&serial).await? {
                None => OcspStatus::Unknown,
                Some(found) => match found.revoked_at {
                    Some(at) => OcspStatus::Revoked {
                        at,
                        reason: found.reason_code,
                    },
                    None => OcspStatus::Good,
                },
            };
            statuses.push((serial, status));
        }
        let lookup = |serial: &Serial| {
            statuses
                .iter()
                .find(|(s, _)| s == serial)
                .map_or(OcspStatus::Unknown, |(_, status)| *status)
        };
        authority
            .respond_ocsp(request, lookup, now)
            .map_err(AppError::internal)
    }

    /// Tells `revoked` every serial revoked and not yet expired, then every serial revoked from now on,
    /// as the log records it (within milliseconds), until `shutdown`: what keeps a TLS server's
    /// revocation set current. A connection to the log that breaks is taken up again where it broke.
    ///
    /// A revocation is acted on even in a commit that fails verification (and logged): a forged
    /// revocation can only refuse a certificate, while ignoring a real one would admit it.
    pub async fn watch_revocations(
        &self,
        mut revoked: impl FnMut(&[Serial]) + Send,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), AppError> {
        let log = self.app.log().clone();
        let head = log.last_sequence().await?;
        // Everything revoked up to `head`, once the read model has read that far.
        let models = self.app.read_models()?;
        while !models.reached(CERTIFICATES, head).await? {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            }
        }
        let known: Vec<Serial> = models
            .revocations(Utc::now())
            .await?
            .revoked
            .into_iter()
            .map(|r| r.serial)
            .collect();
        revoked(&known);
        let filter = log.subjects().of_type(Certificate::TYPE);
        let mut verifier = prism_store::Verifier::new(log.clone());
        let mut next = head + 1;
        loop {
            let mut commits = match log.read(next, &filter).await {
                Ok(commits) => commits,
                Err(e) => {
                    warn!(error = %e, "cannot follow revocations; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                    }
                }
            };
            loop {
                let commit = tokio::select! {
                    commit = commits.next() => commit,
                    _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                };
                let commit = match commit {
                    Some(Ok(commit)) => commit,
                    Some(Err(e)) => {
                        warn!(error = %e, "the revocation feed broke; taking it up again");
                        break;
                    }
                    None => break,
                };
                next = commit.sequence + 1;
                let serials = match verifier.check(commit.clone()).await {
                    Ok(prism_store::Checked::Verified(_)) => revoked_serials(&commit),
                    Ok(prism_store::Checked::Quarantined { reason, .. }) => {
                        warn!(sequence = commit.sequence, %reason, "a certificate commit failed verification; its revocations stand");
                        revoked_serials(&commit)
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot verify a certificate commit; its revocations stand");
                        revoked_serials(&commit)
                    }
                };
                if !serials.is_empty() {
                    revoked(&serials);
                }
            }
        }
    }

    /// The lineage of `serial`, which must be one of `scope`'s (a workspace's, or the platform's own
    /// for `None`): "not found" otherwise.
    async fn lineage_of(
        &self,
        scope: Option<WorkspaceId>,
        serial: &Serial,
    ) -> Result<CertificateId, AppError> {
        self.app
            .read_models()?
            .certificate_serial(serial)
            .await?
            .filter(|s| s.workspace_id == scope)
            .map(|s| s.certificate_id)
            .ok_or_else(|| not_found(serial))
    }

    /// Certificates are issued in an active workspace only.
    async fn ensure_active(&self, workspace: WorkspaceId) -> Result<(), AppError> {
        let state = self
            .app
            .bounded(async { Ok(self.app.repository::<Workspace>().view(&workspace).await?) })
            .await?;
        match state.status {
            WorkspaceStatus::Active => Ok(()),
            WorkspaceStatus::New => Err(AppError::not_found(format!("workspace {workspace} not found"))),
            WorkspaceStatus::Archived => Err(AppError::new(
                ErrorKind::StateConflict,
                "the workspace is archived: no certificates are issued in it",
            )),
        }
    }
}

/// The serials a certificate commit revokes.
fn revoked_serials(commit: &prism_store::StoredCommit) -> Vec<Serial> {
    commit
        .events
        .iter()
        .filter_map(|envelope| envelope.decode::<CertificateEvent>(Certificate::TYPE).ok())
        .flat_map(|event| match event {
            CertificateEvent::Revoked(revoked) => revoked.serials,
            _ => Vec::new(),
        })
        .collect()
}

fn not_found(serial: &Serial) -> AppError {
    AppError::not_found(format!("certificate {serial} not found"))
}

/// A request the authority refuses is the caller's to fix.
fn refused(error: prism_ca::CaError) -> AppError {
    match error {
        prism_ca::CaError::Profile(e) => AppError::new(ErrorKind::Invalid, e.to_string()),
        prism_ca::CaError::Request(detail) => AppError::new(ErrorKind::Invalid, detail),
        other => AppError::internal(other),
    }
}
