//! The agent's computation: its state machine, the manifest's checks, running the algorithm and
//! zipping its results — what upstream's `agent/service.go`, `agent/statemachine` and the
//! computation runner (`agent/runner/service/service.go`, `agent/algorithm/{binary,python}`) do.
//!
//! States and transitions (`agent/service.go:44-56, 225-247, 330-337`):
//! `Idle → ReceivingManifest` at start; a run request → `ReceivingAlgorithm`; the algorithm →
//! `ReceivingData` (or `Running` when no dataset is declared); the last dataset → `Running`; the run
//! → `ConsumingResults` or `Failed`; the first consumer's download → `Complete`. Entering a state
//! publishes an event named after it (statuses as upstream). A stop goes back to
//! `ReceivingManifest`.
//!
//! Files live in one private directory (0700): `algo`, `datasets/`, `results/` — the layout the
//! runner and algorithms share upstream — and the whole directory is wiped once the run ends (the
//! results are kept zipped in memory, as upstream keeps them), on a stop, and at exit.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prism_proto::cvms::ComputationRunReq;
use sha3::{Digest as _, Sha3_256};
use tokio::io::AsyncReadExt as _;
use tokio::sync::oneshot;

use crate::telemetry::{Status, Telemetry};

/// The agent's states, named as upstream's `stringer` names them (`agent/agentstate_string.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Idle,
    ReceivingManifest,
    ReceivingAlgorithm,
    ReceivingData,
    Running,
    ConsumingResults,
    Complete,
    Failed,
}

impl AgentState {
    pub fn wire_name(self) -> &'static str {
        match self {
            AgentState::Idle => "Idle",
            AgentState::ReceivingManifest => "ReceivingManifest",
            AgentState::ReceivingAlgorithm => "ReceivingAlgorithm",
            AgentState::ReceivingData => "ReceivingData",
            AgentState::Running => "Running",
            AgentState::ConsumingResults => "ConsumingResults",
            AgentState::Complete => "Complete",
            AgentState::Failed => "Failed",
        }
    }
}

/// Refusals of the agent's service, with upstream's messages (`agent/service.go:116-149`); the
/// gRPC layer answers them with code Unknown, as grpc-go does for a plain Go error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("agent not expecting this operation in the current state")]
    StateNotReady,
    #[error("all expected manifest Items have been received")]
    AllManifestItemsReceived,
    #[error("algorithm not declared in computation manifest")]
    UndeclaredAlgorithm,
    #[error("dataset not declared in computation manifest")]
    UndeclaredDataset,
    #[error("malformed data, hash does not match manifest")]
    HashMismatch,
    #[error("computation results are not yet ready")]
    ResultsNotReady,
    #[error("result consumer is undeclared in computation manifest")]
    UndeclaredConsumer,
    /// The run's own error, returned to consumers of a failed run.
    #[error("{0}")]
    RunFailed(String),
    #[error("{0}")]
    Io(String),
}

/// The algorithm types upstream knows (`agent/algorithm/algorithm.go:15-22`).
pub const ALGO_TYPE_BIN: &str = "bin";
pub const ALGO_TYPE_PYTHON: &str = "python";

