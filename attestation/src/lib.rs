//! Server-side verification of confidential-VM attestation evidence.
//!
//! Laid out as Trustee's verifier crate: one module per TEE behind one [`Verifier`] trait, each
//! turning evidence into typed [`Claims`] (decode, signatures, certificate chain, binding to what
//! was asked for), then a [`Policy`] appraises the claims, and the [`Appraiser`] gives a
//! [`Verdict`] naming every failing field with its expected and actual value.
//!
//! - [`snp`]: AMD SEV-SNP with the `sev` crate (report format, AMD's built-in roots, the RSA-PSS
//!   ARK → ASK → VCEK chain) and ring (the report's ECDSA P-384 signature), the VCEK's TCB and
//!   chip id against the report; certificates from the evidence or a local cache, no network.
//! - `tdx` (feature `tdx`, off by default: tdx-quote is AGPL-3.0-or-later and the default build
//!   stays Apache-2.0): Intel TDX quotes — quote and QE report signatures, the PCK chain to Intel's
//!   SGX root CA; no TCB info, CRL or QE identity (see the module). Without the feature a machine
//!   declaring TDX is refused, naming why.
//! - [`none`]: machines without a TEE (the emulated agent, a real agent in NoCC mode). Their
//!   evidence is never called verified: it is accepted only in [`Mode::InsecureDevelopment`], and
//!   the verdict then says so.
//!
//! [`binding`] says what report data a fresh request expects (a single-use platform nonce bound to
//! the agent's TLS key) and what the agent's start-up report carries; [`ear`] issues a verdict as
//! a signed IETF RATS attestation result (EAR JWT). [`eat`] and [`sevsnp`] are the wire formats
//! in which Cocos agents deliver evidence.
//!
//! **Architecture Invariant:** nothing here performs I/O except reading a configured certificate
//! cache directory ([`snp::VcekCache`]); no network, no clock (callers pass the time).

pub mod binding;
pub mod claims;
pub mod ear;
pub mod eat;
pub mod evidence;
mod hexbytes;
pub mod none;
pub mod policy;
pub mod sevsnp;
pub mod snp;
#[cfg(feature = "tdx")]
pub mod tdx;
pub mod verdict;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use binding::{Binding, Expected, Nonce};
pub use claims::Claims;
pub use evidence::{Evidence, EvidenceKind};
pub use hexbytes::{Hex, HexBytes};
pub use policy::Policy;
pub use verdict::{Appraiser, Failure, Mode, Outcome, Verdict};

/// The confidential platform a machine declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// AMD SEV-SNP.
    SevSnp,
    /// Intel TDX.
    Tdx,
    /// No hardware protection: the emulated agent or a real agent in NoCC mode.
    None,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Platform::SevSnp => "sev_snp",
            Platform::Tdx => "tdx",
            Platform::None => "none",
        })
    }
}

/// One TEE's verifier: evidence → claims. It checks what the evidence proves by itself —
/// format, signatures, the chain to a trusted root, the binding to `expected` — and refuses with
/// the first [`Failure`]; the [`Policy`] is applied to the claims afterwards.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    fn evaluate(&self, evidence: &Evidence, expected: &Expected) -> Result<Claims, Failure>;
}
