//! The compliance report: what an auditor of a confidential computation asks, for a computation or for
//! one of its runs, assembled from the event log. Who defined the computation and when, its
//! participants, roles and keys, the algorithm and datasets by digest, the consents, the attestation
//! verdict over which evidence, who delivered and received what, when the CVM was destroyed and its
//! certificates revoked, how the run ended — each fact with the place in the log it comes from
//! (`<aggregate type>/<id>`, stream sequence, index, event id), so an investigator finds it with
//! `prism replay`, and the whole report as of one position of the log.
//!
//! Every fact is read from the aggregates' own histories (verified as they are read, folded by the
//! domain's `apply`), up to the position the report is built at; the read models only say which runs
//! a computation has and which certificates a CVM was issued, and are waited for up to that position.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use prism_attestation::{Failure, Outcome, Policy};
use prism_domain::Aggregate;
use prism_domain::access::Permission;
use prism_domain::certificate::{Certificate, CertificateEvent};
use prism_domain::computation::{Computation, ComputationEvent, ComputationStatus};
use prism_domain::cvm::{Cvm, CvmEvent, PolicySource};
use prism_domain::run::{Manifest, ReceiptKind, Run, RunEvent, RunStatus, RunUsage};
use prism_domain::{CertificateId, ComputationId, CvmId, RunId, WorkspaceId};
use prism_projections::{CERTIFICATES, CertificateFilter, PageRequest, RUNS, RunFilter};
use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{Action, App, AppError, Caller, ReadOptions};

/// The name and version of the report's shape, inside every report.
pub const REPORT_FORMAT: &str = "prism.compliance-report.v1";

/// How many runs or certificate lineages one read-model page brings.
const PAGE: u32 = 100;

#[derive(Debug, Clone, Copy)]
pub struct Reports<'a> {
    app: &'a App,
}

/// A compliance report of a computation, or of one of its runs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(title = "ComplianceReport")]
pub struct ComplianceReport {
    /// `prism.compliance-report.v1`.
    pub format: String,
    /// What the report is about: the computation and its runs, or one run.
    pub scope: ReportScope,
    pub workspace: WorkspaceId,
    /// The stream sequence of the log's last commit when the report was built: every fact below
    /// comes from a commit at or before it (`prism replay … --until <log_position>`).
    pub log_position: u64,
    pub generated_at: DateTime<Utc>,
    pub computation: ComputationFacts,
    /// The participants and their roles: for a computation as defined now, for a run as its
    /// manifest names them.
    pub participants: Vec<ParticipantFacts>,
    /// The manifest: for a computation its current one, for a run the one it executed.
    pub manifest: ManifestFacts,
    /// For a computation every consent recorded, to whichever manifest; for a run the consents its
    /// request carried, to its manifest.
    pub consents: Vec<ConsentFacts>,
    /// The computation's runs, newest first (a computation's report only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunSummary>,
    /// Everything about the run (a run's report only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunFacts>,
}

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportScope {
    Computation,
    Run,
}

/// The place of one event in the log: how an investigator finds the fact it records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LogRef {
    /// `<aggregate type>/<aggregate id>`, as `prism replay <type> <id>` takes it.
    pub aggregate: String,
    /// The stream sequence of the event's commit (`prism.ev.<type>.<id>` on `PRISM_EVENTS`).
    pub sequence: u64,
    /// The event's index in its commit; `<sequence>.<index>` is its position in the audit feed.
    pub index: u32,
    /// The event's CloudEvents id.
    pub event_id: String,
    /// Its CloudEvents type, as recorded (`io.prism.run.closed.v1`).
    pub event_type: String,
}

/// When something happened, and where the log says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    /// Who recorded it (`user:<id>`, `service:<name>`, …).
    pub actor: String,
    pub recorded: LogRef,
}

/// The computation: who defined it and when, what it is called.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ComputationFacts {
    pub id: ComputationId,
    pub name: String,
    pub description: String,
    /// `active` or `archived`.
    pub status: String,
    /// The actor of its creation event.
    pub defined_by: String,
    pub defined_at: DateTime<Utc>,
    pub defined: LogRef,
    /// The id of the manifest a run requested now would execute.
    pub current_manifest_id: String,
    /// Whether every participant holding a key has signed one manifest (changes need their
    /// approval from then on).
    pub approved: bool,
}

