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
//! runner and algorithms share upstream — and `incoming/`, where a participant's file is received
//! before it is checked. The whole directory, `incoming/` with it, is wiped once the run ends (the
//! results are kept zipped in memory, as upstream keeps them), on a stop, and at exit.
//!
//! Datasets are streamed to disk and hashed as they arrive, where upstream gathers a dataset in
//! memory and hashes it once it is whole: a few chunks wait in memory at most, so a dataset of
//! any size fits, and hashing and writing overlap the transfer. A dataset goes to a file of its own
//! (0600) in `incoming/`, not in `datasets/`, so an algorithm never sees a partial or refused file;
//! only once the manifest's checks pass, under the agent's lock, is it renamed into `datasets/`
//! (or unzipped there). A refused, failed or abandoned upload keeps nothing. The algorithm, small,
//! is gathered in memory and then goes the same way.

use std::io::{BufWriter, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prism_proto::cvms::ComputationRunReq;
use sha3::{Digest as _, Sha3_256};
use tempfile::NamedTempFile;
use tokio::io::AsyncReadExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
    /// A later message of a `Data` stream names another file than its first (upstream takes the
    /// last name given; a dataset here is placed by its first).
    #[error("dataset file name changed during the upload")]
    FilenameChanged,
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

/// Where, in the computation's directory, the algorithm's inputs are.
const DATASETS_DIR: &str = "datasets";
/// Where a participant's file is received: beside `datasets/`, so that no algorithm sees it before
/// it has passed the manifest's checks.
const INCOMING_DIR: &str = "incoming";
/// How many chunks of a dataset may wait for its writer: enough for the network to go on while
/// the disk is busy, few enough that a dataset of any size holds a few MiB of memory.
const CHUNKS_IN_FLIGHT: usize = 4;
/// The writer's buffer: a participant's 1 MiB chunks pass it by; a client sending small chunks
/// does not cost a system call each.
const WRITE_BUFFER: usize = 256 * 1024;

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
    /// Counts the run requests taken, so that an upload begun for one computation is not taken
    /// into the next, even one with the same id (whose directory was wiped in between).
    generation: u64,
}

impl Inner {
    /// Where among the datasets still expected `filename` is, if a dataset is taken now: the
    /// checks of a data provider's upload, made when it begins and again when it ends.
    fn expected_dataset(&self, filename: &str) -> Result<usize, ServiceError> {
        if self.state != AgentState::ReceivingData {
            return Err(ServiceError::StateNotReady);
        }
        if self.computation.remaining_datasets.is_empty() {
            return Err(ServiceError::AllManifestItemsReceived);
        }
        self.computation
            .remaining_datasets
            .iter()
            .position(|d| d.filename == filename)
            .ok_or(ServiceError::UndeclaredDataset)
    }
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
                generation: 0,
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
        inner.generation += 1;
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
        let creating = |e: std::io::Error| ServiceError::Io(format!("error creating algorithm file: {e}"));
        let mut incoming = IncomingFile::create(&self.dir).map_err(creating)?;
        incoming.write(algorithm).map_err(creating)?;
        let received = incoming.finish().map_err(creating)?;
        received.check(&expected)?;
        let algo_path = self.dir.join("algo");
        received.place(&algo_path).map_err(creating)?;
        std::fs::set_permissions(&algo_path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ServiceError::Io(format!("error changing file permissions: {e}")))?;
        std::fs::create_dir_all(self.dir.join(DATASETS_DIR))
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

    /// Begins a data provider's upload (`Data`) of `filename`, matched by exact file name and
    /// then by hash (`agent/service.go:1147-1196`); `decompress` unzips it into `datasets/`.
    /// What can be refused before the bytes arrive is refused here, so that a participant who
    /// cannot upload now learns it before sending a dataset; [`DatasetUpload::finish`] checks it
    /// all again, since the agent may have moved on meanwhile.
    pub fn begin_data(&self, filename: &str, decompress: bool) -> Result<DatasetUpload, ServiceError> {
        let (incoming, generation) = {
            let inner = self.lock();
            inner.expected_dataset(filename)?;
            // Created under the lock: a stop's wipe cannot come between the check and the file.
            let incoming = IncomingFile::create(&self.dir)
                .map_err(|e| ServiceError::Io(format!("error creating dataset file: {e}")))?;
            (incoming, inner.generation)
        };
        let (chunks, arriving) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let writer = tokio::task::spawn_blocking(move || incoming.receive(arriving));
        Ok(DatasetUpload {
            agent: self.clone(),
            generation,
            filename: filename.to_owned(),
            decompress,
            chunks,
            writer: Some(writer),
            received_bytes: 0,
        })
    }

