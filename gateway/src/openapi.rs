//! The OpenAPI 3.1 description, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::routes::{computations, health, workspaces};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Prism API",
        description = "Control plane for multi-party confidential computing.\n\n\
            Commands answer with the commit's stream sequence (`Prism-Sequence` header, `sequence` field) and \
            the resource's version (`ETag`). A command's body is the resource once the read model has applied \
            the commit; if that takes longer than a few seconds the answer is `202 Accepted` with the sequence \
            instead. Queries accept `min_sequence` (or `Prism-Min-Sequence`) to wait for a sequence before \
            reading. `If-Match` makes a change conditional on the version; `Idempotency-Key` makes any command \
            safe to retry. Errors are RFC 9457 problem documents (`application/problem+json`).\n\n\
            There is no authentication yet: every command is recorded as made by `anonymous`."
    ),
    paths(
        workspaces::create,
        workspaces::list,
        workspaces::get,
        workspaces::update,
        workspaces::archive,
        computations::create,
        computations::list,
        computations::get,
        computations::update,
        computations::archive,
        health::health,
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldProblem)),
    tags(
        (name = "workspaces", description = "Tenants that own computations"),
        (name = "computations", description = "Computations: participants, roles, expected algorithm and datasets"),
        (name = "operations", description = "Health of the service"),
    )
)]
struct ApiDoc;

/// The API description served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_openapi_3_1_and_lists_every_route() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/workspaces", &["get", "post"][..]),
            ("/workspaces/{workspace}", &["get", "patch"]),
            ("/workspaces/{workspace}/archive", &["post"]),
            ("/{workspace}/computations", &["get", "post"]),
            (
                "/{workspace}/computations/{computation}",
                &["get", "patch", "delete"],
            ),
            ("/health", &["get"]),
        ] {
            for method in methods {
                assert!(paths[path].get(*method).is_some(), "{method} {path}");
            }
        }
        let role = &doc["components"]["schemas"]["Role"]["enum"];
        assert!(
            role.as_array().unwrap().iter().any(|r| r == "algorithm_provider"),
            "{role}"
        );
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
