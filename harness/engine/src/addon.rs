//! The addon: runs one step's command inside the step's own container.
//!
//! How a Run step is executed (the product's behaviour, as documented in product-facts.md and
//! read from its addon, re-implemented here):
//! - The script is the command preceded by an early-exit line (`set -e` for sh/bash,
//!   `$ErrorActionPreference = 'Stop'` for PowerShell, nothing for Python) and followed by one
//!   line per output variable that appends `NAME value` to `<tmp>/<step id>.out` (`echo` for
//!   sh/bash, `Add-Content` for PowerShell, a `with open(...)` block for Python).
//! - It is run as `<shell> <flag> <script>`: `sh -c`, `bash -c`, `powershell -Command`,
//!   `pwsh -Command`, `python3 -c`, with the addon's environment plus the step's `environment`,
//!   in the addon's working directory (the container's workingDir, /harness), in a new process
//!   group.
//! - A non-empty `entrypoint` replaces all of that: it is run as is and `command` is ignored
//!   ("Entry Point arguments override the image ENTRYPOINT and any commands").
//! - stdout and stderr of the step share one pipe; every line goes to the log service through the
//!   lite-engine's LogProxy (`remote_log`), which is the step log, and is also written to the
//!   addon's own stdout, so `kubectl logs` shows it too (the product's addon prints its own
//!   JSON diagnostics there instead). The addon writes nothing else to stdout (diagnostics go to
//!   stderr when `SGSIM_ADDON_DEBUG` is set).
//! - The execution timeout (default 4 h) sends SIGTERM to the process group, then SIGKILL after a
//!   grace period. A zero exit is success; otherwise the call fails with `exit status <n>`
//!   (gRPC UNKNOWN), `signal: killed`, a timeout (DEADLINE_EXCEEDED) or an abort (ABORTED): only
//!   the status code and message, no metadata of sgsim's own.
//! - A detached (Background) step is started and reported successful at once; it keeps running
//!   with its output on the addon's stdout. Unlike the product, a detached step that cannot even
//!   be started (missing interpreter) is reported as failed.
//! - ExecuteStep is idempotent per step id: a repeated call waits for / returns the first call's
//!   result.
//! - SignalStop kills every process the addon started and then stops the addon.
//!
//! Here: the gRPC service and the step outcome; `script`: a step's script, shell and output
//! variables; `process`: starting, watching and stopping a step's processes.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::Signal;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::error::{EngineError, Result};
use crate::proto::addon::addon_server::{Addon, AddonServer};
use crate::proto::addon::{ExecuteStepRequest, ExecuteStepResponse, SignalStopRequest, SignalStopResponse};

/// Set (to anything) to get the addon's own diagnostics on stderr.
pub const DEBUG_ENV: &str = "SGSIM_ADDON_DEBUG";

/// Settings of the addon.
#[derive(Debug, Clone)]
pub struct AddonConfig {
    /// Address to serve on (`0.0.0.0:<port>`).
    pub listen: SocketAddr,
    /// Working directory of step processes; `None` inherits the addon's (the container's).
    pub workdir: Option<PathBuf>,
    /// Directory for output-variable files when the request names none.
    pub default_tmp_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when a step is stopped.
    pub kill_grace: Duration,
    /// The lite-engine's LogProxy, where step logs go (the product's addon: `localhost:20001`);
    /// `None`: step output goes to stdout only.
    pub log_proxy: Option<crate::dial::Target>,
}

impl AddonConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            workdir: None,
            default_tmp_dir: PathBuf::from("/addon/tmp"),
            kill_grace: Duration::from_secs(3),
            log_proxy: None,
        }
    }
}

fn debug_enabled() -> bool {
    std::env::var_os(DEBUG_ENV).is_some()
}

macro_rules! debug {
    ($($arg:tt)*) => {
        if debug_enabled() {
            eprintln!("sgsim-addon: {}", format!($($arg)*));
        }
    };
}

// After `debug!`, which they use.
mod process;
mod remote_log;
mod script;

use process::{LineSink, run_step, signal_group};
pub use script::{DEFAULT_TIMEOUT, build_script, parse_outputs};

/// How a step ended, as the addon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success { outputs: BTreeMap<String, String> },
    Failed { kind: FailKind, message: String },
}

