//! Webhooks end to end, against real NATS JetStream and PostgreSQL, with receivers that are HTTP
//! servers of this test: every matching event of the workspace arrives exactly as the log holds it,
//! signed (HMAC and timestamp checked here, independently of the platform's code) after the
//! abuse-protection handshake — also when the receiver was down at first; a receiver that keeps
//! failing ends with a `failed` delivery that the API lists and the log records, and a retry
//! delivers it once the receiver is back; an endpoint that refuses the handshake gets nothing; a
//! rotated secret signs what follows; and the API refuses what it must.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use base64::Engine as _;
use common::agent::admin_workspace;
use common::{Prism, client_with, json, problem};
use hmac::{Hmac, Mac};
use prism_domain::WorkspaceId;
use prism_domain::testing::keys::ED25519_BASE64_DER;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

/// How far a delivery's timestamp may be from now, as a receiver would allow.
const TOLERANCE_SECONDS: i64 = 300;

/// A small schedule, so that exhausting the attempts takes well under a second.
fn fast() -> prism_workers::WebhookConfig {
    prism_workers::WebhookConfig {
        origin: "prism.test".into(),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
        max_attempts: 4,
        timeout: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        batch: 16,
    }
}

async fn platform() -> Prism {
    Prism::builder().webhooks(fast()).start().await
}

// ---------------------------------------------------------------------------------------------------
// A receiver

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers the handshake and takes deliveries.
    Accept,
    /// Answers the handshake, then `503` to every delivery.
    Fail,
    /// Refuses the handshake (`403`).
    Refuse,
}

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

