//! Attestation of CVMs: their evidence appraised against the policy that applies, the verdict and
//! the evidence recorded on the CVM, the verdict issued as a signed EAR, and the key relying parties
//! check EARs with (JWKS).
//!
//! The platform appraises what the agents' channel records: a Cocos agent's start-up report arrives
//! as an `attestation_report` agent message, over SHA-512 of its client certificate's PEM file —
//! the certificate and chain the platform issued and handed to its backend, so the platform knows
//! those bytes. It is bound to the certificate, not fresh; the verdict says so.
//!
//! Evidence from machines without a TEE (the local backend's emulated agent, a real agent in NoCC
//! mode) is accepted only in [`Mode::InsecureDevelopment`], never called verified. The emulated
//! agent's reports are signed by a test-only chain whose root its backend recorded when it started
//! it; they are checked against that root and the policy all the same.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use prism_attestation::ear::{EarSigner, Subject};
use prism_attestation::none::NoneVerifier;
use prism_attestation::snp::{SnpVerifier, VcekCache};
use prism_attestation::{Appraiser, Binding, Expected, Mode, Nonce, Platform, Policy, Verdict};
use prism_domain::access::Permission;
use prism_domain::certificate::Serial;
use prism_domain::cvm::{ConfidentialPlatform, Cvm, CvmAttestationAppraised, CvmCommand, PolicySource};
use prism_domain::{CvmId, WorkspaceId};
use prism_projections::CVMS;
use tokio::sync::OnceCell;

use crate::{Action, App, AppError, Caller, ErrorKind, ReadOptions};

/// The sealed key the platform signs EARs with.
const EAR_KEY: &str = "attestation-ear-signing-key";

/// How long an agent has to answer a fresh attestation request with its nonce.
pub const NONCE_LIFETIME: chrono::Duration = chrono::Duration::minutes(2);

/// Evidence to appraise, and what it had to carry.
struct Appraisal<'a> {
    evidence: &'a [u8],
    evidence_base64: String,
    expected: &'a Expected,
    nonce: Option<String>,
}

/// How the platform appraises evidence.
#[derive(Debug, Clone, Default)]
pub struct AttestationConfig {
    /// [`Mode::Secure`] unless the platform runs for development (`prism up`).
    pub mode: Mode,
    /// VCEKs for reports that come without one (AMD KDS layout, see
    /// [`prism_attestation::snp::VcekCache`]); nothing is fetched from the network.
    pub vcek_cache: Option<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct AttestationState {
    config: AttestationConfig,
    /// AMD's roots, with the chains verified so far remembered.
    amd: OnceLock<Arc<SnpVerifier>>,
    #[cfg(feature = "tdx")]
    intel: OnceLock<Arc<prism_attestation::tdx::TdxVerifier>>,
    signer: OnceCell<Arc<EarSigner>>,
}

impl AttestationState {
    pub(crate) fn new(config: AttestationConfig) -> Self {
        Self {
            config,
            amd: OnceLock::new(),
            #[cfg(feature = "tdx")]
            intel: OnceLock::new(),
            signer: OnceCell::new(),
        }
    }
}

/// The attestation service.
#[derive(Debug, Clone, Copy)]
pub struct Attestations<'a> {
    app: &'a App,
}

fn internal(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::internal(format!("{what}: {e}"))
}

