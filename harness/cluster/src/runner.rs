//! Runs one scenario's step group on a cluster, as the product's delegate would.
//!
//! The runner only speaks Kubernetes through `kube::Client` (so it drives the embedded cluster and a
//! real one alike) and the engine's gRPC through a [`PodDialer`] (a tunnel to `podIP:port`). It:
//! creates the fixtures, creates the rendered Pod, writes the Initialize log from the pod's events,
//! waits for the pod to run (within `initTimeout`), executes the plan's steps through the
//! lite-engine, collects step logs and the stored Pod, and deletes the pod. Everything it observes is
//! returned as a [`RunRecord`] and reported live as [`RunEvent`]s.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use sgsim_core::render::{ExecutionPlan, PlanNode, PlannedStep};
use sgsim_core::{Scenario, model};
use sgsim_engine::delegate::{DelegateServer, LiteEngineClient, Shell, Status, StepKind, StepSpec};

/// Opens a byte stream to `ip:port` of a pod running on `node`.
pub trait PodDialer: Send + Sync + 'static {
    /// Dial `ip:port` on the node named `node` (the Kubernetes node name).
    fn dial(&self, node: &str, ip: IpAddr, port: u16) -> BoxFuture<'static, std::io::Result<tokio::net::UnixStream>>;
}

/// Errors of a run that prevent a [`RunRecord`] (the step group failing is not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {what}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The lite-engine could not be reached or misbehaved.
    #[error("lite-engine of pod {pod}: {source}")]
    Engine {
        /// Pod name.
        pod: String,
        /// The engine's error.
        #[source]
        source: sgsim_engine::EngineError,
    },
}

/// Level of an Initialize log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Normal events and the product's own lines.
    Info,
    /// Warning events.
    Warn,
}

/// One line of the Initialize step log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitLine {
    /// Level.
    pub level: Level,
    /// Text, verbatim.
    pub text: String,
}

/// Final status of a step or of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded.
    Success,
    /// Failed (non-zero exit or error).
    Failed,
    /// Killed by its timeout.
    Timeout,
    /// Aborted.
    Aborted,
    /// Not run.
    Skipped,
}

impl Outcome {
    /// As written in result.yaml and scenario expectations.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::Failed => "Failed",
            Outcome::Timeout => "Timeout",
            Outcome::Aborted => "Aborted",
            Outcome::Skipped => "Skipped",
        }
    }
}

/// What one step did.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// Step identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Container the step ran in.
    pub container: Option<String>,
    /// Outcome.
    pub status: Outcome,
    /// Exit code of the command, when it ran.
    pub exit_code: Option<i32>,
    /// Error message, when it failed.
    pub error: Option<String>,
    /// Exported output variables.
    pub outputs: BTreeMap<String, String>,
    /// The step's log (its container's log). For a Background step, what the service printed
    /// until the group ended.
    pub log: String,
    /// Whether the step runs detached (Background): its log is live service output.
    pub background: bool,
    /// How long it took.
    pub took: Duration,
}

/// Everything a run observed.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The Pod as the API server stored it at the end of the run (before deletion).
    pub pod: Option<Pod>,
    /// The Initialize step log.
    pub initialize: Vec<InitLine>,
    /// Steps in plan order.
    pub steps: Vec<StepRecord>,
    /// Status of the step group.
    pub status: Outcome,
    /// Why the group failed, when it did before its steps (pod never ran).
    pub error: Option<String>,
    /// The node the pod ran on.
    pub node: Option<String>,
}

/// Live progress of a run, for the reporter.
#[derive(Clone, Debug)]
pub enum RunEvent {
    /// An Initialize log line.
    Init(InitLine),
    /// A step started.
    StepStarted {
        /// Step id.
        id: String,
        /// Display name.
        name: String,
    },
    /// A step ended; its log is complete.
    StepFinished(StepRecord),
}

