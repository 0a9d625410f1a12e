//! The delegate side, used by the sgsim process on the host.
//!
//! [`DelegateServer`] serves `sgsim.delegate.v1.DelegateService` on unix sockets (each node's
//! `delegate.sock`) and hands every reported status to whoever [`DelegateServer::expect`]ed its
//! task id. [`LiteEngineClient`] talks to a pod's lite-engine, usually through a node agent
//! tunnel ([`LiteEngineClient::connect_via_agent`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response};

pub use crate::error::EngineError;
use crate::proto::delegate::delegate_service_server::{DelegateService, DelegateServiceServer};
use crate::proto::delegate::{SendStepStatusRequest, SendStepStatusResponse, StepExecutionStatus};
/// Interpreter of a Run step (the wire enum; core's `model::Shell` is the scenario's spelling).
pub use crate::proto::engine::ShellType;
use crate::proto::engine::lite_engine_client::LiteEngineClient as LiteEngineGrpc;
use crate::proto::engine::{ExecuteStepRequest, PingRequest, PluginStep, RunStep, StepContext, UnitStep, unit_step};

/// The lite-engine's port in every pod.
pub const LITE_ENGINE_PORT: u16 = 20001;
/// How often an ExecuteStep that met an unavailable lite-engine is repeated.
const EXECUTE_RETRIES: u32 = 20;
/// Extra time, beyond the step's own timeout, to wait for its status callback.
pub const STATUS_GRACE: Duration = Duration::from_secs(180);

/// Final status of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    Failure,
    Aborted,
    Timeout,
    Skipped,
}

/// A step's outcome as reported by the lite-engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStatus {
    pub step_id: String,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub outputs: BTreeMap<String, String>,
    /// How many bytes the step container's log holds at least once the step ended (the addon
    /// counts what it wrote); `None` when unknown.
    pub log_bytes: Option<u64>,
}

impl StepStatus {
    fn from_report(r: SendStepStatusRequest) -> Self {
        let status = match r.status() {
            StepExecutionStatus::Success => Status::Success,
            StepExecutionStatus::Aborted => Status::Aborted,
            StepExecutionStatus::Timeout => Status::Timeout,
            StepExecutionStatus::Skipped => Status::Skipped,
            StepExecutionStatus::Failure | StepExecutionStatus::Unspecified => Status::Failure,
        };
        StepStatus {
            step_id: r.step_id,
            status,
            exit_code: r.exit_code,
            error: Some(r.error_message).filter(|e| !e.is_empty()),
            outputs: r.outputs.into_iter().collect(),
            log_bytes: r.log_bytes.and_then(|n| u64::try_from(n).ok()),
        }
    }
}

/// What a step runs: a Run step's command or a plugin image (not to be confused with core's
/// `model::StepKind`, which says how a step runs).
///
/// The addon cannot ask a registry for an image's default entrypoint (the product can): when a
/// step should run the image's own ENTRYPOINT + CMD (a Background step without command, a plugin
/// without entrypoint), the caller passes them in `entrypoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepCommand {
    Run {
        command: String,
        shell: ShellType,
        env: BTreeMap<String, String>,
        image: String,
        entrypoint: Vec<String>,
        detach: bool,
        output_vars: Vec<String>,
        /// JUnit report paths (passed on; sgsim collects none).
        reports: Vec<String>,
    },
    /// A plugin image run with its entrypoint and (PLUGIN_*) environment.
    Plugin {
        image: String,
        entrypoint: Vec<String>,
        env: BTreeMap<String, String>,
        output_vars: Vec<String>,
        reports: Vec<String>,
        artifact_file_path: String,
    },
}

fn junit(reports: &[String]) -> Vec<crate::proto::engine::Report> {
    if reports.is_empty() {
        return Vec::new();
    }
    vec![crate::proto::engine::Report {
        r#type: crate::proto::engine::report::Type::Junit as i32,
        paths: reports.to_vec(),
    }]
}

/// One step to execute in a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    pub id: String,
    pub display_name: String,
    /// Port of the step container's addon.
    pub container_port: u16,
    /// What the step runs.
    pub kind: StepCommand,
    pub timeout: Option<Duration>,
    /// Key of the status callback; the step id is used when empty.
    pub task_id: String,
    pub callback_token: String,
    pub log_key: String,
    pub account_id: String,
}

