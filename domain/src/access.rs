//! Who may do what: the permission matrix, written once, as data.
//!
//! A permission names one action on one kind of resource. Roles are sets of permissions: the built-in
//! workspace roles (`admin`, `member`), the computation roles of [`computation::Role`], and custom roles
//! a workspace defines (named sets of permissions). The application layer asks [`Grants::allows`] before
//! every command and query, whatever the transport; `docs/permissions.md` is rendered from
//! [`markdown_table`] and checked by a test, so the documentation cannot drift from what is enforced.
//!
//! Rules the data below encodes:
//! * A platform administrator holds every permission, in every workspace.
//! * A workspace `admin` holds every workspace and computation permission in that workspace.
//! * A workspace `member` sees the workspace, its members and its computations, and may create
//!   computations (becoming their owner); changing a computation takes a role in it.
//! * Computation roles add, per computation, what that role needs; a user may hold several.
//! * API keys carry a subset of permissions: a key allows what both the key and its owner allow.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::computation::Role as ComputationRole;
use crate::values::{ValueError, check_text};

/// Where a permission applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The platform as a whole (operations, every workspace).
    Platform,
    /// One workspace and what lives in it.
    Workspace,
    /// One computation.
    Computation,
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $scope:ident;)*) => {
        /// One action on one kind of resource. Serialised as its dotted name (`computation.update`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum Permission {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl Permission {
            /// Every permission, in the order of the documentation.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }

            pub fn scope(self) -> Scope {
                match self { $(Permission::$variant => Scope::$scope,)* }
            }

            pub fn parse(name: &str) -> Option<Permission> {
                match name { $($name => Some(Permission::$variant),)* _ => None }
            }
        }
    };
}

permissions! {
    /// Operate the platform: quarantine, reactions, projections, users of every workspace.
    PlatformOperate = "platform.operate", Platform;
    /// Create a workspace (any signed-in user may; the creator becomes its admin).
    WorkspaceCreate = "workspace.create", Platform;
    WorkspaceRead = "workspace.read", Workspace;
    WorkspaceUpdate = "workspace.update", Workspace;
    WorkspaceArchive = "workspace.archive", Workspace;
    MembersRead = "members.read", Workspace;
    /// Invite users, resend and revoke invitations.
    MembersInvite = "members.invite", Workspace;
    /// Change members' roles and remove members.
    MembersManage = "members.manage", Workspace;
    /// Define, change and delete custom roles.
    RolesManage = "roles.manage", Workspace;
    ComputationCreate = "computation.create", Workspace;
    ComputationRead = "computation.read", Computation;
    ComputationUpdate = "computation.update", Computation;
    ComputationArchive = "computation.archive", Computation;
    /// Add, remove and change the participants of a computation.
    ComputationParticipantsManage = "computation.participants.manage", Computation;
    /// Start and stop runs.
    ComputationRun = "computation.run", Computation;
    ComputationAlgorithmUpload = "computation.algorithm.upload", Computation;
    ComputationDatasetUpload = "computation.dataset.upload", Computation;
    ComputationResultsRead = "computation.results.read", Computation;
    /// Sign a run's manifest (consent).
    ComputationConsent = "computation.consent", Computation;
    /// Link one's own asset to a computation as its algorithm or one of its datasets, and unlink it
    /// (the computation then asks for the role that provides that kind of asset).
    ComputationAssetsLink = "computation.assets.link", Computation;
    /// See the workspace's algorithm and dataset records and download their samples.
    AssetsRead = "assets.read", Workspace;
    /// Register assets; change, attach a sample to, remove the sample of and archive one's own.
    AssetsManage = "assets.manage", Workspace;
    /// See the workspace's certificates (never their keys).
    CertificatesRead = "certificates.read", Workspace;
    /// Issue certificates for the workspace's entities, sign their CSRs, renew them, and hand out
    /// one-time download tokens.
    CertificatesIssue = "certificates.issue", Workspace;
    /// Revoke certificates of the workspace's entities.
    CertificatesRevoke = "certificates.revoke", Workspace;
    /// See the backends a workspace may run CVMs on (its own and the platform's).
    BackendsRead = "backends.read", Workspace;
    /// Register, change and remove the workspace's backends.
    BackendsManage = "backends.manage", Workspace;
    /// See the workspace's CVMs, what their backends report and their agents said.
    CvmsRead = "cvms.read", Workspace;
    /// Ask for a CVM, and enrol a bring-your-own machine's agent.
    CvmsCreate = "cvms.create", Workspace;
    CvmsDestroy = "cvms.destroy", Workspace;
    /// Read the workspace's audit trail: its events as they are recorded (the live feed), from any
    /// point of the log on.
    AuditRead = "audit.read", Workspace;
    /// Register, change and delete the workspace's webhook endpoints, rotate their signing secrets,
    /// see their deliveries and retry a failed one.
    WebhooksManage = "webhooks.manage", Workspace;
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in roles a workspace member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    Admin,
    Member,
}

