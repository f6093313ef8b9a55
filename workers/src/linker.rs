//! A computation may name someone by e-mail address before they have a verified account there (a
//! pending invitation, which grants nothing). Once the address is verified, the participant entry is
//! linked to its user (`ParticipantLinked`). Two reactors together leave no verified address pending,
//! whichever comes first:
//! * [`InvitationLinker`]: an address verified → link it in every active computation the read model
//!   lists as naming it, as of that event;
//! * [`LateInvitationLinker`]: a computation created or its participants changed → link each named
//!   address that is verified by now (a naming that raced with the verification and so is missing from
//!   that list, or an address verified long before).

use prism_app::{App, CommandOptions, ErrorKind};
use prism_domain::computation::{Computation, ComputationEvent};
use prism_domain::user::{User, UserEvent, UserStatus};
use prism_domain::values::Email;
use prism_domain::{ComputationId, ParticipantId, UserId, WorkspaceId};
use prism_store::{EventMeta, Recorded};
use tracing::info;

use crate::runtime::{ReactionError, Reactor, aggregate_id, caused_by, read_as_of};

/// Links a newly verified address in the computations that named it.
#[derive(Debug, Clone)]
pub struct InvitationLinker {
    app: App,
}

impl InvitationLinker {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// Links the verified addresses a computation names when it is defined or its participants change.
#[derive(Debug, Clone)]
pub struct LateInvitationLinker {
    app: App,
}

impl LateInvitationLinker {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// Links `email` in one computation because of `cause`. The causing event's id and the address make
/// the idempotency key: a redelivered event replays, never links twice. A computation archived or gone
/// meanwhile has nothing to link.
async fn link(
    app: &App,
    worker: &str,
    workspace: WorkspaceId,
    computation: ComputationId,
    email: &Email,
    cause: &EventMeta,
) -> Result<(), ReactionError> {
    let result = app
        .computations()
        .link_participant(
            &caused_by(cause, worker),
            &CommandOptions::keyed(format!("{}:{email}", cause.id)),
            workspace,
            computation,
            email.clone(),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind, ErrorKind::StateConflict | ErrorKind::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Reactor for InvitationLinker {
    type Aggregate = User;
    const NAME: &'static str = "invitation-linker";

    async fn react<'a>(&'a self, recorded: &'a Recorded<UserEvent>) -> Result<(), ReactionError> {
        let email = match &recorded.event {
            UserEvent::Registered(e) if e.email_verified => e.email.clone(),
            UserEvent::EmailVerified(_) => {
                let user: UserId = aggregate_id(&recorded.meta)?;
                let state = self
                    .app
                    .repository::<User>()
                    .view(&user)
                    .await
                    .map_err(prism_app::AppError::from)?;
                let Some(email) = state.email else {
                    return Ok(());
                };
                email
            }
            _ => return Ok(()),
        };
        let meta = &recorded.meta;
        // The list must be read as of the verifying event.
        let read = self.app.read_models()?;
        let computations = read_as_of(meta, "computations", || {
            read.active_computations_naming_as_of(email.as_str(), meta.sequence)
        })
        .await?;
        if !computations.is_empty() {
            info!(
                count = computations.len(),
                "linking a verified address in the computations that named it"
            );
        }
        for (workspace, computation) in computations {
            link(&self.app, Self::NAME, workspace, computation, &email, meta).await?;
        }
        Ok(())
    }
}

impl Reactor for LateInvitationLinker {
    type Aggregate = Computation;
    const NAME: &'static str = "late-invitation-linker";

    async fn react<'a>(&'a self, recorded: &'a Recorded<ComputationEvent>) -> Result<(), ReactionError> {
        let named = match &recorded.event {
            ComputationEvent::Created(e) => &e.definition.participants,
            ComputationEvent::Updated(e) => match &e.changes.participants {
                Some(participants) => participants,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let invited = named.iter().filter_map(|p| match &p.id {
            ParticipantId::Invited(email) => Some(email),
            ParticipantId::User(_) => None,
        });
        let mut target = None;
        for email in invited {
            let user = self
                .app
                .repository::<User>()
                .view(&UserId::for_email(email))
                .await
                .map_err(prism_app::AppError::from)?;
            if user.status == UserStatus::New || !user.email_verified {
                continue;
            }
            let (workspace, computation) = match target {
                Some(found) => found,
                None => {
                    let id: ComputationId = aggregate_id(&recorded.meta)?;
                    let state = self
                        .app
                        .repository::<Computation>()
                        .existing_state(&id)
                        .await
                        .map_err(prism_app::AppError::from)?;
                    let Some(workspace) = state.workspace_id else {
                        return Ok(());
                    };
                    *target.insert((workspace, id))
                }
            };
            link(
                &self.app,
                Self::NAME,
                workspace,
                computation,
                email,
                &recorded.meta,
            )
            .await?;
        }
        Ok(())
    }
}
