//! `/{workspace}/assets`: a workspace's algorithm and dataset records (`docs/assets.md`), their samples,
//! and `/{workspace}/computations/{computation}/assets`: linking them to a computation.
//!
//! An asset says what a file is — kind, MIME type, SHA3-256, base name, description — never holds it:
//! its provider sends the file straight to a run's attested agent. A sample of at most 10 MiB may be
//! kept by the platform (`PUT …/sample`, the raw bytes with their `Content-Type`), so that the other
//! participants can look at the data's shape before they consent.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use prism_app::{AppError, Caller, ChangeOutcome, ErrorKind, Executed, SampleContent};
use prism_domain::asset::{
    self, AlgorithmType, AssetChanges, AssetError, AssetKind, AssetRecord, SAMPLE_MAX,
};
use prism_domain::values::{FILE_NAME_PATTERN, FileName, MIME_TYPE_PATTERN, MimeType, Sha3Digest};
use prism_domain::{AssetId, ComputationId, UserId, WorkspaceId};
use prism_projections::{AssetFilter, AssetView};
use serde::{Deserialize, Serialize};
use utoipa::openapi::link::Link;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, Response as OpenApiResponse};
use utoipa::{IntoParams, IntoResponses, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{Invalid, rejection};
use super::{page_request, parameter_problem, read_options};
use crate::auth::Authenticated;
use crate::command::Resource;
use crate::cursor;
use crate::dto::{Computation, ReadParams};
use crate::extract::{JsonBody, Path, Query};
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag};
use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::responses::{
    BodyProblems, ChangeProblems, Changed, CommandProblems, Created, Found, Linked, NotFound, QueryProblems,
    link, own_problem,
};
use crate::{AppState, Routes, fields};

const WHAT: &str = "asset";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(AssetBody, AssetPage, SampleBody, RegisterAsset, UpdateAsset, LinkAsset)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(register, list))
        .routes(routes!(get, update, archive))
        .routes(routes!(put_sample, get_sample, remove_sample))
        .routes(routes!(link_asset))
        .routes(routes!(unlink_asset))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// `algorithm` or `dataset`.
fn kind_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(AssetKind::ALL.map(AssetKind::as_str)))
        .description(Some(
            "`algorithm` (what a computation runs) or `dataset` (what it runs over).",
        ))
        .into()
}

fn algorithm_type_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            AlgorithmType::ALL
                .map(|t| Some(t.as_str()))
                .into_iter()
                .chain([None]),
        ))
        .description(Some(
            "How the Cocos agent runs an algorithm: `python`, `bin`, `wasm` or `docker`. Required for an \
             algorithm; absent (or `null`) for a dataset.",
        ))
        .into()
}

fn mime_type_builder(nullable: bool) -> ObjectBuilder {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .min_length(Some(3))
        .max_length(Some(MimeType::MAX_LEN))
        .pattern(Some(MIME_TYPE_PATTERN))
        .examples(["text/csv"])
}

fn mime_type_schema() -> Schema {
    mime_type_builder(false)
        .description(Some(
            "What the file holds: a MIME type, `type/subtype` with optional `;name=value` parameters \
             (tokens, no quoted values), at most 255 characters. Type, subtype and parameter names are \
             kept in lower case.",
        ))
        .into()
}

fn mime_type_change() -> Schema {
    mime_type_builder(true)
        .description(Some(
            "A new MIME type (see `RegisterAsset.mime_type`); absent keeps it.",
        ))
        .into()
}

fn sha3_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(fields::SHA3_DIGEST_PATTERN))
        .description(Some(
            "SHA3-256 of the file, 64 hexadecimal digits (either case; kept in lower case): the agent \
             takes the file only if it has this digest.",
        ))
        .examples(["a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"])
        .into()
}

fn file_name_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(FileName::MAX_LEN))
        .pattern(Some(FILE_NAME_PATTERN))
        .description(Some(
            "The base name the agent expects the file under (it matches datasets by exact name): 1–255 \
             characters, no `/` or `\\`, no control character, and neither `.` nor `..` (refused with \
             422).",
        ))
        .examples(["cohort.csv"])
        .into()
}

