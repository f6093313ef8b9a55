//! `/{workspace}/backends` and `/backends`: where CVMs are made. A workspace's admins register the
//! workspace's own backends; the platform's operators register the platform's, which every workspace
//! may use. A workspace lists its own and the platform's, each with how many CVMs it runs now.
//!
//! The local backend runs the emulated agent, which protects nothing: every answer that shows one says
//! so (`insecure`, `warning`), so that no client mistakes it for a confidential one.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use prism_app::{AppError, Caller, Executed, ReadOptions};
use prism_domain::backend::{
    ADDRESS_MAX, BackendError, BackendSettings, CAPACITY_MAX, Driver, LABEL_MAX, LABELS_MAX, NAME_MAX,
    PEM_MAX, Price,
};
use prism_domain::cvm::ConfidentialPlatform;
use prism_domain::{BackendId, WorkspaceId};
use prism_projections::BackendView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Response as OpenApiResponse};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{Done, Invalid, done, rejection};
use super::read_options;
use crate::auth::Authenticated;
use crate::command::Resource;
use crate::dto::ReadParams;
use crate::extract::{JsonBody, Path, Query};
use crate::headers::{CommandHeaderParams, CommandHeaders, ConditionalHeaderParams, QueryHeaderParams, etag};
use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::responses::{
    BodyProblems, ChangeProblems, Changed, CommandProblems, Created, Found, Linked, NotFound, QueryProblems,
    own_problem,
};
use crate::{AppState, Routes};

const WHAT: &str = "backend";

/// What every answer showing an insecure backend or CVM carries in `warning`.
pub(crate) const INSECURE_WARNING: &str = "insecure: no hardware protection";

/// A backend's name, as the domain takes it.
const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// A label's key and value, as the domain takes them.
pub(crate) const LABEL_KEY_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
pub(crate) const LABEL_VALUE_PATTERN: &str = "^[A-Za-z0-9._-]{0,64}$";
/// `host:port`: a host of visible ASCII without `/` (a name, an IPv4 address, or an IPv6 address in
/// brackets) and a port 1–65535 (a leading `+` and zeros are read as the domain reads them).
const ADDRESS_PATTERN: &str = r"^[!-.0-~]+:\+?0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";
/// PEM certificates: ASCII text with at least one `CERTIFICATE` block (each block is then read).
const CA_PEM_PATTERN: &str = r"^[\x00-\x7F]*-----BEGIN CERTIFICATE-----[\x00-\x7F]*$";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(BackendSettingsBody, DriverBody, PriceBody, Backend, PlatformBackend)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(register, list))
        .routes(routes!(get, update, remove))
        .routes(routes!(register_platform, list_platform))
        .routes(routes!(get_platform, update_platform, remove_platform))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// What a backend offers and how it is reached: the body of a registration, and of a change (which
/// replaces all of it; the kind of driver cannot change).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BackendSettings, examples(json!({
    "name": "eu-snp-1",
    "driver": {
        "kind": "cocos_manager",
        "address": "manager.example.org:7002",
        "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB…\n-----END CERTIFICATE-----\n"
    },
    "platforms": ["sev_snp"],
    "capacity": 8,
    "labels": {"region": "eu-west"},
    "price": {"vcpu_hour_micros": 40000, "gib_hour_micros": 5000}
})))]
pub struct BackendSettingsBody {
    #[schema(schema_with = backend_name)]
    pub name: String,
    pub driver: DriverBody,
    #[schema(schema_with = platforms)]
    pub platforms: Vec<ConfidentialPlatform>,
    /// The most CVMs it runs at once.
    #[serde(deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 100_000, example = 8)]
    pub capacity: u32,
    #[serde(default)]
    #[schema(schema_with = labels)]
    pub labels: BTreeMap<String, String>,
    /// What it charges; absent: nothing.
    #[serde(default)]
    pub price: Option<PriceBody>,
}

/// How the platform makes CVMs on a backend, by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DriverBody {
    /// The emulated agent, run by the platform itself: insecure, it offers the platform `none` only.
    // A struct variant, not a unit one: serde lets a unit variant of a tagged enum carry any field.
    Local {},
    /// A Cocos manager, reached over gRPC with mutual TLS.
    CocosManager { address: String, ca_pem: String },
    /// A machine its owner runs.
    Byo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_address: Option<String>,
    },
}

