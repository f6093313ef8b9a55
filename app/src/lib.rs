//! The application layer: the command and query services that every transport calls.
//!
//! HTTP handlers, the agents' gRPC service, workers and CLI commands are thin adapters: they turn their
//! request into a call here and map the [`AppError`] that may come back to their own status codes. This
//! crate owns what is the same whatever the transport:
//!
//! * **authorisation** — every service asks the [`Authorizer`] first (identity plugs in there);
//! * **preconditions that read other aggregates** — a computation is created only in an active
//!   workspace, and is changed only through the workspace it belongs to;
//! * **idempotency** — a key is claimed once, bound to a fingerprint of the request's content, and
//!   answered with the first outcome at any age (see [`prism_store::IdempotencyRecords`]);
//! * **metadata** — actor, correlation, causation and trace context on every event ([`Caller`]);
//! * **time bounds** — a command finishes or fails within `command_timeout`, and fails at once while
//!   the event log is unreachable;
//! * **read-your-writes** — queries wait for a stream sequence, and refuse at once one that the log has
//!   not reached.
//!
//! **Architecture Invariant:** this crate knows no transport: no HTTP, gRPC or terminal types.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_domain::access::Permission;
use prism_domain::computation::Computation;
use prism_domain::{Aggregate, ComputationId, WorkspaceId};
use prism_projections::ReadModels;
use prism_store::{
    BlobStore, Claim, CommandOutcome, CommandRequest, EventLog, IdempotencyRecord, IdempotencyRecords,
    MemoryBlobs, MemoryIdempotency, RecordedOutcome, Repository, RepositoryConfig, SignedSnapshots,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tracing::warn;

mod accounts;
mod api_keys;
mod assets;
mod attestations;
mod audit;
mod auth;
mod backends;
mod caller;
mod certificates;
mod computations;
mod cvms;
mod denials;
mod error;
mod governance;
mod identity;
mod ledger;
mod memberships;
mod oidc;
mod operations;
mod reactions;
mod replay;
pub mod reports;
mod runs;
mod webhooks;
mod workspaces;

pub use accounts::{
    AccountChange, Accounts, EMAIL_VERIFICATION_LIFETIME, LogMailer, Mailer, PASSWORD_RESET_INTERVAL,
    PASSWORD_RESET_LIFETIME,
};
pub use api_keys::{ApiKeys, IssuedApiKey, NewApiKey};
pub use assets::{Assets, SampleContent};
pub use attestations::{
    AttestationConfig, Attestations, ReappraisalError, platform as attestation_platform, reappraise,
};
pub use audit::{Audit, BadPosition, FeedFilter, FeedItem, FeedPosition};
pub use auth::{Action, AllowAll, Authorizer, AuthzError, RoleAuthorizer};
pub use backends::Backends;
pub use caller::{ANONYMOUS, ApiKeyScope, Caller, CommandOptions, Principal, UserPrincipal};
pub use certificates::{
    CertificateAuthorityConfig, CertificateBundle, CertificateRequest, Certificates, CsrSigning,
    DOWNLOAD_TOKEN_LIFETIME, IssuedCertificate, Maintenance, PlatformIdentity, RenewalPolicy,
};
pub use computations::{AttestationPolicies, Computations, ExportOrigin, ExportedComputation};
pub use cvms::{AgentIdentity, Cvms, Enrolment};
pub use denials::Denial;
pub use error::{AppError, ErrorKind};
pub use governance::{ChangeOutcome, Governance, GovernanceView, HaltView, ProposalFilter, ProposalView};
pub use identity::{Identity, IdentityConfig, Registration, Tokens};
pub use ledger::{
    BUNDLE_FORMAT, Bundle, BundleCommit, Finding, FindingKind, LedgerReport, LedgerService, LedgerSigner,
    Sealed, unreadable_leaf, verify_bundle,
};
pub use memberships::{
    INVITATION_LIFETIME, INVITATION_LIFETIME_MAX, InvitationAnswer, Invite, InviteeInput, IssuedInvitation,
    Memberships,
};
pub use oidc::{OidcCallback, OidcRedirect, OidcSignIn, PENDING_LIFETIME};
pub use operations::Operations;
pub use reactions::Reactions;
pub use replay::{BadUntil, REPLAYABLE, Replay, ReplayStep, ReplayUntil};
pub use reports::{ComplianceReport, REPORT_FORMAT, Reports};
pub use runs::{DryRun, Lack, ManifestView, RunConnection, Runs, agent_host};
pub use webhooks::{
    IssuedSecret, NewWebhook, SECRET_PREFIX, WEBHOOK_SENDER, WebhookChanges, Webhooks,
    fingerprint as webhook_secret_fingerprint,
};
pub use workspaces::{NewWorkspace, WorkspaceChanges, Workspaces};

/// Tunables of the application layer; [`AppConfig::default`] is what production uses.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Upper bound for deciding and committing one command; past it the caller gets `Unavailable`.
    pub command_timeout: Duration,
    /// How long a query with a minimum sequence waits for its read model before `Lagging`.
    pub read_wait: Duration,
    pub repository: RepositoryConfig,
    /// How attestation evidence is appraised.
    pub attestation: AttestationConfig,
    /// How long a run's result consumers may fetch its result before the run completes anyway (and
    /// its agent's data is wiped).
    pub result_window: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(10),
            read_wait: Duration::from_secs(5),
            repository: RepositoryConfig::default(),
            attestation: AttestationConfig::default(),
            result_window: Duration::from_secs(3600),
        }
    }
}

