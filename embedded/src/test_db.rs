//! Fresh, isolated PostgreSQL databases for tests.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use crate::{EmbedError, Postgres};

const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server test databases are created on, decided once per process.
static ADMIN_URL: OnceCell<String> = OnceCell::const_new();

/// A database of its own for one test, dropped again when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `prism_test_<uuid>` on the first available server: `$PRISM_TEST_DATABASE_URL`,
    /// else a local server at 127.0.0.1:5432 with trust auth, else one embedded cluster shared
    /// by the whole test process (with password authentication, like every embedded cluster).
    /// [`TestDatabase::url`] carries whatever credentials the server needs.
    pub async fn create() -> Result<Self, EmbedError> {
        let admin_url = ADMIN_URL.get_or_try_init(choose_admin_server).await?.clone();
        let name = format!("prism_test_{}", uuid::Uuid::now_v7().simple());
        let client = connect(&admin_url)
            .await
            .map_err(EmbedError::db(format!("cannot connect to {admin_url}")))?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(EmbedError::db(format!("cannot create database {name}")))?;
        Ok(Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    /// Drops the database on a thread with its own runtime: `Drop` cannot await, and the test's
    /// runtime may be single-threaded or already shutting down.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let drop_db = async { connect(&admin_url).await?.batch_execute(&sql).await };
                match tokio::time::timeout(Duration::from_secs(10), drop_db).await {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err("timed out".to_owned()),
                }
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = outcome.map_err(|_| "panicked".to_owned()) {
            tracing::warn!(database = %self.name, error = %e, "could not drop test database");
        }
    }
}

async fn choose_admin_server() -> Result<String, EmbedError> {
    if let Ok(url) = std::env::var("PRISM_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Ok(url);
    }
    if connect(LOCAL_SERVER).await.is_ok() {
        return Ok(LOCAL_SERVER.to_owned());
    }
    start_shared_cluster().await
}

/// Starts the process-wide embedded cluster in a temporary directory.
///
/// It must outlive every test (they run on many runtimes), and statics are never dropped, so
/// a detached watchdog shell stops the cluster and deletes its directory once this process
/// has exited, however it exits.
async fn start_shared_cluster() -> Result<String, EmbedError> {
    let dir = tempfile::Builder::new()
        .prefix("prism-test-pg-")
        .tempdir()
        .map_err(EmbedError::io("cannot create a temporary directory"))?
        .keep();
    // When root, the server runs as `nobody`, which must be able to enter this directory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(EmbedError::io(format!("cannot chmod {}", dir.display())))?;
    let cluster = Postgres::start(&dir.join("data"), None).await?;
    let url = cluster.url("postgres");
    // As root with a temporary directory `nobody` cannot enter, the cluster lives elsewhere.
    let mut remove = vec![dir];
    if cluster.cluster_dir() != cluster.data_dir() {
        remove.push(cluster.cluster_dir().to_owned());
    }
    spawn_watchdog(&cluster.detach(), &remove)?;
    Ok(url)
}

fn spawn_watchdog(stop_command: &str, remove: &[std::path::PathBuf]) -> Result<(), EmbedError> {
    use std::os::unix::process::CommandExt;
    let remove: Vec<String> = remove
        .iter()
        .map(|dir| crate::process::shell_quote(&dir.to_string_lossy()))
        .collect();
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop_command}; rm -rf {dirs}",
        pid = std::process::id(),
        dirs = remove.join(" "),
    );
    std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Own process group, so a Ctrl-C aimed at the test run does not kill the cleanup.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(EmbedError::io("cannot start the test cluster's cleanup watchdog"))
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `admin_url` with its database replaced by `database`; handles both URL and `key=value`
/// connection strings.
fn with_database(admin_url: &str, database: &str) -> String {
    let scheme = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|s| admin_url.starts_with(s));
    let Some(scheme) = scheme else {
        return format!("{admin_url} dbname={database}");
    };
    let rest = &admin_url[scheme.len()..];
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = before_query.split('/').next().unwrap_or_default();
    format!("{scheme}{authority}/{database}{query}")
}

#[cfg(test)]
mod tests {
    use super::{connect, start_shared_cluster, with_database};

    /// The fallback used when no server is configured or running locally; exercised directly
    /// because this machine may well have one on 5432.
    #[tokio::test]
    async fn shared_cluster_accepts_connections() {
        let url = start_shared_cluster().await.expect("start");
        let client = connect(&url).await.expect("connect");
        let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    }

    #[test]
    fn replaces_the_database_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/postgres?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(with_database("host=h user=u", "x"), "host=h user=u dbname=x");
    }
}
