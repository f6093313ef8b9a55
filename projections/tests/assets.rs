//! The assets read model against a real nats-server and a fresh PostgreSQL database: an asset's row
//! follows its record, sample and status; a computation that links it says so (and stops saying so when
//! it unlinks it or is archived); the lists filter; a rebuild gives the same rows.

mod common;

use common::{WAIT, dump, env};
use prism_domain::asset::{AlgorithmType, Asset, AssetChanges, AssetCommand, AssetKind, AssetRecord, Sample};
use prism_domain::computation::{Change, ComputationCommand, LinkedAsset, WorkspaceStanding};
use prism_domain::testing::samples::sample_definition;
use prism_domain::values::{FileName, MimeType, Sha3Digest};
use prism_domain::{AssetId, ComputationId, UserId, WorkspaceId};
use prism_projections::{
    ASSETS, AssetFilter, AssetView, AssetsProjection, COMPUTATIONS, ComputationsProjection, PageRequest,
    RunProjection as _, reset,
};
use prism_store::Repository;

fn record(kind: AssetKind, content: &[u8], name: &str) -> AssetRecord {
    AssetRecord {
        kind,
        algorithm_type: (kind == AssetKind::Algorithm).then_some(AlgorithmType::Python),
        mime_type: MimeType::parse("text/csv").unwrap(),
        sha3_256: Sha3Digest::of(content),
        file_name: FileName::parse(name).unwrap(),
        description: format!("{name}, for the study"),
    }
}

const ALL: PageRequest = PageRequest {
    after: None,
    limit: 100,
};

