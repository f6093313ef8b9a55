//! Responses the routes have in common, each described once.
//!
//! The problem document of each status is a component (`#/components/responses/<name>`, see
//! [`ProblemResponse`]) that operations refer to. The sets of responses a kind of operation answers
//! with implement [`IntoResponses`], so a route's `#[utoipa::path(responses(...))]` names the sets that
//! apply to it and adds only what is its own:
//!
//! ```text
//! responses(Changed<Workspace>, CommandProblems, BodyProblems, ChangeProblems)
//! ```
//!
//! An entry replaces what an earlier one gave for the same status, so a route that describes a status
//! more precisely (its own 422 rules, say) lists that description last.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde_json::json;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, KnownFormat, OpenApi, Ref, RefOr};
use utoipa::{IntoResponses, Modify, ToResponse, ToSchema};

use crate::MAX_BODY_BYTES;
use crate::problem::{PROBLEM_CONTENT_TYPE, ProblemKind};

/// The problem documents the API answers with, one component per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemResponse {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    Unavailable,
}

impl ProblemResponse {
    pub const ALL: [Self; 10] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::PreconditionFailed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::Unprocessable,
        Self::Unavailable,
    ];

    /// The component's name under `#/components/responses`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::Unprocessable => "Unprocessable",
            Self::Unavailable => "Unavailable",
        }
    }

    /// The kind of problem its example shows (its status is the response's).
    fn kind(self) -> ProblemKind {
        match self {
            Self::BadRequest => ProblemKind::BadRequest,
            Self::Unauthorized => ProblemKind::Unauthorized,
            Self::Forbidden => ProblemKind::Forbidden,
            Self::NotFound => ProblemKind::NotFound,
            Self::Conflict => ProblemKind::Conflict,
            Self::PreconditionFailed => ProblemKind::PreconditionFailed,
            Self::PayloadTooLarge => ProblemKind::PayloadTooLarge,
            Self::UnsupportedMediaType => ProblemKind::UnsupportedMediaType,
            Self::Unprocessable => ProblemKind::Validation,
            Self::Unavailable => ProblemKind::Unavailable,
        }
    }

    pub fn status(self) -> u16 {
        self.kind().status().as_u16()
    }

    fn description(self) -> String {
        match self {
            Self::BadRequest => "The request is malformed: an id in the path that is not a UUID; an unknown \
                query parameter or one of the wrong form; a malformed `Idempotency-Key`, `If-Match` or \
                `Prism-Min-Sequence` header; a `min_sequence` beyond the end of the event log; or a body \
                that is not JSON, or has a field this API does not know (`errors[].pointer` locates it)."
                .into(),
            Self::Unauthorized => "No credential, or one that does not hold: send `Authorization: Bearer` \
                with an access token from `POST /oauth/token` (not expired, its session not ended) or a \
                personal API key (not revoked or expired)."
                .into(),
            Self::Forbidden => "The caller's roles do not grant the permission this needs (`detail` names \
                it); see the permission matrix."
                .into(),
            Self::NotFound => "Nothing exists at the ids in the path, or nothing the caller has a part in \
                (a workspace of which it is not a member answers exactly as one that does not exist)."
                .into(),
            Self::Conflict => "The state of the resource (or of the one it belongs to) does not allow \
                this, e.g. it is archived; or it had too many concurrent changes (retry)."
                .into(),
            Self::PreconditionFailed => {
                "`If-Match` does not name the resource's current version (its `ETag`).".into()
            }
            Self::PayloadTooLarge => format!("The body is larger than {} KiB.", MAX_BODY_BYTES / 1024),
            Self::UnsupportedMediaType => "The body is not sent as JSON: send it with `Content-Type: \
                application/json` (or another `application/*+json` type)."
                .into(),
            Self::Unprocessable => "A value breaks a rule: a field of the body missing or of the wrong \
                type, or a value outside the constraints of the schema (`errors[].pointer` locates each); \
                or the `Idempotency-Key` was first used with a different request."
                .into(),
            Self::Unavailable => "The event log or the read models cannot be reached, or the read model \
                did not reach `min_sequence` in time; retry after `Retry-After` seconds."
                .into(),
        }
    }

    /// The component itself.
    pub fn component(self) -> Response {
        let response = problem(&self.description(), self.kind());
        match self {
            Self::Unavailable => response.header(
                "Retry-After",
                header(integer(0), "Seconds to wait before retrying."),
            ),
            _ => response,
        }
        .build()
    }

    /// A reference to the component.
    pub fn reference(self) -> RefOr<Response> {
        Ref::new(format!("#/components/responses/{}", self.name())).into()
    }
}

