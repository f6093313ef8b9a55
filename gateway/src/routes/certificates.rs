//! `/{workspace}/certs/…`: a workspace's certificates, in the shape of Prism's certs service — issue
//! for an entity (the authority makes the key) or sign an entity's CSR, renew or revoke by serial,
//! revoke all of an entity's, list, get, and a one-time token with which a machine that has nothing
//! else yet (a bring-your-own CVM at boot) downloads a certificate with its key (`POST /certs/download`).
//!
//! Where this differs from Prism's: making a download token is `POST` (it records the token), and the
//! token is redeemed in a body, not a query string, so that no access log keeps it; serial numbers are
//! written in lowercase hexadecimal and read in any case, with or without colons between octets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prism_app::{CertificateRequest, CsrSigning, IssuedCertificate};
use prism_domain::WorkspaceId;
use prism_domain::certificate::{
    COMMON_NAME_MAX, Entity, EntityKind, NAMES_MAX, Profile, RevocationReason, Serial, Subject,
};
use prism_domain::values::Email;
use prism_projections::{CertificateFilter, CertificateSerialView, CertificateView};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

use super::members::{Done, Invalid, done, no_store, opaque_token, recorded, secret_response};
use super::{page_request, parameter_problem, read_options};
use crate::auth::{Authenticated, Unauthenticated};
use crate::cursor;
use crate::dto::ReadParams;
use crate::extract::{JsonBody, Path, Query};
use crate::fields;
use crate::headers::{CommandHeaderParams, CommandHeaders, QueryHeaderParams, etag};
use crate::problem::{Problem, ProblemKind};
use crate::responses::{BodyProblems, CommandProblems, NotFound, QueryProblems, own_problem};
use crate::{AppState, Routes};

const WHAT: &str = "certificate";
/// DNS host names as the profiles take them: letters, digits and inner hyphens in dot-separated
/// labels of at most 63, an optional final dot.
const DNS_NAME_PATTERN: &str =
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$";
/// Absolute URIs: a scheme, a colon, then printable ASCII without spaces.
const URI_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$";
/// Lifetimes as Go writes durations (`720h`, `1h30m`), in whole seconds at least; `d` for days too.
const TTL_PATTERN: &str = "^([0-9]{1,7}[dhms]){1,4}$";

/// The schemas this module's requests and responses refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    IssueCertificate,
    SignCertificateRequest,
    CertificateBody,
    CertificatePage,
    IssuedCertificateBody,
    DownloadCertificate,
    DownloadToken,
    CertificateBundleBody
)))]
struct Schemas;

pub fn routes() -> Routes {
    Routes::with_openapi(Schemas::openapi())
        .routes(routes!(issue))
        .routes(routes!(sign_csr))
        .routes(routes!(list, revoke_entity))
        .routes(routes!(get))
        .routes(routes!(renew))
        .routes(routes!(revoke))
        .routes(routes!(download_token))
        .routes(routes!(download))
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/// A certificate for an entity, with a key the authority makes (and hands out once, in the answer).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "ip_addresses": ["10.0.0.1"], "dns_names": ["cvm-1.example.org"] })))]
pub struct IssueCertificate {
    #[schema(schema_with = profile)]
    pub profile: Option<String>,
    /// The subject's common name; the entity's id when absent.
    #[schema(schema_with = common_name)]
    pub common_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = dns_names)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = ip_addresses)]
    pub ip_addresses: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = emails)]
    pub emails: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = uris)]
    pub uris: Vec<String>,
    #[schema(schema_with = ttl)]
    pub ttl: Option<String>,
}

/// A certificate signing request to sign for an entity: its holder keeps the key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignCertificateRequest {
    /// The CSR, PEM (`-----BEGIN CERTIFICATE REQUEST-----`, PKCS#10). Its signature must verify, and it
    /// may ask for nothing its profile does not allow: no CA, no extended key usage of another
    /// profile, no unknown critical extension.
    #[schema(
        max_length = 16384,
        example = "-----BEGIN CERTIFICATE REQUEST-----\n…\n-----END CERTIFICATE REQUEST-----\n"
    )]
    pub csr: String,
    #[schema(schema_with = profile)]
    pub profile: Option<String>,
    #[schema(schema_with = ttl)]
    pub ttl: Option<String>,
}

