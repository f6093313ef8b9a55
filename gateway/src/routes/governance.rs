//! Governance of an approved computation (`docs/governance.md`): the proposals that change it, the
//! participants' approvals and vetoes, the change threshold, and halts of execution. Answered from the
//! computation aggregate, where the votes are counted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::{ChangeOutcome, GovernanceView, ProposalFilter, ProposalView};
use prism_domain::computation::{Change, ChangeThreshold};
use prism_domain::{BackendId, ComputationId, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::attestation::AttestationPolicy;
use super::parameter_problem;
use crate::auth::Authenticated;
use crate::dto::{CommandAccepted, UpdateComputation};
use crate::extract::{JsonBody, Path, Query, from_json_value};
use crate::headers::{CommandHeaderParams, CommandHeaders, IDEMPOTENT_REPLAYED, PRISM_SEQUENCE, etag};
use crate::problem::{Problem, ProblemKind};
use crate::responses::{BodyProblems, ChangeProblems, CommandProblems, NotFound, QueryProblems, own_problem};
use crate::{AppState, Routes, fields, json_schema};

const WHAT: &str = "computation";

#[derive(OpenApi)]
#[openapi(components(schemas(
    Governance,
    HaltBody,
    ProposalBody,
    ProposalList,
    Threshold,
    ProposeChange,
    ChangeApplied,
    ThresholdRequest,
    ReasonRequest,
    UpdateComputation,
    AttestationPolicy,
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(get_governance))
        .routes(routes!(list_proposals, propose))
        .routes(routes!(get_proposal))
        .routes(routes!(approve))
        .routes(routes!(veto))
        .routes(routes!(set_threshold))
        .routes(routes!(halt, lift_halt))
}

fn base(workspace: Uuid, computation: Uuid) -> String {
    format!("/{workspace}/computations/{computation}")
}

/// How many participants holding a public key must approve a change: `"all"` (the default), or a
/// number from 1 to the number of such participants.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Threshold(pub ChangeThreshold);

impl PartialSchema for Threshold {
    fn schema() -> RefOr<Schema> {
        json_schema::of::<ChangeThreshold>()
    }
}

impl ToSchema for Threshold {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChangeThreshold")
    }
}

/// Who decides on the computation's changes, how many must agree, what waits for approval and who
/// halted its execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct Governance {
    pub computation: Uuid,
    /// Whether every participant with a public key has signed a manifest once: from then on, a change
    /// of the manifest (or of the threshold) is a proposal.
    pub approved: bool,
    pub threshold: Threshold,
    /// How many approvals a change needs now.
    pub required_approvals: u32,
    /// The participants with a say (those holding a public key), by id.
    pub participants: Vec<String>,
    /// The current manifest's id.
    pub manifest_id: String,
    /// Whether any participant's halt holds: no run is requested while one does.
    pub halted: bool,
    pub halts: Vec<HaltBody>,
    /// The numbers of the proposals waiting for approvals.
    pub open_proposals: Vec<u32>,
}

/// A participant's halt of the computation's execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct HaltBody {
    pub participant: String,
    pub reason: String,
    pub halted_by: String,
    pub since: DateTime<Utc>,
}

