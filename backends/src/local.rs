//! The `local` driver: each CVM is the emulated agent (`prism-emulated-agent`) as a child process of
//! the platform, in a private directory of its own, configured with the same environment a Cocos
//! manager hands a real agent. **Insecure: no hardware protection** — for development and tests.
//!
//! The children live as long as the platform process: they are killed when it stops (their CVMs then
//! go Offline, and the reaper destroys them at the end of their TTL).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{Driver, DriverError, LaunchRequest, Launched, MachineInfo};

/// How long an emulated agent has to publish its test attestation root after it started.
const TEST_ROOT_WAIT: Duration = Duration::from_secs(5);

/// The emulated agent's test-only attestation root, which it writes to its directory at start
/// (`prism_emulated_agent::TEST_CHAIN_DIR`); `None` if it has not after [`TEST_ROOT_WAIT`] (its
/// evidence is then refused, saying the chain has no trusted root).
async fn test_root(agent_dir: &std::path::Path) -> Option<String> {
    let path = agent_dir.join("test-attestation-chain/ark.pem");
    let deadline = tokio::time::Instant::now() + TEST_ROOT_WAIT;
    loop {
        match tokio::fs::read_to_string(&path).await {
            Ok(pem) if pem.contains("-----END CERTIFICATE-----") => return Some(pem),
            _ if tokio::time::Instant::now() >= deadline => {
                warn!(path = %path.display(), "the emulated agent published no test attestation root");
                return None;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How long a stopped agent may take to wipe its directory and exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a new agent must stay up for its start to count (a bad configuration exits at once).
const START_WATCH: Duration = Duration::from_millis(300);

#[derive(Debug)]
struct Machine {
    child: Child,
    dir: PathBuf,
    vcpus: u32,
}

#[derive(Debug)]
pub struct LocalDriver {
    program: PathBuf,
    root: PathBuf,
    machines: Mutex<HashMap<String, Machine>>,
}

impl LocalDriver {
    /// Runs `program` (the emulated agent) for each CVM, in a directory under `root`.
    pub fn new(program: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            root: root.into(),
            machines: Mutex::new(HashMap::new()),
        }
    }

    /// `prism-emulated-agent` beside the running executable (where cargo and the release archive put
    /// it), or `PRISM_EMULATED_AGENT` when set.
    pub fn default_program() -> PathBuf {
        if let Some(path) = std::env::var_os("PRISM_EMULATED_AGENT") {
            return path.into();
        }
        let mut path = std::env::current_exe().unwrap_or_default();
        path.set_file_name("prism-emulated-agent");
        path
    }

    pub fn program(&self) -> &Path {
        &self.program
    }
}

fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn free_local_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What the agent said before it exited: its first lines up to a backtrace (where the error is),
/// else its last ones.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let backtrace = lines
        .iter()
        .position(|line| line.to_ascii_lowercase().starts_with("stack backtrace"));
    let shown: Vec<&str> = match backtrace {
        Some(end) => lines[..end].iter().rev().take(5).rev().copied().collect(),
        None => lines.iter().rev().take(5).rev().copied().collect(),
    };
    shown.join(" | ")
}

async fn stop(mut machine: Machine) {
    if let Some(pid) = machine.child.id() {
        // SIGTERM lets the agent wipe its directory; `kill` rather than a signal crate, as nothing
        // else here needs one.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(STOP_GRACE, machine.child.wait())
        .await
        .is_err()
    {
        warn!("the emulated agent did not stop in time: killing it");
        let _ = machine.child.kill().await;
    }
    let _ = tokio::fs::remove_dir_all(&machine.dir).await;
}

#[async_trait::async_trait]
impl Driver for LocalDriver {
    async fn launch(&self, request: LaunchRequest) -> Result<Launched, DriverError> {
        let name = format!("local-{}", request.cvm);
        let dir = self.root.join(&name);
        let setup = || -> std::io::Result<u16> {
            private_dir(&dir.join("certs"))?;
            private_file(&dir.join("certs/cert.pem"), &request.agent_client_cert_pem)?;
            private_file(&dir.join("certs/key.pem"), &request.agent_client_key_pem)?;
            private_file(&dir.join("certs/ca.pem"), &request.server_ca_pem)?;
            free_local_port()
        };
        let port =
            setup().map_err(|e| DriverError::Refused(format!("cannot prepare {}: {e}", dir.display())))?;
        let log_path = dir.join("agent.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| DriverError::Refused(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| DriverError::Refused(format!("cannot share {}: {e}", log_path.display())))?;
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(&self.program)
            .env("AGENT_CVM_GRPC_URL", &request.control_plane_url)
            .env("AGENT_CVM_GRPC_CLIENT_CERT", dir.join("certs/cert.pem"))
            .env("AGENT_CVM_GRPC_CLIENT_KEY", dir.join("certs/key.pem"))
            .env("AGENT_CVM_GRPC_SERVER_CA_CERTS", dir.join("certs/ca.pem"))
            .env("AGENT_CVM_ID", request.cvm.to_string())
            .env("AGENT_LOG_LEVEL", &request.log_level)
            .env("PRISM_EMULATED_AGENT_LISTEN", &address)
            .env("PRISM_EMULATED_AGENT_DIR", dir.join("agent"))
            // Runs of the platform always carry their manifest and consents: the agent refuses any
            // request that does not.
            .env("PRISM_EMULATED_AGENT_REQUIRE_CONSENT", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DriverError::Unreachable(format!("cannot start {}: {e}", self.program.display())))?;
        let mut machine = Machine {
            child,
            dir: dir.clone(),
            vcpus: request.spec.vcpus,
        };
        tokio::time::sleep(START_WATCH).await;
        if let Ok(Some(status)) = machine.child.try_wait() {
            let why = log_tail(&log_path);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(DriverError::Refused(format!(
                "the emulated agent exited ({status}): {why}"
            )));
        }
        warn!(cvm = %request.cvm, %address, "INSECURE: the local backend runs an emulated agent with no hardware protection");
        info!(cvm = %request.cvm, pid = machine.child.id(), "emulated agent started");
        if let Some(old) = self.machines.lock().await.insert(name.clone(), machine) {
            stop(old).await;
        }
        let test_attestation_root = test_root(&dir.join("agent")).await;
        Ok(Launched {
            backend_ref: name,
            agent_address: Some(address),
            test_attestation_root,
        })
    }

    async fn remove(&self, backend_ref: &str) -> Result<(), DriverError> {
        let machine = self.machines.lock().await.remove(backend_ref);
        match machine {
            Some(machine) => stop(machine).await,
            // Started by an earlier run of the platform, whose children went with it: only its
            // directory may be left.
            None => {
                if !backend_ref.contains('/') && !backend_ref.starts_with('.') {
                    let _ = tokio::fs::remove_dir_all(self.root.join(backend_ref)).await;
                }
            }
        }
        Ok(())
    }

    async fn info(&self, backend_ref: &str) -> Result<MachineInfo, DriverError> {
        let machines = self.machines.lock().await;
        let machine = machines
            .get(backend_ref)
            .ok_or_else(|| DriverError::UnknownMachine(backend_ref.to_owned()))?;
        Ok(MachineInfo {
            ovmf_version: "none (emulated: no firmware)".into(),
            cpu_count: machine.vcpus,
            cpu_type: "emulated".into(),
            kernel_cmdline: String::new(),
            eos_version: "none (emulated agent, no hardware protection)".into(),
        })
    }

    async fn attestation_policy(&self, _backend_ref: &str) -> Result<Vec<u8>, DriverError> {
        Err(DriverError::Unsupported(
            "the local backend has no attestation policy: its agent is emulated",
        ))
    }

    async fn check(&self) -> Result<(), DriverError> {
        match std::fs::metadata(&self.program) {
            Ok(meta) if meta.is_file() => Ok(()),
            _ => Err(DriverError::Unreachable(format!(
                "the emulated agent {} is not there (build it: cargo build -p prism-emulated-agent)",
                self.program.display()
            ))),
        }
    }
}