fn profile() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(Profile::ALL.map(Profile::as_str)))
        .description(Some(
            "What the certificate is for, which fixes its key usages and names and its longest lifetime: \
             `agent_server` (a CVM's agent serving participants: serverAuth, DNS names or IP addresses, \
             30 days), `agent_client` (an agent dialling the platform: clientAuth, no host names, 30 days), \
             `service` (a control-plane service: serverAuth and clientAuth, DNS names or IP addresses, \
             90 days), `participant` (a user's tools: clientAuth, e-mail addresses or URIs, 30 days). \
             Absent: `agent_server` for a `cvm` or a `computation`, `service` for a `service`, \
             `participant` for a `user`.",
        ))
        .into()
}

fn common_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(COMMON_NAME_MAX))
        .pattern(Some(fields::TEXT_PATTERN))
        .description(Some(format!(
            "1–{COMMON_NAME_MAX} characters, no control characters. Absent: the entity's id."
        )))
        .into()
}

fn names(item: impl Into<utoipa::openapi::schema::ArrayItems>, description: &str) -> Schema {
    ArrayBuilder::new()
        .items(item)
        .max_items(Some(NAMES_MAX))
        .description(Some(format!(
            "{description} At most {NAMES_MAX} alternative names in all."
        )))
        .into()
}

fn string(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .min_length(Some(1))
        .max_length(Some(max))
}

fn dns_names() -> Schema {
    names(
        string(254).pattern(Some(DNS_NAME_PATTERN)),
        "DNS host names (letters, digits and hyphens in dot-separated labels; no wildcard) the entity \
         serves under.",
    )
}

fn ip_addresses() -> Schema {
    let format = |known| {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .format(Some(SchemaFormat::KnownFormat(known)))
    };
    names(
        AnyOfBuilder::new()
            .item(format(KnownFormat::Ipv4))
            .item(format(KnownFormat::Ipv6)),
        "IPv4 or IPv6 addresses the entity serves at (what its clients dial).",
    )
}

fn emails() -> Schema {
    names(
        string(254).pattern(Some(fields::EMAIL_PATTERN)),
        "E-mail addresses (participants only).",
    )
}

fn uris() -> Schema {
    names(
        string(2048).pattern(Some(URI_PATTERN)),
        "Absolute URIs naming the entity (participants and agent clients).",
    )
}

fn ttl() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(TTL_PATTERN))
        .description(Some(
            "The lifetime, as Go writes durations (`720h`, `1h30m`; `d` for days too), at most the \
             profile's. Absent: 7 days for agents, 30 for services and participants.",
        ))
        .examples(["720h"])
        .into()
}

/// A certificate lineage: a certificate and its renewals for one entity, profile and key.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Certificate)]
pub struct CertificateBody {
    /// The lineage's id.
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// This certificate's serial number, lowercase hexadecimal.
    #[schema(example = "4f0c2a9be3d1775e0c2b9a41d8e6f301")]
    pub serial_number: String,
    /// The lineage's newest certificate (a renewal supersedes the older ones).
    pub current_serial_number: String,
    /// `cvm`, `computation`, `service` or `user`.
    pub entity_kind: String,
    pub entity_id: String,
    pub profile: String,
    pub common_name: String,
    /// The alternative names: `dns_names`, `ip_addresses`, `emails`, `uris`.
    #[schema(value_type = Object)]
    pub subject: serde_json::Value,
    /// `authority` (the authority made the key and keeps it sealed) or `holder` (signed from a CSR).
    pub key_custody: String,
    /// `active`, `revoked` or `expired`.
    #[schema(example = "active")]
    pub status: String,
    pub revoked: bool,
    pub not_before: DateTime<Utc>,
    /// When this certificate expires (`not_after`).
    pub expiry_time: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The RFC 5280 reason, e.g. `key_compromise`.
    pub reason: Option<String>,
    /// The certificate, PEM.
    pub certificate: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl CertificateBody {
    fn of(view: CertificateView, serial: CertificateSerialView) -> Self {
        Self {
            id: view.id.as_uuid(),
            workspace_id: view.workspace_id.as_uuid(),
            serial_number: serial.serial.to_string(),
            current_serial_number: view.serial.to_string(),
            entity_kind: view.entity_kind,
            entity_id: view.entity_id,
            profile: view.profile,
            common_name: view.common_name,
            subject: view.subject,
            key_custody: view.key_custody,
            revoked: serial.revoked_at.is_some(),
            status: view.status,
            not_before: serial.not_before,
            expiry_time: serial.not_after,
            revoked_at: serial.revoked_at,
            reason: view.reason,
            certificate: serial.certificate,
            created_at: view.created_at,
            updated_at: view.updated_at,
            version: view.version,
        }
    }
}

/// A lineage as a list shows it: its newest certificate, without its text.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CertificateSummary)]
pub struct CertificateSummary {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The lineage's newest certificate's serial number.
    pub serial_number: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub profile: String,
    pub common_name: String,
    pub key_custody: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub revoked: bool,
    pub expiry_time: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl From<CertificateView> for CertificateSummary {
    fn from(view: CertificateView) -> Self {
        Self {
            id: view.id.as_uuid(),
            workspace_id: view.workspace_id.as_uuid(),
            serial_number: view.serial.to_string(),
            entity_kind: view.entity_kind,
            entity_id: view.entity_id,
            profile: view.profile,
            common_name: view.common_name,
            key_custody: view.key_custody,
            revoked: view.revoked_at.is_some(),
            status: view.status,
            expiry_time: view.not_after,
            revoked_at: view.revoked_at,
            reason: view.reason,
            created_at: view.created_at,
            updated_at: view.updated_at,
            version: view.version,
        }
    }
}

/// One page of certificate lineages, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificatePage {
    pub items: Vec<CertificateSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A certificate just issued, signed or renewed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = IssuedCertificate)]