impl From<GovernanceView> for Governance {
    fn from(view: GovernanceView) -> Self {
        Self {
            computation: view.computation.as_uuid(),
            approved: view.approved,
            threshold: Threshold(view.threshold),
            required_approvals: count(view.required_approvals),
            participants: view.participants.iter().map(ToString::to_string).collect(),
            manifest_id: view.manifest_id,
            halted: view.halted,
            halts: view
                .halts
                .into_iter()
                .map(|h| HaltBody {
                    participant: h.participant.to_string(),
                    reason: h.reason,
                    halted_by: h.halted_by.0,
                    since: h.since,
                })
                .collect(),
            open_proposals: view.open_proposals,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A proposed change, its approvals and what became of it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Proposal)]
pub struct ProposalBody {
    /// Its number within the computation, from 1.
    pub id: u32,
    /// `open` (waiting for approvals), `adopted`, `vetoed` or `superseded` (the manifest changed
    /// before it was adopted).
    #[schema(pattern = "^(open|adopted|vetoed|superseded)$")]
    pub status: String,
    /// The change, as `POST …/proposals` takes it (`update`, `attestation_policy` or
    /// `change_threshold`), or a provider's link of its asset (`link_asset`: the asset, its kind,
    /// provider, digest and file name) or unlink (`unlink_asset`: `{"asset"}`).
    #[schema(value_type = Object)]
    pub change: Change,
    /// The manifest it was proposed for; it can be adopted only while that is the current one.
    pub manifest_id: String,
    /// The participant whose proposal it is (its approval counts); absent when proposed by someone
    /// without a say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposer: Option<String>,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub approvals: Vec<String>,
    /// How many approvals it needs.
    pub required_approvals: u32,
    /// Whose approval it still lacks, while open.
    pub awaiting: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vetoed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub veto_reason: Option<String>,
    /// The manifest that superseded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

impl From<ProposalView> for ProposalBody {
    fn from(view: ProposalView) -> Self {
        let ids = |list: Vec<prism_domain::ParticipantId>| list.iter().map(ToString::to_string).collect();
        Self {
            id: view.id,
            status: view.status.to_owned(),
            change: view.change,
            manifest_id: view.manifest_id,
            proposer: view.proposer.map(|p| p.to_string()),
            proposed_by: view.proposed_by.0,
            proposed_at: view.proposed_at,
            approvals: ids(view.approvals),
            required_approvals: count(view.required_approvals),
            awaiting: ids(view.awaiting),
            decided_at: view.decided_at,
            vetoed_by: view.vetoed_by.map(|p| p.to_string()),
            veto_reason: view.veto_reason,
            superseded_by: view.superseded_by,
        }
    }
}

/// The computation's proposals, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalList {
    pub items: Vec<ProposalBody>,
}

/// A change applied at once (the computation is not approved yet, or the manifest stays as it was), or
/// one that changes nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeApplied {
    /// `applied` or `unchanged`.
    #[schema(pattern = "^(applied|unchanged)$")]
    pub outcome: String,
    /// The manifest's id now.
    pub manifest_id: String,
}

/// A change of the computation: exactly one of `update` (a change of the definition, as `PATCH
/// /{workspace}/computations/{computation}` takes it), `attestation_policy` (a policy, as `PUT
/// …/attestation-policy` takes it, with `backend` for the override of one backend's runs) or
/// `change_threshold`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProposeChange {
    Update(UpdateComputation),
    AttestationPolicy(Box<PolicyChange>),
    ChangeThreshold(Threshold),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    policy: AttestationPolicy,
    #[serde(default)]
    backend: Option<Uuid>,
}

impl PartialSchema for ProposeChange {
    fn schema() -> RefOr<Schema> {
        let one = |name: &str, schema: RefOr<Schema>| -> Schema {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(name, schema)
                .required(name)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .into()
        };
        let policy: Schema = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("policy", Ref::from_schema_name("AttestationPolicy"))
            .required("policy")
            .property(
                "backend",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .description(Some(
                        "The backend whose runs this policy applies to instead of the computation's own.",
                    )),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into();
        OneOfBuilder::new()
            .item(one("update", Ref::from_schema_name("UpdateComputation").into()))
            .item(one("attestation_policy", policy.into()))
            .item(one(
                "change_threshold",
                Ref::from_schema_name("ChangeThreshold").into(),
            ))
            .description(Some(
                "A change of the computation: exactly one of `update` (a change of the definition, as \
                 `PATCH /{workspace}/computations/{computation}` takes it), `attestation_policy` (a \
                 policy, with `backend` for the override of one backend's runs) or `change_threshold`.",
            ))
            .into()
    }
}

impl ToSchema for ProposeChange {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProposeChange")
    }
}

impl ProposeChange {
    fn into_change(self) -> Result<Change, Problem> {
        Ok(match self {
            Self::Update(update) => Change::Update(update.into_changes()?),
            Self::AttestationPolicy(change) => Change::AttestationPolicy {
                policy: Box::new(change.policy.0),
                backend: change.backend.map(BackendId),
            },
            Self::ChangeThreshold(Threshold(threshold)) => Change::ChangeThreshold(threshold),
        })
    }
}

/// A new change threshold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRequest {
    pub threshold: Threshold,
}

/// Why: recorded in the event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    #[schema(schema_with = fields::governance_reason)]
    pub reason: String,
}

/// Which proposals a list shows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProposalParams {
    /// Only proposals in this state.
    #[param(value_type = Option<String>, pattern = "^(open|adopted|vetoed|superseded)$")]
    pub status: Option<String>,
}

