//! Wire contracts of Cocos (`ultravioletrs/cocos`, tag `v0.10.2`) compiled to Rust.
//!
//! The `.proto` sources are vendored unchanged under `proto/cocos/` (see
//! `proto/README.md`); each protobuf package is exposed as one module here,
//! with prost messages and tonic clients/servers generated at build time.
//!
//! | proto package    | module              | service                                                 |
//! |------------------|---------------------|---------------------------------------------------------|
//! | `manager`        | [`manager`]         | `ManagerService` (Prism is the client)                  |
//! | `cvms`           | [`cvms`]            | `Service` (bidi `Process`; Prism is the server)         |
//! | `agent`          | [`agent`]           | `AgentService` (Prism is the client)                    |
//! | `attestation.v1` | [`attestation::v1`] | `AttestationService` (in-CVM attestation provider)      |
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
