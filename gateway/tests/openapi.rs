//! The OpenAPI description: every route with its methods and the statuses it can answer, and the
//! constraints the server enforces, stated with the domain's own limits.

use prism_domain::values::Email;
use prism_domain::{computation, workspace};
use prism_gateway::{MAX_BODY_BYTES, cursor, fields, headers, routes};
use serde_json::{Value, json};

fn document() -> Value {
    let api = prism_gateway::openapi([
        routes::workspaces::routes(),
        routes::computations::routes(),
        routes::governance::routes(),
        routes::assets::routes(),
        routes::operations::routes(),
        routes::reports::routes(),
    ]);
    serde_json::to_value(api).unwrap()
}

/// The value at an RFC 6901 pointer, which must exist.
fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
    value
        .pointer(pointer)
        .unwrap_or_else(|| panic!("nothing at {pointer}"))
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => at(doc, reference.trim_start_matches('#')),
        None => value,
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in at(doc, "/paths").as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), operation));
        }
    }
    all
}

fn statuses(operation: &Value) -> Vec<&str> {
    operation["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    let operation = at(doc, &format!("/paths/{}/{method}", path.replace('/', "~1")));
    operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

/// The schema of a request body property (following a `$ref` to its component).
fn property<'a>(doc: &'a Value, schema: &str, name: &str) -> &'a Value {
    resolve(
        doc,
        at(doc, &format!("/components/schemas/{schema}/properties/{name}")),
    )
}

#[test]
fn it_is_openapi_3_1_with_every_route() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes: Vec<String> = operations(&doc)
        .iter()
        .map(|(path, method, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /{workspace}/assets/{asset}",
            "DELETE /{workspace}/assets/{asset}/sample",
            "DELETE /{workspace}/computations/{computation}",
            "DELETE /{workspace}/computations/{computation}/assets/{asset}",
            "DELETE /{workspace}/computations/{computation}/halt",
            "GET /health",
            "GET /operations/quarantine",
            "GET /workspaces",
            "GET /workspaces/{workspace}",
            "GET /{workspace}/assets",
            "GET /{workspace}/assets/{asset}",
            "GET /{workspace}/assets/{asset}/sample",
            "GET /{workspace}/computations",
            "GET /{workspace}/computations/{computation}",
            "GET /{workspace}/computations/{computation}/export",
            "GET /{workspace}/computations/{computation}/governance",
            "GET /{workspace}/computations/{computation}/proposals",
            "GET /{workspace}/computations/{computation}/proposals/{proposal}",
            "GET /{workspace}/computations/{computation}/report",
            "GET /{workspace}/runs/{run}/report",
            "PATCH /workspaces/{workspace}",
            "PATCH /{workspace}/assets/{asset}",
            "PATCH /{workspace}/computations/{computation}",
            "POST /workspaces",
            "POST /workspaces/{workspace}/archive",
            "POST /{workspace}/assets",
            "POST /{workspace}/computations",
            "POST /{workspace}/computations/import",
            "POST /{workspace}/computations/{computation}/assets",
            "POST /{workspace}/computations/{computation}/halt",
            "POST /{workspace}/computations/{computation}/proposals",
            "POST /{workspace}/computations/{computation}/proposals/{proposal}/approve",
            "POST /{workspace}/computations/{computation}/proposals/{proposal}/veto",
            "PUT /{workspace}/assets/{asset}/sample",
            "PUT /{workspace}/computations/{computation}/change-threshold",
        ]
    );
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    assert!(
                        doc.pointer(reference.trim_start_matches('#')).is_some(),
                        "unresolved {reference}"
                    );
                }
                map.values().for_each(|v| walk(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
            _ => {}
        }
    }
    let doc = document();
    walk(&doc, &doc);
}