impl StepSpec {
    fn effective_task_id(&self) -> String {
        if self.task_id.is_empty() {
            self.id.clone()
        } else {
            self.task_id.clone()
        }
    }

    /// The wire form of this step.
    pub fn to_unit_step(&self) -> UnitStep {
        let context = Some(StepContext {
            num_retries: 0,
            execution_timeout_secs: self.timeout.map(|t| t.as_secs().max(1) as i64).unwrap_or(0),
        });
        let step = match &self.kind {
            StepCommand::Run {
                command,
                shell,
                env,
                image,
                entrypoint,
                detach,
                output_vars,
                reports,
            } => unit_step::Step::Run(RunStep {
                command: command.clone(),
                context,
                env_var_outputs: output_vars.clone(),
                legacy_container_port: 0,
                reports: junit(reports),
                environment: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                shell_type: *shell as i32,
                detach: *detach,
                entrypoint: entrypoint.clone(),
                image: image.clone(),
            }),
            StepCommand::Plugin {
                image,
                entrypoint,
                env,
                output_vars,
                reports,
                artifact_file_path,
            } => unit_step::Step::Plugin(PluginStep {
                image: image.clone(),
                context,
                legacy_container_port: 0,
                entrypoint: entrypoint.clone(),
                environment: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                artifact_file_path: artifact_file_path.clone(),
                reports: junit(reports),
                env_var_outputs: output_vars.clone(),
            }),
        };
        UnitStep {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            step: Some(step),
            callback_token: self.callback_token.clone(),
            task_id: self.effective_task_id(),
            skip_condition: String::new(),
            log_key: self.log_key.clone(),
            account_id: self.account_id.clone(),
            container_port: u32::from(self.container_port),
        }
    }
}

#[derive(Default)]
struct Registry {
    waiting: HashMap<String, oneshot::Sender<StepStatus>>,
    /// Statuses that arrived before anyone expected them.
    early: HashMap<String, StepStatus>,
    /// Task ids already delivered (repeated reports are dropped).
    delivered: HashSet<String>,
}

#[derive(Clone, Default)]
struct StatusSink {
    registry: Arc<Mutex<Registry>>,
}

impl StatusSink {
    fn deliver(&self, task_id: String, status: StepStatus) {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if reg.delivered.contains(&task_id) {
            return;
        }
        if let Some(tx) = reg.waiting.remove(&task_id) {
            reg.delivered.insert(task_id);
            let _ = tx.send(status);
        } else {
            reg.early.entry(task_id).or_insert(status);
        }
    }
}

#[tonic::async_trait]
impl DelegateService for StatusSink {
    async fn send_step_status(
        &self,
        request: Request<SendStepStatusRequest>,
    ) -> Result<Response<SendStepStatusResponse>, tonic::Status> {
        let r = request.into_inner();
        let task_id = if r.task_id.is_empty() {
            r.step_id.clone()
        } else {
            r.task_id.clone()
        };
        self.deliver(task_id, StepStatus::from_report(r));
        Ok(Response::new(SendStepStatusResponse {}))
    }
}

/// Serves DelegateService and routes statuses by task id.
#[derive(Clone, Default)]
pub struct DelegateServer {
    sink: StatusSink,
}

/// Keeps one [`DelegateServer::serve_unix`] listener alive; dropping it stops the listener and
/// removes the socket file.
pub struct ServeGuard {
    stop: CancellationToken,
    path: PathBuf,
}

impl ServeGuard {
    /// The socket path served.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ServeGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl DelegateServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves on a unix socket at `path` (a stale file there is replaced; the socket is made
    /// world-accessible so a node's root can use it). May be called for several sockets.
    pub async fn serve_unix(&self, path: &Path) -> Result<ServeGuard, EngineError> {
        let listener = crate::node_agent::bind_unix(path).map_err(|e| EngineError::Bind {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        let stop = CancellationToken::new();
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let svc = DelegateServiceServer::new(self.sink.clone());
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
        });
        Ok(ServeGuard {
            stop,
            path: path.to_path_buf(),
        })
    }

    /// Delivers `status` for `task_id` as if a lite-engine had called `SendStepStatus` (for
    /// in-process lite-engines, e.g. the fake runtime tier's).
    pub fn deliver(&self, task_id: &str, status: StepStatus) {
        self.sink.deliver(task_id.to_string(), status);
    }