/// A participant and its roles.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ParticipantFacts {
    /// The user id, or the e-mail address of one who has not joined yet.
    pub id: String,
    pub roles: Vec<String>,
    /// Custom roles of the workspace given in this computation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_roles: Vec<String>,
    /// The registered public key, when it holds one (every signer does).
    pub public_key: Option<KeyFacts>,
}

/// A registered public key, by its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyFacts {
    /// SHA-256 (hex) of the DER SubjectPublicKeyInfo.
    pub spki_sha256: String,
    /// `Ed25519`, `EC P-256`, `EC P-384`, `EC P-521` or `RSA`.
    pub algorithm: String,
}

/// A manifest: what the participants consent to.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ManifestFacts {
    /// SHA-256 (hex) of its canonical encoding (`docs/manifest.md`).
    pub id: String,
    pub algorithm: Option<AssetFacts>,
    pub datasets: Vec<AssetFacts>,
    pub result_consumers: Vec<String>,
    /// SHA-256 (hex) of the set of attestation policies a run may be appraised against.
    pub attestation_policy_sha256: String,
    pub max_run_seconds: u64,
}

/// An algorithm or a dataset, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AssetFacts {
    pub file_name: String,
    pub provider: String,
    pub sha3_256: String,
}

/// One participant's consent to one manifest.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ConsentFacts {
    pub participant: String,
    pub manifest_id: String,
    /// The signature over `prism-consent-v1:<manifest id>`, base64, verified with the participant's
    /// key when it was recorded.
    pub signature: String,
    /// When it was signed, and the event of the computation that recorded it (absent only if the
    /// run's request carried a consent the computation's history does not show).
    pub signed: Option<Stamp>,
}

/// A run, in brief (in a computation's report).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunSummary {
    pub id: RunId,
    pub manifest_id: String,
    pub status: RunStatus,
    pub requested: Stamp,
    pub ending: Option<EndingFacts>,
    pub closed: Option<Stamp>,
}

/// How a run ended early: stopped, failed or timed out.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EndingFacts {
    /// `stopped`, `failed` or `timed_out`.
    pub outcome: String,
    /// The state it was in.
    pub during: RunStatus,
    pub reason: String,
    pub by: String,
    pub recorded: Stamp,
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunFacts {
    pub id: RunId,
    pub status: RunStatus,
    pub manifest_id: String,
    pub requested: Stamp,
    pub deadline: Option<DateTime<Utc>>,
    /// The ended run this one tried again.
    pub retry_of: Option<RunId>,
    /// The appraisal that let the participants' inputs in (or, for a run that never got that far,
    /// the CVM's last appraisal).
    pub attestation: Option<AttestationFacts>,
    /// What the providers delivered to the agent: algorithm and dataset receipts.
    pub uploads: Vec<ReceiptFacts>,
    /// Who received the result, when, and the SHA3-256 of what they received.
    pub results: Vec<ReceiptFacts>,
    pub completed: Option<Stamp>,
    pub ending: Option<EndingFacts>,
    pub closed: Option<Stamp>,
    /// What its CVM used, recorded as it closed.
    pub usage: Option<RunUsage>,
    pub cvm: Option<CvmFacts>,
    /// The certificates issued for the run's CVM (its agent's client and server certificates).
    pub certificates: Vec<CertificateFacts>,
    /// Every change of the run's state, in order.
    pub timeline: Vec<Transition>,
}

/// An appraisal of the CVM's evidence.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AttestationFacts {
    pub outcome: Outcome,
    /// The platform the machine declared.
    pub platform: String,
    /// SHA-256 (hex) of the evidence exactly as the CVM's `attestation_appraised` event records it.
    pub evidence_sha256: String,
    /// Whether the verdict names that same digest.
    pub verdict_names_evidence: bool,
    /// Whether the run's `attested` event names this evidence: the appraisal that let inputs in.
    pub admitted_inputs: bool,
    /// SHA-256 (hex) of the policy's canonical JSON.
    pub policy_sha256: String,
    pub policy: Policy,
    pub policy_source: PolicySource,
    /// Every failed check, the first one first (a refused verdict's).
    pub failures: Vec<Failure>,
    /// Statements a reader must not miss (no hardware protection, no freshness).
    pub warnings: Vec<String>,
    /// The nonce the evidence answered; absent for an agent's start-up report.
    pub nonce: Option<String>,
    /// The verdict as an EAR (JWT signed by the platform; `GET /attestation/jwks.json`).
    pub ear: String,
    pub appraised: Stamp,
    /// The run's `attested` event, when this appraisal let inputs in.
    pub attested: Option<LogRef>,
}