#[test]
fn every_route_documents_the_statuses_it_can_answer() {
    let doc = document();
    for (path, method, operation) in operations(&doc) {
        if path == "/health" {
            continue;
        }
        let statuses = statuses(operation);
        let route = format!("{method} {path}");
        let mut expected = vec!["400", "503"];
        if path.contains('{') {
            // A path id may name nothing.
            expected.push("404");
        }
        if method != "get" {
            // Idempotency-Key reused with another request; concurrent changes.
            expected.extend(["422", "409"]);
        }
        if operation.get("requestBody").is_some() {
            expected.extend(["413", "415", "422"]);
        }
        if operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match"))
        {
            expected.push("412");
        }
        for status in expected {
            assert!(statuses.contains(&status), "{route} does not document {status}");
        }
        assert!(
            statuses.iter().any(|s| s.starts_with('2')),
            "{route} documents no success"
        );
    }
}

#[test]
fn problems_are_problem_documents_shared_as_components() {
    let doc = document();
    for (path, method, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let problem = status.starts_with('4') || (status.starts_with('5') && path != "/health");
            if !problem {
                continue;
            }
            let response = resolve(&doc, response);
            let content = &response["content"]["application/problem+json"];
            assert_eq!(
                resolve(&doc, &content["schema"]),
                at(&doc, "/components/schemas/Problem"),
                "{method} {path} {status}"
            );
        }
    }
    assert_eq!(
        at(
            &doc,
            "/components/responses/Unavailable/headers/Retry-After/schema/type"
        ),
        "integer"
    );
    let limit = format!("{} KiB", MAX_BODY_BYTES / 1024);
    for pointer in [
        "/components/responses/PayloadTooLarge/description",
        "/info/description",
    ] {
        assert!(at(&doc, pointer).as_str().unwrap().contains(&limit), "{pointer}");
    }
    // The computation routes state the definition rules no schema can.
    let rules = at(
        &doc,
        "/paths/~1{workspace}~1computations/post/responses/422/description",
    )
    .as_str()
    .unwrap();
    for rule in [
        "`owner`",
        "once",
        "public_key",
        "`algorithm_provider` role",
        "digest",
    ] {
        assert!(rules.contains(rule), "{rule}");
    }
}

