//! Attestation: a computation's attestation policy (versioned, with per-backend overrides), the
//! appraisals of a CVM's evidence — each with the evidence as received, what it had to be bound to,
//! the policy, the verdict naming every failing field with its expected and actual value, and the
//! verdict as a signed EAR — and the JWK Set that verifies EARs, public, so that participants and
//! third-party tools check a verdict without Prism's code.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prism_app::{AttestationPolicies, ChangeOutcome};
use prism_attestation::Policy;
use prism_domain::computation::{Change, VersionedPolicy};
use prism_domain::cvm::CvmAttestationAppraised;
use prism_domain::{BackendId, ComputationId, CvmId, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::read_options;
use crate::auth::Authenticated;
use crate::dto::ReadParams;
use crate::extract::{JsonBody, Path, Query, from_json_value};
use crate::headers::{CommandHeaderParams, CommandHeaders, QueryHeaderParams};
use crate::json_schema;
use crate::problem::Problem;
use crate::responses::{BodyProblems, ChangeProblems, CommandProblems, NotFound, QueryProblems};
use crate::{AppState, Routes};

const WHAT: &str = "computation";

#[derive(OpenApi)]
#[openapi(components(schemas(
    AttestationPolicy,
    AttestationPoliciesBody,
    VersionedAttestationPolicy,
    AttestationAppraisal
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(get_policy, set_policy))
        .routes(routes!(list_attestations))
        .routes(routes!(jwks))
}

/// An attestation policy: what verified evidence must say. Every field is optional or has a safe
/// default (debug refused, migration agent refused, provisional firmware refused), so `{}` is a
/// strict policy. Byte values are hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttestationPolicy(pub Policy);

impl PartialSchema for AttestationPolicy {
    fn schema() -> RefOr<Schema> {
        json_schema::of::<Policy>()
    }
}

impl ToSchema for AttestationPolicy {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AttestationPolicy")
    }
}

/// A policy and the version that set it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = VersionedAttestationPolicy)]
pub struct VersionedAttestationPolicy {
    pub version: u32,
    /// SHA-256 (hex) of the policy's canonical JSON: what verdicts and EARs name.
    pub policy_sha256: String,
    pub policy: AttestationPolicy,
}

impl From<VersionedPolicy> for VersionedAttestationPolicy {
    fn from(versioned: VersionedPolicy) -> Self {
        Self {
            version: versioned.version,
            policy_sha256: hex::encode(versioned.policy.digest()),
            policy: AttestationPolicy(versioned.policy),
        }
    }
}

/// A computation's attestation policies.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AttestationPolicies)]
pub struct AttestationPoliciesBody {
    /// The latest version set; 0 when none is (the platform's default, `{}`, applies).
    pub version: u32,
    /// The computation's own policy.
    pub policy: Option<VersionedAttestationPolicy>,
    /// Policies that replace it for runs placed on a backend, by backend id.
    pub backends: BTreeMap<Uuid, VersionedAttestationPolicy>,
}

impl From<AttestationPolicies> for AttestationPoliciesBody {
    fn from(policies: AttestationPolicies) -> Self {
        Self {
            version: policies.version,
            policy: policies.policy.map(Into::into),
            backends: policies
                .backends
                .into_iter()
                .map(|(backend, versioned)| (backend.as_uuid(), versioned.into()))
                .collect(),
        }
    }
}

/// Which policy a `PUT` sets.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PolicyParams {
    /// Set the override for runs placed on this backend instead of the computation's own policy.
    pub backend: Option<Uuid>,
}

