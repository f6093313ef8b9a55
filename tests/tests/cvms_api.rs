//! Backends and CVMs over HTTP, against a real nats-server and PostgreSQL: registering, listing,
//! changing and removing a workspace's backends and the platform's; asking for CVMs, reading them,
//! destroying them, enrolling a bring-your-own machine's agent; every refusal with its status and
//! pointer, and who may do what.
//!
//! The platform runs its provisioner, so a CVM asked for here moves on (no backend of these tests can
//! make one, so it fails): only what does not depend on how far it got is asserted.

mod common;

use std::time::{Duration, Instant};

use common::{Prism, agent};
use prism_app::Caller;
use prism_domain::WorkspaceId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";

/// An answer: status, headers and JSON body (`null` when there is none).
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn expect(self, status: StatusCode, what: &str) -> Self {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        self
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_owned()
    }

    /// A problem document with `status` whose errors point at `pointer`.
    fn refused(self, status: StatusCode, pointer: Option<&str>, what: &str) -> Self {
        let this = self.expect(status, what);
        assert_eq!(this.header("content-type"), "application/problem+json", "{what}");
        assert_eq!(this.body["status"], status.as_u16(), "{what}");
        if let Some(pointer) = pointer {
            let pointers: Vec<&str> = this.body["errors"]
                .as_array()
                .map(|errors| errors.iter().filter_map(|e| e["pointer"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                pointers.contains(&pointer),
                "{what}: no error at {pointer} in {}",
                this.body
            );
        }
        this
    }

    /// A 403 naming the permission the caller lacks.
    fn forbidden(self, permission: &str, what: &str) -> Self {
        let this = self.refused(StatusCode::FORBIDDEN, None, what);
        let detail = this.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&format!("`{permission}`")), "{what}: {detail}");
        this
    }
}

