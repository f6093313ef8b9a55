//! Queries over the identity read models: users and their linked identities, workspace membership
//! (members, invitations, custom roles) and API keys. They are answered by the database (one prepared
//! statement each, like those of [`crate::queries`]); none of these views is kept in memory.
//!
//! None of these views carries a credential: the read models hold no password, token or secret hash.

use chrono::{DateTime, Utc};
use prism_domain::values::Email;
use prism_domain::{ApiKeyId, ComputationId, InvitationId, UserId, WorkspaceId};
use serde::Serialize;
use tokio_postgres::Row;

use crate::queries::{paged, workspace_view};
use crate::{Page, PageRequest, ProjectionError, ReadModels, WorkspaceView};

/// A user account, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: UserId,
    /// Normalised (trimmed, lowercase).
    pub email: String,
    pub display_name: String,
    /// `active` or `disabled`.
    pub status: String,
    pub email_verified: bool,
    pub platform_admin: bool,
    /// False for a user who signs in only through OpenID Connect.
    pub has_password: bool,
    /// No sign-in is accepted before this; a past instant means the lockout is over.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A member of a workspace, with the name and address of their account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub user_id: UserId,
    /// Empty when the users read model has no row for the member (not projected yet, or never
    /// registered).
    pub email: String,
    /// Empty when the users read model has no row for the member.
    pub display_name: String,
    /// The built-in role: `admin` or `member`.
    pub role: String,
    pub custom_roles: Vec<String>,
    pub since: DateTime<Utc>,
}

/// An invitation to join a workspace, without its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationView {
    pub id: InvitationId,
    pub workspace_id: WorkspaceId,
    /// The registered user invited, or `None` when an address is.
    pub invitee_user: Option<UserId>,
    /// The address invited, or `None` when a registered user is.
    pub invitee_email: Option<String>,
    pub role: String,
    pub custom_roles: Vec<String>,
    /// `pending`, `expired` (pending, but at or past `expires_at`), `accepted`, `rejected` or `revoked`.
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub invited_by: String,
    pub invited_at: DateTime<Utc>,
}

/// A workspace's custom role: a named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomRoleView {
    pub name: String,
    pub permissions: Vec<String>,
}