/// The ENTRYPOINT and CMD of an image (the delegate asks the lite-engine's GetImageEntrypoint in
/// the product; sgsim knows its stand-ins).
pub type ImageEntrypoint = Arc<dyn Fn(&str) -> Option<(Vec<String>, Vec<String>)> + Send + Sync>;

/// Options of a run.
#[derive(Clone)]
pub struct RunOptions {
    /// Unique prefix for task ids (the run id).
    pub task_prefix: String,
    /// Keep the pod after the run (debugging).
    pub keep_pod: bool,
    /// Poll interval for events and pod status.
    pub poll: Duration,
    /// Image ENTRYPOINT/CMD lookup, for Background steps that set neither entrypoint nor command.
    pub image_entrypoint: Option<ImageEntrypoint>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("task_prefix", &self.task_prefix).field("keep_pod", &self.keep_pod).finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { task_prefix: "sgsim".into(), keep_pod: false, poll: Duration::from_millis(150), image_entrypoint: None }
    }
}

fn kerr(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Kube { what, source }
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Creates the scenario's fixtures (namespaces, service accounts, configMaps, secrets).
pub async fn create_fixtures(client: &kube::Client, scenario: &Scenario) -> Result<(), RunError> {
    let f = scenario.fixtures();
    let mut namespaces: Vec<String> = f.namespaces.clone();
    if scenario.header.bare && !namespaces.iter().any(|n| n == scenario.namespace()) {
        namespaces.push(scenario.namespace().to_string());
    }
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &namespaces {
        let obj = Namespace { metadata: meta(ns, None), ..Default::default() };
        match ns_api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(kerr(format!("create namespace {ns}"))(e)),
        }
    }
    let default_ns = scenario.namespace().to_string();
    let ns_of = |n: &Option<String>| n.clone().unwrap_or_else(|| default_ns.clone());
    for sa in &f.service_accounts {
        let ns = ns_of(&sa.namespace);
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let obj = ServiceAccount { metadata: meta(&sa.name, Some(&ns)), ..Default::default() };
        create_ignoring_conflict(&api, &obj, format!("create serviceaccount {ns}/{}", sa.name)).await?;
    }
    for cm in &f.config_maps {
        let ns = ns_of(&cm.namespace);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let obj = ConfigMap {
            metadata: meta(&cm.name, Some(&ns)),
            data: Some(cm.data.clone()),
            ..Default::default()
        };
        create_ignoring_conflict(&api, &obj, format!("create configmap {ns}/{}", cm.name)).await?;
    }
    for s in &f.secrets {
        let ns = ns_of(&s.namespace);
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let obj = Secret {
            metadata: meta(&s.name, Some(&ns)),
            string_data: Some(s.data.clone()),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        create_ignoring_conflict(&api, &obj, format!("create secret {ns}/{}", s.name)).await?;
    }
    Ok(())
}

async fn create_ignoring_conflict<K>(api: &Api<K>, obj: &K, what: String) -> Result<(), RunError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => Err(kerr(what)(e)),
    }
}

fn meta(name: &str, ns: Option<&str>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.to_string()),
        namespace: ns.map(str::to_string),
        ..Default::default()
    }
}

/// Where the pod got to while waiting for it.
enum PodStart {
    Running { node: String, ip: IpAddr },
    Failed(String),
    TimedOut,
}

/// Streams the pod's events into the Initialize log (deduplicated by uid, in creation order).
struct EventTail {
    api: Api<Event>,
    selector: String,
    seen: HashSet<String>,
}

impl EventTail {
    async fn poll(&mut self, out: &mut Vec<InitLine>, sink: &(dyn Fn(RunEvent) + Send + Sync)) -> Result<(), RunError> {
        let list = self.api.list(&ListParams::default().fields(&self.selector)).await.map_err(kerr("list pod events"))?;
        for ev in list.items {
            let key = ev.metadata.uid.clone().or(ev.metadata.name.clone()).unwrap_or_default();
            if !self.seen.insert(key) {
                continue;
            }
            let level = if ev.type_.as_deref() == Some("Warning") { Level::Warn } else { Level::Info };
            let line = InitLine { level, text: ev.message.unwrap_or_default() };
            sink(RunEvent::Init(line.clone()));
            out.push(line);
        }
        Ok(())
    }
}