/// The 422 of a participant's act: the rules that only the computation can tell.
struct ParticipantProblems;

impl utoipa::IntoResponses for ParticipantProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let description = "Besides a field of the body missing or of the wrong type, or a value outside \
            the constraints of the schema: the caller is not a participant of the computation holding a \
            public key (only they have a say, whatever their roles grant), or the reason is blank. Also \
            422: the `Idempotency-Key` was first used with a different request.";
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(description, ProblemKind::Validation),
        )])
    }
}

/// The 422 of a change: the definition's rules, and a threshold beyond the participants.
struct ChangeRules;

impl utoipa::IntoResponses for ChangeRules {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let description = "The change breaks a rule: those of a definition (see `PATCH \
            /{workspace}/computations/{computation}`: an owner, each participant once with a role, keys \
            for the roles that need one, providers holding their roles, each dataset once, registered \
            users and defined custom roles), or a change threshold above the number of participants \
            holding a public key. Also 422: a field of the body missing or of the wrong type, a value \
            outside the constraints of the schema, or an `Idempotency-Key` first used with a different \
            request.";
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(description, ProblemKind::Validation),
        )])
    }
}

/// Headers of a command's answer: its commit's sequence, and whether it repeats a first answer.
fn command_headers(executed: &prism_app::Executed<prism_domain::computation::Computation>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(PRISM_SEQUENCE, HeaderValue::from(executed.outcome.sequence));
    if executed.outcome.replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    headers
}

/// The answer to a change that became a proposal: `status` with the proposal, and where it is.
pub(crate) fn proposed(
    workspace: Uuid,
    computation: Uuid,
    outcome: &ChangeOutcome,
    proposal: ProposalView,
    status: StatusCode,
) -> Response {
    let mut headers = command_headers(outcome.executed());
    let location = format!("{}/proposals/{}", base(workspace, computation), proposal.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    (status, headers, Json(ProposalBody::from(proposal))).into_response()
}

/// The answer of a command of the computation's own (`PATCH` of its definition) whose change became a
/// proposal: `202 Accepted` as that command documents it — committed, but not (yet) what was asked —,
/// naming the proposal at `Location` and in `detail`.
pub(crate) fn proposal_accepted(
    workspace: Uuid,
    computation: Uuid,
    outcome: &ChangeOutcome,
    proposal: u32,
) -> Response {
    let executed = outcome.executed();
    let mut headers = command_headers(executed);
    headers.insert(header::ETAG, etag(executed.outcome.version));
    let location = format!("{}/proposals/{proposal}", base(workspace, computation));
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    let body = CommandAccepted {
        id: computation,
        version: executed.outcome.version,
        sequence: executed.outcome.sequence,
        detail: format!(
            "the computation is approved: this change of its manifest is proposal {proposal} ({location}), \
             applied once enough of its participants approve it"
        ),
    };
    (StatusCode::ACCEPTED, headers, Json(body)).into_response()
}

/// Who decides on the computation's changes, the change threshold, open proposals and halts
/// (`computation.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/governance",
    operation_id = "get_governance",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
    ),
    responses(
        (status = 200, description = "The computation's governance", body = Governance),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn get_governance(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Governance>, Problem> {
    let view = state
        .app()
        .governance()
        .overview(&caller, WorkspaceId(workspace), ComputationId(id))
        .await?;
    Ok(Json(view.into()))
}

/// The computation's proposals, oldest first, of one state with `?status=` (`computation.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/proposals",
    operation_id = "list_proposals",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ProposalParams,
    ),
    responses(
        (status = 200, description = "The proposals", body = ProposalList),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list_proposals(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ProposalParams>,
) -> Result<Json<ProposalList>, Problem> {
    let filter = match params.status.as_deref() {
        None => ProposalFilter::All,
        Some(name) => ProposalFilter::parse(name).ok_or_else(|| {
            parameter_problem(
                "status",
                format!("`{name}` is no proposal state: open, adopted, vetoed or superseded"),
            )
        })?,
    };
    let proposals = state
        .app()
        .governance()
        .proposals(&caller, WorkspaceId(workspace), ComputationId(id), filter)
        .await?;
    Ok(Json(ProposalList {
        items: proposals.into_iter().map(ProposalBody::from).collect(),
    }))
}

/// Ask for a change of the computation: applied at once (200) while the computation is not approved,
/// or when it leaves the manifest as it is (a new name or description); once every participant with
/// a key has signed a manifest, a change of the manifest or of the change threshold is recorded as a
/// proposal instead (201), counted as the caller's approval when the caller is a participant with a
/// key, and applied once enough participants approve it (`docs/governance.md`). Asks for the
/// permission the change needs: `computation.update`, and `computation.participants.manage` for
/// participants.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/proposals",
    operation_id = "propose_change",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
    ),
    request_body = ProposeChange,
    responses(
        (status = 200, description = "Applied at once, or nothing to change", body = ChangeApplied),
        (status = 201, description = "Proposed: the proposal (adopted already when the caller's approval was enough)", body = ProposalBody,
            headers(("Location" = String, description = "Where the proposal is"))),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        ChangeRules,
    )
)]
pub async fn propose(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    let change = from_json_value::<ProposeChange>(body)?.into_change()?;
    let outcome = state
        .app()
        .governance()
        .propose(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            change,
        )
        .await?;
    Ok(change_answer(workspace, id, outcome, StatusCode::CREATED))
}