#[derive(Clone)]
struct Receiver {
    behaviour: Arc<Mutex<Behaviour>>,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    deliveries: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour: Arc::new(Mutex::new(behaviour)),
            handshakes: Arc::default(),
            deliveries: Arc::default(),
        }
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    fn deliveries(&self) -> Vec<Received> {
        self.deliveries.lock().unwrap().clone()
    }

    /// Serves at `addr` until the test ends.
    async fn serve(&self, addr: SocketAddr) {
        let app = axum::Router::new()
            .route("/hook", axum::routing::any(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let behaviour = *receiver.behaviour.lock().unwrap();
    if method == Method::OPTIONS {
        receiver.handshakes.lock().unwrap().push(headers.clone());
        if behaviour == Behaviour::Refuse {
            return AxumStatus::FORBIDDEN.into_response();
        }
        let origin = headers
            .get("webhook-request-origin")
            .cloned()
            .unwrap_or(axum::http::HeaderValue::from_static("none"));
        return (AxumStatus::OK, [("WebHook-Allowed-Origin", origin)]).into_response();
    }
    if behaviour == Behaviour::Fail {
        return AxumStatus::SERVICE_UNAVAILABLE.into_response();
    }
    receiver.deliveries.lock().unwrap().push(Received {
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    AxumStatus::NO_CONTENT.into_response()
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Checks a delivery the way a Standard Webhooks receiver does, with `secret` (`whsec_…`): the
/// signature over `{id}.{timestamp}.{body}`, and a timestamp within the tolerance.
fn verify(received: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .unwrap();
    let id = header(&received.headers, "webhook-id");
    let timestamp = header(&received.headers, "webhook-timestamp");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(age.abs() <= TOLERANCE_SECONDS, "a timestamp {age} s away");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", received.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header(&received.headers, "webhook-signature")
        .split(' ')
        .any(|signature| signature == expected)
}

// ---------------------------------------------------------------------------------------------------
// Helpers

async fn define(prism: &Prism, ws: WorkspaceId, name: &str) -> String {
    let me = common::parties::admin_id(prism).await;
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({"name": name, "participants": [{"id": me, "roles": ["owner"], "public_key": ED25519_BASE64_DER}]}))
        .send()
        .await
        .unwrap();
    json(r, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn register(prism: &Prism, ws: WorkspaceId, url: &str, event_types: &[&str]) -> Value {
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks")))
        .json(&json!({"url": url, "event_types": event_types, "description": "test receiver"}))
        .send()
        .await
        .unwrap();
    assert_eq!(common::header(&r, "cache-control"), "no-store");
    json(r, StatusCode::CREATED).await
}

async fn get(prism: &Prism, path: &str) -> Value {
    let r = prism.admin().get(prism.url(path)).send().await.unwrap();
    json(r, StatusCode::OK).await
}

/// Every event of the log (each as the exact JSON text of its record), with its commit's sequence.
async fn whole_log(prism: &Prism) -> Vec<(u64, Value, String)> {
    let log = prism.platform().app().log().clone();
    let last = log.last_sequence().await.unwrap();
    let mut events = Vec::new();
    for sequence in 1..=last {
        if let Some(commit) = log.commit_at(sequence).await.unwrap() {
            for event in commit.events {
                let text = serde_json::to_string(&event).unwrap();
                events.push((sequence, serde_json::from_str(&text).unwrap(), text));
            }
        }
    }
    events
}

/// Waits up to 30 s for `done`.
async fn until<T>(what: &str, mut done: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(value) = done().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited 30 s for {what}");
}

// ---------------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn a_receiver_that_was_down_receives_every_matching_event_as_the_log_holds_it() {
    let prism = platform().await;
    let (_, ws) = admin_workspace(&prism, "deliveries").await;
    let (_, other) = admin_workspace(&prism, "elsewhere").await;
    let addr = common::free_addr();
    let url = format!("http://{addr}/hook");
    let endpoint = register(&prism, ws, &url, &["io.prism.computation.*"]).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["status"], "pending_validation");
    assert_eq!(
        endpoint["secret_fingerprint"],
        prism_app::webhook_secret_fingerprint(&secret)
    );
    // Never in the log: only its name and fingerprint.
    assert!(
        whole_log(&prism)
            .await
            .iter()
            .all(|(_, _, text)| !text.contains(&secret))
    );

    // While the receiver is down: matching events of the workspace, and others that must not come.
    let mut computations = Vec::new();
    for n in 0..3 {
        computations.push(define(&prism, ws, &format!("matching {n}")).await);
    }
    define(&prism, other, "another workspace's").await;
    let r = prism
        .admin()
        .patch(prism.url(&format!("/workspaces/{ws}")))
        .json(&json!({"description": "not a computation event"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let pending = until("a failed handshake", async || {
        let endpoint = get(&prism, &format!("/{ws}/webhooks/{id}")).await;
        (endpoint["handshake_attempts"].as_u64().unwrap() >= 2).then_some(endpoint)
    })
    .await;
    assert_eq!(pending["status"], "pending_validation");
    assert!(
        pending["last_handshake_error"]
            .as_str()
            .unwrap()
            .contains("error sending request"),
        "{pending}"
    );

    // The receiver comes up: the handshake passes, then everything arrives.
    let receiver = Receiver::new(Behaviour::Accept);
    receiver.serve(addr).await;
    let registered_at = whole_log(&prism)
        .await
        .iter()
        .find(|(_, e, _)| e["type"] == "io.prism.webhook.registered.v1" && e["aggregateid"] == id.as_str())
        .unwrap()
        .0;
    let expected: Vec<(Value, String)> = whole_log(&prism)
        .await
        .into_iter()
        .filter(|(sequence, e, _)| {
            *sequence > registered_at
                && e["workspace"] == ws.to_string().as_str()
                && e["type"].as_str().unwrap().starts_with("io.prism.computation.")
        })
        .map(|(_, e, text)| (e, text))
        .collect();
    assert!(expected.len() >= 3, "{expected:?}");
    until("every matching event", async || {
        let ids: BTreeSet<String> = receiver
            .deliveries()
            .iter()
            .map(|d| header(&d.headers, "webhook-id"))
            .collect();
        (ids.len() >= expected.len()).then_some(())
    })
    .await;
    let handshake = receiver.handshakes.lock().unwrap()[0].clone();
    assert_eq!(header(&handshake, "webhook-request-origin"), "prism.test");
    let received = receiver.deliveries();
    for delivery in &received {
        assert_eq!(
            header(&delivery.headers, "content-type"),
            "application/cloudevents+json; charset=utf-8"
        );
        assert!(verify(delivery, &secret), "a signature that does not verify");
        let id = header(&delivery.headers, "webhook-id");
        let (event, text) = expected
            .iter()
            .find(|(e, _)| e["id"] == id.as_str())
            .unwrap_or_else(|| panic!("an event that was not to be delivered: {}", delivery.body));
        // Exactly as the log holds it.
        assert_eq!(&delivery.body, text);
        assert_eq!(event["workspace"], ws.to_string().as_str());
    }
    let endpoint = get(&prism, &format!("/{ws}/webhooks/{id}")).await;
    assert_eq!(endpoint["status"], "active");
    let listed = get(&prism, &format!("/{ws}/webhooks/{id}/deliveries")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), expected.len());
    assert!(
        items
            .iter()
            .all(|d| d["status"] == "delivered" && d["last_status"] == 204),
        "{listed}"
    );

    // A rotated secret signs what follows; the old one no longer does.
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks/{id}/secret")))
        .send()
        .await
        .unwrap();
    let rotated = json(r, StatusCode::OK).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let before = receiver.deliveries().len();
    define(&prism, ws, "after the rotation").await;
    let late = until("the delivery after the rotation", async || {
        receiver.deliveries().get(before).cloned()
    })
    .await;
    assert!(verify(&late, &new_secret));
    assert!(!verify(&late, &secret));
    prism.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_ends_with_a_recorded_failure_that_a_retry_delivers() {
    let prism = platform().await;
    let (_, ws) = admin_workspace(&prism, "failures").await;
    let failing_addr = common::free_addr();
    let failing = Receiver::new(Behaviour::Fail);
    failing.serve(failing_addr).await;
    let refusing_addr = common::free_addr();
    let refusing = Receiver::new(Behaviour::Refuse);
    refusing.serve(refusing_addr).await;
    let endpoint = register(
        &prism,
        ws,
        &format!("http://{failing_addr}/hook"),
        &["io.prism.computation.created.v1"],
    )
    .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let refused = register(&prism, ws, &format!("http://{refusing_addr}/hook"), &["*"]).await;
    let refused_id = refused["id"].as_str().unwrap().to_owned();
    until("the handshake", async || {
        let endpoint = get(&prism, &format!("/{ws}/webhooks/{id}")).await;
        (endpoint["status"] == "active").then_some(())
    })
    .await;
    let computation = define(&prism, ws, "undeliverable").await;

    let failed = until("the failed delivery", async || {
        let page = get(&prism, &format!("/{ws}/webhooks/{id}/deliveries?status=failed")).await;
        page["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(failed["attempts"], 4);
    assert_eq!(failed["last_status"], 503);
    assert!(failed["last_error"].as_str().unwrap().contains("503"), "{failed}");
    assert!(failed.get("next_attempt_at").is_none());
    let event_id = failed["event_id"].as_str().unwrap().to_owned();
    // The event is the computation's creation.
    let log = whole_log(&prism).await;
    let created = log.iter().find(|(_, e, _)| e["id"] == event_id.as_str()).unwrap();
    assert_eq!(created.1["aggregateid"], computation.as_str());
    // … and its failure is in the log, on the endpoint.
    let recorded = log
        .iter()
        .find(|(_, e, _)| {
            e["type"] == "io.prism.webhook.delivery_failed.v1" && e["aggregateid"] == id.as_str()
        })
        .expect("the failure is recorded");
    assert_eq!(recorded.1["data"]["event_id"], event_id.as_str());
    assert_eq!(recorded.1["data"]["attempts"], 4);
    assert_eq!(recorded.1["data"]["delivery"], failed["id"]);
    assert!(recorded.1["data"]["last_error"].as_str().unwrap().contains("503"));
    until("the failure counted on the endpoint", async || {
        let endpoint = get(&prism, &format!("/{ws}/webhooks/{id}")).await;
        (endpoint["failed_deliveries"] == 1).then_some(())
    })
    .await;

    // Retrying a delivery that is not failed is a conflict; a failed one goes back and arrives.
    failing.set(Behaviour::Accept);
    let delivery = failed["id"].as_str().unwrap();
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks/{id}/deliveries/{delivery}/retry")))
        .send()
        .await
        .unwrap();
    let retried = json(r, StatusCode::OK).await;
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["retries"], 1);
    let arrived = until("the retried delivery", async || {
        failing.deliveries().first().cloned()
    })
    .await;
    assert_eq!(header(&arrived.headers, "webhook-id"), event_id);
    assert!(verify(&arrived, &secret));
    assert_eq!(arrived.body, created.2);
    let delivered = until("the delivered status", async || {
        let page = get(
            &prism,
            &format!("/{ws}/webhooks/{id}/deliveries?status=delivered"),
        )
        .await;
        page["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(delivered["id"], failed["id"]);
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks/{id}/deliveries/{delivery}/retry")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;

    // The endpoint that refused the handshake got nothing, and says why it waits.
    let waiting = until("refused handshakes", async || {
        let endpoint = get(&prism, &format!("/{ws}/webhooks/{refused_id}")).await;
        (endpoint["handshake_attempts"].as_u64().unwrap() >= 3).then_some(endpoint)
    })
    .await;
    assert_eq!(waiting["status"], "pending_validation");
    assert!(
        waiting["last_handshake_error"].as_str().unwrap().contains("403"),
        "{waiting}"
    );
    assert!(refusing.deliveries().is_empty());
    assert!(!refusing.handshakes.lock().unwrap().is_empty());
    let queued = get(
        &prism,
        &format!("/{ws}/webhooks/{refused_id}/deliveries?status=pending"),
    )
    .await;
    assert!(
        !queued["items"].as_array().unwrap().is_empty(),
        "its events are kept for it"
    );
    prism.stop().await;
}

#[tokio::test]
async fn only_those_who_manage_webhooks_reach_them_and_bad_input_is_refused_precisely() {
    let prism = platform().await;
    let (_, ws) = admin_workspace(&prism, "guarded").await;
    let (_, other) = admin_workspace(&prism, "other").await;
    let endpoint = register(&prism, ws, "https://hooks.example.org/prism", &["*"]).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();

    // No credential: 401.
    let r = prism
        .request(reqwest::Method::GET, &format!("/{ws}/webhooks"), None)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    // A member without webhooks.manage: 403 naming it.
    let member = common::parties::party(&prism, ws, "member", &rcgen::PKCS_ED25519).await;
    let client = client_with(&member.token);
    for (method, path) in [
        (reqwest::Method::GET, format!("/{ws}/webhooks")),
        (reqwest::Method::GET, format!("/{ws}/webhooks/{id}")),
        (reqwest::Method::DELETE, format!("/{ws}/webhooks/{id}")),
        (reqwest::Method::POST, format!("/{ws}/webhooks/{id}/secret")),
        (reqwest::Method::GET, format!("/{ws}/webhooks/{id}/deliveries")),
    ] {
        let r = client.request(method, prism.url(&path)).send().await.unwrap();
        let p = problem(r, StatusCode::FORBIDDEN).await;
        assert!(p["detail"].as_str().unwrap().contains("webhooks.manage"), "{p}");
    }
    // Another workspace's endpoint, or a workspace the caller has no part in: 404.
    let r = prism
        .admin()
        .get(prism.url(&format!("/{other}/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    let r = prism
        .admin()
        .patch(prism.url(&format!("/{other}/webhooks/{id}")))
        .json(&json!({"description": "not mine"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    let r = client
        .get(prism.url(&format!("/{other}/webhooks")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;

    // Bad input: each value at its pointer.
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks")))
        .json(&json!({
            "url": "http://hooks.example.org/",
            "event_types": ["io.prism.run.*", "run.completed", "io.prism.run.*"],
            "description": "bell\u{7}"
        }))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let pointers: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/url", "/event_types/1", "/event_types/2", "/description"],
        "{p}"
    );
    for (body, pointer) in [
        (
            json!({"url": "https://u:p@hooks.example.org/", "event_types": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "ftp://hooks.example.org/", "event_types": ["*"]}),
            "/url",
        ),
        (
            json!({"url": "https://hooks.example.org/", "event_types": []}),
            "/event_types",
        ),
    ] {
        let r = prism
            .admin()
            .post(prism.url(&format!("/{ws}/webhooks")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
    }
    // A field of the wrong type, an unknown field: 422 too; not JSON: 400.
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks")))
        .json(&json!({"url": "https://hooks.example.org/", "event_types": "*"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks")))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    let r = prism
        .admin()
        .get(prism.url(&format!("/{ws}/webhooks/{id}/deliveries?status=lost")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    let r = prism
        .admin()
        .patch(prism.url(&format!("/{ws}/webhooks/{id}")))
        .json(&json!({"event_types": ["io.prism.run.completed"]}))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["pointer"], "/event_types/0");

    // Deleted: gone from the list, nothing more to change.
    let r = prism
        .admin()
        .delete(prism.url(&format!("/{ws}/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let sequence: u64 = common::header(&r, "prism-sequence").parse().unwrap();
    let listed = get(&prism, &format!("/{ws}/webhooks?min_sequence={sequence}")).await;
    assert_eq!(listed, json!([]));
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/webhooks/{id}/secret")))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;
    prism.stop().await;
}
