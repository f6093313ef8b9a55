//! The API's request and response bodies.
//!
//! They mirror the domain and read-model types instead of reusing them, so that the HTTP contract (and
//! its OpenAPI schema) changes only when this file does. Requests take plain strings and are converted
//! here, so every invalid value is reported with a pointer to where it was in the body.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use prism_domain::ParticipantId;
use prism_domain::access::RoleName;
use prism_domain::computation::{self, ComputationChanges, Definition};
use prism_domain::values::{PublicKey, Sha3Digest, ValueError};
use prism_projections::{ComputationView, QuarantinedView, WorkspaceView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::fields;
use crate::problem::{FieldProblem, Problem, ProblemKind};

/// An Ed25519 key and a digest for the examples of the description.
const EXAMPLE_KEY: &str = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
const EXAMPLE_DIGEST: &str = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

// ---------------------------------------------------------------------------------------------------
// Workspaces

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "Hospital consortium", "description": "Oncology research across three hospitals"})))]
pub struct CreateWorkspace {
    #[schema(schema_with = fields::workspace_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = fields::workspace_description)]
    pub description: Option<String>,
}

/// A partial update: absent fields keep their value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"description": "Oncology and cardiology research across four hospitals"})))]
pub struct UpdateWorkspace {
    #[serde(default)]
    #[schema(schema_with = fields::workspace_name_change)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = fields::workspace_description)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `active` or `archived`.
    #[schema(example = "active")]
    pub status: String,
    /// Aggregate version; also the `ETag`.
    pub version: u64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl From<WorkspaceView> for Workspace {
    fn from(v: WorkspaceView) -> Self {
        Self {
            id: v.id.as_uuid(),
            name: v.name,
            description: v.description,
            status: v.status,
            version: v.version,
            created_by: v.created_by,
            created_at: v.created_at,
            updated_at: v.updated_at,
            sequence: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkspacePage {
    pub items: Vec<Workspace>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------------
// Computations

/// A participant's role in a computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Editor,
    Runner,
    Viewer,
    AlgorithmProvider,
    DatasetProvider,
    ResultConsumer,
}

impl From<Role> for computation::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => Self::Owner,
            Role::Editor => Self::Editor,
            Role::Runner => Self::Runner,
            Role::Viewer => Self::Viewer,
            Role::AlgorithmProvider => Self::AlgorithmProvider,
            Role::DatasetProvider => Self::DatasetProvider,
            Role::ResultConsumer => Self::ResultConsumer,
        }
    }
}

impl From<computation::Role> for Role {
    fn from(r: computation::Role) -> Self {
        use computation::Role as R;
        match r {
            R::Owner => Self::Owner,
            R::Editor => Self::Editor,
            R::Runner => Self::Runner,
            R::Viewer => Self::Viewer,
            R::AlgorithmProvider => Self::AlgorithmProvider,
            R::DatasetProvider => Self::DatasetProvider,
            R::ResultConsumer => Self::ResultConsumer,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    #[schema(schema_with = fields::participant_id)]
    pub id: String,
    #[schema(schema_with = fields::roles)]
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = fields::computation_custom_roles)]
    pub custom_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::public_key)]
    pub public_key: Option<String>,
}

/// An algorithm or dataset the enclave accepts only if its SHA3-256 digest matches.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    #[schema(schema_with = fields::provider)]
    pub provider: String,
    #[schema(schema_with = fields::sha3_digest)]
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::asset_name)]
    pub name: Option<String>,
    /// The workspace's asset this was linked from (`POST /{workspace}/computations/{computation}/assets`);
    /// absent for one declared here. Only linking sets it: a definition given here may keep an entry
    /// a link made exactly as it is, and name no other asset (422).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "name": "Joint survival study",
    "description": "Survival analysis over both hospitals' cohorts",
    "participants": [
        {"id": "alice@example.org", "roles": ["owner", "algorithm_provider"], "public_key": EXAMPLE_KEY},
        {"id": "bob@example.org", "roles": ["dataset_provider", "result_consumer"], "public_key": EXAMPLE_KEY}
    ],
    "algorithm": {"provider": "alice@example.org", "hash": EXAMPLE_DIGEST, "name": "survival.py"},
    "datasets": [{"provider": "bob@example.org", "hash": EXAMPLE_DIGEST, "name": "cohort.csv"}]
})))]
pub struct CreateComputation {
    #[schema(schema_with = fields::computation_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = fields::computation_description)]
    pub description: Option<String>,
    #[schema(schema_with = fields::participants)]
    pub participants: Vec<Participant>,
    #[serde(default)]
    pub algorithm: Option<Asset>,
    #[serde(default)]
    #[schema(schema_with = fields::datasets)]
    pub datasets: Option<Vec<Asset>>,
    /// Absent: one hour.
    #[serde(default)]
    pub limits: Option<RunLimits>,
}

