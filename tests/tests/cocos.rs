//! Conformance of the agents' channel with what dials it: one scenario, run against the real Cocos
//! v0.10.2 agent stack (agent, attestation service, computation runner, log forwarder as processes:
//! `infra/cocos/agent-stack.sh`, NoCC) and against the emulated agent (`prism-emulated-agent`), both
//! started with the real agent's environment and a client certificate the platform issued. Both
//! must leave the same account in the CVM's log: both streams accepted, the start-up attestation
//! report over the certificate, a state answer, Offline when stopped, and after a restart a message
//! sent again is not recorded twice. Where they differ by design — the evidence: the real NoCC
//! attestation service wraps a 96-byte stand-in, the emulated agent a SEV-SNP report signed by a
//! TEST ONLY chain — each is checked exactly for what it is.
//!
//! The real programs are built from source with Go (`infra/cocos/build.sh`, cached). Without Go, or
//! not as root (the stack uses fixed paths under /run and /var/lib), the real peer's test says so
//! loudly and passes — unless `PRISM_REQUIRE_COCOS` is set, as CI sets it, and then it fails. The
//! emulated peer's test needs neither and always runs.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::Prism;
use common::agent::{admin_workspace, agent_certificate, started_cvm};
use common::peers::{AgentFiles, Peer, cocos_programs_or_skip, cvm_events, message_kind, until};
use prism_agents::ServerRequest;
use prism_domain::DomainEvent as _;
use prism_domain::cvm::{AgentMessage, AgentStream, Cvm, CvmEvent, CvmStatus};
use prism_proto::cvms::{AgentStateRes, ClientStreamMessage, client_stream_message};
use prism_proto::prost::Message as _;

/// The states upstream's agent reports (`agent/state.go`); a fresh agent is in the first.
const UPSTREAM_STATES: [&str; 7] = [
    "ReceivingManifest",
    "ReceivingAlgorithm",
    "ReceivingData",
    "Running",
    "ConsumingResults",
    "Complete",
    "Failed",
];

/// The state request sent in both runs of the peer: a fresh agent answers it with the same bytes
/// each time, so the answer after the restart is a message sent again.
const REPEATED_REQUEST: &str = "conformance";
/// The request sent after the repeated one on the restarted peer: its answer on the same stream
/// shows the repeated answer has been through the channel too.
const LAST_REQUEST: &str = "conformance-after-restart";

/// What a peer's run left in the CVM's log, reduced to what every peer must agree on.
#[derive(Debug, PartialEq, Eq)]
struct Account {
    /// The CVM's events other than its agent's messages and their appraisals, by name.
    lifecycle: Vec<&'static str>,
    /// The appraisals of its evidence (recorded as the attestor gets to them): outcome and the
    /// first failing field.
    appraisals: Vec<(String, String)>,
    /// The agent's stream: each message's kind, and for a state answer the request it answers.
    agent_stream: Vec<String>,
    /// The log forwarder's stream, per connection (between one `online` and the next): the kinds
    /// of its messages.
    log_forwarder: Vec<std::collections::BTreeSet<String>>,
}

fn expected_account() -> Account {
    Account {
        // Placed on a bring-your-own backend, which describes nothing; online and offline twice.
        lifecycle: vec![
            "requested",
            "backend_assigned",
            "started",
            "online",
            "offline",
            "online",
            "offline",
        ],
        // Each start-up report appraised: a machine without a TEE, refused in secure mode.
        appraisals: vec![("refused".into(), "platform".into()); 2],
        // A start-up report on each start; the repeated answer once.
        agent_stream: vec![
            "attestation_report".into(),
            format!("state {REPEATED_REQUEST}"),
            "attestation_report".into(),
            format!("state {LAST_REQUEST}"),
        ],
        // Only log lines: no computation runs, so there are no computation events.
        log_forwarder: vec![["log".to_owned()].into(), ["log".to_owned()].into()],
    }
}