/// A personal API key, without the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyView {
    pub id: ApiKeyId,
    pub owner: UserId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub permissions: Vec<String>,
    /// `active` or `revoked` (an active key no longer authenticates from `expires_at` on).
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl ReadModels {
    pub async fn user(&self, id: UserId) -> Result<Option<UserView>, ProjectionError> {
        self.user_where(USER_BY_ID, &[&id.as_uuid()]).await
    }

    /// The user registered with `email` (addresses are normalised, so this is case-insensitive).
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserView>, ProjectionError> {
        self.user_where(USER_BY_EMAIL, &[&email.as_str()]).await
    }

    /// The user who signs in with the OpenID Connect identity `subject` at `issuer`.
    pub async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserView>, ProjectionError> {
        self.user_where(USER_BY_IDENTITY, &[&issuer, &subject]).await
    }

    /// Every user, in id order (user ids derive from e-mail addresses, so this is not creation order,
    /// but it is stable: a page never repeats or skips a user that existed throughout).
    pub async fn users(&self, page: PageRequest) -> Result<Page<UserView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        let rows = match page.after {
            None => {
                let statement = client.prepare_cached(USERS_FIRST).await?;
                client.query(&statement, &[&limit]).await?
            }
            Some(after) => {
                let statement = client.prepare_cached(USERS_AFTER).await?;
                client.query(&statement, &[&after, &limit]).await?
            }
        };
        Ok(paged(rows.iter().map(user_view).collect(), page.limit, |u| {
            u.id.as_uuid()
        }))
    }

    /// Whether any account exists (the first one to register sets the platform up).
    pub async fn platform_has_users(&self) -> Result<bool, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(PLATFORM_HAS_USERS).await?;
        Ok(client.query_one(&statement, &[]).await?.get(0))
    }

    /// The members of a workspace, longest-standing first.
    pub async fn members(&self, workspace: WorkspaceId) -> Result<Vec<MemberView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(MEMBERS).await?;
        let rows = client.query(&statement, &[&workspace.as_uuid()]).await?;
        Ok(rows
            .iter()
            .map(|r| MemberView {
                user_id: UserId(r.get(0)),
                email: r.get(1),
                display_name: r.get(2),
                role: r.get(3),
                custom_roles: r.get(4),
                since: r.get(5),
            })
            .collect())
    }

    /// The invitations of a workspace in the order they were sent: the pending ones (expired ones
    /// included, as `expired`: they can still be resent or revoked), and with `include_closed` also the
    /// accepted, rejected and revoked ones.
    pub async fn invitations(
        &self,
        workspace: WorkspaceId,
        include_closed: bool,
    ) -> Result<Vec<InvitationView>, ProjectionError> {
        let client = self.pool().get().await?;
        let sql = if include_closed {
            INVITATIONS_ALL
        } else {
            INVITATIONS_PENDING
        };
        let statement = client.prepare_cached(sql).await?;
        let rows = client
            .query(&statement, &[&Utc::now(), &workspace.as_uuid()])
            .await?;
        Ok(rows.iter().map(invitation_view).collect())
    }

    /// The invitations `user` (whose address is `email`) can accept now: pending, not expired, to an
    /// active workspace, and addressed to the user's id or address; in the order they were sent.
    pub async fn invitations_for(
        &self,
        user: UserId,
        email: &Email,
    ) -> Result<Vec<InvitationView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(INVITATIONS_FOR).await?;
        let rows = client
            .query(&statement, &[&Utc::now(), &user.as_uuid(), &email.as_str()])
            .await?;
        Ok(rows.iter().map(invitation_view).collect())
    }

    /// A workspace's custom roles, by name.
    pub async fn custom_roles(&self, workspace: WorkspaceId) -> Result<Vec<CustomRoleView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(CUSTOM_ROLES).await?;
        let rows = client.query(&statement, &[&workspace.as_uuid()]).await?;
        Ok(rows
            .iter()
            .map(|r| CustomRoleView {
                name: r.get(0),
                permissions: r.get(1),
            })
            .collect())
    }

    /// The workspaces `user` is a member of (archived ones included), paged like
    /// [`ReadModels::workspaces`].
    pub async fn workspaces_of(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<WorkspaceView>, ProjectionError> {
        let limit = i64::from(page.limit) + 1;
        let client = self.pool().get().await?;
        let rows = match page.after {
            None => {
                let statement = client.prepare_cached(WORKSPACES_OF_FIRST).await?;
                client.query(&statement, &[&user.as_uuid(), &limit]).await?
            }
            Some(after) => {
                let statement = client.prepare_cached(WORKSPACES_OF_AFTER).await?;
                client
                    .query(&statement, &[&user.as_uuid(), &after, &limit])
                    .await?
            }
        };
        Ok(paged(
            rows.iter().map(workspace_view).collect(),
            page.limit,
            |w| w.id.as_uuid(),
        ))
    }

    /// The active workspaces whose only admin is `user` (disabling or removing them would leave the
    /// workspace without one), in id order.
    pub async fn sole_admin_of(&self, user: UserId) -> Result<Vec<WorkspaceId>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(SOLE_ADMIN_OF).await?;
        let rows = client.query(&statement, &[&user.as_uuid()]).await?;
        Ok(rows.iter().map(|r| WorkspaceId(r.get(0))).collect())
    }

    /// The active platform administrators.
    pub async fn active_platform_admins(&self) -> Result<Vec<UserId>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client
            .prepare_cached("SELECT id FROM users WHERE platform_admin AND status = 'active' ORDER BY id")
            .await?;
        let rows = client.query(&statement, &[]).await?;
        Ok(rows.iter().map(|r| UserId(r.get(0))).collect())
    }

    /// Active computations of which the user — named as a participant by its id or its e-mail address
    /// — is the only participant with the `owner` role, with their names.
    pub async fn sole_owner_of_computations(
        &self,
        user: UserId,
        email: &Email,
    ) -> Result<Vec<(ComputationId, String)>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(SOLE_OWNER_OF_COMPUTATIONS).await?;
        let names = [user.to_string(), email.as_str().to_owned()];
        let rows = client.query(&statement, &[&&names[..]]).await?;
        Ok(rows.iter().map(|r| (ComputationId(r.get(0)), r.get(1))).collect())
    }

    /// The API keys `owner` owns (revoked and expired ones included), oldest first.
    pub async fn api_keys_of(&self, owner: UserId) -> Result<Vec<ApiKeyView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(API_KEYS_OF).await?;
        let rows = client.query(&statement, &[&owner.as_uuid()]).await?;
        Ok(rows.iter().map(api_key_view).collect())
    }

    pub async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(API_KEY_BY_ID).await?;
        let row = client.query_opt(&statement, &[&id.as_uuid()]).await?;
        Ok(row.as_ref().map(api_key_view))
    }

    async fn user_where(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<UserView>, ProjectionError> {
        let client = self.pool().get().await?;
        let statement = client.prepare_cached(sql).await?;
        let row = client.query_opt(&statement, params).await?;
        Ok(row.as_ref().map(user_view))
    }
}