/// Adds the [`ProblemResponse`] components to a document.
#[derive(Debug)]
pub struct ProblemComponents;

impl Modify for ProblemComponents {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for problem in ProblemResponse::ALL {
            components
                .responses
                .insert(problem.name().to_owned(), problem.component().into());
        }
    }
}

/// One type per [`ProblemResponse`], for a route that names a single status:
/// `responses((status = 404, response = NotFound))`.
macro_rules! problem_response_types {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("The [`ProblemResponse::", stringify!($name), "`] component.")]
        #[derive(Debug)]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (ProblemResponse::$name.name(), ProblemResponse::$name.component().into())
            }
        }
    )*};
}

problem_response_types!(
    BadRequest,
    NotFound,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    Unavailable,
);

/// A problem response of a route's own, for a status whose shared description is too vague.
pub fn own_problem(description: &str, kind: ProblemKind) -> RefOr<Response> {
    problem(description, kind).build().into()
}

fn problem(description: &str, kind: ProblemKind) -> ResponseBuilder {
    let example = json!({
        "type": kind.type_uri(),
        "title": kind.title(),
        "status": kind.status().as_u16(),
        "detail": "what is wrong, in words a user can act on",
        "instance": "/workspaces",
    });
    ResponseBuilder::new().description(description).content(
        PROBLEM_CONTENT_TYPE,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .example(Some(example))
            .build(),
    )
}

fn responses<const N: usize>(entries: [(u16, RefOr<Response>); N]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .into_iter()
        .map(|(status, response)| (status.to_string(), response))
        .collect()
}

fn problems<const N: usize>(problems: [ProblemResponse; N]) -> BTreeMap<String, RefOr<Response>> {
    responses(problems.map(|p| (p.status(), p.reference())))
}

/// What any query may answer besides its result: 400, 401, 403 and 503.
#[derive(Debug)]
pub struct QueryProblems;

impl IntoResponses for QueryProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems([
            ProblemResponse::BadRequest,
            ProblemResponse::Unauthorized,
            ProblemResponse::Forbidden,
            ProblemResponse::Unavailable,
        ])
    }
}

/// What any command may answer besides its result: 400 (a malformed header), 401 and 403, 409 (too
/// many concurrent changes), 422 (an `Idempotency-Key` first used with another request), 503.
#[derive(Debug)]
pub struct CommandProblems;

impl IntoResponses for CommandProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems([
            ProblemResponse::BadRequest,
            ProblemResponse::Unauthorized,
            ProblemResponse::Forbidden,
            ProblemResponse::Conflict,
            ProblemResponse::Unprocessable,
            ProblemResponse::Unavailable,
        ])
    }
}

/// What any operation with a JSON body may answer: 400, 413, 415 and 422.
#[derive(Debug)]
pub struct BodyProblems;

impl IntoResponses for BodyProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems([
            ProblemResponse::BadRequest,
            ProblemResponse::PayloadTooLarge,
            ProblemResponse::UnsupportedMediaType,
            ProblemResponse::Unprocessable,
        ])
    }
}

/// What a conditional command on an existing resource may answer: 404, 409 (its state) and 412
/// (`If-Match`).
#[derive(Debug)]
pub struct ChangeProblems;

impl IntoResponses for ChangeProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems([
            ProblemResponse::NotFound,
            ProblemResponse::Conflict,
            ProblemResponse::PreconditionFailed,
        ])
    }
}