pub struct IssuedCertificateBody {
    /// The lineage's id.
    pub id: Uuid,
    pub serial_number: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub profile: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// The chain above it, PEM: the issuing intermediate, then the root (the one to trust).
    pub ca: String,
    /// The private key the authority made, PKCS#8 PEM: **shown this once** (also absent on a retried
    /// request, for a CSR and for a renewal, which keeps the key). A download token hands it out again
    /// once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    pub revoked: bool,
    pub expiry_time: DateTime<Utc>,
    /// Stream sequence of the command's commit; pass it as `min_sequence` to read this write.
    pub sequence: u64,
}

impl From<IssuedCertificate> for IssuedCertificateBody {
    fn from(issued: IssuedCertificate) -> Self {
        Self {
            id: issued.id.as_uuid(),
            serial_number: issued.serial.to_string(),
            entity_kind: issued.entity.kind.to_string(),
            entity_id: issued.entity.id,
            profile: issued.profile.to_string(),
            certificate: issued.certificate,
            ca: issued.chain,
            private_key: issued.private_key,
            revoked: false,
            expiry_time: issued.not_after,
            sequence: issued.sequence,
        }
    }
}

/// A one-time download token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DownloadToken {
    /// Redeem it with `POST /certs/download` before `expires_at`; it works once.
    #[schema(schema_with = download_token_schema)]
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The redemption of a download token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadCertificate {
    #[schema(schema_with = download_token_schema)]
    pub token: String,
}

fn download_token_schema() -> Schema {
    opaque_token("cdt", "A certificate download token")
}

/// A certificate with its key and the chain above it, PEM.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CertificateBundle)]
pub struct CertificateBundleBody {
    pub serial_number: String,
    pub certificate: String,
    /// PKCS#8 PEM.
    pub private_key: String,
    /// The issuing intermediate, then the root.
    pub ca: String,
}

/// The path of a certificate for an entity.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EntityPath {
    /// Workspace id.
    pub workspace: Uuid,
    /// The kind of entity: `cvm`, `computation`, `service` or `user`.
    #[param(pattern = "^(cvm|computation|service|user)$")]
    pub kind: String,
    /// The entity's id.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub entity: String,
}

