//! A computation as a document, over HTTP against a real nats-server and PostgreSQL: exported with
//! its participants, roles, keys, algorithm and datasets (one linked from an asset of the
//! workspace), attestation policies (its own and a backend's override) and change threshold; imported again as a new computation that exports to
//! the same document; refused when its format is another, when an override names a backend the
//! importing workspace has no use of, or when the importer is no member of the workspace.

mod common;

use common::agent::admin_workspace;
use common::parties::{Cli, party, sha3};
use common::{Prism, client_with, json, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The document without where it comes from: what an import reads.
fn definition_of(document: &Value) -> Value {
    let mut document = document.clone();
    document.as_object_mut().unwrap().remove("origin");
    document
}

async fn export(prism: &Prism, ws: &str, computation: &str) -> Value {
    let r = prism
        .admin()
        .get(prism.url(&format!("/{ws}/computations/{computation}/export")))
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await
}

async fn import(prism: &Prism, client: &reqwest::Client, ws: &str, document: &Value) -> reqwest::Response {
    client
        .post(prism.url(&format!("/{ws}/computations/import")))
        .json(document)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_exports_to_a_document_that_imports_as_the_same_computation() {
    let prism = Prism::start().await;
    let (_, ws) = admin_workspace(&prism, "Exporters").await;
    let (_, elsewhere) = admin_workspace(&prism, "Importers").await;
    let ws = ws.to_string();
    let alice = party(&prism, ws.parse().unwrap(), "alice", &rcgen::PKCS_ED25519).await;
    let bob = party(&prism, ws.parse().unwrap(), "bob", &rcgen::PKCS_ECDSA_P256_SHA256).await;
    let admin = prism.admin().clone();

    let created = admin
        .post(prism.url(&format!("/{ws}/computations")))
        .json(&json!({
            "name": "Joint totals",
            "description": "Sums both cohorts",
            "participants": [
                {"id": alice.id, "roles": ["owner", "algorithm_provider"], "public_key": alice.spki_base64},
                {"id": bob.id, "roles": ["dataset_provider", "result_consumer"], "public_key": bob.spki_base64}
            ],
            "algorithm": {"provider": alice.id, "hash": sha3(b"sum"), "name": "sum.py"},
            "datasets": [{"provider": bob.id, "hash": sha3(b"cohort"), "name": "cohort.csv"}],
            "limits": {"max_run_seconds": 900}
        }))
        .send()
        .await
        .unwrap();
    let original = json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/{ws}/computations/{original}");
    let backend = json(
        admin
            .post(prism.url(&format!("/{ws}/backends")))
            .json(&json!({
                "name": "byo-1",
                "driver": {"kind": "byo", "agent_address": "10.0.0.9:7001"},
                "platforms": ["sev_snp"],
                "capacity": 4
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob links a second dataset from an asset of the workspace: the document keeps the link.
    let asset = json(
        client_with(&bob.token)
            .post(prism.url(&format!("/{ws}/assets")))
            .json(
                &json!({"kind": "dataset", "mime_type": "text/csv", "sha3_256": sha3(b"cohort 2"),
                          "file_name": "cohort2.csv"}),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let linked = client_with(&bob.token)
        .post(prism.url(&format!("{base}/assets")))
        .json(&json!({"asset_id": asset}))
        .send()
        .await
        .unwrap();
    json(linked, StatusCode::OK).await;
    for (query, policy) in [
        ("", json!({"sev_snp": {"minimum_guest_svn": 3}})),
        (
            &*format!("?backend={backend}"),
            json!({"sev_snp": {"minimum_guest_svn": 5}}),
        ),
    ] {
        let r = admin
            .put(prism.url(&format!("{base}/attestation-policy{query}")))
            .json(&policy)
            .send()
            .await
            .unwrap();
        json(r, StatusCode::OK).await;
    }
    let r = admin
        .put(prism.url(&format!("{base}/change-threshold")))
        .json(&json!({"threshold": 1}))
        .send()
        .await
        .unwrap();
    json(r, StatusCode::OK).await;

    // The document: everything that defines it, and where it comes from.
    let document = export(&prism, &ws, &original).await;
    assert_eq!(document["format"], "prism.computation.v1");
    assert_eq!(document["computation"]["name"], "Joint totals");
    assert_eq!(
        document["computation"]["participants"][1]["roles"],
        json!(["dataset_provider", "result_consumer"])
    );
    assert_eq!(document["computation"]["limits"], json!({"max_run_seconds": 900}));
    assert_eq!(document["computation"]["datasets"][0]["name"], "cohort.csv");
    assert_eq!(document["computation"]["datasets"][1]["asset_id"], asset.as_str());
    assert_eq!(document["attestation_policy"]["sev_snp"]["minimum_guest_svn"], 3);
    assert_eq!(
        document["backend_attestation_policies"][&backend]["sev_snp"]["minimum_guest_svn"],
        5
    );
    assert_eq!(document["change_threshold"], 1);
    assert_eq!(document["origin"]["computation_id"], original.as_str());
    let manifest = json(
        admin
            .get(prism.url(&format!("{base}/manifest")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(document["origin"]["manifest_id"], manifest["manifest_id"]);

    // Imported again, it is a new computation that exports to the same document.
    let imported = json(import(&prism, &admin, &ws, &document).await, StatusCode::CREATED).await;
    let copy = imported["id"].as_str().unwrap().to_owned();
    assert_ne!(copy, original);
    let again = export(&prism, &ws, &copy).await;
    assert_eq!(definition_of(&again), definition_of(&document));
    assert_eq!(again["origin"]["computation_id"], copy.as_str());
    // Nothing of the original's history comes along: nobody has consented to the copy.
    let copy_manifest = json(
        admin
            .get(prism.url(&format!("/{ws}/computations/{copy}/manifest")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(copy_manifest["consent"]["signed"], json!({}), "{copy_manifest:#}");
    assert_eq!(copy_manifest["consent"]["missing"].as_array().unwrap().len(), 2);
    // Its manifest names it, so consent to the original's is no consent to it.
    assert_ne!(copy_manifest["manifest_id"], manifest["manifest_id"]);

    // Whole numbers written as floats are the integers they are to JSON Schema: taken as such.
    let mut floats = document.clone();
    floats["attestation_policy"]["sev_snp"]["minimum_guest_svn"] = json!(3.0);
    floats["change_threshold"] = json!(1.0);
    json(import(&prism, &admin, &ws, &floats).await, StatusCode::CREATED).await;

    // A link the document claims is checked against the asset it names: another digest is refused.
    let mut forged = document.clone();
    forged["computation"]["datasets"][1]["hash"] = json!(sha3(b"something else"));
    let refused = problem(
        import(&prism, &admin, &ws, &forged).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains(&asset),
        "{refused:#}"
    );

    // Another workspace holds neither this one's backend nor its asset: each is refused, naming it.
    let mut portable = document.clone();
    portable["computation"]["datasets"][1]
        .as_object_mut()
        .unwrap()
        .remove("asset_id");
    let refused = problem(
        import(&prism, &admin, &elsewhere.to_string(), &portable).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains(&backend),
        "{refused:#}"
    );
    portable["backend_attestation_policies"] = json!({});
    let mut with_link = portable.clone();
    with_link["computation"]["datasets"][1] = document["computation"]["datasets"][1].clone();
    let refused = problem(
        import(&prism, &admin, &elsewhere.to_string(), &with_link).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains(&asset),
        "{refused:#}"
    );
    let moved = json(
        import(&prism, &admin, &elsewhere.to_string(), &portable).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(moved["workspace_id"], elsewhere.to_string());

    // A document of another format, or with what no document has, is refused.
    let mut future = document.clone();
    future["format"] = json!("prism.computation.v2");
    problem(
        import(&prism, &admin, &ws, &future).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut odd = document.clone();
    odd["consents"] = json!({});
    let unknown = problem(import(&prism, &admin, &ws, &odd).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(unknown["errors"][0]["pointer"], "/consents");
    // The rules of a definition hold as for a new one: no owner, no computation.
    let mut ownerless = document.clone();
    ownerless["computation"]["participants"][0]["roles"] = json!(["algorithm_provider"]);
    problem(
        import(&prism, &admin, &ws, &ownerless).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Importing is creating (the permission matrix checks who may): a user of another workspace
    // does not even learn it exists.
    let bob_client = client_with(&bob.token);
    problem(
        import(&prism, &bob_client, &elsewhere.to_string(), &portable).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The same round trip with the `prism` CLI, signed in as alice.
    let cli = Cli::new(&prism, &alice).await;
    let file = cli.dir.path().join("computation.json").display().to_string();
    let (ok, said) = cli
        .run(
            &[
                "computations",
                "export",
                "--workspace",
                &ws,
                "--computation",
                &original,
                "--out",
                &file,
            ],
            &[],
        )
        .await;
    assert!(ok, "{said}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(definition_of(&written), definition_of(&document));
    let (ok, said) = cli
        .run(
            &["computations", "import", "--workspace", &ws, "--file", &file],
            &[],
        )
        .await;
    assert!(ok, "{said}");
    let third = said.trim().to_owned();
    assert_eq!(
        definition_of(&export(&prism, &ws, &third).await),
        definition_of(&document)
    );
    let (ok, listed) = cli.run(&["computations", "list", "--workspace", &ws], &[]).await;
    assert!(ok, "{listed}");
    for id in [&original, &copy, &third] {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
}