/// A resource that responses carry, and the operations a client can follow from it (OpenAPI links,
/// which also let a fuzzer reach the resource it just created).
pub trait Linked: ToSchema {
    /// `(name, link)`; see [`link`].
    fn links() -> Vec<(&'static str, Link)>;
}

/// A link to the operation `operation_id`, its parameters taken from the response body: each value
/// is a JSON Pointer into it, e.g. `("workspace", "/id")`.
pub fn link(operation_id: &str, parameters: &[(&str, &str)]) -> Link {
    // `LinkBuilder::operation_id` would be written as `operation_id`; OpenAPI spells it `operationId`.
    let operation = Extensions::from_iter([("operationId", operation_id)]);
    parameters
        .iter()
        .fold(
            LinkBuilder::new().extensions(Some(operation)),
            |link, (name, pointer)| link.parameter(*name, format!("$response.body#{pointer}")),
        )
        .build()
}

fn with_links<T: Linked>(response: ResponseBuilder) -> ResponseBuilder {
    T::links()
        .into_iter()
        .fold(response, |response, (name, link)| response.link(name, link))
}

/// A read of one resource: `200` with it and its `ETag`.
#[derive(Debug)]
pub struct Found<T>(PhantomData<T>);

impl<T: Linked> IntoResponses for Found<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let found = body::<T>(&format!("The {}.", T::name().to_lowercase())).header("ETag", etag());
        responses([(200, with_links::<T>(found).build().into())])
    }
}

/// A command that creates a resource: `201` with the resource as the read model shows it once it has
/// applied the commit, or `202` if that takes longer than a few seconds.
#[derive(Debug)]
pub struct Created<T>(PhantomData<T>);

impl<T: Linked> IntoResponses for Created<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let created = body::<T>(&format!(
            "Created; the body is the new {} as the read model shows it.",
            T::name().to_lowercase()
        ))
        .header("Location", location("Where the new resource is."))
        .header("ETag", etag())
        .header("Prism-Sequence", sequence())
        .header("Idempotent-Replayed", replayed());
        responses([
            (201, with_links::<T>(created).build().into()),
            (202, accepted("Created")),
        ])
    }
}

/// A command that changes (or archives) a resource: `200` with the resource as the read model shows it
/// once it has applied the commit, or `202` if that takes longer than a few seconds.
#[derive(Debug)]
pub struct Changed<T>(PhantomData<T>);

impl<T: Linked> IntoResponses for Changed<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let changed = body::<T>(&format!(
            "Done (or nothing to change); the body is the {} as the read model shows it.",
            T::name().to_lowercase()
        ))
        .header("Content-Location", location("The resource the body is."))
        .header("ETag", etag())
        .header("Prism-Sequence", sequence())
        .header("Idempotent-Replayed", replayed());
        responses([
            (200, with_links::<T>(changed).build().into()),
            (202, accepted("Done")),
        ])
    }
}

fn body<T: ToSchema>(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(T::name())))
            .build(),
    )
}

fn accepted(what: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(format!(
            "{what}, but the read model has not shown it yet: the command is committed; read the \
             resource at `Location` with `min_sequence` set to `sequence`, or retry with the same \
             `Idempotency-Key`."
        ))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("CommandAccepted")))
                .build(),
        )
        .header("Location", location("The resource the command is about."))
        .header("ETag", etag())
        .header("Prism-Sequence", sequence())
        .header("Idempotent-Replayed", replayed())
        .build()
        .into()
}

fn header(schema: ObjectBuilder, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

fn integer(minimum: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(minimum))
}

fn location(description: &str) -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uri-reference".into()))),
        description,
    )
}

fn etag() -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r#"^"[0-9]+"$"#)),
        "The resource's version as a strong entity tag, e.g. `\"3\"`; pass it as `If-Match`.",
    )
}

fn sequence() -> Header {
    header(
        integer(1),
        "Stream sequence of the command's commit; pass it as `min_sequence` to read this write.",
    )
}

fn replayed() -> Header {
    header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["true"])),
        "`true` when this answer repeats the first result of the `Idempotency-Key`.",
    )
}
