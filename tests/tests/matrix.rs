//! The permission matrix end to end: every route whose answer depends on the caller, called by every
//! kind of principal, through HTTP, against a real nats-server and PostgreSQL.
//!
//! What each call must answer is not written per cell: it is computed from the domain's matrix
//! (`prism_domain::access`: `WorkspaceRole::permissions`, `computation_role_permissions`, custom roles,
//! `Grants`) the way `docs/permissions.md` combines it — a platform administrator holds everything; a
//! user what their workspace role, custom roles and computation roles grant; an API key what both the
//! key and its owner hold; a workspace (or computation) the caller has no part in is "not found"; no
//! credential (or one that does not hold) is 401. So a change of the data alone, or of the enforcement
//! alone, fails this test. Allowed means the route's own success status — or, for the few routes whose
//! success the fixture cannot reach (consent to a manifest that is no longer current, a run that has
//! ended, a vote on a vetoed proposal, a halt nobody holds, a link asked for by someone who provides
//! nothing, an unlink of what is not linked), the refusal the route documents for that request, which it gives only once the caller is
//! authorised; denied means 401, 404 or a 403 whose detail names the missing permission. What
//! `GET /workspaces` lists must be exactly what the matrix lets the caller read. Every denial must also
//! leave a record in the event log.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use common::Prism;
use prism_app::Caller;
use prism_domain::access::{Grants, Permission, WorkspaceRole};
use prism_domain::computation::{ASSET_NAME_MAX, REASON_MAX, Role as ComputationRole};
use prism_domain::reaction::ReactionFailed;
use prism_domain::run::manifest::consent_message;
use prism_domain::testing::keys::{ED25519 as KEY, sign_ed25519};
use prism_domain::values::Email;
use prism_domain::{UserId, WorkspaceId};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------
// Who asks

/// The kinds of principal every route is called by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    /// No `Authorization` header.
    Anonymous,
    /// `Authorization: Bearer <something that is no credential>`.
    Malformed,
    PlatformAdmin,
    /// The workspace's creator, hence its admin.
    WorkspaceAdmin,
    /// A member with the built-in role `member`.
    Member,
    /// A member with the built-in role `member` and the custom role [`AUDITOR`].
    Auditor,
    // Participants of the computation, named by their e-mail address, who are no workspace members.
    Owner,
    Editor,
    Runner,
    Viewer,
    ResultConsumer,
    /// Admin of another workspace, nothing here.
    Outsider,
    /// The workspace admin's personal API key for the workspace, carrying `workspace.read` only.
    ApiKey,
    /// The workspace admin's personal API key for another workspace of theirs, carrying everything they
    /// hold there: it reaches nothing of the fixture's.
    ForeignKey,
}

impl Who {
    const ALL: [Who; 14] = [
        Who::Anonymous,
        Who::Malformed,
        Who::PlatformAdmin,
        Who::WorkspaceAdmin,
        Who::Member,
        Who::Auditor,
        Who::Owner,
        Who::Editor,
        Who::Runner,
        Who::Viewer,
        Who::ResultConsumer,
        Who::Outsider,
        Who::ApiKey,
        Who::ForeignKey,
    ];

    fn name(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Malformed => "malformed bearer",
            Who::PlatformAdmin => "platform admin",
            Who::WorkspaceAdmin => "workspace admin",
            Who::Member => "member",
            Who::Auditor => "member + auditor",
            Who::Owner => "owner (participant)",
            Who::Editor => "editor (participant)",
            Who::Runner => "runner (participant)",
            Who::Viewer => "viewer (participant)",
            Who::ResultConsumer => "result_consumer (participant)",
            Who::Outsider => "outsider",
            Who::ApiKey => "API key (workspace.read)",
            Who::ForeignKey => "API key of another workspace",
        }
    }

    /// For the grid's columns.
    fn short(self) -> &'static str {
        match self {
            Who::Anonymous => "anon",
            Who::Malformed => "bad",
            Who::PlatformAdmin => "plat",
            Who::WorkspaceAdmin => "wsadm",
            Who::Member => "memb",
            Who::Auditor => "audit",
            Who::Owner => "owner",
            Who::Editor => "edit",
            Who::Runner => "run",
            Who::Viewer => "view",
            Who::ResultConsumer => "cons",
            Who::Outsider => "out",
            Who::ApiKey => "key",
            Who::ForeignKey => "fkey",
        }
    }

    /// The account a principal signs in as (the platform administrator is bootstrapped apart).
    fn email(self) -> Option<&'static str> {
        Some(match self {
            Who::WorkspaceAdmin => "alice@example.org",
            Who::Member => "bob@example.org",
            Who::Auditor => "carol@example.org",
            Who::Owner => "owner@example.org",
            Who::Editor => "editor@example.org",
            Who::Runner => "runner@example.org",
            Who::Viewer => "viewer@example.org",
            Who::ResultConsumer => "consumer@example.org",
            Who::Outsider => "olivia@example.org",
            _ => return None,
        })
    }
}

/// The member that `PATCH` and `DELETE /workspaces/{ws}/members/{user}` act on (never a caller).
const VICTIM: &str = "dave@example.org";

/// The participant who provides the algorithm and the dataset of the [`runnable`] computation (never a
/// caller, so what it may do changes nobody's row).
const PROVIDER: &str = "petra@example.org";

// ---------------------------------------------------------------------------------------------------
// The world, as data: the fixtures are built from it and the expectations computed from it

/// The workspace's custom role.
const AUDITOR: &str = "auditor";

/// What a custom role of the fixture workspace grants.
fn custom_role(name: &str) -> &'static [Permission] {
    match name {
        AUDITOR => &[Permission::ComputationResultsRead],
        other => panic!("no custom role {other}"),
    }
}

/// A workspace the test knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Place {
    /// The fixture workspace, with its members, custom role and computation.
    Fixture,
    /// A workspace that a principal made for itself (its only member, so its admin).
    OwnWorkspace(Who),
}

/// Every workspace there is when the cases begin.
const PLACES: [(Place, &str); 3] = [
    (Place::Fixture, "Matrix"),
    (Place::OwnWorkspace(Who::Outsider), "Elsewhere"),
    (Place::OwnWorkspace(Who::WorkspaceAdmin), "Other"),
];

/// The built-in and custom roles a principal holds in a workspace.
fn membership(who: Who, place: Place) -> Option<(WorkspaceRole, &'static [&'static str])> {
    match place {
        Place::Fixture => match who {
            Who::WorkspaceAdmin => Some((WorkspaceRole::Admin, &[])),
            Who::Member => Some((WorkspaceRole::Member, &[])),
            Who::Auditor => Some((WorkspaceRole::Member, &[AUDITOR])),
            _ => None,
        },
        Place::OwnWorkspace(admin) => (who == admin).then_some((WorkspaceRole::Admin, &[])),
    }
}

/// The roles a principal holds in the fixture computation (as the participant named by its address).
fn participation(who: Who) -> &'static [ComputationRole] {
    match who {
        Who::Owner => &[ComputationRole::Owner],
        Who::Editor => &[ComputationRole::Editor],
        Who::Runner => &[ComputationRole::Runner],
        Who::Viewer => &[ComputationRole::Viewer],
        Who::ResultConsumer => &[ComputationRole::ResultConsumer],
        _ => &[],
    }
}

/// The API keys among the principals: whose, for which workspace, carrying what.
fn api_key(who: Who) -> Option<(Who, Place, &'static [Permission])> {
    match who {
        Who::ApiKey => Some((Who::WorkspaceAdmin, Place::Fixture, &[Permission::WorkspaceRead])),
        Who::ForeignKey => Some((
            Who::WorkspaceAdmin,
            Place::OwnWorkspace(Who::WorkspaceAdmin),
            WorkspaceRole::Admin.permissions(),
        )),
        _ => None,
    }
}
/// What every case of `POST /users/me/api-keys` asks to put on a new key.
const KEY_REQUEST: &[Permission] = &[Permission::WorkspaceRead, Permission::ComputationResultsRead];

// ---------------------------------------------------------------------------------------------------
// The rules: what a principal may do, computed from the domain's matrix

/// What a route asks of the authorizer, in the order the service asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// A signed-in session (an access token), not an API key.
    Session,
    /// A listing of what the caller can see: any signed-in caller, an API key only if it carries it.
    Listing(Permission),
    /// A permission on the platform as a whole.
    Platform(Permission),
    /// A permission in the fixture workspace.
    Workspace(Permission),
    /// A permission on the fixture computation (its participants' roles count).
    Computation(Permission),
}

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    /// 401.
    Unauthenticated,
    /// 404: no part in the workspace (or computation).
    NotFound,
    /// 403 naming the permission (`None`: the session a key cannot stand for).
    Forbidden(Option<Permission>),
}

/// What a route's acts in the fixture workspace come to: the first refusal, if any.
fn expect(who: Who, acts: &[Act]) -> Outcome {
    acts.iter()
        .map(|act| decide(who, *act, Place::Fixture))
        .find(|o| *o != Outcome::Allowed)
        .unwrap_or(Outcome::Allowed)
}

/// What one act in `place` comes to.
fn decide(who: Who, act: Act, place: Place) -> Outcome {
    if matches!(who, Who::Anonymous | Who::Malformed) {
        return Outcome::Unauthenticated;
    }
    // An API key acts for its owner, in its own workspace only, narrowed to what it carries.
    let (user, key_place, limit) = match api_key(who) {
        Some((owner, key_place, permissions)) => (
            owner,
            Some(key_place),
            Some(permissions.iter().copied().collect::<BTreeSet<_>>()),
        ),
        None => (who, None, None),
    };
    let (permission, mut grants) = match act {
        Act::Session => {
            return if limit.is_some() {
                Outcome::Forbidden(None)
            } else {
                Outcome::Allowed
            };
        }
        Act::Listing(p) => (p, Grants::from_iter([p])),
        Act::Platform(p) if user == Who::PlatformAdmin => (p, Grants::everything()),
        Act::Platform(p) => (p, Grants::signed_in()),
        Act::Workspace(_) | Act::Computation(_) if key_place.is_some_and(|k| k != place) => {
            return Outcome::NotFound;
        }
        Act::Workspace(p) | Act::Computation(p) if user == Who::PlatformAdmin => (p, Grants::everything()),
        Act::Workspace(p) | Act::Computation(p) => {
            let mut grants = Grants::default();
            let mut involved = false;
            if let Some((role, custom)) = membership(user, place) {
                involved = true;
                grants.add_workspace_role(role);
                for name in custom {
                    grants.add_custom(custom_role(name).iter().copied());
                }
            }
            if matches!(act, Act::Computation(_)) && place == Place::Fixture {
                for role in participation(user) {
                    involved = true;
                    grants.add_computation_role(*role);
                }
            }
            if !involved {
                return Outcome::NotFound;
            }
            (p, grants)
        }
    };
    if let Some(limit) = &limit {
        grants.limit_to(limit);
    }
    if grants.allows(permission) {
        Outcome::Allowed
    } else {
        Outcome::Forbidden(Some(permission))
    }
}