/// The computation's attestation policies (`computation.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/attestation-policy",
    operation_id = "get_attestation_policy",
    tag = "attestation",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
    ),
    responses(
        (status = 200, description = "The policies", body = AttestationPoliciesBody),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn get_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<AttestationPoliciesBody>, Problem> {
    let policies = state
        .app()
        .computations()
        .attestation_policies(&caller, WorkspaceId(workspace), ComputationId(id))
        .await?;
    Ok(Json(policies.into()))
}

/// Set the computation's attestation policy (`computation.update`), or with `?backend=` the one that
/// replaces it for runs placed on that backend. Each change is a new version; the same policy again
/// changes nothing. The answer is the computation's policies after the change — unless every
/// participant with a public key has signed the computation's manifest: a policy is part of the
/// manifest, so the change is then a proposal the participants decide on (202, `docs/governance.md`).
#[utoipa::path(
    put,
    path = "/{workspace}/computations/{computation}/attestation-policy",
    operation_id = "set_attestation_policy",
    tag = "attestation",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        PolicyParams,
        CommandHeaderParams,
    ),
    request_body = AttestationPolicy,
    responses(
        (status = 200, description = "The policies after the change", body = AttestationPoliciesBody),
        (status = 202, description = "The computation is approved: the new policy, which changes its manifest, is a proposal that waits for its participants' approval", body = crate::routes::governance::ProposalBody,
            headers(("Location" = String, description = "Where the proposal is"))),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
    )
)]
pub async fn set_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<PolicyParams>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    let AttestationPolicy(policy) = from_json_value(body)?;
    let outcome = state
        .app()
        .governance()
        .propose(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            Change::AttestationPolicy {
                policy: Box::new(policy),
                backend: params.backend.map(BackendId),
            },
        )
        .await?;
    if let ChangeOutcome::Proposed(_, ref proposal) = outcome
        && proposal.status == "open"
    {
        let proposal = (**proposal).clone();
        return Ok(super::governance::proposed(
            workspace,
            id,
            &outcome,
            proposal,
            StatusCode::ACCEPTED,
        ));
    }
    let policies = state
        .app()
        .computations()
        .attestation_policies(&caller, WorkspaceId(workspace), ComputationId(id))
        .await?;
    Ok(Json(AttestationPoliciesBody::from(policies)).into_response())
}

/// One appraisal of a CVM's evidence: the evidence as the agent sent it (base64), the nonce it
/// answered (absent for the agent's start-up report), the report data and EAT nonce it had to carry,
/// the policy and where it came from, the verdict (`verified`, `accepted_insecure` or `refused`, with
/// every failing field, expected and actual value) and the verdict as an EAR JWT signed by the
/// platform (verify it with `GET /attestation/jwks.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct AttestationAppraisal(pub CvmAttestationAppraised);

impl PartialSchema for AttestationAppraisal {
    fn schema() -> RefOr<Schema> {
        json_schema::of::<CvmAttestationAppraised>()
    }
}

impl ToSchema for AttestationAppraisal {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AttestationAppraisal")
    }
}

/// A CVM's appraisals, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttestationList {
    pub items: Vec<AttestationAppraisal>,
}

/// Every appraisal of a CVM's evidence (`cvms.read`), oldest first.
#[utoipa::path(
    get,
    path = "/{workspace}/cvms/{cvm}/attestations",
    operation_id = "list_cvm_attestations",
    tag = "attestation",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("cvm" = Uuid, Path, description = "CVM id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(
        (status = 200, description = "The appraisals", body = AttestationList),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list_attestations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<AttestationList>, Problem> {
    let appraisals = state
        .app()
        .attestations()
        .list(
            &caller,
            WorkspaceId(workspace),
            CvmId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(AttestationList {
        items: appraisals.into_iter().map(AttestationAppraisal).collect(),
    }))
}

/// The JWK Set with which anyone verifies the platform's EARs (ES256). Public.
#[utoipa::path(
    get,
    path = "/attestation/jwks.json",
    operation_id = "attestation_jwks",
    tag = "attestation",
    security(()),
    responses(
        (status = 200, description = "The JWK Set", content_type = "application/jwk-set+json", body = Object),
        (status = 404, response = NotFound),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, Problem> {
    let jwks = state.app().attestations().jwks().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        Json(jwks),
    )
        .into_response())
}
