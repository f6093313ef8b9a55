//! The platform end to end, through HTTP, against a real nats-server and PostgreSQL per test.

mod common;

use std::time::{Duration, Instant};

use common::{Prism, header, problem};
use prism_domain::testing::keys::ED25519 as KEY;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const HASH: &str = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

impl Prism {
    async fn post(&self, path: &str, body: Value) -> Response {
        self.admin()
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Response {
        self.admin().get(self.url(path)).send().await.unwrap()
    }

    async fn workspace(&self) -> String {
        let r = self.post("/workspaces", json!({"name": "Hospitals"})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn computation() -> Value {
    json!({
        "name": "Rare disease study",
        "description": "phase 1",
        "participants": [
            {"id": "alice@example.org", "roles": ["owner", "algorithm_provider"], "public_key": KEY},
            {"id": "bob@example.org", "roles": ["dataset_provider"], "public_key": KEY},
            {"id": "carol@example.org", "roles": ["result_consumer"], "public_key": KEY},
            {"id": "dave@example.org", "roles": ["viewer"]}
        ],
        "algorithm": {"provider": "alice@example.org", "hash": HASH},
        "datasets": [{"provider": "bob@example.org", "hash": HASH, "name": "cohort A"}]
    })
}

#[tokio::test]
async fn a_workspace_and_a_computation_are_created_and_read_back() {
    let prism = Prism::start().await;
    let r = prism
        .post("/workspaces", json!({"name": "Hospitals", "description": "EU"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "etag"), "\"1\"");
    let sequence: u64 = header(&r, "prism-sequence").parse().unwrap();
    let location = header(&r, "location");
    let ws: Value = r.json().await.unwrap();
    assert_eq!(ws["name"], "Hospitals");
    let id = ws["id"].as_str().unwrap().to_owned();
    assert!(location.ends_with(&id));

    let r = prism
        .get(&format!("/workspaces/{id}?min_sequence={sequence}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["description"], "EU");

    let r = prism.post(&format!("/{id}/computations"), computation()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let sequence = header(&r, "prism-sequence");
    let created: Value = r.json().await.unwrap();
    let cid = created["id"].as_str().unwrap().to_owned();

    let r = prism
        .get(&format!("/{id}/computations/{cid}?min_sequence={sequence}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "etag"), "\"1\"");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["name"], "Rare disease study");
    assert_eq!(read["participants"].as_array().unwrap().len(), 4);
    assert_eq!(
        read["participants"][0]["roles"],
        json!(["owner", "algorithm_provider"])
    );
    assert_eq!(read["participants"][0]["public_key"], KEY);
    assert_eq!(read["datasets"][0]["name"], "cohort A");
    assert_eq!(read["algorithm"]["hash"], HASH);

    let r = prism
        .admin()
        .patch(prism.url(&format!("/{id}/computations/{cid}")))
        .header("if-match", "\"1\"")
        .json(&json!({"description": "phase 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "etag"), "\"2\"");
    assert_eq!(r.json::<Value>().await.unwrap()["description"], "phase 2");
    prism.stop().await;
}

#[tokio::test]
async fn lists_are_paged_with_a_cursor() {
    let prism = Prism::start().await;
    let ws = prism.workspace().await;
    let mut created = Vec::new();
    let mut last = String::new();
    for i in 0..5 {
        let mut body = computation();
        body["name"] = json!(format!("c{i}"));
        let r = prism.post(&format!("/{ws}/computations"), body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        last = header(&r, "prism-sequence");
        created.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut path = format!("/{ws}/computations?limit=2&min_sequence={last}");
    loop {
        let page: Value = prism.get(&path).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/{ws}/computations?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created);
    problem(
        prism
            .get(&format!("/{ws}/computations?cursor=not-a-cursor"))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        prism.get(&format!("/{ws}/computations?limit=0")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    prism.stop().await;
}

/// A read-your-writes wait for a sequence the log has not reached can never succeed: it is refused at
/// once, not after the wait and as unavailable.
#[tokio::test]
async fn a_wait_for_a_sequence_beyond_the_log_is_refused_at_once() {
    let prism = Prism::start().await;
    let ws = prism.workspace().await;
    for path in [
        format!("/workspaces/{ws}?min_sequence=1000000"),
        format!("/{ws}/computations?min_sequence=1000000"),
    ] {
        let started = Instant::now();
        let body = problem(prism.get(&path).await, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("beyond the end"),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let r = prism
        .admin()
        .get(prism.url(&format!("/workspaces/{ws}")))
        .header("prism-min-sequence", "1000000")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    prism.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_precise_problem_and_stores_nothing() {
    let prism = Prism::start().await;
    let ws = prism.workspace().await;
    let path = format!("/{ws}/computations");

    let r = prism
        .admin()
        .post(prism.url(&path))
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;

    let mut unknown = computation();
    unknown["colour"] = json!("blue");
    let body = problem(prism.post(&path, unknown).await, StatusCode::BAD_REQUEST).await;
    assert!(body["detail"].as_str().unwrap().contains("colour"), "{body}");

    let mut bad_key = computation();
    bad_key["participants"][1]["public_key"] = json!("not a key");
    let body = problem(prism.post(&path, bad_key).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body.to_string().contains("public key"), "{body}");

    let mut bad_hash = computation();
    bad_hash["algorithm"]["hash"] = json!("abc");
    problem(
        prism.post(&path, bad_hash).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let mut no_owner = computation();
    no_owner["participants"][0]["roles"] = json!(["algorithm_provider"]);
    let body = problem(
        prism.post(&path, no_owner).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body.to_string().contains("owner"), "{body}");

    let r = prism
        .admin()
        .post(prism.url(&path))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // A NUL could never be projected, and an event can never leave the log: refused up front.
    let mut nul = computation();
    nul["name"] = json!("bad\u{0}name");
    let body = problem(prism.post(&path, nul).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body.to_string().contains("control character"), "{body}");

    let mut huge = computation();
    huge["description"] = json!("x".repeat(600 * 1024));
    problem(prism.post(&path, huge).await, StatusCode::PAYLOAD_TOO_LARGE).await;

    let unknown_ws = uuid::Uuid::now_v7();
    problem(
        prism
            .post(&format!("/{unknown_ws}/computations"), computation())
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        prism.get(&format!("/{ws}/computations/{unknown_ws}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(prism.get("/workspaces/not-a-uuid").await, StatusCode::BAD_REQUEST).await;
    problem(prism.get("/no/such/route/here").await, StatusCode::NOT_FOUND).await;

    // Nothing of the above reached the log or the read model.
    let page: Value = prism.get(&path).await.json().await.unwrap();
    assert_eq!(page["items"], json!([]));
    prism.stop().await;
}

#[tokio::test]
async fn conflicts_and_stale_versions_are_refused() {
    let prism = Prism::start().await;
    let ws = prism.workspace().await;
    let r = prism.post(&format!("/{ws}/computations"), computation()).await;
    let cid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("/{ws}/computations/{cid}");

    let stale = prism
        .admin()
        .patch(prism.url(&one))
        .header("if-match", "\"7\"")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let garbled = prism
        .admin()
        .patch(prism.url(&one))
        .header("if-match", "seven")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    problem(garbled, StatusCode::BAD_REQUEST).await;

    let r = prism.admin().delete(prism.url(&one)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let again = prism.admin().delete(prism.url(&one)).send().await.unwrap();
    problem(again, StatusCode::CONFLICT).await;
    let change = prism
        .admin()
        .patch(prism.url(&one))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    problem(change, StatusCode::CONFLICT).await;

    let r = prism.post(&format!("/workspaces/{ws}/archive"), json!({})).await;
    assert!(r.status().is_success(), "{}", r.status());
    problem(
        prism.post(&format!("/{ws}/computations"), computation()).await,
        StatusCode::CONFLICT,
    )
    .await;
    prism.stop().await;
}

#[tokio::test]
async fn a_retried_create_returns_the_first_result() {
    let prism = Prism::start().await;
    let ws = prism.workspace().await;
    let path = format!("/{ws}/computations");
    let send = |body: Value| {
        prism
            .admin()
            .post(prism.url(&path))
            .header("idempotency-key", "create-1")
            .json(&body)
            .send()
    };

    let first = send(computation()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_seq = header(&first, "prism-sequence");
    let first: Value = first.json().await.unwrap();
    let retry = send(computation()).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(header(&retry, "prism-sequence"), first_seq);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);

    let mut other = computation();
    other["name"] = json!("another");
    problem(send(other).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;

    let page: Value = prism
        .get(&format!("{path}?min_sequence={first_seq}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "the retry created a second computation"
    );
    prism.stop().await;
}

#[tokio::test]
async fn archiving_a_workspace_archives_its_computations() {
    let prism = Prism::start().await;
    let ws = prism.workspace().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = prism.post(&format!("/{ws}/computations"), computation()).await;
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let r = prism.post(&format!("/workspaces/{ws}/archive"), json!({})).await;
    assert!(r.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in ids {
        loop {
            let c: Value = prism
                .get(&format!("/{ws}/computations/{id}"))
                .await
                .json()
                .await
                .unwrap();
            if c["status"] == "archived" {
                break;
            }
            assert!(Instant::now() < deadline, "computation {id} was not archived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    prism.stop().await;
}

#[tokio::test]
async fn health_docs_and_openapi_are_served() {
    let prism = Prism::start().await;
    let health: Value = prism.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let spec: Value = prism.get("/openapi.json").await.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    assert!(spec["paths"]["/{workspace}/computations"]["post"].is_object());
    assert_eq!(prism.get("/docs/").await.status(), StatusCode::OK);
    prism.stop().await;
}

#[tokio::test]
async fn commands_answer_503_while_nats_is_down_and_work_again_after() {
    let mut prism = Prism::start().await;
    let ws = prism.workspace().await;
    prism.nats().stop().await.unwrap();

    let started = Instant::now();
    let r = prism.post(&format!("/{ws}/computations"), computation()).await;
    assert!(started.elapsed() < Duration::from_secs(15), "the command hung");
    assert!(r.headers().contains_key("retry-after"));
    problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    let r = prism.get("/health").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    prism.nats().restart().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let sequence = loop {
        let r = prism.post(&format!("/{ws}/computations"), computation()).await;
        // 201, not 202: the projections resume as soon as NATS is back (they restart their consumers on
        // reconnection instead of waiting for missed heartbeats), well within the command's wait.
        if r.status() != StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(
                r.status(),
                StatusCode::CREATED,
                "the read model did not resume promptly"
            );
            break header(&r, "prism-sequence");
        }
        assert!(
            Instant::now() < deadline,
            "commands did not recover after NATS came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The projections resume too: the stored computation becomes readable.
    loop {
        let r = prism
            .get(&format!("/{ws}/computations?min_sequence={sequence}"))
            .await;
        if r.status() == StatusCode::OK {
            let page: Value = r.json().await.unwrap();
            assert_eq!(
                page["items"].as_array().unwrap().len(),
                1,
                "exactly the acknowledged computation"
            );
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "projections did not recover after NATS came back"
        );
    }
    // And the workers: archiving the workspace still archives its computation.
    let r = prism.post(&format!("/workspaces/{ws}/archive"), json!({})).await;
    assert!(r.status().is_success(), "{}", r.status());
    loop {
        let page: Value = prism
            .get(&format!("/{ws}/computations"))
            .await
            .json()
            .await
            .unwrap();
        if page["items"][0]["status"] == "archived" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the archiver did not resume after NATS came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    prism.stop().await;
}