/// The path of one certificate.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SerialPath {
    /// Workspace id.
    pub workspace: Uuid,
    /// The serial number of a certificate (any of a renewed lineage's), hexadecimal; colons between
    /// octets are allowed.
    #[param(pattern = "^([0-9a-fA-F]{1,42}|[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){0,20})$")]
    pub serial: String,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertificateListParams {
    /// Only the certificates of this entity.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub entity_id: Option<String>,
    /// Only lineages in this state.
    #[param(inline, value_type = Option<String>, pattern = "^(active|revoked|expired)$")]
    pub status: Option<String>,
    #[param(schema_with = fields::limit)]
    pub limit: Option<u32>,
    #[param(schema_with = fields::cursor)]
    pub cursor: Option<String>,
    #[param(schema_with = fields::min_sequence)]
    pub min_sequence: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevokeParams {
    /// Why (RFC 5280): `unspecified` (when absent), `key_compromise`, `ca_compromise`,
    /// `affiliation_changed`, `superseded`, `cessation_of_operation`, `certificate_hold`,
    /// `privilege_withdrawn`, `aa_compromise`.
    #[param(value_type = Option<String>, pattern = "^(unspecified|key_compromise|ca_compromise|affiliation_changed|superseded|cessation_of_operation|certificate_hold|privilege_withdrawn|aa_compromise)$")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevokeEntityParams {
    /// The entity whose certificates to revoke.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub entity_id: String,
    /// Why (RFC 5280), as for one certificate; `unspecified` when absent.
    #[param(value_type = Option<String>, pattern = "^(unspecified|key_compromise|ca_compromise|affiliation_changed|superseded|cessation_of_operation|certificate_hold|privilege_withdrawn|aa_compromise)$")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------------
// Reading the request

fn entity(kind: &str, id: String) -> Result<Entity, Problem> {
    let kind = EntityKind::parse(kind).ok_or_else(|| {
        Problem::new(
            ProblemKind::NotFound,
            format!("there is no entity kind `{kind}`: certificates are issued for a cvm, a computation, a service or a user"),
        )
    })?;
    if !Entity::is_valid_id(&id) {
        return Err(parameter_problem(
            "entity",
            "an entity id has 1–128 characters from letters, digits and `._:@-`".into(),
        ));
    }
    Ok(Entity { kind, id })
}

/// A serial number from the path. One written right that no certificate can have (zero, more than
/// 20 octets) names no certificate: "not found", like any other serial this workspace has not.
fn serial(text: &str) -> Result<Serial, Problem> {
    Serial::parse(text).map_err(|e| {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            Problem::new(ProblemKind::NotFound, format!("certificate {text} not found"))
        } else {
            parameter_problem("serial", format!("`{text}` is no serial number: {e}"))
        }
    })
}

fn reason(text: Option<&str>) -> Result<RevocationReason, Problem> {
    let Some(text) = text else {
        return Ok(RevocationReason::Unspecified);
    };
    RevocationReason::ALL
        .into_iter()
        .find(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(|s| s == text))
                == Some(true)
        })
        .ok_or_else(|| parameter_problem("reason", format!("`{text}` is no RFC 5280 revocation reason")))
}

/// The profile asked for, or the one an entity of `kind` gets.
fn profile_for(invalid: &mut Invalid, asked: Option<&str>, kind: EntityKind) -> Profile {
    match asked {
        Some(name) => Profile::parse(name).unwrap_or_else(|| {
            invalid.push(
                "/profile",
                format!(
                    "there is no profile `{name}`: one of {}",
                    Profile::ALL.map(Profile::as_str).join(", ")
                ),
            );
            Profile::AgentServer
        }),
        None => match kind {
            EntityKind::Cvm | EntityKind::Computation => Profile::AgentServer,
            EntityKind::Service => Profile::Service,
            EntityKind::User => Profile::Participant,
        },
    }
}

/// A Go-style duration (`720h`, `1h30m`, `90s`; `d` for days).
fn parse_ttl(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (digits.is_empty() && total > 0 && !text.is_empty()).then(|| Duration::from_secs(total))
}

fn ttl_of(invalid: &mut Invalid, text: Option<&str>) -> Option<Duration> {
    let text = text?;
    let parsed = parse_ttl(text);
    if parsed.is_none() {
        invalid.push(
            "/ttl",
            format!("`{text}` is no positive duration such as `720h` or `1h30m`"),
        );
    }
    parsed
}

fn subject_of(invalid: &mut Invalid, body: &IssueCertificate, entity: &Entity) -> Subject {
    let mut subject = Subject {
        common_name: body.common_name.clone().unwrap_or_else(|| entity.id.clone()),
        dns_names: body.dns_names.clone(),
        uris: body.uris.clone(),
        ..Subject::default()
    };
    for (i, ip) in body.ip_addresses.iter().enumerate() {
        match ip.parse::<IpAddr>() {
            Ok(ip) => subject.ip_addresses.push(ip),
            // The value is not repeated: it may be any text at all.
            Err(_) => invalid.push(format!("/ip_addresses/{i}"), "not an IPv4 or IPv6 address"),
        }
    }
    for (i, email) in body.emails.iter().enumerate() {
        if let Some(email) = invalid.check(|| format!("/emails/{i}"), Email::try_from(email.clone())) {
            subject.emails.push(email);
        }
    }
    subject
}

