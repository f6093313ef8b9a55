//! Prism's extension of Cocos's run request, invisible to unmodified agents.
//!
//! A run request from Prism carries, besides the `cvms.ComputationRunReq` fields, field **1000**:
//! the run's manifest in its canonical encoding (`docs/manifest.md`) and every participant's
//! consent signature over its id. It is appended to the encoded request (protobuf merges
//! concatenated messages), so the vendored `.proto` files stay byte-for-byte upstream's, and an
//! agent that does not know field 1000 skips it as an unknown field, as protobuf requires. An agent
//! that does know it (the emulated agent) can check for itself that it runs what everyone agreed
//! to, signed by everyone, before it takes any input.
//!
//! The messages are written with prost's derive rather than in a `.proto` file: three small
//! messages whose only reader and writer is this repository.

use prost::Message as _;

use crate::cvms::ComputationRunReq;

/// The field number of the extension in a run request.
pub const RUN_CONSENT_FIELD: u32 = 1000;

/// One participant's consent: its signature over `prism-consent-v1:<manifest id>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParticipantConsent {
    /// The participant's id as the manifest names it.
    #[prost(string, tag = "1")]
    pub participant: String,
    #[prost(bytes = "vec", tag = "2")]
    pub signature: Vec<u8>,
}

/// The manifest a run executes and every consent to it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunConsent {
    /// The manifest's canonical encoding; its SHA-256 is the manifest id.
    #[prost(bytes = "vec", tag = "1")]
    pub manifest: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub consents: Vec<ParticipantConsent>,
}

/// The view of an encoded run request that sees only Prism's field.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunRequestExtension {
    #[prost(message, optional, tag = "1000")]
    pub consent: Option<RunConsent>,
}

/// `request` encoded with `consent` in field 1000.
pub fn encode_with_consent(request: &ComputationRunReq, consent: Option<&RunConsent>) -> Vec<u8> {
    let mut encoded = request.encode_to_vec();
    if let Some(consent) = consent {
        RunRequestExtension {
            consent: Some(consent.clone()),
        }
        .encode(&mut encoded)
        .expect("a Vec grows as needed");
    }
    encoded
}

/// The consent an encoded run request carries, if any (`None` also for one this cannot read).
pub fn consent_of(encoded: &[u8]) -> Option<RunConsent> {
    RunRequestExtension::decode(encoded)
        .ok()
        .and_then(|extension| extension.consent)
}