/// The schema of one kind of driver: `kind` and `properties`, nothing else.
fn driver_kind(kind: &str, description: &str, properties: Vec<(&str, Schema, bool)>) -> ObjectBuilder {
    let tag = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some([kind]));
    properties.into_iter().fold(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .description(Some(description))
            .property("kind", tag)
            .required("kind")
            .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        |object, (name, schema, required)| {
            let object = object.property(name, schema);
            if required { object.required(name) } else { object }
        },
    )
}

// Written out rather than derived: the derived schema of a tagged enum does not say that its
// variants take no other field, which serde refuses.
impl PartialSchema for DriverBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some("How the platform makes CVMs on a backend, by `kind`."))
            .item(driver_kind(
                "local",
                "The emulated agent, run by the platform itself. **Insecure: no hardware protection**; \
                 it offers the platform `none` only.",
                vec![],
            ))
            .item(driver_kind(
                "cocos_manager",
                "A Cocos manager, reached over gRPC with mutual TLS.",
                vec![("address", address(), true), ("ca_pem", ca_pem(), true)],
            ))
            .item(driver_kind(
                "byo",
                "A machine its owner runs: its agent fetches its certificate with a one-time token (see \
                 `POST /{workspace}/cvms/{cvm}/enrolment`) and dials in.",
                vec![("agent_address", optional_address(), false)],
            ))
            .into()
    }
}

impl ToSchema for DriverBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Driver")
    }
}

/// What a backend charges per hour, in millionths of a currency unit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Price)]
pub struct PriceBody {
    /// Per vCPU and hour; absent: 0.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 0, example = 40_000)]
    pub vcpu_hour_micros: u64,
    /// Per GiB of memory (rounded up) and hour; absent: 0.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 0, example = 5_000)]
    pub gib_hour_micros: u64,
}

/// A whole number of the body. JSON Schema counts `8.0` as the integer 8, and so a client may send it:
/// it is read as 8; a fraction, a negative number or one past `T` is refused.
pub(crate) fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole;

    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number of at least 0")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<u64, E> {
            // 2^64 is exactly representable; every whole f64 below it fits in a u64.
            if n.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&n) {
                Ok(n as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(n), &self))
            }
        }
    }

    let n = deserializer.deserialize_any(Whole)?;
    T::try_from(n).map_err(|_| {
        serde::de::Error::invalid_value(serde::de::Unexpected::Unsigned(n), &"a smaller whole number")
    })
}

fn backend_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .pattern(Some(NAME_PATTERN))
        .description(Some(format!("1–{NAME_MAX} letters, digits, `-`, `_` and `.`.")))
        .examples(["eu-snp-1"])
        .into()
}

/// The confidential platforms: `sev_snp` (AMD SEV-SNP), `tdx` (Intel TDX), `none` (no hardware
/// protection).
pub(crate) fn platform_builder() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(ConfidentialPlatform::ALL.map(ConfidentialPlatform::as_str)))
}

fn platforms() -> Schema {
    ArrayBuilder::new()
        .items(platform_builder())
        .min_items(Some(1))
        .max_items(Some(ConfidentialPlatform::ALL.len()))
        .unique_items(true)
        .description(Some(
            "The confidential platforms its machines run on, each once: `sev_snp` (AMD SEV-SNP), `tdx` \
             (Intel TDX), `none` (no hardware protection). A `local` backend offers exactly `[\"none\"]`.",
        ))
        .into()
}

/// Labels: keys of 1–64 and values of 0–64 letters, digits, `-`, `_` and `.`.
pub(crate) fn labels_builder(description: &str) -> ObjectBuilder {
    let names = Extensions::from_iter([(
        "propertyNames",
        json!({"type": "string", "minLength": 1, "maxLength": LABEL_MAX, "pattern": LABEL_KEY_PATTERN}),
    )]);
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .max_length(Some(LABEL_MAX))
                .pattern(Some(LABEL_VALUE_PATTERN)),
        ))
        .max_properties(Some(LABELS_MAX))
        .extensions(Some(names))
        .description(Some(format!(
            "{description} At most {LABELS_MAX}; keys have 1–{LABEL_MAX} and values 0–{LABEL_MAX} \
             letters, digits, `-`, `_` and `.`."
        )))
        .examples([json!({"region": "eu-west"})])
}

fn labels() -> Schema {
    labels_builder("What the backend carries, for CVMs that ask for it (e.g. `region=eu-west`).").into()
}

fn address_builder() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(3))
        .max_length(Some(ADDRESS_MAX))
        .pattern(Some(ADDRESS_PATTERN))
        .examples(["manager.example.org:7002"])
}