/// A refusal of the authority or the profile is about the body: it points there.
fn refused_at(error: prism_app::AppError, pointer: &str) -> Problem {
    super::members::pointing(error, pointer)
}

// ---------------------------------------------------------------------------------------------------
// Responses

/// The 201 of an issued certificate, which may hold a private key.
struct CertificateIssued;

impl IntoResponses for CertificateIssued {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "201".to_owned(),
            secret_response::<IssuedCertificateBody>(
                "Issued. For a key the authority made, `private_key` is in this answer once: store it now.",
            ),
        )])
    }
}

/// The 404 and 422 of an issuance.
struct IssueProblems;

impl IntoResponses for IssueProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([
            (
                "404".to_owned(),
                own_problem(
                    "No such workspace (or you have no part in it), or no such entity kind; or this \
                     platform runs no certificate authority.",
                    ProblemKind::NotFound,
                ),
            ),
            (
                "409".to_owned(),
                own_problem(
                    "The workspace is archived, or too many concurrent changes (retry).",
                    ProblemKind::Conflict,
                ),
            ),
            (
                "422".to_owned(),
                own_problem(
                    "The request asks for what its profile does not allow (`detail` names the rule; \
                     `errors[].pointer` the field): names of a kind the profile does not take, a server \
                     certificate without a host name, a lifetime beyond the profile's; an unknown \
                     profile; an `ip_addresses` entry that is no IPv4 or IPv6 address, a `ttl` of zero; \
                     a malformed CSR, one whose signature does not verify, or one that asks \
                     for more than its profile (a CA, another extended key usage, an unknown critical \
                     extension); or the `Idempotency-Key` was first used with a different request.",
                    ProblemKind::Validation,
                ),
            ),
        ])
    }
}

/// The 404 and 409 of a command on an existing certificate.
struct SerialProblems;

impl IntoResponses for SerialProblems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([
            (
                "404".to_owned(),
                own_problem(
                    "No certificate with this serial number in this workspace (or you have no part in \
                     it).",
                    ProblemKind::NotFound,
                ),
            ),
            (
                "409".to_owned(),
                own_problem(
                    "The certificate is revoked or expired (a renewal needs a live one), or too many \
                     concurrent changes (retry).",
                    ProblemKind::Conflict,
                ),
            ),
        ])
    }
}

// ---------------------------------------------------------------------------------------------------
// Handlers

/// Issue a certificate for an entity (a CVM with the addresses it serves at, a service, a user), with a
/// key the authority makes. The answer holds the private key **this once**.
#[utoipa::path(
    post,
    path = "/{workspace}/certs/issue/{kind}/{entity}",
    operation_id = "issue_certificate",
    tag = "certificates",
    params(
        EntityPath,
        CommandHeaderParams
    ),
    request_body = IssueCertificate,
    responses(CertificateIssued, CommandProblems, BodyProblems, IssueProblems)
)]
pub async fn issue(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(EntityPath {
        workspace,
        kind,
        entity: id,
    }): Path<EntityPath>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<IssueCertificate>,
) -> Result<Response, Problem> {
    let entity = entity(&kind, id)?;
    let mut invalid = Invalid::default();
    let profile = profile_for(&mut invalid, body.profile.as_deref(), entity.kind);
    let ttl = ttl_of(&mut invalid, body.ttl.as_deref());
    let subject = subject_of(&mut invalid, &body, &entity);
    invalid.finish()?;
    let request = CertificateRequest {
        entity,
        profile,
        subject,
        ttl,
    };
    let issued = state
        .app()
        .certificates()
        .issue(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), request)
        .await
        .map_err(|e| refused_at(e, ""))?;
    Ok(created(workspace, IssuedCertificateBody::from(issued)))
}