/// How fresh a query's answer must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Wait until the read model has applied this stream sequence (e.g. a command's), up to `wait`.
    pub min_sequence: Option<u64>,
    /// How long to wait for it; `None` takes the configured `read_wait`.
    pub wait: Option<Duration>,
}

impl ReadOptions {
    pub fn at_least(sequence: u64) -> Self {
        Self {
            min_sequence: Some(sequence),
            wait: None,
        }
    }
}

/// A command that was accepted (or had been before, under the same idempotency key).
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The aggregate's id (for a create: the one chosen, or the first attempt's on a retry).
    pub id: String,
    pub outcome: CommandOutcome<A>,
}

/// Which aggregate a command goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An aggregate that the caller names.
    Existing(String),
    /// A new aggregate; `proposed` is its id unless an idempotency key already chose one.
    New { proposed: String },
}

/// One command as a service hands it to [`App::execute`].
#[derive(Debug)]
pub(crate) struct Command<'a, I: Serialize> {
    /// For messages and idempotency scopes: `workspace`, `computation`, …
    pub what: &'static str,
    pub operation: &'static str,
    /// What the caller must be allowed.
    pub permission: Permission,
    pub target: Target,
    /// The workspace the aggregate belongs to (`None` for a workspace itself).
    pub workspace: Option<WorkspaceId>,
    /// The request's content, fingerprinted for idempotency. Not the domain command: that may carry
    /// facts the service looked up (which may differ on a retry) or a freshly chosen id.
    pub input: &'a I,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn EventLog>,
    snapshots: Option<SignedSnapshots>,
    read: Option<ReadModels>,
    idempotency: Arc<dyn IdempotencyRecords>,
    /// Bytes kept beside the log: asset samples.
    blobs: Arc<dyn BlobStore>,
    authorizer: Arc<dyn Authorizer>,
    denials: denials::DenialGate,
    identity: Option<identity::IdentityState>,
    authority: Option<certificates::AuthorityState>,
    attestation: attestations::AttestationState,
    ledger: ledger::LedgerState,
    mailer: Arc<dyn Mailer>,
    config: AppConfig,
    /// One repository per aggregate type, made on first use.
    repositories: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("log", &self.inner.log)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Builds an [`App`]; only the event log is required.
