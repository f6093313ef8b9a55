//! The agents' channel: the platform's side of Cocos's `cvms.Service/Process`, which every CVM's
//! agent dials over mutual TLS (served by `prism-tls` with ALPN `h2`). An agent VM opens two streams:
//! the agent's own (its start-up attestation report, then its answers) and the log forwarder's
//! (`connection-type: log-forwarder`: every log line and event; it ignores what it is sent, so it is
//! sent nothing). The CVM is the one its client certificate was issued for, and the `job-id` it sends
//! must name that CVM. Every message of both streams becomes an event of the CVM; one the agent sends
//! again after a reconnect is recorded once. Workers send run, state, stop and disconnect requests
//! through [`AgentChannel::send`]. [`attest_fresh`] asks an agent for fresh evidence over its
//! participants' API, bound to a single-use nonce and the key of the TLS connection to it.

pub mod attest;
mod channel;
mod dial;
mod messages;
pub mod participant;

pub use attest::{AttestError, attest_fresh};
pub use channel::{AgentChannel, ChannelConfig, SendError, ServerRequest};
pub use dial::{AgentEndpoint, DialError, dial};
pub use messages::received;