/// What bounds each run of a computation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    #[schema(schema_with = fields::max_run_seconds)]
    pub max_run_seconds: u64,
}

impl From<prism_domain::run::RunLimits> for RunLimits {
    fn from(limits: prism_domain::run::RunLimits) -> Self {
        Self {
            max_run_seconds: limits.max_run_seconds,
        }
    }
}

impl From<RunLimits> for prism_domain::run::RunLimits {
    fn from(limits: RunLimits) -> Self {
        Self {
            max_run_seconds: limits.max_run_seconds,
        }
    }
}

/// A partial update: absent fields keep their value; lists replace the whole list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "Joint survival study, second cohort"})))]
pub struct UpdateComputation {
    #[serde(default)]
    #[schema(schema_with = fields::computation_name_change)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = fields::computation_description)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = fields::participants_change)]
    pub participants: Option<Vec<Participant>>,
    #[serde(default)]
    pub algorithm: Option<Asset>,
    #[serde(default)]
    #[schema(schema_with = fields::datasets)]
    pub datasets: Option<Vec<Asset>>,
    #[serde(default)]
    pub limits: Option<RunLimits>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Computation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub description: String,
    /// `active` or `archived` (later lifecycle states extend this).
    #[schema(example = "active")]
    pub status: String,
    pub participants: Vec<Participant>,
    pub algorithm: Option<Asset>,
    pub datasets: Vec<Asset>,
    pub limits: RunLimits,
    /// Aggregate version; also the `ETag`.
    pub version: u64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl From<ComputationView> for Computation {
    fn from(v: ComputationView) -> Self {
        Self {
            id: v.id.as_uuid(),
            workspace_id: v.workspace_id.as_uuid(),
            name: v.name,
            description: v.description,
            status: v.status,
            participants: v.participants.into_iter().map(participant_out).collect(),
            algorithm: v.algorithm.map(asset_out),
            datasets: v.datasets.into_iter().map(asset_out).collect(),
            limits: v.limits.into(),
            version: v.version,
            created_by: v.created_by,
            created_at: v.created_at,
            updated_at: v.updated_at,
            sequence: None,
        }
    }
}

impl From<computation::Definition> for CreateComputation {
    fn from(d: computation::Definition) -> Self {
        Self {
            name: d.name,
            description: Some(d.description).filter(|text| !text.is_empty()),
            participants: d.participants.into_iter().map(participant_out).collect(),
            algorithm: d.algorithm.map(asset_out),
            datasets: Some(d.datasets.into_iter().map(asset_out).collect()),
            limits: Some(d.limits.into()),
        }
    }
}

fn participant_out(p: computation::Participant) -> Participant {
    Participant {
        id: p.id.to_string(),
        roles: p.roles.into_iter().map(Role::from).collect(),
        custom_roles: p.custom_roles.iter().map(|r| r.as_str().to_owned()).collect(),
        public_key: p.public_key.map(String::from),
    }
}

fn asset_out(a: computation::ExpectedAsset) -> Asset {
    Asset {
        provider: a.provider.to_string(),
        hash: a.hash.to_string(),
        name: Some(a.name).filter(|n| !n.is_empty()),
        asset_id: a.asset.map(|a| a.as_uuid()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComputationPage {
    pub items: Vec<Computation>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------------
// Shared

/// Answer to a command whose effect the read model had not shown yet when the response was due. The
/// command is committed; read the resource with `min_sequence` set to `sequence` (or retry the command
/// with the same `Idempotency-Key`) to get its state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandAccepted {
    pub id: Uuid,
    pub version: u64,
    pub sequence: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when every dependency is up, else `unavailable`.
    pub status: String,
    /// `up` or `down`.
    pub nats: String,
    /// `up` or `down`.
    pub postgres: String,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArchiveParams {
    #[param(schema_with = fields::archive_reason)]
    pub reason: Option<String>,
}

/// A commit a reader refused to apply.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuarantinedCommit {
    /// The projection or worker that refused it.
    pub reader: String,
    /// Its stream sequence.
    pub sequence: u64,
    pub subject: String,
    pub event_ids: Vec<String>,
    /// Why it was refused.
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

impl From<QuarantinedView> for QuarantinedCommit {
    fn from(v: QuarantinedView) -> Self {
        Self {
            reader: v.reader,
            sequence: v.sequence,
            subject: v.subject,
            event_ids: v.event_ids,
            reason: v.reason,
            recorded_at: v.recorded_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuarantineParams {
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
}

// ---------------------------------------------------------------------------------------------------
// Request → domain

/// Collects every invalid value of a request, so one response lists them all.
#[derive(Debug, Default)]
struct Invalid(Vec<FieldProblem>);

impl Invalid {
    fn check<T>(&mut self, pointer: impl FnOnce() -> String, result: Result<T, ValueError>) -> Option<T> {
        result
            .map_err(|e| {
                self.0.push(FieldProblem {
                    pointer: pointer(),
                    detail: e.to_string(),
                })
            })
            .ok()
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Problem> {
        match self.0.len() {
            0 => Ok(value()),
            1 => Err(Problem::new(ProblemKind::Validation, self.0[0].detail.clone()).with_errors(self.0)),
            n => Err(
                Problem::new(ProblemKind::Validation, format!("{n} values are invalid")).with_errors(self.0),
            ),
        }
    }
}

fn participants_in(
    input: Vec<Participant>,
    base: &str,
    invalid: &mut Invalid,
) -> Vec<computation::Participant> {
    let mut out = Vec::with_capacity(input.len());
    for (i, p) in input.into_iter().enumerate() {
        let id = invalid.check(|| format!("{base}/{i}/id"), ParticipantId::parse(p.id));
        let public_key = match p.public_key {
            Some(key) => invalid
                .check(|| format!("{base}/{i}/public_key"), PublicKey::parse(&key))
                .map(Some),
            None => Some(None),
        };
        let custom_roles: Option<BTreeSet<RoleName>> = p
            .custom_roles
            .iter()
            .enumerate()
            .map(|(j, name)| invalid.check(|| format!("{base}/{i}/custom_roles/{j}"), RoleName::parse(name)))
            .collect();
        if let (Some(id), Some(public_key), Some(custom_roles)) = (id, public_key, custom_roles) {
            out.push(computation::Participant {
                id,
                roles: p
                    .roles
                    .into_iter()
                    .map(computation::Role::from)
                    .collect::<BTreeSet<_>>(),
                custom_roles,
                public_key,
            });
        }
    }
    out
}

fn asset_in(input: Asset, base: &str, invalid: &mut Invalid) -> Option<computation::ExpectedAsset> {
    let provider = invalid.check(
        || format!("{base}/provider"),
        ParticipantId::parse(input.provider),
    );
    let hash = invalid.check(|| format!("{base}/hash"), Sha3Digest::parse(&input.hash));
    Some(computation::ExpectedAsset {
        provider: provider?,
        hash: hash?,
        name: input.name.unwrap_or_default(),
        asset: input.asset_id.map(prism_domain::AssetId),
    })
}

fn assets_in(input: Vec<Asset>, base: &str, invalid: &mut Invalid) -> Vec<computation::ExpectedAsset> {
    input
        .into_iter()
        .enumerate()
        .filter_map(|(i, a)| asset_in(a, &format!("{base}/{i}"), invalid))
        .collect()
}

impl CreateComputation {
    /// The definition this request asks for; value errors (ids, keys, digests) are 422 with pointers.
    /// The definition's own rules (an owner, providers holding their roles, …) are the domain's to check.
    pub fn into_definition(self) -> Result<Definition, Problem> {
        let mut invalid = Invalid::default();
        let participants = participants_in(self.participants, "/participants", &mut invalid);
        let algorithm = self
            .algorithm
            .and_then(|a| asset_in(a, "/algorithm", &mut invalid));
        let datasets = assets_in(self.datasets.unwrap_or_default(), "/datasets", &mut invalid);
        invalid.finish(|| Definition {
            name: self.name,
            description: self.description.unwrap_or_default(),
            participants,
            algorithm,
            datasets,
            limits: self.limits.map(Into::into).unwrap_or_default(),
        })
    }
}

impl UpdateComputation {
    pub fn into_changes(self) -> Result<ComputationChanges, Problem> {
        let mut invalid = Invalid::default();
        let participants = self
            .participants
            .map(|p| participants_in(p, "/participants", &mut invalid));
        let algorithm = self
            .algorithm
            .and_then(|a| asset_in(a, "/algorithm", &mut invalid));
        let datasets = self.datasets.map(|d| assets_in(d, "/datasets", &mut invalid));
        invalid.finish(|| ComputationChanges {
            name: self.name,
            description: self.description,
            participants,
            algorithm,
            datasets,
            limits: self.limits.map(Into::into),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";

    fn hash() -> String {
        "ab".repeat(32)
    }

    fn request(json: serde_json::Value) -> CreateComputation {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_valid_request_becomes_a_definition() {
        let definition = request(serde_json::json!({
            "name": "Joint study",
            "participants": [
                {"id": "alice@example.org", "roles": ["owner", "algorithm_provider"], "public_key": ED25519}
            ],
            "algorithm": {"provider": "alice@example.org", "hash": hash().to_uppercase(), "name": "algo.py"}
        }))
        .into_definition()
        .unwrap();
        assert_eq!(definition.participants.len(), 1);
        assert!(
            definition.participants[0]
                .roles
                .contains(&computation::Role::Owner)
        );
        assert!(definition.participants[0].public_key.is_some());
        assert_eq!(definition.algorithm.unwrap().hash.as_str(), hash());
        assert!(definition.datasets.is_empty());
        assert_eq!(definition.description, "");
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_pointer() {
        let problem = request(serde_json::json!({
            "name": "x",
            "participants": [
                {"id": "alice@example.org", "roles": ["owner"]},
                {"id": "bad id", "roles": ["dataset_provider"], "public_key": "nope"}
            ],
            "datasets": [{"provider": "alice@example.org", "hash": "123"}]
        }))
        .into_definition()
        .unwrap_err();
        assert_eq!(problem.status, 422);
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/participants/1/id",
                "/participants/1/public_key",
                "/datasets/0/hash"
            ]
        );
        assert!(problem.errors[1].detail.starts_with("public key is invalid"));
    }

    #[test]
    fn a_single_invalid_value_is_the_detail() {
        let problem = UpdateComputation {
            name: None,
            description: None,
            participants: None,
            algorithm: Some(Asset {
                provider: "alice@example.org".into(),
                hash: "zz".into(),
                name: None,
                asset_id: None,
            }),
            datasets: None,
            limits: None,
        }
        .into_changes()
        .unwrap_err();
        assert_eq!(problem.errors.len(), 1);
        assert_eq!(problem.detail.as_deref(), Some(problem.errors[0].detail.as_str()));
    }

    #[test]
    fn empty_changes_stay_empty() {
        let changes: UpdateComputation = serde_json::from_str("{}").unwrap();
        assert!(changes.into_changes().unwrap().is_empty());
    }

    #[test]
    fn roles_are_snake_case() {
        let role: Role = serde_json::from_str("\"result_consumer\"").unwrap();
        assert_eq!(computation::Role::from(role), computation::Role::ResultConsumer);
        assert_eq!(
            serde_json::to_string(&Role::AlgorithmProvider).unwrap(),
            "\"algorithm_provider\""
        );
        assert!(serde_json::from_str::<Role>("\"admin\"").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<CreateWorkspace>(r#"{"name":"a","owner":"b"}"#).is_err());
        assert!(serde_json::from_str::<UpdateWorkspace>(r#"{"title":"a"}"#).is_err());
    }
}
