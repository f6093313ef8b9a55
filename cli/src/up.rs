//! `prism up`: the whole platform on one machine, with embedded NATS and PostgreSQL when none are
//! configured.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use prism_cli::{Platform, PlatformConfig};
use prism_embedded::{NatsOptions, NatsServer, Postgres};
use prism_store::StoreConfig;
use tracing::info;

use crate::run_until_stopped;

pub(crate) async fn up(
    http: SocketAddr,
    data_dir: &Path,
    nats_url: Option<String>,
    database_url: Option<String>,
    store: StoreConfig,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;

    let mut nats = None;
    let nats_url = match nats_url {
        Some(url) => url,
        None => {
            let options = NatsOptions {
                store_dir: data_dir.join("nats"),
                port: None,
                sync_always: true,
            };
            let server = NatsServer::start(options)
                .await
                .context("starting the embedded nats-server")?;
            let url = server.url();
            info!(%url, "embedded nats-server started (JetStream, fsync on every write)");
            nats = Some(server);
            url
        }
    };
    let mut postgres = None;
    let database_url = match database_url {
        Some(url) => url,
        None => {
            let server = Postgres::start(&data_dir.join("postgres"), None)
                .await
                .context("starting the embedded PostgreSQL")?;
            ensure_database(&server.url("postgres"), "prism").await?;
            let url = server.url("prism");
            info!(%url, "embedded PostgreSQL started");
            postgres = Some(server);
            url
        }
    };

    let config = PlatformConfig {
        nats_url: nats_url.clone(),
        database_url: database_url.clone(),
        http,
        store,
    };
    let result = match Platform::start(config).await {
        Ok(platform) => {
            print_banner(platform.addr(), &nats_url, &database_url, &data_dir);
            run_until_stopped(platform).await
        }
        Err(e) => Err(e),
    };
    if let Some(server) = postgres {
        server.stop().await.context("stopping PostgreSQL")?;
    }
    if let Some(mut server) = nats {
        server.stop().await.context("stopping nats-server")?;
    }
    info!("stopped");
    result
}

async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // The name is a constant of ours, not input, so formatting it into the statement is safe.
        client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    }
    Ok(())
}

fn print_banner(addr: SocketAddr, nats_url: &str, database_url: &str, data_dir: &Path) {
    let api = format!("http://{addr}");
    println!(
        r#"
Prism is up.

  API            {api}
  API docs       {api}/docs   (OpenAPI: {api}/openapi.json)
  Health         {api}/health
  NATS           {nats_url}
  PostgreSQL     {database_url}
  Data           {data_dir}

No sign-in yet: requests are recorded as actor "anonymous" until identity is configured.
A first computation:

  curl -s -XPOST {api}/workspaces -H 'content-type: application/json' \
       -d '{{"name":"Hospitals"}}'
  # take "id" from the answer as WS, then:
  curl -s -XPOST {api}/$WS/computations -H 'content-type: application/json' \
       -d '{{"name":"Study","participants":[{{"id":"alice@example.org","roles":["owner"]}}]}}'

Operate it from another shell:

  export NATS_URL={nats_url} DATABASE_URL={database_url}
  {prism} projections status

Ctrl-C stops everything; the next `prism up` reuses the data.
"#,
        data_dir = data_dir.display(),
        prism = std::env::current_exe().map_or_else(|_| "prism".into(), |p| p.display().to_string()),
    );
}