fn description_schema(nullable: bool) -> Schema {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .max_length(Some(asset::DESCRIPTION_MAX))
        .pattern(Some(fields::TEXT_PATTERN))
        .description(Some(format!(
            "What the asset is, for the other participants. Up to {} characters; no control characters \
             except tab and line breaks; surrounding white space is trimmed.",
            asset::DESCRIPTION_MAX
        )))
        .into()
}

/// An algorithm or dataset to record: what its file is. The file itself is never sent here.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "kind": "dataset",
    "mime_type": "text/csv",
    "sha3_256": "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
    "file_name": "cohort.csv",
    "description": "Patients admitted in 2025, anonymised"
})))]
pub struct RegisterAsset {
    #[schema(schema_with = kind_schema)]
    pub kind: String,
    #[serde(default)]
    #[schema(schema_with = algorithm_type_schema)]
    pub algorithm_type: Option<String>,
    #[schema(schema_with = mime_type_schema)]
    pub mime_type: String,
    #[schema(schema_with = sha3_schema)]
    pub sha3_256: String,
    #[schema(schema_with = file_name_schema)]
    pub file_name: String,
    #[serde(default)]
    #[schema(schema_with = description_nullable)]
    pub description: Option<String>,
}

fn description_nullable() -> Schema {
    description_schema(true)
}

/// A change of what may change: absent fields keep their value. The digest and the file name never
/// change — a computation's manifest names them and its participants consent to them, so another file
/// is another asset (register it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"description": "Patients admitted in 2025, anonymised and deduplicated"})))]
pub struct UpdateAsset {
    #[serde(default)]
    #[schema(schema_with = description_nullable)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = mime_type_change)]
    pub mime_type: Option<String>,
}

/// The asset to link: the caller's own, in the computation's workspace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkAsset {
    pub asset_id: Uuid,
}

/// What identifies an asset's sample; `GET …/sample` gives its bytes.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AssetSample)]
pub struct SampleBody {
    /// SHA-256 of its bytes, hexadecimal.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type, as it was uploaded.
    pub mime_type: String,
    pub attached_at: DateTime<Utc>,
}

