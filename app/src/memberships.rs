//! Memberships: invitations, members' roles, leaving, and a workspace's custom roles.
//!
//! **The invitation token names its workspace.** An invitation lives inside its workspace aggregate,
//! so the token is `inv_<workspace id>_<secret>`: the id part is the aggregate that keeps the secret's
//! hash, as for every opaque token. Accepting loads that workspace from the log, finds the invitation
//! whose hash the secret matches (compared in constant time), and hands the domain the invitation id
//! with the presented hash, which checks the token again along with the invitee and the expiry. Going
//! to the log rather than a read model (an `invitation(id)` query) means an invitation can be accepted
//! the moment it is sent, without a database, and never on the word of a lagging projection. The
//! invitation's own id is answered separately ([`IssuedInvitation::invitation`]).
//!
//! Answering an invitation asks no permission: being its invitee, signed in with a session, holding
//! its token, is the whole check, and the domain makes it. A token that does not hold (malformed,
//! unknown, for someone else, expired) is recorded as a denial and answered with the domain's
//! rejection.
//!
//! An invitation to an address is kept as an address, even when an account has it: turning it into
//! the account's id would tell the inviter which addresses are registered. The account with that
//! address accepts it all the same ([`prism_domain::workspace::Invitee::is`]); inviting an address
//! whose account is a member already is refused up front.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use prism_auth::{OpaqueToken, TokenKind};
use prism_domain::access::{Permission, RoleName, WorkspaceRole};
use prism_domain::denial::DenialReason;
use prism_domain::values::Email;
use prism_domain::workspace::{Invitee, MembershipCommand, Workspace, WorkspaceCommand, WorkspaceError};
use prism_domain::{Actor, InvitationId, UserId, WorkspaceId};
use prism_projections::{CustomRoleView, InvitationView, MemberView, USERS, WORKSPACES};
use serde::Serialize;

use crate::accounts::{commit, in_session, rejection};
use crate::workspaces::not_found;
use crate::{
    Action, App, AppError, Caller, Command, CommandOptions, Denial, ErrorKind, Executed, ReadOptions, Target,
};

const WHAT: &str = "workspace";

/// How long an invitation works unless the inviter says otherwise.
pub const INVITATION_LIFETIME: Duration = Duration::hours(168);
/// The longest an invitation may work.
pub const INVITATION_LIFETIME_MAX: Duration = Duration::days(30);

/// Namespace of invitation ids derived from an idempotency key, so a retry names the same invitation.
const INVITATION_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x2f6b_8c1d_4e7a_4b3c_9d05_61e8_a7f2_c0b4);

/// Who is invited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteeInput {
    /// A registered user.
    User(UserId),
    /// An e-mail address, registered or not.
    Email(String),
}

/// An invitation to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    pub invitee: InviteeInput,
    pub role: WorkspaceRole,
    /// Names of custom roles of the workspace.
    pub custom_roles: Vec<String>,
    /// When the invitation stops working; `None`: [`INVITATION_LIFETIME`] from now. At most
    /// [`INVITATION_LIFETIME_MAX`] ahead.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An invitation as sent (or resent): `token` goes to the invitee, is shown this once and is kept
/// nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedInvitation {
    pub invitation: InvitationId,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub sequence: u64,
}

impl IssuedInvitation {
    /// The invitation a command just issued a token for. A replay under the same idempotency key
    /// cannot show the token again (only its hash was kept): it is refused, saying what to do instead.
    fn of(
        executed: Executed<Workspace>,
        invitation: InvitationId,
        token: String,
        expires_at: DateTime<Utc>,
        done: &str,
        instead: &str,
    ) -> Result<Self, AppError> {
        if executed.outcome.replayed {
            return Err(AppError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "invitation {invitation} was {done} under this idempotency key already; its token is \
                     shown only once: {instead} for a new one"
                ),
            ));
        }
        Ok(Self {
            invitation,
            token,
            expires_at,
            sequence: executed.outcome.sequence,
        })
    }
}

/// An invitation accepted or declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvitationAnswer {
    pub workspace: WorkspaceId,
    pub invitation: InvitationId,
    pub sequence: u64,
}

