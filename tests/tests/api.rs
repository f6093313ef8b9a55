//! The HTTP API of every registered module against a real nats-server and PostgreSQL (own server and
//! database per test), driven in-process: routes, status codes, headers and problem documents.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::middleware::Next;
use prism_app::{AppConfig, IdentityConfig};
use prism_cli::modules;
use prism_domain::testing::keys::ED25519_BASE64_DER as ED25519;
use prism_embedded::{NatsServer, TestDatabase};
use prism_gateway::{AppState, GatewayConfig};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt as _;

struct Env {
    app: Router,
    nats: NatsServer,
    _db: TestDatabase,
    _stop: watch::Sender<bool>,
}

async fn env() -> Env {
    env_with(true, GatewayConfig::default(), AppConfig::default()).await
}

async fn env_with(projecting: bool, config: GatewayConfig, app_config: AppConfig) -> Env {
    let nats = NatsServer::start_temp().await.expect("nats");
    let db = TestDatabase::create().await.expect("database");
    let (_store, app) = prism_cli::connect(
        &nats.url(),
        &db.url,
        Default::default(),
        app_config,
        None,
        Some(IdentityConfig::ephemeral("http://prism.test")),
        None,
    )
    .await
    .expect("application");
    let (stop, stopped) = watch::channel(false);
    if projecting {
        let read = app.read_models().expect("read models");
        for projector in modules::projectors(read.pool(), app.log()) {
            let stopped = stopped.clone();
            tokio::spawn(async move { projector.run(stopped).await });
        }
    }
    let token = admin_token(&app).await;
    let router = prism_gateway::router(AppState::new(app, config), modules::routes());
    Env {
        // Requests are the platform administrator's unless they carry their own `Authorization` (the
        // role matrix has its own tests).
        app: router.layer(axum::middleware::from_fn(
            move |mut request: Request<Body>, next: Next| {
                let bearer = format!("Bearer {token}");
                async move {
                    if !request.headers().contains_key(header::AUTHORIZATION) {
                        request
                            .headers_mut()
                            .insert(header::AUTHORIZATION, bearer.parse().unwrap());
                    }
                    next.run(request).await
                }
            },
        )),
        nats,
        _db: db,
        _stop: stop,
    }
}

/// An access token of the platform administrator, made as `prism up` makes it.
async fn admin_token(app: &prism_app::App) -> String {
    let email = "admin@prism.test";
    let password = app
        .identity()
        .bootstrap_admin(email, None)
        .await
        .unwrap()
        .expect("an empty platform gets its administrator");
    app.identity()
        .password_grant(&prism_app::Caller::anonymous(), email, &password)
        .await
        .unwrap()
        .access_token
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(self.header("content-type"), "application/problem+json");
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:prism:problem:")
        );
        assert!(self.body["instance"].is_string(), "{:#}", self.body);
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    raw(app, request.body(body).unwrap()).await
}

