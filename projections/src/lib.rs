//! PostgreSQL read models fed from the event log.
//!
//! A [`Projector`] reads the log in stream order from its checkpoint and applies each commit through a
//! [`Projection`] inside one transaction together with the new checkpoint. [`ReadModels`] answers
//! queries and lets a caller wait until a projection has reached a given stream sequence
//! (read-your-writes without sleeping).

mod computations;
mod error;
mod migrate;
mod projection_support;
mod projector;
mod queries;
mod reactions;
mod read_cache;
mod workspaces;

pub use computations::ComputationsProjection;
pub use error::ProjectionError;
pub use migrate::migrate;
pub use projector::{Projection, Projector, RunProjection, rebuild};
pub use queries::{
    ComputationView, Page, PageRequest, QuarantinedView, ReactionView, ReadModels, WorkspaceView,
};
pub use reactions::ReactionsProjection;
pub use workspaces::WorkspacesProjection;

/// Name of the workspaces projection (its checkpoint row and its `prism projections rebuild` name).
pub const WORKSPACES: &str = "workspaces";
/// Name of the reactions projection (failed reactions and their retries).
pub const REACTIONS: &str = "reactions";
/// Name of the computations projection (computations and participants).
pub const COMPUTATIONS: &str = "computations";
