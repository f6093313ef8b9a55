//! Assets end to end, over HTTP against a real nats-server and PostgreSQL: two providers record their
//! algorithm and dataset (what the files are, never the files), one keeps a 1 MiB sample that comes back
//! byte for byte and cannot keep one past 10 MiB; a participant without the matching role, or with it
//! but not the asset's owner, links nothing; each provider links its own asset, which the manifest then
//! names; everyone consents; unlinking from the approved computation is a proposal the participants
//! adopt; an asset is archived only once nothing active links it. Someone of another workspace reads
//! nothing of it.

mod common;

use base64::Engine as _;
use common::agent::admin_workspace;
use common::parties::{Party, as_party, call, consent_all, party, sha3};
use common::{Prism, client_with, header, json, problem};
use prism_domain::asset::SAMPLE_MAX;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Registers an asset of `ws` as `party`: its id.
async fn register(prism: &Prism, ws: &str, party: &Party, body: Value) -> String {
    let created = as_party(
        prism,
        party,
        Method::POST,
        &format!("/{ws}/assets"),
        Some(body),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["owner"], party.id.as_str(), "{created:#}");
    created["id"].as_str().unwrap().to_owned()
}

fn dataset(content: &[u8], name: &str) -> Value {
    json!({"kind": "dataset", "mime_type": "text/csv", "sha3_256": sha3(content), "file_name": name,
           "description": "numbers to add up"})
}

fn algorithm(content: &[u8], name: &str) -> Value {
    json!({"kind": "algorithm", "algorithm_type": "python", "mime_type": "text/x-python",
           "sha3_256": sha3(content), "file_name": name})
}

/// `PUT …/sample` as `party` with `bytes` as `content_type`.
async fn put_sample(
    prism: &Prism,
    party: &Party,
    path: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    client_with(&party.token)
        .put(prism.url(&format!("{path}/sample")))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Deterministic bytes that do not compress to nothing.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// `PUT path` of a body of `len` bytes as `token`, over a plain connection: the status and
/// `Content-Type` of the answer. Announced (`Content-Length`), the body is never sent, so an answer
/// proves the server refused it before reading any of it; chunked, it is sent while the answer is
/// read (a server that refuses part way stops reading, so a client that only reads once it has
/// written everything could see the connection closed first).
async fn raw_put(prism: &Prism, path: &str, token: &str, len: usize, chunked: bool) -> (u16, String) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let url = prism.url(path);
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let (read, mut write) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {len}")
    };
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\n{framing}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        if !chunked {
            // Nothing more: the server must not wait for it. Kept open until the answer is in.
            return std::future::pending().await;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            write.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            write.write_all(&chunk[..n]).await?;
            write.write_all(b"\r\n").await?;
            sent += n;
        }
        write.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(())
    });
    let mut lines = tokio::io::BufReader::new(read).lines();
    let status_line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("an answer without the body")
        .unwrap()
        .unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut content_type = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-type")
        {
            content_type = value.trim().to_owned();
        }
    }
    // Whether the rest was sent does not matter: the answer is in.
    writer.abort();
    (status, content_type)
}