fn account(events: &[CvmEvent]) -> Account {
    let mut account = Account {
        lifecycle: Vec::new(),
        appraisals: Vec::new(),
        agent_stream: Vec::new(),
        log_forwarder: Vec::new(),
    };
    for event in events {
        match event {
            CvmEvent::AgentMessageReceived(received) => match received.stream {
                AgentStream::Agent => account.agent_stream.push(match &received.message {
                    AgentMessage::State { id, .. } => format!("state {id}"),
                    other => message_kind(other),
                }),
                AgentStream::LogForwarder => {
                    if let Some(kinds) = account.log_forwarder.last_mut() {
                        kinds.insert(message_kind(&received.message));
                    }
                }
            },
            CvmEvent::AttestationAppraised(appraisal) => {
                let outcome = serde_json::to_value(appraisal.verdict.outcome).unwrap();
                let field = appraisal
                    .verdict
                    .reason()
                    .map(|f| f.field.clone())
                    .unwrap_or_default();
                account
                    .appraisals
                    .push((outcome.as_str().unwrap().to_owned(), field));
            }
            other => {
                if matches!(other, CvmEvent::Online(_)) {
                    account.log_forwarder.push(Default::default());
                }
                account.lifecycle.push(other.name());
            }
        }
    }
    account
}

