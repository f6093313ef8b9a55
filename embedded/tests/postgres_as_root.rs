//! PostgreSQL started by root, which runs it as `nobody`: data directories `nobody` cannot
//! enter, and what `nobody` may have planted in a cluster it owns. Each test does nothing
//! (and says so) unless run as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use prism_embedded::{EmbedError, Postgres};
use tokio_postgres::{Client, NoTls};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// Removes a cluster kept outside the test's temporary directory, however the test ends.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// As a new user tries it: root, a clone under a mode-700 directory (like `/root`, or one from
/// `mktemp -d`), the data directory inside the clone.
#[tokio::test]
async fn cluster_for_a_data_dir_nobody_cannot_enter() {
    if !is_root() {
        println!("skipped: only root runs PostgreSQL as `nobody`");
        return;
    }
    let private = tempfile::Builder::new()
        .prefix("prism-private-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = private.path().join("clone/.prism/postgres");

    let pg = Postgres::start(&data, None).await.expect("start");
    let mut cleanup = RemoveOnDrop(Some(pg.cluster_dir().to_owned()));
    let cluster = pg.cluster_dir().to_owned();
    let data = data.canonicalize().unwrap();
    assert_eq!(pg.data_dir(), data);
    assert!(cluster.starts_with("/var/lib/prism/"), "{}", cluster.display());
    assert_eq!(owner(&cluster).0, NOBODY);
    assert_eq!(std::fs::metadata(&cluster).unwrap().mode() & 0o777, 0o700);
    // The data directory says where the cluster is, and keeps the credentials.
    let record = std::fs::read_to_string(data.join("cluster-location")).unwrap();
    assert_eq!(record.trim(), cluster.display().to_string());
    assert!(data.join("credentials.json").is_file());
    assert!(!data.join("PG_VERSION").exists());

    let client = connect(&pg.url("postgres")).await;
    client
        .batch_execute("create table kept (id int); insert into kept values (7)")
        .await
        .unwrap();
    drop(client);
    pg.stop().await.expect("stop");

    // The next start finds the same cluster, with its data.
    let pg = Postgres::start(&data, None).await.expect("second start");
    assert_eq!(pg.cluster_dir(), cluster);
    let client = connect(&pg.url("postgres")).await;
    let id: i32 = client.query_one("select id from kept", &[]).await.unwrap().get(0);
    assert_eq!(id, 7);
    drop(client);
    pg.stop().await.expect("stop again");
    drop(cleanup.0.take().map(std::fs::remove_dir_all));
}

/// `nobody` owns the cluster and, through the server, can write anything into it. When root
/// gives the cluster to `nobody` again on the next start, a symlink planted there must not be
/// followed, nor a hard link to a root file given away, nor a data directory that was swapped
/// for someone else's symlink.
#[tokio::test]
async fn what_nobody_planted_is_not_followed() {
    if !is_root() {
        println!("skipped: only root hands files to `nobody`");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("prism-pg-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let victims = tempfile::Builder::new()
        .prefix("prism-victims-")
        .tempdir()
        .unwrap();
    let victim_file = victims.path().join("secret");
    let victim_dir = victims.path().join("dir");
    std::fs::write(&victim_file, "root's").unwrap();
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("inner"), "root's").unwrap();
    let victims_untouched = || {
        for path in [victim_file.clone(), victim_dir.clone(), victim_dir.join("inner")] {
            assert_eq!(owner(&path), (0, 0), "{} was given away", path.display());
        }
    };

    let data = dir.path().join("data");
    let pg = Postgres::start(&data, None).await.expect("first start");
    pg.stop().await.expect("stop");
    assert_eq!(owner(&data).0, NOBODY);

    // Symlinks, as `nobody` would leave them (owned by `nobody`).
    for (link, target) in [
        (data.join("planted-file"), &victim_file),
        (data.join("planted-dir"), &victim_dir),
        (data.join("base/planted"), &victim_file),
    ] {
        std::os::unix::fs::symlink(target, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let pg = Postgres::start(&data, None)
        .await
        .expect("start with planted symlinks");
    victims_untouched();
    pg.stop().await.expect("stop");

    // A hard link to a root-owned file (possible for `nobody` where fs.protected_hardlinks is
    // off): giving it to `nobody` would give away the file itself.
    std::fs::hard_link(&victim_file, data.join("global/planted-hard-link")).unwrap();
    match Postgres::start(&data, None).await {
        Err(EmbedError::Unsafe { reason, .. }) => assert!(reason.contains("hard links"), "{reason}"),
        other => panic!("started despite a hard link to a root file: {other:?}"),
    }
    victims_untouched();
    std::fs::remove_file(data.join("global/planted-hard-link")).unwrap();

    // The data directory itself replaced by a symlink of someone else's (in a directory like
    // /tmp, anyone can put one where the data directory will be).
    let elsewhere = tempfile::Builder::new()
        .prefix("prism-pg-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let swapped = elsewhere.path().join("data");
    std::os::unix::fs::symlink(&victim_dir, &swapped).unwrap();
    std::os::unix::fs::lchown(&swapped, Some(NOBODY), Some(NOBODY)).unwrap();
    match Postgres::start(&swapped, None).await {
        Err(EmbedError::Unsafe { path, .. }) => assert_eq!(path, swapped),
        other => panic!("followed someone else's symlink: {other:?}"),
    }
    victims_untouched();
    assert!(!victim_dir.join("PG_VERSION").exists());
}