macro_rules! user_select {
    ($rest:literal) => {
        concat!(
            "SELECT u.id, u.email, u.display_name, u.status, u.email_verified, u.platform_admin, ",
            "u.has_password, u.locked_until, u.last_sign_in_at, u.version, u.created_at, u.updated_at ",
            "FROM users u ",
            $rest
        )
    };
}

const USER_BY_ID: &str = user_select!("WHERE u.id = $1");
const USER_BY_EMAIL: &str = user_select!("WHERE u.email = $1");
const USER_BY_IDENTITY: &str =
    user_select!("JOIN user_identities i ON i.user_id = u.id WHERE i.issuer = $1 AND i.subject = $2");
// Two statements rather than `($1 IS NULL OR id > $1)`, as for workspaces: one generic plan each.
const USERS_FIRST: &str = user_select!("ORDER BY u.id LIMIT $1");
const USERS_AFTER: &str = user_select!("WHERE u.id > $1 ORDER BY u.id LIMIT $2");
const PLATFORM_HAS_USERS: &str = "SELECT EXISTS (SELECT 1 FROM users)";

/// A member whose user row is missing still appears, with an empty address and name.
const MEMBERS: &str = "SELECT m.user_id, COALESCE(u.email, ''), COALESCE(u.display_name, ''), m.role, \
     m.custom_roles, m.since \
     FROM workspace_members m LEFT JOIN users u ON u.id = m.user_id \
     WHERE m.workspace_id = $1 ORDER BY m.since, m.user_id";

/// Parameter `$1` is the time now: a pending invitation at or past its expiry shows as `expired` (the
/// domain accepts an invitation strictly before `expires_at`).
macro_rules! invitation_select {
    ($rest:literal) => {
        concat!(
            "SELECT i.id, i.workspace_id, i.invitee_user, i.invitee_email, i.role, i.custom_roles, ",
            "CASE WHEN i.status = 'pending' AND i.expires_at <= $1 THEN 'expired' ELSE i.status END, ",
            "i.expires_at, i.invited_by, i.invited_at FROM workspace_invitations i ",
            $rest
        )
    };
}

const INVITATIONS_ALL: &str = invitation_select!("WHERE i.workspace_id = $2 ORDER BY i.invited_at, i.id");
const INVITATIONS_PENDING: &str =
    invitation_select!("WHERE i.workspace_id = $2 AND i.status = 'pending' ORDER BY i.invited_at, i.id");
const INVITATIONS_FOR: &str = invitation_select!(
    "WHERE i.status = 'pending' AND i.expires_at > $1 AND (i.invitee_user = $2 OR i.invitee_email = $3) \
     AND EXISTS (SELECT 1 FROM workspaces w WHERE w.id = i.workspace_id AND w.status = 'active') \
     ORDER BY i.invited_at, i.id"
);

