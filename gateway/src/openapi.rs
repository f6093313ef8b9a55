//! The OpenAPI 3.1 description's frame; each route module adds its paths (see [`crate::router`]).

use utoipa::OpenApi;

use crate::responses::ProblemComponents;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Prism API",
        description = "Control plane for multi-party confidential computing.\n\n\
            Commands answer with the commit's stream sequence (`Prism-Sequence` header, `sequence` field) and \
            the resource's version (`ETag`). A command's body is the resource once the read model has applied \
            the commit; if that takes longer than a few seconds the answer is `202 Accepted` with the sequence \
            instead. Queries accept `min_sequence` (or `Prism-Min-Sequence`) to wait for a sequence before \
            reading; a sequence beyond the end of the event log is refused at once (400). `If-Match` makes a \
            change conditional on the version; `Idempotency-Key` makes any command safe to retry, at any age. \
            Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `type` URN; \
            a field of the body that this API does not know, or a malformed parameter or header, is 400; a \
            value that breaks a rule is 422, with a JSON Pointer to it in `errors`. Bodies are JSON of at \
            most 512 KiB (413 beyond, 415 if not JSON). A method a path does not list is answered 405 with \
            `Allow`.\n\n\
            There is no authentication yet: every command is recorded as made by `anonymous`."
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldProblem, crate::dto::CommandAccepted)),
    modifiers(&ProblemComponents),
    tags(
        (name = "workspaces", description = "Tenants that own computations"),
        (name = "computations", description = "Computations: participants, roles, expected algorithm and datasets"),
        (name = "operations", description = "Health of the service and of its event log"),
    )
)]
pub(crate) struct ApiDoc;
