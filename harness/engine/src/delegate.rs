//! The delegate side, used by the sgsim process on the host.
//!
//! [`DelegateServer`] serves the product's delegate task service
//! (`io.harness.task.service.TaskService/SendTaskStatus`) on unix sockets (each node's
//! `delegate.sock`), accepts a status only with its `token` and `serviceId` metadata, and hands
//! every reported status to whoever [`DelegateServer::expect`]ed its task id. On the same listener
//! (HTTP/2 for gRPC, HTTP/1.1 too) it serves the log service under
//! [`crate::log_service::LOG_SERVICE_PATH`]: what the lite-engines stream there is in
//! [`DelegateServer::logs`]. [`LiteEngineClient`] talks to a pod's lite-engine, usually through a
//! node agent tunnel ([`LiteEngineClient::connect_via_agent`]).

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
use crate::log_service::{LOG_SERVICE_PATH, LogStore};
/// Interpreter of a Run step (the wire enum; core's `model::Shell` is the scenario's spelling).
pub use crate::proto::engine::ShellType;
use crate::proto::engine::lite_engine_client::LiteEngineClient as LiteEngineGrpc;
use crate::proto::engine::{ExecuteStepRequest, PingRequest, PluginStep, RunStep, StepContext, UnitStep, unit_step};
use crate::proto::task_service::task_service_server::{TaskService, TaskServiceServer};
use crate::proto::task_service::{SendTaskStatusRequest, SendTaskStatusResponse, StepExecutionStatus};

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

/// The value of DELEGATE_SERVICE_ID in the product's pod, expected as the `serviceId` metadata.
pub const DELEGATE_SERVICE_ID: &str = "delegate-grpc-service";

/// A step's outcome as reported by the lite-engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStatus {
    pub status: Status,
    /// The step process's exit code, as far as the report tells it: 0 for a step that ran to
    /// success (not a detached one), `n` for the addon's `exit status <n>`.
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub outputs: BTreeMap<String, String>,
    /// How long the lite-engine says the step took.
    pub took: Duration,
    /// How many bytes the step container's log holds at least once the step ended. The product's
    /// protocol carries no such count (`None` for every status that came over the wire); an
    /// in-process lite-engine (the fake tier's) knows it.
    pub log_bytes: Option<u64>,
}

