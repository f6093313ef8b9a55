//! The peers that dial the agents' channel as a Cocos agent VM does, started the same way: the real
//! Cocos v0.10.2 agent stack as processes (`infra/cocos/agent-stack.sh`, NoCC) and the emulated agent
//! (`prism-emulated-agent`). Both get the real agent's environment — the channel's address, the
//! client certificate and key, the roots the channel's certificate chains to, the CVM id as `job-id`
//! — so a scenario written once runs against either. Also what their tests read back: a CVM's
//! recorded events, and a wait for a condition.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use prism_app::IssuedCertificate;
use prism_domain::CvmId;
use prism_domain::cvm::{AgentMessage, CvmEvent};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::Prism;

/// Every event recorded for `cvm`, oldest first.
pub async fn cvm_events(prism: &Prism, cvm: CvmId) -> Vec<CvmEvent> {
    let log = prism.platform().app().log();
    let subject = log.subjects().aggregate("cvm", &cvm.to_string()).unwrap();
    log.load(&subject)
        .await
        .unwrap()
        .iter()
        .flat_map(|commit| commit.events.iter())
        .map(|envelope| envelope.decode::<CvmEvent>("cvm").unwrap())
        .collect()
}

/// Waits until `check` holds, looking every 200 ms; panics naming `what` after `limit`.
pub async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The wire kind of an agent's message (`attestation_report`, `state`, `log`, …), as the event
/// records it.
pub fn message_kind(message: &AgentMessage) -> String {
    serde_json::to_value(message).unwrap()["kind"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The repository's root.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory of the built Cocos programs, or why they cannot run here: the agent stack uses
/// fixed paths under /run and /var/lib (root), and they are built with Go (`infra/cocos/build.sh`,
/// cached; exit status 3 when Go is missing).
pub fn cocos_programs() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("not running as root: the Cocos agent stack needs /run/cocos and /var/lib/cocos".into());
    }
    let output = std::process::Command::new(repository_root().join("infra/cocos/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run infra/cocos/build.sh: {e}"))?;
    match output.status.code() {
        Some(0) => Ok(PathBuf::from(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim(),
        )),
        Some(3) => Err(
            "Go is not installed: the conformance tests against the real Cocos programs cannot run".into(),
        ),
        _ => panic!("building the Cocos programs failed: {}", output.status),
    }
}

/// The built Cocos programs, or `None` after saying loudly that `what` is not run here — which
/// fails instead when `PRISM_REQUIRE_COCOS` is set (CI sets it: there the real programs must run).
pub fn cocos_programs_or_skip(what: &str) -> Option<PathBuf> {
    match cocos_programs() {
        Ok(dir) => Some(dir),
        Err(why) => {
            let banner = "!".repeat(100);
            eprintln!("{banner}\n!! NOT RUN: {what}: {why}\n{banner}");
            assert!(
                std::env::var_os("PRISM_REQUIRE_COCOS").is_none(),
                "PRISM_REQUIRE_COCOS is set, and {what} cannot run here: {why}"
            );
            None
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The files an agent VM is given, as the Cocos manager writes them: its certificate followed by
/// the chain, its key, and the root it trusts for the channel. `dir` holds them and whatever the
/// peer keeps between its starts.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl AgentFiles {
    pub fn write(dir: &Path, issued: &IssuedCertificate, root_pem: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        };
        AgentFiles {
            dir: dir.to_owned(),
            cert: write("cert.pem", &format!("{}{}", issued.certificate, issued.chain)),
            key: write("key.pem", issued.private_key.as_deref().unwrap()),
            ca: write("ca.pem", root_pem),
        }
    }

    /// The emulated agent's own directory (`PRISM_EMULATED_AGENT_DIR`): the same on every start, so
    /// its pending messages outlive a restart as the real agent's `/var/lib/cocos/agent` does.
    pub fn emulated_agent_dir(&self) -> PathBuf {
        self.dir.join("emulated-agent")
    }
}

/// Which program plays the agent VM.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The real Cocos v0.10.2 agent stack, from the programs in this directory. One per host.
    RealCocosStack { programs: PathBuf },
    /// `prism-emulated-agent`, one process.
    EmulatedAgent,
}

