//! Computations: the preconditions that read the workspace, then the one command path.

use prism_attestation::Policy;
use prism_domain::ParticipantId;
use prism_domain::access::Permission;
use prism_domain::backend::BackendStatus;
use prism_domain::computation::VersionedPolicy;
use prism_domain::computation::{
    Change, Computation, ComputationChanges, ComputationCommand, ComputationEvent, ComputationImport,
    Definition, LinkedAsset, Participant, WorkspaceStanding,
};
use prism_domain::user::{User, UserStatus};
use prism_domain::values::Email;
use prism_domain::workspace::{Workspace, WorkspaceStatus};
use prism_domain::{BackendId, ComputationId, WorkspaceId};
use prism_projections::{COMPUTATIONS, ComputationView, Page, PageRequest, WORKSPACES};
use serde::Serialize;

use crate::workspaces;
use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "computation";

/// A computation as exported: what defines it, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedComputation {
    pub import: ComputationImport,
    pub origin: ExportOrigin,
}

/// Where an exported computation comes from: for the reader; an import ignores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOrigin {
    pub workspace: WorkspaceId,
    pub computation: ComputationId,
    /// The computation's version (its last event) when exported.
    pub version: u64,
    /// Its manifest's id then; an imported computation's differs, being another computation.
    pub manifest_id: Option<String>,
    pub exported_at: chrono::DateTime<chrono::Utc>,
}

/// The participants a new computation's definition names.
trait HasParticipants {
    fn participants(&self) -> &[Participant];
}

impl HasParticipants for Definition {
    fn participants(&self) -> &[Participant] {
        &self.participants
    }
}

impl HasParticipants for ComputationImport {
    fn participants(&self) -> &[Participant] {
        &self.definition.participants
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Computations<'a> {
    app: &'a App,
}

#[derive(Serialize)]
struct ArchiveInput<'a> {
    reason: &'a Option<String>,
}