/// An algorithm or dataset record of the workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AssetRecord)]
pub struct AssetBody {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The user it belongs to: the only one who changes it, and the provider a computation names when
    /// it is linked.
    pub owner: Uuid,
    /// `algorithm` or `dataset`.
    #[schema(example = "dataset")]
    pub kind: String,
    /// For an algorithm: `python`, `bin`, `wasm` or `docker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm_type: Option<String>,
    pub mime_type: String,
    pub sha3_256: String,
    pub file_name: String,
    pub description: String,
    /// `active` or `archived`.
    #[schema(example = "active")]
    pub status: String,
    /// The sample the platform keeps, if any.
    pub sample: Option<SampleBody>,
    /// The active computations that link it.
    pub linked_to: Vec<Uuid>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Aggregate version; also the `ETag`.
    pub version: u64,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl From<AssetView> for AssetBody {
    fn from(v: AssetView) -> Self {
        Self {
            id: v.id.as_uuid(),
            workspace_id: v.workspace_id.as_uuid(),
            owner: v.owner.as_uuid(),
            kind: v.kind,
            algorithm_type: v.algorithm_type,
            mime_type: v.mime_type,
            sha3_256: v.sha3_256,
            file_name: v.file_name,
            description: v.description,
            status: v.status,
            sample: v.sample.map(|s| SampleBody {
                sha256: s.sha256,
                size: s.size,
                mime_type: s.mime_type,
                attached_at: s.attached_at,
            }),
            linked_to: v.linked_to.into_iter().map(|c| c.as_uuid()).collect(),
            created_by: v.created_by,
            created_at: v.created_at,
            updated_at: v.updated_at,
            version: v.version,
            sequence: None,
        }
    }
}

impl Resource for AssetBody {
    fn version(&self) -> u64 {
        self.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

impl Linked for AssetBody {
    fn links() -> Vec<(&'static str, Link)> {
        let ids = [("workspace", "/workspace_id"), ("asset", "/id")];
        vec![
            ("GetAsset", link("get_asset", &ids)),
            ("UpdateAsset", link("update_asset", &ids)),
            ("ArchiveAsset", link("archive_asset", &ids)),
            ("GetAssetSample", link("get_asset_sample", &ids)),
            ("PutAssetSample", link("put_asset_sample", &ids)),
            ("RemoveAssetSample", link("remove_asset_sample", &ids)),
        ]
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetPage {
    pub items: Vec<AssetBody>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Which assets a list shows; each given narrows it.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetParams {
    /// Only algorithms or only datasets.
    #[param(value_type = Option<String>, pattern = "^(algorithm|dataset)$")]
    pub kind: Option<String>,
    /// Only the assets of this user.
    pub owner: Option<Uuid>,
    /// Only active or only archived assets.
    #[param(value_type = Option<String>, pattern = "^(active|archived)$")]
    pub status: Option<String>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

/// A sample's bytes in a request or a response: any content, of the MIME type `Content-Type` says.
struct SampleBytes;

impl PartialSchema for SampleBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl ToSchema for SampleBytes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SampleBytes")
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading the request

impl RegisterAsset {
    /// The record, once every value the domain would refuse is found here with its pointer.
    pub fn into_record(self) -> Result<AssetRecord, Problem> {
        let mut invalid = Invalid::default();
        let kind = AssetKind::parse(&self.kind);
        if kind.is_none() {
            invalid.push("/kind", "`kind` is `algorithm` or `dataset`");
        }
        let algorithm_type = match self.algorithm_type.as_deref() {
            None => Some(None),
            Some(name) => {
                let parsed = AlgorithmType::parse(name).map(Some);
                if parsed.is_none() {
                    invalid.push(
                        "/algorithm_type",
                        format!("`{name}` is no algorithm type: `python`, `bin`, `wasm` or `docker`"),
                    );
                }
                parsed
            }
        };
        match (kind, algorithm_type) {
            (Some(AssetKind::Algorithm), Some(None)) => {
                invalid.push("/algorithm_type", AssetError::AlgorithmTypeRequired.to_string());
            }
            (Some(AssetKind::Dataset), Some(Some(_))) => {
                invalid.push("/algorithm_type", AssetError::AlgorithmTypeForDataset.to_string());
            }
            _ => {}
        }
        let mime_type = invalid.check(|| "/mime_type".into(), MimeType::parse(&self.mime_type));
        let sha3_256 = invalid.check(|| "/sha3_256".into(), Sha3Digest::parse(&self.sha3_256));
        let file_name = invalid.check(|| "/file_name".into(), FileName::parse(&self.file_name));
        let description = self.description.unwrap_or_default();
        invalid.check(
            || "/description".into(),
            prism_domain::values::check_text("description", &description, asset::DESCRIPTION_MAX, false),
        );
        invalid.finish()?;
        // Every value was checked above.
        match (kind, algorithm_type, mime_type, sha3_256, file_name) {
            (Some(kind), Some(algorithm_type), Some(mime_type), Some(sha3_256), Some(file_name)) => {
                Ok(AssetRecord {
                    kind,
                    algorithm_type,
                    mime_type,
                    sha3_256,
                    file_name,
                    description,
                })
            }
            _ => Err(Problem::new(ProblemKind::Validation, "the asset is invalid")),
        }
    }
}

impl UpdateAsset {
    fn into_changes(self) -> Result<AssetChanges, Problem> {
        let mut invalid = Invalid::default();
        let mime_type = match &self.mime_type {
            Some(m) => invalid
                .check(|| "/mime_type".into(), MimeType::parse(m))
                .map(Some),
            None => Some(None),
        };
        if let Some(description) = &self.description {
            invalid.check(
                || "/description".into(),
                prism_domain::values::check_text("description", description, asset::DESCRIPTION_MAX, false),
            );
        }
        invalid.finish()?;
        Ok(AssetChanges {
            description: self.description,
            mime_type: mime_type.flatten(),
        })
    }
}

impl AssetParams {
    fn filter(&self) -> Result<AssetFilter, Problem> {
        if let Some(kind) = &self.kind
            && AssetKind::parse(kind).is_none()
        {
            return Err(parameter_problem(
                "kind",
                "`kind` is `algorithm` or `dataset`".into(),
            ));
        }
        if let Some(status) = &self.status
            && !matches!(status.as_str(), "active" | "archived")
        {
            return Err(parameter_problem(
                "status",
                "`status` is `active` or `archived`".into(),
            ));
        }
        Ok(AssetFilter {
            kind: self.kind.clone(),
            owner: self.owner.map(UserId),
            status: self.status.clone(),
        })
    }
}

/// The MIME type a sample is sent as: its `Content-Type`, required.
fn sample_type(headers: &HeaderMap) -> Result<MimeType, Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            "send the sample's bytes with its MIME type as `Content-Type`",
        ));
    };
    let text = value.to_str().unwrap_or_default();
    MimeType::parse(text).map_err(|e| {
        Problem::bad_request(e.to_string()).with_errors(vec![FieldProblem {
            pointer: "Content-Type".into(),
            detail: e.to_string(),
        }])
    })
}

fn too_large() -> AppError {
    AppError::new(
        ErrorKind::TooLarge,
        format!("a sample has at most {SAMPLE_MAX} bytes (10 MiB)"),
    )
}

/// The request's bytes, refused as soon as they pass the limit (nothing past it is read).
async fn sample_bytes(body: Body) -> Result<Bytes, AppError> {
    let mut stream = body.into_data_stream();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("the body could not be read: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > SAMPLE_MAX {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// The problem of `error`: a value of the body the domain refused points at its field.
fn refused(error: AppError) -> Problem {
    let pointer = match rejection::<AssetError>(&error) {
        Some(AssetError::AlgorithmTypeRequired | AssetError::AlgorithmTypeForDataset) => "/algorithm_type",
        Some(AssetError::Invalid(_)) => "/description",
        _ => return Problem::from(error),
    };
    super::members::pointing(error, pointer)
}

// ---------------------------------------------------------------------------------------------------
// Responses

/// The 422 of an asset's record: the rules no schema states.
struct RecordProblems;

impl IntoResponses for RecordProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(
                "A value breaks a rule (`errors[].pointer` locates each): a field missing or of the wrong \
                 type, a value outside the schema; an algorithm without `algorithm_type` or a dataset \
                 with one; a `file_name` of `.` or `..`; or the `Idempotency-Key` was first used with a \
                 different request.",
                ProblemKind::Validation,
            ),
        )])
    }
}

