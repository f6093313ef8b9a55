//! The CVM aggregate: one confidential VM, from the request through the backend that makes it and
//! its agent's comings and goings to its destruction. Deciding never talks to a backend: the
//! provisioner does, and records what happened with these commands.

mod agent;
mod command;
mod error;
mod event;
mod placement;
mod state;

pub use agent::{AgentMessage, AgentStream, ReceivedMessage};
pub use command::CvmCommand;
pub use error::CvmError;
pub use event::{
    ConfidentialPlatform, CvmAgentMessageReceived, CvmAttestationAppraised, CvmAttestationRequested,
    CvmBackendAssigned, CvmDescribed, CvmDestroyRequested, CvmDestroyed, CvmEvent, CvmFailed, CvmOffline,
    CvmOnline, CvmRequested, CvmSpec, CvmStarted, DestroyReason, MachineDescription, PolicySource,
};
pub use placement::{ANY_PROVIDER, Candidate, Needs, Placement, Unfit, place};
pub use state::{Cvm, CvmStatus, RECENT_MESSAGES};

use crate::aggregate::{Aggregate, CommandContext};
use crate::values::check_text;

pub const VCPUS_MAX: u32 = 256;
pub const MEMORY_MIN_MIB: u64 = 256;
pub const MEMORY_MAX_MIB: u64 = 4 * 1024 * 1024;
pub const TTL_MIN_SECONDS: u64 = 60;
pub const TTL_MAX_SECONDS: u64 = 30 * 24 * 3600;
pub const REASON_MAX: usize = 1024;
pub const BACKEND_REF_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const POLICY_MAX: usize = 64 * 1024;
/// Evidence as base64: a report with its certificate chain is a few KiB, a TDX quote under 16 KiB.
pub const EVIDENCE_MAX: usize = 512 * 1024;
/// An EAR JWT.
pub const EAR_MAX: usize = 64 * 1024;

/// `text` must be `bytes` bytes as lower-case hex.
fn check_hex(field: &'static str, text: &str, bytes: usize) -> Result<(), CvmError> {
    let ok = text.len() == 2 * bytes && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(CvmError::Hex { field, bytes })
    }
}

