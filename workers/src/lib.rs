//! Workers: durable subscriptions that react to events by calling the application layer.
//!
//! [`Worker`] is the runtime every reactor shares (see [`runtime`]); a reactor receives verified,
//! decoded events of one aggregate type and sends its commands through [`prism_app::App`], naming each
//! after the event that caused it ([`caused_by`] and the event id as idempotency key), so a redelivered
//! event can never apply twice.

mod archiver;
mod attestor;
mod auditor;
mod certificates;
mod conductor;
mod linker;
mod provisioner;
pub mod runtime;
mod webhooks;

pub use archiver::{LateComputationArchiver, WorkspaceArchiver};
pub use attestor::Attestor;
pub use auditor::Auditor;
pub use certificates::{CertificateRenewer, RetiredComputationRevoker};
pub use conductor::{RunConductor, RunCvmWatcher, RunHaltWatcher, RunTimer, run_consent, run_request};
pub use linker::{InvitationLinker, LateInvitationLinker};
pub use provisioner::{BackendHealthChecker, CvmReaper, Provisioner, ProvisioningConfig};
pub use runtime::{ReactionError, Reactor, Worker, WorkerConfig, WorkerError, caused_by};
pub use webhooks::{WebhookConfig, WebhookSender, sign as sign_webhook};