/// The 422 and 409 of a change of an asset: whose it is, and whether it is archived.
struct OwnerProblems;

impl IntoResponses for OwnerProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "409".to_owned(),
                own_problem(
                    "The asset is archived and no longer changes; or (archiving) an active computation \
                     links it — unlink it first; or too many concurrent changes (retry).",
                    ProblemKind::Conflict,
                ),
            ),
            (
                "422".to_owned(),
                own_problem(
                    "The asset is not the caller's: only the user who registered it changes it, attaches \
                     or removes its sample, or archives it, whatever their roles; or a value breaks a \
                     rule (`errors[].pointer` locates it); or the `Idempotency-Key` was first used with a \
                     different request.",
                    ProblemKind::Validation,
                ),
            ),
        ])
    }
}

/// What uploading a sample answers besides a change's problems.
struct SampleProblems;

impl IntoResponses for SampleProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "400".to_owned(),
                own_problem(
                    "The `Content-Type` is not a MIME type (`type/subtype` with optional `;name=value` \
                     token parameters), or another header is malformed.",
                    ProblemKind::BadRequest,
                ),
            ),
            (
                "413".to_owned(),
                own_problem(
                    &format!(
                        "The sample is larger than {SAMPLE_MAX} bytes (10 MiB): refused as soon as its \
                         `Content-Length` says so, or its bytes pass the limit."
                    ),
                    ProblemKind::PayloadTooLarge,
                ),
            ),
            (
                "415".to_owned(),
                own_problem(
                    "No `Content-Type`: send the sample with its MIME type.",
                    ProblemKind::UnsupportedMediaType,
                ),
            ),
        ])
    }
}