const CUSTOM_ROLES: &str =
    "SELECT name, permissions FROM workspace_roles WHERE workspace_id = $1 ORDER BY name";

macro_rules! workspaces_of_select {
    ($rest:literal) => {
        concat!(
            "SELECT w.id, w.name, w.description, w.status, w.version, w.created_by, w.created_at, ",
            "w.updated_at FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id ",
            $rest
        )
    };
}

// Ordered by the membership's workspace id, so the scan of `workspace_members_by_user` starts at the
// cursor.
const WORKSPACES_OF_FIRST: &str =
    workspaces_of_select!("WHERE m.user_id = $1 ORDER BY m.workspace_id LIMIT $2");
const WORKSPACES_OF_AFTER: &str =
    workspaces_of_select!("WHERE m.user_id = $1 AND m.workspace_id > $2 ORDER BY m.workspace_id LIMIT $3");

const SOLE_ADMIN_OF: &str = "SELECT m.workspace_id FROM workspace_members m \
     JOIN workspaces w ON w.id = m.workspace_id \
     WHERE m.user_id = $1 AND m.role = 'admin' AND w.status = 'active' \
     AND NOT EXISTS (SELECT 1 FROM workspace_members o \
                     WHERE o.workspace_id = m.workspace_id AND o.role = 'admin' AND o.user_id <> m.user_id) \
     ORDER BY m.workspace_id";

// Participant ids are compared case-insensitively for addresses, as the application layer does.
const SOLE_OWNER_OF_COMPUTATIONS: &str = "SELECT c.id, c.name FROM participants p \
     JOIN computations c ON c.id = p.computation_id \
     WHERE lower(p.participant_id) = ANY($1) AND 'owner' = ANY(p.roles) AND c.status = 'active' \
     AND NOT EXISTS (SELECT 1 FROM participants o \
                     WHERE o.computation_id = p.computation_id AND 'owner' = ANY(o.roles) \
                       AND NOT (lower(o.participant_id) = ANY($1))) \
     ORDER BY c.id";

macro_rules! api_key_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner, workspace_id, name, permissions, status, expires_at, created_at, revoked_at, ",
            "version FROM api_keys ",
            $rest
        )
    };
}

const API_KEY_BY_ID: &str = api_key_select!("WHERE id = $1");
const API_KEYS_OF: &str = api_key_select!("WHERE owner = $1 ORDER BY created_at, id");

fn user_view(row: &Row) -> UserView {
    UserView {
        id: UserId(row.get(0)),
        email: row.get(1),
        display_name: row.get(2),
        status: row.get(3),
        email_verified: row.get(4),
        platform_admin: row.get(5),
        has_password: row.get(6),
        locked_until: row.get(7),
        last_sign_in_at: row.get(8),
        version: row.get::<_, i64>(9) as u64,
        created_at: row.get(10),
        updated_at: row.get(11),
    }
}

fn invitation_view(row: &Row) -> InvitationView {
    InvitationView {
        id: InvitationId(row.get(0)),
        workspace_id: WorkspaceId(row.get(1)),
        invitee_user: row.get::<_, Option<uuid::Uuid>>(2).map(UserId),
        invitee_email: row.get(3),
        role: row.get(4),
        custom_roles: row.get(5),
        status: row.get(6),
        expires_at: row.get(7),
        invited_by: row.get(8),
        invited_at: row.get(9),
    }
}

fn api_key_view(row: &Row) -> ApiKeyView {
    ApiKeyView {
        id: ApiKeyId(row.get(0)),
        owner: UserId(row.get(1)),
        workspace_id: WorkspaceId(row.get(2)),
        name: row.get(3),
        permissions: row.get(4),
        status: row.get(5),
        expires_at: row.get(6),
        created_at: row.get(7),
        revoked_at: row.get(8),
        version: row.get::<_, i64>(9) as u64,
    }
}