fn address() -> Schema {
    address_builder()
        .description(Some(format!(
            "`host:port`, at most {ADDRESS_MAX} characters: a host name or IPv4 address, or an IPv6 \
             address in brackets (visible ASCII, no `/`), and a port 1–65535."
        )))
        .into()
}

fn optional_address() -> Schema {
    address_builder()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(format!(
            "`host:port`, at most {ADDRESS_MAX} characters, as for a manager's address. Absent or \
             `null`: unknown."
        )))
        .into()
}

fn ca_pem() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .max_length(Some(PEM_MAX))
        .pattern(Some(CA_PEM_PATTERN))
        .description(Some(format!(
            "One or more certificates, PEM (`-----BEGIN CERTIFICATE-----` … `-----END CERTIFICATE-----`, \
             base64 DER between), at most {} KiB of ASCII. A block that is not a certificate is refused \
             (422, pointing here).",
            PEM_MAX / 1024
        )))
        .into()
}

/// A backend as the read model shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Backend {
    pub id: Uuid,
    /// The workspace it belongs to; absent for a backend of the platform, which every workspace may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    #[schema(example = "eu-snp-1")]
    pub name: String,
    pub driver: DriverBody,
    /// The confidential platforms it offers: `sev_snp`, `tdx`, `none`.
    #[schema(schema_with = platforms)]
    pub platforms: Vec<ConfidentialPlatform>,
    /// The most CVMs it runs at once.
    pub capacity: u32,
    /// CVMs on it that are neither destroyed nor failed.
    pub running: u32,
    #[schema(schema_with = labels)]
    pub labels: BTreeMap<String, String>,
    pub price: Option<PriceBody>,
    /// `true` for a `local` backend: the emulated agent protects nothing.
    pub insecure: bool,
    /// Present (`insecure: no hardware protection`) exactly when `insecure` is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "insecure: no hardware protection")]
    pub warning: Option<String>,
    /// Whether it answered its last health check (a backend just registered is presumed healthy).
    pub healthy: bool,
    /// What the last health check saw when it failed.
    pub health_detail: String,
    /// `active`, or `removed` (out of use; its CVMs stay until they are destroyed).
    #[schema(example = "active")]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Aggregate version; also the `ETag`.
    pub version: u64,
    /// Stream sequence of the command's commit (command responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl From<BackendView> for Backend {
    fn from(v: BackendView) -> Self {
        let settings = v.settings;
        let insecure = matches!(settings.driver, Driver::Local);
        Self {
            id: v.id.as_uuid(),
            workspace_id: v.workspace_id.map(|w| w.as_uuid()),
            name: settings.name,
            driver: DriverBody::from(settings.driver),
            platforms: settings.platforms,
            capacity: settings.capacity,
            running: v.running,
            labels: settings.labels,
            price: settings.price.map(PriceBody::from),
            insecure,
            warning: insecure.then(|| INSECURE_WARNING.to_owned()),
            healthy: v.healthy,
            health_detail: v.health_detail,
            status: v.status,
            created_at: v.created_at,
            updated_at: v.updated_at,
            version: v.version,
            sequence: None,
        }
    }
}

impl Resource for Backend {
    fn version(&self) -> u64 {
        self.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = Some(sequence);
    }
}

/// A backend of the platform, as its operators see it (the shape of [`Backend`]).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(transparent)]
pub struct PlatformBackend(Backend);

impl Resource for PlatformBackend {
    fn version(&self) -> u64 {
        self.0.version
    }

    fn set_sequence(&mut self, sequence: u64) {
        self.0.sequence = Some(sequence);
    }
}

impl From<Driver> for DriverBody {
    fn from(driver: Driver) -> Self {
        match driver {
            Driver::Local => Self::Local {},
            Driver::CocosManager { address, ca_pem } => Self::CocosManager { address, ca_pem },
            Driver::Byo { agent_address } => Self::Byo { agent_address },
        }
    }
}

impl From<Price> for PriceBody {
    fn from(p: Price) -> Self {
        Self {
            vcpu_hour_micros: p.vcpu_hour_micros,
            gib_hour_micros: p.gib_hour_micros,
        }
    }
}

/// A link to `operation_id` with the workspace of the request's path and the backend's id from the
/// body (a platform backend shown to a workspace has no `workspace_id` to take it from).
fn backend_link(operation_id: &str, workspace: bool) -> Link {
    let operation = Extensions::from_iter([("operationId", operation_id)]);
    let mut link = LinkBuilder::new().extensions(Some(operation));
    if workspace {
        link = link.parameter("workspace", "$request.path.workspace");
    }
    link.parameter("backend", "$response.body#/id").build()
}

