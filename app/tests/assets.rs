//! Assets on the memory log: samples kept beside the log and checked when read back, only by their
//! owner, within their size; assets linked to a computation by their own provider only.

use std::sync::Arc;

use bytes::Bytes;
use prism_app::{
    App, AppError, Caller, ChangeOutcome, CommandOptions, ErrorKind, IdentityConfig, RoleAuthorizer,
};
use prism_domain::asset::{AlgorithmType, AssetKind, AssetRecord, SAMPLE_MAX};
use prism_domain::computation::{Definition, Role};
use prism_domain::testing::samples::participant;
use prism_domain::values::{FileName, MimeType, Sha3Digest};
use prism_domain::{AssetId, ComputationId, ParticipantId, WorkspaceId};
use prism_store::{BlobStore as _, EventLog as _, MemoryBlobs, MemoryLog};

mod common;

use common::{join, user, workspace_of};

fn app(log: &MemoryLog, blobs: &MemoryBlobs) -> App {
    App::builder(Arc::new(log.clone()))
        .authorizer(Arc::new(RoleAuthorizer))
        .identity(IdentityConfig::ephemeral("https://prism.test"))
        .blobs(Arc::new(blobs.clone()))
        .build()
}

fn record(kind: AssetKind, name: &str) -> AssetRecord {
    AssetRecord {
        kind,
        algorithm_type: (kind == AssetKind::Algorithm).then_some(AlgorithmType::Python),
        mime_type: MimeType::parse("text/csv").unwrap(),
        sha3_256: Sha3Digest::of(name.as_bytes()),
        file_name: FileName::parse(name).unwrap(),
        description: String::new(),
    }
}

async fn register(app: &App, by: &Caller, ws: WorkspaceId, kind: AssetKind, name: &str) -> AssetId {
    app.assets()
        .register(by, &CommandOptions::default(), ws, record(kind, name))
        .await
        .unwrap()
        .id
        .parse()
        .unwrap()
}

async fn attach(
    app: &App,
    by: &Caller,
    ws: WorkspaceId,
    id: AssetId,
    bytes: &'static [u8],
) -> Result<(), AppError> {
    app.assets()
        .attach_sample(
            by,
            &CommandOptions::default(),
            ws,
            id,
            MimeType::parse("text/csv").unwrap(),
            async move { Ok(Bytes::from_static(bytes)) },
        )
        .await
        .map(|_| ())
}