async fn manifest(prism: &Prism, base: &str) -> Value {
    json(
        call(
            prism,
            prism.admin(),
            Method::GET,
            &format!("{base}/manifest"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_record_assets_keep_samples_and_link_them_to_a_computation() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Assets").await;
    let alice = party(&prism, ws, "alice", &rcgen::PKCS_ED25519).await;
    let bob = party(&prism, ws, "bob", &rcgen::PKCS_ED25519).await;
    let carol = party(&prism, ws, "carol", &rcgen::PKCS_ED25519).await;
    let erin = party(&prism, ws, "erin", &rcgen::PKCS_ED25519).await;
    let ws = ws.to_string();

    // Alice provides the algorithm, bob and erin datasets, carol receives the result; nothing declared.
    let created = call(
        &prism,
        prism.admin(),
        Method::POST,
        &format!("/{ws}/computations"),
        Some(json!({
            "name": "Sum",
            "participants": [
                {"id": alice.id, "roles": ["owner", "algorithm_provider"], "public_key": alice.spki_base64},
                {"id": bob.id, "roles": ["dataset_provider"], "public_key": bob.spki_base64},
                {"id": erin.id, "roles": ["dataset_provider"], "public_key": erin.spki_base64},
                {"id": carol.id, "roles": ["result_consumer"], "public_key": carol.spki_base64}
            ],
        })),
    )
    .await;
    let computation = json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/{ws}/computations/{computation}");

    // What the files are, never the files. A file name that is a path is refused.
    let code = b"print(sum(int(x) for x in open('numbers.csv').read().split(',')))";
    let data = b"1,2,3,4";
    let algo = register(&prism, &ws, &alice, algorithm(code, "sum.py")).await;
    let numbers = register(&prism, &ws, &bob, dataset(data, "numbers.csv")).await;
    let refused = as_party(
        &prism,
        &bob,
        Method::POST,
        &format!("/{ws}/assets"),
        Some(dataset(data, "../numbers.csv")),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["pointer"], "/file_name", "{refused:#}");
    let listed = as_party(
        &prism,
        &carol,
        Method::GET,
        &format!("/{ws}/assets?kind=dataset"),
        None,
        StatusCode::OK,
    )
    .await;
    let listed: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [numbers.as_str()]);

    // Bob keeps a 1 MiB sample; it comes back byte for byte, with its type and digest.
    let numbers_path = format!("/{ws}/assets/{numbers}");
    let sample = noise(1024 * 1024);
    let r = put_sample(&prism, &bob, &numbers_path, "text/csv", sample.clone()).await;
    let attached = json(r, StatusCode::OK).await;
    let digest = hex::encode(Sha256::digest(&sample));
    assert_eq!(attached["sample"]["sha256"], digest.as_str(), "{attached:#}");
    assert_eq!(attached["sample"]["size"], 1024 * 1024);
    let r = client_with(&carol.token)
        .get(prism.url(&format!("{numbers_path}/sample")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/csv");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert!(header(&r, "content-disposition").starts_with("attachment"));
    let repr = header(&r, "repr-digest");
    assert_eq!(
        repr,
        format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&sample))
        )
    );
    assert!(r.bytes().await.unwrap() == sample, "the sample came back altered");

    // Past 10 MiB it is refused: announced, before any of it is read; chunked, as soon as it passes the
    // limit. The sample kept stays.
    let sample_path = format!("{numbers_path}/sample");
    for chunked in [false, true] {
        let (status, content_type) =
            raw_put(&prism, &sample_path, &bob.token, SAMPLE_MAX as usize + 1, chunked).await;
        assert_eq!(status, 413, "chunked: {chunked}");
        assert_eq!(content_type, "application/problem+json");
    }
    let kept = as_party(&prism, &carol, Method::GET, &numbers_path, None, StatusCode::OK).await;
    assert_eq!(kept["sample"]["sha256"], digest.as_str());

    // Only its owner attaches a sample or changes the asset.
    let r = put_sample(&prism, &alice, &numbers_path, "text/csv", b"9,9".to_vec()).await;
    let refused = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("only its owner"),
        "{refused:#}"
    );
    as_party(
        &prism,
        &alice,
        Method::PATCH,
        &numbers_path,
        Some(json!({"description": "mine now"})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let changed = as_party(
        &prism,
        &bob,
        Method::PATCH,
        &numbers_path,
        Some(json!({"description": "four numbers"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["description"], "four numbers");

    // Someone of another workspace reads nothing of it, through this workspace or its own.
    let dave = common::client_with(&{
        let r = prism
            .request(Method::POST, "/users", None)
            .json(&json!({"email": "dave@example.org", "display_name": "Dave", "password": "dave's long password"}))
            .send()
            .await
            .unwrap();
        json(r, StatusCode::CREATED).await;
        json(
            prism.sign_in("dave@example.org", "dave's long password").await,
            StatusCode::OK,
        )
        .await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let own = json(
        call(
            &prism,
            &dave,
            Method::POST,
            "/workspaces",
            Some(json!({"name": "Dave's"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("{numbers_path}/sample"),
        format!("/{own}/assets/{numbers}/sample"),
        numbers_path.clone(),
    ] {
        problem(
            call(&prism, &dave, Method::GET, &path, None).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }

    // The wrong role links nothing: carol has no role that provides assets; bob provides datasets, not
    // the algorithm; erin provides datasets, but bob's is bob's to provide.
    let carols = register(&prism, &ws, &carol, dataset(b"5,6", "carol.csv")).await;
    let link = format!("{base}/assets");
    let refused = as_party(
        &prism,
        &carol,
        Method::POST,
        &link,
        Some(json!({"asset_id": carols})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("`computation.assets.link`"),
        "{refused:#}"
    );
    let bobs_algorithm = register(&prism, &ws, &bob, algorithm(b"print(0)", "zero.py")).await;
    let refused = as_party(
        &prism,
        &bob,
        Method::POST,
        &link,
        Some(json!({"asset_id": bobs_algorithm})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("`algorithm_provider` role"),
        "{refused:#}"
    );
    let refused = as_party(
        &prism,
        &erin,
        Method::POST,
        &link,
        Some(json!({"asset_id": numbers})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("only its provider"),
        "{refused:#}"
    );
    let untouched = manifest(&prism, &base).await;
    assert_eq!(untouched["manifest"]["algorithm"], Value::Null);
    assert_eq!(untouched["manifest"]["datasets"], json!([]));

    // Each provider links its own: the computation and its manifest name them.
    let linked = as_party(
        &prism,
        &alice,
        Method::POST,
        &link,
        Some(json!({"asset_id": algo})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(linked["algorithm"]["asset_id"], algo.as_str(), "{linked:#}");
    let linked = as_party(
        &prism,
        &bob,
        Method::POST,
        &link,
        Some(json!({"asset_id": numbers})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(linked["datasets"][0]["asset_id"], numbers.as_str(), "{linked:#}");
    assert_eq!(linked["datasets"][0]["provider"], bob.id.as_str());
    let named = manifest(&prism, &base).await;
    assert_eq!(
        named["manifest"]["algorithm"],
        json!({"file_name": "sum.py", "provider": alice.id, "sha3_256": sha3(code)})
    );
    assert_eq!(
        named["manifest"]["datasets"],
        json!([{"file_name": "numbers.csv", "provider": bob.id, "sha3_256": sha3(data)}])
    );
    let shown = as_party(&prism, &bob, Method::GET, &numbers_path, None, StatusCode::OK).await;
    assert_eq!(shown["linked_to"], json!([computation]));

    // Twice is refused; so is another dataset of the same file name.
    as_party(
        &prism,
        &bob,
        Method::POST,
        &link,
        Some(json!({"asset_id": numbers})),
        StatusCode::CONFLICT,
    )
    .await;
    let same_name = register(&prism, &ws, &erin, dataset(b"7,8", "numbers.csv")).await;
    let clash = as_party(
        &prism,
        &erin,
        Method::POST,
        &link,
        Some(json!({"asset_id": same_name})),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        clash["detail"].as_str().unwrap().contains("`numbers.csv`"),
        "{clash:#}"
    );
    // Linked to an active computation, it is not archived.
    let still = as_party(
        &prism,
        &bob,
        Method::DELETE,
        &numbers_path,
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        still["detail"].as_str().unwrap().contains(&computation),
        "{still:#}"
    );

    // Everyone consents: the computation is approved, and unlinking is now the participants' to decide.
    consent_all(&prism, &base, &[&alice, &bob, &erin, &carol]).await;
    let consented = manifest(&prism, &base).await;
    assert_eq!(consented["consent"]["missing"], json!([]));
    // Only its provider unlinks it.
    as_party(
        &prism,
        &alice,
        Method::DELETE,
        &format!("{link}/{numbers}"),
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let r = call(
        &prism,
        &client_with(&bob.token),
        Method::DELETE,
        &format!("{link}/{numbers}"),
        None,
    )
    .await;
    let location = header(&r, "location");
    json(r, StatusCode::ACCEPTED).await;
    assert_eq!(location, format!("{base}/proposals/1"));
    let proposal = as_party(&prism, &bob, Method::GET, &location, None, StatusCode::OK).await;
    assert_eq!(proposal["change"], json!({"unlink_asset": {"asset": numbers}}));
    assert_eq!(
        manifest(&prism, &base).await["manifest_id"],
        consented["manifest_id"],
        "nothing is unlinked before the participants agree"
    );
    for approver in [&alice, &erin] {
        as_party(
            &prism,
            approver,
            Method::POST,
            &format!("{location}/approve"),
            None,
            StatusCode::OK,
        )
        .await;
    }
    let adopted = as_party(
        &prism,
        &carol,
        Method::POST,
        &format!("{location}/approve"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(adopted["status"], "adopted", "{adopted:#}");
    let after = manifest(&prism, &base).await;
    assert_eq!(after["manifest"]["datasets"], json!([]));
    assert_eq!(after["manifest"]["algorithm"]["file_name"], "sum.py");
    // Unlinking again is refused: it is linked no more.
    as_party(
        &prism,
        &bob,
        Method::DELETE,
        &format!("{link}/{numbers}"),
        None,
        StatusCode::CONFLICT,
    )
    .await;

    // Now it can be archived, by its owner only; its sample goes with it.
    as_party(
        &prism,
        &alice,
        Method::DELETE,
        &numbers_path,
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let archived = as_party(&prism, &bob, Method::DELETE, &numbers_path, None, StatusCode::OK).await;
    assert_eq!(archived["status"], "archived", "{archived:#}");
    assert_eq!(archived["sample"], Value::Null);
    problem(
        call(
            &prism,
            &client_with(&carol.token),
            Method::GET,
            &format!("{numbers_path}/sample"),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Archived, it links nowhere and changes no more.
    as_party(
        &prism,
        &bob,
        Method::POST,
        &link,
        Some(json!({"asset_id": numbers})),
        StatusCode::CONFLICT,
    )
    .await;
    let r = put_sample(&prism, &bob, &numbers_path, "text/csv", b"1".to_vec()).await;
    problem(r, StatusCode::CONFLICT).await;
    prism.stop().await;
}