fn push_line(out: &mut Vec<InitLine>, sink: &(dyn Fn(RunEvent) + Send + Sync), level: Level, text: String) {
    let line = InitLine { level, text };
    sink(RunEvent::Init(line.clone()));
    out.push(line);
}

/// Runs the scenario's step group. The cluster must be up; fixtures are created here.
pub async fn run(
    client: kube::Client,
    dialer: Arc<dyn PodDialer>,
    delegate: &DelegateServer,
    scenario: &Scenario,
    opts: &RunOptions,
    sink: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<RunRecord, RunError> {
    create_fixtures(&client, scenario).await?;
    let pod = sgsim_core::render_pod(scenario);
    let plan = sgsim_core::plan(scenario);
    let ns = plan.namespace.clone();
    let name = plan.pod_name.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut init = Vec::new();
    push_line(&mut init, sink, Level::Info, format!("Starting job to create pod {name} on {ns} namespace"));

    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        let msg = match &e {
            kube::Error::Api(s) => s.message.clone(),
            other => other.to_string(),
        };
        push_line(&mut init, sink, Level::Warn, msg.clone());
        push_line(&mut init, sink, Level::Info, format!("Pod {name} has failed to start on {ns} namespace"));
        return Ok(RunRecord {
            pod: None,
            initialize: init,
            steps: skipped_steps(&plan),
            status: Outcome::Failed,
            error: Some(msg),
            node: None,
        });
    }

    let mut tail = EventTail {
        api: Api::namespaced(client.clone(), &ns),
        selector: format!("involvedObject.name={name},involvedObject.kind=Pod"),
        seen: HashSet::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(plan.init_timeout_secs);
    let start = loop {
        tail.poll(&mut init, sink).await?;
        let p = pods.get(&name).await.map_err(kerr(format!("get pod {ns}/{name}")))?;
        match pod_start_state(&p) {
            Some(s) => break s,
            None if Instant::now() >= deadline => break PodStart::TimedOut,
            None => tokio::time::sleep(opts.poll).await,
        }
    };
    // Events written just before the pod turned Running (e.g. `Started container lite-engine`).
    tokio::time::sleep(opts.poll).await;
    tail.poll(&mut init, sink).await?;

    let (node, ip) = match start {
        PodStart::Running { node, ip } => {
            push_line(&mut init, sink, Level::Info, format!("Pod {name} is now in running status on {ns} namespace"));
    crate::registry::create_pull_secrets(&client, scenario).await.map_err(kerr("create image pull secrets".to_string()))?;
            (node, ip)
        }
        PodStart::Failed(why) => {
            push_line(&mut init, sink, Level::Info, format!("Pod {name} has failed to start on {ns} namespace"));
            let stored = pods.get(&name).await.ok();
            cleanup(&pods, &name, opts).await;
            return Ok(RunRecord { pod: stored, initialize: init, steps: skipped_steps(&plan), status: Outcome::Failed, error: Some(why), node: None });
        }
        PodStart::TimedOut => {
            push_line(&mut init, sink, Level::Info, format!("Pod {name} has failed to start on {ns} namespace"));
            let why = format!("Pod {name} did not reach running status within the init timeout of {}s", plan.init_timeout_secs);
            let stored = pods.get(&name).await.ok();
            cleanup(&pods, &name, opts).await;
            return Ok(RunRecord { pod: stored, initialize: init, steps: skipped_steps(&plan), status: Outcome::Failed, error: Some(why), node: None });
        }
    };

    let engine = {
        let dialer = dialer.clone();
        let node = node.clone();
        LiteEngineClient::connect_with(move || {
            let dialer = dialer.clone();
            let node = node.clone();
            async move { dialer.dial(&node, ip, plan_port()).await }
        })
        .await
        .map_err(|source| RunError::Engine { pod: name.clone(), source })?
    };
    wait_engine_ready(&engine, &name).await?;

    let ctx = StepCtx { engine: &engine, delegate, pods: &pods, pod: &name, plan: &plan, opts, sink };
    let mut steps = Vec::new();
    let mut failed = false;
    for node_ in &plan.steps {
        let batch = ctx.run_node(node_, failed).await;
        failed |= batch.iter().any(|s| matches!(s.status, Outcome::Failed | Outcome::Timeout | Outcome::Aborted));
        steps.extend(batch);
    }
    for (rec, planned) in steps.iter_mut().zip(plan.flat()) {
        if let (true, Some(c), Outcome::Success) = (planned.detach, &planned.container, rec.status) {
            rec.log = ctx.container_log(c).await;
        }
    }
    let stored = pods.get(&name).await.map_err(kerr(format!("get pod {ns}/{name}")))?;
    cleanup(&pods, &name, opts).await;
    Ok(RunRecord {
        pod: Some(stored),
        initialize: init,
        steps,
        status: if failed { Outcome::Failed } else { Outcome::Success },
        error: None,
        node: Some(node),
    })
}

const fn plan_port() -> u16 {
    sgsim_engine::delegate::LITE_ENGINE_PORT
}

async fn wait_engine_ready(engine: &LiteEngineClient, pod: &str) -> Result<(), RunError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match engine.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(RunError::Engine { pod: pod.to_string(), source: e }),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn cleanup(pods: &Api<Pod>, name: &str, opts: &RunOptions) {
    if opts.keep_pod {
        return;
    }
    let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
}

fn pod_start_state(p: &Pod) -> Option<PodStart> {
    let status = p.status.as_ref()?;
    match status.phase.as_deref() {
        Some("Running") => {
            let all_started = status
                .container_statuses
                .as_ref()
                .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())));
            if !all_started {
                return None;
            }
            let ip = status.pod_ip.as_deref().and_then(|s| s.parse().ok())?;
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone())?;
            Some(PodStart::Running { node, ip })
        }
        Some("Failed") => Some(PodStart::Failed(status.message.clone().unwrap_or_else(|| "pod failed".into()))),
        Some("Succeeded") => Some(PodStart::Failed("pod completed before its steps ran".into())),
        _ => None,
    }
}