impl<'a> Attestations<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    fn state(&self) -> &AttestationState {
        &self.app.inner.attestation
    }

    /// Whether evidence from machines without a TEE may be accepted.
    pub fn mode(&self) -> Mode {
        self.state().config.mode
    }

    /// An appraiser trusting AMD's roots and, for machines without a TEE, `test_root` (DER).
    pub fn appraiser(&self, test_root: Option<Vec<u8>>) -> Result<Appraiser, AppError> {
        let state = self.state();
        let amd = match state.amd.get() {
            Some(amd) => amd.clone(),
            None => {
                let mut amd = SnpVerifier::amd().map_err(|e| internal("AMD's roots", e))?;
                if let Some(dir) = &state.config.vcek_cache {
                    amd = amd.with_cache(VcekCache::new(dir));
                }
                state.amd.get_or_init(|| Arc::new(amd)).clone()
            }
        };
        let none = NoneVerifier::new(test_root).map_err(|e| internal("the test root", e))?;
        let appraiser = Appraiser::shared(state.config.mode, amd, none);
        #[cfg(feature = "tdx")]
        let appraiser = {
            let intel = match state.intel.get() {
                Some(intel) => intel.clone(),
                None => {
                    let intel = prism_attestation::tdx::TdxVerifier::intel()
                        .map_err(|e| internal("Intel's root", e))?;
                    state.intel.get_or_init(|| Arc::new(intel)).clone()
                }
            };
            appraiser.with_tdx(intel)
        };
        Ok(appraiser)
    }

    /// The platform's EAR signing key: made on first use and sealed with the certificate
    /// authority's keys, so it outlives restarts and the JWKS stays the same.
    pub async fn signer(&self) -> Result<Arc<EarSigner>, AppError> {
        self.state()
            .signer
            .get_or_try_init(|| async {
                let pkcs8 = self
                    .app
                    .certificates()
                    .sealed_key_or_new(EAR_KEY, || {
                        EarSigner::generate()
                            .map(|(_, pkcs8)| pkcs8)
                            .map_err(|e| e.to_string())
                    })
                    .await?;
                let signer = EarSigner::from_pkcs8(&pkcs8).map_err(|e| internal("the EAR key", e))?;
                Ok(Arc::new(signer))
            })
            .await
            .cloned()
    }

    /// The JWK Set with which anyone verifies the platform's EARs.
    pub async fn jwks(&self) -> Result<serde_json::Value, AppError> {
        Ok(self.signer().await?.jwks())
    }

    /// Every appraisal of a CVM's evidence, oldest first.
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        cvm: CvmId,
        read: ReadOptions,
    ) -> Result<Vec<CvmAttestationAppraised>, AppError> {
        self.app
            .authorize(caller, Action::in_workspace(Permission::CvmsRead, workspace))
            .await?;
        self.app.wait_read(&[CVMS], read).await?;
        let read = self.app.read_models()?;
        if read.cvm(workspace, cvm).await?.is_none() {
            return Err(AppError::not_found(format!("CVM {cvm} not found")));
        }
        Ok(read.cvm_attestations(workspace, cvm).await?)
    }

    /// Issues a single-use nonce for fresh evidence from the CVM's agent, bound to the agent's TLS
    /// key (`agent_spki`, DER, as the connection to it presented it), and records it: the answer
    /// must come within [`NONCE_LIFETIME`] and carry [`Expected::report_data`] (see
    /// [`prism_attestation::binding`]). The CVM must be online.
    pub async fn issue_nonce(
        &self,
        caller: &Caller,
        cvm: CvmId,
        agent_spki: &[u8],
    ) -> Result<(Nonce, Expected), AppError> {
        let state = self.app.cvms().state(cvm).await?;
        let workspace = state
            .workspace
            .ok_or_else(|| AppError::internal("a CVM has a workspace"))?;
        let nonce = Nonce::random();
        let expected = Expected::fresh(&nonce, agent_spki);
        let Binding::Fresh { agent_key_sha256, .. } = &expected.binding else {
            unreachable!("fresh expectations have a fresh binding")
        };
        self.app
            .cvms()
            .record(
                caller,
                cvm,
                workspace,
                CvmCommand::RequestAttestation {
                    nonce: nonce.to_hex(),
                    agent_key_sha256: agent_key_sha256.to_string(),
                    expires_at: Utc::now() + NONCE_LIFETIME,
                },
                None,
            )
            .await?;
        Ok((nonce, expected))
    }

    /// Appraises fresh evidence answering `nonce` (issued by [`Attestations::issue_nonce`]) and
    /// records the verdict; the nonce is spent, so the same evidence is refused if presented again.
    pub async fn appraise_fresh(
        &self,
        caller: &Caller,
        cvm: CvmId,
        nonce: &Nonce,
        expected: &Expected,
        evidence: &[u8],
    ) -> Result<CvmAttestationAppraised, AppError> {
        let state = self.app.cvms().state(cvm).await?;
        let appraisal = Appraisal {
            evidence,
            evidence_base64: STANDARD.encode(evidence),
            expected,
            nonce: Some(nonce.to_hex()),
        };
        self.appraise_and_record(caller, &state, cvm, appraisal, None)
            .await
    }

    /// Appraises a Cocos agent's start-up report (the `attestation_report` message recorded on the
    /// CVM) and records the verdict; `None` when the CVM is gone since (destroyed, failed) and has
    /// nothing left to attest to. `key` makes a repeated call record it once.
    pub async fn appraise_startup(
        &self,
        caller: &Caller,
        cvm: CvmId,
        report_base64: &str,
        certificate_serial: &str,
        key: &str,
    ) -> Result<Option<Verdict>, AppError> {
        let state = self.app.cvms().state(cvm).await?;
        if !state.status.is_live() {
            return Ok(None);
        }
        let evidence = STANDARD.decode(report_base64).unwrap_or_default();
        let certificate_file = self.agent_certificate_file(cvm, certificate_serial).await?;
        let expected = Expected::startup(certificate_file.as_bytes());
        let appraisal = Appraisal {
            evidence: &evidence,
            // As the agent sent it, even when it is not base64: the record keeps what came.
            evidence_base64: report_base64.to_owned(),
            expected: &expected,
            nonce: None,
        };
        let recorded = self
            .appraise_and_record(caller, &state, cvm, appraisal, Some(key))
            .await?;
        Ok(Some(recorded.verdict))
    }

    /// The policy a CVM's evidence is appraised against, where it comes from, and the manifest the
    /// EAR names. A CVM made for a run: the run's computation's policy (its backend's override
    /// first) — which must be the one the participants consented to, or the appraisal is refused —;
    /// any other CVM: the platform's default.
    async fn policy_for(&self, state: &Cvm) -> Result<(Policy, PolicySource, Option<String>), AppError> {
        let Some(run) = state.run else {
            return Ok((Policy::default(), PolicySource::PlatformDefault, None));
        };
        let run = self.app.runs().state(run).await?;
        let (Some(computation), Some(manifest)) = (run.computation, run.manifest.as_ref()) else {
            return Err(AppError::internal(
                "a requested run names its computation and manifest",
            ));
        };
        let definition = self
            .app
            .bounded(async {
                Ok(self
                    .app
                    .repository::<prism_domain::computation::Computation>()
                    .existing_state(&computation)
                    .await?)
            })
            .await?;
        if definition.attestation_policies_sha256() != manifest.attestation_policy_sha256 {
            return Err(AppError::new(
                ErrorKind::StateConflict,
                "the computation's attestation policies changed after the run was requested: the \
                 participants consented to others; request a new run",
            ));
        }
        let overridden = state
            .backend
            .and_then(|backend| Some((backend, definition.backend_policies.get(&backend)?)));
        let (policy, source) = match (overridden, definition.attestation_policy.as_ref()) {
            (Some((backend, versioned)), _) => (
                versioned.policy.clone(),
                PolicySource::BackendOverride {
                    computation,
                    backend,
                    version: versioned.version,
                },
            ),
            (None, Some(versioned)) => (
                versioned.policy.clone(),
                PolicySource::Computation {
                    computation,
                    version: versioned.version,
                },
            ),
            (None, None) => (Policy::default(), PolicySource::PlatformDefault),
        };
        Ok((policy, source, run.manifest_id.clone()))
    }

    /// Appraises evidence of the CVM against what was asked for and the policy that applies, signs
    /// the verdict as an EAR, and records it all on the CVM.
    async fn appraise_and_record(
        &self,
        caller: &Caller,
        state: &Cvm,
        cvm: CvmId,
        appraisal: Appraisal<'_>,
        key: Option<&str>,
    ) -> Result<CvmAttestationAppraised, AppError> {
        let (Some(workspace), Some(spec)) = (state.workspace, state.spec.as_ref()) else {
            return Err(AppError::internal(
                "a CVM with evidence has a workspace and a spec",
            ));
        };
        let (policy, policy_source, manifest_id) = self.policy_for(state).await?;
        let appraiser = self.appraiser(test_root(state.test_attestation_root.as_deref())?)?;
        let verdict = appraiser.appraise(
            platform(spec.platform),
            appraisal.evidence,
            appraisal.expected,
            &policy,
        );
        let ear = self
            .signer()
            .await?
            .sign(
                &verdict,
                &Subject {
                    name: cvm.to_string(),
                    manifest_id,
                },
                Utc::now().timestamp(),
            )
            .map_err(|e| internal("signing the EAR", e))?;
        let recorded = CvmAttestationAppraised {
            evidence_base64: appraisal.evidence_base64,
            nonce: appraisal.nonce,
            expected_report_data: hex::encode(appraisal.expected.report_data),
            expected_eat_nonce: hex::encode(&appraisal.expected.eat_nonce),
            test_attestation_root: state.test_attestation_root.clone(),
            policy,
            policy_source,
            verdict,
            ear,
            at: Utc::now(),
        };
        self.app
            .cvms()
            .record(
                caller,
                cvm,
                workspace,
                CvmCommand::RecordAttestation(Box::new(recorded.clone())),
                key,
            )
            .await?;
        Ok(recorded)
    }

    /// The bytes of the agent's `cert.pem` as the platform handed them over: the certificate with
    /// `serial` (decimal, as the agent reports it) of the CVM's lineage, followed by the authority's
    /// chain. An unknown serial or one of another CVM is an empty file, which no report matches.
    async fn agent_certificate_file(&self, cvm: CvmId, serial: &str) -> Result<String, AppError> {
        let Ok(serial) = Serial::parse_decimal(serial) else {
            return Ok(String::new());
        };
        let Some(lineage) = self.app.certificates().lineage_by_serial(&serial).await? else {
            return Ok(String::new());
        };
        let ours = lineage
            .entity
            .as_ref()
            .is_some_and(|entity| entity.id == cvm.to_string());
        let Some(issuance) = lineage.issuance(&serial).filter(|_| ours) else {
            return Ok(String::new());
        };
        let authority = self.app.certificates().authority().await?;
        Ok(format!("{}{}", issuance.certificate, authority.chain_pem()))
    }
}

