//! Governance of an approved computation end to end, over HTTP against a real nats-server and
//! PostgreSQL, with the local backend's emulated agent: three participants approve a computation; a
//! change of its manifest becomes a proposal that one of them vetoes; the threshold is lowered to two
//! of three (itself a change all three must approve), and a proposal is adopted with two approvals;
//! two participants halt execution, and a run is refused until both have lifted their own halts.

mod common;

use common::agent::{admin_workspace, with_local_backend};
use common::parties::{Party, as_party, call, consent_all, party, sha3};
use common::{Prism, client_with, header, json, problem};
use prism_attestation::Mode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn governance(prism: &Prism, base: &str) -> Value {
    json(
        call(
            prism,
            prism.admin(),
            Method::GET,
            &format!("{base}/governance"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
}

async fn dry_run(prism: &Prism, base: &str) -> Value {
    json(
        call(
            prism,
            prism.admin(),
            Method::POST,
            &format!("{base}/dry-run"),
            Some(json!({})),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

fn datasets(bob: &Party, contents: &[u8], name: &str) -> Value {
    json!([{"provider": bob.id, "hash": sha3(contents), "name": name}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_decide_on_changes_veto_them_and_halt_execution() {
    let root = tempfile::tempdir().unwrap();
    let prism = with_local_backend(root.path(), Mode::InsecureDevelopment).await;
    let (_, ws) = admin_workspace(&prism, "Governance").await;
    let alice = party(&prism, ws, "alice", &rcgen::PKCS_ED25519).await;
    let bob = party(&prism, ws, "bob", &rcgen::PKCS_ED25519).await;
    let carol = party(&prism, ws, "carol", &rcgen::PKCS_ED25519).await;
    let everyone = [&alice, &bob, &carol];

    let created = call(
        &prism,
        prism.admin(),
        Method::POST,
        &format!("/{ws}/computations"),
        Some(json!({
            "name": "Joint study",
            "participants": [
                {"id": alice.id, "roles": ["owner", "algorithm_provider"], "public_key": alice.spki_base64},
                {"id": bob.id, "roles": ["dataset_provider"], "public_key": bob.spki_base64},
                {"id": carol.id, "roles": ["result_consumer"], "public_key": carol.spki_base64}
            ],
            "algorithm": {"provider": alice.id, "hash": sha3(b"sum"), "name": "sum.py"},
            "datasets": datasets(&bob, b"1 2 3", "a.csv"),
        })),
    )
    .await;
    let computation = json(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/{ws}/computations/{computation}");

    // Not approved yet: nothing to decide, and the whole computation changes directly.
    let before = governance(&prism, &base).await;
    assert_eq!(before["approved"], false, "{before:#}");
    assert_eq!(before["threshold"], "all");

    let approved_manifest = consent_all(&prism, &base, &everyone).await;
    let approved = governance(&prism, &base).await;
    assert_eq!(approved["approved"], true, "{approved:#}");
    assert_eq!(approved["required_approvals"], 3);
    assert_eq!(
        approved["participants"],
        json!([alice.id.clone(), bob.id.clone(), carol.id.clone()])
    );

    // A change of the manifest is now a proposal: the PATCH is accepted, not applied.
    let alice_client = client_with(&alice.token);
    let patched = call(
        &prism,
        &alice_client,
        Method::PATCH,
        &base,
        Some(json!({"datasets": datasets(&bob, b"4 5 6", "b.csv")})),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::ACCEPTED);
    let location = header(&patched, "location");
    assert_eq!(location, format!("{base}/proposals/1"));
    let proposal = json(
        call(&prism, prism.admin(), Method::GET, &location, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(proposal["status"], "open", "{proposal:#}");
    assert_eq!(proposal["proposer"], alice.id.as_str());
    assert_eq!(proposal["approvals"], json!([alice.id.clone()]));
    assert_eq!(proposal["manifest_id"], approved_manifest.as_str());
    let manifest = json(
        call(
            &prism,
            prism.admin(),
            Method::GET,
            &format!("{base}/manifest"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        manifest["manifest_id"],
        approved_manifest.as_str(),
        "nothing was applied"
    );
    assert_eq!(manifest["consent"]["missing"], json!([]));

    // The platform administrator holds every permission, but is no participant: no vote.
    let refused = problem(
        call(
            &prism,
            prism.admin(),
            Method::POST,
            &format!("{location}/approve"),
            None,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("no say"),
        "{refused:#}"
    );
    // Bob approves; carol vetoes, which ends it.
    let approve = format!("{location}/approve");
    let bobs = as_party(&prism, &bob, Method::POST, &approve, None, StatusCode::OK).await;
    assert_eq!(bobs["approvals"].as_array().unwrap().len(), 2, "{bobs:#}");
    let vetoed = as_party(
        &prism,
        &carol,
        Method::POST,
        &format!("{location}/veto"),
        Some(json!({"reason": "b.csv is not the agreed cohort"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(vetoed["status"], "vetoed", "{vetoed:#}");
    assert_eq!(vetoed["vetoed_by"], carol.id.as_str());
    as_party(&prism, &carol, Method::POST, &approve, None, StatusCode::CONFLICT).await;
    as_party(&prism, &bob, Method::POST, &approve, None, StatusCode::CONFLICT).await;

    // Lowering the threshold to two of three is itself a change that needs all three.
    let r = call(
        &prism,
        &alice_client,
        Method::PUT,
        &format!("{base}/change-threshold"),
        Some(json!({"threshold": 2})),
    )
    .await;
    let threshold_proposal = json(r, StatusCode::ACCEPTED).await;
    assert_eq!(threshold_proposal["id"], 2);
    assert_eq!(threshold_proposal["change"], json!({"change_threshold": 2}));
    let approve_threshold = format!("{base}/proposals/2/approve");
    as_party(
        &prism,
        &bob,
        Method::POST,
        &approve_threshold,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(governance(&prism, &base).await["threshold"], "all");
    let adopted = as_party(
        &prism,
        &carol,
        Method::POST,
        &approve_threshold,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(adopted["status"], "adopted", "{adopted:#}");
    let lowered = governance(&prism, &base).await;
    assert_eq!(
        (
            lowered["threshold"].clone(),
            lowered["required_approvals"].clone()
        ),
        (json!(2), json!(2))
    );

    // Proposed again; two approvals (alice's proposal and bob's) adopt it.
    let proposed = as_party(
        &prism,
        &alice,
        Method::POST,
        &format!("{base}/proposals"),
        Some(json!({"update": {"datasets": datasets(&bob, b"7 8 9", "c.csv")}})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (proposed["id"].clone(), proposed["status"].clone()),
        (json!(3), json!("open"))
    );
    let adopted = as_party(
        &prism,
        &bob,
        Method::POST,
        &format!("{base}/proposals/3/approve"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(adopted["status"], "adopted", "{adopted:#}");
    as_party(
        &prism,
        &carol,
        Method::POST,
        &format!("{base}/proposals/3/approve"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    let changed = json(
        call(
            &prism,
            prism.admin(),
            Method::GET,
            &format!("{base}/manifest"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(changed["manifest_id"], approved_manifest.as_str());
    assert_eq!(changed["manifest"]["datasets"][0]["sha3_256"], sha3(b"7 8 9"));
    // Consent is as before: the new manifest needs every signature again.
    assert_eq!(changed["consent"]["missing"].as_array().unwrap().len(), 3);
    let proposals = json(
        call(
            &prism,
            prism.admin(),
            Method::GET,
            &format!("{base}/proposals?status=adopted"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<u64> = proposals["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3]);
    consent_all(&prism, &base, &everyone).await;
    assert_eq!(dry_run(&prism, &base).await["ready"], true);

    // Bob and carol halt execution.
    let halt = format!("{base}/halt");
    as_party(
        &prism,
        &bob,
        Method::POST,
        &halt,
        Some(json!({"reason": "audit of a.csv"})),
        StatusCode::OK,
    )
    .await;
    let halted = as_party(
        &prism,
        &carol,
        Method::POST,
        &halt,
        Some(json!({"reason": "contract renewal"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(halted["halted"], true);
    assert_eq!(halted["halts"].as_array().unwrap().len(), 2);
    as_party(
        &prism,
        &bob,
        Method::POST,
        &halt,
        Some(json!({"reason": "again"})),
        StatusCode::CONFLICT,
    )
    .await;

    let run = format!("{base}/runs");
    let refused = problem(
        call(&prism, prism.admin(), Method::POST, &run, Some(json!({}))).await,
        StatusCode::CONFLICT,
    )
    .await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains(&bob.id) && detail.contains(&carol.id),
        "{refused:#}"
    );
    let dry = dry_run(&prism, &base).await;
    assert_eq!(dry["ready"], false);
    assert_eq!(dry["lacks"][0]["what"], "halted", "{dry:#}");

    // Nobody lifts another's halt.
    let lift = |party: &Party| client_with(&party.token);
    problem(
        call(&prism, &lift(&alice), Method::DELETE, &halt, None).await,
        StatusCode::CONFLICT,
    )
    .await;
    let lifted = json(
        call(&prism, &lift(&bob), Method::DELETE, &halt, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(lifted["halted"], true, "carol's halt still holds: {lifted:#}");
    let refused = problem(
        call(&prism, prism.admin(), Method::POST, &run, Some(json!({}))).await,
        StatusCode::CONFLICT,
    )
    .await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains(&carol.id) && !detail.contains(&bob.id),
        "{refused:#}"
    );
    assert_eq!(dry_run(&prism, &base).await["ready"], false);

    let lifted = json(
        call(&prism, &lift(&carol), Method::DELETE, &halt, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(lifted["halted"], false, "{lifted:#}");
    let dry = dry_run(&prism, &base).await;
    assert_eq!(dry["ready"], true, "{dry:#}");
    assert_eq!(dry["lacks"], json!([]));

    // Every proposal, vote, veto and halt is an event of the computation.
    let log = prism.platform().app().log();
    let subject = log.subjects().aggregate("computation", &computation).unwrap();
    let names: Vec<String> = log
        .load(&subject)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|commit| commit.events)
        .map(|e| e.ty)
        .collect();
    for name in [
        "consent_signed",
        "change_proposed",
        "change_approved",
        "change_vetoed",
        "change_adopted",
        "change_threshold_set",
        "updated",
        "execution_halted",
        "halt_lifted",
    ] {
        let ty = format!("io.prism.computation.{name}.v1");
        assert!(names.contains(&ty), "no {ty} in {names:#?}");
    }
    prism.stop().await;
}