#[derive(Debug)]
pub struct AppBuilder {
    log: Arc<dyn EventLog>,
    snapshots: Option<SignedSnapshots>,
    read: Option<ReadModels>,
    idempotency: Arc<dyn IdempotencyRecords>,
    blobs: Arc<dyn BlobStore>,
    authorizer: Arc<dyn Authorizer>,
    identity: Option<IdentityConfig>,
    authority: Option<CertificateAuthorityConfig>,
    mailer: Arc<dyn Mailer>,
    config: AppConfig,
}

impl AppBuilder {
    /// Users, sign-in and bearer credentials, with these keys and policies.
    pub fn identity(mut self, config: IdentityConfig) -> Self {
        self.identity = Some(config);
        self
    }

    /// Sends the platform's mail (one-time links); [`LogMailer`] unless set.
    /// The platform's certificate authority: its public URLs and its key store.
    pub fn certificate_authority(mut self, config: CertificateAuthorityConfig) -> Self {
        self.authority = Some(config);
        self
    }

    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    pub fn read_models(mut self, read: ReadModels) -> Self {
        self.read = Some(read);
        self
    }

    pub fn snapshots(mut self, snapshots: SignedSnapshots) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    pub fn idempotency(mut self, records: Arc<dyn IdempotencyRecords>) -> Self {
        self.idempotency = records;
        self
    }

    /// Where asset samples are kept; in memory unless set.
    pub fn blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = blobs;
        self
    }

    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    pub fn config(mut self, config: AppConfig) -> Self {
        self.config = config;
        self
    }

    pub fn build(self) -> App {
        App {
            inner: Arc::new(Inner {
                log: self.log,
                snapshots: self.snapshots,
                read: self.read,
                idempotency: self.idempotency,
                blobs: self.blobs,
                authorizer: self.authorizer,
                denials: denials::DenialGate::default(),
                identity: self.identity.map(identity::IdentityState::new),
                authority: self.authority.map(certificates::AuthorityState::new),
                attestation: attestations::AttestationState::new(self.config.attestation.clone()),
                ledger: ledger::LedgerState::default(),
                mailer: self.mailer,
                config: self.config,
                repositories: Mutex::default(),
            }),
        }
    }
}