impl Linked for Backend {
    fn links() -> Vec<(&'static str, Link)> {
        vec![
            ("GetBackend", backend_link("get_backend", true)),
            ("UpdateBackend", backend_link("update_backend", true)),
            ("RemoveBackend", backend_link("remove_backend", true)),
        ]
    }
}

impl Linked for PlatformBackend {
    fn links() -> Vec<(&'static str, Link)> {
        vec![
            ("GetPlatformBackend", backend_link("get_platform_backend", false)),
            (
                "UpdatePlatformBackend",
                backend_link("update_platform_backend", false),
            ),
            (
                "RemovePlatformBackend",
                backend_link("remove_platform_backend", false),
            ),
        ]
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading the request

impl BackendSettingsBody {
    /// The settings, once each value the domain would refuse is found here with its pointer (so one
    /// answer lists them all); the domain decides again.
    fn into_settings(self) -> Result<BackendSettings, Problem> {
        let mut invalid = Invalid::default();
        if !is_name(&self.name, 1) {
            invalid.push("/name", BackendError::Name.to_string());
        }
        check_platforms(&mut invalid, &self.platforms, &self.driver);
        if self.capacity == 0 || self.capacity > CAPACITY_MAX {
            invalid.push(
                "/capacity",
                BackendError::Capacity { max: CAPACITY_MAX }.to_string(),
            );
        }
        check_labels(&mut invalid, "/labels", &self.labels);
        let driver = match self.driver {
            DriverBody::Local {} => Driver::Local,
            DriverBody::CocosManager { address, ca_pem } => {
                check_address(&mut invalid, "/driver/address", &address);
                check_ca_pem(&mut invalid, &ca_pem);
                Driver::CocosManager { address, ca_pem }
            }
            DriverBody::Byo { agent_address } => {
                if let Some(address) = &agent_address {
                    check_address(&mut invalid, "/driver/agent_address", address);
                }
                Driver::Byo { agent_address }
            }
        };
        invalid.finish()?;
        Ok(BackendSettings {
            name: self.name,
            driver,
            platforms: self.platforms,
            capacity: self.capacity,
            labels: self.labels,
            price: self.price.map(|p| Price {
                vcpu_hour_micros: p.vcpu_hour_micros,
                gib_hour_micros: p.gib_hour_micros,
            }),
        })
    }
}

/// Letters, digits, `-`, `_` and `.`, `min`–64 of them: names and labels.
pub(crate) fn is_name(text: &str, min: usize) -> bool {
    (min..=LABEL_MAX).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn check_platforms(invalid: &mut Invalid, platforms: &[ConfidentialPlatform], driver: &DriverBody) {
    if platforms.is_empty() {
        invalid.push("/platforms", BackendError::NoPlatform.to_string());
    }
    for (i, platform) in platforms.iter().enumerate() {
        if platforms[..i].contains(platform) {
            invalid.push(
                format!("/platforms/{i}"),
                BackendError::RepeatedPlatform.to_string(),
            );
        }
    }
    if matches!(driver, DriverBody::Local {}) && platforms != [ConfidentialPlatform::None] {
        invalid.push("/platforms", BackendError::LocalIsInsecure.to_string());
    }
}

/// Labels at `base`; each bad one pointed at by its key.
pub(crate) fn check_labels(invalid: &mut Invalid, base: &str, labels: &BTreeMap<String, String>) {
    if labels.len() > LABELS_MAX {
        invalid.push(base, BackendError::TooManyLabels { max: LABELS_MAX }.to_string());
    }
    for (key, value) in labels {
        if !is_name(key, 1) || !is_name(value, 0) {
            let shown: String = key.chars().take(LABEL_MAX).collect();
            invalid.push(
                format!("{base}/{}", key.replace('~', "~0").replace('/', "~1")),
                BackendError::Label(shown).to_string(),
            );
        }
    }
}

/// An address as [`ADDRESS_PATTERN`] states it (stricter than the domain, which takes any host
/// without white space or `/`: the document can then say exactly what is taken).
fn check_address(invalid: &mut Invalid, pointer: &str, address: &str) {
    let valid = address.len() <= ADDRESS_MAX
        && address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/') && is_port(port)
        });
    if !valid {
        invalid.push(
            pointer,
            "not an address of the form host:port (a host of visible ASCII without `/`, a port 1–65535)",
        );
    }
}

/// What [`ADDRESS_PATTERN`] takes as a port: what `u16` parsing takes, except 0.
fn is_port(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u16>().is_ok_and(|p| p != 0)
}

/// CA certificates: ASCII, at least one `CERTIFICATE` block, and every block base64 of a DER sequence.
fn check_ca_pem(invalid: &mut Invalid, pem: &str) {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let refuse = |invalid: &mut Invalid, why: &str| {
        invalid.push(
            "/driver/ca_pem",
            format!("the manager's CA certificates must be PEM: {why}"),
        )
    };
    if pem.len() > PEM_MAX || !pem.is_ascii() {
        return refuse(invalid, &format!("ASCII text of at most {} KiB", PEM_MAX / 1024));
    }
    let mut rest = pem;
    let mut blocks = 0;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else {
            return refuse(invalid, "a certificate block has no END line");
        };
        let text: String = body[..end].split_ascii_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD.decode(text.as_bytes());
        // A certificate is a DER SEQUENCE; anything else between the lines is not one.
        if !der.is_ok_and(|der| der.len() > 2 && der[0] == 0x30) {
            return refuse(invalid, "a certificate block is not base64 of a DER certificate");
        }
        blocks += 1;
        rest = &body[end + END.len()..];
    }
    if blocks == 0 {
        refuse(invalid, "no `-----BEGIN CERTIFICATE-----` block");
    }
}