/// The 409 and 422 of linking and unlinking: the rules only the computation (and the asset) can tell.
struct LinkProblems;

impl IntoResponses for LinkProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([
            (
                "404".to_owned(),
                own_problem(
                    "No such computation or asset in the workspace (or none the caller has a part in).",
                    ProblemKind::NotFound,
                ),
            ),
            (
                "409".to_owned(),
                own_problem(
                    "The asset is already linked (linking) or not linked (unlinking); the computation \
                     already has a dataset of that file name or digest; its algorithm is another \
                     provider's; the asset or the computation is archived; or too many concurrent changes \
                     (retry).",
                    ProblemKind::Conflict,
                ),
            ),
            (
                "422".to_owned(),
                own_problem(
                    "The caller is not a participant of the computation holding the role that provides \
                     this kind of asset (`algorithm_provider` for an algorithm, `dataset_provider` for a \
                     dataset), or the asset is not its own (only its provider links or unlinks it); or \
                     the `Idempotency-Key` was first used with a different request.",
                    ProblemKind::Validation,
                ),
            ),
        ])
    }
}

/// The sample's bytes.
struct SampleContentResponse;

impl IntoResponses for SampleContentResponse {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        let header = |description: &str| {
            utoipa::openapi::header::HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)))
                .description(Some(description))
                .build()
        };
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(
                "The sample's bytes, exactly as uploaded, with its MIME type as `Content-Type`; checked \
                 against the SHA-256 the log recorded before they are sent. Always an attachment, never \
                 rendered (`Content-Disposition`, `nosniff`, a sandboxing `Content-Security-Policy`).",
            )
            .content(
                "*/*",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(SampleBytes::schema()))
                    .build(),
            )
            .header(
                "Repr-Digest",
                header("`sha-256=:<base64>:` of the bytes (RFC 9530)."),
            )
            .header("ETag", header("The SHA-256 of the bytes, hexadecimal, quoted."))
            .header(
                "Content-Disposition",
                header("`attachment`, with the asset's file name."),
            )
            .build();
        BTreeMap::from([("200".to_owned(), response.into())])
    }
}

fn location(workspace: Uuid, id: &str) -> String {
    format!("/{workspace}/assets/{id}")
}

/// The answer to a committed command on an asset: the asset as the read model shows it.
async fn respond(
    state: &AppState,
    caller: &Caller,
    workspace: Uuid,
    executed: &Executed<prism_domain::asset::Asset>,
    status: StatusCode,
) -> Response {
    let read = async {
        let id = AssetId(executed.id.parse().map_err(AppError::internal)?);
        let view = state
            .app()
            .assets()
            .get(caller, WorkspaceId(workspace), id, state.after(executed))
            .await?;
        Ok(AssetBody::from(view))
    };
    state
        .respond(executed, status, location(workspace, &executed.id), read)
        .await
}

/// The answer to a link or an unlink: the computation, or `202` naming the proposal it became.
async fn changed_computation(
    state: &AppState,
    caller: &Caller,
    workspace: Uuid,
    computation: Uuid,
    outcome: ChangeOutcome,
) -> Response {
    match outcome {
        ChangeOutcome::Proposed(_, ref proposal) if proposal.status == "open" => {
            super::governance::proposal_accepted(workspace, computation, &outcome, proposal.id)
        }
        ChangeOutcome::Proposed(executed, _)
        | ChangeOutcome::Applied(executed)
        | ChangeOutcome::Unchanged(executed) => {
            super::computations::respond(state, caller, workspace, &executed, StatusCode::OK).await
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Handlers

/// Record an algorithm or dataset of the workspace (`assets.manage`), owned by the caller. Only what
/// the file is: its bytes are never sent to the platform.
#[utoipa::path(
    post,
    path = "/{workspace}/assets",
    operation_id = "register_asset",
    tag = "assets",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = RegisterAsset,
    responses(
        Created<AssetBody>,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        RecordProblems,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<RegisterAsset>,
) -> Result<Response, Problem> {
    let record = body.into_record()?;
    let executed = state
        .app()
        .assets()
        .register(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), record)
        .await
        .map_err(refused)?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::CREATED).await)
}

