//! The fake runtime tier (`--runtime fake`, kwok-like): the real API server and scheduler, fake
//! kubelets ([`crate::fake_kubelet`]) and a fake lite-engine, so a scenario runs with no container
//! and no Docker. Container lifecycles, latencies, step exit codes, logs and outputs come from the
//! scenario's `fake:` data ([`sgsim_core::scenario::FakeSpec`]); the runner ([`crate::runner::run`])
//! is the same as on the Docker tier, so Initialize logs, failure strategies, `when`, retries and
//! results are produced by the same code.
//!
//! The fake lite-engine is a real `LiteEngine` gRPC server over in-memory pipes (the [`PodDialer`]
//! of a [`FakeCluster`] opens one for every connection); each `ExecuteStep` waits the step's
//! `duration`, appends its `log` to the step container's log (served through `pods/log`) and
//! delivers its status to the run's [`DelegateServer`].
//!
//! Nothing in a fake cluster talks over a socket: its clients reach the API server through
//! [`ApiServerHandle::local_client`], the runner reaches the engine through in-memory pipes. So
//! [`run_on_virtual_clock`] can run it on a paused tokio clock: latencies, backoffs, `initTimeout`
//! and step timeouts advance simulated time the moment every task waits, and a scenario that waits
//! five minutes in the product ends in milliseconds with the same Initialize log.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use sgsim_core::Scenario;
use sgsim_core::render::PlannedStep;
use sgsim_core::scenario::FakeSpec;
use sgsim_engine::delegate::{DelegateServer, Status, StepStatus};
use sgsim_engine::proto::engine::lite_engine_server::{LiteEngine, LiteEngineServer};
use sgsim_engine::proto::engine::{
    EvaluateJexlRequest, EvaluateJexlResponse, ExecuteStepRequest, ExecuteStepResponse, GetImageEntrypointRequest,
    GetImageEntrypointResponse, PingRequest, PingResponse, UpdateStateRequest, UpdateStateResponse,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response};

use crate::apiserver::{
    ApiServer, ApiServerError, ApiServerHandle, ApiServerOptions, LogError, LogOptions, LogStream, PodLogSource,
};
use crate::fake_kubelet::{ContainerKill, FakeKubeletHandle, FakeProfile, spawn_fake_kubelet};
use crate::k8s::messages::DEFAULT;
use crate::runner::{PodDialer, PodStream};
use crate::scheduler::{SchedulerHandle, spawn_scheduler_with};

/// Errors starting a fake cluster.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The API server did not start.
    #[error("the API server did not start")]
    ApiServer(#[source] ApiServerError),
    /// A fixture node could not be created.
    #[error("cannot create node {node}")]
    Node {
        /// Node name.
        node: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The thread of the fake tier's virtual clock could not be started.
    #[error("cannot start the fake tier's thread")]
    Thread(#[source] std::io::Error),
    /// The fake tier's thread ended without a result (it panicked).
    #[error("the fake tier's thread ended without a result: {0}")]
    Panicked(String),
}

/// The [`FakeProfile`] of a scenario's `fake:` data.
pub fn profile(fake: &FakeSpec) -> FakeProfile {
    FakeProfile {
        pull: Duration::from_millis(fake.pull_millis),
        image_users: fake.image_users.clone(),
        exit_codes: fake.exit_codes.clone(),
        present: Vec::new(),
        kills: None,
        run_for: None,
    }
}

/// Container logs written by the fake lite-engine: `container → text` (one pod per cluster).
#[derive(Clone, Default)]
struct FakeLogs {
    logs: Arc<Mutex<HashMap<String, String>>>,
}

impl FakeLogs {
    fn append(&self, container: &str, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let log = logs.entry(container.to_string()).or_default();
        log.push_str(text);
        if !text.ends_with('\n') {
            log.push('\n');
        }
    }

    fn get(&self, container: &str) -> String {
        let logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        logs.get(container).cloned().unwrap_or_default()
    }
}

impl PodLogSource for FakeLogs {
    fn logs(&self, _namespace: &str, _pod: &str, opts: LogOptions) -> BoxFuture<'static, Result<LogStream, LogError>> {
        let mut text = self.get(&opts.container);
        if let Some(n) = opts.tail_lines {
            let lines: Vec<&str> = text.lines().collect();
            let keep = usize::try_from(n.max(0)).unwrap_or(0).min(lines.len());
            text = lines[lines.len() - keep..].iter().map(|l| format!("{l}\n")).collect();
        }
        Box::pin(async move {
            let chunk: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from(text));
            let s: LogStream = Box::pin(futures::stream::iter([chunk]));
            Ok(s)
        })
    }
}

