//! The audit trail's live feed, `GET /{ws}/events`, against real NATS JetStream and PostgreSQL:
//! a consumer that disconnects — even between two events of one commit — and resumes with
//! `Last-Event-ID` gets every event of its workspace exactly once, in the log's order; it sees
//! no other workspace's; only callers with `audit.read` get it. An independent SSE client parses
//! each event with the CNCF CloudEvents SDK (`tests/audit/read_feed.py`).

mod common;

use std::time::Duration;

use common::agent::admin_workspace;
use common::parties::party;
use common::{Prism, client_with, json, problem};
use prism_domain::WorkspaceId;
use prism_domain::testing::keys::ED25519_BASE64_DER;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One Server-Sent Event: its `event` (absent: a plain message), `id` and `data`.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

/// An open feed, read one event at a time.
struct Feed {
    response: reqwest::Response,
    buffer: String,
}

impl Feed {
    async fn open(prism: &Prism, client: &reqwest::Client, path: &str, last_event_id: Option<&str>) -> Self {
        let mut request = client.get(prism.url(path));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(common::header(&response, "content-type"), "text/event-stream");
        Feed {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ended; fails after 30 s.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse {
                    event: None,
                    id: None,
                    data: String::new(),
                };
                let mut is_event = false;
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "event" => (event.event, is_event) = (Some(value), true),
                        "id" => (event.id, is_event) = (Some(value), true),
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(&value);
                            is_event = true;
                        }
                        _ => {}
                    }
                }
                if is_event {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event that is a CloudEvent, with its id and the record.
    async fn next_record(&mut self) -> (String, Value) {
        let event = self.next().await.expect("the feed goes on");
        assert_eq!(event.event, None, "{event:?}");
        (event.id.unwrap(), serde_json::from_str(&event.data).unwrap())
    }
}

/// The admin defines a computation in `ws`: its id.
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

/// A command recorded as two events in one commit: an import of `computation`, whose change
/// threshold was set (created, then its threshold).
async fn import_copy(prism: &Prism, ws: WorkspaceId, computation: &str) {
    let base = format!("/{ws}/computations/{computation}");
    let r = prism
        .admin()
        .put(prism.url(&format!("{base}/change-threshold")))
        .json(&json!({"threshold": 1}))
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await;
    let exported = prism
        .admin()
        .get(prism.url(&format!("{base}/export")))
        .send()
        .await
        .unwrap();
    let mut document = json(exported, StatusCode::OK).await;
    document.as_object_mut().unwrap().remove("origin");
    let r = prism
        .admin()
        .post(prism.url(&format!("/{ws}/computations/import")))
        .json(&document)
        .send()
        .await
        .unwrap();
    json(r, StatusCode::CREATED).await;
}