/// The workspace's assets in the order they were registered (`assets.read`), filtered by kind, owner
/// and status.
#[utoipa::path(
    get,
    path = "/{workspace}/assets",
    operation_id = "list_assets",
    tag = "assets",
    params(("workspace" = Uuid, Path, description = "Workspace id"), AssetParams, QueryHeaderParams),
    responses(
        (status = 200, description = "One page", body = AssetPage),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<AssetParams>,
    headers: HeaderMap,
) -> Result<Json<AssetPage>, Problem> {
    let filter = params.filter()?;
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let page = state
        .app()
        .assets()
        .list(
            &caller,
            WorkspaceId(workspace),
            &filter,
            page,
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(AssetPage {
        items: page.items.into_iter().map(AssetBody::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// An asset of the workspace (`assets.read`), with the active computations that link it.
#[utoipa::path(
    get,
    path = "/{workspace}/assets/{asset}",
    operation_id = "get_asset",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("asset" = Uuid, Path, description = "Asset id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(Found<AssetBody>, QueryProblems, (status = 404, response = NotFound))
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let view = state
        .app()
        .assets()
        .get(
            &caller,
            WorkspaceId(workspace),
            AssetId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(([(header::ETAG, etag(view.version))], Json(AssetBody::from(view))).into_response())
}

/// Change the description or the MIME type of one's own asset (`assets.manage`). The digest and the
/// file name never change: register another asset for another file.
#[utoipa::path(
    patch,
    path = "/{workspace}/assets/{asset}",
    operation_id = "update_asset",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("asset" = Uuid, Path, description = "Asset id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = UpdateAsset,
    responses(
        Changed<AssetBody>,
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        OwnerProblems,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<UpdateAsset>,
) -> Result<Response, Problem> {
    let changes = body.into_changes()?;
    let executed = state
        .app()
        .assets()
        .update(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            AssetId(id),
            changes,
        )
        .await
        .map_err(refused)?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

/// Archive one's own asset (`assets.manage`): it can no longer be linked or changed, and its sample
/// is no longer kept. Refused (409) while an active computation links it.
#[utoipa::path(
    delete,
    path = "/{workspace}/assets/{asset}",
    operation_id = "archive_asset",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("asset" = Uuid, Path, description = "Asset id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Changed<AssetBody>, CommandProblems, ChangeProblems, OwnerProblems)
)]
pub async fn archive(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .assets()
        .archive(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            AssetId(id),
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

/// Attach a sample to one's own asset (`assets.manage`), replacing any before it: the raw bytes, at
/// most 10 MiB, with their MIME type as `Content-Type`. The platform keeps them beside its event log,
/// which records their SHA-256, size and type.
#[utoipa::path(
    put,
    path = "/{workspace}/assets/{asset}/sample",
    operation_id = "put_asset_sample",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("asset" = Uuid, Path, description = "Asset id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body(
        content = SampleBytes,
        content_type = "application/octet-stream",
        description = "The sample's bytes, at most 10 MiB. Any MIME type: `Content-Type` is the sample's."
    ),
    responses(
        Changed<AssetBody>,
        CommandProblems,
        ChangeProblems,
        OwnerProblems,
        SampleProblems,
    )
)]
pub async fn put_sample(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    request: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    // Too large by its own account: refused before anything is read.
    let announced = request
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > SAMPLE_MAX) {
        return Err(too_large().into());
    }
    let mime_type = sample_type(&request)?;
    let executed = state
        .app()
        .assets()
        .attach_sample(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            AssetId(id),
            mime_type,
            sample_bytes(body),
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

/// The sample of an asset of the workspace (`assets.read`): its bytes, with its MIME type.
#[utoipa::path(
    get,
    path = "/{workspace}/assets/{asset}/sample",
    operation_id = "get_asset_sample",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("asset" = Uuid, Path, description = "Asset id"),
    ),
    responses(
        SampleContentResponse,
        QueryProblems,
        (status = 404, description = "No such asset in the workspace (or none the caller has a part in), \
            or it has no sample.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_sample(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, Problem> {
    let sample = state
        .app()
        .assets()
        .sample(&caller, WorkspaceId(workspace), AssetId(id))
        .await?;
    Ok(sample_response(sample))
}

fn sample_response(sample: SampleContent) -> Response {
    let mut headers = HeaderMap::new();
    let content_type = HeaderValue::from_str(sample.mime_type.as_str())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    // Someone else's bytes: a browser must neither render nor sniff them on the API's origin.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    let name: String = sample
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"sample-{name}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    let digest = hex::decode(&sample.sha256).unwrap_or_default();
    let repr = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    if let Ok(value) = HeaderValue::from_str(&repr) {
        headers.insert("repr-digest", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", sample.sha256)) {
        headers.insert(header::ETAG, value);
    }
    (StatusCode::OK, headers, sample.bytes).into_response()
}

/// Remove the sample of one's own asset (`assets.manage`); its bytes are no longer kept. Nothing
/// happens when there is none.
#[utoipa::path(
    delete,
    path = "/{workspace}/assets/{asset}/sample",
    operation_id = "remove_asset_sample",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("asset" = Uuid, Path, description = "Asset id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Changed<AssetBody>, CommandProblems, ChangeProblems, OwnerProblems)
)]
pub async fn remove_sample(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .assets()
        .remove_sample(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            AssetId(id),
        )
        .await?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

/// Link one's own asset to the computation (`computation.assets.link`): an algorithm becomes its
/// algorithm (in place of the caller's earlier one), a dataset one more of its datasets, with the
/// asset's digest and file name and the caller as provider. The caller must hold the role that provides
/// that kind (`algorithm_provider`, `dataset_provider`). Once the computation is approved, the link is a
/// change of its manifest, proposed to its participants: `202` naming the proposal at `Location`.
#[utoipa::path(
    post,
    path = "/{workspace}/computations/{computation}/assets",
    operation_id = "link_asset",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = LinkAsset,
    responses(Changed<Computation>, CommandProblems, BodyProblems, ChangeProblems, LinkProblems)
)]
pub async fn link_asset(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, computation)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<LinkAsset>,
) -> Result<Response, Problem> {
    let outcome = state
        .app()
        .assets()
        .link(
            &caller,
            &headers.options("computation")?,
            WorkspaceId(workspace),
            ComputationId(computation),
            AssetId(body.asset_id),
        )
        .await?;
    Ok(changed_computation(&state, &caller, workspace, computation, outcome).await)
}

/// Take a linked asset out of the computation (`computation.assets.link`), as its provider. Once the
/// computation is approved, this is proposed to its participants: `202` naming the proposal.
#[utoipa::path(
    delete,
    path = "/{workspace}/computations/{computation}/assets/{asset}",
    operation_id = "unlink_asset",
    tag = "assets",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("computation" = Uuid, Path, description = "Computation id"),
        ("asset" = Uuid, Path, description = "Asset id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Changed<Computation>, CommandProblems, ChangeProblems, LinkProblems)
)]
pub async fn unlink_asset(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, computation, asset)): Path<(Uuid, Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let outcome = state
        .app()
        .assets()
        .unlink(
            &caller,
            &headers.options("computation")?,
            WorkspaceId(workspace),
            ComputationId(computation),
            AssetId(asset),
        )
        .await?;
    Ok(changed_computation(&state, &caller, workspace, computation, outcome).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(json: serde_json::Value) -> Result<AssetRecord, Problem> {
        serde_json::from_value::<RegisterAsset>(json)
            .unwrap()
            .into_record()
    }

    #[test]
    fn a_registration_becomes_a_record_and_every_bad_value_is_pointed_at() {
        let record = register(serde_json::json!({
            "kind": "algorithm", "algorithm_type": "wasm", "mime_type": "Application/WASM",
            "sha3_256": "AB".repeat(32), "file_name": "sum.wasm"
        }))
        .unwrap();
        assert_eq!(record.kind, AssetKind::Algorithm);
        assert_eq!(record.mime_type.as_str(), "application/wasm");
        assert_eq!(record.sha3_256.as_str(), "ab".repeat(32));

        let problem = register(serde_json::json!({
            "kind": "algorithm", "mime_type": "csv", "sha3_256": "12", "file_name": ".."
        }))
        .unwrap_err();
        let pointers: Vec<&str> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/algorithm_type", "/mime_type", "/sha3_256", "/file_name"]
        );
        let problem = register(serde_json::json!({
            "kind": "dataset", "algorithm_type": "python", "mime_type": "text/csv",
            "sha3_256": "ab".repeat(32), "file_name": "a/b.csv"
        }))
        .unwrap_err();
        let pointers: Vec<&str> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/algorithm_type", "/file_name"]);
    }

    #[test]
    fn the_mime_type_pattern_is_the_domains_rule() {
        let pattern = regex::Regex::new(MIME_TYPE_PATTERN).unwrap();
        let alphabet: Vec<char> = "aZ0/;= \t.+\"-é\u{0}".chars().collect();
        let mut samples = crate::strings::over(&alphabet, 4, 20_000, 16);
        samples.extend([
            "text/csv".to_owned(),
            "text/csv ; charset=utf-8".to_owned(),
            "text/csv;a=b;c=d".to_owned(),
            "text/csv;a=b ".to_owned(),
            format!("a/{}", "b".repeat(127)),
            format!("a/{}", "b".repeat(128)),
        ]);
        for s in samples {
            let schema = pattern.is_match(&s) && s.chars().count() <= MimeType::MAX_LEN;
            assert_eq!(schema, MimeType::parse(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn the_file_name_pattern_is_the_domains_rule_but_for_dot_and_dot_dot() {
        let pattern = regex::Regex::new(FILE_NAME_PATTERN).unwrap();
        let alphabet: Vec<char> = "a./\\ \u{0}\u{1f}\u{7f}\u{85}\u{a0}é😀".chars().collect();
        for s in crate::strings::over(&alphabet, 3, 5000, 300) {
            let documented = pattern.is_match(&s) && s != "." && s != "..";
            assert_eq!(documented, FileName::parse(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn a_sample_is_sent_with_its_mime_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(sample_type(&headers).unwrap_err().status, 415);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("csv"));
        assert_eq!(sample_type(&headers).unwrap_err().status, 400);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/CSV; charset=utf-8"),
        );
        assert_eq!(sample_type(&headers).unwrap().as_str(), "text/csv;charset=utf-8");
    }

    #[tokio::test]
    async fn a_body_is_read_only_up_to_the_limit() {
        let within = Body::from(vec![1u8; 1024]);
        assert_eq!(sample_bytes(within).await.unwrap().len(), 1024);
        let past = Body::from(vec![1u8; SAMPLE_MAX as usize + 1]);
        assert_eq!(sample_bytes(past).await.unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn a_sample_is_served_as_an_attachment_with_its_digest() {
        let response = sample_response(SampleContent {
            bytes: Bytes::from_static(b"<script>alert(1)</script>"),
            mime_type: MimeType::parse("text/html").unwrap(),
            sha256: "00".repeat(32),
            file_name: "page \"1\".html".into(),
        });
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("sandbox")
        );
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"sample-page__1_.html\""
        );
        assert_eq!(
            headers["repr-digest"],
            format!(
                "sha-256=:{}:",
                base64::engine::general_purpose::STANDARD.encode([0u8; 32])
            )
        );
    }
}