fn check_spec(spec: &CvmSpec) -> Result<(), CvmError> {
    let provider_ok = !spec.provider.is_empty()
        && spec.provider.len() <= 64
        && spec
            .provider
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !provider_ok {
        return Err(CvmError::Provider);
    }
    // The emulated agent protects nothing: it cannot be asked to be a TEE.
    if spec.provider == "local" && spec.platform.is_confidential() {
        return Err(CvmError::LocalIsInsecure);
    }
    if spec.vcpus == 0 || spec.vcpus > VCPUS_MAX {
        return Err(CvmError::Vcpus { max: VCPUS_MAX });
    }
    if !(MEMORY_MIN_MIB..=MEMORY_MAX_MIB).contains(&spec.memory_mib) {
        return Err(CvmError::Memory {
            min: MEMORY_MIN_MIB,
            max: MEMORY_MAX_MIB,
        });
    }
    let label_ok = |text: &str, min: usize| {
        (min..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if spec.labels.len() > 32 {
        return Err(CvmError::Label("at most 32 labels".into()));
    }
    if let Some((key, _)) = spec
        .labels
        .iter()
        .find(|(k, v)| !label_ok(k, 1) || !label_ok(v, 0))
    {
        return Err(CvmError::Label(key.chars().take(64).collect()));
    }
    if !(TTL_MIN_SECONDS..=TTL_MAX_SECONDS).contains(&spec.ttl_seconds) {
        return Err(CvmError::Ttl {
            max_days: TTL_MAX_SECONDS / 86_400,
        });
    }
    Ok(())
}

impl Aggregate for Cvm {
    const TYPE: &'static str = "cvm";
    type Command = CvmCommand;
    type Event = CvmEvent;
    type Error = CvmError;

    fn decide(&self, command: CvmCommand, ctx: &CommandContext) -> Result<Vec<CvmEvent>, CvmError> {
        use CvmCommand as C;
        use CvmStatus as S;
        let refuse = |action: &'static str| {
            Err(CvmError::State {
                status: self.status,
                action,
            })
        };
        match (self.status, command) {
            (
                S::New,
                C::Request {
                    id,
                    workspace,
                    spec,
                    run,
                },
            ) => {
                check_spec(&spec)?;
                let ttl = chrono::Duration::seconds(spec.ttl_seconds as i64);
                Ok(vec![CvmEvent::Requested(CvmRequested {
                    id,
                    workspace,
                    expires_at: ctx.now + ttl,
                    spec,
                    run,
                    requested_by: ctx.actor.clone(),
                    requested_at: ctx.now,
                })])
            }
            (S::New, _) => Err(CvmError::NotFound),
            (_, C::Request { .. }) => Err(CvmError::AlreadyExists),

            (
                S::Creating,
                C::AssignBackend {
                    backend,
                    reason,
                    hourly_cost_micros,
                },
            ) => {
                check_text("reason", &reason, REASON_MAX, true)?;
                Ok(vec![CvmEvent::BackendAssigned(CvmBackendAssigned {
                    backend,
                    reason,
                    hourly_cost_micros,
                    assigned_at: ctx.now,
                })])
            }
            (_, C::AssignBackend { .. }) => refuse("given a backend"),

            (
                S::Creating,
                C::MarkStarted {
                    backend_ref,
                    agent_address,
                    test_attestation_root,
                },
            ) if self.backend.is_some() => {
                check_text("backend_ref", &backend_ref, BACKEND_REF_MAX, true)?;
                if let Some(address) = &agent_address {
                    check_text("agent_address", address, BACKEND_REF_MAX, true)?;
                }
                if let Some(root) = &test_attestation_root {
                    check_text("test_attestation_root", root, DESCRIPTION_MAX, true)?;
                }
                Ok(vec![CvmEvent::Started(CvmStarted {
                    backend_ref,
                    agent_address,
                    test_attestation_root,
                    started_at: ctx.now,
                })])
            }
            (_, C::MarkStarted { .. }) => refuse("started"),

            (S::Starting | S::Offline, C::MarkOnline) => {
                Ok(vec![CvmEvent::Online(CvmOnline { at: ctx.now })])
            }
            (S::Online, C::MarkOnline) => Ok(vec![]),
            (_, C::MarkOnline) => refuse("online"),

            (S::Online, C::MarkOffline { last_heard }) => Ok(vec![CvmEvent::Offline(CvmOffline {
                last_heard,
                at: ctx.now,
            })]),
            (S::Offline, C::MarkOffline { .. }) => Ok(vec![]),
            (_, C::MarkOffline { .. }) => refuse("offline"),

            // A failed CVM may have left a machine behind: destroying it cleans that up.
            (S::Creating | S::Starting | S::Online | S::Offline | S::Failed, C::Destroy { reason }) => {
                Ok(vec![CvmEvent::DestroyRequested(CvmDestroyRequested {
                    reason,
                    requested_by: ctx.actor.clone(),
                    at: ctx.now,
                })])
            }
            (S::Destroying | S::Destroyed, C::Destroy { .. }) => Ok(vec![]),

            (S::Destroying, C::MarkDestroyed) => Ok(vec![CvmEvent::Destroyed(CvmDestroyed { at: ctx.now })]),
            (S::Destroyed, C::MarkDestroyed) => Ok(vec![]),
            (_, C::MarkDestroyed) => refuse("destroyed before its destruction was asked for"),

            (
                S::Starting | S::Online | S::Offline | S::Destroying,
                C::RecordAgentMessages { stream, messages },
            ) => {
                let mut seen = std::collections::HashSet::new();
                let mut events = Vec::new();
                for received in messages {
                    if self.recent_messages.contains(&received.digest)
                        || !seen.insert(received.digest.clone())
                    {
                        continue;
                    }
                    events.push(CvmEvent::AgentMessageReceived(CvmAgentMessageReceived {
                        stream,
                        digest: received.digest,
                        message: received.message,
                        received_at: ctx.now,
                    }));
                }
                Ok(events)
            }
            (_, C::RecordAgentMessages { .. }) => refuse("heard from"),

            (
                S::Online,
                C::RequestAttestation {
                    nonce,
                    agent_key_sha256,
                    expires_at,
                },
            ) => {
                check_hex("nonce", &nonce, 32)?;
                check_hex("agent_key_sha256", &agent_key_sha256, 32)?;
                if self.pending_nonces.contains_key(&nonce) || self.spent_nonces.contains(&nonce) {
                    return Err(CvmError::NonceUsed(nonce));
                }
                Ok(vec![CvmEvent::AttestationRequested(CvmAttestationRequested {
                    nonce,
                    agent_key_sha256,
                    expires_at,
                    requested_by: ctx.actor.clone(),
                    at: ctx.now,
                })])
            }
            (_, C::RequestAttestation { .. }) => refuse("asked for attestation"),
            (S::Starting | S::Online | S::Offline | S::Destroying, C::RecordAttestation(appraisal)) => {
                check_text("evidence_base64", &appraisal.evidence_base64, EVIDENCE_MAX, true)?;
                check_text("ear", &appraisal.ear, EAR_MAX, true)?;
                if let Some(root) = &appraisal.test_attestation_root {
                    check_text("test_attestation_root", root, DESCRIPTION_MAX, true)?;
                }
                if let Some(nonce) = &appraisal.nonce {
                    if self.spent_nonces.contains(nonce) {
                        return Err(CvmError::NonceUsed(nonce.clone()));
                    }
                    let Some(expires_at) = self.pending_nonces.get(nonce) else {
                        return Err(CvmError::NonceUnknown(nonce.clone()));
                    };
                    if ctx.now > *expires_at {
                        return Err(CvmError::NonceExpired {
                            nonce: nonce.clone(),
                            expired_at: expires_at.to_rfc3339(),
                        });
                    }
                }
                let mut appraisal = appraisal;
                appraisal.at = ctx.now;
                Ok(vec![CvmEvent::AttestationAppraised(appraisal)])
            }
            (_, C::RecordAttestation(_)) => refuse("attested"),

            (S::Starting | S::Online | S::Offline, C::Describe { description }) => {
                for (field, text) in [
                    ("ovmf_version", &description.ovmf_version),
                    ("cpu_type", &description.cpu_type),
                    ("kernel_cmdline", &description.kernel_cmdline),
                    ("eos_version", &description.eos_version),
                ] {
                    check_text(field, text, DESCRIPTION_MAX, false)?;
                }
                if let Some(policy) = &description.attestation_policy {
                    check_text("attestation_policy", policy, POLICY_MAX, false)?;
                }
                if self.description.as_ref() == Some(&description) {
                    return Ok(vec![]);
                }
                Ok(vec![CvmEvent::Described(CvmDescribed {
                    description,
                    at: ctx.now,
                })])
            }
            (_, C::Describe { .. }) => refuse("described"),

            (S::Failed, C::Fail { .. }) => Ok(vec![]),
            (S::Destroyed, C::Fail { .. }) => refuse("failed"),
            (_, C::Fail { reason }) => {
                check_text("reason", &reason, REASON_MAX, true)?;
                Ok(vec![CvmEvent::Failed(CvmFailed { reason, at: ctx.now })])
            }
        }
    }

    fn apply(&mut self, event: &CvmEvent) {
        self.status = event.status_after(self.status);
        match event {
            CvmEvent::Requested(e) => {
                self.id = Some(e.id);
                self.workspace = Some(e.workspace);
                self.spec = Some(e.spec.clone());
                self.run = e.run;
                self.expires_at = Some(e.expires_at);
            }
            CvmEvent::BackendAssigned(e) => {
                self.backend = Some(e.backend);
                self.hourly_cost_micros = e.hourly_cost_micros;
            }
            CvmEvent::Started(e) => {
                self.backend_ref = Some(e.backend_ref.clone());
                self.agent_address = e.agent_address.clone();
                self.test_attestation_root = e.test_attestation_root.clone();
                self.started_at = Some(e.started_at);
            }
            CvmEvent::Online(_) | CvmEvent::Offline(_) => {}
            CvmEvent::DestroyRequested(e) => self.destroy_reason = Some(e.reason),
            CvmEvent::Destroyed(e) => self.destroyed_at = Some(e.at),
            CvmEvent::Failed(e) => self.failure = Some(e.reason.clone()),
            CvmEvent::Described(e) => self.description = Some(e.description.clone()),
            CvmEvent::AttestationRequested(e) => {
                self.pending_nonces.insert(e.nonce.clone(), e.expires_at);
            }
            CvmEvent::AttestationAppraised(e) => {
                if let Some(nonce) = &e.nonce {
                    self.pending_nonces.remove(nonce);
                    self.spent_nonces.insert(nonce.clone());
                }
                self.attestation = Some(e.verdict.outcome);
            }
            CvmEvent::AgentMessageReceived(e) => {
                if self.recent_messages.len() == RECENT_MESSAGES {
                    self.recent_messages.pop_front();
                }
                self.recent_messages.push_back(e.digest.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