/// One planned step, as the fake lite-engine needs it.
#[derive(Clone, Debug)]
struct FakeTarget {
    container: Option<String>,
    timeout: Duration,
    detach: bool,
    output_vars: Vec<String>,
}

#[derive(Clone)]
struct FakeLiteEngine {
    fake: Arc<FakeSpec>,
    steps: Arc<BTreeMap<String, FakeTarget>>,
    delegate: DelegateServer,
    logs: FakeLogs,
    started: Arc<Mutex<std::collections::HashSet<String>>>,
    /// The run's pod (namespace, name) and where container kills go to its kubelet.
    pod: (String, String),
    kills: tokio::sync::broadcast::Sender<ContainerKill>,
}

/// `deploy_retry_2` → (`deploy`, 2); `deploy_reports` → (`deploy`, reports).
fn parse_step_id(id: &str) -> (&str, usize, bool) {
    if let Some((base, n)) = id.rsplit_once("_retry_")
        && let Ok(n) = n.parse::<usize>()
    {
        return (base, n, false);
    }
    if let Some(base) = id.strip_suffix("_reports") {
        return (base, 0, true);
    }
    (id, 0, false)
}

impl FakeLiteEngine {
    /// Runs one step as its data says and returns its status.
    async fn execute(&self, id: &str) -> StepStatus {
        let (base, n, reports) = parse_step_id(id);
        let mut st = StepStatus {
            status: Status::Success,
            exit_code: Some(0),
            error: None,
            outputs: BTreeMap::new(),
            took: Duration::ZERO,
            log_bytes: None,
        };
        if reports {
            // Report collection: the fake tier has no report files.
            return st;
        }
        let target = self.steps.get(base).cloned().unwrap_or(FakeTarget {
            container: None,
            timeout: Duration::from_secs(600),
            detach: false,
            output_vars: Vec::new(),
        });
        let attempt = self.fake.steps.get(base).map(|s| s.attempt(n)).unwrap_or_default();
        let took = Duration::from_millis(attempt.duration_millis);
        if !target.detach && took >= target.timeout {
            tokio::time::sleep(target.timeout).await;
            if let Some(c) = &target.container {
                self.logs.append(c, &attempt.log);
            }
            st.status = Status::Timeout;
            st.exit_code = None;
            return st;
        }
        if !target.detach {
            tokio::time::sleep(took).await;
        }
        if let Some(c) = &target.container {
            self.logs.append(c, &attempt.log);
        }
        if attempt.oom_killed
            && let Some(c) = &target.container
        {
            // The container dies with the addon in it: the call fails without an exit code, and the
            // kubelet reports the container terminated OOMKilled (137).
            let _ = self.kills.send(ContainerKill {
                namespace: self.pod.0.clone(),
                pod: self.pod.1.clone(),
                container: c.clone(),
                exit_code: 137,
                reason: "OOMKilled".into(),
            });
            st.status = Status::Failure;
            st.exit_code = None;
            st.error = Some("the step's container was killed".into());
            return st;
        }
        if attempt.exit_code != 0 && !target.detach {
            st.status = Status::Failure;
            st.exit_code = Some(attempt.exit_code);
            st.error = Some(format!("exit status {}", attempt.exit_code));
            return st;
        }
        if target.detach {
            // A Background step reports at once that it started; it has no exit code yet.
            st.exit_code = None;
        }
        st.outputs = attempt
            .outputs
            .iter()
            .filter(|(k, _)| target.output_vars.is_empty() || target.output_vars.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        st
    }
}

#[tonic::async_trait]
impl LiteEngine for FakeLiteEngine {
    async fn update_state(
        &self,
        _r: Request<UpdateStateRequest>,
    ) -> Result<Response<UpdateStateResponse>, tonic::Status> {
        Ok(Response::new(UpdateStateResponse {}))
    }