// ---------------------------------------------------------------------------------------------------
// The routes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    ListWorkspaces,
    GetWorkspace,
    ListComputations,
    GetComputation,
    ExportComputation,
    ListMembers,
    ListRoles,
    ListInvitations,
    ListReactions,
    Quarantine,
    ReplayAggregate,
    PlatformSecurityEvents,
    SecurityEvents,
    ListUsers,
    CreateWorkspace,
    UpdateWorkspace,
    CreateComputation,
    ImportComputation,
    UpdateComputation,
    UpdateParticipants,
    Invite,
    ResendInvitation,
    RevokeInvitation,
    DefineRole,
    DeleteRole,
    ChangeRole,
    RemoveMember,
    CreateApiKey,
    RetryReaction,
    ListCertificates,
    GetCertificate,
    IssueCertificate,
    SignCertificateRequest,
    RenewCertificate,
    CertificateDownloadToken,
    RevokeCertificate,
    RevokeEntityCertificates,
    ListBackends,
    GetBackend,
    RegisterBackend,
    UpdateBackend,
    RemoveBackend,
    ListPlatformBackends,
    GetPlatformBackend,
    RegisterPlatformBackend,
    UpdatePlatformBackend,
    RemovePlatformBackend,
    ListCvms,
    GetCvm,
    CreateCvm,
    EnrolCvm,
    ListCvmAttestations,
    GetAttestationPolicy,
    SetAttestationPolicy,
    DestroyCvm,
    ListWebhooks,
    GetWebhook,
    RegisterWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    ListWebhookDeliveries,
    RetryWebhookDelivery,
    // The run routes act on the [`runnable`] computation and its run that has ended.
    GetManifest,
    DryRun,
    ListRuns,
    RunHistory,
    GetRun,
    RunEvents,
    RunLogs,
    ComputationEvents,
    ComputationLogs,
    RunConnection,
    ComputationReport,
    RunReport,
    Consent,
    RequestRun,
    GiveReceipt,
    StopRun,
    RetryRun,
    // The workspace's audit trail, to an end time already past (the stream ends at once).
    StreamEvents,
    // The governance routes act on the [`runnable`] computation, which its participants have approved,
    // and on its proposal that a participant vetoed.
    GetGovernance,
    ListProposals,
    GetProposal,
    ProposeChange,
    ApproveProposal,
    VetoProposal,
    SetChangeThreshold,
    HaltExecution,
    LiftHalt,
    // The asset routes: a change of an asset is its owner's, so every allowed case changes an asset of
    // its own; linking acts on the fixture computation, of which no caller is a provider.
    ListAssets,
    GetAsset,
    GetAssetSample,
    RegisterAsset,
    UpdateAsset,
    PutAssetSample,
    RemoveAssetSample,
    LinkAsset,
    UnlinkAsset,
    ArchiveAsset,
    ArchiveComputation,
    /// Last: allowed cases get a workspace of their own, denied ones the shared one.
    ArchiveWorkspace,
}