/// The answer to a change asked for: the proposal with `proposed`, or what was applied.
fn change_answer(workspace: Uuid, id: Uuid, outcome: ChangeOutcome, proposed_status: StatusCode) -> Response {
    match outcome {
        ChangeOutcome::Proposed(_, ref view) => {
            let view = (**view).clone();
            proposed(workspace, id, &outcome, view, proposed_status)
        }
        ChangeOutcome::Applied(ref executed) | ChangeOutcome::Unchanged(ref executed) => {
            let body = ChangeApplied {
                outcome: match outcome {
                    ChangeOutcome::Unchanged(_) => "unchanged",
                    _ => "applied",
                }
                .into(),
                manifest_id: executed
                    .outcome
                    .state
                    .manifest()
                    .map(|m| m.id())
                    .unwrap_or_default(),
            };
            (StatusCode::OK, command_headers(executed), Json(body)).into_response()
        }
    }
}

/// A proposal (`computation.read`).
#[utoipa::path(
    get,
    path = "/{workspace}/computations/{computation}/proposals/{proposal}",
    operation_id = "get_proposal",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ("proposal" = u32, Path, minimum = 1, description = "Proposal number"),
    ),
    responses(
        (status = 200, description = "The proposal", body = ProposalBody),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn get_proposal(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id, proposal)): Path<(Uuid, Uuid, u32)>,
) -> Result<Json<ProposalBody>, Problem> {
    let view = state
        .app()
        .governance()
        .proposal(&caller, WorkspaceId(workspace), ComputationId(id), proposal)
        .await?;
    Ok(Json(view.into()))
}

/// Approve a proposal, as the participant you are (`computation.consent`; only a participant holding a
/// public key has a say). The approval that reaches the threshold adopts it: its change is applied in
/// the same commit, and the new manifest awaits everyone's consent. 409 when the proposal is no longer
/// open (adopted, vetoed, superseded) or you approved it already.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/proposals/{proposal}/approve",
    operation_id = "approve_proposal",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ("proposal" = u32, Path, minimum = 1, description = "Proposal number"),
        CommandHeaderParams,
    ),
    responses(
        (status = 200, description = "The proposal after your approval", body = ProposalBody),
        CommandProblems,
        ChangeProblems,
        ParticipantProblems,
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id, proposal)): Path<(Uuid, Uuid, u32)>,
    headers: CommandHeaders,
) -> Result<Json<ProposalBody>, Problem> {
    let view = state
        .app()
        .governance()
        .approve(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            proposal,
        )
        .await?;
    Ok(Json(view.into()))
}

/// Veto a proposal, as the participant you are (`computation.consent`; only a participant holding a
/// public key has a say), with a reason: it ends the proposal. One who approved may still veto until
/// the proposal is adopted. 409 when it is no longer open.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/proposals/{proposal}/veto",
    operation_id = "veto_proposal",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ("proposal" = u32, Path, minimum = 1, description = "Proposal number"),
        CommandHeaderParams,
    ),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "The vetoed proposal", body = ProposalBody),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        ParticipantProblems,
    )
)]
pub async fn veto(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id, proposal)): Path<(Uuid, Uuid, u32)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<ReasonRequest>,
) -> Result<Json<ProposalBody>, Problem> {
    let view = state
        .app()
        .governance()
        .veto(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            proposal,
            body.reason,
        )
        .await?;
    Ok(Json(view.into()))
}