#[derive(Debug, Default)]
struct Computation {
    id: String,
    manifest: Option<ComputationRunReq>,
    /// Datasets still expected (removed as they arrive).
    remaining_datasets: Vec<prism_proto::cvms::Dataset>,
    algo_received: bool,
    algo_type: String,
    algo_args: Vec<String>,
    requirements: Vec<u8>,
    result: Vec<u8>,
    run_error: Option<String>,
    results_consumed: bool,
    /// Kills the running algorithm.
    stop_run: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Inner {
    state: AgentState,
    computation: Computation,
}

/// The agent's service, shared by the CVMS stream and the participants' server.
#[derive(Debug, Clone)]
pub struct Agent {
    inner: Arc<Mutex<Inner>>,
    telemetry: Telemetry,
    dir: PathBuf,
}

impl Agent {
    /// An agent in `ReceivingManifest`, keeping its computation in `dir` (created at the run request).
    pub fn new(telemetry: Telemetry, dir: PathBuf) -> Self {
        Agent {
            inner: Arc::new(Mutex::new(Inner {
                // Upstream starts in Idle and sends itself Start at once (`agent/service.go:256`).
                state: AgentState::ReceivingManifest,
                computation: Computation::default(),
            })),
            telemetry,
            dir,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn state(&self) -> AgentState {
        self.lock().state
    }

    /// The computation's private directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Enters `to` and publishes its event, as the state machine's actions do.
    fn enter(&self, inner: &mut Inner, to: AgentState) {
        inner.state = to;
        let id = inner.computation.id.clone();
        let status = match to {
            AgentState::ReceivingAlgorithm | AgentState::ReceivingData => Status::InProgress,
            AgentState::ConsumingResults => Status::Ready,
            AgentState::Complete => Status::Completed,
            AgentState::Failed => Status::Failed,
            // Running publishes from the run itself; Idle and ReceivingManifest publish nothing.
            _ => return,
        };
        self.telemetry.agent_event(&id, to.wire_name(), status);
    }

    /// Takes the run request (`InitComputation`).
    pub fn init_computation(&self, request: &ComputationRunReq) -> Result<(), ServiceError> {
        let mut inner = self.lock();
        if inner.state != AgentState::ReceivingManifest {
            return Err(ServiceError::StateNotReady);
        }
        inner.computation = Computation {
            id: request.id.clone(),
            manifest: Some(request.clone()),
            remaining_datasets: request.datasets.clone(),
            ..Computation::default()
        };
        if let Err(e) = create_private_dir(&self.dir) {
            self.telemetry
                .error(&format!("error creating the computation directory: {e}"));
        }
        self.telemetry.info(&format!(
            "received computation manifest computation_id={} dataset_count={}",
            request.id,
            request.datasets.len()
        ));
        self.enter(&mut inner, AgentState::ReceivingAlgorithm);
        Ok(())
    }

    /// The algorithm provider's upload (`Algo`), with the type and arguments from its metadata.
    pub fn algo(
        &self,
        algorithm: &[u8],
        requirements: &[u8],
        algo_type: &str,
        args: Vec<String>,
    ) -> Result<(), ServiceError> {
        let mut inner = self.lock();
        if inner.state != AgentState::ReceivingAlgorithm {
            return Err(ServiceError::StateNotReady);
        }
        if inner.computation.algo_received {
            return Err(ServiceError::AllManifestItemsReceived);
        }
        let expected = inner
            .computation
            .manifest
            .as_ref()
            .and_then(|m| m.algorithm.as_ref())
            .map(|a| a.hash.clone())
            .ok_or(ServiceError::UndeclaredAlgorithm)?;
        if Sha3_256::digest(algorithm).as_slice() != expected.as_slice() {
            return Err(ServiceError::HashMismatch);
        }
        let algo_path = self.dir.join("algo");
        std::fs::write(&algo_path, algorithm)
            .map_err(|e| ServiceError::Io(format!("error creating algorithm file: {e}")))?;
        std::fs::set_permissions(&algo_path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ServiceError::Io(format!("error changing file permissions: {e}")))?;
        std::fs::create_dir_all(self.dir.join("datasets"))
            .map_err(|e| ServiceError::Io(format!("error creating datasets directory: {e}")))?;
        let computation = &mut inner.computation;
        computation.algo_type = if algo_type.is_empty() {
            ALGO_TYPE_BIN.into()
        } else {
            algo_type.into()
        };
        computation.algo_args = args;
        computation.requirements = requirements.to_vec();
        computation.algo_received = true;
        if inner.computation.remaining_datasets.is_empty() {
            self.start_run(&mut inner);
        } else {
            self.enter(&mut inner, AgentState::ReceivingData);
        }
        Ok(())
    }

    /// A data provider's upload (`Data`): matched by exact file name, then by hash
    /// (`agent/service.go:1147-1196`); `decompress` unzips it into `datasets/`.
    pub fn data(&self, dataset: &[u8], filename: &str, decompress: bool) -> Result<(), ServiceError> {
        let mut inner = self.lock();
        if inner.state != AgentState::ReceivingData {
            return Err(ServiceError::StateNotReady);
        }
        if inner.computation.remaining_datasets.is_empty() {
            return Err(ServiceError::AllManifestItemsReceived);
        }
        let index = inner
            .computation
            .remaining_datasets
            .iter()
            .position(|d| d.filename == filename)
            .ok_or(ServiceError::UndeclaredDataset)?;
        if Sha3_256::digest(dataset).as_slice() != inner.computation.remaining_datasets[index].hash.as_slice()
        {
            return Err(ServiceError::HashMismatch);
        }
        inner.computation.remaining_datasets.remove(index);
        let datasets = self.dir.join("datasets");
        if decompress {
            zip::ZipArchive::new(std::io::Cursor::new(dataset))
                .and_then(|mut archive| archive.extract(&datasets))
                .map_err(|e| ServiceError::Io(format!("error decompressing dataset: {e}")))?;
        } else {
            // Upstream joins the name as given (`fmt.Sprintf("%s/%s", ...)`); a name with a path
            // separator is kept to its last component here so nothing lands outside `datasets/`.
            let name = Path::new(filename)
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_else(|| filename.into());
            std::fs::write(datasets.join(name), dataset)
                .map_err(|e| ServiceError::Io(format!("error creating dataset file: {e}")))?;
        }
        if inner.computation.remaining_datasets.is_empty() {
            self.start_run(&mut inner);
        }
        Ok(())
    }

    /// A consumer's download (`Result`): the first one while `ConsumingResults` completes the
    /// computation; later ones get the same zip.
    pub fn result(&self, consumer_index: usize) -> Result<Vec<u8>, ServiceError> {
        let mut inner = self.lock();
        let state = inner.state;
        if !matches!(
            state,
            AgentState::ConsumingResults | AgentState::Complete | AgentState::Failed
        ) {
            return Err(ServiceError::ResultsNotReady);
        }
        let consumers = inner
            .computation
            .manifest
            .as_ref()
            .map_or(0, |m| m.result_consumers.len());
        if consumer_index >= consumers {
            return Err(ServiceError::UndeclaredConsumer);
        }
        if !inner.computation.results_consumed && state == AgentState::ConsumingResults {
            inner.computation.results_consumed = true;
            self.enter(&mut inner, AgentState::Complete);
            wipe(&self.dir);
        }
        match &inner.computation.run_error {
            Some(error) => Err(ServiceError::RunFailed(error.clone())),
            None => Ok(inner.computation.result.clone()),
        }
    }

    /// `StopComputation`: kills the algorithm, wipes the directory and starts over in
    /// `ReceivingManifest` (`agent/service.go:346-397`).
    pub async fn stop(&self) {
        {
            let mut inner = self.lock();
            let id = inner.computation.id.clone();
            self.telemetry.agent_event(&id, "Stopped", Status::Stopped);
            if let Some(stop_run) = inner.computation.stop_run.take() {
                let _ = stop_run.send(());
            }
            wipe(&self.dir);
            inner.state = AgentState::Idle;
            inner.computation = Computation::default();
        }
        // Upstream restarts its state machine with two 100 ms pauses before it is ready again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.lock().state = AgentState::ReceivingManifest;
    }

    fn start_run(&self, inner: &mut Inner) {
        inner.state = AgentState::Running;
        let (stop_run, stopped) = oneshot::channel();
        inner.computation.stop_run = Some(stop_run);
        let job = RunJob {
            computation_id: inner.computation.id.clone(),
            algo_type: inner.computation.algo_type.clone(),
            args: inner.computation.algo_args.clone(),
            requirements: inner.computation.requirements.clone(),
        };
        let agent = self.clone();
        tokio::spawn(async move { agent.run(job, stopped).await });
    }

    /// `runComputation` (`agent/service.go:1266-1356`) with the runner's part folded in.
    async fn run(&self, job: RunJob, stopped: oneshot::Receiver<()>) {
        let id = job.computation_id.clone();
        let running = AgentState::Running.wire_name();
        self.telemetry.agent_event(&id, running, Status::Starting);
        let results = self.dir.join("results");
        let outcome = match std::fs::create_dir_all(&results) {
            Err(e) => Err(format!("error creating results directory: {e}")),
            Ok(()) => {
                self.telemetry.agent_event(&id, running, Status::InProgress);
                self.execute(&job, stopped).await
            }
        };
        let outcome = outcome.and_then(|()| zip_directory(&results).map_err(|e| e.to_string()));
        let mut inner = self.lock();
        if inner.computation.id != id || inner.state != AgentState::Running {
            // Stopped meanwhile: the stop already wiped everything.
            return;
        }
        inner.computation.stop_run = None;
        match outcome {
            Ok(zip) => {
                self.telemetry.agent_event(&id, running, Status::Completed);
                inner.computation.result = zip;
                wipe_run_files(&self.dir);
                self.enter(&mut inner, AgentState::ConsumingResults);
            }
            Err(error) => {
                self.telemetry
                    .warn(&format!("failed to run computation: {error}"));
                self.telemetry.agent_event(&id, running, Status::Failed);
                inner.computation.run_error = Some(error);
                wipe(&self.dir);
                self.enter(&mut inner, AgentState::Failed);
            }
        }
    }

    /// Runs the algorithm in the computation's directory; `Err` carries upstream's error text.
    async fn execute(&self, job: &RunJob, stopped: oneshot::Receiver<()>) -> Result<(), String> {
        let algo = self.dir.join("algo");
        let mut command = match job.algo_type.as_str() {
            ALGO_TYPE_BIN => tokio::process::Command::new(&algo),
            ALGO_TYPE_PYTHON => self.python(job).await?,
            // The runner answers this as a gRPC error, which the agent keeps as the run's error.
            other => {
                return Err(format!(
                    "rpc error: code = Unknown desc = unsupported algorithm type: {other}"
                ));
            }
        };
        if job.algo_type == ALGO_TYPE_PYTHON {
            command.arg(&algo);
        }
        command
            .args(&job.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("error starting algorithm: {e}"))?;
        let stdout = child.stdout.take().map(|out| self.forward_stdout(out));
        let stderr = child
            .stderr
            .take()
            .map(|err| self.forward_stderr(err, job.computation_id.clone()));
        let status = tokio::select! {
            status = child.wait() => status.map_err(|e| format!("algorithm execution error: {e}"))?,
            _ = stopped => {
                let _ = child.kill().await;
                return Err("algorithm execution error: signal: killed".into());
            }
        };
        for forwarder in [stdout, stderr].into_iter().flatten() {
            let _ = forwarder.await;
        }
        if status.success() {
            Ok(())
        } else {
            Err(format!("algorithm execution error: {}", go_exit_status(status)))
        }
    }

    /// A python command: the system `python3` when no requirements were uploaded; otherwise a venv
    /// in the computation's directory with the requirements installed (pip needs the network).
    async fn python(&self, job: &RunJob) -> Result<tokio::process::Command, String> {
        if job.requirements.is_empty() {
            return Ok(tokio::process::Command::new("python3"));
        }
        let requirements = self.dir.join("requirements.txt");
        std::fs::write(&requirements, &job.requirements)
            .map_err(|e| format!("error writing requirements to file: {e}"))?;
        let venv = self.dir.join("venv");
        let created = tokio::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .current_dir(&self.dir)
            .status()
            .await;
        if !matches!(created, Ok(status) if status.success()) {
            return Err("error creating virtual environment: python3 -m venv failed".into());
        }
        let python = venv.join("bin").join("python");
        let installed = tokio::process::Command::new(&python)
            .args(["-m", "pip", "install", "-r"])
            .arg(&requirements)
            .current_dir(&self.dir)
            .status()
            .await;
        if !matches!(installed, Ok(status) if status.success()) {
            return Err("error installing requirements: pip install failed".into());
        }
        Ok(tokio::process::Command::new(python))
    }

    /// The algorithm's stdout becomes debug logs (`agent/algorithm/logging/logging.go`).
    fn forward_stdout(&self, mut out: tokio::process::ChildStdout) -> tokio::task::JoinHandle<()> {
        let telemetry = self.telemetry.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 1024];
            while let Ok(n @ 1..) = out.read(&mut buffer).await {
                telemetry.debug(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    }

    /// Its stderr becomes error logs and an `AlgorithmRun`/`Warning` event per write.
    fn forward_stderr(
        &self,
        mut err: tokio::process::ChildStderr,
        computation_id: String,
    ) -> tokio::task::JoinHandle<()> {
        let telemetry = self.telemetry.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 1024];
            while let Ok(n @ 1..) = err.read(&mut buffer).await {
                telemetry.error(&String::from_utf8_lossy(&buffer[..n]));
                telemetry.runner_event(&computation_id, "AlgorithmRun", Status::Warning);
            }
        })
    }

