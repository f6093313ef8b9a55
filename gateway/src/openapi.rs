//! The OpenAPI 3.1 description's frame; each route module adds its paths (see [`crate::router`]).

use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

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
            most 512 KiB (413 beyond, 415 if not JSON), but for an asset's sample: raw bytes of any type, at \
            most 10 MiB. A method a path does not list is answered 405 with \
            `Allow`.\n\n\
            Every route but sign-in, registration, the JWKS and `/health` needs `Authorization: Bearer` with an \
            access token from `POST /oauth/token` (15 minutes; refresh with the refresh token) or a personal \
            API key. No credential is 401; a role that does not allow the action is 403; a workspace (or \
            anything in one) that the caller has no part in is 404, exactly as if it did not exist. Every \
            denial is recorded in the event log."
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldProblem, crate::dto::CommandAccepted)),
    modifiers(&ProblemComponents, &SecuritySchemes),
    security(("bearer" = []), ("oauth2" = [])),
    tags(
        (name = "workspaces", description = "Tenants that own computations"),
        (name = "computations", description = "Computations: participants, roles, expected algorithm and datasets"),
        (name = "assets", description = "Algorithm and dataset records of a workspace (what a file is, never the file), their samples, and linking them to computations"),
        (name = "governance", description = "Changes to an approved computation: proposals, approvals, vetoes, the change threshold, halts of execution"),
        (name = "operations", description = "Health of the service and of its event log"),
        (name = "identity", description = "Registration, sign-in (OAuth 2.0) and the token signing keys"),
        (name = "members", description = "Workspace members, invitations and custom roles"),
        (name = "api-keys", description = "Personal API keys: a user's permissions in one workspace, for programs"),
        (name = "accounts", description = "Your account, password resets and e-mail verification; platform administrators' user management"),
        (name = "audit", description = "The audit trail: a workspace's events as they are recorded, as CloudEvents over Server-Sent Events"),
    )
)]
pub(crate) struct ApiDoc;

/// The two ways to authenticate: a bearer credential (an access token or a personal API key), and the
/// OAuth 2.0 password flow that Swagger UI can run to obtain one.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token, or a personal API key (pak_…)")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::with_refresh_url(
                "/oauth/token",
                Scopes::new(),
                "/oauth/token",
            ))])),
        );
    }
}