    async fn get_image_entrypoint(
        &self,
        _r: Request<GetImageEntrypointRequest>,
    ) -> Result<Response<GetImageEntrypointResponse>, tonic::Status> {
        Ok(Response::new(GetImageEntrypointResponse::default()))
    }

    async fn evaluate_jexl(
        &self,
        _r: Request<EvaluateJexlRequest>,
    ) -> Result<Response<EvaluateJexlResponse>, tonic::Status> {
        Ok(Response::new(EvaluateJexlResponse::default()))
    }

    async fn ping(&self, _r: Request<PingRequest>) -> Result<Response<PingResponse>, tonic::Status> {
        Ok(Response::new(PingResponse {}))
    }

    async fn execute_step(
        &self,
        r: Request<ExecuteStepRequest>,
    ) -> Result<Response<ExecuteStepResponse>, tonic::Status> {
        let step = r
            .into_inner()
            .step
            .ok_or_else(|| tonic::Status::invalid_argument("no step"))?;
        let task_id = if step.task_id.is_empty() {
            step.id.clone()
        } else {
            step.task_id.clone()
        };
        let fresh = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(step.id.clone());
        if fresh {
            let me = self.clone();
            tokio::spawn(async move {
                let mut st = me.execute(&step.id).await;
                // As the addon does: the log's length once the step ended.
                if let Some(c) = me
                    .steps
                    .get(parse_step_id(&step.id).0)
                    .and_then(|t| t.container.as_ref())
                {
                    st.log_bytes = Some(me.logs.get(c).len() as u64);
                }
                me.delegate.deliver(&task_id, st);
            });
        }
        Ok(Response::new(ExecuteStepResponse::default()))
    }
}

/// Dials the fake lite-engine: every connection is an in-memory pipe whose other end goes to the
/// engine's gRPC server. No socket: on the virtual clock ([`crate::runtime::FakeRuntime`]) a
/// byte written here wakes the server's task, so time never advances while a call is on its way.
struct FakeDialer {
    conns: tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>,
}

/// Bytes buffered in each direction of a fake lite-engine connection.
const PIPE_BUFFER: usize = 64 * 1024;

impl PodDialer for FakeDialer {
    fn dial(&self, _node: &str, _ip: IpAddr, _port: u16) -> BoxFuture<'static, std::io::Result<PodStream>> {
        let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
        let sent = self.conns.send(theirs);
        Box::pin(async move {
            sent.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the fake lite-engine stopped")
            })?;
            let stream: PodStream = Box::new(ours);
            Ok(stream)
        })
    }
}

/// Where [`run_on_virtual_clock`]'s work sends its run events.
pub type EventSender = Arc<dyn Fn(crate::runner::RunEvent) + Send + Sync>;

/// Runs `work` on a tokio runtime of its own, on a thread of its own, whose clock is paused: when
/// every task waits, the clock jumps to the next timer (`tokio::time::pause`). The events `work`
/// sends reach `sink` on the caller's task as they happen; the caller's own clock is untouched.
///
/// Only work that does no I/O with sockets, files or other threads belongs here (a fake cluster
/// with its local client and pipes): a wake-up tokio cannot see would let time run ahead of it.
pub async fn run_on_virtual_clock<T, F, Fut>(
    work: F,
    sink: &(dyn Fn(crate::runner::RunEvent) + Send + Sync),
) -> Result<T, FakeError>
where
    F: FnOnce(EventSender) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (done, mut result) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("sgsim-fake-clock".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done.send(Err(e));
                    return;
                }
            };
            let send: EventSender = Arc::new(move |e| {
                let _ = events.send(e);
            });
            let out = rt.block_on(work(send));
            // Stop what the work left running (watches, timers) before the thread ends.
            drop(rt);
            let _ = done.send(Ok(out));
        })
        .map_err(FakeError::Thread)?;
    let outcome = loop {
        tokio::select! {
            biased;
            Some(e) = received.recv() => sink(e),
            r = &mut result => break r,
        }
    };
    while let Ok(e) = received.try_recv() {
        sink(e);
    }
    match outcome {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(FakeError::Thread(e)),
        Err(_) => {
            let why = match thread.join() {
                Err(p) => p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into()),
                Ok(()) => "no result".into(),
            };
            Err(FakeError::Panicked(why))
        }
    }
}

