//! The embedded servers admit only who holds their generated credentials, which are stored
//! privately and reused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use prism_embedded::{NatsOptions, NatsServer, Postgres};
use prism_store::{EventStore, StoreConfig, StoreError};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

fn me() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A temporary directory `nobody` can enter, in case PostgreSQL runs as `nobody`.
fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("prism-pg-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test]
async fn nats_admits_only_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let opts = NatsOptions {
        store_dir: dir.path().join("nats"),
        port: None,
        sync_always: true,
    };
    let mut server = NatsServer::start_authenticated(opts.clone())
        .await
        .expect("start");
    let credentials = server.credentials().expect("credentials").clone();
    assert_eq!(credentials.user, "prism");
    assert!(credentials.password.len() >= 32);
    let address = format!("nats://127.0.0.1:{}", server.port());
    assert_eq!(
        server.url(),
        format!(
            "nats://prism:{}@127.0.0.1:{}",
            credentials.password,
            server.port()
        )
    );

    // The platform's own client: refused without the password or with a wrong one.
    let refused = |url: String| async move {
        match EventStore::connect(&url, StoreConfig::default()).await {
            Err(StoreError::Unavailable(e)) => e.to_string().to_lowercase(),
            other => panic!("{url} was not refused: {other:?}"),
        }
    };
    let anonymous = refused(address.clone()).await;
    assert!(anonymous.contains("authorization"), "{anonymous}");
    let wrong = refused(format!("nats://prism:wrong@127.0.0.1:{}", server.port())).await;
    assert!(wrong.contains("authorization"), "{wrong}");
    EventStore::connect(&server.url(), StoreConfig::default())
        .await
        .expect("the credentials work");

    // Private files, created by this process's user.
    for file in ["credentials.json", "nats-server.conf"] {
        let path = opts.store_dir.join(file);
        assert_eq!(mode(&path), 0o600, "{file}");
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), me(), "{file}");
    }

    // Restarting, and starting anew on the same directory, keep the credentials.
    server.restart().await.expect("restart");
    assert_eq!(server.credentials(), Some(&credentials));
    server.stop().await.expect("stop");
    let server = NatsServer::start_authenticated(opts).await.expect("start again");
    assert_eq!(server.credentials(), Some(&credentials));
    let again = refused(format!("nats://127.0.0.1:{}", server.port())).await;
    assert!(again.contains("authorization"), "{again}");
}

#[tokio::test]
async fn postgres_admits_only_with_the_password() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let pg = Postgres::start(&data, None).await.expect("start");
    let credentials = pg.credentials().clone();
    assert_eq!(credentials.user, "postgres");
    let url = pg.url("postgres");
    assert_eq!(
        url,
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            credentials.password,
            pg.port()
        )
    );
    assert_refuses_strangers(pg.port()).await;
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("the password works");
    tokio::spawn(connection);
    let method: String = client
        .query_one("show password_encryption", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, "scram-sha-256");
    drop(client);

    let file = pg.data_dir().join("credentials.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), me());
    let hba = std::fs::read_to_string(pg.cluster_dir().join("pg_hba.conf")).unwrap();
    assert!(
        hba.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .all(|l| !l.contains("trust")),
        "{hba}"
    );
    pg.stop().await.expect("stop");

    // A later start reuses the password.
    let pg = Postgres::start(&data, None).await.expect("start again");
    assert_eq!(pg.credentials(), &credentials);
    let (client, connection) = tokio_postgres::connect(&pg.url("postgres"), NoTls)
        .await
        .expect("the password still works");
    tokio::spawn(connection);
    client.batch_execute("select 1").await.unwrap();
    drop(client);
    pg.stop().await.expect("stop again");
}

/// A cluster made before passwords (trust authentication, no credentials file) gets a password
/// and loses its trust rule at the next start.
#[tokio::test]
async fn a_trusting_cluster_gets_a_password() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let pg = Postgres::start(&data, None).await.expect("start");
    let first = pg.credentials().clone();
    let cluster = pg.cluster_dir().to_owned();
    pg.stop().await.expect("stop");
    std::fs::remove_file(pg_data_credentials(&data)).unwrap();
    std::fs::write(
        cluster.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();

    let pg = Postgres::start(&data, None).await.expect("start the old cluster");
    assert_ne!(pg.credentials(), &first, "a lost password is never reused");
    assert_refuses_strangers(pg.port()).await;
    let (client, connection) = tokio_postgres::connect(&pg.url("postgres"), NoTls)
        .await
        .expect("the new password works");
    tokio::spawn(connection);
    client.batch_execute("select 1").await.unwrap();
    drop(client);
    pg.stop().await.expect("stop");
}

fn pg_data_credentials(data: &Path) -> std::path::PathBuf {
    data.join("credentials.json")
}

/// Without a password the client cannot even answer the server's challenge; with a wrong one
/// the server refuses (28P01). Either way, no trust.
async fn assert_refuses_strangers(port: u16) {
    let anonymous = tokio_postgres::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), NoTls)
        .await
        .map(drop)
        .expect_err("admitted without a password");
    // "invalid configuration: password missing": the server asked for one.
    assert!(
        format!("{anonymous:?}").contains("password missing"),
        "{anonymous:?}"
    );
    for user in ["postgres", "nobody"] {
        let wrong = tokio_postgres::connect(
            &format!("postgres://{user}:wrong@127.0.0.1:{port}/postgres"),
            NoTls,
        )
        .await
        .map(drop)
        .expect_err("admitted with a wrong password");
        assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{user}: {wrong}");
    }
}