impl Route {
    /// Reads first, then changes, then what destroys.
    const ALL: [Route; 102] = [
        Route::ListWorkspaces,
        Route::GetWorkspace,
        Route::ListComputations,
        Route::GetComputation,
        Route::ExportComputation,
        Route::ListMembers,
        Route::ListRoles,
        Route::ListInvitations,
        Route::ListReactions,
        Route::Quarantine,
        Route::ReplayAggregate,
        Route::PlatformSecurityEvents,
        Route::SecurityEvents,
        Route::ListUsers,
        Route::CreateWorkspace,
        Route::UpdateWorkspace,
        Route::CreateComputation,
        Route::ImportComputation,
        Route::UpdateComputation,
        Route::UpdateParticipants,
        Route::Invite,
        Route::ResendInvitation,
        Route::RevokeInvitation,
        Route::DefineRole,
        Route::DeleteRole,
        Route::ChangeRole,
        Route::RemoveMember,
        Route::CreateApiKey,
        Route::RetryReaction,
        Route::ListCertificates,
        Route::GetCertificate,
        Route::IssueCertificate,
        Route::SignCertificateRequest,
        Route::RenewCertificate,
        Route::CertificateDownloadToken,
        Route::RevokeCertificate,
        Route::RevokeEntityCertificates,
        Route::ListBackends,
        Route::GetBackend,
        Route::RegisterBackend,
        Route::UpdateBackend,
        Route::RemoveBackend,
        Route::ListPlatformBackends,
        Route::GetPlatformBackend,
        Route::RegisterPlatformBackend,
        Route::UpdatePlatformBackend,
        Route::RemovePlatformBackend,
        Route::ListCvms,
        Route::GetCvm,
        Route::CreateCvm,
        Route::EnrolCvm,
        Route::ListCvmAttestations,
        Route::GetAttestationPolicy,
        Route::SetAttestationPolicy,
        Route::DestroyCvm,
        Route::ListWebhooks,
        Route::GetWebhook,
        Route::RegisterWebhook,
        Route::UpdateWebhook,
        Route::DeleteWebhook,
        Route::RotateWebhookSecret,
        Route::ListWebhookDeliveries,
        Route::RetryWebhookDelivery,
        Route::GetManifest,
        Route::DryRun,
        Route::ListRuns,
        Route::RunHistory,
        Route::GetRun,
        Route::RunEvents,
        Route::RunLogs,
        Route::ComputationEvents,
        Route::ComputationLogs,
        Route::RunConnection,
        Route::ComputationReport,
        Route::RunReport,
        Route::Consent,
        Route::RequestRun,
        Route::GiveReceipt,
        Route::StopRun,
        Route::RetryRun,
        Route::StreamEvents,
        Route::GetGovernance,
        Route::ListProposals,
        Route::GetProposal,
        Route::ProposeChange,
        Route::ApproveProposal,
        Route::VetoProposal,
        Route::SetChangeThreshold,
        Route::HaltExecution,
        Route::LiftHalt,
        Route::ListAssets,
        Route::GetAsset,
        Route::GetAssetSample,
        Route::RegisterAsset,
        Route::UpdateAsset,
        Route::PutAssetSample,
        Route::RemoveAssetSample,
        Route::LinkAsset,
        Route::UnlinkAsset,
        Route::ArchiveAsset,
        Route::ArchiveComputation,
        Route::ArchiveWorkspace,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::ListWorkspaces => "GET /workspaces",
            Route::GetWorkspace => "GET /workspaces/{ws}",
            Route::ListComputations => "GET /{ws}/computations",
            Route::GetComputation => "GET /{ws}/computations/{c}",
            Route::ExportComputation => "GET /{ws}/computations/{c}/export",
            Route::ListMembers => "GET /workspaces/{ws}/members",
            Route::ListRoles => "GET /workspaces/{ws}/roles",
            Route::ListInvitations => "GET /workspaces/{ws}/invitations",
            Route::ListReactions => "GET /operations/reactions",
            Route::Quarantine => "GET /operations/quarantine",
            Route::ReplayAggregate => "GET /operations/replay/{type}/{id}",
            Route::PlatformSecurityEvents => "GET /operations/security-events",
            Route::SecurityEvents => "GET /{ws}/security-events",
            Route::ListUsers => "GET /users",
            Route::CreateWorkspace => "POST /workspaces",
            Route::UpdateWorkspace => "PATCH /workspaces/{ws}",
            Route::CreateComputation => "POST /{ws}/computations",
            Route::ImportComputation => "POST /{ws}/computations/import",
            Route::UpdateComputation => "PATCH /{ws}/computations/{c}",
            Route::UpdateParticipants => "PATCH /{ws}/computations/{c} +participants",
            Route::Invite => "POST /workspaces/{ws}/invitations",
            Route::ResendInvitation => "POST /workspaces/{ws}/invitations/{i}/resend",
            Route::RevokeInvitation => "DELETE /workspaces/{ws}/invitations/{i}",
            Route::DefineRole => "PUT /workspaces/{ws}/roles/{name}",
            Route::DeleteRole => "DELETE /workspaces/{ws}/roles/{name}",
            Route::ChangeRole => "PATCH /workspaces/{ws}/members/{user}",
            Route::RemoveMember => "DELETE /workspaces/{ws}/members/{user}",
            Route::CreateApiKey => "POST /users/me/api-keys",
            Route::RetryReaction => "POST /operations/reactions/{r}/retry",
            Route::ListCertificates => "GET /{ws}/certs",
            Route::GetCertificate => "GET /{ws}/certs/{serial}",
            Route::IssueCertificate => "POST /{ws}/certs/issue/{kind}/{entity}",
            Route::SignCertificateRequest => "POST /{ws}/certs/csrs/{kind}/{entity}",
            Route::RenewCertificate => "PATCH /{ws}/certs/{serial}/renew",
            Route::CertificateDownloadToken => "POST /{ws}/certs/{serial}/download/token",
            Route::RevokeCertificate => "PATCH /{ws}/certs/{serial}/revoke",
            Route::RevokeEntityCertificates => "DELETE /{ws}/certs?entity_id=",
            Route::ListBackends => "GET /{ws}/backends",
            Route::GetBackend => "GET /{ws}/backends/{b}",
            Route::RegisterBackend => "POST /{ws}/backends",
            Route::UpdateBackend => "PUT /{ws}/backends/{b}",
            Route::RemoveBackend => "DELETE /{ws}/backends/{b}",
            Route::ListPlatformBackends => "GET /backends",
            Route::GetPlatformBackend => "GET /backends/{b}",
            Route::RegisterPlatformBackend => "POST /backends",
            Route::UpdatePlatformBackend => "PUT /backends/{b}",
            Route::RemovePlatformBackend => "DELETE /backends/{b}",
            Route::ListCvms => "GET /{ws}/cvms",
            Route::GetCvm => "GET /{ws}/cvms/{cvm}",
            Route::ListCvmAttestations => "GET /{ws}/cvms/{cvm}/attestations",
            Route::GetAttestationPolicy => "GET /{ws}/computations/{c}/attestation-policy",
            Route::SetAttestationPolicy => "PUT /{ws}/computations/{c}/attestation-policy",
            Route::CreateCvm => "POST /{ws}/cvms",
            Route::EnrolCvm => "POST /{ws}/cvms/{cvm}/enrolment",
            Route::DestroyCvm => "DELETE /{ws}/cvms/{cvm}",
            Route::ListWebhooks => "GET /{ws}/webhooks",
            Route::GetWebhook => "GET /{ws}/webhooks/{wh}",
            Route::RegisterWebhook => "POST /{ws}/webhooks",
            Route::UpdateWebhook => "PATCH /{ws}/webhooks/{wh}",
            Route::DeleteWebhook => "DELETE /{ws}/webhooks/{wh}",
            Route::RotateWebhookSecret => "POST /{ws}/webhooks/{wh}/secret",
            Route::ListWebhookDeliveries => "GET /{ws}/webhooks/{wh}/deliveries",
            Route::RetryWebhookDelivery => "POST /{ws}/webhooks/{wh}/deliveries/{d}/retry",
            Route::GetManifest => "GET /{ws}/computations/{c}/manifest",
            Route::DryRun => "POST /{ws}/computations/{c}/dry-run",
            Route::ListRuns => "GET /{ws}/runs",
            Route::RunHistory => "GET /{ws}/runs/history",
            Route::GetRun => "GET /{ws}/runs/{run}",
            Route::RunEvents => "GET /{ws}/runs/{run}/events",
            Route::StreamEvents => "GET /{ws}/events",
            Route::RunLogs => "GET /{ws}/runs/{run}/logs",
            Route::ComputationEvents => "GET /{ws}/computations/{c}/events",
            Route::ComputationLogs => "GET /{ws}/computations/{c}/logs",
            Route::RunConnection => "GET /{ws}/runs/{run}/connection",
            Route::ComputationReport => "GET /{ws}/computations/{c}/report",
            Route::RunReport => "GET /{ws}/runs/{run}/report",
            Route::Consent => "POST /{ws}/computations/{c}/consents",
            Route::RequestRun => "POST /{ws}/computations/{c}/runs",
            Route::GiveReceipt => "POST /{ws}/runs/{run}/receipts",
            Route::StopRun => "POST /{ws}/runs/{run}/stop",
            Route::RetryRun => "POST /{ws}/runs/{run}/retry",
            Route::GetGovernance => "GET /{ws}/computations/{c}/governance",
            Route::ListProposals => "GET /{ws}/computations/{c}/proposals",
            Route::GetProposal => "GET /{ws}/computations/{c}/proposals/{p}",
            Route::ProposeChange => "POST /{ws}/computations/{c}/proposals",
            Route::ApproveProposal => "POST /{ws}/computations/{c}/proposals/{p}/approve",
            Route::VetoProposal => "POST /{ws}/computations/{c}/proposals/{p}/veto",
            Route::SetChangeThreshold => "PUT /{ws}/computations/{c}/change-threshold",
            Route::HaltExecution => "POST /{ws}/computations/{c}/halt",
            Route::LiftHalt => "DELETE /{ws}/computations/{c}/halt",
            Route::ListAssets => "GET /{ws}/assets",
            Route::GetAsset => "GET /{ws}/assets/{a}",
            Route::GetAssetSample => "GET /{ws}/assets/{a}/sample",
            Route::RegisterAsset => "POST /{ws}/assets",
            Route::UpdateAsset => "PATCH /{ws}/assets/{a}",
            Route::PutAssetSample => "PUT /{ws}/assets/{a}/sample",
            Route::RemoveAssetSample => "DELETE /{ws}/assets/{a}/sample",
            Route::LinkAsset => "POST /{ws}/computations/{c}/assets",
            Route::UnlinkAsset => "DELETE /{ws}/computations/{c}/assets/{a}",
            Route::ArchiveAsset => "DELETE /{ws}/assets/{a}",
            Route::ArchiveComputation => "DELETE /{ws}/computations/{c}",
            Route::ArchiveWorkspace => "POST /workspaces/{ws}/archive",
        }
    }

    /// What the route's service asks for (`app/src/*.rs`), in order.
    fn acts(self) -> Vec<Act> {
        use Permission as P;
        match self {
            Route::ListWorkspaces => vec![Act::Listing(P::WorkspaceRead)],
            Route::CreateWorkspace => vec![Act::Platform(P::WorkspaceCreate)],
            Route::GetWorkspace => vec![Act::Workspace(P::WorkspaceRead)],
            Route::UpdateWorkspace => vec![Act::Workspace(P::WorkspaceUpdate)],
            Route::ArchiveWorkspace => vec![Act::Workspace(P::WorkspaceArchive)],
            Route::CreateComputation | Route::ImportComputation => vec![Act::Workspace(P::ComputationCreate)],
            Route::ListComputations => vec![Act::Workspace(P::ComputationRead)],
            Route::GetComputation
            | Route::ExportComputation
            | Route::ComputationEvents
            | Route::ComputationLogs => vec![Act::Computation(P::ComputationRead)],
            Route::UpdateComputation => vec![Act::Computation(P::ComputationUpdate)],
            Route::UpdateParticipants => vec![
                Act::Computation(P::ComputationParticipantsManage),
                Act::Computation(P::ComputationUpdate),
            ],
            Route::ArchiveComputation => vec![Act::Computation(P::ComputationArchive)],
            Route::ListMembers | Route::ListRoles | Route::ListInvitations => {
                vec![Act::Workspace(P::MembersRead)]
            }
            Route::Invite | Route::ResendInvitation | Route::RevokeInvitation => {
                vec![Act::Workspace(P::MembersInvite)]
            }
            // The member changed or removed is never the caller (leaving asks less).
            Route::ChangeRole | Route::RemoveMember => vec![Act::Workspace(P::MembersManage)],
            Route::DefineRole | Route::DeleteRole => vec![Act::Workspace(P::RolesManage)],
            Route::ListCertificates | Route::GetCertificate => vec![Act::Workspace(P::CertificatesRead)],
            Route::IssueCertificate
            | Route::SignCertificateRequest
            | Route::RenewCertificate
            | Route::CertificateDownloadToken => vec![Act::Workspace(P::CertificatesIssue)],
            Route::RevokeCertificate | Route::RevokeEntityCertificates => {
                vec![Act::Workspace(P::CertificatesRevoke)]
            }
            Route::ListBackends | Route::GetBackend => vec![Act::Workspace(P::BackendsRead)],
            Route::RegisterBackend | Route::UpdateBackend | Route::RemoveBackend => {
                vec![Act::Workspace(P::BackendsManage)]
            }
            Route::ListCvms | Route::GetCvm | Route::ListCvmAttestations => vec![Act::Workspace(P::CvmsRead)],
            Route::GetAttestationPolicy => vec![Act::Computation(P::ComputationRead)],
            Route::SetAttestationPolicy => vec![Act::Computation(P::ComputationUpdate)],
            Route::CreateCvm => vec![Act::Workspace(P::CvmsCreate)],
            Route::DestroyCvm => vec![Act::Workspace(P::CvmsDestroy)],
            Route::ListWebhooks
            | Route::GetWebhook
            | Route::RegisterWebhook
            | Route::UpdateWebhook
            | Route::DeleteWebhook
            | Route::RotateWebhookSecret
            | Route::ListWebhookDeliveries
            | Route::RetryWebhookDelivery => vec![Act::Workspace(P::WebhooksManage)],
            // A run's routes find the run first (one of another workspace is not found), then ask on
            // its computation, as the computation's own routes do.
            Route::GetManifest | Route::GetRun | Route::RunEvents | Route::RunLogs | Route::RunConnection => {
                vec![Act::Computation(P::ComputationRead)]
            }
            Route::ListRuns | Route::RunHistory => vec![Act::Workspace(P::ComputationRead)],
            Route::StreamEvents | Route::SecurityEvents => vec![Act::Workspace(P::AuditRead)],
            // A compliance report is about the computation its reader takes part in.
            Route::ComputationReport | Route::RunReport => vec![Act::Computation(P::ComputationRead)],
            Route::DryRun | Route::RequestRun | Route::StopRun | Route::RetryRun => {
                vec![Act::Computation(P::ComputationRun)]
            }
            // Consent is given as the participant the caller is (a user, not a service).
            Route::Consent => vec![Act::Computation(P::ComputationConsent)],
            Route::GetGovernance | Route::ListProposals | Route::GetProposal => {
                vec![Act::Computation(P::ComputationRead)]
            }
            // A change asks for what the change itself needs (a new dataset, a threshold).
            Route::ProposeChange | Route::SetChangeThreshold => vec![Act::Computation(P::ComputationUpdate)],
            // Votes, vetoes and halts are the signers' (`computation.consent`); the computation then
            // accepts them only from a participant holding a key.
            Route::ApproveProposal | Route::VetoProposal | Route::HaltExecution | Route::LiftHalt => {
                vec![Act::Computation(P::ComputationConsent)]
            }
            Route::ListAssets | Route::GetAsset | Route::GetAssetSample => {
                vec![Act::Workspace(P::AssetsRead)]
            }
            Route::RegisterAsset
            | Route::UpdateAsset
            | Route::PutAssetSample
            | Route::RemoveAssetSample
            | Route::ArchiveAsset => vec![Act::Workspace(P::AssetsManage)],
            // Linking is a change of the computation that a provider asks for.
            Route::LinkAsset | Route::UnlinkAsset => vec![Act::Computation(P::ComputationAssetsLink)],
            // A receipt for the result (the permission follows the receipt's kind).
            Route::GiveReceipt => vec![Act::Computation(P::ComputationResultsRead)],
            // Enrolling makes a download token for the agent's certificate, which is issuing.
            Route::EnrolCvm => vec![
                Act::Workspace(P::CvmsCreate),
                Act::Workspace(P::CertificatesIssue),
            ],
            Route::ListReactions
            | Route::RetryReaction
            | Route::Quarantine
            | Route::ReplayAggregate
            | Route::PlatformSecurityEvents
            | Route::ListUsers
            | Route::ListPlatformBackends
            | Route::GetPlatformBackend
            | Route::RegisterPlatformBackend
            | Route::UpdatePlatformBackend
            | Route::RemovePlatformBackend => vec![Act::Platform(P::PlatformOperate)],
            // A session; seeing the workspace; then holding each permission asked for, in the workspace.
            Route::CreateApiKey => [Act::Session, Act::Workspace(P::WorkspaceRead)]
                .into_iter()
                .chain(KEY_REQUEST.iter().map(|p| Act::Workspace(*p)))
                .collect(),
        }
    }

    /// What the route answers when it is allowed: the requests below are made to succeed, but for the
    /// routes whose success the fixture cannot reach, which answer what they document for the request
    /// only once the caller is authorised.
    fn success(self) -> StatusCode {
        match self {
            // The manifest consented to is not the current one.
            Route::Consent => StatusCode::CONFLICT,
            // The run has ended: its agent takes no participants, and it cannot be stopped.
            Route::RunConnection | Route::StopRun => StatusCode::CONFLICT,
            // The proposal was vetoed, so it takes no more votes, whoever may vote; and nobody holds a
            // halt to lift. Both refusals come before the computation asks whether the caller has a
            // say, so they are the same for every authorised caller.
            Route::ApproveProposal | Route::VetoProposal | Route::LiftHalt => StatusCode::CONFLICT,
            // The halt's reason is longer than a reason may be, which the computation checks before
            // whether the caller has a say (so that no case halts the computation for the next).
            Route::HaltExecution => StatusCode::UNPROCESSABLE_ENTITY,
            // The computation is approved: a new threshold is proposed, and waits for approvals.
            Route::SetChangeThreshold => StatusCode::ACCEPTED,
            // The receipt's file name is longer than an asset's name may be, which the run checks
            // before anything else of a receipt.
            Route::GiveReceipt => StatusCode::UNPROCESSABLE_ENTITY,
            // Who may link holds no provider's role in the computation (422, whatever their other
            // roles), and the asset is linked nowhere to be unlinked from (409): both refusals come only
            // once the caller is authorised.
            Route::LinkAsset => StatusCode::UNPROCESSABLE_ENTITY,
            Route::UnlinkAsset => StatusCode::CONFLICT,
            // The fixture's delivery is pending (its endpoint is never validated), and only a failed
            // one is retried: a refusal that comes only once the caller is authorised.
            Route::RetryWebhookDelivery => StatusCode::CONFLICT,
            Route::RegisterWebhook => StatusCode::CREATED,
            Route::DeleteWebhook => StatusCode::NO_CONTENT,
            Route::CreateWorkspace
            | Route::CreateComputation
            | Route::Invite
            | Route::CreateApiKey
            | Route::IssueCertificate
            | Route::SignCertificateRequest
            | Route::CertificateDownloadToken
            | Route::RegisterBackend
            | Route::RegisterPlatformBackend
            | Route::CreateCvm
            | Route::EnrolCvm
            | Route::RequestRun
            | Route::RetryRun
            | Route::ProposeChange
            | Route::ImportComputation
            | Route::RegisterAsset => StatusCode::CREATED,
            Route::RemoveMember
            | Route::DeleteRole
            | Route::RevokeInvitation
            | Route::RevokeCertificate
            | Route::RevokeEntityCertificates
            | Route::RemoveBackend
            | Route::RemovePlatformBackend => StatusCode::NO_CONTENT,
            Route::RetryReaction | Route::DestroyCvm => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Allowed => f.write_str("allowed"),
            Outcome::Unauthenticated => f.write_str("401"),
            Outcome::NotFound => f.write_str("404"),
            Outcome::Forbidden(Some(p)) => write!(f, "403 `{p}`"),
            Outcome::Forbidden(None) => f.write_str("403 (session)"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The platform

/// A signed-in user.
#[derive(Debug, Clone)]
struct User {
    id: String,
    access: String,
}

/// A workspace as the world above describes it: members, custom role, computation, the admin's key.
#[derive(Debug, Clone)]
struct Fixture {
    ws: String,
    computation: String,
    key: String,
    /// A certificate of the workspace's, for the routes that take a serial.
    serial: String,
    /// A backend of the workspace's.
    backend: String,
    /// A CVM of the workspace's, as asked for (the provisioner fails it: no backend fits it).
    cvm: String,
    /// A CVM of the workspace's recorded as started, with its agent's certificate, to enrol.
    started_cvm: String,
    /// A dataset asset of the workspace admin's, with a sample.
    asset: String,
    /// A webhook endpoint of the workspace's (never validated), and one of its deliveries (pending).
    webhook: String,
    delivery: String,
    /// Stream sequence after it was set up, for reads (`min_sequence`).
    sequence: u64,
}

/// One answer.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    async fn of(r: Response) -> Self {
        let status = r.status();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self { status, body }
    }

    fn field(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_owned()
    }

    fn expect(self, status: StatusCode, what: &str) -> Self {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        self
    }
}

impl Prism {
    async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<&Value>) -> Answer {
        let mut request = self.request(method, path, bearer);
        if let Some(body) = body {
            request = request.json(body);
        }
        Answer::of(request.send().await.unwrap()).await
    }

    /// Registers a user over HTTP and signs them in.
    async fn user(&self, email: &str) -> User {
        let password = format!("{email}'s long password");
        let body = json!({"email": email, "display_name": email, "password": password});
        let id = self
            .call(Method::POST, "/users", None, Some(&body))
            .await
            .expect(StatusCode::CREATED, "registration")
            .field("id");
        let access = Answer::of(self.sign_in(email, &password).await)
            .await
            .expect(StatusCode::OK, "sign-in")
            .field("access_token");
        User { id, access }
    }

    /// Invites `user` (by id) as `admin`, and `user` accepts with its session.
    async fn join(&self, admin: &str, ws: &str, user: &User, role: WorkspaceRole, custom: &[&str]) {
        let body = json!({"user_id": user.id, "role": role.as_str(), "custom_roles": custom});
        let path = format!("/workspaces/{ws}/invitations");
        let token = self
            .call(Method::POST, &path, Some(admin), Some(&body))
            .await
            .expect(StatusCode::CREATED, "invitation")
            .field("token");
        self.call(
            Method::POST,
            "/invitations/accept",
            Some(&user.access),
            Some(&json!({"token": token})),
        )
        .await
        .expect(StatusCode::OK, "accepting an invitation");
    }

    /// Defines a custom role as `admin`.
    async fn define(&self, admin: &str, ws: &str, name: &str, permissions: &[Permission]) {
        let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        self.call(
            Method::PUT,
            &format!("/workspaces/{ws}/roles/{name}"),
            Some(admin),
            Some(&json!({"permissions": names})),
        )
        .await
        .expect(StatusCode::OK, "defining a role");
    }

    async fn computation(&self, admin: &str, ws: &str, name: &str) -> String {
        self.call(
            Method::POST,
            &format!("/{ws}/computations"),
            Some(admin),
            Some(&definition(name)),
        )
        .await
        .expect(StatusCode::CREATED, "creating a computation")
        .field("id")
    }

    /// A workspace made by the workspace admin, with the members, custom role, computation and API key
    /// of the world above.
    async fn fixture(&self, users: &HashMap<Who, User>, name: &str) -> Fixture {
        let admin = &users[&Who::WorkspaceAdmin].access;
        let ws = self
            .call(
                Method::POST,
                "/workspaces",
                Some(admin),
                Some(&json!({"name": name})),
            )
            .await
            .expect(StatusCode::CREATED, "creating a workspace")
            .field("id");
        // The creator is the workspace's admin.
        assert_eq!(
            membership(Who::WorkspaceAdmin, Place::Fixture),
            Some((WorkspaceRole::Admin, &[][..]))
        );
        self.define(admin, &ws, AUDITOR, custom_role(AUDITOR)).await;
        for who in Who::ALL {
            if let Some((role, custom)) = membership(who, Place::Fixture)
                && who != Who::WorkspaceAdmin
            {
                self.join(admin, &ws, &users[&who], role, custom).await;
            }
        }
        let computation = self.computation(admin, &ws, name).await;
        let (owner, place, permissions) = api_key(Who::ApiKey).unwrap();
        assert_eq!(place, Place::Fixture);
        let key = self.api_key(&users[&owner], &ws, permissions).await;
        let serial = self.certificate(admin, &ws, "fixture").await;
        let backend = self.backend(admin, &ws, "fixture").await;
        let cvm = self
            .call(
                Method::POST,
                &format!("/{ws}/cvms"),
                Some(admin),
                Some(&cvm_request()),
            )
            .await
            .expect(StatusCode::CREATED, "asking for a CVM")
            .field("id");
        let started_cvm = self.started_cvm(&ws).await;
        let asset = self.asset(admin, &ws, "fixture").await;
        let webhook = self.webhook(admin, &ws, "fixture").await;
        let delivery = self.webhook_delivery(admin, &ws, &webhook).await;
        let sequence = self.platform().app().log().last_sequence().await.unwrap();
        Fixture {
            ws,
            computation,
            key,
            serial,
            backend,
            cvm,
            started_cvm,
            asset,
            webhook,
            delivery,
            sequence,
        }
    }

    /// A new webhook endpoint of `ws` for every event, which no receiver ever validates.
    async fn webhook(&self, admin: &str, ws: &str, name: &str) -> String {
        self.call(
            Method::POST,
            &format!("/{ws}/webhooks"),
            Some(admin),
            Some(&json!({"url": format!("https://hooks.example.org/{name}"), "event_types": ["*"]})),
        )
        .await
        .expect(StatusCode::CREATED, "registering a webhook endpoint")
        .field("id")
    }

    /// A delivery queued for `webhook` (its own registration, an event of the workspace), once the
    /// fan-out has queued it.
    async fn webhook_delivery(&self, admin: &str, ws: &str, webhook: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = self
                .call(
                    Method::GET,
                    &format!("/{ws}/webhooks/{webhook}/deliveries"),
                    Some(admin),
                    None,
                )
                .await
                .expect(StatusCode::OK, "listing a webhook's deliveries");
            if let Some(id) = page.body["items"][0]["id"].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no delivery queued in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The serial of a new certificate of `ws` for the CVM `entity`, once the read model has it (the
    /// routes find certificates by serial there).
    async fn certificate(&self, admin: &str, ws: &str, entity: &str) -> String {
        let issued = self
            .call(
                Method::POST,
                &format!("/{ws}/certs/issue/cvm/{entity}"),
                Some(admin),
                Some(&json!({"ip_addresses": ["10.0.0.1"]})),
            )
            .await
            .expect(StatusCode::CREATED, "issuing a certificate");
        let serial = issued.field("serial_number");
        let sequence = &issued.body["sequence"];
        self.call(
            Method::GET,
            &format!("/{ws}/certs/{serial}?min_sequence={sequence}"),
            Some(admin),
            None,
        )
        .await
        .expect(StatusCode::OK, "reading the certificate");
        serial
    }

    /// A new dataset asset of `ws` registered by `bearer` (so owned by its user), with a sample.
    async fn asset(&self, bearer: &str, ws: &str, name: &str) -> String {
        let body = json!({"kind": "dataset", "mime_type": "text/csv", "sha3_256": "ef".repeat(32),
                          "file_name": format!("{name}.csv")});
        let id = self
            .call(Method::POST, &format!("/{ws}/assets"), Some(bearer), Some(&body))
            .await
            .expect(StatusCode::CREATED, "registering an asset")
            .field("id");
        self.call(
            Method::PUT,
            &format!("/{ws}/assets/{id}/sample"),
            Some(bearer),
            Some(&json!("a,b\n1,2\n")),
        )
        .await
        .expect(StatusCode::OK, "attaching a sample");
        id
    }

    /// A personal API key of `owner` for `ws`.
    async fn api_key(&self, owner: &User, ws: &str, permissions: &[Permission]) -> String {
        let permissions: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        let body = json!({"workspace": ws, "name": "matrix", "permissions": permissions});
        self.call(
            Method::POST,
            "/users/me/api-keys",
            Some(&owner.access),
            Some(&body),
        )
        .await
        .expect(StatusCode::CREATED, "creating an API key")
        .field("key")
    }

    /// A new backend of `ws` (bring your own), registered by `admin`.
    async fn backend(&self, admin: &str, ws: &str, name: &str) -> String {
        self.call(
            Method::POST,
            &format!("/{ws}/backends"),
            Some(admin),
            Some(&backend_settings(name)),
        )
        .await
        .expect(StatusCode::CREATED, "registering a backend")
        .field("id")
    }

    /// A new backend of the platform, registered by its administrator.
    async fn platform_backend(&self, name: &str) -> String {
        self.call(
            Method::POST,
            "/backends",
            Some(self.admin_token()),
            Some(&backend_settings(name)),
        )
        .await
        .expect(StatusCode::CREATED, "registering a platform backend")
        .field("id")
    }

    /// A CVM of `ws` recorded as started, with its agent's certificate, as a provisioner leaves it.
    async fn started_cvm(&self, ws: &str) -> String {
        let operator = self
            .platform()
            .app()
            .identity()
            .authenticate(Caller::anonymous(), self.admin_token())
            .await
            .unwrap();
        let ws = WorkspaceId(ws.parse().unwrap());
        let cvm = common::agent::started_cvm(self, ws).await;
        common::agent::agent_certificate(self, &operator, ws, cvm).await;
        cvm.to_string()
    }

    /// The [`runnable`] computation of `ws`, consented to by every participant with a key, and a run of
    /// it, once the run has ended: no backend fits its CVM ([`run_request`]), which fails, and the run
    /// with it.
    async fn ended_run(&self, users: &HashMap<Who, User>, provider: &User, ws: &str) -> (String, String) {
        let admin = &users[&Who::WorkspaceAdmin].access;
        let computation = self
            .call(
                Method::POST,
                &format!("/{ws}/computations"),
                Some(admin),
                Some(&runnable(provider)),
            )
            .await
            .expect(StatusCode::CREATED, "creating the runnable computation")
            .field("id");
        let base = format!("/{ws}/computations/{computation}");
        let manifest_id = self
            .call(Method::GET, &format!("{base}/manifest"), Some(admin), None)
            .await
            .expect(StatusCode::OK, "reading the manifest")
            .field("manifest_id");
        // Consent is given as the participant one is: each signer in its own session.
        let signers = Who::ALL
            .into_iter()
            .filter(|who| participation(*who).iter().any(|r| r.needs_public_key()))
            .map(|who| &users[&who])
            .chain([provider]);
        let body = json!({"manifest_id": manifest_id, "signature": consent_signature(&manifest_id)});
        for signer in signers {
            self.call(
                Method::POST,
                &format!("{base}/consents"),
                Some(&signer.access),
                Some(&body),
            )
            .await
            .expect(StatusCode::OK, "consenting");
        }
        let run = self
            .call(
                Method::POST,
                &format!("{base}/runs"),
                Some(admin),
                Some(&run_request()),
            )
            .await
            .expect(StatusCode::CREATED, "requesting a run")
            .field("id");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self
                .call(Method::GET, &format!("/{ws}/runs/{run}"), Some(admin), None)
                .await
                .expect(StatusCode::OK, "reading the run");
            if state.body["status"] == "closed" {
                assert!(state.body["ending"].is_array(), "the run failed: {}", state.body);
                break;
            }
            assert!(Instant::now() < deadline, "the run did not end: {}", state.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (computation, run)
    }

    /// A proposal of the approved `computation`, made by the workspace admin and vetoed by its result
    /// consumer (a participant holding a key): its number.
    async fn vetoed_proposal(&self, users: &HashMap<Who, User>, ws: &str, computation: &str) -> u64 {
        let base = format!("/{ws}/computations/{computation}");
        let proposed = self
            .call(
                Method::POST,
                &format!("{base}/proposals"),
                Some(&users[&Who::WorkspaceAdmin].access),
                Some(&json!({"update": {"datasets": [dataset_named("vetoed.txt")]}})),
            )
            .await
            .expect(StatusCode::CREATED, "proposing a change");
        let number = proposed.body["id"].as_u64().unwrap();
        let consumer = Who::ALL
            .into_iter()
            .find(|who| participation(*who).contains(&ComputationRole::ResultConsumer))
            .unwrap();
        self.call(
            Method::POST,
            &format!("{base}/proposals/{number}/veto"),
            Some(&users[&consumer].access),
            Some(&json!({"reason": "not this dataset"})),
        )
        .await
        .expect(StatusCode::OK, "vetoing a proposal");
        number
    }

    /// Access denials recorded after `after`, each counted with those it reports as suppressed.
    async fn denials_after(&self, after: u64) -> (u64, u64) {
        let log = self.platform().app().log();
        let (mut records, mut denials) = (0, 0);
        for sequence in after + 1..=log.last_sequence().await.unwrap() {
            let Some(commit) = log.commit_at(sequence).await.unwrap() else {
                continue;
            };
            if commit.subject.contains(".access.") {
                for event in &commit.events {
                    records += 1;
                    denials += 1 + event.data["suppressed"].as_u64().unwrap_or(0);
                }
            }
        }
        (records, denials)
    }
}

/// The participants of the fixture computation: each participant principal, by its user id (an
/// address would be a pending invitation until verified, granting nothing).
fn participants() -> Value {
    let list: Vec<Value> = Who::ALL
        .into_iter()
        .filter(|who| !participation(*who).is_empty())
        .map(|who| {
            let roles = participation(who);
            let mut p = json!({
                "id": UserId::for_email(&Email::parse(who.email().unwrap()).unwrap()).to_string(),
                "roles": roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            if roles.iter().any(|r| r.needs_public_key()) {
                p["public_key"] = json!(KEY);
            }
            p
        })
        .collect();
    Value::Array(list)
}

/// A computation that can run: the fixture computation's participants, and [`PROVIDER`] providing the
/// algorithm and the dataset. Who else takes part, and how, is the same as in the fixture computation,
/// so the matrix decides on it the same.
fn runnable(provider: &User) -> Value {
    let mut participants = participants();
    let roles = [
        ComputationRole::AlgorithmProvider,
        ComputationRole::DatasetProvider,
    ];
    participants.as_array_mut().unwrap().push(json!({
        "id": provider.id,
        "roles": roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "public_key": KEY,
    }));
    json!({
        "name": "Runnable",
        "description": "matrix",
        "participants": participants,
        "algorithm": {"provider": provider.id, "hash": "ab".repeat(32), "name": "sum.py"},
        "datasets": [{"provider": provider.id, "hash": "cd".repeat(32), "name": "numbers.txt"}],
    })
}

/// The [`runnable`] computation's dataset under another file name: a change of its manifest.
fn dataset_named(name: &str) -> Value {
    json!({"provider": UserId::for_email(&Email::parse(PROVIDER).unwrap()).to_string(), "hash": "cd".repeat(32), "name": name})
}

/// A consent signature over `manifest_id` with the private half of [`KEY`] (base64).
fn consent_signature(manifest_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sign_ed25519(&consent_message(manifest_id)))
}

/// A bring-your-own backend's settings.
fn backend_settings(name: &str) -> Value {
    json!({"name": name, "driver": {"kind": "byo"}, "platforms": ["sev_snp"], "capacity": 4})
}

/// A CVM that no backend carries the labels for.
fn cvm_request() -> Value {
    json!({"vcpus": 1, "memory_mib": 512, "platform": "sev_snp", "ttl_seconds": 3600, "labels": {"zone": "nowhere"}})
}

/// A run on a CVM that no backend carries the labels for: it fails as soon as the CVM does, and is
/// cleaned up and closed, and so is every run that tries it again (on a CVM made the same).
fn run_request() -> Value {
    json!({"cvm": cvm_request()})
}

fn definition(name: &str) -> Value {
    json!({"name": name, "description": "matrix", "participants": participants()})
}

// ---------------------------------------------------------------------------------------------------
// The test

/// One call and how it went.
struct Case {
    route: String,
    who: &'static str,
    expected: Outcome,
    wanted: StatusCode,
    status: StatusCode,
    body: Value,
    /// For `GET /workspaces`: the names of the workspaces the matrix lets the caller read, and of those
    /// listed.
    listing: Option<(BTreeSet<String>, BTreeSet<String>)>,
}

impl Case {
    fn holds(&self) -> bool {
        if self.status != self.wanted {
            return false;
        }
        if let Some((readable, listed)) = &self.listing
            && readable != listed
        {
            return false;
        }
        let detail = self.body["detail"].as_str().unwrap_or_default();
        match self.expected {
            Outcome::Forbidden(Some(p)) => detail.contains(&format!("`{p}`")),
            Outcome::Forbidden(None) => detail.contains("session"),
            _ => true,
        }
    }

    fn denied(&self) -> bool {
        matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        )
    }
}

/// The answers as a grid, route by principal (`!` marks an answer that breaks the matrix).
fn grid(cases: &[Case]) -> String {
    let mut out = format!("{:<46}", "route");
    for who in Who::ALL {
        write!(out, " {:>5}", who.short()).unwrap();
    }
    let mut rows: Vec<&str> = Vec::new();
    for case in cases {
        if !rows.contains(&case.route.as_str()) {
            rows.push(&case.route);
        }
    }
    for route in rows {
        write!(out, "\n{route:<46}").unwrap();
        for who in Who::ALL {
            let cell = cases
                .iter()
                .find(|c| c.route == route && c.who == who.name())
                .map(|c| format!("{}{}", if c.holds() { "" } else { "!" }, c.status.as_u16()))
                .unwrap_or_default();
            write!(out, " {cell:>5}").unwrap();
        }
    }
    out
}

fn wanted(route: Route, expected: Outcome) -> StatusCode {
    match expected {
        Outcome::Allowed => route.success(),
        Outcome::Unauthenticated => StatusCode::UNAUTHORIZED,
        Outcome::NotFound => StatusCode::NOT_FOUND,
        Outcome::Forbidden(_) => StatusCode::FORBIDDEN,
    }
}

/// What the cases share, and change between them.
struct Scene {
    main: Fixture,
    /// The id and name of each of [`PLACES`].
    places: Vec<(Place, String, &'static str)>,
    foreign_key: String,
    victim: User,
    victim_is_member: bool,
    victim_is_auditor: bool,
    /// A participant's certificate signing request (made by openssl), signed by every allowed case.
    csr: String,
    /// A backend of the platform.
    platform_backend: String,
    /// The fixture workspace's [`runnable`] computation, and a run of it that has ended.
    runnable: String,
    run: String,
    /// A proposal of the runnable computation that a participant vetoed.
    vetoed: u64,
}

/// The request of case `n` of `route` against `fx`, with what it needs made first (as the workspace
/// admin): a computation, role or invitation of its own when the case may destroy it.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    prism: &Prism,
    users: &HashMap<Who, User>,
    scene: &mut Scene,
    route: Route,
    who: Who,
    bearer: Option<&str>,
    n: usize,
    fx: &Fixture,
) -> (Method, String, Option<Value>) {
    let admin = &users[&Who::WorkspaceAdmin].access;
    // An asset change that is to succeed changes an asset of the caller's own; a refused one the
    // fixture's.
    let own_asset = || async {
        match bearer {
            Some(bearer) if expect(who, &route.acts()) == Outcome::Allowed => {
                prism.asset(bearer, &fx.ws, &format!("case-{n}")).await
            }
            _ => fx.asset.clone(),
        }
    };
    let (ws, c, seq, serial) = (&fx.ws, &fx.computation, fx.sequence, &fx.serial);
    let victim = scene.victim.id.clone();
    match route {
        Route::ListWorkspaces => (
            Method::GET,
            format!("/workspaces?limit=100&min_sequence={seq}"),
            None,
        ),
        Route::GetWorkspace => (Method::GET, format!("/workspaces/{ws}?min_sequence={seq}"), None),
        Route::ListComputations => (
            Method::GET,
            format!("/{ws}/computations?min_sequence={seq}"),
            None,
        ),
        Route::GetComputation => (
            Method::GET,
            format!("/{ws}/computations/{c}?min_sequence={seq}"),
            None,
        ),
        Route::ListMembers => (
            Method::GET,
            format!("/workspaces/{ws}/members?min_sequence={seq}"),
            None,
        ),
        Route::ListRoles => (
            Method::GET,
            format!("/workspaces/{ws}/roles?min_sequence={seq}"),
            None,
        ),
        Route::ListInvitations => (
            Method::GET,
            format!("/workspaces/{ws}/invitations?min_sequence={seq}"),
            None,
        ),
        Route::ListReactions => (Method::GET, "/operations/reactions".into(), None),
        Route::Quarantine => (Method::GET, "/operations/quarantine".into(), None),
        Route::ReplayAggregate => (Method::GET, format!("/operations/replay/workspace/{ws}"), None),
        Route::PlatformSecurityEvents => (Method::GET, "/operations/security-events".into(), None),
        Route::SecurityEvents => (Method::GET, format!("/{ws}/security-events"), None),
        Route::ListUsers => (Method::GET, "/users".into(), None),
        Route::CreateWorkspace => (
            Method::POST,
            "/workspaces".into(),
            Some(json!({"name": format!("Case {n}")})),
        ),
        Route::UpdateWorkspace => (
            Method::PATCH,
            format!("/workspaces/{ws}"),
            Some(json!({"description": format!("changed by case {n}")})),
        ),
        Route::ArchiveWorkspace => (Method::POST, format!("/workspaces/{ws}/archive"), None),
        Route::CreateComputation => (
            Method::POST,
            format!("/{ws}/computations"),
            Some(definition(&format!("Case {n}"))),
        ),
        Route::ImportComputation => (
            Method::POST,
            format!("/{ws}/computations/import"),
            Some(json!({
                "format": "prism.computation.v1",
                "computation": definition(&format!("Case {n}")),
                "change_threshold": "all"
            })),
        ),
        Route::ExportComputation => (Method::GET, format!("/{ws}/computations/{c}/export"), None),
        Route::UpdateComputation => (
            Method::PATCH,
            format!("/{ws}/computations/{c}"),
            Some(json!({"description": format!("changed by case {n}")})),
        ),
        // The same participants: changing who takes part is asked for all the same.
        Route::UpdateParticipants => (
            Method::PATCH,
            format!("/{ws}/computations/{c}"),
            Some(json!({"description": format!("changed by case {n}"), "participants": participants()})),
        ),
        Route::ArchiveComputation => {
            let own = prism.computation(admin, ws, &format!("Case {n}")).await;
            (Method::DELETE, format!("/{ws}/computations/{own}"), None)
        }
        Route::Invite => (
            Method::POST,
            format!("/workspaces/{ws}/invitations"),
            Some(json!({"email": format!("invitee-{n}@example.org"), "role": "member"})),
        ),
        Route::ResendInvitation | Route::RevokeInvitation => {
            let body = json!({"email": format!("pending-{n}@example.org"), "role": "member"});
            let invitation = prism
                .call(
                    Method::POST,
                    &format!("/workspaces/{ws}/invitations"),
                    Some(admin),
                    Some(&body),
                )
                .await
                .expect(StatusCode::CREATED, "invitation")
                .field("id");
            if route == Route::ResendInvitation {
                let path = format!("/workspaces/{ws}/invitations/{invitation}/resend");
                (Method::POST, path, None)
            } else {
                let path = format!("/workspaces/{ws}/invitations/{invitation}");
                (Method::DELETE, path, None)
            }
        }
        Route::DefineRole => (
            Method::PUT,
            format!("/workspaces/{ws}/roles/defined-{n}"),
            Some(json!({"permissions": ["computation.read"]})),
        ),
        Route::DeleteRole => {
            let name = format!("scratch-{n}");
            prism
                .define(admin, ws, &name, &[Permission::ComputationRead])
                .await;
            (Method::DELETE, format!("/workspaces/{ws}/roles/{name}"), None)
        }
        Route::ChangeRole => {
            // Every allowed change is a change: the auditor role on and off.
            let custom: &[&str] = if scene.victim_is_auditor { &[] } else { &[AUDITOR] };
            (
                Method::PATCH,
                format!("/workspaces/{ws}/members/{victim}"),
                Some(json!({"role": "member", "custom_roles": custom})),
            )
        }
        Route::RemoveMember => {
            if !scene.victim_is_member {
                prism
                    .join(admin, ws, &scene.victim, WorkspaceRole::Member, &[])
                    .await;
                scene.victim_is_member = true;
                scene.victim_is_auditor = false;
            }
            (Method::DELETE, format!("/workspaces/{ws}/members/{victim}"), None)
        }
        Route::CreateApiKey => {
            let permissions: Vec<&str> = KEY_REQUEST.iter().map(|p| p.as_str()).collect();
            (
                Method::POST,
                "/users/me/api-keys".into(),
                Some(json!({"workspace": ws, "name": format!("case {n}"), "permissions": permissions})),
            )
        }
        Route::ListCertificates => (Method::GET, format!("/{ws}/certs?min_sequence={seq}"), None),
        Route::GetCertificate => (
            Method::GET,
            format!("/{ws}/certs/{serial}?min_sequence={seq}"),
            None,
        ),
        Route::IssueCertificate => (
            Method::POST,
            format!("/{ws}/certs/issue/cvm/case-{n}"),
            Some(json!({"ip_addresses": ["10.0.0.2"]})),
        ),
        Route::SignCertificateRequest => (
            Method::POST,
            format!("/{ws}/certs/csrs/user/case-{n}"),
            Some(json!({"csr": scene.csr.clone()})),
        ),
        Route::RenewCertificate => (Method::PATCH, format!("/{ws}/certs/{serial}/renew"), None),
        Route::CertificateDownloadToken => {
            (Method::POST, format!("/{ws}/certs/{serial}/download/token"), None)
        }
        Route::RevokeCertificate => {
            let own = prism.certificate(admin, ws, &format!("case-{n}")).await;
            (Method::PATCH, format!("/{ws}/certs/{own}/revoke"), None)
        }
        Route::RevokeEntityCertificates => {
            prism.certificate(admin, ws, &format!("entity-{n}")).await;
            (Method::DELETE, format!("/{ws}/certs?entity_id=entity-{n}"), None)
        }
        Route::ListBackends => (Method::GET, format!("/{ws}/backends?min_sequence={seq}"), None),
        Route::GetBackend => (
            Method::GET,
            format!("/{ws}/backends/{}?min_sequence={seq}", fx.backend),
            None,
        ),
        Route::RegisterBackend => (
            Method::POST,
            format!("/{ws}/backends"),
            Some(backend_settings(&format!("case-{n}"))),
        ),
        // The same settings: a change that changes nothing is asked for all the same.
        Route::UpdateBackend => (
            Method::PUT,
            format!("/{ws}/backends/{}", fx.backend),
            Some(backend_settings("fixture")),
        ),
        Route::RemoveBackend => {
            let own = prism.backend(admin, ws, &format!("case-{n}")).await;
            (Method::DELETE, format!("/{ws}/backends/{own}"), None)
        }
        Route::ListPlatformBackends => (Method::GET, "/backends".into(), None),
        Route::GetPlatformBackend => (Method::GET, format!("/backends/{}", scene.platform_backend), None),
        Route::RegisterPlatformBackend => (
            Method::POST,
            "/backends".into(),
            Some(backend_settings(&format!("case-{n}"))),
        ),
        Route::UpdatePlatformBackend => (
            Method::PUT,
            format!("/backends/{}", scene.platform_backend),
            Some(backend_settings("platform")),
        ),
        Route::RemovePlatformBackend => {
            let own = prism.platform_backend(&format!("case-{n}")).await;
            (Method::DELETE, format!("/backends/{own}"), None)
        }
        Route::ListCvms => (Method::GET, format!("/{ws}/cvms?min_sequence={seq}"), None),
        Route::GetCvm => (
            Method::GET,
            format!("/{ws}/cvms/{}?min_sequence={seq}", fx.cvm),
            None,
        ),
        Route::CreateCvm => (Method::POST, format!("/{ws}/cvms"), Some(cvm_request())),
        Route::ListCvmAttestations => (
            Method::GET,
            format!("/{ws}/cvms/{}/attestations?min_sequence={seq}", fx.cvm),
            None,
        ),
        Route::GetAttestationPolicy => (
            Method::GET,
            format!("/{ws}/computations/{c}/attestation-policy"),
            None,
        ),
        // A new version each case (the same policy again would change nothing, and answer the same).
        Route::SetAttestationPolicy => (
            Method::PUT,
            format!("/{ws}/computations/{c}/attestation-policy"),
            Some(json!({"sev_snp": {"minimum_guest_svn": n}})),
        ),
        Route::EnrolCvm => (
            Method::POST,
            format!("/{ws}/cvms/{}/enrolment", fx.started_cvm),
            None,
        ),
        // Destroying a CVM that is being destroyed changes nothing and is answered the same.
        Route::DestroyCvm => (Method::DELETE, format!("/{ws}/cvms/{}", fx.cvm), None),
        Route::ListWebhooks => (Method::GET, format!("/{ws}/webhooks?min_sequence={seq}"), None),
        Route::GetWebhook => (
            Method::GET,
            format!("/{ws}/webhooks/{}?min_sequence={seq}", fx.webhook),
            None,
        ),
        Route::RegisterWebhook => (
            Method::POST,
            format!("/{ws}/webhooks"),
            Some(json!({"url": format!("https://hooks.example.org/case-{n}"), "event_types": ["*"]})),
        ),
        Route::UpdateWebhook => (
            Method::PATCH,
            format!("/{ws}/webhooks/{}", fx.webhook),
            Some(json!({"description": format!("case {n}")})),
        ),
        Route::DeleteWebhook => {
            let own = prism.webhook(admin, ws, &format!("case-{n}")).await;
            (Method::DELETE, format!("/{ws}/webhooks/{own}"), None)
        }
        Route::RotateWebhookSecret => (
            Method::POST,
            format!("/{ws}/webhooks/{}/secret", fx.webhook),
            None,
        ),
        Route::ListWebhookDeliveries => (
            Method::GET,
            format!("/{ws}/webhooks/{}/deliveries", fx.webhook),
            None,
        ),
        Route::RetryWebhookDelivery => (
            Method::POST,
            format!("/{ws}/webhooks/{}/deliveries/{}/retry", fx.webhook, fx.delivery),
            None,
        ),
        Route::GetManifest => (
            Method::GET,
            format!("/{ws}/computations/{}/manifest", scene.runnable),
            None,
        ),
        Route::DryRun => (
            Method::POST,
            format!("/{ws}/computations/{}/dry-run", scene.runnable),
            Some(json!({})),
        ),
        Route::ListRuns => (Method::GET, format!("/{ws}/runs"), None),
        Route::RunHistory => (Method::GET, format!("/{ws}/runs/history"), None),
        Route::GetRun => (Method::GET, format!("/{ws}/runs/{}", scene.run), None),
        Route::RunEvents => (Method::GET, format!("/{ws}/runs/{}/events", scene.run), None),
        Route::StreamEvents => (
            Method::GET,
            format!("/{ws}/events?until=2000-01-01T00:00:00Z"),
            None,
        ),
        Route::RunLogs => (Method::GET, format!("/{ws}/runs/{}/logs", scene.run), None),
        Route::ComputationEvents => (Method::GET, format!("/{ws}/computations/{c}/events"), None),
        Route::ComputationLogs => (Method::GET, format!("/{ws}/computations/{c}/logs"), None),
        Route::RunConnection => (Method::GET, format!("/{ws}/runs/{}/connection", scene.run), None),
        Route::ComputationReport => (
            Method::GET,
            format!("/{ws}/computations/{}/report", scene.runnable),
            None,
        ),
        Route::RunReport => (Method::GET, format!("/{ws}/runs/{}/report", scene.run), None),
        // A well-signed consent to a manifest that is not the computation's: refused (409, naming the
        // current one) for whoever may consent, participant or not, before the signer is looked for.
        Route::Consent => {
            let stale = "00".repeat(32);
            (
                Method::POST,
                format!("/{ws}/computations/{}/consents", scene.runnable),
                Some(json!({"manifest_id": stale, "signature": consent_signature(&stale)})),
            )
        }
        // Every allowed case makes a run, which fails as the fixture's did.
        Route::RequestRun => (
            Method::POST,
            format!("/{ws}/computations/{}/runs", scene.runnable),
            Some(run_request()),
        ),
        Route::GiveReceipt => (
            Method::POST,
            format!("/{ws}/runs/{}/receipts", scene.run),
            Some(json!({
                "kind": "result",
                "file_name": "r".repeat(ASSET_NAME_MAX + 1),
                "sha3_256": "00".repeat(32),
            })),
        ),
        Route::StopRun => (
            Method::POST,
            format!("/{ws}/runs/{}/stop", scene.run),
            Some(json!({"reason": format!("stopped by case {n}")})),
        ),
        // Every allowed case makes a new run naming the ended one, which fails as that did.
        Route::RetryRun => (Method::POST, format!("/{ws}/runs/{}/retry", scene.run), None),
        Route::GetGovernance => (
            Method::GET,
            format!("/{ws}/computations/{}/governance", scene.runnable),
            None,
        ),
        Route::ListProposals => (
            Method::GET,
            format!("/{ws}/computations/{}/proposals", scene.runnable),
            None,
        ),
        Route::GetProposal => (
            Method::GET,
            format!("/{ws}/computations/{}/proposals/{}", scene.runnable, scene.vetoed),
            None,
        ),
        // Every allowed case proposes a change of the approved computation's manifest; nobody who
        // may propose here has a say, so none is adopted and the manifest stays the consented one.
        Route::ProposeChange => (
            Method::POST,
            format!("/{ws}/computations/{}/proposals", scene.runnable),
            Some(json!({"update": {"datasets": [dataset_named(&format!("case-{n}.txt"))]}})),
        ),
        Route::ApproveProposal => (
            Method::POST,
            format!(
                "/{ws}/computations/{}/proposals/{}/approve",
                scene.runnable, scene.vetoed
            ),
            None,
        ),
        Route::VetoProposal => (
            Method::POST,
            format!(
                "/{ws}/computations/{}/proposals/{}/veto",
                scene.runnable, scene.vetoed
            ),
            Some(json!({"reason": format!("vetoed again by case {n}")})),
        ),
        Route::SetChangeThreshold => (
            Method::PUT,
            format!("/{ws}/computations/{}/change-threshold", scene.runnable),
            Some(json!({"threshold": 1})),
        ),
        Route::HaltExecution => (
            Method::POST,
            format!("/{ws}/computations/{}/halt", scene.runnable),
            Some(json!({"reason": "h".repeat(REASON_MAX + 1)})),
        ),
        Route::LiftHalt => (
            Method::DELETE,
            format!("/{ws}/computations/{}/halt", scene.runnable),
            None,
        ),
        Route::ListAssets => (Method::GET, format!("/{ws}/assets?min_sequence={seq}"), None),
        Route::GetAsset => (
            Method::GET,
            format!("/{ws}/assets/{}?min_sequence={seq}", fx.asset),
            None,
        ),
        Route::GetAssetSample => (Method::GET, format!("/{ws}/assets/{}/sample", fx.asset), None),
        Route::RegisterAsset => (
            Method::POST,
            format!("/{ws}/assets"),
            Some(
                json!({"kind": "algorithm", "algorithm_type": "python", "mime_type": "text/x-python",
                        "sha3_256": "01".repeat(32), "file_name": format!("case-{n}.py")}),
            ),
        ),
        Route::UpdateAsset => (
            Method::PATCH,
            format!("/{ws}/assets/{}", own_asset().await),
            Some(json!({"description": format!("changed by case {n}")})),
        ),
        // A JSON string is a sample too (of type `application/json`).
        Route::PutAssetSample => (
            Method::PUT,
            format!("/{ws}/assets/{}/sample", own_asset().await),
            Some(json!(format!("sample of case {n}"))),
        ),
        Route::RemoveAssetSample => (
            Method::DELETE,
            format!("/{ws}/assets/{}/sample", own_asset().await),
            None,
        ),
        Route::ArchiveAsset => (
            Method::DELETE,
            format!("/{ws}/assets/{}", own_asset().await),
            None,
        ),
        Route::LinkAsset => (
            Method::POST,
            format!("/{ws}/computations/{c}/assets"),
            Some(json!({"asset_id": fx.asset})),
        ),
        Route::UnlinkAsset => (
            Method::DELETE,
            format!("/{ws}/computations/{c}/assets/{}", fx.asset),
            None,
        ),
        Route::RetryReaction => {
            // A reaction a worker nobody runs gave up on: retrying it only records the request.
            let failure = ReactionFailed {
                worker: "matrix-test".into(),
                event_id: format!("case-{n}"),
                event_type: "io.prism.matrix.test.v1".into(),
                stream_sequence: 1,
                attempts: 1,
                error: "made up by the matrix test".into(),
                failed_at: Utc::now(),
            };
            prism
                .platform()
                .app()
                .reactions()
                .record_failure(&Caller::service("matrix-test"), failure)
                .await
                .unwrap();
            (
                Method::POST,
                format!("/operations/reactions/matrix-test-case-{n}/retry"),
                None,
            )
        }
    }
}

/// The calls that need no credential at all, made without one.
async fn public_routes(prism: &Prism) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut record = |route: &str, wanted: StatusCode, answer: Answer| {
        cases.push(Case {
            route: route.to_owned(),
            who: Who::Anonymous.name(),
            expected: Outcome::Allowed,
            wanted,
            status: answer.status,
            body: answer.body,
            listing: None,
        });
    };
    let r = prism.call(Method::GET, "/health", None, None).await;
    record("GET /health", StatusCode::OK, r);
    let r = prism
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    record("GET /.well-known/jwks.json", StatusCode::OK, r);
    let email = "newcomer@example.org";
    let password = "newcomer's long password";
    let body = json!({"email": email, "display_name": "Newcomer", "password": password});
    let r = prism.call(Method::POST, "/users", None, Some(&body)).await;
    record("POST /users", StatusCode::CREATED, r);
    let r = Answer::of(prism.sign_in(email, password).await).await;
    record("POST /oauth/token", StatusCode::OK, r);
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_principal_as_the_matrix_says() {
    let started = Instant::now();
    let prism = Prism::start().await;
    let platform_took = started.elapsed();
    let platform_admin = prism.admin_token().to_owned();
    let mut users = HashMap::new();
    for who in Who::ALL {
        if let Some(email) = who.email() {
            users.insert(who, prism.user(email).await);
        }
    }
    let victim = prism.user(VICTIM).await;
    let provider = prism.user(PROVIDER).await;
    // The outsider belongs to a workspace of its own, and to nothing of the fixture's; the workspace
    // admin has another workspace too, which its foreign key is for.
    let mut places = Vec::new();
    for (place, name) in PLACES {
        if let Place::OwnWorkspace(admin) = place {
            let id = prism
                .call(
                    Method::POST,
                    "/workspaces",
                    Some(&users[&admin].access),
                    Some(&json!({"name": name})),
                )
                .await
                .expect(StatusCode::CREATED, "a workspace of one's own")
                .field("id");
            places.push((place, id, name));
        }
    }
    let main = prism.fixture(&users, PLACES[0].1).await;
    assert_eq!(PLACES[0].0, Place::Fixture);
    places.push((Place::Fixture, main.ws.clone(), PLACES[0].1));
    let (owner, place, permissions) = api_key(Who::ForeignKey).unwrap();
    let (_, foreign_ws, _) = places.iter().find(|(p, ..)| *p == place).unwrap();
    let foreign_key = prism.api_key(&users[&owner], foreign_ws, permissions).await;
    prism
        .join(
            &users[&Who::WorkspaceAdmin].access,
            &main.ws,
            &victim,
            WorkspaceRole::Member,
            &[],
        )
        .await;
    let (runnable, run) = prism.ended_run(&users, &provider, &main.ws).await;
    let vetoed = prism.vetoed_proposal(&users, &main.ws, &runnable).await;
    let mut scene = Scene {
        main,
        places,
        foreign_key,
        victim,
        victim_is_member: true,
        victim_is_auditor: false,
        csr: common::openssl_csr("/CN=participant", &[]),
        platform_backend: prism.platform_backend("platform").await,
        runnable,
        run,
        vetoed,
    };
    let set_up = started.elapsed() - platform_took;

    let cases_started = Instant::now();
    let before = prism.platform().app().log().last_sequence().await.unwrap();
    let mut cases = public_routes(&prism).await;
    let mut n = 0;
    for route in Route::ALL {
        for who in Who::ALL {
            n += 1;
            let expected = expect(who, &route.acts());
            // Archiving is final: an archive that is to succeed gets a workspace of its own.
            let fx = if route == Route::ArchiveWorkspace && expected == Outcome::Allowed {
                prism.fixture(&users, &format!("Case {n}")).await
            } else {
                scene.main.clone()
            };
            let bearer = match who {
                Who::Anonymous => None,
                Who::Malformed => Some("not-a-credential".to_owned()),
                Who::PlatformAdmin => Some(platform_admin.clone()),
                Who::ApiKey => Some(fx.key.clone()),
                Who::ForeignKey => Some(scene.foreign_key.clone()),
                user => Some(users[&user].access.clone()),
            };
            let (method, path, body) =
                prepare(&prism, &users, &mut scene, route, who, bearer.as_deref(), n, &fx).await;
            let answer = prism.call(method, &path, bearer.as_deref(), body.as_ref()).await;
            // What a listing shows is read too: exactly the workspaces the matrix lets the caller read
            // (with an API key, its own workspace only).
            let listing = (route == Route::ListWorkspaces && answer.status == StatusCode::OK).then(|| {
                let name = |id: &str| {
                    scene
                        .places
                        .iter()
                        .find(|(_, i, _)| i == id)
                        .map_or_else(|| id.to_owned(), |(_, _, name)| (*name).to_owned())
                };
                let readable = scene
                    .places
                    .iter()
                    .filter(|(place, ..)| {
                        decide(who, Act::Workspace(Permission::WorkspaceRead), *place) == Outcome::Allowed
                    })
                    .map(|(_, _, name)| (*name).to_owned())
                    .collect();
                let listed = answer.body["items"]
                    .as_array()
                    .map(|items| items.iter().filter_map(|w| w["id"].as_str()).map(name).collect())
                    .unwrap_or_default();
                (readable, listed)
            });
            match (route, answer.status) {
                (Route::ChangeRole, StatusCode::OK) => scene.victim_is_auditor = !scene.victim_is_auditor,
                (Route::RemoveMember, StatusCode::NO_CONTENT) => scene.victim_is_member = false,
                _ => {}
            }
            cases.push(Case {
                route: route.label().to_owned(),
                who: who.name(),
                expected,
                wanted: wanted(route, expected),
                status: answer.status,
                body: answer.body,
                listing,
            });
        }
    }
    let cases_took = cases_started.elapsed();

    // Denials beyond the recording rate are counted into the next record: one more denial, after the
    // rate's window, carries the rest.
    let denied = cases.iter().filter(|c| c.denied()).count() as u64;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let flush = prism.call(Method::GET, "/workspaces", None, None).await;
    assert_eq!(flush.status, StatusCode::UNAUTHORIZED, "{}", flush.body);
    let (records, recorded) = prism.denials_after(before).await;

    let mut mismatches = String::new();
    for case in cases.iter().filter(|c| !c.holds()) {
        let body: String = match &case.listing {
            Some((readable, listed)) if readable != listed => {
                format!("listed {listed:?}; the matrix lets it read {readable:?}")
            }
            _ => case.body.to_string().chars().take(240).collect(),
        };
        let expected = match case.expected {
            Outcome::Allowed => format!("allowed ({})", case.wanted.as_u16()),
            other => other.to_string(),
        };
        writeln!(
            mismatches,
            "{:<46} {:<30} {:<42} {:<4} {body}",
            case.route,
            case.who,
            expected,
            case.status.as_u16(),
        )
        .unwrap();
    }
    let allowed = cases.iter().filter(|c| c.expected == Outcome::Allowed).count();
    println!("{}", grid(&cases));
    println!(
        "{} cases ({} routes × {} principals + {} public): {allowed} allowed, {} denied; platform \
         {:.1?}, principals and fixture {:.1?}, cases {:.1?}; {denied} denials answered, {recorded} \
         recorded in {records} records",
        cases.len(),
        Route::ALL.len(),
        Who::ALL.len(),
        cases.len() - Route::ALL.len() * Who::ALL.len(),
        cases.len() - allowed,
        platform_took,
        set_up,
        cases_took,
    );
    assert!(
        mismatches.is_empty(),
        "answers that break the matrix:\n{:<46} {:<30} {:<42} {:<4} body\n{mismatches}",
        "route",
        "principal",
        "expected",
        "got",
    );
    assert!(
        recorded > denied,
        "{denied} denials (and one more to flush the count) but only {recorded} recorded ({records} records)"
    );
    prism.stop().await;
}
