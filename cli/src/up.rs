//! `prism up`: the whole platform on one machine, with embedded NATS and PostgreSQL when none are
//! configured.
//!
//! The embedded servers admit only the platform: each requires a password generated on its first
//! start and kept in its data directory (mode 0600). `<data dir>/env` (mode 0600, rewritten at
//! every start) holds the URLs, passwords included, for other shells. The servers run in process
//! groups of their own, so Ctrl-C in the terminal reaches only this process, which shuts the
//! platform down first and then stops PostgreSQL and NATS.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use prism_app::IdentityConfig;
use prism_cli::{BootstrapAdmin, Platform, PlatformConfig};
use prism_embedded::{NatsOptions, NatsServer, Postgres};
use prism_store::{SnapshotKey, StoreConfig};
use tracing::info;

use crate::run_until_stopped;

/// In the data directory: `export` lines for the embedded servers' URLs.
const ENV_FILE: &str = "env";
/// The key that signs snapshots, in the data directory.
const SNAPSHOT_KEY_FILE: &str = "snapshot.key";
/// The key that seals the certificate authority's private keys, and where they are kept.
const CA_KEK_FILE: &str = "ca.kek";
const CA_KEYS_DIR: &str = "ca-keys";
/// The root certificate to trust when the API is served over HTTPS (public: no secret in it).
const CA_FILE: &str = "ca.pem";

/// What `prism up` is asked for.
#[derive(Debug)]
pub(crate) struct Up {
    pub http: SocketAddr,
    pub nats_url: Option<String>,
    pub database_url: Option<String>,
    pub store: StoreConfig,
    pub snapshot_key: Option<SnapshotKey>,
    pub identity: IdentityConfig,
    /// The platform administrator made on an empty platform, and its password (else generated).
    pub admin_email: String,
    pub admin_password: Option<String>,
    pub renewal: prism_app::RenewalPolicy,
    /// Serve the API over HTTPS.
    pub https: Option<prism_cli::HttpsConfig>,
    /// Serve the agents' channel.
    pub agents: Option<prism_cli::AgentsConfig>,
    /// How many CVMs the local backend runs at once (0: no local backend).
    pub local_cvms: u32,
    /// How long a run's result consumers may fetch its result.
    pub result_window: std::time::Duration,
}