fn skipped_steps(plan: &ExecutionPlan) -> Vec<StepRecord> {
    plan.flat().into_iter().map(|s| skipped(s)).collect()
}

fn skipped(s: &PlannedStep) -> StepRecord {
    StepRecord {
        id: s.id.clone(),
        name: s.name.clone(),
        container: s.container.clone(),
        status: Outcome::Skipped,
        exit_code: None,
        error: None,
        outputs: BTreeMap::new(),
        log: String::new(),
        background: s.detach,
        took: Duration::ZERO,
    }
}

struct StepCtx<'a> {
    engine: &'a LiteEngineClient,
    delegate: &'a DelegateServer,
    pods: &'a Api<Pod>,
    pod: &'a str,
    plan: &'a ExecutionPlan,
    opts: &'a RunOptions,
    sink: &'a (dyn Fn(RunEvent) + Send + Sync),
}

impl StepCtx<'_> {
    fn run_node<'b>(&'b self, node: &'b PlanNode, skip: bool) -> BoxFuture<'b, Vec<StepRecord>> {
        Box::pin(async move {
            match node {
                PlanNode::Step(s) if skip => {
                    let r = skipped(s);
                    (self.sink)(RunEvent::StepFinished(r.clone()));
                    vec![r]
                }
                PlanNode::Step(s) => vec![self.run_step(s).await],
                PlanNode::Parallel(children) => {
                    let runs = children.iter().map(|c| self.run_node(c, skip));
                    futures::future::join_all(runs).await.into_iter().flatten().collect()
                }
            }
        })
    }

    async fn run_step(&self, s: &PlannedStep) -> StepRecord {
        (self.sink)(RunEvent::StepStarted { id: s.id.clone(), name: s.name.clone() });
        let started = Instant::now();
        let mut rec = skipped(s);
        match (s.kind, s.port) {
            (model::StepKind::Run | model::StepKind::Background, Some(port)) => {
                let spec = self.step_spec(s, port);
                match self.engine.execute_step(self.delegate, spec).await {
                    Ok(st) => {
                        rec.status = match st.status {
                            Status::Success => Outcome::Success,
                            Status::Failure => Outcome::Failed,
                            Status::Timeout => Outcome::Timeout,
                            Status::Aborted => Outcome::Aborted,
                            Status::Skipped => Outcome::Skipped,
                        };
                        rec.exit_code = st.exit_code;
                        rec.error = st.error;
                        rec.outputs = st.outputs;
                    }
                    Err(e) => {
                        rec.status = Outcome::Failed;
                        rec.error = Some(e.to_string());
                    }
                }
            }
            (kind, _) => {
                rec.status = Outcome::Failed;
                rec.error = Some(format!("step type {} ({kind:?}) is not supported by sgsim yet", s.step_type));
            }
        }
        rec.took = started.elapsed();
        // A Background step keeps running: its log is read when the group ends.
        if let (Some(c), false) = (&s.container, s.detach) {
            rec.log = self.container_log(c).await;
        }
        (self.sink)(RunEvent::StepFinished(rec.clone()));
        rec
    }

    fn step_spec(&self, s: &PlannedStep, port: u16) -> StepSpec {
        let shell = match s.shell {
            model::Shell::Sh => Shell::Sh,
            model::Shell::Bash => Shell::Bash,
            model::Shell::Powershell => Shell::Powershell,
            model::Shell::Pwsh => Shell::Pwsh,
            model::Shell::Python => Shell::Python,
        };
        let task_id = format!("{}-{}-{}", self.opts.task_prefix, self.pod, s.id);
        // A Background step with neither entrypoint nor command runs its image's own
        // ENTRYPOINT + CMD (what the product learns through GetImageEntrypoint).
        let mut entrypoint = s.entrypoint.clone();
        let no_command = s.command.as_deref().is_none_or(|c| c.trim().is_empty());
        if s.detach && entrypoint.is_empty() && no_command {
            if let (Some(lookup), Some(image)) = (&self.opts.image_entrypoint, &s.image) {
                if let Some((ep, cmd)) = lookup(image) {
                    entrypoint = ep.into_iter().chain(cmd).collect();
                }
            }
        }
        StepSpec {
            id: s.id.clone(),
            display_name: s.name.clone(),
            container_port: port,
            kind: StepKind::Run {
                command: s.command.clone().unwrap_or_default(),
                shell,
                env: s.env.iter().cloned().collect(),
                image: s.image.clone().unwrap_or_default(),
                entrypoint,
                detach: s.detach,
                output_vars: s.output_variables.clone(),
                reports: s.report_paths.clone(),
            },
            timeout: Some(Duration::from_secs(s.timeout_secs)),
            callback_token: format!("token-{task_id}"),
            log_key: format!("{}/{}", self.plan.ids.execution_id, s.id),
            account_id: self.plan.ids.account_id.clone(),
            task_id,
        }
    }

    /// The step container's log (the addon prints exactly the step's output).
    async fn container_log(&self, container: &str) -> String {
        let params = LogParams { container: Some(container.to_string()), ..Default::default() };
        match self.pods.logs(self.pod, &params).await {
            Ok(s) => s,
            Err(e) => format!("<sgsim: could not read the log of container {container}: {e}>\n"),
        }
    }
}