/// The problem of `error`: a value the domain refused points at its field.
fn refused(error: AppError) -> Problem {
    let pointer = match rejection::<BackendError>(&error) {
        Some(BackendError::Name) => "/name",
        Some(BackendError::NoPlatform | BackendError::RepeatedPlatform | BackendError::LocalIsInsecure) => {
            "/platforms"
        }
        Some(BackendError::Capacity { .. }) => "/capacity",
        Some(BackendError::TooManyLabels { .. } | BackendError::Label(_)) => "/labels",
        Some(BackendError::Address(_)) => "/driver",
        Some(BackendError::CaPem) => "/driver/ca_pem",
        Some(BackendError::KindChange) => "/driver/kind",
        _ => "",
    };
    let problem = Problem::from(error);
    if problem.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16() && problem.errors.is_empty() {
        let detail = problem.detail.clone().unwrap_or_default();
        return problem.with_errors(vec![FieldProblem {
            pointer: pointer.into(),
            detail,
        }]);
    }
    problem
}

// ---------------------------------------------------------------------------------------------------
// Responses

/// The 422 of a backend's settings: the rules no schema states.
struct SettingsProblems;

impl IntoResponses for SettingsProblems {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "422".to_owned(),
            own_problem(
                "A value breaks a rule (`errors[].pointer` locates each): a field missing or of the wrong \
                 type, a value outside the schema; a `local` backend offering anything but \
                 `[\"none\"]` (the emulated agent protects nothing); a `ca_pem` block that is not a \
                 certificate; or the `Idempotency-Key` was first used with a different request.",
                ProblemKind::Validation,
            ),
        )])
    }
}

/// The 409 of a change: the backend is removed, or the change would swap its kind of driver.
struct ChangeConflict;

impl IntoResponses for ChangeConflict {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "409".to_owned(),
            own_problem(
                "The backend has been removed, or the change names another kind of driver (register \
                 another backend instead); or too many concurrent changes (retry).",
                ProblemKind::Conflict,
            ),
        )])
    }
}

/// The 403 of the platform's backends.
struct OperatorsOnly;

impl IntoResponses for OperatorsOnly {
    fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
        BTreeMap::from([(
            "403".to_owned(),
            own_problem(
                "The platform's backends are its operators' (`platform.operate`).",
                ProblemKind::Forbidden,
            ),
        )])
    }
}

fn location(workspace: Option<Uuid>, id: &str) -> String {
    match workspace {
        Some(workspace) => format!("/{workspace}/backends/{id}"),
        None => format!("/backends/{id}"),
    }
}

/// The answer to a committed command on a workspace's backend: the backend as the read model shows it.
async fn respond(
    state: &AppState,
    caller: &Caller,
    workspace: Uuid,
    executed: &Executed<prism_domain::backend::Backend>,
    status: StatusCode,
) -> Response {
    let read = async {
        let id = BackendId(executed.id.parse().map_err(AppError::internal)?);
        let view = state
            .app()
            .backends()
            .get(caller, WorkspaceId(workspace), id, state.after(executed))
            .await?;
        Ok(Backend::from(view))
    };
    state
        .respond(executed, status, location(Some(workspace), &executed.id), read)
        .await
}