#[test]
fn commands_answer_with_their_headers() {
    let doc = document();
    let created = at(&doc, "/paths/~1workspaces/post/responses/201");
    for header in ["Location", "ETag", "Prism-Sequence"] {
        assert!(created["headers"].get(header).is_some(), "{header}");
    }
    assert_eq!(
        created["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Workspace"
    );
    let accepted = at(&doc, "/paths/~1workspaces~1{workspace}/patch/responses/202");
    assert_eq!(
        accepted["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CommandAccepted"
    );
}

#[test]
fn text_fields_state_their_limits() {
    let doc = document();
    for (schema, max) in [
        ("CreateWorkspace", workspace::NAME_MAX),
        ("UpdateWorkspace", workspace::NAME_MAX),
        ("CreateComputation", computation::NAME_MAX),
        ("UpdateComputation", computation::NAME_MAX),
    ] {
        let name = property(&doc, schema, "name");
        assert_eq!(name["maxLength"], json!(max), "{schema}");
        assert_eq!(name["minLength"], 1, "{schema}");
        assert_eq!(name["pattern"], fields::NAME_PATTERN, "{schema}");
    }
    for (schema, max) in [
        ("CreateWorkspace", workspace::DESCRIPTION_MAX),
        ("UpdateWorkspace", workspace::DESCRIPTION_MAX),
        ("CreateComputation", computation::DESCRIPTION_MAX),
        ("UpdateComputation", computation::DESCRIPTION_MAX),
    ] {
        let description = property(&doc, schema, "description");
        assert_eq!(description["maxLength"], json!(max), "{schema}");
        assert_eq!(description["pattern"], fields::TEXT_PATTERN, "{schema}");
    }
    let asset_name = property(&doc, "Asset", "name");
    assert_eq!(asset_name["maxLength"], json!(computation::ASSET_NAME_MAX));
    let reason = parameter(
        &doc,
        "/{workspace}/computations/{computation}",
        "delete",
        "reason",
    );
    assert_eq!(reason["schema"]["maxLength"], json!(computation::REASON_MAX));
    assert_eq!(reason["schema"]["pattern"], fields::TEXT_PATTERN);
}

#[test]
fn identifiers_and_digests_have_their_patterns() {
    let doc = document();
    let id = property(&doc, "Participant", "id");
    assert_eq!(id["pattern"], fields::PARTICIPANT_ID_PATTERN);
    assert_eq!(id["maxLength"], json!(Email::MAX_LEN));
    assert_eq!(property(&doc, "Asset", "provider")["pattern"], id["pattern"]);
    assert_eq!(property(&doc, "Asset", "hash")["pattern"], "^[0-9a-fA-F]{64}$");
    let key = property(&doc, "Participant", "public_key");
    assert_eq!(key["pattern"], fields::PUBLIC_KEY_PATTERN);
    assert!(key["description"].as_str().unwrap().contains("422"));
    // Roles may be only custom ones: the rule "at least one" spans two fields, and is the server's.
    assert_eq!(property(&doc, "Participant", "roles")["minItems"], Value::Null);
    let custom = property(&doc, "Participant", "custom_roles");
    assert!(custom["description"].as_str().unwrap().contains("computation"));
}

#[test]
fn lists_state_their_sizes() {
    let doc = document();
    for schema in ["CreateComputation", "UpdateComputation"] {
        let participants = property(&doc, schema, "participants");
        assert_eq!(participants["minItems"], 1, "{schema}");
        assert_eq!(
            participants["maxItems"],
            json!(computation::PARTICIPANTS_MAX),
            "{schema}"
        );
        assert_eq!(participants["uniqueItems"], true, "{schema}");
        let datasets = property(&doc, schema, "datasets");
        assert_eq!(datasets["maxItems"], json!(computation::DATASETS_MAX), "{schema}");
        assert_eq!(datasets["uniqueItems"], true, "{schema}");
    }
    assert_eq!(
        at(&doc, "/components/schemas/CreateComputation/required"),
        &json!(["name", "participants"])
    );
    for schema in ["CreateWorkspace", "Participant", "Asset", "UpdateComputation"] {
        assert_eq!(
            at(
                &doc,
                &format!("/components/schemas/{schema}/additionalProperties")
            ),
            false,
            "{schema}: unknown fields are refused"
        );
    }
}

#[test]
fn parameters_state_their_ranges_and_formats() {
    let doc = document();
    for (path, method) in [
        ("/workspaces", "get"),
        ("/{workspace}/computations", "get"),
        ("/operations/quarantine", "get"),
    ] {
        let limit = &parameter(&doc, path, method, "limit")["schema"];
        assert_eq!(limit["minimum"], 1, "{path}");
        assert_eq!(limit["maximum"], json!(cursor::MAX_LIMIT), "{path}");
    }
    let cursor_schema = &parameter(&doc, "/workspaces", "get", "cursor")["schema"];
    assert_eq!(cursor_schema["pattern"], cursor::PATTERN);
    for (path, method) in [
        ("/workspaces", "get"),
        ("/workspaces/{workspace}", "get"),
        ("/{workspace}/computations/{computation}", "get"),
    ] {
        assert_eq!(
            parameter(&doc, path, method, "min_sequence")["schema"]["minimum"],
            0
        );
        let header = &parameter(&doc, path, method, "Prism-Min-Sequence");
        assert_eq!(header["in"], "header");
        assert_eq!(header["schema"]["type"], "integer");
    }
    let key = parameter(&doc, "/workspaces", "post", "Idempotency-Key");
    assert_eq!(key["in"], "header");
    assert_eq!(key["schema"]["pattern"], headers::IDEMPOTENCY_KEY_PATTERN);
    let if_match = parameter(&doc, "/workspaces/{workspace}", "patch", "If-Match");
    assert_eq!(if_match["schema"]["pattern"], headers::IF_MATCH_PATTERN);
    for name in ["X-Request-Id", "traceparent"] {
        let header = parameter(&doc, "/workspaces", "post", name);
        assert!(
            header["schema"]["description"]
                .as_str()
                .unwrap()
                .contains("ignored")
        );
    }
    let id = parameter(&doc, "/workspaces/{workspace}", "get", "workspace");
    assert_eq!(id["schema"]["format"], "uuid");
}

#[test]
fn operation_ids_are_unique_and_links_reach_them() {
    let doc = document();
    let mut ids = std::collections::BTreeMap::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap().to_owned();
        let parameters: Vec<String> = operation["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            ids.insert(id.clone(), parameters).is_none(),
            "{method} {path}: operationId {id} is not unique"
        );
    }
    let mut links = 0;
    for (path, method, operation) in operations(&doc) {
        for response in operation["responses"].as_object().unwrap().values() {
            for link in resolve(&doc, response)["links"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, l)| l)
            {
                let target = link["operationId"].as_str().unwrap();
                let parameters = ids
                    .get(target)
                    .unwrap_or_else(|| panic!("{method} {path} links to unknown {target}"));
                for name in link["parameters"].as_object().unwrap().keys() {
                    assert!(parameters.contains(name), "{target} has no parameter {name}");
                }
                links += 1;
            }
        }
    }
    assert!(links > 0);
    // A new workspace leads to the computations created in it.
    assert_eq!(
        at(
            &doc,
            "/paths/~1workspaces/post/responses/201/links/CreateComputation/parameters/workspace"
        ),
        "$response.body#/id"
    );
}

