//! The authorisation hook every service calls before it acts. Identity (users, API keys, memberships,
//! roles) plugs in here; until then [`AllowAll`] lets every caller do everything.

use async_trait::async_trait;
use prism_domain::WorkspaceId;

use crate::{AppError, Caller};

/// What a caller asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The aggregate type (`workspace`, `computation`, …).
    pub aggregate: &'static str,
    /// The operation (`create`, `update`, `archive`, `read`, `list`, …).
    pub operation: &'static str,
    /// The workspace it happens in, when it happens in one.
    pub workspace: Option<WorkspaceId>,
    /// The aggregate's id, when the action names one.
    pub id: Option<String>,
}

#[async_trait]
pub trait Authorizer: Send + Sync + std::fmt::Debug + 'static {
    /// `Ok` to go on; an [`AppError`] of kind `Unauthenticated` or `Forbidden` otherwise.
    async fn authorize(&self, caller: &Caller, action: &Action) -> Result<(), AppError>;
}

/// Every caller may do everything: the platform has no identity yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _: &Caller, _: &Action) -> Result<(), AppError> {
        Ok(())
    }
}
