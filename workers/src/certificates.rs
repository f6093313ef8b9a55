//! Certificates over time:
//! * [`CertificateRenewer`] looks, every so often, for active certificates that end soon and renews
//!   them (a new certificate, new serial, same key), and records the expiry of those that have ended.
//!   Time, not an event, makes a certificate due, so this is a loop rather than a reactor; its
//!   commands are keyed by lineage and serial, so several processes looking at once renew once.
//! * [`RetiredComputationRevoker`]: a computation archived → every active certificate issued for it
//!   (entity `computation`, its id) is revoked with reason `cessation_of_operation`, as every ending
//!   leaves no live credential behind.

use prism_app::{App, Caller, CommandOptions, ErrorKind, ReadOptions};
use prism_domain::ComputationId;
use prism_domain::certificate::RevocationReason;
use prism_domain::computation::{Computation, ComputationEvent};
use prism_store::Recorded;
use tokio::sync::watch;
use tracing::info;

use crate::runtime::{ReactionError, Reactor, aggregate_id, caused_by, every};

/// Renews certificates before they end and records the ends of those it did not.
#[derive(Debug, Clone)]
pub struct CertificateRenewer {
    app: App,
}

impl CertificateRenewer {
    pub const NAME: &'static str = "certificate-renewer";

    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Looks every [`prism_app::RenewalPolicy::every`] until `shutdown`; returns at once when the
    /// platform runs no certificate authority. A look that fails (the database is away) is logged and
    /// tried again at the next tick.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let certificates = self.app.certificates();
        let Ok(policy) = certificates.renewal_policy() else {
            return;
        };
        let caller = Caller::service(Self::NAME);
        every(policy.every, shutdown, "look for certificates to renew", || {
            certificates.maintain(&caller, chrono::Utc::now())
        })
        .await;
    }
}

/// Revokes the certificates of an archived computation.
#[derive(Debug, Clone)]
pub struct RetiredComputationRevoker {
    app: App,
}

impl RetiredComputationRevoker {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl Reactor for RetiredComputationRevoker {
    type Aggregate = Computation;
    const NAME: &'static str = "retired-computation-revoker";

    async fn react<'a>(&'a self, recorded: &'a Recorded<ComputationEvent>) -> Result<(), ReactionError> {
        let ComputationEvent::Archived(_) = &recorded.event else {
            return Ok(());
        };
        let meta = &recorded.meta;
        let id: ComputationId = aggregate_id(meta)?;
        let computation = self
            .app
            .repository::<Computation>()
            .view(&id)
            .await
            .map_err(prism_app::AppError::from)?;
        let Some(workspace) = computation.workspace_id else {
            return Err(ReactionError::Fatal(prism_app::AppError::internal(
                "an archived computation has a workspace",
            )));
        };
        // Certificates issued before the archiving must be in the list: read it as of the event.
        let result = self
            .app
            .certificates()
            .revoke_entity(
                &caused_by(meta, Self::NAME),
                &CommandOptions::keyed(meta.id.clone()),
                workspace,
                &meta.aggregate_id,
                RevocationReason::CessationOfOperation,
                ReadOptions::at_least(meta.sequence),
            )
            .await;
        match result {
            Ok(revoked) => {
                info!(computation = %meta.aggregate_id, count = revoked.len(), "revoked an archived computation's certificates");
                Ok(())
            }
            // None to revoke, or no authority on this platform.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