/// A cluster of the fake tier for one scenario; stops everything on [`FakeCluster::shutdown`]
/// (or drop).
pub struct FakeCluster {
    api: Option<ApiServerHandle>,
    client: kube::Client,
    kubelets: Vec<FakeKubeletHandle>,
    scheduler: Option<SchedulerHandle>,
    delegate: DelegateServer,
    dialer: Arc<FakeDialer>,
    engine_stop: CancellationToken,
}

impl FakeCluster {
    /// Starts the API server, one fake kubelet per fixture node (with the scenario's `fake:`
    /// profile), the scheduler and the fake lite-engine.
    pub async fn start(scenario: &Scenario) -> Result<FakeCluster, FakeError> {
        let version = scenario.fixtures().kubernetes_version.as_deref();
        let messages = version.map_or(DEFAULT, crate::k8s::K8sMessages::for_version);
        let mut opts = ApiServerOptions::default();
        if let Some(v) = version {
            opts.git_version = crate::k8s::messages::git_version(v);
        }
        let api = ApiServer::start(opts).await.map_err(FakeError::ApiServer)?;
        let client = api.local_client();
        let fake = &scenario.header.fake;
        let logs = FakeLogs::default();
        let (kills, _) = tokio::sync::broadcast::channel(16);
        let nodes = scenario.fixtures().k8s_objects(scenario.namespace()).nodes;
        let node_api: Api<Node> = Api::all(client.clone());
        let mut kubelets = Vec::new();
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            node_api
                .create(&PostParams::default(), &n)
                .await
                .map_err(|source| FakeError::Node {
                    node: name.clone(),
                    source,
                })?;
            let mut p = profile(fake);
            p.kills = Some(kills.clone());
            p.present = scenario
                .fixtures()
                .nodes
                .iter()
                .filter(|f| f.name == name)
                .flat_map(|f| f.images.clone())
                .collect();
            kubelets.push(spawn_fake_kubelet(client.clone(), &name, messages, p));
            api.register_node_logs(&name, Arc::new(logs.clone()));
        }
        let scheduler = spawn_scheduler_with(client.clone(), messages);