    /// Removes the computation's directory (at exit).
    pub fn wipe(&self) {
        if let Some(stop_run) = self.lock().computation.stop_run.take() {
            let _ = stop_run.send(());
        }
        wipe(&self.dir);
    }
}

#[derive(Debug)]
struct RunJob {
    computation_id: String,
    algo_type: String,
    args: Vec<String>,
    requirements: Vec<u8>,
}

/// Go's `*exec.ExitError` text: `exit status N` or `signal: NAME`.
fn go_exit_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".into(),
        (None, Some(15)) => "signal: terminated".into(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => "exit status unknown".into(),
    }
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn wipe(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), "cannot wipe the computation directory: {e}");
    }
}

/// After a successful run upstream removes `results/`, `datasets/` and `algo`; the directory held
/// nothing else, so it goes whole.
fn wipe_run_files(dir: &Path) {
    wipe(dir);
}

/// The results directory as upstream's `internal.ZipDirectoryToMemory` zips it: every file, sorted
/// by path, named relative to the directory, deflated, with the DOS epoch as time and its mode.
pub fn zip_directory(dir: &Path) -> std::io::Result<Vec<u8>> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for path in files {
        let name = path
            .strip_prefix(dir)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .into_owned();
        let mode = std::fs::metadata(&path)?.permissions().mode();
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(mode & 0o777);
        writer.start_file(name, options).map_err(std::io::Error::other)?;
        std::io::copy(&mut std::fs::File::open(&path)?, &mut writer)?;
    }
    Ok(writer.finish().map_err(std::io::Error::other)?.into_inner())
}