/// The start-up reports recorded, oldest first: the evidence's bytes and the certificate serial.
fn startup_reports(events: &[CvmEvent]) -> Vec<(Vec<u8>, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            CvmEvent::AgentMessageReceived(m) => match &m.message {
                AgentMessage::AttestationReport {
                    report_base64,
                    certificate_serial,
                } if m.stream == AgentStream::Agent => Some((
                    STANDARD.decode(report_base64).unwrap(),
                    certificate_serial.clone(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn state_answers(events: &[CvmEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            CvmEvent::AgentMessageReceived(m) => match &m.message {
                AgentMessage::State { id, state } => Some((id.clone(), state.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn log_forwarder_messages(events: &[CvmEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, CvmEvent::AgentMessageReceived(m) if m.stream == AgentStream::LogForwarder))
        .count()
}

/// The scenario both peers go through. `check_evidence` judges each start-up report while the peer
/// that sent it still runs (the emulated agent's signing chain is made anew by each process);
/// `before_restart` may leave something for the stopped peer to find. Answers every event recorded
/// for the CVM.
async fn dial_in_report_answer_stop_and_restart(
    peer: Peer,
    check_evidence: impl Fn(&AgentFiles, &[u8]),
    before_restart: impl FnOnce(&AgentFiles),
) -> Vec<CvmEvent> {
    let prism = Prism::start().await;
    let app = prism.platform().app().clone();
    let (admin, ws) = admin_workspace(&prism, "Cocos").await;
    let cvm = started_cvm(&prism, ws).await;
    let issued = agent_certificate(&prism, &admin, ws, cvm).await;
    let root = app.certificates().authority().await.unwrap().root_pem();
    let dir = tempfile::tempdir().unwrap();
    let files = AgentFiles::write(dir.path(), &issued, &root);
    // The platform's own agents' channel; its certificate names 127.0.0.1, which the peer dials.
    let (addr, channel) = prism
        .platform()
        .agents()
        .expect("the test platform runs the agents' channel");
    let status = async || app.repository::<Cvm>().load(&cvm).await.unwrap().state.status;
    let ask_state = async |id: &str| {
        channel
            .send(cvm, ServerRequest::State { id: id.into() })
            .await
            .unwrap();
    };

    // Both streams come; the CVM is Online; the start-up report is over this certificate.
    let running = peer.start(addr, cvm, &files).await;
    until("the CVM online", Duration::from_secs(30), async || {
        status().await == CvmStatus::Online
    })
    .await;
    until("the start-up report", Duration::from_secs(30), async || {
        startup_reports(&cvm_events(&prism, cvm).await).len() == 1
    })
    .await;
    let (report, serial) = startup_reports(&cvm_events(&prism, cvm).await).remove(0);
    assert_eq!(serial, issued.serial.to_decimal());
    check_evidence(&files, &report);
    until(
        "the log forwarder's stream",
        Duration::from_secs(30),
        async || channel.is_connected(cvm) && log_forwarder_messages(&cvm_events(&prism, cvm).await) > 0,
    )
    .await;

    // It answers a state request: a fresh agent waits for its manifest.
    ask_state(REPEATED_REQUEST).await;
    until("the state answer", Duration::from_secs(30), async || {
        !state_answers(&cvm_events(&prism, cvm).await).is_empty()
    })
    .await;
    let answers = state_answers(&cvm_events(&prism, cvm).await);
    assert_eq!(answers, [(REPEATED_REQUEST.into(), "ReceivingManifest".into())]);
    assert!(UPSTREAM_STATES.contains(&answers[0].1.as_str()));

    // Stopped, it stays away: the CVM goes Offline.
    running.stop().await;
    until("the CVM offline", Duration::from_secs(30), async || {
        status().await == CvmStatus::Offline
    })
    .await;
    assert!(!channel.is_connected(cvm));
    let forwarded_before_restart = log_forwarder_messages(&cvm_events(&prism, cvm).await);

    // Started again with the same certificate: Online again, with a new start-up report (each start
    // attests anew: the real EAT has a fresh key and times, the emulated report a random id).
    before_restart(&files);
    let running = peer.start(addr, cvm, &files).await;
    until("the CVM online again", Duration::from_secs(30), async || {
        status().await == CvmStatus::Online
    })
    .await;
    until(
        "the second start-up report",
        Duration::from_secs(30),
        async || startup_reports(&cvm_events(&prism, cvm).await).len() == 2,
    )
    .await;
    let (report, serial) = startup_reports(&cvm_events(&prism, cvm).await).remove(1);
    assert_eq!(serial, issued.serial.to_decimal());
    check_evidence(&files, &report);
    until(
        "the restarted log forwarder's stream",
        Duration::from_secs(30),
        async || {
            channel.is_connected(cvm)
                && log_forwarder_messages(&cvm_events(&prism, cvm).await) > forwarded_before_restart
        },
    )
    .await;
    // The same request is answered with the same bytes: known by its digest, not recorded again.
    // The answer to the next request comes after it on the same stream.
    ask_state(REPEATED_REQUEST).await;
    ask_state(LAST_REQUEST).await;
    until("the last state answer", Duration::from_secs(30), async || {
        state_answers(&cvm_events(&prism, cvm).await).len() >= 2
    })
    .await;
    assert_eq!(
        state_answers(&cvm_events(&prism, cvm).await),
        [
            (REPEATED_REQUEST.into(), "ReceivingManifest".into()),
            (LAST_REQUEST.into(), "ReceivingManifest".into())
        ]
    );

    // The attestor appraises each start-up report as it is recorded.
    until(
        "both start-up reports appraised",
        Duration::from_secs(30),
        async || {
            let events = cvm_events(&prism, cvm).await;
            events
                .iter()
                .filter(|e| matches!(e, CvmEvent::AttestationAppraised(_)))
                .count()
                == 2
        },
    )
    .await;

    running.stop().await;
    until("the CVM offline again", Duration::from_secs(30), async || {
        status().await == CvmStatus::Offline
    })
    .await;
    let events = cvm_events(&prism, cvm).await;
    prism.stop().await;
    events
}

/// The SHA-`bits` digest of `file`, by the `openssl` command line.
fn openssl_digest(bits: u32, file: &Path) -> Vec<u8> {
    let output = std::process::Command::new("openssl")
        .args(["dgst", &format!("-sha{bits}"), "-binary"])
        .arg(file)
        .output()
        .expect("openssl");
    assert!(output.status.success());
    output.stdout
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What both peers' evidence is: an EAT as upstream's attestation-service makes it — a tagged
/// COSE_Sign1 (CBOR tag 18) whose claims name the platform and carry `eat_nonce`, the SHA-256 of
/// the certificate's PEM file (a 32-byte CBOR byte string).
fn assert_eat(files: &AgentFiles, evidence: &[u8], platform_type: &str) {
    assert_eq!(
        &evidence[..2],
        [0xd2, 0x84],
        "a tagged COSE_Sign1: {evidence:02x?}"
    );
    let mut platform = vec![0x60 + b"platform_type".len() as u8];
    platform.extend(b"platform_type");
    platform.push(0x60 + platform_type.len() as u8);
    platform.extend(platform_type.as_bytes());
    assert!(contains(evidence, &platform), "platform_type {platform_type}");
    let mut nonce = vec![0x58, 32];
    nonce.extend(openssl_digest(256, &files.cert));
    assert!(contains(evidence, &nonce), "eat_nonce over the certificate file");
}

/// The real agent's NoCC evidence: `platform_type` `NoCC` and a 96-byte `raw_report`, SHA-512 then
/// SHA-256 of the certificate's PEM file. The token is signed with a key the attestation service
/// makes at each start and publishes nowhere, so nothing can verify it: unverified by design.
fn assert_nocc_evidence(files: &AgentFiles, evidence: &[u8]) {
    assert_eat(files, evidence, "NoCC");
    let mut raw_report = vec![0x58, 96];
    raw_report.extend(openssl_digest(512, &files.cert));
    raw_report.extend(openssl_digest(256, &files.cert));
    assert!(
        contains(evidence, &raw_report),
        "the raw report is over the certificate file"
    );
}

/// The emulated agent's evidence differs on purpose: it plays an SEV-SNP guest, so `platform_type`
/// is `SNP` and `raw_report` is a marshalled SEV-SNP attestation — a report whose REPORT_DATA is
/// SHA-512 of the certificate's PEM file and whose measurement says what it is, with the chain that
/// signs it. That chain (ARK → ASK → VCEK, every name "TEST ONLY — NOT AMD") is made by the process
/// and left in its directory: it verifies against itself only, never against AMD's roots.
fn assert_test_only_snp_evidence(files: &AgentFiles, evidence: &[u8]) {
    assert_eat(files, evidence, "SNP");
    assert!(
        contains(evidence, &openssl_digest(512, &files.cert)),
        "the report data is over the certificate file"
    );
    assert!(contains(
        evidence,
        b"TEST-ONLY-NOT-AMD-TEST-ONLY-NOT-AMD-TEST-ONLY-NO"
    ));

    let chain = files.emulated_agent_dir().join("test-attestation-chain");
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&chain)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    openssl(&[
        "verify",
        "-CAfile",
        "ark.pem",
        "-untrusted",
        "ask.pem",
        "vcek.pem",
    ]);
    for name in ["ark.pem", "ask.pem", "vcek.pem"] {
        let subject = openssl(&["x509", "-in", name, "-noout", "-subject", "-nameopt", "utf8"]);
        assert!(
            String::from_utf8_lossy(&subject).contains("TEST ONLY — NOT AMD"),
            "{name}"
        );
        let der = openssl(&["x509", "-in", name, "-outform", "DER"]);
        assert!(contains(evidence, &der), "the evidence carries {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_cocos_agent_stack_dials_in_reports_answers_goes_offline_and_records_a_resend_once() {
    let Some(programs) = cocos_programs_or_skip("the conformance test against the real Cocos agent") else {
        return;
    };
    let events = dial_in_report_answer_stop_and_restart(
        Peer::RealCocosStack { programs },
        assert_nocc_evidence,
        |_| {},
    )
    .await;
    assert_eq!(account(&events), expected_account(), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulated_agent_dials_in_reports_answers_goes_offline_and_records_a_resend_once() {
    // Besides the scenario's repeated answer, the emulated agent resends what it finds in its pending
    // file (in its own directory) before anything else: the first answer, put there while it was
    // stopped, is sent again first and not recorded again. The real stack's pending file is at a
    // fixed path and in upstream's own format, so this part is the emulated agent's only.
    let put_first_answer_aside = |files: &AgentFiles| {
        let answer = ClientStreamMessage {
            message: Some(client_stream_message::Message::AgentStateRes(AgentStateRes {
                id: REPEATED_REQUEST.into(),
                state: "ReceivingManifest".into(),
            })),
        };
        let pending = serde_json::json!([{
            "message": STANDARD.encode(answer.encode_to_vec()),
            "time": chrono::Utc::now().to_rfc3339(),
        }]);
        std::fs::write(
            files.emulated_agent_dir().join("pending_messages.json"),
            pending.to_string(),
        )
        .unwrap();
    };
    let events = dial_in_report_answer_stop_and_restart(
        Peer::EmulatedAgent,
        assert_test_only_snp_evidence,
        put_first_answer_aside,
    )
    .await;
    assert_eq!(account(&events), expected_account(), "{events:#?}");
    let resent = events.iter().any(|e| {
        matches!(e, CvmEvent::AgentMessageReceived(m)
            if m.stream == AgentStream::LogForwarder
            && matches!(&m.message, AgentMessage::Log { message, .. } if message.contains("Successfully resent pending message")))
    });
    assert!(resent, "the pending answer was sent again: {events:#?}");
}