/// The same for a backend of the platform.
async fn respond_platform(
    state: &AppState,
    caller: &Caller,
    executed: &Executed<prism_domain::backend::Backend>,
    status: StatusCode,
) -> Response {
    let read = async {
        let id = BackendId(executed.id.parse().map_err(AppError::internal)?);
        platform_backend(state, caller, id, state.after(executed)).await
    };
    state
        .respond(executed, status, location(None, &executed.id), read)
        .await
}

/// One active backend of the platform, for its operators.
async fn platform_backend(
    state: &AppState,
    caller: &Caller,
    id: BackendId,
    read: ReadOptions,
) -> Result<PlatformBackend, AppError> {
    state
        .app()
        .backends()
        .list_all(caller, read)
        .await?
        .into_iter()
        .find(|b| b.id == id && b.workspace_id.is_none())
        .map(|b| PlatformBackend(Backend::from(b)))
        .ok_or_else(|| AppError::not_found(format!("backend {id} not found")))
}

// ---------------------------------------------------------------------------------------------------
// A workspace's backends

/// Register a backend of the workspace (`backends.manage`).
#[utoipa::path(
    post,
    path = "/{workspace}/backends",
    operation_id = "register_backend",
    tag = "backends",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CommandHeaderParams),
    request_body = BackendSettingsBody,
    responses(
        Created<Backend>,
        CommandProblems,
        BodyProblems,
        (status = 404, response = NotFound),
        SettingsProblems,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<BackendSettingsBody>,
) -> Result<Response, Problem> {
    let settings = body.into_settings()?;
    let executed = state
        .app()
        .backends()
        .register(
            &caller,
            &headers.options(WHAT)?,
            Some(WorkspaceId(workspace)),
            settings,
        )
        .await
        .map_err(refused)?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::CREATED).await)
}

/// The active backends the workspace may use (`backends.read`): its own and the platform's, oldest
/// first, each with how many CVMs it runs now.
#[utoipa::path(
    get,
    path = "/{workspace}/backends",
    operation_id = "list_backends",
    tag = "backends",
    params(("workspace" = Uuid, Path, description = "Workspace id"), ReadParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The backends, oldest first", body = Vec<Backend>),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Backend>>, Problem> {
    let backends = state
        .app()
        .backends()
        .list(
            &caller,
            WorkspaceId(workspace),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(backends.into_iter().map(Backend::from).collect()))
}

/// A backend the workspace may use (`backends.read`): its own or the platform's, removed ones too.
#[utoipa::path(
    get,
    path = "/{workspace}/backends/{backend}",
    operation_id = "get_backend",
    tag = "backends",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("backend" = Uuid, Path, description = "Backend id"),
        ReadParams,
        QueryHeaderParams
    ),
    responses(Found<Backend>, QueryProblems, (status = 404, response = NotFound))
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
        .backends()
        .get(
            &caller,
            WorkspaceId(workspace),
            BackendId(id),
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(([(header::ETAG, etag(view.version))], Json(Backend::from(view))).into_response())
}

/// Replace a workspace backend's settings (`backends.manage`): the body is all of them; the kind of
/// driver stays. The platform's backends are changed through `/backends/{backend}` only (404 here).
#[utoipa::path(
    put,
    path = "/{workspace}/backends/{backend}",
    operation_id = "update_backend",
    tag = "backends",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("backend" = Uuid, Path, description = "Backend id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = BackendSettingsBody,
    responses(
        Changed<Backend>,
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        ChangeConflict,
        SettingsProblems,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<BackendSettingsBody>,
) -> Result<Response, Problem> {
    let settings = body.into_settings()?;
    let executed = state
        .app()
        .backends()
        .update(
            &caller,
            &headers.options(WHAT)?,
            Some(WorkspaceId(workspace)),
            BackendId(id),
            settings,
        )
        .await
        .map_err(refused)?;
    Ok(respond(&state, &caller, workspace, &executed, StatusCode::OK).await)
}

/// Take a workspace's backend out of use (`backends.manage`): it is listed no more and gets no new
/// CVMs; those it runs stay until they are destroyed. It stays readable at its address, `removed`.
#[utoipa::path(
    delete,
    path = "/{workspace}/backends/{backend}",
    operation_id = "remove_backend",
    tag = "backends",
    params(
        ("workspace" = Uuid, Path, description = "Workspace id"),
        ("backend" = Uuid, Path, description = "Backend id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Done, CommandProblems, ChangeProblems, ChangeConflict)
)]
pub async fn remove(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((workspace, id)): Path<(Uuid, Uuid)>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .backends()
        .remove(
            &caller,
            &headers.options(WHAT)?,
            Some(WorkspaceId(workspace)),
            BackendId(id),
        )
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

// ---------------------------------------------------------------------------------------------------
// The platform's backends

/// Register a backend of the platform, which every workspace may use (`platform.operate`).
#[utoipa::path(
    post,
    path = "/backends",
    operation_id = "register_platform_backend",
    tag = "backends",
    params(CommandHeaderParams),
    request_body = BackendSettingsBody,
    responses(Created<PlatformBackend>, CommandProblems, BodyProblems, OperatorsOnly, SettingsProblems)
)]
pub async fn register_platform(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<BackendSettingsBody>,
) -> Result<Response, Problem> {
    let settings = body.into_settings()?;
    let executed = state
        .app()
        .backends()
        .register(&caller, &headers.options(WHAT)?, None, settings)
        .await
        .map_err(refused)?;
    Ok(respond_platform(&state, &caller, &executed, StatusCode::CREATED).await)
}