impl Peer {
    /// Starts the peer dialling `channel` for `cvm` with `files`; answers once it has started (the
    /// real stack once its script says every program is ready; the emulated agent at once — it
    /// exits if its first dial fails, which the caller sees as a CVM that never comes online).
    pub async fn start(&self, channel: SocketAddr, cvm: CvmId, files: &AgentFiles) -> RunningPeer {
        match self {
            Peer::RealCocosStack { programs } => {
                let work_dir = files.dir.join(format!("stack-{}", uuid::Uuid::now_v7().simple()));
                let mut child =
                    tokio::process::Command::new(repository_root().join("infra/cocos/agent-stack.sh"))
                        .args(["--url", &channel.to_string(), "--cvm-id", &cvm.to_string()])
                        .arg("--client-cert")
                        .arg(&files.cert)
                        .arg("--client-key")
                        .arg(&files.key)
                        .arg("--server-ca")
                        .arg(&files.ca)
                        .arg("--bin-dir")
                        .arg(programs)
                        .arg("--work-dir")
                        .arg(&work_dir)
                        // Killed at once when stopped: the programs take 11 s or more to exit after
                        // SIGTERM, and a test needs only their connections gone.
                        .args(["--stop-timeout", "0"])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::inherit())
                        .spawn()
                        .unwrap();
                let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
                let running = RunningPeer {
                    child,
                    log: work_dir.join("logs"),
                };
                let ready = tokio::time::timeout(Duration::from_secs(90), async {
                    while let Some(line) = lines.next_line().await.unwrap() {
                        if line.starts_with("agent-stack: ready") {
                            return true;
                        }
                    }
                    false
                })
                .await;
                assert_eq!(ready.ok(), Some(true), "the agent stack did not start");
                running
            }
            Peer::EmulatedAgent => {
                let agent_dir = files.emulated_agent_dir();
                std::fs::create_dir_all(&files.dir).unwrap();
                let log = files
                    .dir
                    .join(format!("emulated-agent-{}.log", uuid::Uuid::now_v7().simple()));
                let output = std::fs::File::create(&log).unwrap();
                let child = tokio::process::Command::new(super::emulated_agent())
                    // Exactly the environment the real stack's programs get (`env -i` there).
                    .env_clear()
                    .env("AGENT_CVM_GRPC_URL", channel.to_string())
                    .env("AGENT_CVM_GRPC_CLIENT_CERT", &files.cert)
                    .env("AGENT_CVM_GRPC_CLIENT_KEY", &files.key)
                    .env("AGENT_CVM_GRPC_SERVER_CA_CERTS", &files.ca)
                    .env("AGENT_CVM_ID", cvm.to_string())
                    .env("AGENT_LOG_LEVEL", "debug")
                    // Its own: participants on a free port (the real ingress is 0.0.0.0:7002, one
                    // per host), and a directory of its own.
                    .env("PRISM_EMULATED_AGENT_LISTEN", "127.0.0.1:0")
                    .env("PRISM_EMULATED_AGENT_DIR", &agent_dir)
                    .stdin(Stdio::null())
                    .stdout(output.try_clone().unwrap())
                    .stderr(output)
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                RunningPeer { child, log }
            }
        }
    }
}

/// A started peer. Dropping it sends SIGTERM, which stops the real stack's programs too (a
/// SIGKILL to the script would leave them running, holding the host's one stack).
pub struct RunningPeer {
    child: tokio::process::Child,
    /// Its log file (the emulated agent's) or directory (the real stack's, one file per program).
    log: PathBuf,
}

impl RunningPeer {
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops it the way its programs are stopped (SIGTERM) and waits for it to exit.
    pub async fn stop(mut self) {
        self.terminate();
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        assert!(exited.is_ok(), "the peer did not exit within 30 s of SIGTERM");
    }

    fn terminate(&mut self) {
        if let (Some(pid), Ok(None)) = (self.child.id(), self.child.try_wait()) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for RunningPeer {
    fn drop(&mut self) {
        self.terminate();
    }
}
