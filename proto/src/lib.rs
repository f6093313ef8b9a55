//! Wire contracts of Cocos (`ultravioletrs/cocos`, tag `v0.10.2`) compiled to Rust, and Prism's
//! own extensions of them.
//!
//! The Cocos `.proto` sources are vendored unchanged under `proto/cocos/`, Prism's under
//! `proto/prism/` (see `proto/README.md`); each protobuf package is exposed as one module here,
//! with prost messages and tonic clients/servers generated at build time.
//!
//! | proto package    | module              | service                                                   |
//! |------------------|---------------------|-----------------------------------------------------------|
//! | `manager`        | [`manager`]         | `ManagerService` (Prism is the client)                    |
//! | `cvms`           | [`cvms`]            | `Service` (bidi `Process`; Prism is the server)           |
//! | `agent`          | [`agent`]           | `AgentService` (Prism is the client)                      |
//! | `attestation.v1` | [`attestation::v1`] | `AttestationService` (in-CVM attestation provider)        |
//! | `prism.agent.v1` | [`prism_agent::v1`] | `ParticipantAuth` (Prism's; the emulated agent serves it) |
//!
//! Well-known types: `google.protobuf.Timestamp` maps to [`prost_types::Timestamp`]
//! (re-exported as [`prost_types`]) and `google.protobuf.Empty` maps to `()`.

pub use prost;
pub use prost_types;
pub use tonic;

pub mod chunks;
pub mod prism;

// The `#[allow(clippy::all)]` attributes below cover only the generated code pulled
// in by `include_proto!` (e.g. `large_enum_variant` on `cvms::ServerStreamMessage`).

/// Cocos Manager API (`manager/manager.proto`, package `manager`).
#[allow(clippy::all)]
pub mod manager {
    tonic::include_proto!("manager");
}

/// Agent → CVMS control stream (`agent/cvms/cvms.proto`, package `cvms`).
#[allow(clippy::all)]
pub mod cvms {
    tonic::include_proto!("cvms");
}

/// Agent user-facing API (`agent/agent.proto`, package `agent`).
#[allow(clippy::all)]
pub mod agent {
    tonic::include_proto!("agent");
}

/// Attestation packages (`internal/proto/attestation/...`).
pub mod attestation {
    /// Attestation service (`internal/proto/attestation/v1/attestation.proto`, package `attestation.v1`).
    #[allow(clippy::all)]
    pub mod v1 {
        tonic::include_proto!("attestation.v1");
    }
}

/// Prism's extension of the agent's participants' API (`prism/agent/v1/participant_auth.proto`,
/// package `prism.agent.v1`): participants sign a fresh challenge bound to the role and to the
/// agent's TLS key instead of Cocos's replayable signature over the role alone. The emulated agent
/// serves it beside `agent.AgentService` on the same port; an unmodified Cocos agent answers
/// `UNIMPLEMENTED`, and clients fall back to Cocos's scheme there.
///
/// The message format is part of the wire contract, so both sides take it from here
/// ([`signed_message`](prism_agent::signed_message)) rather than each spelling it.
pub mod prism_agent {
    /// `prism.agent.v1`: the `ParticipantAuth` service and its messages.
    #[allow(clippy::all)]
    pub mod v1 {
        tonic::include_proto!("prism.agent.v1");
    }

    /// The label that starts every signed message; a new format gets a new label, so a signature
    /// made for one can never be read as the other.
    pub const SCHEME: &str = "prism-agent-auth-v1";
    /// gRPC metadata of a call: base64 (standard, padded) of the challenge it answers.
    pub const CHALLENGE_METADATA: &str = "prism-challenge";
    /// gRPC metadata of a call: base64 of the signature, under the name Cocos already uses.
    pub const SIGNATURE_METADATA: &str = "signature";
    /// The length of a challenge, in bytes.
    pub const CHALLENGE_LEN: usize = 32;

    /// What a participant signs to make one call of `role` (`algorithm-provider`, `data-provider`,
    /// `consumer`): `prism-agent-auth-v1:<role>:<hex challenge>:<hex agent key digest>`, where the
    /// digest is the SHA-256 of the SubjectPublicKeyInfo (DER) of the agent's TLS certificate as the
    /// participant's connection saw it — empty when there is no TLS. The role keeps a signature for
    /// one call from opening another; the challenge makes it single-use; the agent's key keeps an
    /// agent (or whoever sits between) from relaying it to another agent.
    pub fn signed_message(role: &str, challenge: &[u8], agent_key_sha256: Option<&[u8; 32]>) -> Vec<u8> {
        let key = agent_key_sha256.map(|digest| hex(digest)).unwrap_or_default();
        format!("{SCHEME}:{role}:{}:{key}", hex(challenge)).into_bytes()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}
