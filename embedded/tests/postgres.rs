//! Runs real PostgreSQL servers; needs PostgreSQL binaries and, for `TestDatabase`, either a
//! trust-auth server on 127.0.0.1:5432 or `PRISM_TEST_DATABASE_URL`.

use std::os::unix::fs::PermissionsExt;

use prism_embedded::{EmbedError, Postgres, TestDatabase};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test]
async fn test_databases_are_fresh_and_distinct() {
    let a = TestDatabase::create().await.expect("create a");
    let b = TestDatabase::create().await.expect("create b");
    assert_ne!(a.url, b.url);

    let client_a = connect(&a.url).await.expect("connect a");
    let name: String = client_a
        .query_one("select current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, a.name());
    client_a
        .batch_execute("create table only_in_a (id int)")
        .await
        .unwrap();

    let client_b = connect(&b.url).await.expect("connect b");
    let tables: i64 = client_b
        .query_one(
            "select count(*) from pg_tables where tablename = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);

    // Dropping removes the database even while a client is still connected.
    let url = a.url.clone();
    drop(a);
    assert!(connect(&url).await.is_err(), "dropped database still reachable");
}

#[tokio::test]
async fn embedded_cluster_restarts_with_its_data() {
    let dir = tempfile::Builder::new()
        .prefix("prism-pg-test-")
        .tempdir_in("/tmp")
        .unwrap();
    // When run as root the server runs as `nobody`, which must be able to enter it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");

    let pg = Postgres::start(&data, None).await.expect("first start");
    let client = connect(&pg.url("postgres")).await.expect("connect");
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    client
        .batch_execute("create table survives_restart (id int); insert into survives_restart values (7)")
        .await
        .unwrap();
    drop(client);

    match Postgres::start(&data, None).await {
        Err(EmbedError::PostgresAlreadyRunning { .. }) => {}
        other => panic!("second cluster on the same data dir: {other:?}"),
    }

    pg.stop().await.expect("stop");

    let pg = Postgres::start(&data, None).await.expect("second start");
    let client = connect(&pg.url("postgres")).await.expect("reconnect");
    let id: i32 = client
        .query_one("select id from survives_restart", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, 7);
    drop(client);
    pg.stop().await.expect("stop again");
}

#[tokio::test]
async fn starts_again_after_a_crash() {
    let dir = tempfile::Builder::new()
        .prefix("prism-pg-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");

    let pg = Postgres::start(&data, None).await.expect("first start");
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let pid = pid_file.lines().next().unwrap().trim().to_owned();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The crashed server's `postmaster.pid` is still there; starting must cope with it.
    assert!(data.join("postmaster.pid").exists());
    drop(pg);

    let pg = Postgres::start(&data, None).await.expect("start after crash");
    let client = connect(&pg.url("postgres")).await.expect("connect");
    client.batch_execute("select 1").await.unwrap();
    drop(client);
    pg.stop().await.expect("stop");
}