/// Kinds of unsuccessful outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Failure,
    Timeout,
    Aborted,
}

impl FailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Failure => "failure",
            FailKind::Timeout => "timeout",
            FailKind::Aborted => "aborted",
        }
    }
}

impl Outcome {
    fn failure(message: impl Into<String>) -> Self {
        Outcome::Failed {
            kind: FailKind::Failure,
            message: message.into(),
        }
    }

    fn into_response(self) -> Result<Response<ExecuteStepResponse>, Status> {
        match self {
            Outcome::Success { outputs, .. } => Ok(Response::new(ExecuteStepResponse {
                output: outputs.into_iter().collect(),
                num_retries: 1,
                artifact: None,
            })),
            Outcome::Failed { kind, message, .. } => {
                let code = match kind {
                    FailKind::Failure => tonic::Code::Unknown,
                    FailKind::Timeout => tonic::Code::DeadlineExceeded,
                    FailKind::Aborted => tonic::Code::Aborted,
                };
                Err(Status::new(code, message))
            }
        }
    }
}

struct Inner {
    config: AddonConfig,
    steps: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    /// Process groups started by this addon and still running.
    groups: Mutex<HashMap<i32, String>>,
    stop: CancellationToken,
    sink: LineSink,
}

/// The Addon gRPC service.
#[derive(Clone)]
pub struct AddonService {
    inner: Arc<Inner>,
}

impl AddonService {
    pub fn new(config: AddonConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                steps: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
                sink: LineSink::default(),
            }),
        }
    }

    /// Cancelled once SignalStop has been handled; the server shuts down on it.
    pub fn stopped(&self) -> CancellationToken {
        self.inner.stop.clone()
    }
}

/// Serves the addon until SignalStop (or `shutdown`) .
pub async fn serve(config: AddonConfig, shutdown: CancellationToken) -> Result<()> {
    let listen = config.listen;
    let svc = AddonService::new(config);
    let stop = svc.stopped();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| EngineError::Listen { addr: listen, source })?;
    debug!("serving on {listen}");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(AddonServer::new(svc))
        .serve_with_incoming_shutdown(incoming, async move {
            tokio::select! {
                _ = stop.cancelled() => {
                    // let the SignalStop response go out first
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = shutdown.cancelled() => {}
            }
        })
        .await
        .map_err(EngineError::Serve)
}

#[tonic::async_trait]
impl Addon for AddonService {
    async fn execute_step(
        &self,
        request: Request<ExecuteStepRequest>,
    ) -> Result<Response<ExecuteStepResponse>, Status> {
        let req = request.into_inner();
        let step = req
            .step
            .ok_or_else(|| Status::invalid_argument("ExecuteStep without a step"))?;
        if step.id.is_empty() {
            return Err(Status::invalid_argument("step id is empty"));
        }
        let tmp = if req.tmp_file_path.is_empty() {
            self.inner.config.default_tmp_dir.clone()
        } else {
            PathBuf::from(&req.tmp_file_path)
        };
        let mut rx = {
            let mut steps = self.inner.steps.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(rx) = steps.get(&step.id) {
                debug!("step {} already known, joining it", step.id);
                rx.clone()
            } else {
                let (tx, rx) = watch::channel(None);
                steps.insert(step.id.clone(), rx.clone());
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    let outcome = run_step(&inner, step, tmp).await;
                    let _ = tx.send(Some(outcome));
                });
                rx
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Status::internal("step runner vanished"))?
            .clone()
            .unwrap_or_else(|| Outcome::failure("no outcome"));
        outcome.into_response()
    }

    async fn signal_stop(&self, _request: Request<SignalStopRequest>) -> Result<Response<SignalStopResponse>, Status> {
        debug!("SignalStop");
        let groups: Vec<i32> = {
            let g = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner());
            g.keys().copied().collect()
        };
        for pgid in &groups {
            signal_group(*pgid, Signal::TERM);
        }
        self.inner.stop.cancel();
        let grace = self.inner.config.kill_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for pgid in groups {
                signal_group(pgid, Signal::KILL);
            }
        });
        Ok(Response::new(SignalStopResponse {}))
    }
}
