//! Prism's domain: the rules of workspaces and computations, and nothing else.
//!
//! Every aggregate is a pure state machine: [`Aggregate::decide`] turns a command into the events that
//! record the decision (or a domain rejection), and [`Aggregate::apply`] folds an event into the state.
//! Time, the acting principal and fresh ids come in through [`CommandContext`] and the command itself,
//! so the same inputs always give the same decision.

pub mod access;
pub mod aggregate;
pub mod api_key;
pub mod asset;
pub mod authority;
pub mod backend;
pub mod certificate;
pub mod computation;
pub mod cvm;
pub mod denial;
pub mod ids;
pub mod ledger;
pub mod reaction;
pub mod run;
pub mod schema;
pub mod session;
pub mod testing;
pub mod user;
pub mod values;
pub mod webhook;
pub mod workspace;

pub use aggregate::{Aggregate, CommandContext, DomainEvent, Rejection, RejectionKind, UpcastError};
pub use ids::{
    Actor, ApiKeyId, AssetId, BackendId, CertificateId, ComputationId, CvmId, InvitationId, ParticipantId,
    RunId, SessionId, UserId, WebhookId, WorkspaceId,
};