fn created(workspace: Uuid, body: IssuedCertificateBody) -> Response {
    let location = format!("/{workspace}/certs/{}", body.serial_number);
    let mut response = no_store(recorded(StatusCode::CREATED, body.sequence, body));
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Sign an entity's certificate signing request (PKCS#10): the holder keeps its key. The CSR's
/// names are checked against the profile; it may not ask for more than the profile allows.
#[utoipa::path(
    post,
    path = "/{workspace}/certs/csrs/{kind}/{entity}",
    operation_id = "sign_certificate_request",
    tag = "certificates",
    params(
        EntityPath,
        CommandHeaderParams
    ),
    request_body = SignCertificateRequest,
    responses(
        (status = 201, description = "Signed", body = IssuedCertificateBody,
            headers(("Location" = String, description = "Where the certificate is"))),
        CommandProblems,
        BodyProblems,
        IssueProblems
    )
)]
pub async fn sign_csr(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(EntityPath {
        workspace,
        kind,
        entity: id,
    }): Path<EntityPath>,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<SignCertificateRequest>,
) -> Result<Response, Problem> {
    let entity = entity(&kind, id)?;
    let mut invalid = Invalid::default();
    let profile = profile_for(&mut invalid, body.profile.as_deref(), entity.kind);
    let ttl = ttl_of(&mut invalid, body.ttl.as_deref());
    invalid.finish()?;
    let signing = CsrSigning {
        entity,
        profile,
        csr: body.csr,
        ttl,
    };
    let issued = state
        .app()
        .certificates()
        .sign_csr(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), signing)
        .await
        .map_err(|e| refused_at(e, "/csr"))?;
    Ok(created(workspace, IssuedCertificateBody::from(issued)))
}

/// List a workspace's certificate lineages, oldest first: each with its newest certificate.
#[utoipa::path(
    get,
    path = "/{workspace}/certs",
    operation_id = "list_certificates",
    tag = "certificates",
    params(("workspace" = Uuid, Path, description = "Workspace id"), CertificateListParams, QueryHeaderParams),
    responses(
        (status = 200, description = "One page", body = CertificatePage),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<CertificateListParams>,
    headers: HeaderMap,
) -> Result<Json<CertificatePage>, Problem> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    if let Some(id) = &params.entity_id
        && !Entity::is_valid_id(id)
    {
        return Err(parameter_problem(
            "entity_id",
            "an entity id has 1–128 characters from letters, digits and `._:@-`".into(),
        ));
    }
    if let Some(status) = &params.status
        && !["active", "revoked", "expired"].contains(&status.as_str())
    {
        return Err(parameter_problem(
            "status",
            format!("`{status}` is no certificate state: active, revoked or expired"),
        ));
    }
    let filter = CertificateFilter {
        entity_id: params.entity_id,
        status: params.status,
    };
    let page = state
        .app()
        .certificates()
        .list(
            &caller,
            WorkspaceId(workspace),
            &filter,
            page,
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok(Json(CertificatePage {
        items: page.items.into_iter().map(CertificateSummary::from).collect(),
        next_cursor: page.next_after.map(cursor::encode),
    }))
}

/// Get a certificate by its serial number (an older one of a renewed lineage too), with its text.
#[utoipa::path(
    get,
    path = "/{workspace}/certs/{serial}",
    operation_id = "get_certificate",
    tag = "certificates",
    params(
        SerialPath,
        ReadParams,
        QueryHeaderParams
    ),
    responses(
        (status = 200, description = "The certificate", body = CertificateBody,
            headers(("ETag" = String, description = "The lineage's version"))),
        QueryProblems,
        (status = 404, response = NotFound),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(SerialPath {
        workspace,
        serial: text,
    }): Path<SerialPath>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let serial = serial(&text)?;
    let (view, found) = state
        .app()
        .certificates()
        .get(
            &caller,
            WorkspaceId(workspace),
            &serial,
            read_options(&headers, params.min_sequence)?,
        )
        .await?;
    Ok((
        [(header::ETAG, etag(view.version))],
        Json(CertificateBody::of(view, found)),
    )
        .into_response())
}

