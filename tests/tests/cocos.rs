//! Conformance with the real Cocos v0.10.2 agent: its NoCC agent stack (agent, attestation service,
//! computation runner, log forwarder, as processes: `infra/cocos/agent-stack.sh`) dials the platform's
//! agents' channel over mutual TLS with a certificate the platform issued. Both its streams are
//! accepted, its start-up attestation report over its certificate is recorded, it answers a state
//! request, and when it is stopped the CVM goes Offline.
//!
//! The programs are built from source with Go (`infra/cocos/build.sh`, cached). Without Go, or not as
//! root (the stack uses fixed paths under /run and /var/lib), this test says so loudly and passes —
//! unless `PRISM_REQUIRE_COCOS` is set, as CI sets it, and then it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Prism;
use common::agent::{admin_workspace, agent_certificate, started_cvm};
use prism_agents::ServerRequest;
use prism_domain::CvmId;
use prism_domain::cvm::{AgentMessage, AgentStream, Cvm, CvmEvent, CvmStatus};
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory of the built Cocos programs, or why they cannot run here.
fn cocos_programs() -> Result<PathBuf, String> {
    if !nix_is_root() {
        return Err("not running as root: the Cocos agent stack needs /run/cocos and /var/lib/cocos".into());
    }
    let output = std::process::Command::new(root().join("infra/cocos/build.sh"))
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

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Sends SIGTERM to the agent-stack script when dropped: it then stops all four programs (a SIGKILL
/// would leave them running, holding the host's one stack).
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}

async fn events(prism: &Prism, cvm: CvmId) -> Vec<CvmEvent> {
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

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_cocos_agent_dials_in_reports_answers_and_goes_offline_when_stopped() {
    let programs = match cocos_programs() {
        Ok(dir) => dir,
        Err(why) => {
            let banner = "!".repeat(100);
            eprintln!(
                "{banner}\n!! NOT RUN: the conformance test against the real Cocos agent: {why}\n{banner}"
            );
            assert!(
                std::env::var_os("PRISM_REQUIRE_COCOS").is_none(),
                "PRISM_REQUIRE_COCOS is set, and the real Cocos agent cannot run here: {why}"
            );
            return;
        }
    };
    let prism = Prism::start().await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Cocos").await;
    let cvm = started_cvm(&prism, ws).await;
    let issued = agent_certificate(&prism, &admin, ws, cvm).await;
    let certificates = app.certificates();

    // The platform's own agents' channel; its certificate names 127.0.0.1, which the agent dials.
    let (addr, channel) = prism
        .platform()
        .agents()
        .expect("the test platform runs the agents' channel");
    // The agent's files, as the Cocos manager writes them: its certificate with the chain, its key,
    // and the root it trusts.
    let dir = std::env::temp_dir().join(format!("prism-cocos-{cvm}"));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, format!("{}{}", issued.certificate, issued.chain)).unwrap();
    let key = dir.join("key.pem");
    std::fs::write(&key, issued.private_key.as_deref().unwrap()).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, certificates.authority().await.unwrap().root_pem()).unwrap();
    let mut stack = tokio::process::Command::new(root().join("infra/cocos/agent-stack.sh"))
        .args(["--url", &addr.to_string(), "--cvm-id", &cvm.to_string()])
        .arg("--client-cert")
        .arg(&cert)
        .arg("--client-key")
        .arg(&key)
        .arg("--server-ca")
        .arg(&ca)
        .arg("--bin-dir")
        .arg(&programs)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .args(["--stop-timeout", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Whatever happens below, the stack is stopped the way it stops everything it started.
    let _stop_stack = StopOnDrop(stack.id().unwrap());
    let mut lines = BufReader::new(stack.stdout.take().unwrap()).lines();
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

    // Both streams came; the CVM is Online; the start-up report is over this certificate.
    until("the CVM online", Duration::from_secs(30), async || {
        app.repository::<Cvm>().load(&cvm).await.unwrap().state.status == CvmStatus::Online
    })
    .await;
    until("the start-up report", Duration::from_secs(30), async || {
        events(&prism, cvm).await.iter().any(|e| {
            matches!(e, CvmEvent::AgentMessageReceived(m)
                if m.stream == AgentStream::Agent
                && matches!(&m.message, AgentMessage::AttestationReport { certificate_serial, .. }
                    if *certificate_serial == issued.serial.to_decimal()))
        })
    })
    .await;
    until(
        "the log forwarder's stream",
        Duration::from_secs(30),
        async || {
            channel.is_connected(cvm)
            && events(&prism, cvm).await.iter().any(|e| {
                matches!(e, CvmEvent::AgentMessageReceived(m) if m.stream == AgentStream::LogForwarder)
            })
        },
    )
    .await;

    // It answers a state request.
    channel
        .send(
            cvm,
            ServerRequest::State {
                id: "conformance".into(),
            },
        )
        .await
        .unwrap();
    until("the state answer", Duration::from_secs(30), async || {
        events(&prism, cvm).await.iter().any(|e| {
            matches!(e, CvmEvent::AgentMessageReceived(m)
                if matches!(&m.message, AgentMessage::State { id, .. } if id == "conformance"))
        })
    })
    .await;

    // Stopped, it stays away: the CVM goes Offline.
    drop(_stop_stack);
    let _ = tokio::time::timeout(Duration::from_secs(30), stack.wait()).await;
    until("the CVM offline", Duration::from_secs(30), async || {
        app.repository::<Cvm>().load(&cvm).await.unwrap().state.status == CvmStatus::Offline
    })
    .await;

    let _ = std::fs::remove_dir_all(&dir);
    prism.stop().await;
}
