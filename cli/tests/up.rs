//! `prism up` as a user runs it: the real binary, embedded nats-server and PostgreSQL, Ctrl-C, and a
//! second start on the same data.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(data_dir: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prism"));
    command
        .args(["up", "--http", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env_remove("NATS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("PRISM_ADMIN_PASSWORD")
        .env_remove("PRISM_TOKEN_KEYS")
        .env_remove("RUST_LOG");
    command
}

/// The administrator `start` gives `prism up`; `start_in_own_group` lets it generate a password.
const ADMIN: &str = "admin@prism.local";
const ADMIN_PASSWORD: &str = "an administrator's test password";

/// A client signed in at `base` as the platform administrator.
async fn signed_in(base: &str, password: &str) -> reqwest::Client {
    common::signed_in_as(base, ADMIN, password).await
}

/// The administrator's password as the banner of a first start prints it (waiting for the banner,
/// which follows the first healthy answer by a moment).
fn printed_password(output: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let printed = loop {
        let printed = std::fs::read_to_string(output).unwrap();
        if printed.contains("Prism is up.") {
            break printed;
        }
        assert!(Instant::now() < deadline, "no banner:\n{printed}");
        std::thread::sleep(Duration::from_millis(100));
    };
    printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("Password"))
        .map(|rest| rest.trim().to_owned())
}

/// A running `prism up`. A test that fails before stopping it interrupts it here (and waits for
/// it), so that its servers do not outlive the test.
struct Prism(Option<Child>);

impl Prism {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    fn take(mut self) -> Child {
        self.0.take().expect("running")
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(data_dir: &Path, port: u16) -> Prism {
    let child = command(data_dir, port)
        .env("PRISM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("prism starts");
    Prism(Some(child))
}

/// `prism up` as a terminal runs it: in a process group of its own (the terminal's foreground
/// group), with everything it prints (logs and banner) going to `output`.
fn start_in_own_group(data_dir: &Path, port: u16, output: &Path) -> Prism {
    let out = std::fs::File::create(output).unwrap();
    let err = out.try_clone().unwrap();
    let child = command(data_dir, port)
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .expect("prism starts");
    Prism(Some(child))
}

/// A temporary directory the embedded PostgreSQL can enter even when it runs as `nobody`.
fn open_temp_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

async fn wait_healthy(http: &reqwest::Client, base: &str, prism: &mut Prism) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = prism.child().try_wait().unwrap() {
            panic!("prism up exited early: {status}");
        }
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "prism up did not become healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ctrl-C, then a clean exit within a bounded time.
fn interrupt(prism: Prism) {
    let child = prism.take();
    let pid = child.id().to_string();
    interrupt_and_wait(child, &pid);
}

/// Ctrl-C as a terminal sends it: to every process of the foreground process group.
fn interrupt_group(prism: Prism) {
    let child = prism.take();
    let group = format!("-{}", child.id());
    interrupt_and_wait(child, &group);
}

fn interrupt_and_wait(mut child: Child, target: &str) {
    let status = Command::new("kill")
        .args(["-INT", "--", target])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "prism up exited with {status} after Ctrl-C");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("prism up did not stop after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn prism_up_serves_stops_cleanly_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded PostgreSQL runs as an unprivileged user when started by root: let it in.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    let http = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = start(&data_dir, port);
    wait_healthy(&http, &base, &mut first).await;
    let anonymous = http.get(format!("{base}/workspaces")).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let admin = signed_in(&base, ADMIN_PASSWORD).await;
    let r = admin
        .post(format!("{base}/workspaces"))
        .json(&json!({"name": "Kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    interrupt(first);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = start(&data_dir, port);
    wait_healthy(&http, &base, &mut second).await;
    let admin = signed_in(&base, ADMIN_PASSWORD).await;
    let r = admin.get(format!("{base}/workspaces/{id}")).send().await.unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::OK,
        "the second start lost the data"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Kept");
    interrupt(second);
}

/// Processes whose command line mentions `dir` (an embedded server of that data directory).
fn processes_of(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}

/// The PostgreSQL cluster of a data directory: in it, or where `cluster-location` says.
fn cluster_dir(data_dir: &Path) -> PathBuf {
    match std::fs::read_to_string(data_dir.join("postgres/cluster-location")) {
        Ok(location) => PathBuf::from(location.trim()),
        Err(_) => data_dir.join("postgres"),
    }
}

/// Ctrl-C in a terminal reaches every process of its foreground group. Only prism must get it: it
/// shuts the platform down while NATS and PostgreSQL still run, and then stops them itself.
#[tokio::test]
async fn ctrl_c_stops_prism_first_and_its_servers_after() {
    let dir = open_temp_dir();
    let data_dir = dir.path().join("data");
    let output = dir.path().join("output");
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let mut prism = start_in_own_group(&data_dir, port, &output);
    wait_healthy(&http, &base, &mut prism).await;
    let password = printed_password(&output).expect("the first start prints the administrator's password");
    let r = signed_in(&base, &password)
        .await
        .post(format!("{base}/workspaces"))
        .json(&json!({"name": "Interrupted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    interrupt_group(prism);

    let printed = std::fs::read_to_string(&output).unwrap();
    // The local backend's lack of protection is announced as a warning at every start, by design.
    let unexpected: Vec<&str> = printed
        .lines()
        .filter(|line| !line.contains("INSECURE: the local backend runs emulated agents"))
        .collect();
    for bad in ["ERROR", "WARN", "panicked"] {
        assert!(
            !unexpected.iter().any(|line| line.contains(bad)),
            "prism printed {bad} while stopping:\n{printed}"
        );
    }
    // nats-server was stopped by prism (SIGTERM), not by the terminal's SIGINT.
    let nats_log = std::fs::read_to_string(data_dir.join("nats/nats-server.log")).unwrap();
    assert!(
        nats_log.contains(r#"Trapped "terminated" signal"#) && !nats_log.contains(r#""interrupt""#),
        "{nats_log}"
    );
    let data_dir = data_dir.canonicalize().unwrap();
    for dir in [data_dir.clone(), cluster_dir(&data_dir)] {
        let left = processes_of(&dir);
        assert!(left.is_empty(), "still running after prism exited: {left:?}");
    }
}

/// The embedded servers refuse anyone without the generated credentials, which prism uses and
/// which `<data dir>/env` (mode 0600) gives to other shells.
#[tokio::test]
async fn embedded_servers_admit_only_the_platform() {
    let dir = open_temp_dir();
    let data_dir = dir.path().join("data");
    let output = dir.path().join("output");
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let mut prism = start_in_own_group(&data_dir, port, &output);
    wait_healthy(&http, &base, &mut prism).await;
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert!(health.status().is_success());

    let env_file = data_dir.join("env");
    assert_eq!(std::fs::metadata(&env_file).unwrap().mode() & 0o777, 0o600);
    let env = std::fs::read_to_string(&env_file).unwrap();
    let var = |name: &str| {
        let prefix = format!("export {name}='");
        env.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no {name} in {env}"))
            .to_owned()
    };
    let (nats_url, database_url) = (var("NATS_URL"), var("DATABASE_URL"));
    for file in [
        "nats/credentials.json",
        "postgres/credentials.json",
        "nats/nats-server.conf",
    ] {
        let mode = std::fs::metadata(data_dir.join(file)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }

    // The banner says where the credentials are, and prints no password. It is printed once the
    // platform has started, which may be just after the API first answers.
    let env_path = env_file.canonicalize().unwrap();
    let banner = format!(". {}", env_path.display());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let printed = loop {
        let printed = std::fs::read_to_string(&output).unwrap();
        if printed.contains(&banner) || std::time::Instant::now() > deadline {
            break printed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        printed.contains(&format!(". {}", env_path.display())),
        "{printed}"
    );
    let (nats_user, nats_password, nats_address) = split_credentials(&nats_url);
    let (_, pg_password, pg_address) = split_credentials(&database_url);
    assert!(
        !printed.contains(&nats_password) && !printed.contains(&pg_password),
        "{printed}"
    );

    // NATS: nobody without the password, the platform's credentials do.
    assert_eq!(
        nats_connect(&nats_address, None).await,
        "-ERR 'Authorization Violation'"
    );
    assert_eq!(
        nats_connect(&nats_address, Some((&nats_user, "wrong"))).await,
        "-ERR 'Authorization Violation'"
    );
    assert_eq!(
        nats_connect(&nats_address, Some((&nats_user, &nats_password))).await,
        "PONG"
    );

    // PostgreSQL: the same.
    let anonymous = tokio_postgres::connect(
        &format!("postgres://postgres@{pg_address}"),
        tokio_postgres::NoTls,
    )
    .await
    .map(drop)
    .expect_err("PostgreSQL admitted a client without a password");
    assert!(
        format!("{anonymous:?}").contains("password missing"),
        "{anonymous:?}"
    );
    let wrong = tokio_postgres::connect(
        &format!("postgres://postgres:wrong@{pg_address}"),
        tokio_postgres::NoTls,
    )
    .await
    .map(drop)
    .expect_err("PostgreSQL admitted a wrong password");
    assert_eq!(
        wrong.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD)
    );
    let (pg, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("the platform's database URL works");
    tokio::spawn(connection);
    pg.batch_execute("select 1").await.unwrap();
    drop(pg);

    interrupt_group(prism);
}

/// Connects to NATS at `address` as a client would (`CONNECT`, then `PING`), with or without a user
/// and password, and returns the server's answer: `PONG` when admitted.
async fn nats_connect(address: &str, credentials: Option<(&str, &str)>) -> String {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let info = lines.next_line().await.unwrap().unwrap();
    assert!(info.starts_with("INFO "), "{info}");
    let mut connect = json!({"verbose": false, "pedantic": false, "protocol": 1});
    if let Some((user, pass)) = credentials {
        connect["user"] = json!(user);
        connect["pass"] = json!(pass);
    }
    write
        .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("an answer in time")
        .unwrap()
        .unwrap_or_default();
    answer.trim().to_owned()
}

/// `scheme://user:password@rest` → (user, password, rest).
fn split_credentials(url: &str) -> (String, String, String) {
    let rest = &url[url.find("://").unwrap() + 3..];
    let (credentials, address) = rest.split_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap();
    (user.to_owned(), password.to_owned(), address.to_owned())
}

/// As a new user tries it: root, a clone in a mode-700 directory (`/root`, `mktemp -d`), data in
/// `.prism` inside it. PostgreSQL runs as `nobody`, which cannot enter it, so the cluster lives in
/// a place `nobody` can reach, and stays there for the next start.
#[tokio::test]
async fn prism_up_as_root_in_a_private_directory() {
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        println!("skipped: only root runs PostgreSQL as `nobody`");
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = private.path().join("prism/.prism");
    let output = private.path().join("output");
    let http = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut prism = start_in_own_group(&data_dir, port, &output);
    let cleanup = RemoveOnDrop(data_dir.clone());
    wait_healthy(&http, &base, &mut prism).await;
    let password = printed_password(&output).expect("the first start prints the administrator's password");
    let admin = signed_in(&base, &password).await;
    let r = admin
        .post(format!("{base}/workspaces"))
        .json(&json!({"name": "Private"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    interrupt_group(prism);

    let cluster = cluster_dir(&data_dir);
    assert!(cluster.starts_with("/var/lib/prism/"), "{}", cluster.display());
    let printed = std::fs::read_to_string(&output).unwrap();
    assert!(
        printed.contains(&cluster.display().to_string()),
        "the banner does not say where:\n{printed}"
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut prism = start_in_own_group(&data_dir, port, &output);
    wait_healthy(&http, &base, &mut prism).await;
    assert_eq!(printed_password(&output), None, "a password is printed once");
    let admin = signed_in(&base, &password).await;
    let r = admin.get(format!("{base}/workspaces/{id}")).send().await.unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::OK,
        "the second start lost the data"
    );
    interrupt_group(prism);
    assert_eq!(cluster_dir(&data_dir), cluster);
    drop(cleanup);
}

/// Removes the relocated cluster of a data directory, however the test ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let cluster = cluster_dir(&self.0);
        if cluster.starts_with("/var/lib/prism/") {
            let _ = std::fs::remove_dir_all(cluster);
        }
    }
}