/// A participant's receipt.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReceiptFacts {
    pub participant: String,
    pub kind: ReceiptKind,
    pub file_name: String,
    pub sha3_256: String,
    /// For an upload, whether the manifest declares this file with this digest from this
    /// participant; for a result, whether the manifest names the participant a result consumer.
    pub as_declared: bool,
    pub recorded: Stamp,
}

/// The run's CVM.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CvmFacts {
    pub id: CvmId,
    /// `creating`, …, `destroyed` or `failed`.
    pub status: String,
    pub backend: Option<String>,
    pub platform: Option<String>,
    pub requested: Stamp,
    pub started_at: Option<DateTime<Utc>>,
    /// Why it was destroyed (`run_ended`, `requested`, `ttl_expired`, `failed`).
    pub destroy_reason: Option<String>,
    pub destroyed: Option<Stamp>,
    pub failure: Option<String>,
}

/// One certificate lineage of the run's CVM.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CertificateFacts {
    pub id: CertificateId,
    /// `agent_client` or `agent_server`.
    pub profile: String,
    pub common_name: String,
    pub issued: Stamp,
    /// Every certificate of the lineage (renewals keep the key, with a new serial).
    pub serials: Vec<SerialFacts>,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub revoked: Option<RevocationFacts>,
}

/// One certificate of a lineage.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SerialFacts {
    /// Lower-case hexadecimal, as the certificates API and `GET /{ws}/certs/{serial}` write it.
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Whether the CRL the platform serves now lists it (`null` when it was not looked at: nothing
    /// of the lineage is revoked). An expired certificate leaves the CRL.
    pub on_crl: Option<bool>,
}

/// A lineage's revocation.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RevocationFacts {
    /// RFC 5280 reason (`cessation_of_operation`, …).
    pub reason: String,
    pub serials: Vec<String>,
    pub recorded: Stamp,
}

/// One change of a run's state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Transition {
    pub from: RunStatus,
    pub to: RunStatus,
    /// The run's event that moved it (`requested`, `attested`, …).
    pub event: String,
    pub recorded: Stamp,
}

/// The report's JSON Schema (`schemas/prism.compliance-report.v1.json`).
pub fn schema() -> schemars::Schema {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<ComplianceReport>();
    schema.insert(
        "$id".into(),
        format!("https://prism.dev/schemas/{REPORT_FORMAT}.json").into(),
    );
    schema
}

/// One event of an aggregate's history, typed, with its place in the log.
struct Entry<E> {
    stamp: Stamp,
    event: E,
}