/// The attestation platform of a CVM's confidential platform.
pub fn platform(platform: ConfidentialPlatform) -> Platform {
    match platform {
        ConfidentialPlatform::SevSnp => Platform::SevSnp,
        ConfidentialPlatform::Tdx => Platform::Tdx,
        ConfidentialPlatform::None => Platform::None,
    }
}

/// A test-only root (the emulated agent's) as DER.
fn test_root(pem: Option<&str>) -> Result<Option<Vec<u8>>, AppError> {
    let Some(pem) = pem else {
        return Ok(None);
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| {
        AppError::new(
            ErrorKind::Internal,
            format!("the recorded test attestation root is not PEM: {e}"),
        )
    })?;
    Ok(Some(pem.contents))
}

/// Why a recorded appraisal cannot be appraised again.
#[derive(Debug, thiserror::Error)]
pub enum ReappraisalError {
    #[error("{0} is not what it should be: {1}")]
    Field(&'static str, String),
    #[error("the verifier cannot be set up: {0}")]
    Verifier(String),
}

/// Appraises a recorded appraisal's evidence again, from the record alone (no platform, no
/// network): the evidence, what it had to be bound to, the policy and the platform it declared.
/// `mode` says whether evidence from a machine without a TEE may be accepted (as insecure).
pub fn reappraise(appraisal: &CvmAttestationAppraised, mode: Mode) -> Result<Verdict, ReappraisalError> {
    let field = |name: &'static str, e: &dyn std::fmt::Display| ReappraisalError::Field(name, e.to_string());
    let evidence = STANDARD
        .decode(&appraisal.evidence_base64)
        .map_err(|e| field("evidence_base64", &e))?;
    let report_data: [u8; 64] = hex::decode(&appraisal.expected_report_data)
        .map_err(|e| field("expected_report_data", &e))?
        .try_into()
        .map_err(|_| field("expected_report_data", &"not 64 bytes"))?;
    let eat_nonce =
        hex::decode(&appraisal.expected_eat_nonce).map_err(|e| field("expected_eat_nonce", &e))?;
    let expected = Expected {
        binding: appraisal.verdict.binding.clone(),
        report_data,
        eat_nonce,
    };
    let test_root = test_root(appraisal.test_attestation_root.as_deref())
        .map_err(|e| ReappraisalError::Verifier(e.to_string()))?;
    let amd = SnpVerifier::amd().map_err(|e| ReappraisalError::Verifier(e.to_string()))?;
    let none = NoneVerifier::new(test_root).map_err(|e| ReappraisalError::Verifier(e.to_string()))?;
    let appraiser = Appraiser::new(mode, amd, none);
    #[cfg(feature = "tdx")]
    let appraiser = appraiser.with_tdx(Arc::new(
        prism_attestation::tdx::TdxVerifier::intel()
            .map_err(|e| ReappraisalError::Verifier(e.to_string()))?,
    ));
    Ok(appraiser.appraise(
        appraisal.verdict.platform,
        &evidence,
        &expected,
        &appraisal.policy,
    ))
}