impl WorkspaceRole {
    pub const ALL: &'static [WorkspaceRole] = &[WorkspaceRole::Admin, WorkspaceRole::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Self::Admin => &[
                WorkspaceRead,
                WorkspaceUpdate,
                WorkspaceArchive,
                MembersRead,
                MembersInvite,
                MembersManage,
                RolesManage,
                ComputationCreate,
                ComputationRead,
                ComputationUpdate,
                ComputationArchive,
                ComputationParticipantsManage,
                ComputationRun,
                ComputationAlgorithmUpload,
                ComputationDatasetUpload,
                ComputationResultsRead,
                ComputationConsent,
                ComputationAssetsLink,
                AssetsRead,
                AssetsManage,
                CertificatesRead,
                CertificatesIssue,
                CertificatesRevoke,
                BackendsRead,
                BackendsManage,
                CvmsRead,
                CvmsCreate,
                CvmsDestroy,
                AuditRead,
                WebhooksManage,
            ],
            Self::Member => &[
                WorkspaceRead,
                MembersRead,
                ComputationCreate,
                ComputationRead,
                AssetsRead,
                AssetsManage,
                CertificatesRead,
                BackendsRead,
                CvmsRead,
            ],
        }
    }
}

impl fmt::Display for WorkspaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What each computation role may do in its computation.
pub fn computation_role_permissions(role: ComputationRole) -> &'static [Permission] {
    use Permission::*;
    match role {
        ComputationRole::Owner => &[
            ComputationRead,
            ComputationUpdate,
            ComputationArchive,
            ComputationParticipantsManage,
            ComputationRun,
        ],
        ComputationRole::Editor => &[ComputationRead, ComputationUpdate],
        ComputationRole::Runner => &[ComputationRead, ComputationRun],
        ComputationRole::Viewer => &[ComputationRead],
        ComputationRole::AlgorithmProvider => &[
            ComputationRead,
            ComputationAlgorithmUpload,
            ComputationConsent,
            ComputationAssetsLink,
        ],
        ComputationRole::DatasetProvider => &[
            ComputationRead,
            ComputationDatasetUpload,
            ComputationConsent,
            ComputationAssetsLink,
        ],
        ComputationRole::ResultConsumer => &[ComputationRead, ComputationResultsRead, ComputationConsent],
    }
}

/// Every computation role, in the order of the documentation.
pub const COMPUTATION_ROLES: &[ComputationRole] = &[
    ComputationRole::Owner,
    ComputationRole::Editor,
    ComputationRole::Runner,
    ComputationRole::Viewer,
    ComputationRole::AlgorithmProvider,
    ComputationRole::DatasetProvider,
    ComputationRole::ResultConsumer,
];

/// The name of a custom role: lowercase letters, digits, `-` and `_`, 1–64 characters, and not the name
/// of a built-in role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct RoleName(String);