        let plan = sgsim_core::plan(scenario);
        let steps: BTreeMap<String, FakeTarget> = plan
            .flat()
            .into_iter()
            .map(|s: &PlannedStep| {
                (
                    s.id.clone(),
                    FakeTarget {
                        container: s.container.clone(),
                        timeout: Duration::from_secs(s.timeout_secs),
                        detach: s.detach,
                        output_vars: s.output_variables.clone(),
                    },
                )
            })
            .collect();
        let delegate = DelegateServer::new();
        let engine = FakeLiteEngine {
            fake: Arc::new(fake.clone()),
            steps: Arc::new(steps),
            delegate: delegate.clone(),
            logs,
            started: Arc::default(),
            pod: (plan.namespace.clone(), plan.pod_name.clone()),
            kills,
        };
        let (conns, incoming) = tokio::sync::mpsc::unbounded_channel::<tokio::io::DuplexStream>();
        let engine_stop = CancellationToken::new();
        let stop = engine_stop.clone();
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::UnboundedReceiverStream::new(incoming).map(Ok::<_, std::io::Error>);
            let _ = tonic::transport::Server::builder()
                .add_service(LiteEngineServer::new(engine))
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await;
        });
        Ok(FakeCluster {
            api: Some(api),
            client,
            kubelets,
            scheduler: Some(scheduler),
            delegate,
            dialer: Arc::new(FakeDialer { conns }),
            engine_stop,
        })
    }

    /// A client of the cluster's API server.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API server.
    pub fn api(&self) -> Option<&ApiServerHandle> {
        self.api.as_ref()
    }

    /// Dials the fake lite-engine for any pod.
    pub fn dialer(&self) -> Arc<dyn PodDialer> {
        self.dialer.clone()
    }

    /// Where step statuses arrive.
    pub fn delegate(&self) -> &DelegateServer {
        &self.delegate
    }

    /// Stops the lite-engine, the kubelets, the scheduler and the API server.
    pub async fn shutdown(mut self) {
        self.engine_stop.cancel();
        for k in self.kubelets.drain(..) {
            k.shutdown().await;
        }
        if let Some(s) = self.scheduler.take() {
            s.shutdown().await;
        }
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.engine_stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_of_retries_and_reports() {
        assert_eq!(parse_step_id("deploy"), ("deploy", 0, false));
        assert_eq!(parse_step_id("deploy_retry_2"), ("deploy", 2, false));
        assert_eq!(parse_step_id("deploy_reports"), ("deploy", 0, true));
        assert_eq!(parse_step_id("my_retry_x"), ("my_retry_x", 0, false));
    }

    #[tokio::test]
    async fn the_virtual_clock_jumps_over_waits_and_forwards_events() {
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |e: crate::runner::RunEvent| {
            if let crate::runner::RunEvent::StepStarted { id, .. } = e {
                seen.lock().unwrap().push(id);
            }
        };
        let (virtual_elapsed, real) = run_on_virtual_clock(
            |events| async move {
                let real = std::time::Instant::now();
                let start = tokio::time::Instant::now();
                for id in ["one", "two"] {
                    // An hour of simulated waiting per event, and a timer racing it.
                    let timeout =
                        tokio::time::timeout(Duration::from_secs(7200), tokio::time::sleep(Duration::from_secs(3600)));
                    assert!(timeout.await.is_ok(), "the shorter timer fires first");
                    events(crate::runner::RunEvent::StepStarted {
                        id: id.into(),
                        name: id.into(),
                    });
                }
                (start.elapsed(), real.elapsed())
            },
            &record,
        )
        .await
        .expect("the work ran");
        assert_eq!(virtual_elapsed, Duration::from_secs(7200));
        assert!(real < Duration::from_secs(7200));
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    }

    #[tokio::test]
    async fn a_panic_on_the_virtual_clock_is_an_error() {
        let r = run_on_virtual_clock(|_| async { panic!("boom in the fake tier") }, &|_| {}).await;
        match r {
            Err(FakeError::Panicked(why)) => assert!(why.contains("boom in the fake tier"), "{why}"),
            Err(e) => panic!("another error: {e}"),
            Ok(()) => panic!("no error"),
        }
    }

    #[tokio::test]
    async fn a_fake_cluster_is_reached_through_its_local_client_and_pipes() {
        // The local client lists what the API server holds, and the dialer's pipe reaches the
        // engine's gRPC server: on the virtual clock, neither may be a socket.
        let pipeline = |_: &str| -> Result<String, sgsim_core::scenario::SourceError> {
            Ok(include_str!("../../../scenarios/step-fails/pipeline.yaml").to_string())
        };
        let scenario = sgsim_core::load(
            "scenario.yaml",
            include_str!("../../../scenarios/step-fails/scenario.yaml"),
            &pipeline,
        )
        .expect("step-fails loads");
        let cluster = FakeCluster::start(&scenario).await.expect("fake cluster");
        let nodes: Api<Node> = Api::all(cluster.client());
        let listed = nodes.list(&Default::default()).await.expect("list nodes");
        assert!(!listed.items.is_empty());
        let dialer = cluster.dialer();
        let engine = sgsim_engine::delegate::LiteEngineClient::connect_with(move || {
            dialer.dial("node", IpAddr::from([10, 0, 0, 1]), 20001)
        })
        .await
        .expect("client");
        engine.ping().await.expect("the fake engine answers over its pipe");
        cluster.shutdown().await;
    }

    #[test]
    fn tail_of_a_fake_log() {
        let logs = FakeLogs::default();
        logs.append("step-a", "one\ntwo\nthree");
        assert_eq!(logs.get("step-a"), "one\ntwo\nthree\n");
        logs.append("step-a", "");
        assert_eq!(logs.get("step-b"), "");
    }
}