pub(crate) async fn up(data_dir: &Path, up: Up) -> anyhow::Result<()> {
    let Up {
        http,
        nats_url,
        database_url,
        store,
        snapshot_key,
        identity,
        admin_email,
        admin_password,
        renewal,
        https,
        agents,
        local_cvms,
        result_window,
    } = up;
    let password_given = admin_password.is_some();
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let snapshot_key = match snapshot_key {
        Some(key) => key,
        None => snapshot_key_in(&data_dir)?,
    };

    let mut nats = None;
    let nats_url = match nats_url {
        Some(url) => url,
        None => {
            let options = NatsOptions {
                store_dir: data_dir.join("nats"),
                port: None,
                sync_always: true,
            };
            let server = NatsServer::start_authenticated(options)
                .await
                .context("starting the embedded nats-server")?;
            let url = server.url();
            info!(
                url = %redact(&url),
                "embedded nats-server started (JetStream, fsync on every write, password required)"
            );
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
            info!(
                url = %redact(&url),
                cluster = %server.cluster_dir().display(),
                "embedded PostgreSQL started (password required)"
            );
            postgres = Some(server);
            url
        }
    };

    let mut exports = Vec::new();
    if nats.is_some() {
        exports.push(("NATS_URL", nats_url.as_str()));
    }
    if postgres.is_some() {
        exports.push(("DATABASE_URL", database_url.as_str()));
    }
    let env_file = if exports.is_empty() {
        None
    } else {
        Some(write_env_file(&data_dir, &exports)?)
    };

    let authority = prism_cli::authority_config(
        &secret_in(&data_dir, CA_KEK_FILE)?,
        &data_dir.join(CA_KEYS_DIR),
        &identity.issuer.issuer,
        renewal,
    )?;
    let webhooks = prism_cli::webhook_config(&identity.issuer.issuer);
    let config = PlatformConfig {
        webhooks,
        store,
        snapshot_key: Some(snapshot_key),
        certificate_authority: Some(authority),
        identity,
        https,
        agents,
        provisioning: prism_cli::ProvisioningSettings {
            local: (local_cvms > 0).then(|| prism_cli::LocalBackendConfig {
                program: prism_backends::LocalDriver::default_program(),
                root: data_dir.join("cvms"),
                capacity: local_cvms,
            }),
            ..Default::default()
        },
        // `prism up` is the development platform: its local backend's emulated agents have no TEE,
        // and their evidence is accepted as such (never as verified), as the banner says.
        app: prism_app::AppConfig {
            attestation: prism_app::AttestationConfig {
                mode: prism_attestation::Mode::InsecureDevelopment,
                vcek_cache: None,
            },
            result_window,
            ..Default::default()
        },
        bootstrap_admin: Some(BootstrapAdmin {
            email: admin_email.clone(),
            password: admin_password,
        }),
        ..PlatformConfig::new(nats_url.clone(), database_url.clone(), http)
    };
    let result = match Platform::start(config).await {
        Ok(platform) => {
            let ca_file = match platform.https_root() {
                Some(root) => {
                    let path = data_dir.join(CA_FILE);
                    std::fs::write(&path, root).with_context(|| format!("writing {}", path.display()))?;
                    Some(path)
                }
                None => None,
            };
            print_banner(&Banner {
                api: platform.base_url(),
                ca_file: ca_file.as_deref(),
                agents: platform.agents().map(|(addr, _)| addr),
                local_cvms,
                nats_url: &nats_url,
                database_url: &database_url,
                data_dir: &data_dir,
                relocated_cluster: postgres
                    .as_ref()
                    .map(Postgres::cluster_dir)
                    .filter(|dir| !dir.starts_with(&data_dir)),
                env_file: env_file.as_deref(),
                exported: &exports
                    .iter()
                    .map(|(name, _)| *name)
                    .chain(KEY_STORE_VARIABLES)
                    .collect::<Vec<_>>(),
                admin: Admin {
                    email: &admin_email,
                    // A password the operator chose is not printed.
                    password: platform.created_admin_password().filter(|_| !password_given),
                },
            });
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

/// The key that signs this platform's snapshots: `<data_dir>/snapshot.key` (hexadecimal), made once
/// from the operating system's randomness, created with mode 0600 and never readable by others.
fn snapshot_key_in(data_dir: &Path) -> anyhow::Result<SnapshotKey> {
    Ok(SnapshotKey::new(secret_in(data_dir, SNAPSHOT_KEY_FILE)?)?)
}

/// The 32-byte secret kept (hexadecimal, mode 0600) in `<data_dir>/<file>`, made once.
fn secret_in(data_dir: &Path, file: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(file);
    let hex_key = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for {file}: {e}"))?;
            let hex_key = hex::encode(bytes);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut file| {
                    file.write_all(hex_key.as_bytes())?;
                    file.sync_all()
                })
                .with_context(|| format!("writing {}", path.display()))?;
            hex_key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    hex::decode(&hex_key).with_context(|| format!("{} is not hexadecimal", path.display()))
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

/// Writes `<data_dir>/env`: `export NAME='url'` lines, passwords included, so the file is created
/// with mode 0600 (under a fresh name, then renamed over the old one) and never readable by
/// anyone else, not even for a moment.
fn write_env_file(data_dir: &Path, exports: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(ENV_FILE);
    let temp = data_dir.join(format!(".{ENV_FILE}.{}", std::process::id()));
    let mut text = String::from(
        "# Written by `prism up` at every start: the URLs of its embedded servers, passwords\n\
         # included. Load it into a shell with `. <this file>`.\n",
    );
    for (name, url) in exports {
        text.push_str(&format!("export {name}={}\n", shell_quote(url)));
    }
    text.push_str(&key_store_exports(data_dir));
    let _ = std::fs::remove_file(&temp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(path)
}

/// The variables of the platform's key store, which operator commands need to read its keys
/// (`prism audit verify` the ledger's public key): the directory, and the key-encryption key read
/// from its own file when the shell loads the env file, so that the key is kept in one place.
const KEY_STORE_VARIABLES: [&str; 2] = ["PRISM_CA_KEYS", "PRISM_CA_KEK"];

fn key_store_exports(data_dir: &Path) -> String {
    let keys = data_dir.join(CA_KEYS_DIR);
    let kek = data_dir.join(CA_KEK_FILE);
    format!(
        "export PRISM_CA_KEYS={}\nexport PRISM_CA_KEK=\"$(cat {})\"\n",
        shell_quote(&keys.to_string_lossy()),
        shell_quote(&kek.to_string_lossy())
    )
}

/// One word for `/bin/sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A URL without its password, for logs and the banner.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

struct Banner<'a> {
    /// The API's base URL.
    api: String,
    /// The root certificate to trust, when the API is served over HTTPS.
    ca_file: Option<&'a Path>,
    /// Where agents dial, when the agents' channel runs.
    agents: Option<SocketAddr>,
    /// How many CVMs the local backend runs at once (0: none).
    local_cvms: u32,
    nats_url: &'a str,
    database_url: &'a str,
    data_dir: &'a Path,
    /// Where the PostgreSQL cluster lives when not under the data directory.
    relocated_cluster: Option<&'a Path>,
    env_file: Option<&'a Path>,
    /// The variables `env_file` sets.
    exported: &'a [&'a str],
    admin: Admin<'a>,
}

/// The platform administrator, with its password when it was made by this start (shown only then).
struct Admin<'a> {
    email: &'a str,
    password: Option<&'a str>,
}

fn print_banner(banner: &Banner<'_>) {
    let api = &banner.api;
    let (trust, curl) = match banner.ca_file {
        Some(ca) => (
            format!(
                "\n  Trust          {}   (the platform's root certificate: curl --cacert, or your trust store)",
                ca.display()
            ),
            format!("curl --cacert {}", ca.display()),
        ),
        None => (String::new(), "curl".to_owned()),
    };
    let agents = banner.agents.map_or_else(String::new, |addr| {
        format!("\n  Agents         {addr}   (Cocos agents dial here: gRPC over mutual TLS)")
    });
    let local = match banner.local_cvms {
        0 => String::new(),
        n => format!(
            "\n  CVMs           local backend: up to {n} emulated agents   (INSECURE: no hardware protection)"
        ),
    };
    let attestation = "\n  Attestation    insecure development mode   (evidence of machines without a TEE is accepted, never verified)";
    let cluster = banner.relocated_cluster.map_or_else(String::new, |dir| {
        format!(
            "\n  Cluster        {}   (user `nobody`, which runs PostgreSQL, cannot enter the data directory)",
            dir.display()
        )
    });
    let prism = std::env::current_exe().map_or_else(|_| "prism".into(), |p| p.display().to_string());
    let (credentials, operate) = match banner.env_file {
        Some(env) => (
            format!(
                "\n  Credentials    {}   (sets {}; readable only by you)",
                env.display(),
                banner.exported.join(", ")
            ),
            format!("  . {}\n  {prism} projections status", env.display()),
        ),
        None => (
            String::new(),
            format!("  # with the same NATS_URL and DATABASE_URL\n  {prism} projections status"),
        ),
    };
    println!(
        r#"
Prism is up.

  API            {api}{trust}{agents}{local}{attestation}
  API docs       {api}/docs   (OpenAPI: {api}/openapi.json)
  Health         {api}/health
  NATS           {nats}
  PostgreSQL     {database}
  Data           {data_dir}{cluster}{credentials}

{admin}

Sign in, then a first computation:

  TOKEN=$({curl} -s {api}/oauth/token -d grant_type=password -d username={email} \
          --data-urlencode "password=$PASSWORD" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  {curl} -s -XPOST {api}/workspaces -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -d '{{"name":"Hospitals"}}'
  # take "id" from the answer as WS, then:
  {curl} -s -XPOST {api}/$WS/computations -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' \
       -d '{{"name":"Study","participants":[{{"id":"{email}","roles":["owner"]}}]}}'
  # a CVM on the local backend (an emulated agent: no hardware protection):
  {curl} -s -XPOST {api}/$WS/cvms -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' \
       -d '{{"provider":"local","vcpus":1,"memory_mib":512,"platform":"none","ttl_seconds":3600}}'

Operate it from another shell:

{operate}

Ctrl-C stops everything; the next `prism up` reuses the data.
"#,
        nats = redact(banner.nats_url),
        database = redact(banner.database_url),
        data_dir = banner.data_dir.display(),
        email = banner.admin.email,
        admin = match &banner.admin.password {
            Some(password) => format!(
                "Administrator  {}\n  Password       {password}\n  (shown this once: keep it now; PASSWORD below is this)",
                banner.admin.email
            ),
            None => format!(
                "Administrator  {}   (its password was set when the platform was first started)",
                banner.admin.email
            ),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::{CA_KEK_FILE, key_store_exports, redact, shell_quote};

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("nats://prism:s3cret@127.0.0.1:14222"),
            "nats://prism:***@127.0.0.1:14222"
        );
        assert_eq!(
            redact("postgres://postgres:s3cret@127.0.0.1:5432/prism"),
            "postgres://postgres:***@127.0.0.1:5432/prism"
        );
        assert_eq!(redact("nats://127.0.0.1:14222"), "nats://127.0.0.1:14222");
    }

    #[test]
    fn quoting_survives_the_shell() {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", shell_quote("a'b c"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a'b c");
    }

    #[test]
    fn the_env_file_gives_operator_commands_the_key_store() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("it's data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join(CA_KEK_FILE), "00ff").unwrap();
        let script = format!(
            "{}printf '%s|%s' \"$PRISM_CA_KEYS\" \"$PRISM_CA_KEK\"",
            key_store_exports(&data)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}|00ff", data.join("ca-keys").display())
        );
    }
}
