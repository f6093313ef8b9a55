//! What operators watch: commits readers refused to apply.

use prism_domain::access::Permission;
use prism_projections::QuarantinedView;

use crate::{Action, App, AppError, Caller};

#[derive(Debug, Clone, Copy)]
pub struct Operations<'a> {
    app: &'a App,
}

impl<'a> Operations<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// Quarantined commits, newest first.
    pub async fn quarantined(&self, caller: &Caller, limit: u32) -> Result<Vec<QuarantinedView>, AppError> {
        self.app
            .authorize(caller, Action::platform(Permission::PlatformOperate))
            .await?;
        Ok(self.app.read_models()?.quarantined(limit).await?)
    }
}