impl<'a> Computations<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Defines a computation in an active workspace.
    pub async fn create(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        definition: Definition,
    ) -> Result<Executed<Computation>, AppError> {
        self.define(
            caller,
            options,
            workspace,
            "create",
            &definition,
            &[],
            |id, standing| ComputationCommand::Create {
                id,
                workspace_id: workspace,
                workspace: standing,
                definition: definition.clone(),
            },
        )
        .await
    }

    /// Defines a computation in an active workspace from an exported one ([`Computations::export`]):
    /// the same definition, attestation policies and change threshold, in one commit. Its
    /// participants consent to it anew; a backend an override names must be one this workspace can
    /// place runs on.
    pub async fn import(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        import: ComputationImport,
    ) -> Result<Executed<Computation>, AppError> {
        let backends: Vec<BackendId> = import.backend_policies.keys().copied().collect();
        let mut import = import;
        import.linked = self.linked_assets(workspace, &import.definition).await?;
        self.define(
            caller,
            options,
            workspace,
            "import",
            &import,
            &backends,
            |id, standing| ComputationCommand::Import {
                id,
                workspace_id: workspace,
                workspace: standing,
                import: Box::new(import.clone()),
            },
        )
        .await
    }

    /// What a new computation's definition (`input`, as the command records it) needs before its
    /// command: the caller may create computations here, the workspace is active, every participant
    /// named by id is a user, and every backend named is one the workspace can use.
    #[allow(clippy::too_many_arguments)]
    async fn define<I: Serialize + HasParticipants>(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        operation: &'static str,
        input: &I,
        backends: &[BackendId],
        command: impl Fn(ComputationId, WorkspaceStanding) -> ComputationCommand,
    ) -> Result<Executed<Computation>, AppError> {
        // The workspace aggregate itself, not its read model: a workspace created a moment ago may not
        // be projected yet, and one archived a moment ago must already count as archived. The load
        // brings a cached view up to date with the commits after it, never the whole history again.
        let workspace_state = self
            .app
            .bounded(async { Ok(self.app.repository::<Workspace>().load(&workspace).await?.state) })
            .await?;
        let standing = match workspace_state.status {
            WorkspaceStatus::New => WorkspaceStanding::Missing,
            WorkspaceStatus::Active => WorkspaceStanding::Active,
            WorkspaceStatus::Archived => WorkspaceStanding::Archived,
        };
        let checked = Command {
            what: WHAT,
            operation,
            permission: Permission::ComputationCreate,
            target: Target::New {
                proposed: uuid::Uuid::now_v7().to_string(),
            },
            workspace: Some(workspace),
            input,
        };
        // Whether the participants exist is told only to those who may create here.
        self.app
            .authorize_command::<Computation, _>(caller, &checked)
            .await?;
        if standing == WorkspaceStanding::Active {
            self.check_participants(&workspace_state, input.participants())
                .await?;
            self.check_backends(workspace, backends).await?;
        }
        let executed = self
            .app
            .execute_authorized(caller, options, checked, |id| {
                command(
                    ComputationId(id.parse().expect("the service proposes UUIDs")),
                    standing,
                )
            })
            .await?;
        self.invite(&executed, &[]);
        Ok(executed)
    }

    /// The records of the assets of `workspace` that `definition`'s entries name as linked (which
    /// the computation then checks the entries against); one the workspace does not hold is refused.
    async fn linked_assets(
        &self,
        workspace: WorkspaceId,
        definition: &Definition,
    ) -> Result<Vec<LinkedAsset>, AppError> {
        let mut linked = Vec::new();
        let entries = definition.algorithm.iter().chain(&definition.datasets);
        for asset in entries.filter_map(|entry| entry.asset) {
            match self.app.assets().linkable(workspace, asset).await {
                Ok(record) => linked.push(record),
                Err(e) if e.kind == ErrorKind::NotFound => {
                    return Err(AppError::new(
                        ErrorKind::Invalid,
                        format!(
                            "asset {asset}, linked in the document, is no asset of this workspace: drop its \
                             `asset_id` to declare the entry without the link"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(linked)
    }

    /// Every backend named must exist and serve this workspace (its own, or the platform's).
    async fn check_backends(&self, workspace: WorkspaceId, backends: &[BackendId]) -> Result<(), AppError> {
        for &backend in backends {
            let state = match self.app.backends().load(backend).await {
                Ok(state) => Some(state),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            let usable = state.is_some_and(|b| {
                b.status == BackendStatus::Active && b.workspace.is_none_or(|w| w == workspace)
            });
            if !usable {
                return Err(AppError::new(
                    ErrorKind::Invalid,
                    format!(
                        "an attestation policy overrides the computation's for backend {backend}, which this \
                         workspace has no use of (unknown, removed, or another workspace's)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The computation as a document another workspace imports ([`Computations::import`]): its
    /// definition, attestation policies and change threshold, and where it comes from.
    pub async fn export(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<ExportedComputation, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRead, workspace, id),
            )
            .await?;
        let loaded = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().load(&id).await?) })
            .await?;
        let state = loaded.state;
        if state.workspace_id != Some(workspace) || state.id.is_none() {
            return Err(not_found(id));
        }
        let manifest_id = state.manifest().map(|manifest| manifest.id());
        Ok(ExportedComputation {
            import: ComputationImport {
                definition: state.definition.clone(),
                attestation_policy: state.attestation_policy.clone().map(|v| v.policy),
                backend_policies: state
                    .backend_policies
                    .iter()
                    .map(|(backend, versioned)| (*backend, versioned.policy.clone()))
                    .collect(),
                change_threshold: state.change_threshold,
                linked: Vec::new(),
            },
            origin: ExportOrigin {
                workspace,
                computation: id,
                version: loaded.version,
                manifest_id,
                exported_at: chrono::Utc::now(),
            },
        })
    }

    /// Changes a computation's definition; absent fields keep their value. Once the computation is
    /// approved, a change of its manifest becomes a proposal (see [`crate::Governance`]).
    pub async fn update(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        changes: ComputationChanges,
    ) -> Result<Executed<Computation>, AppError> {
        self.ensure_in_workspace(workspace, id).await?;
        let mut named_before = Vec::new();
        if let Some(participants) = &changes.participants {
            // Changing who takes part is more than editing the definition.
            self.app
                .authorize(
                    caller,
                    Action::on_computation(Permission::ComputationParticipantsManage, workspace, id),
                )
                .await?;
            let (workspace_state, before) = self
                .app
                .bounded(async {
                    let workspace = self.app.repository::<Workspace>().view(&workspace).await?;
                    let before = self.app.repository::<Computation>().view(&id).await?;
                    Ok((workspace, before))
                })
                .await?;
            self.check_participants(&workspace_state, participants).await?;
            named_before = before.definition.participants.into_iter().map(|p| p.id).collect();
        }
        let command = Command {
            what: WHAT,
            operation: "update",
            permission: Permission::ComputationUpdate,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &changes,
        };
        // Once the computation is approved, a change of its manifest is proposed rather than made;
        // the caller's proposal is its approval when it is a participant with a say.
        let by = caller.user().map(|user| ParticipantId::User(user.id));
        let executed = self
            .app
            .execute(caller, options, command, |_| ComputationCommand::Change {
                change: Change::Update(changes.clone()),
                by: by.clone(),
            })
            .await?;
        self.invite(&executed, &named_before);
        Ok(executed)
    }

    /// What a definition's participants refer to, which the computation itself cannot check: a user id
    /// names a registered user, a custom role is defined in the workspace.
    async fn check_participants(
        &self,
        workspace: &Workspace,
        participants: &[Participant],
    ) -> Result<(), AppError> {
        for p in participants {
            if let ParticipantId::User(user) = p.id {
                let state = self
                    .app
                    .bounded(async { Ok(self.app.repository::<User>().view(&user).await?) })
                    .await?;
                if state.status == UserStatus::New {
                    return Err(AppError::new(
                        ErrorKind::Invalid,
                        format!(
                            "participant {user} is not a registered user: name someone without an account by their e-mail address"
                        ),
                    ));
                }
            }
            if let Some(role) = p.custom_roles.iter().find(|r| !workspace.roles.contains_key(*r)) {
                return Err(AppError::new(
                    ErrorKind::Invalid,
                    format!(
                        "participant {}: custom role `{role}` is not defined in the workspace",
                        p.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Tells each address this command newly named (not in `named_before`) that it is invited. The
    /// invitation itself is the participant entry, in the log; the mail is a notice, sent off the
    /// request's path. Linking happens when the address is verified (`prism-workers`' linkers).
    pub(crate) fn invite(&self, executed: &Executed<Computation>, named_before: &[ParticipantId]) {
        let named = executed.outcome.events.iter().find_map(|event| match event {
            ComputationEvent::Created(e) => Some(&e.definition.participants),
            ComputationEvent::Updated(e) => e.changes.participants.as_ref(),
            _ => None,
        });
        let invited: Vec<(Email, Vec<String>)> = named
            .into_iter()
            .flatten()
            .filter(|p| !named_before.contains(&p.id))
            .filter_map(|p| match &p.id {
                ParticipantId::Invited(email) => {
                    let roles = p.roles.iter().map(|r| r.to_string());
                    let custom = p.custom_roles.iter().map(|r| r.as_str().to_owned());
                    Some((email.clone(), roles.chain(custom).collect()))
                }
                ParticipantId::User(_) => None,
            })
            .collect();
        if invited.is_empty() {
            return;
        }
        let name = executed.outcome.state.definition.name.clone();
        let id = executed.id.clone();
        let mailer = self.app.inner.mailer.clone();
        tokio::spawn(async move {
            for (email, roles) in invited {
                let body = format!(
                    "You are invited to take part in the confidential computation \"{name}\" ({id}) as {}. \
                     Sign in or register with this address and verify it to join.",
                    roles.join(", ")
                );
                if let Err(e) = mailer.send(&email, "Invitation to a computation", &body).await {
                    tracing::warn!(error = %e, "could not mail a computation invitation");
                }
            }
        });
    }

    /// Takes up the pending invitation of `email` in a computation: its participant entry names the user
    /// who verified that address from now on. Nothing changes when no participant is named by it. Only
    /// the platform calls this (the linkers in `prism-workers`), once the address is verified.
    pub async fn link_participant(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        email: Email,
    ) -> Result<Executed<Computation>, AppError> {
        self.ensure_in_workspace(workspace, id).await?;
        let command = Command {
            what: WHAT,
            operation: "link_participant",
            permission: Permission::ComputationParticipantsManage,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &email,
        };
        self.app
            .execute(caller, options, command, |_| {
                ComputationCommand::LinkParticipant { email: email.clone() }
            })
            .await
    }

    /// Archives a computation (it is kept, read-only, for the audit trail).
    pub async fn archive(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        reason: Option<String>,
    ) -> Result<Executed<Computation>, AppError> {
        self.ensure_in_workspace(workspace, id).await?;
        let command = Command {
            what: WHAT,
            operation: "archive",
            permission: Permission::ComputationArchive,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &ArchiveInput { reason: &reason },
        };
        self.app
            .execute(caller, options, command, |_| ComputationCommand::Archive {
                reason: reason.clone(),
            })
            .await
    }

    pub async fn get(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
        read: ReadOptions,
    ) -> Result<ComputationView, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRead, workspace, id),
            )
            .await?;
        self.app.wait_read(&[COMPUTATIONS], read).await?;
        self.app
            .read_models()?
            .computation(workspace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A workspace's computations, oldest first. An unknown workspace is "not found", not an empty
    /// list, so a typo is not mistaken for "no computations yet".
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        page: PageRequest,
        read: ReadOptions,
    ) -> Result<Page<ComputationView>, AppError> {
        self.app
            .authorize(
                caller,
                Action::in_workspace(Permission::ComputationRead, workspace),
            )
            .await?;
        self.app.wait_read(&[WORKSPACES, COMPUTATIONS], read).await?;
        let models = self.app.read_models()?;
        if models.workspace(workspace).await?.is_none() {
            return Err(workspaces::not_found(workspace));
        }
        Ok(models.computations(workspace, page).await?)
    }

    /// Sets the attestation policy the computation's runs are appraised against: its own, or with
    /// `backend` the one that replaces it for runs placed on that backend. A new version each time it
    /// changes; the same policy again records nothing. Once the computation is approved, a new policy
    /// (which changes the manifest) becomes a proposal.
    pub async fn set_attestation_policy(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        id: ComputationId,
        policy: Policy,
        backend: Option<BackendId>,
    ) -> Result<Executed<Computation>, AppError> {
        self.ensure_in_workspace(workspace, id).await?;
        #[derive(Serialize)]
        struct Input<'a> {
            policy: &'a Policy,
            backend: Option<BackendId>,
        }
        let input = Input {
            policy: &policy,
            backend,
        };
        let command = Command {
            what: WHAT,
            operation: "set_attestation_policy",
            permission: Permission::ComputationUpdate,
            target: Target::Existing(id.to_string()),
            workspace: Some(workspace),
            input: &input,
        };
        let by = caller.user().map(|user| ParticipantId::User(user.id));
        self.app
            .execute(caller, options, command, |_| ComputationCommand::Change {
                change: Change::AttestationPolicy {
                    policy: Box::new(policy.clone()),
                    backend,
                },
                by: by.clone(),
            })
            .await
    }

    /// The computation's attestation policies as the log has them now: its own and the per-backend
    /// overrides, each with its version.
    pub async fn attestation_policies(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<AttestationPolicies, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRead, workspace, id),
            )
            .await?;
        let state = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().existing_state(&id).await?) })
            .await?;
        if state.workspace_id != Some(workspace) {
            return Err(not_found(id));
        }
        Ok(AttestationPolicies {
            version: state.policy_version,
            policy: state.attestation_policy,
            backends: state.backend_policies,
        })
    }

    /// A computation is addressed through its workspace; one in another workspace is "not found" here,
    /// or a request could change a computation of a workspace it does not name. Checked on the aggregate
    /// (the read model may lag). A computation never moves between workspaces, so the repository's
    /// cached state answers when present.
    async fn ensure_in_workspace(&self, workspace: WorkspaceId, id: ComputationId) -> Result<(), AppError> {
        let existing = self
            .app
            .bounded(async { Ok(self.app.repository::<Computation>().existing_state(&id).await?) })
            .await?;
        match existing.workspace_id {
            Some(w) if w == workspace => Ok(()),
            _ => Err(not_found(id)),
        }
    }
}

/// A computation's attestation policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationPolicies {
    /// The latest version set (0: none; the platform's default applies).
    pub version: u32,
    /// The computation's own policy.
    pub policy: Option<VersionedPolicy>,
    /// Policies replacing it for runs placed on a backend.
    pub backends: std::collections::BTreeMap<BackendId, VersionedPolicy>,
}

fn not_found(id: ComputationId) -> AppError {
    AppError::not_found(format!("computation {id} not found"))
}