#[tokio::test]
async fn the_row_follows_the_asset_and_the_computations_that_link_it() {
    let env = env().await;
    let _a = env.start(AssetsProjection);
    let _c = env.start(ComputationsProjection);
    let assets: Repository<Asset> = Repository::new(env.store.clone());
    let workspace = WorkspaceId(uuid::Uuid::now_v7());
    // Alice and bob, the sample definition's algorithm and dataset providers, as users.
    let alice = UserId(uuid::Uuid::from_u128(0xa11ce));
    let bob = UserId(uuid::Uuid::from_u128(0xb0b));
    let dataset = AssetId(uuid::Uuid::now_v7());
    let algorithm = AssetId(uuid::Uuid::now_v7());
    let read = |sequence: u64, id: AssetId| {
        let env = &env;
        async move {
            env.read.wait_for(ASSETS, sequence, WAIT).await.unwrap();
            env.read.wait_for(COMPUTATIONS, sequence, WAIT).await.unwrap();
            env.read.asset(workspace, id).await.unwrap().unwrap()
        }
    };

    let register = |id, owner, record| AssetCommand::Register {
        id,
        workspace_id: workspace,
        owner,
        record,
    };
    env.execute(
        &assets,
        &dataset,
        register(dataset, bob, record(AssetKind::Dataset, b"1,2,3", "cohort.csv")),
    )
    .await;
    let at = env
        .execute(
            &assets,
            &algorithm,
            register(algorithm, alice, record(AssetKind::Algorithm, b"sum", "sum.py")),
        )
        .await;
    let row: AssetView = read(at, dataset).await;
    assert_eq!(
        (
            row.kind.as_str(),
            row.algorithm_type,
            row.file_name.as_str(),
            row.status.as_str()
        ),
        ("dataset", None, "cohort.csv", "active")
    );
    assert_eq!(row.sha3_256, Sha3Digest::of(b"1,2,3").as_str());
    assert_eq!((row.owner, row.version, row.sample.clone()), (bob, 1, None));
    assert!(row.linked_to.is_empty());
    assert_eq!(
        read(at, algorithm).await.algorithm_type.as_deref(),
        Some("python")
    );

    let sample = Sample {
        sha256: "ab".repeat(32),
        size: 1024,
        mime_type: MimeType::parse("text/csv").unwrap(),
    };
    env.execute(
        &assets,
        &dataset,
        AssetCommand::Update {
            by: bob,
            changes: AssetChanges {
                description: Some("anonymised".into()),
                mime_type: Some(MimeType::parse("application/vnd.ms-excel").unwrap()),
            },
        },
    )
    .await;
    let at = env
        .execute(
            &assets,
            &dataset,
            AssetCommand::AttachSample {
                by: bob,
                sample: sample.clone(),
            },
        )
        .await;
    let row = read(at, dataset).await;
    assert_eq!(
        (row.description.as_str(), row.mime_type.as_str(), row.version),
        ("anonymised", "application/vnd.ms-excel", 3)
    );
    let shown = row.sample.unwrap();
    assert_eq!(
        (shown.sha256, shown.size, shown.mime_type.as_str()),
        (sample.sha256.clone(), 1024, "text/csv")
    );

    // A computation whose dataset provider, bob, links the dataset.
    let computation = ComputationId(uuid::Uuid::now_v7());
    let mut definition = sample_definition();
    definition.participants[0].id = pid_of(alice);
    definition.algorithm.as_mut().unwrap().provider = pid_of(alice);
    definition.participants[1].id = pid_of(bob);
    definition.datasets[0].provider = pid_of(bob);
    env.computation(
        computation,
        ComputationCommand::Create {
            id: computation,
            workspace_id: workspace,
            workspace: WorkspaceStanding::Active,
            definition,
        },
    )
    .await;
    let link = LinkedAsset {
        asset: dataset,
        kind: AssetKind::Dataset,
        provider: prism_domain::ParticipantId::User(bob),
        hash: Sha3Digest::of(b"1,2,3"),
        name: FileName::parse("cohort.csv").unwrap(),
    };
    let at = env
        .computation(
            computation,
            ComputationCommand::Change {
                change: Change::LinkAsset(link),
                by: Some(prism_domain::ParticipantId::User(bob)),
            },
        )
        .await;
    assert_eq!(read(at, dataset).await.linked_to, [computation]);
    let view = env
        .read
        .computation(workspace, computation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.datasets.len(), 2);
    assert_eq!(view.datasets[1].asset, Some(dataset));
    assert_eq!(view.datasets[1].name, "cohort.csv");

    // The lists filter by kind, owner and status.
    let list = |filter: AssetFilter| {
        let env = &env;
        async move {
            let page = env.read.assets(workspace, &filter, ALL).await.unwrap();
            page.items.into_iter().map(|a| a.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(AssetFilter::default()).await, [dataset, algorithm]);
    let datasets = AssetFilter {
        kind: Some("dataset".into()),
        ..Default::default()
    };
    assert_eq!(list(datasets).await, [dataset]);
    let bobs = AssetFilter {
        owner: Some(bob),
        ..Default::default()
    };
    assert_eq!(list(bobs).await, [dataset]);
    let archived = AssetFilter {
        status: Some("archived".into()),
        ..Default::default()
    };
    assert!(list(archived.clone()).await.is_empty());
    let other = env
        .read
        .assets(WorkspaceId(uuid::Uuid::now_v7()), &AssetFilter::default(), ALL)
        .await
        .unwrap();
    assert!(other.items.is_empty());
    assert_eq!(
        env.read
            .active_computations_linking_as_of(dataset, at)
            .await
            .unwrap(),
        Some(vec![computation])
    );
    assert_eq!(
        env.read
            .active_computations_linking_as_of(dataset, at + 1_000_000)
            .await
            .unwrap(),
        None,
        "not as of a sequence the read model has not reached"
    );

    // Unlinked, it is linked nowhere; the computation's datasets are as before.
    let at = env
        .computation(
            computation,
            ComputationCommand::Change {
                change: Change::UnlinkAsset { asset: dataset },
                by: Some(prism_domain::ParticipantId::User(bob)),
            },
        )
        .await;
    assert!(read(at, dataset).await.linked_to.is_empty());
    let view = env
        .read
        .computation(workspace, computation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.datasets.len(), 1);
    assert_eq!(view.datasets[0].provider, pid_of(bob));
    assert_eq!(view.datasets[0].asset, None);

    // Alice links her algorithm, which stays linked.
    let link = LinkedAsset {
        asset: algorithm,
        kind: AssetKind::Algorithm,
        provider: pid_of(alice),
        hash: Sha3Digest::of(b"sum"),
        name: FileName::parse("sum.py").unwrap(),
    };
    let at = env
        .computation(
            computation,
            ComputationCommand::Change {
                change: Change::LinkAsset(link),
                by: Some(pid_of(alice)),
            },
        )
        .await;
    assert_eq!(read(at, algorithm).await.linked_to, [computation]);

    // Archived: the sample goes with it.
    let at = env
        .execute(
            &assets,
            &dataset,
            AssetCommand::Archive {
                by: bob,
                linked_to: vec![],
            },
        )
        .await;
    let row = read(at, dataset).await;
    // Registered, updated, sample attached; sample removed and archived in one commit.
    assert_eq!(
        (row.status.as_str(), row.sample, row.version),
        ("archived", None, 5)
    );
    assert_eq!(list(archived).await, [dataset]);

    // A rebuild replays the log into the same rows.
    let tables = || async {
        (
            dump(&env.read, "assets").await,
            dump(&env.read, "computation_assets").await,
        )
    };
    let before = tables().await;
    assert_eq!(before.1.len(), 1, "{:?}", before.1);
    _a.send(true).unwrap();
    _c.send(true).unwrap();
    reset(env.read.pool(), &AssetsProjection).await.unwrap();
    reset(env.read.pool(), &ComputationsProjection).await.unwrap();
    assert!(dump(&env.read, "assets").await.is_empty());
    assert!(dump(&env.read, "computation_assets").await.is_empty());
    env.projector(AssetsProjection).catch_up().await.unwrap();
    env.projector(ComputationsProjection).catch_up().await.unwrap();
    assert_eq!(tables().await, before);
}

fn pid_of(user: UserId) -> prism_domain::ParticipantId {
    prism_domain::ParticipantId::User(user)
}