/// What an idempotency key of an invitation is bound to: the request and who sent it.
#[derive(Serialize)]
struct InviteInput<'a> {
    by: &'a Actor,
    invite: &'a Invite,
}

#[derive(Serialize)]
struct InvitationInput<'a> {
    by: &'a Actor,
    invitation: InvitationId,
}

#[derive(Serialize)]
struct RoleChange<'a> {
    user: UserId,
    role: WorkspaceRole,
    custom_roles: &'a [String],
}

#[derive(Serialize)]
struct RoleDefinition<'a> {
    name: &'a str,
    permissions: &'a [String],
}

#[derive(Debug, Clone, Copy)]
pub struct Memberships<'a> {
    app: &'a App,
}

impl<'a> Memberships<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Invites a user or an address (`members.invite`). A retry under the same idempotency key cannot
    /// show the token again: it is answered `AlreadyExists`, naming the invitation (resend it).
    pub async fn invite(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        invite: Invite,
    ) -> Result<IssuedInvitation, AppError> {
        let custom_roles = role_names(&invite.custom_roles)?;
        let now = Utc::now();
        let expires_at = invite.expires_at.unwrap_or(now + INVITATION_LIFETIME);
        if expires_at > now + INVITATION_LIFETIME_MAX {
            return Err(AppError::new(
                ErrorKind::Invalid,
                format!(
                    "an invitation may work at most {} days",
                    INVITATION_LIFETIME_MAX.num_days()
                ),
            ));
        }
        let invitee = match &invite.invitee {
            InviteeInput::User(user) => Invitee::User(*user),
            InviteeInput::Email(address) => {
                let email =
                    Email::parse(address).map_err(|e| AppError::new(ErrorKind::Invalid, e.to_string()))?;
                // Only who may invite learns whether the address's account is a member.
                self.app
                    .authorize(caller, Action::in_workspace(Permission::MembersInvite, workspace))
                    .await?;
                let state = self.state(workspace).await?;
                if state.member(UserId::for_email(&email)).is_some() {
                    return Err(AppError::rejected(WorkspaceError::AlreadyMember));
                }
                Invitee::Email(email)
            }
        };
        let invitation = match &options.idempotency_key {
            Some(key) => InvitationId(uuid::Uuid::new_v5(
                &INVITATION_NAMESPACE,
                format!("{workspace}\n{key}").as_bytes(),
            )),
            None => InvitationId(uuid::Uuid::now_v7()),
        };
        let (token, hash) = OpaqueToken::generate(TokenKind::Invitation, workspace.0);
        let command = Command {
            what: WHAT,
            operation: "invite",
            permission: Permission::MembersInvite,
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &InviteInput {
                by: &caller.actor,
                invite: &invite,
            },
        };
        let executed: Executed<Workspace> = self
            .app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::Invite {
                    invitation,
                    invitee,
                    role: invite.role,
                    custom_roles,
                    token: hash,
                    expires_at,
                })
            })
            .await?;
        IssuedInvitation::of(
            executed,
            invitation,
            token,
            expires_at,
            "sent",
            "resend the invitation",
        )
    }

    /// A new token and [`INVITATION_LIFETIME`] for a pending (or expired) invitation
    /// (`members.invite`); the old token stops working.
    pub async fn resend(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        invitation: InvitationId,
    ) -> Result<IssuedInvitation, AppError> {
        let (token, hash) = OpaqueToken::generate(TokenKind::Invitation, workspace.0);
        let expires_at = Utc::now() + INVITATION_LIFETIME;
        let command = Command {
            what: WHAT,
            operation: "resend",
            permission: Permission::MembersInvite,
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &InvitationInput {
                by: &caller.actor,
                invitation,
            },
        };
        let executed: Executed<Workspace> = self
            .app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::Resend {
                    invitation,
                    token: hash,
                    expires_at,
                })
            })
            .await?;
        IssuedInvitation::of(
            executed,
            invitation,
            token,
            expires_at,
            "resent",
            "resend it again",
        )
    }

    /// Withdraws a pending invitation (`members.invite`).
    pub async fn revoke(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        invitation: InvitationId,
    ) -> Result<Executed<Workspace>, AppError> {
        let command = Command {
            what: WHAT,
            operation: "revoke_invitation",
            permission: Permission::MembersInvite,
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &invitation,
        };
        self.app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::Revoke { invitation })
            })
            .await
    }

    /// The signed-in invitee (session) takes the invitation of `token` and becomes a member.
    pub async fn accept(&self, caller: &Caller, token: &str) -> Result<InvitationAnswer, AppError> {
        self.answer(caller, token, true).await
    }

    /// The signed-in invitee (session) declines the invitation of `token`.
    pub async fn reject(&self, caller: &Caller, token: &str) -> Result<InvitationAnswer, AppError> {
        self.answer(caller, token, false).await
    }

    async fn answer(&self, caller: &Caller, token: &str, accept: bool) -> Result<InvitationAnswer, AppError> {
        const RESOURCE: &str = "invitations";
        let what = if accept {
            "accepting an invitation"
        } else {
            "declining an invitation"
        };
        let user = in_session(self.app, caller, RESOURCE, what).await?;
        let refused = |resource: String, detail: String| {
            Denial::new(DenialReason::InvalidCredentials, resource, detail)
        };
        let (workspace, presented) = match OpaqueToken::parse(TokenKind::Invitation, token) {
            Ok((id, presented)) => (WorkspaceId(id), presented),
            Err(e) => {
                self.app
                    .deny(caller, refused(RESOURCE.into(), e.to_string()))
                    .await;
                return Err(AppError::new(
                    ErrorKind::Invalid,
                    format!("the invitation token is malformed: {e}"),
                ));
            }
        };
        let state = self.state(workspace).await?;
        let found = state
            .invitations
            .iter()
            .find(|(_, invitation)| invitation.token.matches(&presented))
            .map(|(id, _)| *id);
        let Some(invitation) = found else {
            let denial = refused(
                format!("workspaces/{workspace}/invitations"),
                "no invitation has this token".into(),
            );
            self.app.deny(caller, denial).await;
            return Err(AppError::rejected(WorkspaceError::InvitationTokenInvalid));
        };
        let command = if accept {
            MembershipCommand::Accept {
                invitation,
                token: presented,
                user: user.id,
                email: user.email.clone(),
            }
        } else {
            MembershipCommand::Reject {
                invitation,
                token: presented,
                user: user.id,
                email: user.email.clone(),
            }
        };
        let committed = commit::<Workspace, _>(
            self.app,
            caller,
            &CommandOptions::default(),
            if accept { "accept" } else { "reject" },
            &workspace.to_string(),
            Some(workspace.to_string()),
            &(),
            membership(command),
        )
        .await;
        match committed {
            Ok(outcome) => Ok(InvitationAnswer {
                workspace,
                invitation,
                sequence: outcome.sequence,
            }),
            Err(e) => {
                if let Some(
                    refusal @ (WorkspaceError::InvitationTokenInvalid | WorkspaceError::NotTheInvitee),
                ) = rejection::<WorkspaceError>(&e)
                {
                    let denial = refused(
                        format!("workspaces/{workspace}/invitations/{invitation}"),
                        refusal.to_string(),
                    );
                    self.app.deny(caller, denial).await;
                }
                Err(e)
            }
        }
    }

    /// Changes a member's built-in role and custom roles (`members.manage`). The last admin stays
    /// admin.
    pub async fn change_role(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
        custom_roles: Vec<String>,
    ) -> Result<Executed<Workspace>, AppError> {
        let names = role_names(&custom_roles)?;
        let command = Command {
            what: WHAT,
            operation: "change_role",
            permission: Permission::MembersManage,
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &RoleChange {
                user,
                role,
                custom_roles: &custom_roles,
            },
        };
        self.app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::ChangeRole {
                    user,
                    role,
                    custom_roles: names,
                })
            })
            .await
    }

    /// Removes a member (`members.manage`), or the caller leaves (a signed-in member may always leave;
    /// through an API key only with `members.manage`). The last admin cannot leave.
    pub async fn remove(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Executed<Workspace>, AppError> {
        let leaving = caller.user().is_some_and(|u| u.id == user && u.api_key.is_none());
        let command = Command {
            what: WHAT,
            operation: "remove",
            // Every member may see the workspace; an outsider learns "not found".
            permission: if leaving {
                Permission::WorkspaceRead
            } else {
                Permission::MembersManage
            },
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &user,
        };
        self.app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::Remove { user })
            })
            .await
    }

    /// Creates or replaces a custom role (`roles.manage`).
    pub async fn define_role(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        name: &str,
        permissions: Vec<String>,
    ) -> Result<Executed<Workspace>, AppError> {
        let role = role_name(name)?;
        let granted = permissions
            .iter()
            .map(|p| {
                Permission::parse(p)
                    .ok_or_else(|| AppError::new(ErrorKind::Invalid, format!("`{p}` is not a permission")))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let command = Command {
            what: WHAT,
            operation: "define_role",
            permission: Permission::RolesManage,
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &RoleDefinition {
                name,
                permissions: &permissions,
            },
        };
        self.app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::DefineRole {
                    name: role,
                    permissions: granted,
                })
            })
            .await
    }

    /// Deletes a custom role no member holds (`roles.manage`).
    pub async fn delete_role(
        &self,
        caller: &Caller,
        options: &CommandOptions,
        workspace: WorkspaceId,
        name: &str,
    ) -> Result<Executed<Workspace>, AppError> {
        let role = role_name(name)?;
        let command = Command {
            what: WHAT,
            operation: "delete_role",
            permission: Permission::RolesManage,
            target: Target::Existing(workspace.to_string()),
            workspace: Some(workspace),
            input: &name,
        };
        self.app
            .execute(caller, options, command, |_| {
                membership(MembershipCommand::DeleteRole { name: role })
            })
            .await
    }

    /// The members of a workspace, longest-standing first (`members.read`).
    pub async fn members(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        read: ReadOptions,
    ) -> Result<Vec<MemberView>, AppError> {
        self.read(caller, workspace, read, &[WORKSPACES, USERS]).await?;
        Ok(self.app.read_models()?.members(workspace).await?)
    }

    /// The invitations of a workspace in the order they were sent (`members.read`): the pending ones
    /// (expired ones as `expired`), and with `include_closed` the answered and revoked ones too.
    pub async fn invitations(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        include_closed: bool,
        read: ReadOptions,
    ) -> Result<Vec<InvitationView>, AppError> {
        self.read(caller, workspace, read, &[WORKSPACES]).await?;
        Ok(self
            .app
            .read_models()?
            .invitations(workspace, include_closed)
            .await?)
    }

    /// A workspace's custom roles, by name (`members.read`).
    pub async fn roles(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        read: ReadOptions,
    ) -> Result<Vec<CustomRoleView>, AppError> {
        self.read(caller, workspace, read, &[WORKSPACES]).await?;
        Ok(self.app.read_models()?.custom_roles(workspace).await?)
    }

    /// The invitations the caller (signed-in session) can accept now, to their id or their address.
    pub async fn my_invitations(&self, caller: &Caller) -> Result<Vec<InvitationView>, AppError> {
        let user = in_session(self.app, caller, "invitations", "listing your invitations").await?;
        Ok(self
            .app
            .read_models()?
            .invitations_for(user.id, &user.email)
            .await?)
    }

    /// Authorises `members.read`, waits for `projections`, and checks that the read model has the
    /// workspace (an unknown one is "not found", not an empty list).
    async fn read(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        read: ReadOptions,
        projections: &[&str],
    ) -> Result<(), AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::MembersRead, workspace))
            .await?;
        self.app.wait_read(projections, read).await?;
        if self.app.read_models()?.workspace(workspace).await?.is_none() {
            return Err(not_found(workspace));
        }
        Ok(())
    }

    async fn state(&self, workspace: WorkspaceId) -> Result<Workspace, AppError> {
        self.app
            .bounded(async { Ok(self.app.repository::<Workspace>().load(&workspace).await?.state) })
            .await
    }
}

fn membership(command: MembershipCommand) -> WorkspaceCommand {
    WorkspaceCommand::Membership(command)
}

fn role_name(name: &str) -> Result<RoleName, AppError> {
    RoleName::parse(name).map_err(|e| AppError::new(ErrorKind::Invalid, e.to_string()))
}

fn role_names(names: &[String]) -> Result<BTreeSet<RoleName>, AppError> {
    names.iter().map(|n| role_name(n)).collect()
}