/// `<sequence>.<index>` as numbers, to compare positions.
fn position(id: &str) -> (u64, u32) {
    let (sequence, index) = id.split_once('.').expect("an event id is <sequence>.<index>");
    (sequence.parse().unwrap(), index.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_reconnects_misses_nothing_and_sees_nothing_twice() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Audited").await;
    let (_, other) = admin_workspace(&prism, "Elsewhere").await;
    let from_start = format!("/{ws}/events?since=2000-01-01T00:00:00Z");

    // The first connection reads the workspace's history, then what is recorded while it listens.
    let first = define(&prism, ws, "First").await;
    let mut feed = Feed::open(&prism, prism.admin(), &from_start, None).await;
    let mut seen = Vec::new();
    loop {
        let (id, record) = feed.next_record().await;
        let created = record["type"] == "io.prism.computation.created.v1";
        seen.push((id, record));
        if created {
            break;
        }
    }
    import_copy(&prism, ws, &first).await;
    define(&prism, other, "Not ours").await;
    // Cut between the two events of the import's commit.
    loop {
        let (id, record) = feed.next_record().await;
        let ty = record["type"].as_str().unwrap().to_owned();
        seen.push((id, record));
        if ty == "io.prism.computation.created.v1" {
            break;
        }
    }
    let cut = seen.last().unwrap().0.clone();
    assert_eq!(position(&cut).1, 0, "the import's first event: {cut}");
    drop(feed);

    // While no one listens: more of this workspace's events, and another's.
    define(&prism, ws, "Second").await;
    define(&prism, other, "Not ours either").await;
    define(&prism, ws, "Third").await;

    // Resumed after the last event received: the rest of the import's commit first.
    let mut resumed = Feed::open(&prism, prism.admin(), &format!("/{ws}/events"), Some(&cut)).await;
    let (id, record) = resumed.next_record().await;
    assert_eq!(position(&id), (position(&cut).0, 1), "{record:#}");
    assert_eq!(
        record["type"], "io.prism.computation.change_threshold_set.v1",
        "{record:#}"
    );
    seen.push((id, record));
    let mut names = Vec::new();
    while names.len() < 2 {
        let (id, record) = resumed.next_record().await;
        if record["type"] == "io.prism.computation.created.v1" {
            names.push(record["data"]["definition"]["name"].as_str().unwrap().to_owned());
        }
        seen.push((id, record));
    }
    assert_eq!(names, ["Second", "Third"]);
    drop(resumed);

    // What the two connections saw is exactly the workspace's log, read in one go to its end.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut whole = Feed::open(&prism, prism.admin(), &format!("{from_start}&until={now}"), None).await;
    let mut reference = Vec::new();
    while let Some(event) = whole.next().await {
        reference.push((
            event.id.unwrap(),
            serde_json::from_str::<Value>(&event.data).unwrap(),
        ));
    }
    let ids = |events: &[(String, Value)]| events.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&seen), ids(&reference));
    assert_eq!(seen, reference);
    // In the log's order, each once, all of this workspace, each a verified record of the log.
    let positions: Vec<(u64, u32)> = seen.iter().map(|(id, _)| position(id)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    for (_, record) in &seen {
        assert_eq!(record["workspace"], ws.to_string(), "{record:#}");
        assert_eq!(record["specversion"], "1.0");
        assert_eq!(record["hash"].as_str().unwrap().len(), 64);
    }

    // Filtered by type and aggregate: only those.
    let computation_created = format!("{from_start}&until={now}&type=io.prism.computation.created.v1");
    let mut filtered = Feed::open(&prism, prism.admin(), &computation_created, None).await;
    let mut created = 0;
    while let Some(event) = filtered.next().await {
        let record: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(record["type"], "io.prism.computation.created.v1");
        created += 1;
    }
    assert_eq!(created, 4, "First, its import, Second and Third");
    let mut one = Feed::open(
        &prism,
        prism.admin(),
        &format!("{from_start}&until={now}&aggregate_type=computation&aggregate_id={first}"),
        None,
    )
    .await;
    while let Some(event) = one.next().await {
        let record: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(record["aggregateid"], first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_callers_with_audit_read_get_the_feed_and_bad_positions_are_refused() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Audited").await;
    let member = party(&prism, ws, "mallory", &rcgen::PKCS_ED25519).await;
    let path = format!("/{ws}/events?until=2000-01-01T00:00:00Z");
    let r = client_with(&member.token)
        .get(prism.url(&path))
        .send()
        .await
        .unwrap();
    let refused = problem(r, StatusCode::FORBIDDEN).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("audit.read"),
        "{refused:#}"
    );
    let r = reqwest::Client::new().get(prism.url(&path)).send().await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    // A workspace one has no part in is not found, as if it did not exist; its own admin (who
    // created it) reads its feed.
    let outsider = party(&prism, ws, "outsider", &rcgen::PKCS_ED25519).await;
    let r = client_with(&outsider.token)
        .post(prism.url("/workspaces"))
        .json(&json!({"name": "Outsider's"}))
        .send()
        .await
        .unwrap();
    let elsewhere = json(r, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/{elsewhere}/events?until=2000-01-01T00:00:00Z");
    let r = client_with(&member.token)
        .get(prism.url(&path))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    let r = client_with(&outsider.token)
        .get(prism.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    for (query, header, pointer) in [
        ("after=12.x", None, "after"),
        ("after=1.2.3", None, "after"),
        ("", Some("-4"), "Last-Event-ID"),
        ("type=io.prism.run", None, "type"),
        ("aggregate_type=Run", None, "aggregate_type"),
        ("since=yesterday", None, "since"),
        ("until=2020-13-01T00:00:00Z", None, "until"),
    ] {
        let mut request = prism.admin().get(prism.url(&format!("/{ws}/events?{query}")));
        if let Some(header) = header {
            request = request.header("Last-Event-ID", header);
        }
        let refused = problem(request.send().await.unwrap(), StatusCode::BAD_REQUEST).await;
        assert_eq!(
            refused["errors"][0]["pointer"], pointer,
            "{query} {header:?}: {refused:#}"
        );
    }
}

/// An independent SSE client (Python's `httpx-sse`) reads the feed and parses every event with
/// the CNCF CloudEvents SDK, which checks it against the CloudEvents 1.0 JSON format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_client_reads_each_event_as_a_cloudevent() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Audited").await;
    define(&prism, ws, "Read by another client").await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("audit/read_feed.py");
    let url = prism.url(&format!("/{ws}/events?since=2000-01-01T00:00:00Z&until={now}"));
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&url)
        .env("PRISM_TOKEN", prism.admin_token())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One line per event: its SSE id, CloudEvents type and source, as the SDK read them.
    let source = format!("/workspaces/{ws}");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|line| line.split(' ').collect()).collect();
    let types: Vec<&str> = lines.iter().map(|line| line[1]).collect();
    assert!(types.contains(&"io.prism.workspace.created.v1"), "{stdout}");
    assert!(types.contains(&"io.prism.computation.created.v1"), "{stdout}");
    assert!(lines.iter().all(|line| line[2] == source), "{stdout}");
}
