//! Configuration, read from the same environment variables as the real agent
//! (`cmd/agent/main.go:51-63`, `pkg/clients/clients.go:25-31` with prefix `AGENT_CVM_GRPC_`),
//! plus the emulator's own (`PRISM_EMULATED_AGENT_*`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// Where the real agent's ingress listens (`pkg/ingress/proxy.go:77-79`).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7002";
/// The real agent's default control-plane address (`pkg/clients/clients.go:26`).
pub const DEFAULT_CVM_URL: &str = "localhost:7001";
/// How long the agent waits before dialling again after losing its stream
/// (`agent/cvms/api/grpc/client.go:27`).
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a participant's challenge stays good: long enough for a slow client to sign and call,
/// short enough that one left unused is soon worthless.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(60);

/// The levels `AGENT_LOG_LEVEL` accepts, as Go's `slog.Level.UnmarshalText` does (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The name `slog.Level.String()` gives, which the real agent puts in `AgentLog.level`.
    pub fn wire_name(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// Everything the emulated agent needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AGENT_CVM_GRPC_URL`: `host:port` of the control plane's `cvms.Service`.
    pub cvm_url: String,
    /// `AGENT_CVM_GRPC_CLIENT_CERT`: PEM file of the agent's client certificate.
    pub client_cert: Option<PathBuf>,
    /// `AGENT_CVM_GRPC_CLIENT_KEY`: PEM file of its private key.
    pub client_key: Option<PathBuf>,
    /// `AGENT_CVM_GRPC_SERVER_CA_CERTS`: PEM file of the CAs the control plane's certificate must chain to.
    pub server_ca_certs: Option<PathBuf>,
    /// `AGENT_CVM_ID`: sent as gRPC metadata `job-id` on both streams when not empty.
    pub cvm_id: String,
    /// `AGENT_LOG_LEVEL` (default `debug`, as upstream): the lowest level sent as `AgentLog`.
    pub log_level: LogLevel,
    /// `PRISM_EMULATED_AGENT_LISTEN` (default `0.0.0.0:7002`): where participants reach `AgentService`.
    pub listen: SocketAddr,
    /// `PRISM_EMULATED_AGENT_DIR`: the agent's directory (pending messages, the test attestation chain,
    /// the computation's private directory). Unset: a temporary directory removed at exit.
    pub work_dir: Option<PathBuf>,
    /// Pause between losing the agent's stream and dialling again ([`RECONNECT_INTERVAL`]).
    pub reconnect_interval: Duration,
    /// `PRISM_EMULATED_AGENT_REQUIRE_CONSENT` (`1` or `true`): refuse a run request that does not
    /// carry Prism's manifest and every participant's consent ([`crate::consent`]). Upstream's agent
    /// knows no consent; unset, the emulated agent takes bare requests as upstream does.
    pub require_consent: bool,
    /// `PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH` (`1` or `true`): also accept upstream's participant
    /// signature over the role string alone, for scenarios that must behave as the real agent.
    /// Unset, a call must carry a signed challenge of `prism.agent.v1.ParticipantAuth`
    /// ([`crate::auth`]), because upstream's signature never changes and can be replayed.
    pub accept_cocos_auth: bool,
    /// How long a participant's challenge is accepted ([`CHALLENGE_LIFETIME`]).
    pub challenge_lifetime: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (an environment in a map, for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let non_empty = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let flag = |name: &str| non_empty(name).is_some_and(|value| matches!(value.as_str(), "1" | "true"));
        let log_level_text = non_empty("AGENT_LOG_LEVEL").unwrap_or_else(|| "debug".into());
        let log_level = LogLevel::parse(&log_level_text).ok_or_else(|| {
            Error::Config(format!(
                "AGENT_LOG_LEVEL={log_level_text} is not one of debug, info, warn, error"
            ))
        })?;
        let listen_text = non_empty("PRISM_EMULATED_AGENT_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text.parse().map_err(|_| {
            Error::Config(format!(
                "PRISM_EMULATED_AGENT_LISTEN={listen_text} is not an address such as {DEFAULT_LISTEN}"
            ))
        })?;
        Ok(Config {
            cvm_url: non_empty("AGENT_CVM_GRPC_URL").unwrap_or_else(|| DEFAULT_CVM_URL.into()),
            client_cert: non_empty("AGENT_CVM_GRPC_CLIENT_CERT").map(PathBuf::from),
            client_key: non_empty("AGENT_CVM_GRPC_CLIENT_KEY").map(PathBuf::from),
            server_ca_certs: non_empty("AGENT_CVM_GRPC_SERVER_CA_CERTS").map(PathBuf::from),
            cvm_id: lookup("AGENT_CVM_ID").unwrap_or_default(),
            log_level,
            listen,
            work_dir: non_empty("PRISM_EMULATED_AGENT_DIR").map(PathBuf::from),
            reconnect_interval: RECONNECT_INTERVAL,
            require_consent: flag("PRISM_EMULATED_AGENT_REQUIRE_CONSENT"),
            accept_cocos_auth: flag("PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH"),
            challenge_lifetime: CHALLENGE_LIFETIME,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
            .unwrap()
    }

    #[test]
    fn upstreams_replayable_participant_signature_is_accepted_only_when_asked_for() {
        assert!(!config(&[]).accept_cocos_auth);
        assert!(!config(&[("PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH", "0")]).accept_cocos_auth);
        assert!(!config(&[("PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH", "")]).accept_cocos_auth);
        assert!(config(&[("PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH", "1")]).accept_cocos_auth);
        assert!(config(&[("PRISM_EMULATED_AGENT_ACCEPT_COCOS_AUTH", "true")]).accept_cocos_auth);
        assert_eq!(config(&[]).challenge_lifetime, Duration::from_secs(60));
    }
}
