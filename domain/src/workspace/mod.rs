//! The workspace aggregate: a tenant that owns computations, and its members with their roles.
//! Archiving a workspace is final; the computations in it are archived by a reaction, not here, because
//! they are separate aggregates.

mod command;
mod error;
mod event;
mod membership;
mod state;

pub use command::{MembershipCommand, WorkspaceCommand};
pub use error::WorkspaceError;
pub use event::*;
pub use state::{Invitation, InvitationStatus, Invitee, Member, Workspace, WorkspaceStatus};

use crate::aggregate::{Aggregate, CommandContext};
use crate::values::check_text;

pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 2048;

impl Aggregate for Workspace {
    const TYPE: &'static str = "workspace";
    type Command = WorkspaceCommand;
    type Event = WorkspaceEvent;
    type Error = WorkspaceError;

    fn decide(
        &self,
        command: WorkspaceCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        match (self.status, command) {
            (
                WorkspaceStatus::New,
                WorkspaceCommand::Create {
                    id,
                    name,
                    description,
                    admin,
                },
            ) => {
                check_text("name", &name, NAME_MAX, true)?;
                check_text("description", &description, DESCRIPTION_MAX, false)?;
                Ok(vec![WorkspaceEvent::Created(WorkspaceCreated {
                    id,
                    name: name.trim().to_owned(),
                    description,
                    created_by: ctx.actor.clone(),
                    created_at: ctx.now,
                    admin,
                })])
            }
            (WorkspaceStatus::New, _) => Err(WorkspaceError::NotFound),
            (_, WorkspaceCommand::Create { .. }) => Err(WorkspaceError::AlreadyExists),
            (WorkspaceStatus::Archived, WorkspaceCommand::Archive) => Err(WorkspaceError::AlreadyArchived),
            (
                WorkspaceStatus::Archived,
                WorkspaceCommand::Update { .. } | WorkspaceCommand::Membership(_),
            ) => Err(WorkspaceError::Archived),
            (WorkspaceStatus::Active, WorkspaceCommand::Membership(command)) => {
                self.decide_membership(command, ctx)
            }
            (WorkspaceStatus::Active, WorkspaceCommand::Update { name, description }) => {
                let name = name.map(|n| n.trim().to_owned()).filter(|n| *n != self.name);
                let description = description.filter(|d| *d != self.description);
                if let Some(name) = &name {
                    check_text("name", name, NAME_MAX, true)?;
                }
                if let Some(description) = &description {
                    check_text("description", description, DESCRIPTION_MAX, false)?;
                }
                if name.is_none() && description.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![WorkspaceEvent::Updated(WorkspaceUpdated {
                    name,
                    description,
                    updated_by: ctx.actor.clone(),
                    updated_at: ctx.now,
                })])
            }
            (WorkspaceStatus::Active, WorkspaceCommand::Archive) => {
                Ok(vec![WorkspaceEvent::Archived(WorkspaceArchived {
                    archived_by: ctx.actor.clone(),
                    archived_at: ctx.now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &WorkspaceEvent) {
        match event {
            WorkspaceEvent::Created(e) => {
                self.status = WorkspaceStatus::Active;
                self.id = Some(e.id);
                self.name = e.name.clone();
                self.description = e.description.clone();
                if let Some(admin) = e.admin {
                    self.members.insert(
                        admin,
                        Member {
                            role: crate::access::WorkspaceRole::Admin,
                            custom_roles: Default::default(),
                            since: e.created_at,
                        },
                    );
                }
            }
            WorkspaceEvent::Updated(e) => {
                if let Some(name) = &e.name {
                    self.name = name.clone();
                }
                if let Some(description) = &e.description {
                    self.description = description.clone();
                }
            }
            WorkspaceEvent::Archived(_) => self.status = WorkspaceStatus::Archived,
            membership => self.apply_membership(membership),
        }
    }
}

#[cfg(test)]
mod tests;