    /// Takes a received dataset into `datasets/` if the agent still expects it and its hash is
    /// the manifest's; the run starts once the last one is in. Blocking: it may unzip.
    fn accept_dataset(
        &self,
        generation: u64,
        filename: &str,
        decompress: bool,
        received: ReceivedFile,
    ) -> Result<(), ServiceError> {
        let mut inner = self.lock();
        if inner.generation != generation {
            return Err(ServiceError::StateNotReady);
        }
        // Another upload of the same file may have been taken meanwhile, or the run stopped.
        let index = inner.expected_dataset(filename)?;
        received.check(&inner.computation.remaining_datasets[index].hash)?;
        let datasets = self.dir.join(DATASETS_DIR);
        if decompress {
            received
                .extract(&datasets)
                .map_err(|e| ServiceError::Io(format!("error decompressing dataset: {e}")))?;
        } else {
            // Upstream joins the name as given (`fmt.Sprintf("%s/%s", ...)`); a name with a path
            // separator is kept to its last component here so nothing lands outside `datasets/`.
            let name = Path::new(filename)
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_else(|| filename.into());
            received
                .place(&datasets.join(name))
                .map_err(|e| ServiceError::Io(format!("error creating dataset file: {e}")))?;
        }
        // Struck off only once in place: a dataset that could not be placed is still expected.
        inner.computation.remaining_datasets.remove(index);
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

/// A dataset on its way in, begun by [`Agent::begin_data`]: its chunks go, a few at most waiting,
/// to a writer on a blocking thread that hashes them and writes them to a file in `incoming/`.
/// Dropped before [`DatasetUpload::finish`] (the client's stream failed, the call was cancelled),
/// it ends the writer, whose file is then removed.
#[derive(Debug)]
pub struct DatasetUpload {
    agent: Agent,
    generation: u64,
    filename: String,
    decompress: bool,
    chunks: mpsc::Sender<Vec<u8>>,
    /// `None` once awaited (a writer is awaited once).
    writer: Option<JoinHandle<std::io::Result<ReceivedFile>>>,
    received_bytes: u64,
}

impl DatasetUpload {
    /// Passes the next chunk to the writer, waiting while it is behind.
    pub async fn write(&mut self, chunk: Vec<u8>) -> Result<(), ServiceError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.received_bytes += chunk.len() as u64;
        if self.chunks.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The writer stops taking chunks only when a write failed: its error says why.
        match written(self.writer.take()).await {
            Err(error) => Err(error),
            Ok(_) => Err(ServiceError::Io(
                "error writing dataset file: the writer stopped".into(),
            )),
        }
    }

    /// Whether no byte of the dataset arrived.
    pub fn is_empty(&self) -> bool {
        self.received_bytes == 0
    }

    /// The dataset is whole: once the writer is done, the agent checks it and takes it, or
    /// refuses it and keeps nothing.
    pub async fn finish(self) -> Result<(), ServiceError> {
        let DatasetUpload {
            agent,
            generation,
            filename,
            decompress,
            chunks,
            writer,
            received_bytes: _,
        } = self;
        // The writer's loop ends when the last sender is gone.
        drop(chunks);
        let received = written(writer).await?;
        tokio::task::spawn_blocking(move || agent.accept_dataset(generation, &filename, decompress, received))
            .await
            .map_err(|e| ServiceError::Io(format!("error creating dataset file: {e}")))?
    }
}

/// The file a dataset's writer wrote, once it is done.
async fn written(
    writer: Option<JoinHandle<std::io::Result<ReceivedFile>>>,
) -> Result<ReceivedFile, ServiceError> {
    let writer =
        writer.ok_or_else(|| ServiceError::Io("error writing dataset file: the writer is gone".into()))?;
    writer
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(|e| ServiceError::Io(format!("error writing dataset file: {e}")))
}

/// A participant's file being received in `incoming/`, hashed as it is written. Its file goes
/// with it when dropped (as a [`ReceivedFile`]'s does unless placed): whatever ends an upload
/// early, nothing of it is kept.
#[derive(Debug)]
struct IncomingFile {
    file: BufWriter<NamedTempFile>,
    hasher: Sha3_256,
}

impl IncomingFile {
    /// A new file (0600) of a name of its own in `dir`'s `incoming/` (created 0700 if missing).
    fn create(dir: &Path) -> std::io::Result<Self> {
        let incoming = dir.join(INCOMING_DIR);
        create_private_dir(&incoming)?;
        let file = tempfile::Builder::new()
            .prefix("upload-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&incoming)?;
        Ok(IncomingFile {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Sha3_256::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.file.write_all(bytes)
    }

    /// Writes what `chunks` brings until its senders are gone (blocking).
    fn receive(mut self, mut chunks: mpsc::Receiver<Vec<u8>>) -> std::io::Result<ReceivedFile> {
        while let Some(chunk) = chunks.blocking_recv() {
            self.write(&chunk)?;
        }
        self.finish()
    }

    fn finish(self) -> std::io::Result<ReceivedFile> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok(ReceivedFile {
            file,
            sha3_256: self.hasher.finalize().into(),
        })
    }
}

/// A whole file in `incoming/` and its SHA3-256; removed when dropped unless placed.
#[derive(Debug)]
struct ReceivedFile {
    file: NamedTempFile,
    sha3_256: [u8; 32],
}

impl ReceivedFile {
    /// Whether it is the file the manifest declares by `expected`, its SHA3-256.
    fn check(&self, expected: &[u8]) -> Result<(), ServiceError> {
        if self.sha3_256.as_slice() == expected {
            Ok(())
        } else {
            Err(ServiceError::HashMismatch)
        }
    }

    /// Moves it to `path`: a rename, `incoming/` being on the same file system as `datasets/`.
    fn place(self, path: &Path) -> std::io::Result<()> {
        self.file.persist(path).map(drop).map_err(|e| e.error)
    }

    /// Unzips it into `dir`; the zip itself is then removed.
    fn extract(self, dir: &Path) -> zip::result::ZipResult<()> {
        zip::ZipArchive::new(self.file.reopen()?)?.extract(dir)
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

/// After a successful run upstream removes `results/`, `datasets/` and `algo`; the directory holds
/// nothing else but `incoming/` (where an upload that lost the race for its dataset may still be
/// arriving), so it goes whole.
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    use prism_proto::cvms::{Algorithm, Dataset};

    use super::*;
    use crate::config::LogLevel;

    const ALGORITHM: &[u8] = b"#!/bin/sh\nexit 0\n";
    const MIB: usize = 1024 * 1024;

    /// An agent that has its algorithm and awaits `datasets` (file name, bytes).
    fn receiving_data(work: &Path, datasets: &[(&str, &[u8])]) -> Agent {
        let (telemetry, _records) = Telemetry::new(LogLevel::Error);
        let agent = Agent::new(telemetry, work.join("computation"));
        agent.init_computation(&manifest(datasets)).unwrap();
        agent.algo(ALGORITHM, b"", ALGO_TYPE_BIN, Vec::new()).unwrap();
        assert_eq!(agent.state(), AgentState::ReceivingData);
        agent
    }

    fn manifest(datasets: &[(&str, &[u8])]) -> ComputationRunReq {
        ComputationRunReq {
            id: "run-1".into(),
            datasets: datasets
                .iter()
                .map(|(filename, bytes)| Dataset {
                    hash: Sha3_256::digest(bytes).to_vec(),
                    filename: (*filename).into(),
                    ..Default::default()
                })
                .collect(),
            algorithm: Some(Algorithm {
                hash: Sha3_256::digest(ALGORITHM).to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `len` bytes that differ from one another (xorshift), so a misplaced chunk shows.
    fn varied_bytes(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// The names of the files in `dir`, none when it is missing.
    fn files_in(dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    async fn upload(agent: &Agent, filename: &str, bytes: &[u8], chunk: usize) -> Result<(), ServiceError> {
        let mut upload = agent.begin_data(filename, false)?;
        for piece in bytes.chunks(chunk) {
            upload.write(piece.to_vec()).await?;
        }
        upload.finish().await
    }

    /// Waits up to 5 s for `dir` to hold no file.
    async fn until_empty(dir: &Path) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !files_in(dir).is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still holds {:?}",
                dir.display(),
                files_in(dir)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_dataset_in_many_chunks_arrives_byte_exact_in_datasets_and_nothing_stays_in_incoming() {
        let work = tempfile::tempdir().unwrap();
        // A last chunk shorter than the others.
        let big = varied_bytes(5 * MIB + 321);
        let agent = receiving_data(work.path(), &[("big.bin", &big), ("other.csv", b"1\n")]);
        let dir = agent.dir().to_owned();

        upload(&agent, "big.bin", &big, MIB).await.unwrap();

        let placed = dir.join("datasets/big.bin");
        assert!(std::fs::read(&placed).unwrap() == big, "the dataset differs");
        assert_eq!(
            std::fs::metadata(&placed).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(files_in(&dir.join("incoming")), Vec::<String>::new());
        // The other dataset is still expected; the first is not any more.
        assert_eq!(agent.state(), AgentState::ReceivingData);
        assert_eq!(
            upload(&agent, "big.bin", &big, MIB).await,
            Err(ServiceError::UndeclaredDataset)
        );
    }

    #[tokio::test]
    async fn a_tampered_dataset_is_refused_and_leaves_nothing_in_datasets_nor_in_incoming() {
        let work = tempfile::tempdir().unwrap();
        let big = varied_bytes(3 * MIB);
        let agent = receiving_data(work.path(), &[("big.bin", &big), ("other.csv", b"1\n")]);
        let dir = agent.dir().to_owned();
        let mut tampered = big.clone();
        tampered[2 * MIB + 5] ^= 1;

        assert_eq!(
            upload(&agent, "big.bin", &tampered, MIB).await,
            Err(ServiceError::HashMismatch)
        );
        assert_eq!(files_in(&dir.join("datasets")), Vec::<String>::new());
        assert_eq!(files_in(&dir.join("incoming")), Vec::<String>::new());
        // Refused, it is still expected.
        upload(&agent, "big.bin", &big, MIB).await.unwrap();
        assert_eq!(files_in(&dir.join("datasets")), ["big.bin"]);
    }

    #[tokio::test]
    async fn a_tampered_algorithm_is_refused_and_leaves_nothing_in_incoming() {
        let work = tempfile::tempdir().unwrap();
        let (telemetry, _records) = Telemetry::new(LogLevel::Error);
        let agent = Agent::new(telemetry, work.path().join("computation"));
        agent.init_computation(&manifest(&[])).unwrap();

        assert_eq!(
            agent.algo(b"#!/bin/sh\nexit 1\n", b"", ALGO_TYPE_BIN, Vec::new()),
            Err(ServiceError::HashMismatch)
        );
        assert_eq!(files_in(agent.dir()), ["incoming"]);
        assert_eq!(files_in(&agent.dir().join("incoming")), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_upload_dropped_midway_leaves_no_file() {
        let work = tempfile::tempdir().unwrap();
        let big = varied_bytes(4 * MIB);
        let agent = receiving_data(work.path(), &[("big.bin", &big)]);
        let incoming = agent.dir().join("incoming");

        let mut upload = agent.begin_data("big.bin", false).unwrap();
        upload.write(big[..MIB].to_vec()).await.unwrap();
        upload.write(big[MIB..2 * MIB].to_vec()).await.unwrap();
        assert_eq!(files_in(&incoming).len(), 1, "the upload has its file");
        assert_eq!(
            files_in(&agent.dir().join("datasets")),
            Vec::<String>::new(),
            "a partial dataset is out of the algorithm's sight"
        );
        drop(upload);

        until_empty(&incoming).await;
        assert_eq!(files_in(&agent.dir().join("datasets")), Vec::<String>::new());
        // The dataset is still expected.
        assert_eq!(agent.state(), AgentState::ReceivingData);
    }

    #[tokio::test]
    async fn an_upload_the_agent_cannot_take_is_refused_before_its_first_byte() {
        let work = tempfile::tempdir().unwrap();
        let agent = receiving_data(work.path(), &[("data.csv", b"1\n")]);

        let undeclared = agent.begin_data("other.csv", false);
        assert_eq!(undeclared.err(), Some(ServiceError::UndeclaredDataset));
        assert_eq!(files_in(&agent.dir().join("incoming")), Vec::<String>::new());

        let (telemetry, _records) = Telemetry::new(LogLevel::Error);
        let early = Agent::new(telemetry, work.path().join("early"));
        early
            .init_computation(&manifest(&[("data.csv", b"1\n")]))
            .unwrap();
        assert_eq!(
            early.begin_data("data.csv", false).err(),
            Some(ServiceError::StateNotReady)
        );
    }

    #[tokio::test]
    async fn of_two_uploads_of_one_dataset_the_second_to_end_is_refused_and_keeps_nothing() {
        let work = tempfile::tempdir().unwrap();
        let data = varied_bytes(MIB);
        let agent = receiving_data(work.path(), &[("data.bin", &data), ("other.csv", b"1\n")]);
        let dir = agent.dir().to_owned();

        let mut first = agent.begin_data("data.bin", false).unwrap();
        let mut second = agent.begin_data("data.bin", false).unwrap();
        first.write(data.clone()).await.unwrap();
        second.write(data.clone()).await.unwrap();
        first.finish().await.unwrap();
        assert_eq!(second.finish().await, Err(ServiceError::UndeclaredDataset));

        assert_eq!(files_in(&dir.join("datasets")), ["data.bin"]);
        assert_eq!(files_in(&dir.join("incoming")), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_stop_during_an_upload_wipes_incoming_and_the_upload_is_refused_in_the_next_computation() {
        let work = tempfile::tempdir().unwrap();
        let data = varied_bytes(2 * MIB);
        let agent = receiving_data(work.path(), &[("data.bin", &data)]);
        let dir = agent.dir().to_owned();

        let mut upload = agent.begin_data("data.bin", false).unwrap();
        upload.write(data[..MIB].to_vec()).await.unwrap();
        assert_eq!(files_in(&dir.join("incoming")).len(), 1);
        agent.stop().await;
        assert!(!dir.exists(), "the stop wipes the directory, incoming/ with it");

        // The same computation again: the upload begun before the stop is not taken into it.
        agent.init_computation(&manifest(&[("data.bin", &data)])).unwrap();
        agent.algo(ALGORITHM, b"", ALGO_TYPE_BIN, Vec::new()).unwrap();
        upload.write(data[MIB..].to_vec()).await.unwrap();
        assert_eq!(upload.finish().await, Err(ServiceError::StateNotReady));
        assert_eq!(files_in(&dir.join("datasets")), Vec::<String>::new());
        assert_eq!(files_in(&dir.join("incoming")), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_compressed_dataset_is_unzipped_into_datasets_from_its_received_file() {
        let work = tempfile::tempdir().unwrap();
        let inner = varied_bytes(MIB + 7);
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("inner.bin", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&inner).unwrap();
        let zipped = zip.finish().unwrap().into_inner();
        let agent = receiving_data(work.path(), &[("data.zip", &zipped), ("other.csv", b"1\n")]);
        let dir = agent.dir().to_owned();

        let mut upload = agent.begin_data("data.zip", true).unwrap();
        for piece in zipped.chunks(64 * 1024) {
            upload.write(piece.to_vec()).await.unwrap();
        }
        upload.finish().await.unwrap();

        assert!(std::fs::read(dir.join("datasets/inner.bin")).unwrap() == inner);
        assert_eq!(files_in(&dir.join("datasets")), ["inner.bin"]);
        assert_eq!(files_in(&dir.join("incoming")), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_name_with_path_separators_lands_inside_datasets() {
        let work = tempfile::tempdir().unwrap();
        let agent = receiving_data(
            work.path(),
            &[("../../escape.csv", b"1\n"), ("other.csv", b"2\n")],
        );
        upload(&agent, "../../escape.csv", b"1\n", MIB).await.unwrap();
        assert_eq!(files_in(&agent.dir().join("datasets")), ["escape.csv"]);
        assert!(!work.path().join("escape.csv").exists());
    }
}