impl<'a> Reports<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    /// The report of a computation (`computation.read`): its definition, participants, current
    /// manifest, every consent and every run in brief.
    pub async fn computation(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ComputationId,
    ) -> Result<ComplianceReport, AppError> {
        self.app
            .authorize(
                caller,
                Action::on_computation(Permission::ComputationRead, workspace, id),
            )
            .await?;
        let position = self.position().await?;
        let (history, state) = self.computation_at(workspace, id, position).await?;
        let manifest = state.manifest().expect("an existing computation has a manifest");
        let consents = history
            .iter()
            .filter_map(|entry| match &entry.event {
                ComputationEvent::ConsentSigned(signed) => Some(ConsentFacts {
                    participant: signed.participant.to_string(),
                    manifest_id: signed.manifest_id.clone(),
                    signature: signed.signature.clone(),
                    signed: Some(entry.stamp.clone()),
                }),
                _ => None,
            })
            .collect();
        let mut runs = Vec::new();
        for run in self.runs_of(workspace, id, position).await? {
            let history = self.history::<Run>(&run.to_string(), position).await?;
            if let Some(summary) = summary(run, &history) {
                runs.push(summary);
            }
        }
        Ok(ComplianceReport {
            format: REPORT_FORMAT.into(),
            scope: ReportScope::Computation,
            workspace,
            log_position: position,
            generated_at: Utc::now(),
            computation: computation_facts(id, &history, &state)?,
            participants: participants_defined(&state),
            manifest: manifest_facts(&manifest.id(), &manifest),
            consents,
            runs,
            run: None,
        })
    }

    /// The report of one run (`computation.read` on its computation): its manifest and the
    /// consents to it, the attestation, the receipts, its CVM and certificates, how it ended.
    pub async fn run(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: RunId,
    ) -> Result<ComplianceReport, AppError> {
        // A run of another workspace is "not found" before anything is authorised.
        let now = self.app.runs().get(caller, workspace, id).await?;
        let computation = now.computation.expect("a requested run names its computation");
        let position = self.position().await?;
        let history = self.history::<Run>(&id.to_string(), position).await?;
        let run = Run::from_events(history.iter().map(|e| &e.event));
        let (Some(manifest), Some(manifest_id), Some(requested)) = (
            run.manifest.as_ref(),
            run.manifest_id.clone(),
            history.first().map(|e| e.stamp.clone()),
        ) else {
            return Err(AppError::not_found(format!("run {id} not found")));
        };
        let (computation_history, computation_state) =
            self.computation_at(workspace, computation, position).await?;

        // The consents the request carried, each with the event that recorded it.
        let consents = run
            .consents
            .iter()
            .map(|(participant, signature)| ConsentFacts {
                participant: participant.clone(),
                manifest_id: manifest_id.clone(),
                signature: signature.clone(),
                signed: computation_history
                    .iter()
                    .rev()
                    .find(|entry| {
                        matches!(&entry.event, ComputationEvent::ConsentSigned(signed)
                            if signed.participant.to_string() == *participant
                                && signed.manifest_id == manifest_id
                                && signed.signature == *signature)
                    })
                    .map(|entry| entry.stamp.clone()),
            })
            .collect();

        let cvm = match run.cvm {
            Some(cvm) => Some(self.cvm_facts(cvm, &run, position).await?),
            None => None,
        };
        let certificates = match run.cvm {
            Some(cvm) => self.certificates_of(workspace, cvm, position).await?,
            None => Vec::new(),
        };
        let attested = history.iter().find_map(|entry| match &entry.event {
            RunEvent::Attested(_) => Some(entry.stamp.recorded.clone()),
            _ => None,
        });
        let attestation = match run.cvm {
            Some(cvm) => {
                self.attestation_of(cvm, run.evidence_sha256.as_deref(), attested, position)
                    .await?
            }
            None => None,
        };
        let mut uploads = Vec::new();
        let mut results = Vec::new();
        for entry in &history {
            if let RunEvent::ReceiptRecorded(receipt) = &entry.event {
                let as_declared = match receipt.kind {
                    ReceiptKind::Result => manifest.result_consumers.contains(&receipt.participant),
                    ReceiptKind::Algorithm => manifest.algorithm.as_ref().is_some_and(|a| {
                        a.provider == receipt.participant
                            && a.file_name == receipt.file_name
                            && a.sha3_256 == receipt.sha3_256
                    }),
                    ReceiptKind::Dataset => manifest.datasets.iter().any(|d| {
                        d.provider == receipt.participant
                            && d.file_name == receipt.file_name
                            && d.sha3_256 == receipt.sha3_256
                    }),
                };
                let facts = ReceiptFacts {
                    participant: receipt.participant.clone(),
                    kind: receipt.kind,
                    file_name: receipt.file_name.clone(),
                    sha3_256: receipt.sha3_256.clone(),
                    as_declared,
                    recorded: entry.stamp.clone(),
                };
                match receipt.kind {
                    ReceiptKind::Result => results.push(facts),
                    ReceiptKind::Algorithm | ReceiptKind::Dataset => uploads.push(facts),
                }
            }
        }
        let participants = manifest
            .participants
            .iter()
            .map(|participant| ParticipantFacts {
                id: participant.id.clone(),
                roles: participant.roles.clone(),
                custom_roles: Vec::new(),
                public_key: participant.public_key.as_ref().map(|key| {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(key)
                        .unwrap_or_default();
                    key_facts(&der)
                }),
            })
            .collect();
        let facts = RunFacts {
            id,
            status: run.status,
            manifest_id: manifest_id.clone(),
            requested,
            deadline: run.deadline,
            retry_of: run.retry_of,
            attestation,
            uploads,
            results,
            completed: history.iter().find_map(|entry| match &entry.event {
                RunEvent::Completed(_) => Some(entry.stamp.clone()),
                _ => None,
            }),
            ending: ending(&history),
            closed: closed(&history),
            usage: run.usage.clone(),
            cvm,
            certificates,
            timeline: timeline(&history),
        };
        Ok(ComplianceReport {
            format: REPORT_FORMAT.into(),
            scope: ReportScope::Run,
            workspace,
            log_position: position,
            generated_at: Utc::now(),
            computation: computation_facts(computation, &computation_history, &computation_state)?,
            participants,
            manifest: manifest_facts(&manifest_id, manifest),
            consents,
            runs: Vec::new(),
            run: Some(facts),
        })
    }

    /// The position the report is built at: the log's last commit now.
    async fn position(&self) -> Result<u64, AppError> {
        let log = self.app.log().clone();
        self.app.bounded(async { Ok(log.last_sequence().await?) }).await
    }

    /// Every event of aggregate `A`/`id` up to `position`, verified as read and typed (older
    /// versions upcast), each with its place in the log.
    async fn history<A: Aggregate>(&self, id: &str, position: u64) -> Result<Vec<Entry<A::Event>>, AppError> {
        let log = self.app.log().clone();
        let subject = log
            .subjects()
            .aggregate(A::TYPE, id)
            .map_err(AppError::internal)?;
        let commits = self.app.bounded(async { Ok(log.load(&subject).await?) }).await?;
        let mut entries = Vec::new();
        for commit in commits.into_iter().take_while(|c| c.sequence <= position) {
            for (index, envelope) in commit.events.into_iter().enumerate() {
                let event = envelope.decode::<A::Event>(A::TYPE).map_err(|e| {
                    AppError::internal(format!(
                        "event {} of {} {id} cannot be read: {e}",
                        envelope.id,
                        A::TYPE
                    ))
                })?;
                entries.push(Entry {
                    stamp: Stamp {
                        at: envelope.time,
                        actor: envelope.actor,
                        recorded: LogRef {
                            aggregate: format!("{}/{id}", A::TYPE),
                            sequence: commit.sequence,
                            index: u32::try_from(index).unwrap_or(u32::MAX),
                            event_id: envelope.id,
                            event_type: envelope.ty,
                        },
                    },
                    event,
                });
            }
        }
        Ok(entries)
    }

    /// The computation's history and state up to `position`; "not found" unless it is of `workspace`.
    async fn computation_at(
        &self,
        workspace: WorkspaceId,
        id: ComputationId,
        position: u64,
    ) -> Result<(Vec<Entry<ComputationEvent>>, Computation), AppError> {
        let history = self.history::<Computation>(&id.to_string(), position).await?;
        let state = Computation::from_events(history.iter().map(|e| &e.event));
        if state.workspace_id != Some(workspace) || state.status == ComputationStatus::New {
            return Err(AppError::not_found(format!("computation {id} not found")));
        }
        Ok((history, state))
    }

    /// The runs of `computation` the runs read model holds once it has reached `position`.
    async fn runs_of(
        &self,
        workspace: WorkspaceId,
        computation: ComputationId,
        position: u64,
    ) -> Result<Vec<RunId>, AppError> {
        self.app
            .wait_read(&[RUNS], ReadOptions::at_least(position))
            .await?;
        let models = self.app.read_models()?;
        let filter = RunFilter {
            computation: Some(computation),
            ..RunFilter::default()
        };
        let mut runs = Vec::new();
        let mut after = None;
        loop {
            let page = models
                .runs(workspace, &filter, PageRequest { after, limit: PAGE })
                .await?;
            runs.extend(page.items.into_iter().map(|run| run.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(runs),
            }
        }
    }

    async fn cvm_facts(&self, id: CvmId, run: &Run, position: u64) -> Result<CvmFacts, AppError> {
        let history = self.history::<Cvm>(&id.to_string(), position).await?;
        let state = Cvm::from_events(history.iter().map(|e| &e.event));
        let requested = history
            .first()
            .map(|e| e.stamp.clone())
            .ok_or_else(|| AppError::internal(format!("the CVM {id} of run {:?} has no events", run.id)))?;
        Ok(CvmFacts {
            id,
            status: state.status.as_str().to_owned(),
            backend: state.backend.map(|b| b.to_string()),
            platform: state.spec.as_ref().map(|s| s.platform.as_str().to_owned()),
            requested,
            started_at: state.started_at,
            destroy_reason: state.destroy_reason.map(|reason| {
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }),
            destroyed: history.iter().find_map(|entry| match &entry.event {
                CvmEvent::Destroyed(_) => Some(entry.stamp.clone()),
                _ => None,
            }),
            failure: state.failure,
        })
    }

    /// The appraisal whose evidence the run's `attested` event names; without one (a run that
    /// failed attesting, or never got there) the last appraisal of fresh evidence, else the last.
    async fn attestation_of(
        &self,
        cvm: CvmId,
        admitted: Option<&str>,
        attested: Option<LogRef>,
        position: u64,
    ) -> Result<Option<AttestationFacts>, AppError> {
        let history = self.history::<Cvm>(&cvm.to_string(), position).await?;
        let appraisals: Vec<(AttestationFacts, bool)> = history
            .iter()
            .filter_map(|entry| match &entry.event {
                CvmEvent::AttestationAppraised(appraisal) => Some((appraisal, &entry.stamp)),
                _ => None,
            })
            .map(|(appraisal, stamp)| {
                let evidence = base64::engine::general_purpose::STANDARD
                    .decode(&appraisal.evidence_base64)
                    .unwrap_or_default();
                let evidence_sha256 = hex::encode(Sha256::digest(&evidence));
                let admitted_inputs = admitted == Some(evidence_sha256.as_str());
                let fresh = appraisal.nonce.is_some();
                let verdict = &appraisal.verdict;
                (
                    AttestationFacts {
                        outcome: verdict.outcome,
                        platform: serde_json::to_value(verdict.platform)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        verdict_names_evidence: hex::encode(&verdict.evidence_sha256.0) == evidence_sha256,
                        evidence_sha256,
                        admitted_inputs,
                        policy_sha256: hex::encode(&verdict.policy_sha256.0),
                        policy: appraisal.policy.clone(),
                        policy_source: appraisal.policy_source.clone(),
                        failures: verdict.failures.clone(),
                        warnings: verdict.warnings.clone(),
                        nonce: appraisal.nonce.clone(),
                        ear: appraisal.ear.clone(),
                        appraised: stamp.clone(),
                        attested: admitted_inputs.then(|| attested.clone()).flatten(),
                    },
                    fresh,
                )
            })
            .collect();
        let chosen = appraisals
            .iter()
            .rposition(|(facts, _)| facts.admitted_inputs)
            .or_else(|| appraisals.iter().rposition(|(_, fresh)| *fresh))
            .or_else(|| appraisals.len().checked_sub(1));
        Ok(chosen.map(|i| appraisals[i].0.clone()))
    }

    /// The certificate lineages issued for `cvm`, from their own histories; which ones there are
    /// comes from the certificates read model once it has reached `position`.
    async fn certificates_of(
        &self,
        workspace: WorkspaceId,
        cvm: CvmId,
        position: u64,
    ) -> Result<Vec<CertificateFacts>, AppError> {
        self.app
            .wait_read(&[CERTIFICATES], ReadOptions::at_least(position))
            .await?;
        let models = self.app.read_models()?;
        let filter = CertificateFilter {
            entity_id: Some(cvm.to_string()),
            status: None,
        };
        let mut lineages = Vec::new();
        let mut after = None;
        loop {
            let page = models
                .certificates(workspace, &filter, PageRequest { after, limit: PAGE })
                .await?;
            lineages.extend(page.items.into_iter().map(|c| c.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut certificates = Vec::new();
        for lineage in lineages {
            let history = self
                .history::<Certificate>(&lineage.to_string(), position)
                .await?;
            let state = Certificate::from_events(history.iter().map(|e| &e.event));
            let Some(issued) = history.first().map(|e| e.stamp.clone()) else {
                continue;
            };
            let revoked = history.iter().find_map(|entry| match &entry.event {
                CertificateEvent::Revoked(revoked) => Some(RevocationFacts {
                    reason: revoked.reason.as_str().to_owned(),
                    serials: revoked.serials.iter().map(ToString::to_string).collect(),
                    recorded: entry.stamp.clone(),
                }),
                _ => None,
            });
            certificates.push(CertificateFacts {
                id: lineage,
                profile: state.profile.map(|p| p.as_str().to_owned()).unwrap_or_default(),
                common_name: state.subject.common_name.clone(),
                issued,
                serials: state
                    .issuances
                    .iter()
                    .map(|issuance| SerialFacts {
                        serial: issuance.serial.to_string(),
                        not_before: issuance.not_before,
                        not_after: issuance.not_after,
                        on_crl: None,
                    })
                    .collect(),
                status: serde_json::to_value(state.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                revoked,
            });
        }
        certificates.sort_by_key(|c| c.issued.recorded.sequence);
        // Whether the CRL relying parties download lists each revoked certificate.
        if certificates.iter().any(|c| c.revoked.is_some()) {
            let crl = self.app.certificates().crl().await?;
            let listed = crl_serials(&crl.der)?;
            for certificate in certificates.iter_mut().filter(|c| c.revoked.is_some()) {
                for serial in &mut certificate.serials {
                    serial.on_crl = Some(listed.contains(&serial.serial));
                }
            }
        }
        Ok(certificates)
    }
}

/// The serials a DER CRL lists, in the hexadecimal form of [`SerialFacts::serial`].
fn crl_serials(der: &[u8]) -> Result<Vec<String>, AppError> {
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(AppError::internal)?;
    Ok(crl
        .iter_revoked_certificates()
        .filter_map(|revoked| prism_domain::certificate::Serial::from_bytes(revoked.raw_serial()).ok())
        .map(|serial| serial.to_string())
        .collect())
}

fn computation_facts(
    id: ComputationId,
    history: &[Entry<ComputationEvent>],
    state: &Computation,
) -> Result<ComputationFacts, AppError> {
    let Some((created, entry)) = history.iter().find_map(|entry| match &entry.event {
        ComputationEvent::Created(created) => Some((created, entry)),
        _ => None,
    }) else {
        return Err(AppError::internal(format!(
            "computation {id} has no creation event"
        )));
    };
    Ok(ComputationFacts {
        id,
        name: state.definition.name.clone(),
        description: state.definition.description.clone(),
        status: match state.status {
            ComputationStatus::Archived => "archived",
            ComputationStatus::Active | ComputationStatus::New => "active",
        }
        .into(),
        defined_by: created.created_by.0.clone(),
        defined_at: created.created_at,
        defined: entry.stamp.recorded.clone(),
        current_manifest_id: state.manifest().map(|m| m.id()).unwrap_or_default(),
        approved: state.approved,
    })
}

fn participants_defined(state: &Computation) -> Vec<ParticipantFacts> {
    state
        .definition
        .participants
        .iter()
        .map(|participant| {
            let mut roles: Vec<String> = participant.roles.iter().map(ToString::to_string).collect();
            roles.sort();
            ParticipantFacts {
                id: participant.id.to_string(),
                roles,
                custom_roles: participant
                    .custom_roles
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
                public_key: participant.public_key.as_ref().map(|key| key_facts(&key.der())),
            }
        })
        .collect()
}

fn manifest_facts(id: &str, manifest: &Manifest) -> ManifestFacts {
    let asset = |a: &prism_domain::run::manifest::ManifestAsset| AssetFacts {
        file_name: a.file_name.clone(),
        provider: a.provider.clone(),
        sha3_256: a.sha3_256.clone(),
    };
    ManifestFacts {
        id: id.to_owned(),
        algorithm: manifest.algorithm.as_ref().map(asset),
        datasets: manifest.datasets.iter().map(asset).collect(),
        result_consumers: manifest.result_consumers.clone(),
        attestation_policy_sha256: manifest.attestation_policy_sha256.clone(),
        max_run_seconds: manifest.limits.max_run_seconds,
    }
}

/// A key's fingerprint, and what kind of key it is.
fn key_facts(der: &[u8]) -> KeyFacts {
    use x509_parser::prelude::FromDer as _;
    let algorithm = match x509_parser::x509::SubjectPublicKeyInfo::from_der(der) {
        Ok((_, spki)) => {
            let oid = spki.algorithm.algorithm.to_id_string();
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match (oid.as_str(), curve.as_deref()) {
                ("1.3.101.112", _) => "Ed25519".to_owned(),
                ("1.2.840.113549.1.1.1", _) => "RSA".to_owned(),
                ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "EC P-256".to_owned(),
                ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "EC P-384".to_owned(),
                ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => "EC P-521".to_owned(),
                (other, _) => other.to_owned(),
            }
        }
        Err(_) => "unknown".to_owned(),
    };
    KeyFacts {
        spki_sha256: hex::encode(Sha256::digest(der)),
        algorithm,
    }
}

fn ending(history: &[Entry<RunEvent>]) -> Option<EndingFacts> {
    history.iter().find_map(|entry| {
        let (outcome, ending) = match &entry.event {
            RunEvent::StopRequested(ending) => ("stopped", ending),
            RunEvent::Failed(ending) => ("failed", ending),
            RunEvent::TimedOut(ending) => ("timed_out", ending),
            _ => return None,
        };
        Some(EndingFacts {
            outcome: outcome.into(),
            during: ending.during,
            reason: ending.reason.clone(),
            by: ending.by.0.clone(),
            recorded: entry.stamp.clone(),
        })
    })
}

fn closed(history: &[Entry<RunEvent>]) -> Option<Stamp> {
    history.iter().find_map(|entry| match &entry.event {
        RunEvent::Closed(_) => Some(entry.stamp.clone()),
        _ => None,
    })
}

/// Every change of the run's state, as the domain folds its events.
fn timeline(history: &[Entry<RunEvent>]) -> Vec<Transition> {
    use prism_domain::DomainEvent as _;
    let mut state = Run::default();
    let mut transitions = Vec::new();
    for entry in history {
        let from = state.status;
        state.apply(&entry.event);
        if state.status != from {
            transitions.push(Transition {
                from,
                to: state.status,
                event: entry.event.name().to_owned(),
                recorded: entry.stamp.clone(),
            });
        }
    }
    transitions
}

/// A run in brief; `None` for a run with no events up to the report's position.
fn summary(id: RunId, history: &[Entry<RunEvent>]) -> Option<RunSummary> {
    let run = Run::from_events(history.iter().map(|e| &e.event));
    Some(RunSummary {
        id,
        manifest_id: run.manifest_id?,
        status: run.status,
        requested: history.first()?.stamp.clone(),
        ending: ending(history),
        closed: closed(history),
    })
}

#[cfg(test)]
mod tests {
    use prism_domain::testing::keys;
    use prism_domain::values::PublicKey;

    use super::*;

    #[test]
    fn a_key_is_named_by_its_kind_and_the_sha256_of_its_subject_public_key_info() {
        for (pem, algorithm) in [
            (keys::ED25519, "Ed25519"),
            (keys::P256, "EC P-256"),
            (keys::P384_COMPRESSED, "EC P-384"),
            (keys::P521, "EC P-521"),
            (keys::RSA_2048, "RSA"),
        ] {
            let der = PublicKey::parse(pem).unwrap().der();
            let facts = key_facts(&der);
            assert_eq!(facts.algorithm, algorithm);
            assert_eq!(facts.spki_sha256, hex::encode(Sha256::digest(&der)));
        }
        assert_eq!(key_facts(b"not a key").algorithm, "unknown");
    }

    #[test]
    fn the_schema_names_itself_and_requires_the_log_position() {
        let schema = serde_json::to_value(schema()).unwrap();
        assert_eq!(
            schema["$id"],
            "https://prism.dev/schemas/prism.compliance-report.v1.json"
        );
        let required = schema["required"].as_array().unwrap();
        for field in [
            "format",
            "scope",
            "log_position",
            "computation",
            "manifest",
            "consents",
        ] {
            assert!(required.contains(&field.into()), "{field}");
        }
    }
}