impl RoleName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(value: &str) -> Result<Self, ValueError> {
        check_text("role name", value, Self::MAX_LEN, true)?;
        let valid = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        let builtin = WorkspaceRole::ALL.iter().any(|r| r.as_str() == value)
            || COMPUTATION_ROLES.iter().any(|r| r.to_string() == value);
        if !valid || builtin {
            return Err(ValueError::RoleName(value.to_owned()));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoleName {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RoleName> for String {
    fn from(n: RoleName) -> Self {
        n.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The permissions a principal holds in one context (a workspace, possibly narrowed to a computation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    permissions: BTreeSet<Permission>,
}

impl Grants {
    /// Every permission: a platform administrator.
    pub fn everything() -> Self {
        Self {
            permissions: Permission::ALL.iter().copied().collect(),
        }
    }

    /// What a signed-in user holds outside any workspace.
    pub fn signed_in() -> Self {
        Self::from_iter([Permission::WorkspaceCreate])
    }

    pub fn add_workspace_role(&mut self, role: WorkspaceRole) {
        self.permissions.extend(role.permissions());
    }

    pub fn add_computation_role(&mut self, role: ComputationRole) {
        self.permissions.extend(computation_role_permissions(role));
    }

    /// Adds a custom role's permissions. Custom roles can never grant platform permissions.
    pub fn add_custom(&mut self, permissions: impl IntoIterator<Item = Permission>) {
        self.permissions
            .extend(permissions.into_iter().filter(|p| p.scope() != Scope::Platform));
    }

    /// Narrows to what `limit` allows too (an API key's permissions).
    pub fn limit_to(&mut self, limit: &BTreeSet<Permission>) {
        self.permissions.retain(|p| limit.contains(p));
    }

    pub fn allows(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.permissions.iter().copied()
    }
}

impl FromIterator<Permission> for Grants {
    fn from_iter<T: IntoIterator<Item = Permission>>(iter: T) -> Self {
        Self {
            permissions: iter.into_iter().collect(),
        }
    }
}

/// The matrix as a Markdown table: one row per permission, one column per built-in role.
pub fn markdown_table() -> String {
    let mut columns: Vec<(String, Vec<Permission>)> =
        vec![("platform admin".into(), Permission::ALL.to_vec())];
    columns.extend(
        WorkspaceRole::ALL
            .iter()
            .map(|r| (format!("workspace {r}"), r.permissions().to_vec())),
    );
    columns.extend(
        COMPUTATION_ROLES
            .iter()
            .map(|r| (r.to_string(), computation_role_permissions(*r).to_vec())),
    );
    let mut out = String::from("| permission | scope |");
    for (name, _) in &columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for permission in Permission::ALL {
        let scope = match permission.scope() {
            Scope::Platform => "platform",
            Scope::Workspace => "workspace",
            Scope::Computation => "computation",
        };
        out.push_str(&format!("| `{permission}` | {scope} |"));
        for (_, granted) in &columns {
            out.push_str(if granted.contains(permission) {
                " ✓ |"
            } else {
                " |"
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Permission>(&json).unwrap(), *p);
        }
        assert_eq!(Permission::parse("workspace.destroy"), None);
    }

    #[test]
    fn roles_grant_only_permissions_of_their_scope() {
        for role in WorkspaceRole::ALL {
            assert!(role.permissions().iter().all(|p| p.scope() != Scope::Platform));
        }
        for role in COMPUTATION_ROLES {
            assert!(
                computation_role_permissions(*role)
                    .iter()
                    .all(|p| p.scope() == Scope::Computation)
            );
        }
    }

    #[test]
    fn a_workspace_admin_holds_every_workspace_and_computation_permission() {
        let admin = WorkspaceRole::Admin.permissions();
        for p in Permission::ALL.iter().filter(|p| p.scope() != Scope::Platform) {
            assert!(admin.contains(p), "admin lacks {p}");
        }
    }

    #[test]
    fn custom_roles_cannot_grant_platform_permissions() {
        let mut grants = Grants::default();
        grants.add_custom([Permission::PlatformOperate, Permission::ComputationRun]);
        assert!(!grants.allows(Permission::PlatformOperate));
        assert!(grants.allows(Permission::ComputationRun));
    }

    #[test]
    fn api_key_limits_narrow_the_owner_grants() {
        let mut grants = Grants::default();
        grants.add_workspace_role(WorkspaceRole::Admin);
        grants.limit_to(&[Permission::ComputationRead, Permission::PlatformOperate].into());
        assert_eq!(
            grants.iter().collect::<Vec<_>>(),
            vec![Permission::ComputationRead]
        );
    }

    #[test]
    fn role_names_exclude_builtins_and_odd_characters() {
        assert!(RoleName::parse("auditor").is_ok());
        for bad in ["admin", "owner", "result_consumer", "Auditor", "a b", ""] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