async fn raw(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn computation(name: &str) -> Value {
    json!({
        "name": name,
        "participants": [
            {"id": "alice@example.org", "roles": ["owner", "algorithm_provider"], "public_key": ED25519},
            {"id": "bob@example.org", "roles": ["dataset_provider", "result_consumer"], "public_key": ED25519}
        ],
        "algorithm": {"provider": "alice@example.org", "hash": "ab".repeat(32), "name": "algo.py"},
        "datasets": [{"provider": "bob@example.org", "hash": "cd".repeat(32)}]
    })
}

#[tokio::test]
async fn workspaces_and_computations_over_http() {
    let env = env().await;
    let app = &env.app;

    // Create, with an idempotency key: a retry names the same workspace.
    let key = [("idempotency-key", "create-ws-1"), ("x-request-id", "req-1")];
    let created = call(
        app,
        Method::POST,
        "/workspaces",
        &key,
        Some(json!({"name": " Hospitals "})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), format!("/workspaces/{id}"));
    assert_eq!(created.header("etag"), "\"1\"");
    assert_eq!(created.body["name"], "Hospitals");
    assert_eq!(created.body["status"], "active");
    // Recorded as made by the signed-in administrator.
    assert!(
        created.body["created_by"].as_str().unwrap().starts_with("user:"),
        "{:#}",
        created.body
    );
    let sequence = created.body["sequence"].as_u64().unwrap();
    assert_eq!(created.header("prism-sequence"), sequence.to_string());

    let again = call(
        app,
        Method::POST,
        "/workspaces",
        &key,
        Some(json!({"description": null, "name": " Hospitals "})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.body["sequence"], sequence);

    let other = call(
        app,
        Method::POST,
        "/workspaces",
        &key,
        Some(json!({"name": "Other"})),
    )
    .await;
    other.assert_problem(422);
    assert_eq!(other.body["type"], "urn:prism:problem:idempotency-key-reused");

    // A rejected create releases its key, so the corrected request can use it.
    let k2 = [("idempotency-key", "create-ws-2")];
    call(app, Method::POST, "/workspaces", &k2, Some(json!({"name": "  "})))
        .await
        .assert_problem(422);
    let fixed = call(
        app,
        Method::POST,
        "/workspaces",
        &k2,
        Some(json!({"name": "Labs"})),
    )
    .await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{:#}", fixed.body);

    // Read, conditional update.
    let got = call(
        app,
        Method::GET,
        &format!("/workspaces/{id}?min_sequence={sequence}"),
        &[],
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("etag"), "\"1\"");
    assert!(got.body.get("sequence").is_none());

    let uri = format!("/workspaces/{id}");
    let stale = call(
        app,
        Method::PATCH,
        &uri,
        &[("if-match", "\"0\"")],
        Some(json!({"description": "EU"})),
    )
    .await;
    stale.assert_problem(412);
    call(
        app,
        Method::PATCH,
        &uri,
        &[("if-match", "1")],
        Some(json!({"description": "EU"})),
    )
    .await
    .assert_problem(400);
    let updated = call(
        app,
        Method::PATCH,
        &uri,
        &[("if-match", "\"1\"")],
        Some(json!({"description": "EU"})),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{:#}", updated.body);
    assert_eq!(updated.header("etag"), "\"2\"");
    assert_eq!(updated.body["description"], "EU");
    assert!(updated.body["sequence"].as_u64().unwrap() > sequence);

    // Body problems.
    call(app, Method::PATCH, &uri, &[], Some(json!({"title": "x"})))
        .await
        .assert_problem(400);
    let mut malformed = Request::builder().method(Method::POST).uri("/workspaces");
    malformed = malformed.header(header::CONTENT_TYPE, "application/json");
    raw(app, malformed.body(Body::from("{\"name\":")).unwrap())
        .await
        .assert_problem(400);
    let text = Request::builder()
        .method(Method::POST)
        .uri("/workspaces")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hi"))
        .unwrap();
    raw(app, text).await.assert_problem(415);
    call(app, Method::POST, "/workspaces", &[], Some(json!({"name": 5})))
        .await
        .assert_problem(422);

    // Computations.
    let base = format!("/{id}/computations");
    let mut bad = computation("Study");
    bad["participants"][1]["public_key"] = json!("not a key");
    let invalid = call(app, Method::POST, &base, &[], Some(bad)).await;
    invalid.assert_problem(422);
    assert_eq!(invalid.body["errors"][0]["pointer"], "/participants/1/public_key");
    let no_owner = call(
        app,
        Method::POST,
        &base,
        &[],
        Some(json!({"name": "x", "participants": [{"id": "a@example.org", "roles": ["viewer"]}]})),
    )
    .await;
    no_owner.assert_problem(422);
    assert!(no_owner.body["detail"].as_str().unwrap().contains("owner"));

    let missing = format!("/{}/computations", uuid::Uuid::now_v7());
    call(app, Method::POST, &missing, &[], Some(computation("x")))
        .await
        .assert_problem(404);

    let c1 = call(
        app,
        Method::POST,
        &base,
        &[("idempotency-key", "c1")],
        Some(computation("One")),
    )
    .await;
    assert_eq!(c1.status, StatusCode::CREATED, "{:#}", c1.body);
    assert_eq!(
        c1.body["participants"][0]["roles"],
        json!(["owner", "algorithm_provider"])
    );
    let c1_id = c1.body["id"].as_str().unwrap().to_owned();
    let c2 = call(app, Method::POST, &base, &[], Some(computation("Two"))).await;
    assert_eq!(c2.status, StatusCode::CREATED);
    let c2_seq = c2.body["sequence"].as_u64().unwrap();

    let page = call(
        app,
        Method::GET,
        &format!("{base}?limit=1&min_sequence={c2_seq}"),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{:#}", page.body);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["items"][0]["id"], c1_id.as_str());
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let page2 = call(
        app,
        Method::GET,
        &format!("{base}?limit=1&cursor={cursor}"),
        &[],
        None,
    )
    .await;
    assert_eq!(page2.body["items"][0]["name"], "Two");
    assert_eq!(page2.body["next_cursor"], Value::Null);
    call(app, Method::GET, &format!("{base}?limit=0"), &[], None)
        .await
        .assert_problem(400);
    call(app, Method::GET, &format!("{base}?cursor=zzz"), &[], None)
        .await
        .assert_problem(400);
    call(app, Method::GET, &format!("{base}?bogus=1"), &[], None)
        .await
        .assert_problem(400);

    let one = format!("{base}/{c1_id}");
    let patched = call(app, Method::PATCH, &one, &[], Some(json!({"name": "Renamed"}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{:#}", patched.body);
    assert_eq!(patched.body["name"], "Renamed");
    // Another workspace's path does not reach this computation.
    let elsewhere = format!("/{}/computations/{c1_id}", fixed.body["id"].as_str().unwrap());
    call(app, Method::PATCH, &elsewhere, &[], Some(json!({"name": "x"})))
        .await
        .assert_problem(404);

    let archived = call(
        app,
        Method::DELETE,
        &format!("{one}?reason=done"),
        &[("if-match", "\"2\"")],
        None,
    )
    .await;
    assert_eq!(archived.status, StatusCode::OK, "{:#}", archived.body);
    assert_eq!(archived.body["status"], "archived");
    call(app, Method::DELETE, &one, &[], None)
        .await
        .assert_problem(409);
    let got = call(app, Method::GET, &one, &[], None).await;
    assert_eq!(got.header("etag"), "\"3\"");

    // Archiving the workspace closes it to new computations.
    let archived = call(app, Method::POST, &format!("/workspaces/{id}/archive"), &[], None).await;
    assert_eq!(archived.status, StatusCode::OK, "{:#}", archived.body);
    assert_eq!(archived.body["status"], "archived");
    call(app, Method::POST, &base, &[], Some(computation("Late")))
        .await
        .assert_problem(409);

    // Routing problems.
    call(app, Method::GET, "/nope", &[], None)
        .await
        .assert_problem(404);
    let not_allowed = call(app, Method::DELETE, "/workspaces", &[], None).await;
    not_allowed.assert_problem(405);
    assert!(
        not_allowed.header("allow").contains("POST"),
        "{:?}",
        not_allowed.headers
    );
    call(app, Method::GET, "/workspaces/not-a-uuid", &[], None)
        .await
        .assert_problem(400);
    call(
        app,
        Method::GET,
        &format!("/workspaces/{}", uuid::Uuid::now_v7()),
        &[],
        None,
    )
    .await
    .assert_problem(404);

    // Operations.
    let health = call(app, Method::GET, "/health", &[], None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        health.body,
        json!({"status": "ok", "nats": "up", "postgres": "up"})
    );
    let doc = call(app, Method::GET, "/openapi.json", &[], None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/{workspace}/computations/{computation}"]["delete"].is_object());
    assert_eq!(
        call(app, Method::GET, "/docs/", &[], None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn commands_fail_fast_while_nats_is_down() {
    let mut env = env().await;
    let ok = call(
        &env.app,
        Method::POST,
        "/workspaces",
        &[],
        Some(json!({"name": "A"})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED);

    env.nats.kill().await.unwrap();
    // Give the client a moment to notice the closed connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let down = call(
        &env.app,
        Method::POST,
        "/workspaces",
        &[],
        Some(json!({"name": "B"})),
    )
    .await;
    down.assert_problem(503);
    assert_eq!(down.header("retry-after"), "1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let health = call(&env.app, Method::GET, "/health", &[], None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.body["nats"], "down");
    assert_eq!(health.body["postgres"], "up");
}

#[tokio::test]
async fn a_lagging_read_model_gives_202_on_commands_and_503_on_queries() {
    let config = GatewayConfig {
        command_read_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let app_config = AppConfig {
        read_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let env = env_with(false, config, app_config).await;
    let key = [("idempotency-key", "k")];
    let accepted = call(
        &env.app,
        Method::POST,
        "/workspaces",
        &key,
        Some(json!({"name": "A"})),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:#}", accepted.body);
    let id = accepted.body["id"].as_str().unwrap();
    let sequence = accepted.body["sequence"].as_u64().unwrap();
    assert_eq!(accepted.header("location"), format!("/workspaces/{id}"));
    assert_eq!(accepted.header("prism-sequence"), sequence.to_string());
    assert_eq!(accepted.header("etag"), "\"1\"");
    assert_eq!(accepted.body["version"], 1);

    // A retry still names the same workspace.
    let retried = call(
        &env.app,
        Method::POST,
        "/workspaces",
        &key,
        Some(json!({"name": "A"})),
    )
    .await;
    assert_eq!(retried.body["id"], id);
    assert_eq!(retried.header("idempotent-replayed"), "true");

    let read = call(
        &env.app,
        Method::GET,
        &format!("/workspaces/{id}"),
        &[("prism-min-sequence", &sequence.to_string())],
        None,
    )
    .await;
    read.assert_problem(503);
    assert_eq!(read.body["type"], "urn:prism:problem:projection-lagging");
    assert_eq!(read.header("retry-after"), "1");
}