#[test]
fn the_examples_are_requests_the_server_accepts() {
    use prism_gateway::dto::{CreateComputation, CreateWorkspace, UpdateComputation, UpdateWorkspace};
    let doc = document();
    let example = |schema: &str| at(&doc, &format!("/components/schemas/{schema}/examples/0")).clone();
    let definition: CreateComputation = serde_json::from_value(example("CreateComputation")).unwrap();
    let definition = definition.into_definition().unwrap();
    definition.validate().unwrap();
    assert!(definition.algorithm.is_some() && !definition.datasets.is_empty());
    let _: CreateWorkspace = serde_json::from_value(example("CreateWorkspace")).unwrap();
    let _: UpdateWorkspace = serde_json::from_value(example("UpdateWorkspace")).unwrap();
    let change: UpdateComputation = serde_json::from_value(example("UpdateComputation")).unwrap();
    change.into_changes().unwrap();
}

#[test]
fn a_computation_needs_an_owner_in_the_schema_too() {
    let doc = document();
    for schema in ["CreateComputation", "UpdateComputation"] {
        assert_eq!(
            property(&doc, schema, "participants")["contains"],
            json!({"properties": {"roles": {"contains": {"const": "owner"}}}}),
            "{schema}"
        );
    }
}

#[test]
fn governance_bodies_say_what_the_server_accepts() {
    let doc = document();
    // A change is exactly one kind, and nothing else.
    let change = at(&doc, "/components/schemas/ProposeChange/oneOf");
    let kinds: Vec<&str> = change
        .as_array()
        .unwrap()
        .iter()
        .map(|kind| {
            assert_eq!(kind["additionalProperties"], false, "{kind}");
            kind["required"][0].as_str().unwrap()
        })
        .collect();
    assert_eq!(kinds, ["update", "attestation_policy", "change_threshold"]);
    let threshold = at(&doc, "/components/schemas/ChangeThreshold/oneOf");
    assert_eq!(threshold[0]["enum"], json!(["all"]));
    assert_eq!(threshold[1]["minimum"], 1);
    assert_eq!(threshold[1]["maximum"], json!(computation::PARTICIPANTS_MAX));
    let reason = property(&doc, "ReasonRequest", "reason");
    assert_eq!(reason["maxLength"], json!(computation::REASON_MAX));
    assert_eq!(reason["minLength"], 1);
    assert_eq!(reason["pattern"], fields::NAME_PATTERN);
    let number = parameter(
        &doc,
        "/{workspace}/computations/{computation}/proposals/{proposal}",
        "get",
        "proposal",
    );
    assert_eq!(number["schema"]["minimum"], 1);
    let status = parameter(
        &doc,
        "/{workspace}/computations/{computation}/proposals",
        "get",
        "status",
    );
    assert_eq!(status["schema"]["pattern"], "^(open|adopted|vetoed|superseded)$");
    // A change of an approved computation's manifest is answered 202, naming its proposal.
    let patch = at(
        &doc,
        "/paths/~1{workspace}~1computations~1{computation}/patch/description",
    );
    assert!(patch.as_str().unwrap().contains("proposal"), "{patch}");
}