/// Renew a certificate: a new certificate, with a new serial number, for the same entity, names and
/// key; the lineage's older certificates stay valid until they expire or it is revoked.
#[utoipa::path(
    patch,
    path = "/{workspace}/certs/{serial}/renew",
    operation_id = "renew_certificate",
    tag = "certificates",
    params(
        SerialPath,
        CommandHeaderParams
    ),
    responses(
        (status = 200, description = "Renewed: the new certificate", body = IssuedCertificateBody),
        CommandProblems,
        SerialProblems
    )
)]
pub async fn renew(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(SerialPath {
        workspace,
        serial: text,
    }): Path<SerialPath>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let serial = serial(&text)?;
    let issued = state
        .app()
        .certificates()
        .renew(&caller, &headers.options(WHAT)?, WorkspaceId(workspace), &serial)
        .await?;
    let sequence = issued.sequence;
    Ok(recorded(
        StatusCode::OK,
        sequence,
        IssuedCertificateBody::from(issued),
    ))
}

/// Revoke a certificate's lineage: it and every renewal of it not yet expired. The CRL and the OCSP
/// responder say so at once, and the platform's TLS servers close their connections. Revoking a
/// revoked certificate changes nothing.
#[utoipa::path(
    patch,
    path = "/{workspace}/certs/{serial}/revoke",
    operation_id = "revoke_certificate",
    tag = "certificates",
    params(SerialPath, RevokeParams, CommandHeaderParams),
    responses(Done, CommandProblems, SerialProblems)
)]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(SerialPath {
        workspace,
        serial: text,
    }): Path<SerialPath>,
    Query(params): Query<RevokeParams>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    let serial = serial(&text)?;
    let reason = reason(params.reason.as_deref())?;
    let executed = state
        .app()
        .certificates()
        .revoke(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            &serial,
            reason,
        )
        .await?;
    Ok(done(executed.outcome.sequence, executed.outcome.replayed))
}

/// Revoke every active certificate of an entity (e.g. when its CVM is destroyed).
#[utoipa::path(
    delete,
    path = "/{workspace}/certs",
    operation_id = "revoke_entity_certificates",
    tag = "certificates",
    params(("workspace" = Uuid, Path, description = "Workspace id"), RevokeEntityParams, CommandHeaderParams),
    responses(
        (status = 204, description = "Revoked."),
        CommandProblems,
        (status = 404, description = "The entity has no active certificate in this workspace (or you have \
            no part in it)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Too many concurrent changes (retry).", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn revoke_entity(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(workspace): Path<Uuid>,
    Query(params): Query<RevokeEntityParams>,
    headers: CommandHeaders,
) -> Result<Response, Problem> {
    if !Entity::is_valid_id(&params.entity_id) {
        return Err(parameter_problem(
            "entity_id",
            "an entity id has 1–128 characters from letters, digits and `._:@-`".into(),
        ));
    }
    let reason = reason(params.reason.as_deref())?;
    state
        .app()
        .certificates()
        .revoke_entity(
            &caller,
            &headers.options(WHAT)?,
            WorkspaceId(workspace),
            &params.entity_id,
            reason,
            prism_app::ReadOptions::default(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A one-time token with which the certificate and its authority-held key are downloaded, without
/// signing in, within ten minutes (how a machine that has nothing else yet fetches its certificate).
#[utoipa::path(
    post,
    path = "/{workspace}/certs/{serial}/download/token",
    operation_id = "certificate_download_token",
    tag = "certificates",
    params(
        SerialPath,
    ),
    responses(
        (status = 201, description = "The token (shown this once)", body = DownloadToken),
        CommandProblems,
        SerialProblems
    )
)]
pub async fn download_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(SerialPath {
        workspace,
        serial: text,
    }): Path<SerialPath>,
) -> Result<Response, Problem> {
    let serial = serial(&text)?;
    let (token, expires_at) = state
        .app()
        .certificates()
        .download_token(&caller, WorkspaceId(workspace), &serial)
        .await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(DownloadToken { token, expires_at })).into_response(),
    ))
}