/// Set how many participants holding a public key must approve a change (`computation.update`):
/// `"all"` (the default) or a number from 1 to their count. Applied at once (200) before the
/// computation is approved; after, it is itself a change that needs the current threshold, recorded as
/// a proposal (202, the proposal).
#[utoipa::path(
    put,
    path = "/{workspace}/computations/{computation}/change-threshold",
    operation_id = "set_change_threshold",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
    ),
    request_body = ThresholdRequest,
    responses(
        (status = 200, description = "Set (or unchanged): the computation's governance", body = Governance),
        (status = 202, description = "Proposed: it waits for the participants' approval", body = ProposalBody,
            headers(("Location" = String, description = "Where the proposal is"))),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        ChangeRules,
    )
)]
pub async fn set_threshold(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, Problem> {
    let ThresholdRequest {
        threshold: Threshold(threshold),
    } = from_json_value(body)?;
    let governance = state.app().governance();
    let outcome = governance
        .set_threshold(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            threshold,
        )
        .await?;
    match outcome {
        ChangeOutcome::Proposed(_, ref view) if view.status == "open" => {
            let view = (**view).clone();
            Ok(proposed(workspace, id, &outcome, view, StatusCode::ACCEPTED))
        }
        // Adopted as it was proposed (the caller's approval was enough): set, as asked.
        ChangeOutcome::Proposed(executed, _)
        | ChangeOutcome::Applied(executed)
        | ChangeOutcome::Unchanged(executed) => {
            let view = GovernanceView::of(&executed.outcome.state);
            Ok((
                StatusCode::OK,
                command_headers(&executed),
                Json(Governance::from(view)),
            )
                .into_response())
        }
    }
}

/// Halt the computation's execution, as the participant you are (`computation.consent`; only a
/// participant holding a public key has a say), with a reason: no run is requested while any
/// participant's halt holds. Your halt holds until you lift it; 409 if you have halted already.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/halt",
    operation_id = "halt_execution",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
    ),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "The computation's governance, with your halt", body = Governance),
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        ParticipantProblems,
    )
)]
pub async fn halt(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<ReasonRequest>,
) -> Result<Json<Governance>, Problem> {
    let view = state
        .app()
        .governance()
        .halt(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
            body.reason,
        )
        .await?;
    Ok(Json(view.into()))
}

/// Lift your halt (`computation.consent`). Only the participant who halted lifts its halt; the
/// computation runs again once every halt is lifted. 409 when you hold no halt.
#[utoipa::path(
    delete,
    path = "/{workspace}/computations/{computation}/halt",
    operation_id = "lift_halt",
    tag = "governance",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
    ),
    responses(
        (status = 200, description = "The computation's governance, without your halt", body = Governance),
        CommandProblems,
        ChangeProblems,
    )
)]
pub async fn lift_halt(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Json<Governance>, Problem> {
    let view = state
        .app()
        .governance()
        .lift_halt(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            ComputationId(id),
        )
        .await?;
    Ok(Json(view.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_read_as_exactly_one_kind() {
        let update: ProposeChange =
            from_json_value(serde_json::json!({"update": {"name": "Renamed"}})).unwrap();
        assert!(
            matches!(update.into_change().unwrap(), Change::Update(c) if c.name.as_deref() == Some("Renamed"))
        );
        let threshold: ProposeChange = from_json_value(serde_json::json!({"change_threshold": 2.0})).unwrap();
        assert_eq!(
            threshold.into_change().unwrap(),
            Change::ChangeThreshold(ChangeThreshold::AtLeast(2))
        );
        let policy: ProposeChange =
            from_json_value(serde_json::json!({"attestation_policy": {"policy": {}}})).unwrap();
        assert!(matches!(
            policy.into_change().unwrap(),
            Change::AttestationPolicy { backend: None, .. }
        ));
        for refused in [
            serde_json::json!({}),
            serde_json::json!({"update": {}, "change_threshold": "all"}),
            serde_json::json!({"change_threshold": 0}),
            serde_json::json!({"change_threshold": "most"}),
        ] {
            assert!(
                from_json_value::<ProposeChange>(refused.clone()).is_err(),
                "{refused}"
            );
        }
    }
}
