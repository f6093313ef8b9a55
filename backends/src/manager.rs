//! The `cocos-manager` driver: a gRPC client of the Cocos manager's `manager.ManagerService` over
//! mutual TLS. The manager starts a VM whose agent dials the agents' channel with the certificates
//! and address handed over in `CreateVm`, removes it, and describes it.
//!
//! What the Cocos v0.10.2 manager does that shapes this driver:
//! - `CreateVm` answers `cvm_id` (a UUID the manager makes; the agent presents it as its `job-id`)
//!   and `forwarded_port` (the host port forwarded to the agent's ingress, port 7002 in the VM).
//!   It is not idempotent: every call starts another VM.
//! - `ttl` is read with Go's `time.ParseDuration` *after* the VM has started: a value it cannot read
//!   fails the call and leaves the VM running, so only well-formed durations (`3600s`) are sent.
//! - Its service errors are plain Go errors, which gRPC sends as `UNKNOWN` with the error's text:
//!   `entity not found` (`RemoveVm`), `computationId <id> not found` (`AttestationPolicy`),
//!   `maximum number of VMs exceeded`, `failed to allocate free port on host`.
//! - `CVMInfo` describes the manager's VM configuration (OVMF version, vCPUs, CPU model, EOS
//!   version) whatever the id, and never fails; it leaves `kernel_cmd` empty.
//! - `AttestationPolicy` generates a CoRIM (CBOR) for the VM, not JSON.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prism_proto::manager::manager_service_client::ManagerServiceClient;
use prism_proto::manager::{AttestationPolicyReq, CreateReq, CvmInfoReq, RemoveReq};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::{Driver, DriverError, LaunchRequest, Launched, MachineInfo};

/// How the platform reaches one Cocos manager.
#[derive(Clone)]
pub struct ManagerConfig {
    /// The manager's gRPC server: `host:port` (`[v6]:port` for an IPv6 address).
    pub address: String,
    /// The certificates (PEM) that sign the manager's server certificate.
    pub server_ca_pem: String,
    /// The platform's client certificate (PEM), followed by its intermediates.
    pub client_cert_pem: String,
    /// The client certificate's private key (PEM).
    pub client_key_pem: String,
    /// The name the manager's certificate must bear; by default the host of `address`.
    pub server_name: Option<String>,
    /// The host participants use to reach the agents' forwarded ports; by default the host of
    /// `address` (the manager forwards them on every interface of its machine).
    pub agent_host: Option<String>,
    /// Connecting: TCP and the TLS handshake.
    pub connect_timeout: Duration,
    /// `CVMInfo`, `AttestationPolicy` and the health check.
    pub call_timeout: Duration,
    /// `CreateVm`: the manager prepares the VM's files and starts QEMU before it answers.
    pub launch_timeout: Duration,
    /// `RemoveVm`: the manager waits up to 30 s for QEMU to exit after SIGTERM before it kills it.
    pub remove_timeout: Duration,
}

impl ManagerConfig {
    /// A configuration with the default timeouts (connect 5 s, calls 10 s, launch 60 s, remove
    /// 45 s).
    pub fn new(
        address: impl Into<String>,
        server_ca_pem: impl Into<String>,
        client_cert_pem: impl Into<String>,
        client_key_pem: impl Into<String>,
    ) -> Self {
        Self {
            address: address.into(),
            server_ca_pem: server_ca_pem.into(),
            client_cert_pem: client_cert_pem.into(),
            client_key_pem: client_key_pem.into(),
            server_name: None,
            agent_host: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            launch_timeout: Duration::from_secs(60),
            remove_timeout: Duration::from_secs(45),
        }
    }
}

// The key is a secret: never print it.
impl fmt::Debug for ManagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerConfig")
            .field("address", &self.address)
            .field("server_name", &self.server_name)
            .field("agent_host", &self.agent_host)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("launch_timeout", &self.launch_timeout)
            .field("remove_timeout", &self.remove_timeout)
            .finish_non_exhaustive()
    }
}

/// A [`ManagerConfig`] that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ManagerConfigError {
    #[error("the manager's address `{0}` is not host:port")]
    Address(String),
    #[error("`{0}` is not a name a TLS server certificate can bear")]
    ServerName(String),
    #[error("the manager's CA certificates: {0}")]
    ServerCa(String),
    #[error("the client certificate: {0}")]
    ClientCertificate(String),
    #[error("the client certificate's key: {0}")]
    ClientKey(String),
    #[error("the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The `cocos-manager` driver. One connection to the manager, made on first use and again whenever