/// Download a certificate with its key and chain, once, with a download token (the token is the
/// credential: no sign-in). Only certificates whose key the authority made have one to download.
#[utoipa::path(
    post,
    path = "/certs/download",
    operation_id = "download_certificate",
    tag = "certificates",
    security(()),
    request_body = DownloadCertificate,
    responses(
        BundleDownloaded,
        BodyProblems,
        (status = 401, description = "The token is invalid, spent or expired", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    Unauthenticated(caller): Unauthenticated,
    JsonBody(body): JsonBody<DownloadCertificate>,
) -> Result<Response, Problem> {
    let bundle = state.app().certificates().download(&caller, &body.token).await?;
    Ok(no_store(
        Json(CertificateBundleBody {
            serial_number: bundle.serial.to_string(),
            certificate: bundle.certificate,
            private_key: bundle.private_key,
            ca: bundle.chain,
        })
        .into_response(),
    ))
}

/// The 200 of a download, which holds a private key.
struct BundleDownloaded;

impl IntoResponses for BundleDownloaded {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([(
            "200".to_owned(),
            secret_response::<CertificateBundleBody>("The certificate, its key and the chain, PEM."),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The patterns the document states (attributes take literals only, so they are written there
    // again; the test below checks the two agree).
    /// Entity ids: what `Entity::is_valid_id` accepts.
    const ENTITY_ID_PATTERN: &str = "^[A-Za-z0-9._:@-]{1,128}$";
    /// Serial numbers: hexadecimal, with or without colons between octets.
    const SERIAL_PATTERN: &str = "^([0-9a-fA-F]{1,42}|[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){0,20})$";
    /// RFC 5280 revocation reasons, as `RevocationReason` names them.
    const REASON_PATTERN: &str = "^(unspecified|key_compromise|ca_compromise|affiliation_changed|superseded|cessation_of_operation|certificate_hold|privilege_withdrawn|aa_compromise)$";
    /// Kinds of entity.
    const KIND_PATTERN: &str = "^(cvm|computation|service|user)$";

    #[test]
    fn lifetimes_are_read_as_go_writes_them() {
        assert_eq!(parse_ttl("720h"), Some(Duration::from_secs(720 * 3600)));
        assert_eq!(parse_ttl("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("7d"), Some(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "10", "0s", "1x", "-1h", "99999999999999999999h"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_document_states_the_patterns_the_handlers_check() {
        let document = serde_json::to_string(&crate::openapi([routes()])).unwrap();
        for pattern in [
            ENTITY_ID_PATTERN,
            SERIAL_PATTERN,
            REASON_PATTERN,
            KIND_PATTERN,
            TTL_PATTERN,
        ] {
            let quoted = serde_json::to_string(pattern).unwrap();
            assert!(document.contains(&quoted), "{pattern} is not in the document");
        }
    }

    #[test]
    fn the_name_patterns_accept_exactly_what_the_profiles_take() {
        let dns = regex::Regex::new(DNS_NAME_PATTERN).unwrap();
        let uri = regex::Regex::new(URI_PATTERN).unwrap();
        let server = |dns_names: Vec<String>| Subject {
            common_name: "x".into(),
            dns_names,
            ..Subject::default()
        };
        let client = |uris: Vec<String>| Subject {
            common_name: "x".into(),
            uris,
            ..Subject::default()
        };
        let day = Duration::from_secs(86_400);
        for name in [
            "a",
            "cvm-1.example.org",
            "x.",
            "A1-b",
            "-a",
            "a-",
            "a..b",
            "a_b",
            ".",
            "",
            "é.org",
        ] {
            let allowed = Profile::Service.check(&server(vec![name.into()]), day).is_ok();
            assert_eq!(dns.is_match(name), allowed, "{name:?}");
        }
        for text in [
            "urn:prism:cvm:1",
            "https://x/y?z",
            "a:b",
            "1a:b",
            "a:",
            ":b",
            "a:b c",
            "ab",
        ] {
            let allowed = Profile::Participant
                .check(&client(vec![text.into()]), day)
                .is_ok();
            assert_eq!(uri.is_match(text), allowed, "{text:?}");
        }
    }

    #[test]
    fn the_patterns_accept_what_the_handlers_accept() {
        let ttl = regex::Regex::new(TTL_PATTERN).unwrap();
        for ok in ["720h", "1h30m", "90s", "7d"] {
            assert!(ttl.is_match(ok) && parse_ttl(ok).is_some(), "{ok}");
        }
        let serials = regex::Regex::new(SERIAL_PATTERN).unwrap();
        for ok in ["0a1b", "0A:1B:2c", "12345"] {
            assert!(serials.is_match(ok) && serial(ok).is_ok(), "{ok}");
        }
        let entities = regex::Regex::new(ENTITY_ID_PATTERN).unwrap();
        for ok in ["cvm-1", "a.b:c@d_e"] {
            assert!(entities.is_match(ok) && Entity::is_valid_id(ok), "{ok}");
        }
    }
}