async fn call(
    prism: &Prism,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = prism.request(method, path, bearer);
    if let Some(body) = body {
        // The server refuses a body over its limit unread (413) and so cannot read another request
        // on that connection: keep it out of the client's pool, or the next request may be sent on
        // it as it closes.
        if body.to_string().len() > 1024 * 1024 {
            request = request.header(reqwest::header::CONNECTION, "close");
        }
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// Registers `email` and signs in: the access token.
async fn user(prism: &Prism, email: &str) -> String {
    let password = format!("{email}'s long password");
    call(
        prism,
        Method::POST,
        "/users",
        None,
        Some(json!({"email": email, "display_name": email, "password": password})),
    )
    .await
    .expect(StatusCode::CREATED, "registration");
    let signed_in = prism.sign_in(email, &password).await;
    let body: Value = signed_in.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn workspace(prism: &Prism, token: &str, name: &str) -> String {
    call(
        prism,
        Method::POST,
        "/workspaces",
        Some(token),
        Some(json!({"name": name})),
    )
    .await
    .expect(StatusCode::CREATED, "a workspace")
    .id()
}

/// Makes the user of `member` a `member` of `ws` (invited by `admin`, accepted).
async fn join(prism: &Prism, admin: &str, ws: &str, member: &str) {
    let me = call(prism, Method::GET, "/users/me", Some(member), None)
        .await
        .expect(StatusCode::OK, "who am I");
    let token = call(
        prism,
        Method::POST,
        &format!("/workspaces/{ws}/invitations"),
        Some(admin),
        Some(json!({"user_id": me.body["id"], "role": "member"})),
    )
    .await
    .expect(StatusCode::CREATED, "an invitation")
    .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        prism,
        Method::POST,
        "/invitations/accept",
        Some(member),
        Some(json!({"token": token})),
    )
    .await
    .expect(StatusCode::OK, "accepting");
}

fn byo(name: &str) -> Value {
    json!({
        "name": name,
        "driver": {"kind": "byo", "agent_address": "10.0.0.9:7001"},
        "platforms": ["sev_snp"],
        "capacity": 4,
        "labels": {"region": "eu-west"},
    })
}

fn local(name: &str) -> Value {
    json!({"name": name, "driver": {"kind": "local"}, "platforms": ["none"], "capacity": 2})
}

fn manager(name: &str) -> Value {
    json!({
        "name": name,
        "driver": {"kind": "cocos_manager", "address": "manager.example.org:7002", "ca_pem": CA},
        "platforms": ["sev_snp", "tdx"],
        "capacity": 8,
        "price": {"vcpu_hour_micros": 40000, "gib_hour_micros": 5000},
    })
}

/// A CVM no backend of these tests carries the labels for: the provisioner fails it.
fn cvm(platform: &str) -> Value {
    json!({
        "provider": "any",
        "vcpus": 2,
        "memory_mib": 2048,
        "platform": platform,
        "ttl_seconds": 3600,
        "labels": {"zone": "nowhere"},
    })
}

/// A body past the request size limit.
fn huge() -> Value {
    json!({"name": "x".repeat(3 * 1024 * 1024)})
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .or_else(|| list["items"].as_array())
        .expect("a list")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_of_a_workspace_and_of_the_platform() {
    let prism = Prism::start().await;
    let operator = prism.admin_token().to_owned();
    let alice = user(&prism, "alice@example.org").await;
    let bob = user(&prism, "bob@example.org").await;
    let olivia = user(&prism, "olivia@example.org").await;
    let ws = workspace(&prism, &alice, "Hospitals").await;
    let elsewhere = workspace(&prism, &olivia, "Elsewhere").await;
    join(&prism, &alice, &ws, &bob).await;

    // A workspace's own backends.
    let own = call(
        &prism,
        Method::POST,
        &format!("/{ws}/backends"),
        Some(&alice),
        Some(byo("byo-1")),
    )
    .await
    .expect(StatusCode::CREATED, "registering a byo backend");
    let own_id = own.id();
    assert_eq!(own.header("location"), format!("/{ws}/backends/{own_id}"));
    assert_eq!(own.header("etag"), format!("\"{}\"", own.body["version"]));
    assert_eq!(own.body["workspace_id"], ws.as_str());
    assert_eq!(
        own.body["driver"],
        json!({"kind": "byo", "agent_address": "10.0.0.9:7001"})
    );
    assert_eq!(own.body["status"], "active");
    assert_eq!(own.body["running"], 0);
    assert_eq!(own.body["insecure"], false);
    assert!(own.body.get("warning").is_none(), "{}", own.body);
    assert!(own.body["sequence"].is_u64());

    let emulated = call(
        &prism,
        Method::POST,
        &format!("/{ws}/backends"),
        Some(&alice),
        Some(local("dev")),
    )
    .await
    .expect(StatusCode::CREATED, "registering a local backend");
    let emulated_id = emulated.id();
    assert_eq!(emulated.body["insecure"], true);
    assert_eq!(emulated.body["warning"], "insecure: no hardware protection");

    // The platform's, by an operator only.
    let platform = call(
        &prism,
        Method::POST,
        "/backends",
        Some(&operator),
        Some(manager("eu-snp-1")),
    )
    .await
    .expect(StatusCode::CREATED, "registering a platform backend");
    let platform_id = platform.id();
    assert_eq!(platform.header("location"), format!("/backends/{platform_id}"));
    assert!(platform.body["workspace_id"].is_null());
    assert_eq!(platform.body["price"]["vcpu_hour_micros"], 40000);
    call(
        &prism,
        Method::POST,
        "/backends",
        Some(&alice),
        Some(manager("mine")),
    )
    .await
    .forbidden(
        "platform.operate",
        "a workspace admin registering a platform backend",
    );

    // Another workspace's backend is not this one's.
    let foreign = call(
        &prism,
        Method::POST,
        &format!("/{elsewhere}/backends"),
        Some(&olivia),
        Some(byo("theirs")),
    )
    .await
    .expect(StatusCode::CREATED, "another workspace's backend")
    .id();

    // The list: the workspace's own and the platform's, each with its load.
    let sequence = last_sequence(&prism).await;
    let listed = call(
        &prism,
        Method::GET,
        &format!("/{ws}/backends?min_sequence={sequence}"),
        Some(&bob),
        None,
    )
    .await
    .expect(StatusCode::OK, "a member lists the backends");
    let mut listed_ids = ids(&listed.body);
    listed_ids.sort();
    let mut wanted = vec![own_id.as_str(), emulated_id.as_str(), platform_id.as_str()];
    wanted.sort();
    assert_eq!(listed_ids, wanted);
    assert!(
        listed.body.as_array().unwrap().iter().all(|b| b["running"] == 0),
        "{}",
        listed.body
    );
    let got = call(
        &prism,
        Method::GET,
        &format!("/{ws}/backends/{platform_id}"),
        Some(&bob),
        None,
    )
    .await
    .expect(StatusCode::OK, "the platform's backend, seen from the workspace");
    assert_eq!(got.body["name"], "eu-snp-1");
    let all = call(
        &prism,
        Method::GET,
        &format!("/backends?min_sequence={sequence}"),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK, "an operator lists every backend");
    assert!(ids(&all.body).contains(&foreign.as_str()));
    call(&prism, Method::GET, "/backends", Some(&alice), None)
        .await
        .forbidden("platform.operate", "a workspace admin listing every backend");

    // Changes replace the settings; the kind of driver stays.
    let mut bigger = byo("byo-1");
    bigger["capacity"] = json!(16);
    let version = own.body["version"].as_u64().unwrap();
    let changed = call(
        &prism,
        Method::PUT,
        &format!("/{ws}/backends/{own_id}"),
        Some(&alice),
        Some(bigger.clone()),
    )
    .await
    .expect(StatusCode::OK, "a change");
    assert_eq!(changed.body["capacity"], 16);
    assert_eq!(changed.body["version"], version + 1);
    let stale = prism
        .request(Method::PUT, &format!("/{ws}/backends/{own_id}"), Some(&alice))
        .header("If-Match", format!("\"{version}\""))
        .json(&byo("byo-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let mut other_kind = manager("byo-1");
    other_kind["platforms"] = json!(["sev_snp"]);
    call(
        &prism,
        Method::PUT,
        &format!("/{ws}/backends/{own_id}"),
        Some(&alice),
        Some(other_kind),
    )
    .await
    .refused(StatusCode::CONFLICT, None, "another kind of driver");

    // The platform's backends change only through /backends; a workspace's not there.
    call(
        &prism,
        Method::PUT,
        &format!("/{ws}/backends/{platform_id}"),
        Some(&alice),
        Some(manager("x")),
    )
    .await
    .refused(
        StatusCode::NOT_FOUND,
        None,
        "a platform backend through a workspace",
    );
    call(
        &prism,
        Method::PUT,
        &format!("/{ws}/backends/{platform_id}"),
        Some(&operator),
        Some(manager("x")),
    )
    .await
    .refused(
        StatusCode::NOT_FOUND,
        None,
        "a platform backend through a workspace, as operator",
    );
    call(
        &prism,
        Method::DELETE,
        &format!("/{ws}/backends/{platform_id}"),
        Some(&alice),
        None,
    )
    .await
    .refused(
        StatusCode::NOT_FOUND,
        None,
        "removing a platform backend through a workspace",
    );
    call(
        &prism,
        Method::PUT,
        &format!("/backends/{own_id}"),
        Some(&operator),
        Some(bigger.clone()),
    )
    .await
    .refused(
        StatusCode::NOT_FOUND,
        None,
        "a workspace's backend as the platform's",
    );

    // Another workspace's backend, and someone else's workspace: not found.
    call(
        &prism,
        Method::GET,
        &format!("/{ws}/backends/{foreign}"),
        Some(&alice),
        None,
    )
    .await
    .refused(StatusCode::NOT_FOUND, None, "another workspace's backend");
    call(
        &prism,
        Method::PUT,
        &format!("/{ws}/backends/{foreign}"),
        Some(&alice),
        Some(byo("theirs")),
    )
    .await
    .refused(
        StatusCode::NOT_FOUND,
        None,
        "changing another workspace's backend",
    );
    call(
        &prism,
        Method::GET,
        &format!("/{ws}/backends"),
        Some(&olivia),
        None,
    )
    .await
    .refused(StatusCode::NOT_FOUND, None, "an outsider");
    call(
        &prism,
        Method::GET,
        &format!("/{elsewhere}/backends/{own_id}"),
        Some(&olivia),
        None,
    )
    .await
    .refused(
        StatusCode::NOT_FOUND,
        None,
        "an outsider through their own workspace",
    );

    // A member reads but does not manage.
    call(
        &prism,
        Method::POST,
        &format!("/{ws}/backends"),
        Some(&bob),
        Some(byo("bobs")),
    )
    .await
    .forbidden("backends.manage", "a member registering");
    call(
        &prism,
        Method::DELETE,
        &format!("/{ws}/backends/{own_id}"),
        Some(&bob),
        None,
    )
    .await
    .forbidden("backends.manage", "a member removing");
    call(&prism, Method::GET, &format!("/{ws}/backends"), None, None)
        .await
        .refused(StatusCode::UNAUTHORIZED, None, "no credential");

    // Refusals, each pointed at, and nothing stored.
    let path = format!("/{ws}/backends");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = manager("refused");
        change(&mut body);
        body
    };
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            with(&|b| b["colour"] = json!("red")),
            StatusCode::BAD_REQUEST,
            "/colour",
            "an unknown field",
        ),
        (
            with(&|b| b["driver"]["zone"] = json!("a")),
            StatusCode::BAD_REQUEST,
            "/driver",
            "an unknown driver field",
        ),
        (
            with(&|b| b["driver"] = json!({"kind": "vm"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/driver/kind",
            "an unknown driver",
        ),
        (
            with(&|b| b["platforms"] = json!(["sgx"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/platforms/0",
            "an unknown platform",
        ),
        (
            with(&|b| b["platforms"] = json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/platforms",
            "no platform",
        ),
        (
            with(&|b| b["platforms"] = json!(["tdx", "tdx"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/platforms/1",
            "a platform twice",
        ),
        (
            with(&|b| b["capacity"] = json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/capacity",
            "no capacity",
        ),
        (
            with(&|b| b["capacity"] = json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/capacity",
            "a negative capacity",
        ),
        (
            with(&|b| b["name"] = json!("two words")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/name",
            "a malformed name",
        ),
        (
            with(&|b| b["labels"] = json!({"bad key": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/labels/bad key",
            "a malformed label",
        ),
        (
            with(&|b| b["labels"] = json!({"k": "a value"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/labels/k",
            "a malformed label value",
        ),
        (
            with(&|b| b["driver"]["address"] = json!("no-port")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/driver/address",
            "an address without a port",
        ),
        (
            with(&|b| b["driver"]["address"] = json!("h:70000")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/driver/address",
            "a port out of range",
        ),
        (
            with(&|b| b["driver"]["ca_pem"] = json!("not pem")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/driver/ca_pem",
            "no PEM",
        ),
        (
            with(&|b| {
                b["driver"]["ca_pem"] = json!("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/driver/ca_pem",
            "a PEM block that is no certificate",
        ),
        (
            json!({"name": "dev", "driver": {"kind": "local"}, "platforms": ["sev_snp"], "capacity": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/platforms",
            "a local backend claiming a TEE",
        ),
    ];
    for (body, status, pointer, what) in cases {
        call(&prism, Method::POST, &path, Some(&alice), Some(body))
            .await
            .refused(status, Some(pointer), what);
    }
    call(&prism, Method::POST, &path, Some(&alice), Some(huge()))
        .await
        .refused(StatusCode::PAYLOAD_TOO_LARGE, None, "a 3 MiB body");
    call(
        &prism,
        Method::POST,
        "/backends",
        Some(&operator),
        Some(local("dev").tap(|b| b["platforms"] = json!(["tdx"]))),
    )
    .await
    .refused(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("/platforms"),
        "a local platform backend claiming a TEE",
    );
    let after = call(
        &prism,
        Method::GET,
        &format!("/backends?min_sequence={}", last_sequence(&prism).await),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK, "every backend after the refusals");
    assert_eq!(
        ids(&after.body).len(),
        4,
        "nothing refused was stored: {}",
        after.body
    );

    // Removal: out of the list, still readable, and only once.
    let removed = call(
        &prism,
        Method::DELETE,
        &format!("/{ws}/backends/{emulated_id}"),
        Some(&alice),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT, "removing");
    let sequence = removed.header("prism-sequence").to_owned();
    let listed = call(
        &prism,
        Method::GET,
        &format!("/{ws}/backends?min_sequence={sequence}"),
        Some(&alice),
        None,
    )
    .await
    .expect(StatusCode::OK, "the list after removing");
    assert!(!ids(&listed.body).contains(&emulated_id.as_str()));
    let gone = call(
        &prism,
        Method::GET,
        &format!("/{ws}/backends/{emulated_id}?min_sequence={sequence}"),
        Some(&alice),
        None,
    )
    .await
    .expect(StatusCode::OK, "a removed backend");
    assert_eq!(gone.body["status"], "removed");
    call(
        &prism,
        Method::DELETE,
        &format!("/{ws}/backends/{emulated_id}"),
        Some(&alice),
        None,
    )
    .await
    .refused(StatusCode::CONFLICT, None, "removing twice");

    // The platform's backend: changed, read and removed by an operator.
    let mut smaller = manager("eu-snp-1");
    smaller["capacity"] = json!(2);
    let changed = call(
        &prism,
        Method::PUT,
        &format!("/backends/{platform_id}"),
        Some(&operator),
        Some(smaller),
    )
    .await
    .expect(StatusCode::OK, "an operator's change");
    assert_eq!(changed.body["capacity"], 2);
    call(
        &prism,
        Method::GET,
        &format!("/backends/{platform_id}"),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK, "a platform backend");
    call(
        &prism,
        Method::DELETE,
        &format!("/backends/{platform_id}"),
        Some(&alice),
        None,
    )
    .await
    .forbidden(
        "platform.operate",
        "a workspace admin removing a platform backend",
    );
    call(
        &prism,
        Method::DELETE,
        &format!("/backends/{platform_id}"),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT, "an operator removes it");
    prism.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cvms_asked_for_read_destroyed_and_enrolled() {
    let prism = Prism::start().await;
    let alice = user(&prism, "alice@example.org").await;
    let bob = user(&prism, "bob@example.org").await;
    let olivia = user(&prism, "olivia@example.org").await;
    let ws = workspace(&prism, &alice, "Hospitals").await;
    let elsewhere = workspace(&prism, &olivia, "Elsewhere").await;
    join(&prism, &alice, &ws, &bob).await;
    let path = format!("/{ws}/cvms");

    // Asked for: `creating` when the answer is made (the provisioner takes it from there).
    let created = call(&prism, Method::POST, &path, Some(&alice), Some(cvm("sev_snp")))
        .await
        .expect(StatusCode::CREATED, "asking for a CVM");
    let id = created.id();
    assert_eq!(created.header("location"), format!("/{ws}/cvms/{id}"));
    assert_eq!(created.header("etag"), format!("\"{}\"", created.body["version"]));
    let body = &created.body;
    assert!(
        ["creating", "failed"].contains(&body["status"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(body["workspace_id"], ws.as_str());
    assert_eq!(body["provider"], "any");
    assert_eq!(
        (body["vcpus"].clone(), body["memory_mib"].clone()),
        (json!(2), json!(2048))
    );
    assert_eq!(body["platform"], "sev_snp");
    assert_eq!(body["labels"], json!({"zone": "nowhere"}));
    assert_eq!(body["insecure"], false);
    assert!(body.get("warning").is_none());
    assert!(body["backend"].is_null(), "no backend carries its labels: {body}");
    assert!(body["cost"]["hourly_micros"].is_null());
    assert_eq!(body["statistics"]["uptime_seconds"], 0);
    assert_eq!(body["statistics"]["messages_received"], 0);

    // Whole numbers may come with a zero fraction, as JSON Schema allows.
    let insecure = call(
        &prism,
        Method::POST,
        &path,
        Some(&alice),
        Some(cvm("none").tap(|b| b["vcpus"] = json!(2.0))),
    )
    .await
    .expect(
        StatusCode::CREATED,
        "asking for a CVM without hardware protection",
    );
    assert_eq!(insecure.body["insecure"], true);
    assert_eq!(insecure.body["warning"], "insecure: no hardware protection");
    let insecure_id = insecure.id();

    // Listed and read, by a member too.
    let sequence = insecure.body["sequence"].as_u64().unwrap();
    let listed = call(
        &prism,
        Method::GET,
        &format!("{path}?min_sequence={sequence}"),
        Some(&bob),
        None,
    )
    .await
    .expect(StatusCode::OK, "a member lists the CVMs");
    assert_eq!(ids(&listed.body), [id.as_str(), insecure_id.as_str()]);
    let first = call(&prism, Method::GET, &format!("{path}?limit=1"), Some(&bob), None)
        .await
        .expect(StatusCode::OK, "a page of one");
    assert_eq!(ids(&first.body), [id.as_str()]);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = call(
        &prism,
        Method::GET,
        &format!("{path}?limit=1&cursor={cursor}"),
        Some(&bob),
        None,
    )
    .await
    .expect(StatusCode::OK, "the next page");
    assert_eq!(ids(&second.body), [insecure_id.as_str()]);
    let nowhere = uuid::Uuid::now_v7();
    let none = call(
        &prism,
        Method::GET,
        &format!("{path}?backend_id={nowhere}"),
        Some(&bob),
        None,
    )
    .await
    .expect(StatusCode::OK, "CVMs of a backend that runs none");
    assert!(ids(&none.body).is_empty());
    call(
        &prism,
        Method::GET,
        &format!("{path}?status=sleeping"),
        Some(&bob),
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, Some("status"), "no such state");
    let got = call(&prism, Method::GET, &format!("{path}/{id}"), Some(&bob), None)
        .await
        .expect(StatusCode::OK, "a member reads a CVM");
    assert_eq!(got.header("etag"), format!("\"{}\"", got.body["version"]));
    for field in ["cost", "statistics", "requested_at", "expires_at", "requested_by"] {
        assert!(!got.body[field].is_null(), "{field} in {}", got.body);
    }

    // No backend of this workspace can make it: the provisioner says why.
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let now = call(&prism, Method::GET, &format!("{path}/{id}"), Some(&alice), None)
            .await
            .expect(StatusCode::OK, "the CVM");
        if now.body["status"] != "creating" || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if failed.body["status"] == "failed" {
        let failure = failed.body["failure"].as_str().unwrap_or_default();
        assert!(failure.starts_with("no backend can run"), "{}", failed.body);
    }

    // Destroyed: 202, now `destroying` (the provisioner finishes it).
    let destroyed = call(
        &prism,
        Method::DELETE,
        &format!("{path}/{id}"),
        Some(&alice),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED, "destroying");
    assert!(
        ["destroying", "destroyed"].contains(&destroyed.body["status"].as_str().unwrap()),
        "{}",
        destroyed.body
    );
    assert_eq!(destroyed.body["destroy_reason"], "requested");
    assert!(!destroyed.body["destroy_requested_at"].is_null());
    assert_eq!(destroyed.header("content-location"), format!("/{ws}/cvms/{id}"));

    // Refusals, each pointed at, and nothing stored.
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = cvm("tdx");
        change(&mut body);
        body
    };
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            with(&|b| b["colour"] = json!("red")),
            StatusCode::BAD_REQUEST,
            "/colour",
            "an unknown field",
        ),
        (
            with(&|b| b["provider"] = json!("vm")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/provider",
            "an unknown provider",
        ),
        (
            with(&|b| b["platform"] = json!("sgx")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/platform",
            "an unknown platform",
        ),
        (
            with(&|b| b["vcpus"] = json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/vcpus",
            "no vCPU",
        ),
        (
            with(&|b| b["vcpus"] = json!(257)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/vcpus",
            "too many vCPUs",
        ),
        (
            with(&|b| b["memory_mib"] = json!(128)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/memory_mib",
            "too little memory",
        ),
        (
            with(&|b| b["memory_mib"] = json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/memory_mib",
            "negative memory",
        ),
        (
            with(&|b| b["ttl_seconds"] = json!(10)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/ttl_seconds",
            "too short a life",
        ),
        (
            with(&|b| b["ttl_seconds"] = json!(31 * 86400)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/ttl_seconds",
            "too long a life",
        ),
        (
            with(&|b| b["labels"] = json!({"bad key": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/labels/bad key",
            "a malformed label",
        ),
        (
            with(&|b| b["labels"] = json!(["zone"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/labels",
            "labels that are no map",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("vcpus");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
            "no vCPUs",
        ),
        (
            with(&|b| b["provider"] = json!("local")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/platform",
            "the local provider with a TEE",
        ),
    ];
    for (body, status, pointer, what) in cases {
        call(&prism, Method::POST, &path, Some(&alice), Some(body))
            .await
            .refused(status, Some(pointer), what);
    }
    call(&prism, Method::POST, &path, Some(&alice), Some(huge()))
        .await
        .refused(StatusCode::PAYLOAD_TOO_LARGE, None, "a 3 MiB body");
    let after = call(
        &prism,
        Method::GET,
        &format!("{path}?min_sequence={}", last_sequence(&prism).await),
        Some(&alice),
        None,
    )
    .await
    .expect(StatusCode::OK, "the CVMs after the refusals");
    assert_eq!(
        ids(&after.body).len(),
        2,
        "nothing refused was stored: {}",
        after.body
    );

    // Who may: a member reads only; an outsider finds nothing, not even through their own workspace.
    call(&prism, Method::POST, &path, Some(&bob), Some(cvm("tdx")))
        .await
        .forbidden("cvms.create", "a member asking for a CVM");
    call(
        &prism,
        Method::DELETE,
        &format!("{path}/{insecure_id}"),
        Some(&bob),
        None,
    )
    .await
    .forbidden("cvms.destroy", "a member destroying");
    call(
        &prism,
        Method::POST,
        &format!("{path}/{insecure_id}/enrolment"),
        Some(&bob),
        None,
    )
    .await
    .forbidden("cvms.create", "a member enrolling");
    for (method, target) in [
        (Method::GET, format!("{path}/{insecure_id}")),
        (Method::DELETE, format!("{path}/{insecure_id}")),
        (Method::GET, path.clone()),
        (Method::POST, format!("{path}/{insecure_id}/enrolment")),
        (Method::GET, format!("/{elsewhere}/cvms/{insecure_id}")),
        (Method::DELETE, format!("/{elsewhere}/cvms/{insecure_id}")),
    ] {
        call(&prism, method.clone(), &target, Some(&olivia), None)
            .await
            .refused(
                StatusCode::NOT_FOUND,
                None,
                &format!("an outsider: {method} {target}"),
            );
    }
    call(&prism, Method::GET, &path, None, None).await.refused(
        StatusCode::UNAUTHORIZED,
        None,
        "no credential",
    );

    // Enrolment: only a started CVM's agent, with the certificate the provisioner issued it.
    call(
        &prism,
        Method::POST,
        &format!("{path}/{insecure_id}/enrolment"),
        Some(&alice),
        None,
    )
    .await
    .refused(StatusCode::CONFLICT, None, "a CVM not started");
    let operator = prism
        .platform()
        .app()
        .identity()
        .authenticate(Caller::anonymous(), prism.admin_token())
        .await
        .unwrap();
    let workspace_id = WorkspaceId(ws.parse().unwrap());
    let started = agent::started_cvm(&prism, workspace_id).await;
    let issued = agent::agent_certificate(&prism, &operator, workspace_id, started).await;
    let enrolled = call(
        &prism,
        Method::POST,
        &format!("{path}/{started}/enrolment"),
        Some(&alice),
        None,
    )
    .await
    .expect(StatusCode::CREATED, "enrolling a started CVM's agent");
    assert_eq!(enrolled.header("cache-control"), "no-store");
    assert_eq!(enrolled.body["cvm_id"], started.to_string());
    assert_eq!(enrolled.body["serial"], issued.serial.to_string());
    assert_eq!(enrolled.body["download_url"], prism.url("/certs/download"));
    let token = enrolled.body["token"].as_str().unwrap();
    let bundle = call(
        &prism,
        Method::POST,
        "/certs/download",
        None,
        Some(json!({"token": token})),
    )
    .await
    .expect(StatusCode::OK, "the machine fetches its certificate");
    assert_eq!(bundle.body["certificate"], issued.certificate.as_str());
    prism.stop().await;
}

async fn last_sequence(prism: &Prism) -> u64 {
    prism.platform().app().log().last_sequence().await.unwrap()
}

/// Changes a value in place and hands it back.
trait Tap: Sized {
    fn tap(self, change: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self
    }
}