/// it breaks. The connection's task runs on the Tokio runtime of the first call: use a driver within
/// one runtime.
pub struct ManagerDriver {
    address: String,
    agent_host: String,
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    timeouts: Timeouts,
    // Made in the runtime of the first call: a tonic channel runs a task of its own.
    channel: OnceLock<Channel>,
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    call: Duration,
    launch: Duration,
    remove: Duration,
}

impl fmt::Debug for ManagerDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerDriver")
            .field("address", &self.address)
            .field("agent_host", &self.agent_host)
            .field("server_name", &self.server_name)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl ManagerDriver {
    /// Checks the configuration and prepares the TLS client; connects on first use.
    pub fn new(config: ManagerConfig) -> Result<Self, ManagerConfigError> {
        let host =
            host_of(&config.address).ok_or_else(|| ManagerConfigError::Address(config.address.clone()))?;
        let server_name = tls_server_name(config.server_name.as_deref().unwrap_or(&host))?;
        let tls = client_tls(&config)?;
        // The connector below dials `address` itself; the URI gives the requests' `:authority` and
        // `:scheme` (the origin), and the endpoint's timeouts.
        let uri: Uri = format!("http://{}", config.address)
            .parse()
            .map_err(|_| ManagerConfigError::Address(config.address.clone()))?;
        let origin: Uri = format!("https://{}", config.address)
            .parse()
            .map_err(|_| ManagerConfigError::Address(config.address.clone()))?;
        let endpoint = Endpoint::from(uri)
            .origin(origin)
            .connect_timeout(config.connect_timeout);
        let agent_host = config.agent_host.clone().unwrap_or_else(|| {
            // Keep the brackets of an IPv6 address: the agent's address is `host:port` too.
            let (host_part, _) = config.address.rsplit_once(':').unwrap_or_default();
            host_part.to_owned()
        });
        Ok(Self {
            address: config.address,
            agent_host,
            endpoint,
            tls: Arc::new(tls),
            server_name,
            timeouts: Timeouts {
                call: config.call_timeout,
                launch: config.launch_timeout,
                remove: config.remove_timeout,
            },
            channel: OnceLock::new(),
        })
    }

    /// The manager's address, as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn client(&self) -> ManagerServiceClient<Channel> {
        let channel = self.channel.get_or_init(|| {
            let address = self.address.clone();
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
            let server_name = self.server_name.clone();
            let connector = tower::service_fn(move |_: Uri| {
                let address = address.clone();
                let tls = tls.clone();
                let server_name = server_name.clone();
                async move {
                    let tcp = tokio::net::TcpStream::connect(address.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    let stream = tls.connect(server_name, tcp).await?;
                    // grpc-go serves HTTP/2 only to a client that negotiated it.
                    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Err(std::io::Error::other(
                            "the manager did not agree to HTTP/2 (ALPN h2)",
                        ));
                    }
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            });
            self.endpoint.connect_with_connector_lazy(connector)
        });
        ManagerServiceClient::new(channel.clone())
    }

    /// Sends one call with a deadline the manager is told of too; no answer in time is
    /// [`DriverError::Unreachable`], an error answer is mapped by [`driver_error`].
    async fn call<T, R, F>(
        &self,
        limit: Duration,
        machine: Option<&str>,
        message: T,
        send: impl FnOnce(ManagerServiceClient<Channel>, tonic::Request<T>) -> F,
    ) -> Result<R, DriverError>
    where
        F: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let mut request = tonic::Request::new(message);
        request.set_timeout(limit);
        match tokio::time::timeout(limit, send(self.client(), request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(driver_error(&status, machine)),
            Err(_) => Err(DriverError::Unreachable(format!(
                "the manager at {} did not answer within {limit:?}",
                self.address
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Driver for ManagerDriver {
    async fn launch(&self, request: LaunchRequest) -> Result<Launched, DriverError> {
        let create = create_request(&request);
        let created = self
            .call(self.timeouts.launch, None, create, |mut client, r| async move {
                client.create_vm(r).await
            })
            .await?;
        let port = created.forwarded_port.trim().parse::<u16>().ok();
        match (created.cvm_id.is_empty(), port) {
            (false, Some(port)) => Ok(Launched {
                backend_ref: created.cvm_id,
                agent_address: Some(format!("{}:{port}", self.agent_host)),
                test_attestation_root: None,
            }),
            (true, _) => Err(DriverError::Refused(
                "the manager answered CreateVm without a VM id".into(),
            )),
            (false, None) => {
                // A VM nobody can reach and nobody would remove: take it back.
                let answer = format!(
                    "the manager answered CreateVm for `{}` with forwarded port `{}`, which is no port",
                    created.cvm_id, created.forwarded_port
                );
                if let Err(e) = self.remove(&created.cvm_id).await {
                    tracing::warn!(cvm_id = %created.cvm_id, error = %e, "could not remove a VM launched with an unusable answer");
                }
                Err(DriverError::Refused(answer))
            }
        }
    }

    async fn remove(&self, backend_ref: &str) -> Result<(), DriverError> {
        let remove = RemoveReq {
            cvm_id: backend_ref.to_owned(),
        };
        let answer = self
            .call(
                self.timeouts.remove,
                Some(backend_ref),
                remove,
                |mut client, r| async move { client.remove_vm(r).await },
            )
            .await;
        match answer {
            // Gone already (removed before, ended by its TTL, or never made here): what was asked.
            Ok(_) | Err(DriverError::UnknownMachine(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn info(&self, backend_ref: &str) -> Result<MachineInfo, DriverError> {
        let ask = CvmInfoReq {
            id: backend_ref.to_owned(),
        };
        let info = self
            .call(
                self.timeouts.call,
                Some(backend_ref),
                ask,
                |mut client, r| async move { client.cvm_info(r).await },
            )
            .await?;
        Ok(MachineInfo {
            ovmf_version: info.ovmf_version,
            cpu_count: u32::try_from(info.cpu_num).unwrap_or_default(),
            cpu_type: info.cpu_type,
            kernel_cmdline: info.kernel_cmd,
            eos_version: info.eos_version,
        })
    }

    async fn attestation_policy(&self, backend_ref: &str) -> Result<Vec<u8>, DriverError> {
        let ask = AttestationPolicyReq {
            id: backend_ref.to_owned(),
        };
        let policy = self
            .call(
                self.timeouts.call,
                Some(backend_ref),
                ask,
                |mut client, r| async move { client.attestation_policy(r).await },
            )
            .await?;
        Ok(policy.info)
    }

    async fn check(&self) -> Result<(), DriverError> {
        // The cheapest call of the manager's own service that needs no VM: it proves the TLS
        // handshake, the certificates on both sides and the service itself. v0.10.2 answers it
        // for any id; a manager that looks the id up says "not found", which is as good.
        let id = format!("prism-health-check-{}", std::process::id());
        let ask = CvmInfoReq { id: id.clone() };
        let answer = self
            .call(self.timeouts.call, Some(&id), ask, |mut client, r| async move {
                client.cvm_info(r).await
            })
            .await;
        match answer {
            Ok(_) | Err(DriverError::UnknownMachine(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The `CreateVm` request for `request`, as the manager reads it: the three PEM files it writes
/// into the VM (`cert.pem`, `key.pem`, `ca.pem`), the agent's environment (channel URL, log level),
/// and the lifetime. The CA URL and certificate token are left empty (the v0.10 agent never uses
/// them), as are the AWS and KBS fields (no encrypted images here).
pub fn create_request(request: &LaunchRequest) -> CreateReq {
    CreateReq {
        agent_log_level: request.log_level.clone(),
        agent_cvm_server_ca_cert: request.server_ca_pem.clone().into_bytes(),
        agent_cvm_client_key: request.agent_client_key_pem.clone().into_bytes(),
        agent_cvm_client_cert: request.agent_client_cert_pem.clone().into_bytes(),
        agent_cvm_server_url: request.control_plane_url.clone(),
        ttl: go_duration(request.ttl),
        ..Default::default()
    }
}

/// `ttl` as Go's `time.ParseDuration` reads it: whole seconds (`3600s`), or milliseconds rounded up
/// when there is a fraction (`1501ms`), so that the VM never ends before its lifetime.
pub fn go_duration(ttl: Duration) -> String {
    if ttl.subsec_nanos() == 0 {
        format!("{}s", ttl.as_secs())
    } else {
        format!("{}ms", ttl.as_nanos().div_ceil(1_000_000))
    }
}

/// What a manager's error answer means for the caller; `machine` is the VM the call was about.
///
/// - Unavailable, DeadlineExceeded, Cancelled, and any status made on this side from a transport
///   failure (it carries the failure as its source): the manager was not reached or did not answer.
/// - NotFound, and the manager's own "not found" errors (sent as UNKNOWN): no such VM.
/// - Anything else the manager answered (InvalidArgument, ResourceExhausted, FailedPrecondition,
///   its UNKNOWN errors such as "maximum number of VMs exceeded", …): it refused.
pub fn driver_error(status: &Status, machine: Option<&str>) -> DriverError {
    let detail = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    };
    let transport_failure = std::error::Error::source(status).is_some();
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => DriverError::Unreachable(detail),
        Code::Unknown if transport_failure => DriverError::Unreachable(detail),
        Code::NotFound => match machine {
            Some(machine) => DriverError::UnknownMachine(machine.to_owned()),
            None => DriverError::Refused(detail),
        },
        Code::Unknown if says_not_found(status.message()) => match machine {
            Some(machine) => DriverError::UnknownMachine(machine.to_owned()),
            None => DriverError::Refused(detail),
        },
        _ => DriverError::Refused(detail),
    }
}

/// The manager's service errors that mean "no such VM": `entity not found` (`RemoveVm`, also
/// wrapped as `… : entity not found`) and `computationId <id> not found` (`AttestationPolicy`).
fn says_not_found(message: &str) -> bool {
    message.contains("entity not found")
        || (message.starts_with("computationId ") && message.ends_with(" not found"))
}

/// The host of `host:port` (`[v6]:port`), without brackets.
fn host_of(address: &str) -> Option<String> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

fn tls_server_name(name: &str) -> Result<ServerName<'static>, ManagerConfigError> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => {
            ServerName::try_from(name.to_owned()).map_err(|_| ManagerConfigError::ServerName(name.to_owned()))
        }
    }
}

/// rustls on ring, named here rather than taken from the process default, with the platform's
/// client certificate, trusting only `server_ca_pem`, offering ALPN h2 as grpc-go requires.
fn client_tls(config: &ManagerConfig) -> Result<rustls::ClientConfig, ManagerConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(config.server_ca_pem.as_bytes()) {
        let certificate = certificate.map_err(|e| ManagerConfigError::ServerCa(e.to_string()))?;
        roots
            .add(certificate)
            .map_err(|e| ManagerConfigError::ServerCa(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ManagerConfigError::ServerCa("no PEM certificate found".into()));
    }
    let chain = CertificateDer::pem_slice_iter(config.client_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ManagerConfigError::ClientCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(ManagerConfigError::ClientCertificate(
            "no PEM certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(config.client_key_pem.as_bytes())
        .map_err(|e| ManagerConfigError::ClientKey(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_source(code: Code) -> Status {
        // How tonic reports a failure of its own transport: the failure as the status's source.
        let mut status = Status::from_error(Box::new(std::io::Error::other("connection reset")));
        if code != Code::Unknown {
            status = Status::new(code, status.message().to_owned());
        }
        status
    }

    #[test]
    fn no_answer_in_time_or_no_connection_is_unreachable() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Cancelled] {
            assert!(
                matches!(
                    driver_error(&Status::new(code, "x"), Some("vm")),
                    DriverError::Unreachable(_)
                ),
                "{code:?}"
            );
        }
        let transport = status_with_source(Code::Unknown);
        assert_eq!(transport.code(), Code::Unknown);
        assert!(matches!(
            driver_error(&transport, None),
            DriverError::Unreachable(_)
        ));
    }

    #[test]
    fn an_answer_that_says_no_is_a_refusal() {
        for code in [
            Code::InvalidArgument,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::DataLoss,
        ] {
            assert!(
                matches!(
                    driver_error(&Status::new(code, "no"), Some("vm")),
                    DriverError::Refused(_)
                ),
                "{code:?}"
            );
        }
        // The manager's own errors arrive as UNKNOWN with their text.
        for message in [
            "maximum number of VMs exceeded",
            "failed to allocate free port on host : failed to find free port in range 6100-6200",
            "exec: \"qemu-system-x86_64\": executable file not found in $PATH",
        ] {
            assert_eq!(
                driver_error(&Status::new(Code::Unknown, message), None),
                DriverError::Refused(format!("Unknown: {message}"))
            );
        }
    }

    #[test]
    fn not_found_names_the_machine() {
        assert_eq!(
            driver_error(&Status::not_found("gone"), Some("vm-1")),
            DriverError::UnknownMachine("vm-1".into())
        );
        for message in ["entity not found", "computationId vm-1 not found"] {
            assert_eq!(
                driver_error(&Status::new(Code::Unknown, message), Some("vm-1")),
                DriverError::UnknownMachine("vm-1".into()),
                "{message}"
            );
        }
        // Not about a machine (a launch): a refusal, not an unknown machine.
        assert!(matches!(
            driver_error(&Status::not_found("no such service"), None),
            DriverError::Refused(_)
        ));
    }

    #[test]
    fn ttl_is_a_go_duration() {
        assert_eq!(go_duration(Duration::from_secs(3600)), "3600s");
        assert_eq!(go_duration(Duration::from_secs(0)), "0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_nanos(1_500_000_001)), "1501ms");
    }

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7011").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            host_of("manager.internal:7011").as_deref(),
            Some("manager.internal")
        );
        assert_eq!(host_of("[::1]:7011").as_deref(), Some("::1"));
        assert_eq!(host_of("127.0.0.1"), None);
        assert_eq!(host_of(":7011"), None);
        assert_eq!(host_of("host:port"), None);
    }
}