/// Whether any commit of the log holds `needle`.
async fn log_holds(log: &MemoryLog, needle: &str) -> bool {
    for sequence in 1..=log.last_sequence().await.unwrap() {
        let commit = log.commit_at(sequence).await.unwrap().unwrap();
        let text = serde_json::to_string(&commit.events.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
        if text.contains(needle) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_sample_is_kept_beside_the_log_and_read_back_as_it_was() {
    let (log, blobs) = (MemoryLog::default(), MemoryBlobs::default());
    let app = app(&log, &blobs);
    let (_, ada) = user(&app, "ada@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let id = register(&app, &ada, ws, AssetKind::Dataset, "cohort.csv").await;

    attach(&app, &ada, ws, id, b"patient,age\nsecret-row,42\n")
        .await
        .unwrap();
    let sample = app.assets().sample(&ada, ws, id).await.unwrap();
    assert_eq!(&sample.bytes[..], b"patient,age\nsecret-row,42\n");
    assert_eq!(sample.mime_type.as_str(), "text/csv");
    assert_eq!(sample.file_name, "cohort.csv");
    assert_eq!(blobs.names(), [format!("{id}.{}", sample.sha256)]);
    // The log names the bytes (their SHA-256), and never holds them.
    assert!(log_holds(&log, &sample.sha256).await);
    assert!(!log_holds(&log, "secret-row").await);

    // Replaced, the earlier bytes are no longer kept; removed, none are.
    attach(&app, &ada, ws, id, b"patient,age\nother-row,7\n")
        .await
        .unwrap();
    let replaced = app.assets().sample(&ada, ws, id).await.unwrap();
    assert_eq!(blobs.names(), [format!("{id}.{}", replaced.sha256)]);
    app.assets()
        .remove_sample(&ada, &CommandOptions::default(), ws, id)
        .await
        .unwrap();
    assert!(blobs.names().is_empty());
    let gone = app.assets().sample(&ada, ws, id).await.unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn only_the_owner_attaches_a_sample_and_a_strangers_upload_is_never_read() {
    let (log, blobs) = (MemoryLog::default(), MemoryBlobs::default());
    let app = app(&log, &blobs);
    let (_, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    join(&app, &ada, ws, bob_id, &bob).await;
    let id = register(&app, &ada, ws, AssetKind::Dataset, "cohort.csv").await;

    let refused = app
        .assets()
        .attach_sample(
            &bob,
            &CommandOptions::default(),
            ws,
            id,
            MimeType::parse("text/csv").unwrap(),
            async { panic!("the body of a refused upload is read") },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    assert!(refused.detail.contains("only its owner"), "{}", refused.detail);
    assert!(blobs.names().is_empty());
    let refused = app
        .assets()
        .remove_sample(&bob, &CommandOptions::default(), ws, id)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);

    // A member reads the workspace's samples; someone of another workspace finds nothing.
    attach(&app, &ada, ws, id, b"1,2,3").await.unwrap();
    assert_eq!(
        &app.assets().sample(&bob, ws, id).await.unwrap().bytes[..],
        b"1,2,3"
    );
    let (_, eve) = user(&app, "eve@example.org").await;
    let hidden = app.assets().sample(&eve, ws, id).await.unwrap_err();
    assert_eq!(hidden.kind, ErrorKind::NotFound);
    let own = workspace_of(&app, &eve).await;
    let elsewhere = app.assets().sample(&eve, own, id).await.unwrap_err();
    assert_eq!(elsewhere.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_sample_past_the_limit_or_altered_bytes_are_refused() {
    let (log, blobs) = (MemoryLog::default(), MemoryBlobs::default());
    let app = app(&log, &blobs);
    let (_, ada) = user(&app, "ada@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    let id = register(&app, &ada, ws, AssetKind::Dataset, "cohort.csv").await;

    let too_large = Bytes::from(vec![b'x'; SAMPLE_MAX as usize + 1]);
    let refused = app
        .assets()
        .attach_sample(
            &ada,
            &CommandOptions::default(),
            ws,
            id,
            MimeType::parse("text/plain").unwrap(),
            async move { Ok(too_large) },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::TooLarge);
    assert!(blobs.names().is_empty());
    let empty = attach(&app, &ada, ws, id, b"").await.unwrap_err();
    assert_eq!(empty.kind, ErrorKind::Invalid);

    // Bytes that are not the ones the log recorded are never served.
    attach(&app, &ada, ws, id, b"1,2,3").await.unwrap();
    let name = blobs.names().remove(0);
    blobs.put(&name, Bytes::from_static(b"6,6,6")).await.unwrap();
    let altered = app.assets().sample(&ada, ws, id).await.unwrap_err();
    assert_eq!(altered.kind, ErrorKind::Internal);
}

#[tokio::test]
async fn a_provider_links_its_own_asset_and_nobody_else_does() {
    let (log, blobs) = (MemoryLog::default(), MemoryBlobs::default());
    let app = app(&log, &blobs);
    let (ada_id, ada) = user(&app, "ada@example.org").await;
    let (bob_id, bob) = user(&app, "bob@example.org").await;
    let ws = workspace_of(&app, &ada).await;
    join(&app, &ada, ws, bob_id, &bob).await;
    let as_user = |id, roles: &[Role]| prism_domain::computation::Participant {
        id: ParticipantId::User(id),
        ..participant("x", roles)
    };
    let definition = Definition {
        name: "Study".into(),
        description: String::new(),
        participants: vec![
            as_user(ada_id, &[Role::Owner, Role::DatasetProvider]),
            as_user(bob_id, &[Role::AlgorithmProvider]),
        ],
        algorithm: None,
        datasets: Vec::new(),
        limits: Default::default(),
    };
    let computation: ComputationId = app
        .computations()
        .create(&ada, &CommandOptions::default(), ws, definition)
        .await
        .unwrap()
        .id
        .parse()
        .unwrap();
    let adas = register(&app, &ada, ws, AssetKind::Dataset, "cohort.csv").await;
    let bobs = register(&app, &bob, ws, AssetKind::Dataset, "bob.csv").await;
    let link = |by: Caller, asset| {
        let app = app.clone();
        async move {
            app.assets()
                .link(&by, &CommandOptions::default(), ws, computation, asset)
                .await
        }
    };

    // Bob provides the algorithm, not datasets: his dataset is refused, whoever's it is.
    let refused = link(bob.clone(), bobs).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    assert!(
        refused.detail.contains("`dataset_provider` role"),
        "{}",
        refused.detail
    );
    // Ada provides datasets, but bob's asset is bob's to provide.
    let refused = link(ada.clone(), bobs).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Invalid);
    assert!(refused.detail.contains("only its provider"), "{}", refused.detail);

    let ChangeOutcome::Applied(executed) = link(ada.clone(), adas).await.unwrap() else {
        panic!("not approved yet: applied at once");
    };
    let dataset = &executed.outcome.state.definition.datasets[0];
    assert_eq!(
        (dataset.asset, dataset.provider.clone(), dataset.name.as_str()),
        (Some(adas), ParticipantId::User(ada_id), "cohort.csv")
    );
    assert_eq!(dataset.hash, Sha3Digest::of(b"cohort.csv"));
    let again = link(ada.clone(), adas).await.unwrap_err();
    assert_eq!(again.kind, ErrorKind::StateConflict);

    // An asset of another workspace is not found here.
    let other = workspace_of(&app, &ada).await;
    let elsewhere = register(&app, &ada, other, AssetKind::Dataset, "other.csv").await;
    let missing = link(ada.clone(), elsewhere).await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);

    let ChangeOutcome::Applied(executed) = app
        .assets()
        .unlink(&ada, &CommandOptions::default(), ws, computation, adas)
        .await
        .unwrap()
    else {
        panic!("applied at once");
    };
    assert!(executed.outcome.state.definition.datasets.is_empty());
}