impl StepStatus {
    fn from_report(r: SendTaskStatusRequest) -> Self {
        use crate::proto::task_service::step_status::Output;
        use crate::proto::task_service::task_status_data::StatusData;
        let st = r
            .task_status_data
            .and_then(|d| d.status_data)
            .map(|StatusData::StepStatus(s)| s)
            .unwrap_or_default();
        let status = match st.step_execution_status() {
            StepExecutionStatus::Success => Status::Success,
            StepExecutionStatus::Aborted => Status::Aborted,
            StepExecutionStatus::Skipped => Status::Skipped,
            StepExecutionStatus::Failure | StepExecutionStatus::Running | StepExecutionStatus::Queued => {
                Status::Failure
            }
        };
        let exit_code = st
            .error_message
            .strip_prefix("exit status ")
            .and_then(|n| n.trim().parse().ok());
        let took = st
            .total_time_taken
            .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
            .unwrap_or_default();
        StepStatus {
            status,
            exit_code,
            error: Some(st.error_message).filter(|e| !e.is_empty()),
            outputs: match st.output {
                Some(Output::StepOutput(o)) => o.output.into_iter().collect(),
                None => BTreeMap::new(),
            },
            took,
            log_bytes: None,
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

    /// The step's timeout as the lite-engine gets it (whole seconds, at least 1).
    fn timeout_secs(&self) -> Option<Duration> {
        self.timeout.map(|t| Duration::from_secs(t.as_secs().max(1)))
    }

    /// What the delegate makes of a reported status, `elapsed` after it started the step: a
    /// step that did not succeed within its timeout has expired (the product's platform expires
    /// it; the lite-engine's status enum has no timeout), and a step that ran a process to
    /// success (not a detached one) exited 0.
    fn judge(&self, mut st: StepStatus, elapsed: Duration) -> StepStatus {
        let expired = self.timeout_secs().is_some_and(|t| elapsed >= t);
        if expired && matches!(st.status, Status::Failure | Status::Aborted) {
            st.status = Status::Timeout;
            st.exit_code = None;
        }
        let detached = matches!(self.kind, StepCommand::Run { detach: true, .. });
        if st.status == Status::Success && !detached {
            st.exit_code = Some(0);
        }
        st
    }

    /// The wire form of this step.
    pub fn to_unit_step(&self) -> UnitStep {
        let context = Some(StepContext {
            num_retries: 0,
            execution_timeout_secs: self.timeout_secs().map(|t| t.as_secs() as i64).unwrap_or(0),
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

#[derive(Clone)]
struct StatusSink {
    registry: Arc<Mutex<Registry>>,
    /// DELEGATE_SERVICE_TOKEN of the pods this delegate serves.
    token: Arc<str>,
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
impl TaskService for StatusSink {
    async fn send_task_status(
        &self,
        request: Request<SendTaskStatusRequest>,
    ) -> Result<Response<SendTaskStatusResponse>, tonic::Status> {
        let md = request.metadata();
        let token = md.get("token").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let service = md.get("serviceid").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if service != DELEGATE_SERVICE_ID {
            return Err(tonic::Status::unauthenticated(format!(
                "unknown serviceId {service:?} (expected {DELEGATE_SERVICE_ID:?})"
            )));
        }
        if token != &*self.token {
            return Err(tonic::Status::unauthenticated("invalid token"));
        }
        let r = request.into_inner();
        let task_id = r.task_id.as_ref().map(|t| t.id.clone()).unwrap_or_default();
        if task_id.is_empty() {
            return Err(tonic::Status::invalid_argument("task id is empty"));
        }
        self.deliver(task_id, StepStatus::from_report(r));
        Ok(Response::new(SendTaskStatusResponse { success: true }))
    }
}

/// Serves the delegate task service and routes statuses by task id.
#[derive(Clone)]
pub struct DelegateServer {
    sink: StatusSink,
    logs: LogStore,
}

impl Default for DelegateServer {
    fn default() -> Self {
        Self::new()
    }
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
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl DelegateServer {
    /// A delegate with a fresh random token (see [`DelegateServer::token`]).
    pub fn new() -> Self {
        Self::with_token(&random_token())
    }

    /// A delegate that accepts statuses carrying `token`.
    pub fn with_token(token: &str) -> Self {
        DelegateServer {
            sink: StatusSink {
                registry: Arc::default(),
                token: token.into(),
            },
            logs: LogStore::new(token),
        }
    }

    /// What the pods' lite-engines sent to the log service (HARNESS_LOG_SERVICE_TOKEN is
    /// [`DelegateServer::token`] too).
    pub fn logs(&self) -> &LogStore {
        &self.logs
    }

    /// The delegate's gRPC services and the log service, as one router.
    fn routes(&self) -> tonic::service::Routes {
        let grpc = tonic::service::Routes::new(TaskServiceServer::new(self.sink.clone())).into_axum_router();
        tonic::service::Routes::from(grpc.nest(LOG_SERVICE_PATH, crate::log_service::router(self.logs.clone())))
    }

    fn spawn_serving<I, IO, IE>(&self, incoming: I, stop: &CancellationToken)
    where
        I: futures::Stream<Item = Result<IO, IE>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let routes = self.routes();
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
        });
    }

    /// Serves on a TCP address (tests and tools; pods reach the delegate through a node's
    /// `delegate.sock`). The address actually bound, and the guard that keeps it served.
    pub async fn serve_tcp(&self, addr: SocketAddr) -> Result<(SocketAddr, ServeGuard), EngineError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EngineError::Listen { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| EngineError::Listen { addr, source })?;
        let stop = CancellationToken::new();
        self.spawn_serving(tokio_stream::wrappers::TcpListenerStream::new(listener), &stop);
        Ok((
            bound,
            ServeGuard {
                stop,
                path: PathBuf::new(),
            },
        ))
    }

    /// The DELEGATE_SERVICE_TOKEN its lite-engines must send (the pod gets it from a Secret).
    pub fn token(&self) -> &str {
        &self.sink.token
    }

    /// Serves on a unix socket at `path` (a stale file there is replaced; the socket is made
    /// world-accessible so a node's root can use it). May be called for several sockets.
    pub async fn serve_unix(&self, path: &Path) -> Result<ServeGuard, EngineError> {
        let listener = crate::node_agent::bind_unix(path).map_err(|e| EngineError::Bind {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        let stop = CancellationToken::new();
        self.spawn_serving(tokio_stream::wrappers::UnixListenerStream::new(listener), &stop);
        Ok(ServeGuard {
            stop,
            path: path.to_path_buf(),
        })
    }

    /// Delivers `status` for `task_id` as if a lite-engine had called `SendTaskStatus` (for
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
        let started = tokio::time::Instant::now();
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
            Ok(Ok(status)) => Ok(step.judge(status, started.elapsed())),
            Ok(Err(_)) => Err(EngineError::StatusDropped { task_id }),
            Err(_) => Err(EngineError::StatusTimeout { task_id, after: wait }),
        }
    }
}

/// 32 hex digits from the standard library's per-process random hash keys.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i ^ std::process::id() as u64);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}