/// Every active backend, the platform's and every workspace's, oldest first, with their load
/// (`platform.operate`).
#[utoipa::path(
    get,
    path = "/backends",
    operation_id = "list_platform_backends",
    tag = "backends",
    params(ReadParams, QueryHeaderParams),
    responses(
        (status = 200, description = "The backends, oldest first", body = Vec<Backend>),
        QueryProblems,
        OperatorsOnly,
    )
)]
pub async fn list_platform(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Backend>>, Problem> {
    let backends = state
        .app()
        .backends()
        .list_all(&caller, read_options(&headers, params.min_sequence)?)
        .await?;
    Ok(Json(backends.into_iter().map(Backend::from).collect()))
}

/// An active backend of the platform (`platform.operate`).
#[utoipa::path(
    get,
    path = "/backends/{backend}",
    operation_id = "get_platform_backend",
    tag = "backends",
    params(("backend" = Uuid, Path, description = "Backend id"), ReadParams, QueryHeaderParams),
    responses(
        Found<PlatformBackend>,
        QueryProblems,
        OperatorsOnly,
        (status = 404, description = "No active backend of the platform has this id.", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn get_platform(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let read = read_options(&headers, params.min_sequence)?;
    let backend = platform_backend(&state, &caller, BackendId(id), read).await?;
    Ok(([(header::ETAG, etag(backend.0.version))], Json(backend)).into_response())
}

/// Replace a platform backend's settings (`platform.operate`); a workspace's backend is not found here.
#[utoipa::path(
    put,
    path = "/backends/{backend}",
    operation_id = "update_platform_backend",
    tag = "backends",
    params(
        ("backend" = Uuid, Path, description = "Backend id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    request_body = BackendSettingsBody,
    responses(
        Changed<PlatformBackend>,
        CommandProblems,
        BodyProblems,
        ChangeProblems,
        OperatorsOnly,
        ChangeConflict,
        SettingsProblems,
    )
)]
pub async fn update_platform(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<BackendSettingsBody>,
) -> Result<Response, Problem> {
    let settings = body.into_settings()?;
    let executed = state
        .app()
        .backends()
        .update(&caller, &headers.options(WHAT)?, None, BackendId(id), settings)
        .await
        .map_err(refused)?;
    Ok(respond_platform(&state, &caller, &executed, StatusCode::OK).await)
}

/// Take a platform backend out of use (`platform.operate`); the CVMs it runs stay until destroyed.
#[utoipa::path(
    delete,
    path = "/backends/{backend}",
    operation_id = "remove_platform_backend",
    tag = "backends",
    params(
        ("backend" = Uuid, Path, description = "Backend id"),
        CommandHeaderParams,
        ConditionalHeaderParams
    ),
    responses(Done, CommandProblems, ChangeProblems, OperatorsOnly, ChangeConflict)
)]
pub async fn remove_platform(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let executed = state
        .app()
        .backends()
        .remove(&caller, &headers.options(WHAT)?, None, BackendId(id))
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> Result<BackendSettingsBody, Problem> {
        crate::extract::parse_json_object(json.to_string().as_bytes())
    }

    fn pointers(problem: &Problem) -> Vec<&str> {
        problem.errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let capacity = |value: serde_json::Value| {
            body(json!({"name": "l", "driver": {"kind": "local"}, "platforms": ["none"], "capacity": value}))
                .map(|b| b.capacity)
        };
        assert_eq!(capacity(json!(8.0)).unwrap(), 8);
        assert_eq!(capacity(json!(8)).unwrap(), 8);
        for bad in [
            json!(8.5),
            json!(-1),
            json!(-1.0),
            json!(4294967296u64),
            json!("8"),
        ] {
            let problem = capacity(bad.clone()).unwrap_err();
            assert_eq!(problem.status, 422, "{bad}");
            assert_eq!(problem.errors[0].pointer, "/capacity", "{bad}");
        }
    }

    #[test]
    fn a_local_backend_offers_no_confidential_platform() {
        let problem =
            body(json!({"name": "l", "driver": {"kind": "local"}, "platforms": ["sev_snp"], "capacity": 1}))
                .unwrap()
                .into_settings()
                .unwrap_err();
        assert_eq!(problem.status, 422);
        assert_eq!(pointers(&problem), ["/platforms"]);
        let ok =
            body(json!({"name": "l", "driver": {"kind": "local"}, "platforms": ["none"], "capacity": 1}));
        assert!(ok.unwrap().into_settings().is_ok());
    }

    #[test]
    fn unknown_fields_are_refused_inside_the_driver_too() {
        for driver in [
            json!({"kind": "local", "address": "h:1"}),
            json!({"kind": "byo", "extra": 1}),
        ] {
            let problem = body(json!({"name": "b", "driver": driver, "platforms": ["none"], "capacity": 1}))
                .unwrap_err();
            assert_eq!(problem.status, 400, "{driver}: {problem}");
        }
        let problem =
            body(json!({"name": "b", "driver": {"kind": "vm"}, "platforms": ["none"], "capacity": 1}))
                .unwrap_err();
        assert_eq!(problem.status, 422);
    }

    #[test]
    fn every_bad_value_is_pointed_at() {
        let problem = body(json!({
            "name": "a b",
            "driver": {"kind": "cocos_manager", "address": "no-port", "ca_pem": "not pem"},
            "platforms": ["tdx", "tdx"],
            "capacity": 0,
            "labels": {"bad key": "x", "ok": "fine"},
        }))
        .unwrap()
        .into_settings()
        .unwrap_err();
        assert_eq!(
            pointers(&problem),
            [
                "/name",
                "/platforms/1",
                "/capacity",
                "/labels/bad key",
                "/driver/address",
                "/driver/ca_pem"
            ]
        );
    }

    #[test]
    fn addresses_and_pems_are_read_as_the_document_says() {
        let pattern = regex::Regex::new(ADDRESS_PATTERN).unwrap();
        for (address, ok) in [
            ("h:1", true),
            ("10.0.0.5:7002", true),
            ("[::1]:443", true),
            ("h:+080", true),
            ("h:65535", true),
            ("h:65536", false),
            ("h:0", false),
            (":1", false),
            ("a/b:1", false),
            ("a b:1", false),
            ("é:1", false),
            ("h:", false),
        ] {
            let mut invalid = Invalid::default();
            check_address(&mut invalid, "/a", address);
            assert_eq!(invalid.finish().is_ok(), ok, "{address}");
            assert_eq!(pattern.is_match(address), ok, "{address}");
        }
        let mut invalid = Invalid::default();
        check_ca_pem(&mut invalid, CA);
        assert!(invalid.finish().is_ok());
        for bad in [
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----\nMIIB",
            "x",
        ] {
            let mut invalid = Invalid::default();
            check_ca_pem(&mut invalid, bad);
            assert!(invalid.finish().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_local_backend_is_labelled_insecure() {
        let settings = |driver| BackendSettings {
            name: "x".into(),
            driver,
            platforms: vec![ConfidentialPlatform::None],
            capacity: 1,
            labels: BTreeMap::new(),
            price: None,
        };
        let view = |driver| BackendView {
            id: BackendId(Uuid::nil()),
            workspace_id: None,
            settings: settings(driver),
            healthy: true,
            health_detail: String::new(),
            status: "active".into(),
            running: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        };
        let local = serde_json::to_value(Backend::from(view(Driver::Local))).unwrap();
        assert_eq!(local["insecure"], true);
        assert_eq!(local["warning"], INSECURE_WARNING);
        let byo = serde_json::to_value(Backend::from(view(Driver::Byo { agent_address: None }))).unwrap();
        assert_eq!(byo["insecure"], false);
        assert!(byo.get("warning").is_none());
    }
}