#[test]
fn asset_bodies_say_what_the_server_accepts() {
    use prism_domain::asset;
    use prism_domain::values::{FILE_NAME_PATTERN, FileName, MIME_TYPE_PATTERN, MimeType};
    let doc = document();
    assert_eq!(
        property(&doc, "RegisterAsset", "kind")["enum"],
        json!(["algorithm", "dataset"])
    );
    assert_eq!(
        property(&doc, "RegisterAsset", "algorithm_type")["enum"],
        json!(["python", "bin", "wasm", "docker", null])
    );
    for schema in ["RegisterAsset", "UpdateAsset"] {
        let mime = property(&doc, schema, "mime_type");
        assert_eq!(mime["pattern"], MIME_TYPE_PATTERN, "{schema}");
        assert_eq!(mime["maxLength"], json!(MimeType::MAX_LEN), "{schema}");
        let description = property(&doc, schema, "description");
        assert_eq!(
            description["maxLength"],
            json!(asset::DESCRIPTION_MAX),
            "{schema}"
        );
        assert_eq!(description["pattern"], fields::TEXT_PATTERN, "{schema}");
        assert_eq!(
            at(
                &doc,
                &format!("/components/schemas/{schema}/additionalProperties")
            ),
            false,
            "{schema}"
        );
    }
    let name = property(&doc, "RegisterAsset", "file_name");
    assert_eq!(name["pattern"], FILE_NAME_PATTERN);
    assert_eq!(name["maxLength"], json!(FileName::MAX_LEN));
    assert!(name["description"].as_str().unwrap().contains("`..`"));
    assert_eq!(
        property(&doc, "RegisterAsset", "sha3_256")["pattern"],
        fields::SHA3_DIGEST_PATTERN
    );
    assert_eq!(
        at(&doc, "/components/schemas/RegisterAsset/required"),
        &json!(["kind", "mime_type", "sha3_256", "file_name"])
    );
    let example = at(&doc, "/components/schemas/RegisterAsset/examples/0").clone();
    let example: routes::assets::RegisterAsset = serde_json::from_value(example).unwrap();
    example.into_record().unwrap();
    // A linked entry of a definition says which asset it came from.
    assert_eq!(property(&doc, "Asset", "asset_id")["format"], "uuid");
    let filters = ["kind", "owner", "status"]
        .map(|name| parameter(&doc, "/{workspace}/assets", "get", name)["schema"].clone());
    assert_eq!(filters[0]["pattern"], "^(algorithm|dataset)$");
    assert_eq!(filters[1]["format"], "uuid");
    assert_eq!(filters[2]["pattern"], "^(active|archived)$");

    // A sample is raw bytes of any type, up to its own limit, and comes back as it went.
    let put = at(&doc, "/paths/~1{workspace}~1assets~1{asset}~1sample/put");
    assert!(
        put["requestBody"]["content"]["application/octet-stream"].is_object(),
        "{put}"
    );
    let too_large = resolve(&doc, &put["responses"]["413"])["description"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(too_large.contains(&asset::SAMPLE_MAX.to_string()), "{too_large}");
    let get = at(&doc, "/paths/~1{workspace}~1assets~1{asset}~1sample/get");
    assert!(get["responses"]["200"]["content"]["*/*"].is_object(), "{get}");
    assert!(get["responses"]["200"]["headers"]["Repr-Digest"].is_object());
    // Linking names the rules of the computation.
    let link = at(
        &doc,
        "/paths/~1{workspace}~1computations~1{computation}~1assets/post",
    );
    let refused = resolve(&doc, &link["responses"]["422"])["description"]
        .as_str()
        .unwrap();
    assert!(refused.contains("`dataset_provider`"), "{refused}");
}
