//! [`Attestor`] appraises the evidence CVMs' agents send: each start-up report the agents' channel
//! records (an `attestation_report` agent message) is appraised and its verdict recorded on the CVM
//! ([`prism_app::Attestations::appraise_startup`]), keyed by the message's event so that a
//! redelivery records it once.

use prism_app::App;
use prism_domain::CvmId;
use prism_domain::cvm::{AgentMessage, Cvm, CvmEvent};
use prism_store::Recorded;
use tracing::{info, warn};

use crate::runtime::{ReactionError, Reactor, aggregate_id, caused_by};

/// Appraises agents' start-up reports.
#[derive(Debug, Clone)]
pub struct Attestor {
    app: App,
}

impl Attestor {
    pub const NAME: &'static str = "attestor";

    pub fn new(app: App) -> Self {
        Self { app }
    }
}

impl Reactor for Attestor {
    type Aggregate = Cvm;
    const NAME: &'static str = Attestor::NAME;

    async fn react<'a>(&'a self, recorded: &'a Recorded<CvmEvent>) -> Result<(), ReactionError> {
        let CvmEvent::AgentMessageReceived(received) = &recorded.event else {
            return Ok(());
        };
        let AgentMessage::AttestationReport {
            report_base64,
            certificate_serial,
        } = &received.message
        else {
            return Ok(());
        };
        let meta = &recorded.meta;
        let cvm: CvmId = aggregate_id(meta)?;
        if report_base64.is_empty() {
            // An agent without a client certificate sends an empty report: nothing to appraise.
            warn!(%cvm, "the agent's start-up report is empty: no evidence to appraise");
            return Ok(());
        }
        let Some(verdict) = self
            .app
            .attestations()
            .appraise_startup(
                &caused_by(meta, Self::NAME),
                cvm,
                report_base64,
                certificate_serial,
                &format!("{}:appraise", meta.id),
            )
            .await?
        else {
            // The CVM is gone since (destroyed, failed): nothing left to attest to.
            return Ok(());
        };
        match verdict.reason() {
            None => info!(%cvm, outcome = ?verdict.outcome, "start-up evidence appraised"),
            Some(failure) => warn!(%cvm, %failure, "start-up evidence refused"),
        }
        Ok(())
    }
}