    /// A receiver for the status of `task_id` (also when it already arrived).
    pub fn expect(&self, task_id: &str) -> oneshot::Receiver<StepStatus> {
        let (tx, rx) = oneshot::channel();
        let mut reg = self.sink.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = reg.early.remove(task_id) {
            reg.delivered.insert(task_id.to_string());
            let _ = tx.send(st);
        } else {
            reg.delivered.remove(task_id);
            reg.waiting.insert(task_id.to_string(), tx);
        }
        rx
    }
}

/// Client of one pod's lite-engine.
#[derive(Clone)]
pub struct LiteEngineClient {
    client: LiteEngineGrpc<Channel>,
    /// Overall wait for a status callback when a step has no timeout of its own.
    default_status_wait: Duration,
}

impl LiteEngineClient {
    fn from_channel(channel: Channel) -> Self {
        Self {
            client: LiteEngineGrpc::new(channel),
            default_status_wait: crate::addon::DEFAULT_TIMEOUT + STATUS_GRACE,
        }
    }

    /// A client whose connections come from `connector` (called for every new connection), e.g.
    /// a node agent tunnel. Lazy: nothing is dialled before the first call, so this succeeds
    /// even while the lite-engine is still starting; use [`LiteEngineClient::ping`] to wait for
    /// it. A failed connection fails that call; the next call dials again.
    pub async fn connect_with<F, Fut, S>(connector: F) -> Result<Self, EngineError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let channel = crate::dial::channel_with(connector, None, true)
            .await
            .map_err(EngineError::Connect)?;
        Ok(Self::from_channel(channel))
    }

    /// Plain TCP (lazy, like [`LiteEngineClient::connect_with`]).
    pub async fn connect_tcp(addr: SocketAddr) -> Result<Self, EngineError> {
        Self::connect_with(move || tokio::net::TcpStream::connect(addr)).await
    }

    /// `pod_ip:20001` through the node agent listening at `agent_socket` (lazy, like
    /// [`LiteEngineClient::connect_with`]).
    pub async fn connect_via_agent(agent_socket: PathBuf, pod_ip: IpAddr) -> Result<Self, EngineError> {
        let target = SocketAddr::new(pod_ip, LITE_ENGINE_PORT);
        Self::connect_with(move || {
            let path = agent_socket.clone();
            async move {
                crate::node_agent::connect_via_agent(&path, target)
                    .await
                    .map_err(std::io::Error::from)
            }
        })
        .await
    }

    /// Replaces the wait for a status of a step without a timeout (default 4 h + grace).
    pub fn with_default_status_wait(mut self, wait: Duration) -> Self {
        self.default_status_wait = wait;
        self
    }

    /// `LiteEngine.Ping`.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.client
            .clone()
            .ping(PingRequest {})
            .await
            .map(|_| ())
            .map_err(|source| EngineError::Rpc {
                call: "Ping",
                source: Box::new(source),
            })
    }

    /// Starts `step` and waits for its status callback on `delegate` (for the step's timeout
    /// plus [`STATUS_GRACE`]).
    pub async fn execute_step(&self, delegate: &DelegateServer, step: StepSpec) -> Result<StepStatus, EngineError> {
        if step.id.is_empty() {
            return Err(EngineError::InvalidStep("empty step id".into()));
        }
        if step.container_port == 0 {
            return Err(EngineError::InvalidStep(format!("step {}: container port 0", step.id)));
        }
        let task_id = step.effective_task_id();
        let wait = step
            .timeout
            .map(|t| t + STATUS_GRACE)
            .unwrap_or(self.default_status_wait);
        let rx = delegate.expect(&task_id);
        let request = ExecuteStepRequest {
            execution_id: step.id.clone(),
            step: Some(step.to_unit_step()),
            tmp_file_path: crate::lite_engine::DEFAULT_TMP_DIR.to_string(),
            ..Default::default()
        };
        // ExecuteStep is idempotent per step id, so a call that may not have arrived (the
        // lite-engine still starting, a tunnel reset) is simply repeated.
        let mut attempt = 0;
        loop {
            match self.client.clone().execute_step(request.clone()).await {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::Unavailable && attempt < EXECUTE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(source) => {
                    return Err(EngineError::Rpc {
                        call: "ExecuteStep",
                        source: Box::new(source),
                    });
                }
            }
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) => Err(EngineError::StatusDropped { task_id }),
            Err(_) => Err(EngineError::StatusTimeout { task_id, after: wait }),
        }
    }
}