impl App {
    /// An application over `log`, with idempotency records and blobs in memory, no read models, and every
    /// caller allowed; the builder's methods replace each.
    pub fn builder(log: Arc<dyn EventLog>) -> AppBuilder {
        AppBuilder {
            log,
            snapshots: None,
            read: None,
            idempotency: Arc::new(MemoryIdempotency::default()),
            blobs: Arc::new(MemoryBlobs::default()),
            authorizer: Arc::new(AllowAll),
            identity: None,
            authority: None,
            mailer: Arc::new(LogMailer),
            config: AppConfig::default(),
        }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.inner.log
    }

    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    pub fn workspaces(&self) -> Workspaces<'_> {
        Workspaces::new(self)
    }

    pub fn computations(&self) -> Computations<'_> {
        Computations::new(self)
    }

    pub fn assets(&self) -> Assets<'_> {
        Assets::new(self)
    }

    pub fn certificates(&self) -> Certificates<'_> {
        Certificates::new(self)
    }

    pub fn backends(&self) -> Backends<'_> {
        Backends::new(self)
    }

    pub fn cvms(&self) -> Cvms<'_> {
        Cvms::new(self)
    }

    pub fn runs(&self) -> Runs<'_> {
        Runs::new(self)
    }

    pub fn reports(&self) -> Reports<'_> {
        Reports::new(self)
    }

    pub fn audit(&self) -> Audit<'_> {
        Audit::new(self)
    }

    pub fn governance(&self) -> Governance<'_> {
        Governance::new(self)
    }

    pub fn ledger(&self) -> LedgerService<'_> {
        LedgerService::new(self)
    }

    pub fn attestations(&self) -> Attestations<'_> {
        Attestations::new(self)
    }

    pub fn identity(&self) -> Identity<'_> {
        Identity::new(self)
    }

    pub fn accounts(&self) -> Accounts<'_> {
        Accounts::new(self)
    }

    pub fn memberships(&self) -> Memberships<'_> {
        Memberships::new(self)
    }

    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys::new(self)
    }

    pub fn operations(&self) -> Operations<'_> {
        Operations::new(self)
    }

    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks::new(self)
    }

    pub fn reactions(&self) -> Reactions<'_> {
        Reactions::new(self)
    }

    /// The read models; an application built without them answers queries with an internal error.
    pub fn read_models(&self) -> Result<&ReadModels, AppError> {
        self.inner
            .read
            .as_ref()
            .ok_or_else(|| AppError::internal("this application was built without read models"))
    }

    /// The repository of aggregate type `A`, shared by every service of this application.
    pub fn repository<A: Aggregate>(&self) -> Arc<Repository<A>> {
        let mut repositories = self.inner.repositories.lock().unwrap_or_else(|p| p.into_inner());
        let entry = repositories.entry(TypeId::of::<A>()).or_insert_with(|| {
            Arc::new(Repository::<A>::with(
                self.inner.log.clone(),
                self.inner.snapshots.clone(),
                self.inner.config.repository.clone(),
            ))
        });
        entry
            .clone()
            .downcast::<Repository<A>>()
            .expect("the entry of a type id holds that type's repository")
    }

    /// Asks the authorizer; a denial is recorded and answered.
    pub async fn authorize(&self, caller: &Caller, action: Action) -> Result<(), AppError> {
        match self.inner.authorizer.authorize(self, caller, &action).await {
            Ok(()) => Ok(()),
            Err(AuthzError::Failed(e)) => Err(e),
            Err(AuthzError::Denied(denial)) => Err(self.deny(caller, denial).await),
        }
    }

    /// Refuses unless `workspace` exists and is active, read from the aggregate rather than its read
    /// model (one archived a moment ago counts as archived); `what` says what an archived one takes
    /// no more of.
    pub(crate) async fn require_active_workspace(
        &self,
        workspace: WorkspaceId,
        what: &str,
    ) -> Result<(), AppError> {
        let standing = self
            .bounded(async {
                Ok(self
                    .repository::<prism_domain::workspace::Workspace>()
                    .load(&workspace)
                    .await?
                    .state
                    .status)
            })
            .await?;
        match standing {
            prism_domain::workspace::WorkspaceStatus::Active => Ok(()),
            prism_domain::workspace::WorkspaceStatus::New => {
                Err(AppError::not_found(format!("workspace {workspace} not found")))
            }
            prism_domain::workspace::WorkspaceStatus::Archived => Err(AppError::new(
                ErrorKind::StateConflict,
                format!("workspace {workspace} is archived: it takes no new {what}"),
            )),
        }
    }

    /// Runs `work` within the command timeout, refusing at once while the log is unreachable.
    pub(crate) async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        if !self.inner.log.is_available() {
            return Err(AppError::unavailable(
                "the event store is unavailable; retry shortly",
            ));
        }
        tokio::time::timeout(self.inner.config.command_timeout, work)
            .await
            .unwrap_or_else(|_| {
                warn!("command timed out");
                Err(AppError::unavailable(
                    "the command did not complete in time; retry (with the same idempotency key) shortly",
                ))
            })
    }

    /// Authorises, claims the idempotency key, and runs `make(id)` on the aggregate. The caller has
    /// checked its preconditions; this is the one path every command takes.
    pub(crate) async fn execute<A: Aggregate, I: Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        command: Command<'_, I>,
        make: impl FnOnce(&str) -> A::Command,
    ) -> Result<Executed<A>, AppError> {
        self.authorize_command::<A, I>(caller, &command).await?;
        self.execute_authorized(caller, options, command, make).await
    }

    /// The authorisation [`App::execute`] asks for, for a service that must check preconditions only
    /// an authorised caller may learn about (then [`App::execute_authorized`]).
    pub(crate) async fn authorize_command<A: Aggregate, I: Serialize>(
        &self,
        caller: &Caller,
        command: &Command<'_, I>,
    ) -> Result<(), AppError> {
        let (id, new) = match &command.target {
            Target::Existing(id) => (id.clone(), false),
            Target::New { proposed } => (proposed.clone(), true),
        };
        // A command on one computation is authorised against that computation (its participants' roles).
        let computation = (A::TYPE == Computation::TYPE && !new)
            .then(|| id.parse::<ComputationId>().ok())
            .flatten();
        self.authorize(
            caller,
            Action {
                permission: command.permission,
                workspace: command.workspace.or_else(|| {
                    (A::TYPE == prism_domain::workspace::Workspace::TYPE && !new)
                        .then(|| id.parse::<WorkspaceId>().ok())
                        .flatten()
                }),
                computation,
            },
        )
        .await
    }

    /// [`App::execute`] for a command [`App::authorize_command`] has allowed.
    pub(crate) async fn execute_authorized<A: Aggregate, I: Serialize>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        command: Command<'_, I>,
        make: impl FnOnce(&str) -> A::Command,
    ) -> Result<Executed<A>, AppError> {
        let id = match &command.target {
            Target::Existing(id) | Target::New { proposed: id } => id.clone(),
        };
        self.bounded(async {
            let claim = match &options.idempotency_key {
                Some(key) => Some(self.claim(caller, &command, key, &id).await?),
                None => None,
            };
            let id = claim.as_ref().map_or(id, |c| c.aggregate_id.clone());
            if let Some(claim) = &claim
                && let Some(outcome) = claim.unchanged
            {
                // The first use changed nothing: answer the same, decide and store nothing.
                let loaded = self.repository::<A>().load(&id).await?;
                return Ok(Executed {
                    id,
                    outcome: CommandOutcome {
                        state: loaded.state,
                        version: outcome.0,
                        sequence: outcome.1,
                        events: Vec::new(),
                        replayed: true,
                    },
                });
            }
            let workspace = command.workspace.map_or_else(|| id.clone(), |w| w.to_string());
            let meta = caller.metadata(Some(workspace));
            let mut request =
                CommandRequest::<A>::new(&id, make(&id), meta).expecting_version(options.expected_version);
            if let Some(claim) = &claim {
                request = request.idempotent(&claim.key, &claim.fingerprint);
            }
            match self.repository::<A>().execute(request).await {
                Ok(outcome) => {
                    if let Some(claim) = &claim {
                        self.settle(claim, &id, &outcome).await;
                    }
                    Ok(Executed { id, outcome })
                }
                Err(error) => {
                    let nothing_stored = matches!(
                        error,
                        prism_store::CommandError::Rejected(_)
                            | prism_store::CommandError::VersionMismatch { .. }
                            | prism_store::CommandError::IdempotencyKeyReused
                    );
                    // Only the request that won the key frees it, so a rejected retry can never free
                    // a key whose first attempt is still in flight.
                    if nothing_stored
                        && let Some(KeyClaim {
                            won: Some(revision),
                            key,
                            ..
                        }) = &claim
                        && let Err(e) = self.inner.idempotency.release(key, *revision).await
                    {
                        warn!(error = %e, "could not release an idempotency key");
                    }
                    Err(AppError::command(command.what, error))
                }
            }
        })
        .await
    }

    async fn claim<I: Serialize>(
        &self,
        caller: &Caller,
        command: &Command<'_, I>,
        key: &str,
        id: &str,
    ) -> Result<KeyClaim, AppError> {
        // The key is scoped to its caller and to one operation on one aggregate (or, for a create, one
        // kind of aggregate in one workspace): one key reused on two different operations never replays
        // the wrong one, and two callers who happen to choose the same key never see each other's
        // outcome.
        let scope = match &command.target {
            Target::Existing(id) => format!("{}|{}:{}:{id}", caller.actor, command.what, command.operation),
            Target::New { .. } => format!(
                "{}|{}:{}:{}",
                caller.actor,
                command.what,
                command.operation,
                command.workspace.map(|w| w.to_string()).unwrap_or_default()
            ),
        };
        let record_key = hex::encode(Sha256::digest(format!("{scope}\n{key}")));
        let fingerprint = fingerprint(&scope, command.input)?;
        let mine = IdempotencyRecord {
            aggregate_id: id.to_owned(),
            fingerprint: fingerprint.clone(),
            outcome: RecordedOutcome::Pending,
        };
        match self.inner.idempotency.claim(&record_key, &mine).await? {
            Claim::Won { revision } => Ok(KeyClaim {
                key: record_key,
                fingerprint,
                aggregate_id: id.to_owned(),
                won: Some(revision),
                revision,
                unchanged: None,
            }),
            Claim::Held { record, revision } => {
                if record.fingerprint != fingerprint {
                    return Err(AppError::key_reused());
                }
                let unchanged = match record.outcome {
                    RecordedOutcome::Unchanged { version, sequence } => Some((version, sequence)),
                    RecordedOutcome::Pending | RecordedOutcome::Committed { .. } => None,
                };
                Ok(KeyClaim {
                    key: record_key,
                    fingerprint,
                    aggregate_id: record.aggregate_id,
                    won: None,
                    revision,
                    unchanged,
                })
            }
        }
    }

    /// Records how a keyed command ended. Best effort: the commit itself carries the fingerprint, so
    /// a record left `Pending` only makes a retry decide again, which the commit then answers.
    async fn settle<A: Aggregate>(&self, claim: &KeyClaim, id: &str, outcome: &CommandOutcome<A>) {
        let recorded = if outcome.events.is_empty() && !outcome.replayed {
            RecordedOutcome::Unchanged {
                version: outcome.version,
                sequence: outcome.sequence,
            }
        } else {
            RecordedOutcome::Committed {
                version: outcome.version,
                sequence: outcome.sequence,
            }
        };
        let record = IdempotencyRecord {
            aggregate_id: id.to_owned(),
            fingerprint: claim.fingerprint.clone(),
            outcome: recorded,
        };
        if let Err(e) = self
            .inner
            .idempotency
            .settle(&claim.key, &record, claim.revision)
            .await
        {
            warn!(error = %e, "could not record the outcome of an idempotent command");
        }
    }

    /// Waits until every read model in `projections` has applied `options.min_sequence`. A sequence the
    /// log has not reached can never be waited for, and is refused at once.
    pub(crate) async fn wait_read(&self, projections: &[&str], options: ReadOptions) -> Result<(), AppError> {
        let Some(sequence) = options.min_sequence else {
            return Ok(());
        };
        let read = self.read_models()?;
        let wait = options.wait.unwrap_or(self.inner.config.read_wait);
        for name in projections {
            if read.reached(name, sequence).await? {
                continue;
            }
            let last = self.inner.log.last_sequence().await?;
            if sequence > last {
                return Err(AppError::bad_request(format!(
                    "min_sequence {sequence} is beyond the end of the event log (stream sequence {last}); \
                     pass a sequence a command returned"
                )));
            }
            read.wait_for(name, sequence, wait).await?;
        }
        Ok(())
    }
}

/// A claimed idempotency key.
#[derive(Debug, Clone)]
struct KeyClaim {
    /// The record's key, also the repository's idempotency key (already scoped).
    key: String,
    fingerprint: String,
    aggregate_id: String,
    /// The revision this request created, when it won the key.
    won: Option<u64>,
    /// The record's revision as this request saw it.
    revision: u64,
    /// `(version, sequence)` of a first use that changed nothing.
    unchanged: Option<(u64, u64)>,
}

/// SHA-256 of the scope and the request content, serialised canonically (the content's own types, not
/// the caller's formatting).
fn fingerprint(scope: &str, input: &impl Serialize) -> Result<String, AppError> {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(input).map_err(AppError::internal)?);
    Ok(hex::encode(hasher.finalize()))
}
