//! PostgreSQL read models fed from the event log.
//!
//! A [`Projector`] reads the log in stream order from its checkpoint and applies each commit through a
//! [`Projection`] inside one transaction together with the new checkpoint. [`ReadModels`] answers
//! queries and lets a caller wait until a projection has reached a given stream sequence
//! (read-your-writes without sleeping).

mod activity;
mod activity_queries;
mod api_keys;
mod asset_queries;
mod assets;
mod certificate_queries;
mod certificates;
mod computations;
mod cvm_queries;
mod cvms;
mod error;
mod identity_queries;
mod migrate;
mod projection_support;
mod projector;
mod queries;
mod reactions;
mod read_cache;
mod run_queries;
mod runs;
mod security;
mod users;
mod webhooks;
mod workspaces;

pub use activity::{CvmActivityProjection, RunActivityProjection, originator};
pub use activity_queries::{ActivityFilter, ActivityView, LogFilter, LogLineView, SequencePage};
pub use api_keys::ApiKeysProjection;
pub use asset_queries::{AssetFilter, AssetView, SampleView};
pub use assets::AssetsProjection;
pub use certificate_queries::{
    CertificateFilter, CertificateSerialView, CertificateView, DueCertificate, Revocations, RevokedSerial,
};
pub use certificates::CertificatesProjection;
pub use computations::ComputationsProjection;
pub use cvm_queries::{BackendView, CvmFilter, CvmView};
pub use cvms::{BackendsProjection, CvmsProjection};
pub use error::ProjectionError;
pub use identity_queries::{ApiKeyView, CustomRoleView, InvitationView, MemberView, UserView};
pub use migrate::migrate;
pub use projector::{Projection, Projector, RunProjection, reset};
pub use queries::{
    ComputationView, Page, PageRequest, QuarantinedView, ReactionView, ReadModels, WorkspaceView,
};
pub use reactions::ReactionsProjection;
pub use run_queries::{RunDayCount, RunFilter, RunView};
pub use runs::RunsProjection;
pub use security::{
    SECURITY_ATTESTATIONS, SECURITY_DENIALS, SECURITY_SIGN_INS, SecurityAttestationsProjection,
    SecurityDenialsProjection, SecurityEventView, SecurityFilter, SecuritySignInsProjection,
};
pub use users::UsersProjection;
pub use webhooks::{
    Attempt, DELIVERY_FAILED_TYPE, DeliveryView, DueDelivery, DueHandshake, WEBHOOKS, WebhookFanOut,
    WebhookQueue, WebhookView,
};
pub use workspaces::WorkspacesProjection;

/// Name of the workspaces projection (its checkpoint row and its `prism projections rebuild` name).
pub const WORKSPACES: &str = "workspaces";
/// Name of the reactions projection (failed reactions and their retries).
pub const REACTIONS: &str = "reactions";
/// Name of the computations projection (computations and participants).
pub const COMPUTATIONS: &str = "computations";
/// Name of the users projection (accounts and their linked OpenID Connect identities).
pub const USERS: &str = "users";
/// Name of the API keys projection.
pub const API_KEYS: &str = "api_keys";
/// Name of the certificates projection (lineages and their serials, with revocations).
pub const CERTIFICATES: &str = "certificates";
/// Name of the backends projection.
pub const BACKENDS: &str = "backends";
/// Name of the CVMs projection (state, backend, cost and statistics of each CVM).
pub const CVMS: &str = "cvms";
/// Name of the assets projection (algorithm and dataset records; which computations link them is the
/// computations projection's).
pub const ASSETS: &str = "assets";
/// Name of the runs projection (where each run of a computation is, its CVM and how it ended).
pub const RUNS: &str = "runs";
/// Name of the projection of every run's events (the events API of computations and runs).
pub const RUN_ACTIVITY: &str = "run_activity";
/// Name of the projection of the events of every run's CVM, with its agent's log lines.
pub const CVM_ACTIVITY: &str = "cvm_activity";
