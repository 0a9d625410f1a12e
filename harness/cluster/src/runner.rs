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
use sgsim_engine::delegate::{DelegateServer, LiteEngineClient, ShellType, Status, StepCommand, StepSpec};

pub mod expr;
pub mod strategy;

use expr::{ExprEnv, StepValues};
use strategy::{Action, FailureType};

/// The product's failure message for a step killed by its `timeout` (harness-core
/// `ExpiryHelper.EXPIRE_ERROR_MESSAGE`, status EXPIRED, failure type TIMEOUT_FAILURE).
pub const STEP_EXPIRED_MESSAGE: &str =
    "Please Check the timeout configuration on the step to extend the duration of the step";

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
    /// Killed by its timeout (the product's status EXPIRED).
    Timeout,
    /// Failed, and a failure strategy ignored it (the product's IGNORE_FAILED).
    IgnoreFailed,
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
            Outcome::Timeout => "Expired",
            Outcome::IgnoreFailed => "IgnoreFailed",
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
    /// How many times it was executed (retries included; 0 when it never ran).
    pub attempts: u32,
    /// The failure strategy that was applied, e.g. `Retry`, `Ignore`, `Retry, then Ignore`
    /// (with where it was declared).
    pub strategy: Option<String>,
    /// Report files (reportPaths) collected when the group ended: path → content.
    pub reports: BTreeMap<String, String>,
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
        f.debug_struct("RunOptions")
            .field("task_prefix", &self.task_prefix)
            .field("keep_pod", &self.keep_pod)
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            task_prefix: "sgsim".into(),
            keep_pod: false,
            poll: Duration::from_millis(150),
            image_entrypoint: None,
        }
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
    // A bare pipeline's namespace is in its inferred fixtures (unless it is no valid name).
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &f.namespaces {
        let obj = Namespace {
            metadata: meta(ns, None),
            ..Default::default()
        };
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
        let obj = ServiceAccount {
            metadata: meta(&sa.name, Some(&ns)),
            ..Default::default()
        };
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
    crate::fixtures::create_pod_fixtures(client, scenario)
        .await
        .map_err(|crate::fixtures::FixtureError::Api { what, source }| RunError::Kube { what, source })?;
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
    Running {
        node: String,
        ip: IpAddr,
    },
    Failed(String),
    /// initTimeout passed; the product's error message.
    TimedOut(String),
}

/// Why a pod is not running when initTimeout has passed, as the product reports it
/// (harness-core `K8sTaskExecutor`-side pod wait: the waiting containers' messages, or else the pod
/// conditions' messages, joined with ", "; when there is none, "Timeout exception: Pod containers
/// failed to reach running state within N seconds"). Conditions without a message are left out.
pub fn init_timeout_message(p: &Pod, init_timeout_secs: u64) -> String {
    let status = p.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .filter(|c| !c.is_empty());
    let parts: Vec<String> = match containers {
        Some(cs) => cs
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
            .collect(),
        None => status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| cs.iter().filter_map(|c| c.message.clone()).collect())
            .unwrap_or_default(),
    };
    let msg = parts.join(", ");
    if msg.is_empty() {
        format!("Timeout exception: Pod containers failed to reach running state within {init_timeout_secs} seconds")
    } else {
        msg
    }
}

/// Streams the pod's events into the Initialize log (deduplicated by uid, in creation order).
struct EventTail {
    api: Api<Event>,
    selector: String,
    seen: HashSet<String>,
}

impl EventTail {
    async fn poll(&mut self, out: &mut Vec<InitLine>, sink: &(dyn Fn(RunEvent) + Send + Sync)) -> Result<(), RunError> {
        let list = self
            .api
            .list(&ListParams::default().fields(&self.selector))
            .await
            .map_err(kerr("list pod events"))?;
        for ev in list.items {
            let key = ev.metadata.uid.clone().or(ev.metadata.name.clone()).unwrap_or_default();
            if !self.seen.insert(key) {
                continue;
            }
            let level = if ev.type_.as_deref() == Some("Warning") {
                Level::Warn
            } else {
                Level::Info
            };
            let line = InitLine {
                level,
                text: ev.message.unwrap_or_default(),
            };
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
    crate::registry::create_pull_secrets(&client, scenario)
        .await
        .map_err(kerr("create image pull secrets".to_string()))?;
    let pod = sgsim_core::render_pod(scenario);
    let plan = sgsim_core::plan(scenario);
    // The group's own `when` (evaluated while the stage status is Success): a skipped group never
    // creates its pod.
    match group_runs(scenario, &plan) {
        Ok(true) => {}
        Ok(false) => {
            let steps = skipped_steps(&plan);
            for s in &steps {
                sink(RunEvent::StepFinished(s.clone()));
            }
            return Ok(RunRecord {
                pod: None,
                initialize: Vec::new(),
                steps,
                status: Outcome::Skipped,
                error: None,
                node: None,
            });
        }
        Err(why) => {
            return Ok(RunRecord {
                pod: None,
                initialize: Vec::new(),
                steps: skipped_steps(&plan),
                status: Outcome::Failed,
                error: Some(why),
                node: None,
            });
        }
    }
    let ns = plan.namespace.clone();
    let name = plan.pod_name.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut init = Vec::new();
    push_line(
        &mut init,
        sink,
        Level::Info,
        format!("Starting job to create pod {name} on {ns} namespace"),
    );

    if let Err(e) = pods.create(&PostParams::default(), &pod).await {
        let msg = match &e {
            kube::Error::Api(s) => s.message.clone(),
            other => other.to_string(),
        };
        push_line(&mut init, sink, Level::Warn, msg.clone());
        push_line(
            &mut init,
            sink,
            Level::Info,
            format!("Pod {name} has failed to start on {ns} namespace"),
        );
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
            None if Instant::now() >= deadline => {
                break PodStart::TimedOut(init_timeout_message(&p, plan.init_timeout_secs));
            }
            None => tokio::time::sleep(opts.poll).await,
        }
    };
    // Events written just before the pod turned Running (e.g. `Started container lite-engine`).
    tokio::time::sleep(opts.poll).await;
    tail.poll(&mut init, sink).await?;

    let (node, ip) = match start {
        PodStart::Running { node, ip } => {
            push_line(
                &mut init,
                sink,
                Level::Info,
                format!("Pod {name} is now in running status on {ns} namespace"),
            );
            (node, ip)
        }
        PodStart::Failed(why) | PodStart::TimedOut(why) => {
            push_line(
                &mut init,
                sink,
                Level::Info,
                format!("Pod {name} has failed to start on {ns} namespace"),
            );
            let stored = pods.get(&name).await.ok();
            cleanup(&pods, &name, opts).await;
            return Ok(RunRecord {
                pod: stored,
                initialize: init,
                steps: skipped_steps(&plan),
                status: Outcome::Failed,
                error: Some(why),
                node: None,
            });
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
        .map_err(|source| RunError::Engine {
            pod: name.clone(),
            source,
        })?
    };
    wait_engine_ready(&engine, &name).await?;

    let ctx = StepCtx {
        engine: &engine,
        delegate,
        pods: &pods,
        pod: &name,
        plan: &plan,
        opts,
        sink,
        group_failure_strategies: scenario.step_group.failure_strategies.as_ref(),
        stage_failure_strategies: scenario.stage.failure_strategies.as_ref(),
    };
    let mut env = expr_env(scenario, &plan);
    let mut steps: Vec<StepRecord> = Vec::new();
    let mut state = GroupState::default();
    for node_ in &plan.steps {
        let batch = ctx.run_node(node_, state, &env).await;
        for (rec, effect, fqn) in batch {
            match effect {
                Effect::None => {}
                Effect::Fail => state.failed = true,
                Effect::Abort => state.aborted = true,
            }
            env.steps.insert(
                rec.id.clone(),
                StepValues {
                    fqn,
                    outputs: rec.outputs.clone(),
                },
            );
            steps.push(rec);
        }
    }
    for (rec, planned) in steps.iter_mut().zip(plan.flat()) {
        if !planned.report_paths.is_empty() && rec.attempts > 0 {
            rec.reports = ctx.collect_reports(planned).await;
        }
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
        status: if state.aborted {
            Outcome::Aborted
        } else if state.failed {
            Outcome::Failed
        } else {
            Outcome::Success
        },
        error: None,
        node: Some(node),
    })
}

/// The values of run-time expressions for this scenario's run.
fn expr_env(scenario: &Scenario, plan: &ExecutionPlan) -> ExprEnv {
    ExprEnv {
        pipeline_name: scenario.pipeline.name.clone(),
        pipeline_identifier: scenario.pipeline.identifier.clone(),
        sequence_id: plan.ids.build_id.clone(),
        execution_id: plan.ids.execution_id.clone(),
        stage_name: scenario.stage.name.clone(),
        stage_identifier: scenario.stage.identifier.clone(),
        pipeline_variables: scenario.pipeline.variables.iter().cloned().collect(),
        env_variables: scenario.fixtures().env_variables.clone(),
        stage_variables: scenario.stage.variables.iter().cloned().collect(),
        fixed: scenario.fixtures().expressions.clone(),
        steps: BTreeMap::new(),
        specs: plan
            .flat()
            .into_iter()
            .map(|st| (st.fqn.clone(), step_spec(st)))
            .collect(),
        names: plan
            .flat()
            .into_iter()
            .map(|st| (st.fqn.clone(), st.name.clone()))
            .collect(),
    }
}

/// A step's spec as expressions see it: its settings (product-managed steps keep their spec
/// fields there), image, command and shell.
fn step_spec(st: &sgsim_core::render::PlannedStep) -> serde_json::Value {
    let mut m: serde_json::Map<String, serde_json::Value> = st.settings.iter().cloned().collect();
    if let Some(i) = &st.image {
        m.entry("image").or_insert_with(|| i.clone().into());
    }
    if let Some(c) = &st.command {
        m.entry("command").or_insert_with(|| c.clone().into());
        m.entry("shell").or_insert_with(|| st.shell.as_str().into());
    }
    serde_json::Value::Object(m)
}

/// Whether the group's own `when` lets it run. `Err` carries why it cannot be evaluated.
fn group_runs(scenario: &Scenario, plan: &ExecutionPlan) -> Result<bool, String> {
    let w = strategy::parse_when(scenario.step_group.when.as_ref())?;
    if !w.stage_status.admits(false) {
        return Ok(false);
    }
    match &w.condition {
        None => Ok(true),
        Some(c) => expr_env(scenario, plan).condition(c).map_err(|e| e.to_string()),
    }
}

/// What the execution so far looks like to the next step.
#[derive(Clone, Copy, Debug, Default)]
struct GroupState {
    /// A step failed and no strategy absorbed it (the stage status is Failure).
    failed: bool,
    /// A strategy aborted the execution.
    aborted: bool,
}

/// What a finished step does to the rest of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    None,
    Fail,
    Abort,
}

const fn plan_port() -> u16 {
    sgsim_engine::delegate::LITE_ENGINE_PORT
}

async fn wait_engine_ready(engine: &LiteEngineClient, pod: &str) -> Result<(), RunError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match engine.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(RunError::Engine {
                    pod: pod.to_string(),
                    source: e,
                });
            }
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
            let all_started = status.container_statuses.as_ref().is_some_and(|cs| {
                !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
            if !all_started {
                return None;
            }
            let ip = status.pod_ip.as_deref().and_then(|s| s.parse().ok())?;
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone())?;
            Some(PodStart::Running { node, ip })
        }
        Some("Failed") => Some(PodStart::Failed(
            status.message.clone().unwrap_or_else(|| "pod failed".into()),
        )),
        Some("Succeeded") => Some(PodStart::Failed("pod completed before its steps ran".into())),
        _ => None,
    }
}

fn skipped_steps(plan: &ExecutionPlan) -> Vec<StepRecord> {
    plan.flat().into_iter().map(skipped).collect()
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
        attempts: 0,
        strategy: None,
        reports: BTreeMap::new(),
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
    group_failure_strategies: Option<&'a serde_json::Value>,
    stage_failure_strategies: Option<&'a serde_json::Value>,
}

/// Most report files collected per step.
const MAX_REPORTS: usize = 16;

/// How one attempt ended.
struct Attempt {
    status: Outcome,
    exit_code: Option<i32>,
    error: Option<String>,
    outputs: BTreeMap<String, String>,
}

impl StepCtx<'_> {
    /// Runs a plan node; a `Parallel` node runs its children concurrently, each seeing the group
    /// state from before the block. Returns each step's record, effect and FQN.
    fn run_node<'b>(
        &'b self,
        node: &'b PlanNode,
        state: GroupState,
        env: &'b ExprEnv,
    ) -> BoxFuture<'b, Vec<(StepRecord, Effect, String)>> {
        Box::pin(async move {
            match node {
                PlanNode::Step(s) => {
                    let (r, e) = self.run_step(s, state, env).await;
                    vec![(r, e, s.fqn.clone())]
                }
                PlanNode::Parallel(children) => {
                    let runs = children.iter().map(|c| self.run_node(c, state, env));
                    futures::future::join_all(runs).await.into_iter().flatten().collect()
                }
            }
        })
    }

    fn finish_skipped(&self, s: &PlannedStep, why: Option<String>) -> (StepRecord, Effect) {
        let mut r = skipped(s);
        r.error = why;
        (self.sink)(RunEvent::StepFinished(r.clone()));
        (r, Effect::None)
    }

    /// `when`, then the step with its failure strategy.
    async fn run_step(&self, s: &PlannedStep, state: GroupState, env: &ExprEnv) -> (StepRecord, Effect) {
        if state.aborted {
            return self.finish_skipped(s, None);
        }
        let when = match strategy::parse_when(s.when.as_ref()) {
            Ok(w) => w,
            Err(why) => return self.fail_without_running(s, why),
        };
        if !when.stage_status.admits(state.failed) {
            return self.finish_skipped(s, None);
        }
        if let Some(c) = &when.condition {
            match env.condition(c) {
                Ok(true) => {}
                Ok(false) => return self.finish_skipped(s, None),
                Err(e) => return self.fail_without_running(s, e.to_string()),
            }
        }
        (self.sink)(RunEvent::StepStarted {
            id: s.id.clone(),
            name: s.name.clone(),
        });
        let started = Instant::now();
        let mut rec = skipped(s);
        let mut applied: Vec<String> = Vec::new();
        let mut attempt = self.attempt(s, env, 0).await;
        rec.attempts = 1;
        let mut effect = Effect::None;
        if let Some(ty) = failure_type(attempt.status) {
            let chosen = strategy::choose(
                ty,
                s.failure_strategies.as_ref(),
                self.group_failure_strategies,
                self.stage_failure_strategies,
            );
            let mut action = chosen
                .as_ref()
                .map(|c| c.action.clone())
                .unwrap_or(Action::MarkAsFailure);
            if let Some(c) = &chosen {
                let level = match c.level {
                    strategy::Level::Step => "step",
                    strategy::Level::StepGroup => "step group",
                    strategy::Level::Stage => "stage",
                };
                applied.push(format!("{} ({level})", c.action.name()));
            }
            if let Action::ManualIntervention { on_timeout } = action {
                applied.push(format!(
                    "{} (no manual intervention in sgsim: its onTimeout action)",
                    on_timeout.name()
                ));
                action = *on_timeout;
            }
            if let Action::Retry {
                count,
                intervals,
                on_retry_failure,
            } = action
            {
                for n in 1..=count {
                    tokio::time::sleep(strategy::retry_wait(&intervals, n)).await;
                    attempt = self.attempt(s, env, n).await;
                    rec.attempts += 1;
                    if failure_type(attempt.status).is_none() {
                        break;
                    }
                }
                action = if failure_type(attempt.status).is_some() {
                    applied.push(format!("{} (onRetryFailure)", on_retry_failure.name()));
                    match *on_retry_failure {
                        Action::ManualIntervention { on_timeout } => *on_timeout,
                        a => a,
                    }
                } else {
                    Action::MarkAsFailure // unused: the last attempt succeeded
                };
            }
            if failure_type(attempt.status).is_some() {
                match action {
                    Action::Ignore => attempt.status = Outcome::IgnoreFailed,
                    Action::MarkAsSuccess => attempt.status = Outcome::Success,
                    Action::Abort => effect = Effect::Abort,
                    _ => effect = Effect::Fail,
                }
            }
        }
        rec.status = attempt.status;
        rec.exit_code = attempt.exit_code;
        rec.error = attempt.error;
        rec.outputs = attempt.outputs;
        rec.strategy = (!applied.is_empty()).then(|| applied.join(", then "));
        rec.took = started.elapsed();
        // A Background step keeps running: its log is read when the group ends.
        if let (Some(c), false) = (&s.container, s.detach) {
            rec.log = self.container_log(c).await;
        } else if s.kind == model::StepKind::NoContainer && rec.status == Outcome::Success {
            rec.log = format!("{} approved by sgsim (no approver is simulated)\n", s.step_type);
        }
        (self.sink)(RunEvent::StepFinished(rec.clone()));
        (rec, effect)
    }

    /// A step that fails before it runs (a `when` sgsim cannot evaluate): the product fails it.
    fn fail_without_running(&self, s: &PlannedStep, why: String) -> (StepRecord, Effect) {
        let mut r = skipped(s);
        r.status = Outcome::Failed;
        r.error = Some(why);
        (self.sink)(RunEvent::StepFinished(r.clone()));
        (r, Effect::Fail)
    }

    /// One execution of the step (attempt 0, then retries 1..).
    async fn attempt(&self, s: &PlannedStep, env: &ExprEnv, n: u32) -> Attempt {
        let failed = |error: String| Attempt {
            status: Outcome::Failed,
            exit_code: None,
            error: Some(error),
            outputs: BTreeMap::new(),
        };
        let (kind, port) = (s.kind, s.port);
        if kind == model::StepKind::NoContainer {
            // Approval steps run in Harness, not in the pod: sgsim has no approver and approves.
            return Attempt {
                status: Outcome::Success,
                exit_code: None,
                error: None,
                outputs: BTreeMap::new(),
            };
        }
        let port = match (kind, port) {
            (model::StepKind::Run | model::StepKind::Background | model::StepKind::Plugin, Some(port)) => port,
            (kind, _) => {
                return failed(format!(
                    "step type {} ({kind:?}) is not supported by sgsim yet",
                    s.step_type
                ));
            }
        };
        let spec = match self.step_spec(s, port, env, n) {
            Ok(spec) => spec,
            Err(e) => return failed(e.to_string()),
        };
        let mut a = self.execute(spec).await;
        // A step whose container was OOM-killed fails without an exit code of its own (the addon
        // died with it) or with 137.
        if a.status != Outcome::Success
            && matches!(a.exit_code, None | Some(137))
            && a.status != Outcome::Timeout
            && let Some(c) = &s.container
            && self.oom_killed(c).await
        {
            a.status = Outcome::Failed;
            a.exit_code = Some(137);
            a.error = Some(format!(
                "OOMKilled: container {c} exceeded its memory limit (exit code 137)"
            ));
        }
        a
    }

    /// Whether the pod's status shows `container` terminated with reason `OOMKilled` (waits up
    /// to 5 s for the kubelet to record the exit: the step's status can arrive first).
    async fn oom_killed(&self, container: &str) -> bool {
        for _ in 0..25 {
            let Ok(p) = self.pods.get(self.pod).await else {
                return false;
            };
            let terminated = p
                .status
                .and_then(|st| st.container_statuses)
                .unwrap_or_default()
                .into_iter()
                .find(|cs| cs.name == container)
                .and_then(|cs| cs.state.and_then(|st| st.terminated));
            match terminated {
                Some(t) => return t.reason.as_deref() == Some("OOMKilled"),
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        false
    }

    /// Sends one UnitStep to the lite-engine and waits for its status.
    async fn execute(&self, spec: StepSpec) -> Attempt {
        let failed = |error: String| Attempt {
            status: Outcome::Failed,
            exit_code: None,
            error: Some(error),
            outputs: BTreeMap::new(),
        };
        match self.engine.execute_step(self.delegate, spec).await {
            Ok(st) => {
                let status = match st.status {
                    Status::Success => Outcome::Success,
                    Status::Failure => Outcome::Failed,
                    Status::Timeout => Outcome::Timeout,
                    Status::Aborted => Outcome::Aborted,
                    Status::Skipped => Outcome::Skipped,
                };
                let error = if status == Outcome::Timeout {
                    Some(STEP_EXPIRED_MESSAGE.to_string())
                } else {
                    st.error
                };
                Attempt {
                    status,
                    exit_code: st.exit_code,
                    error,
                    outputs: st.outputs,
                }
            }
            Err(e) => failed(e.to_string()),
        }
    }

    /// The UnitStep of attempt `n` (retries get their own id: the lite-engine and the addon are
    /// idempotent per step id), with run-time expressions resolved.
    fn step_spec(&self, s: &PlannedStep, port: u16, env: &ExprEnv, n: u32) -> Result<StepSpec, expr::ExprError> {
        let shell = match s.shell {
            model::Shell::Sh => ShellType::Sh,
            model::Shell::Bash => ShellType::Bash,
            model::Shell::Powershell => ShellType::Powershell,
            model::Shell::Pwsh => ShellType::Pwsh,
            model::Shell::Python => ShellType::Python,
        };
        let id = if n == 0 {
            s.id.clone()
        } else {
            format!("{}_retry_{n}", s.id)
        };
        let task_id = format!("{}-{}-{}", self.opts.task_prefix, self.pod, id);
        // A Background step with neither entrypoint nor command runs its image's own
        // ENTRYPOINT + CMD (what the product learns through GetImageEntrypoint).
        let mut entrypoint = s
            .entrypoint
            .iter()
            .map(|a| env.render(a))
            .collect::<Result<Vec<_>, _>>()?;
        let vars = s
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), env.render(v)?)))
            .collect::<Result<BTreeMap<_, _>, expr::ExprError>>()?;
        // A plugin step runs its image's ENTRYPOINT + CMD unless the step sets an entrypoint;
        // its settings arrive as PLUGIN_* variables.
        if s.kind == model::StepKind::Plugin {
            if entrypoint.is_empty()
                && let (Some(lookup), Some(image)) = (&self.opts.image_entrypoint, &s.image)
                && let Some((ep, cmd)) = lookup(image)
            {
                entrypoint = ep.into_iter().chain(cmd).collect();
            }
            return Ok(StepSpec {
                id: id.clone(),
                display_name: s.name.clone(),
                container_port: port,
                kind: StepCommand::Plugin {
                    image: s.image.clone().unwrap_or_default(),
                    entrypoint,
                    env: vars,
                    output_vars: s.output_variables.clone(),
                    reports: s.report_paths.clone(),
                    artifact_file_path: String::new(),
                },
                timeout: Some(Duration::from_secs(s.timeout_secs)),
                callback_token: format!("token-{task_id}"),
                log_key: format!("{}/{}", self.plan.ids.execution_id, id),
                account_id: self.plan.ids.account_id.clone(),
                task_id,
            });
        }
        let no_command = s.command.as_deref().is_none_or(|c| c.trim().is_empty());
        if s.detach
            && entrypoint.is_empty()
            && no_command
            && let (Some(lookup), Some(image)) = (&self.opts.image_entrypoint, &s.image)
            && let Some((ep, cmd)) = lookup(image)
        {
            entrypoint = ep.into_iter().chain(cmd).collect();
        }
        let command = env.render(s.command.as_deref().unwrap_or_default())?;
        Ok(StepSpec {
            id: id.clone(),
            display_name: s.name.clone(),
            container_port: port,
            kind: StepCommand::Run {
                command,
                shell,
                env: vars,
                image: s.image.clone().unwrap_or_default(),
                entrypoint,
                detach: s.detach,
                output_vars: s.output_variables.clone(),
                reports: s.report_paths.clone(),
            },
            timeout: Some(Duration::from_secs(s.timeout_secs)),
            callback_token: format!("token-{task_id}"),
            log_key: format!("{}/{}", self.plan.ids.execution_id, id),
            account_id: self.plan.ids.account_id.clone(),
            task_id,
        })
    }

    /// Reads the step's report files (reportPaths, globs expanded by the shell, relative to
    /// /harness) through a follow-up step in the same container that exports each file base64-encoded
    /// as an output variable (nothing is printed, so the step's log is untouched).
    async fn collect_reports(&self, s: &PlannedStep) -> BTreeMap<String, String> {
        let Some(port) = s.port else {
            return BTreeMap::new();
        };
        let id = format!("{}_reports", s.id);
        let task_id = format!("{}-{}-{}", self.opts.task_prefix, self.pod, id);
        let vars: Vec<String> = (0..MAX_REPORTS).map(|i| format!("SGSIM_REPORT_{i}")).collect();
        let spec = StepSpec {
            id: id.clone(),
            display_name: format!("{} reports", s.name),
            container_port: port,
            kind: StepCommand::Run {
                command: report_script(&s.report_paths),
                shell: ShellType::Sh,
                env: BTreeMap::new(),
                image: s.image.clone().unwrap_or_default(),
                entrypoint: Vec::new(),
                detach: false,
                output_vars: vars.clone(),
                reports: Vec::new(),
            },
            timeout: Some(Duration::from_secs(60)),
            callback_token: format!("token-{task_id}"),
            log_key: format!("{}/{}", self.plan.ids.execution_id, id),
            account_id: self.plan.ids.account_id.clone(),
            task_id,
        };
        let mut out = BTreeMap::new();
        match self.engine.execute_step(self.delegate, spec).await {
            Ok(st) if st.status == Status::Success => {
                for v in &vars {
                    let Some(val) = st.outputs.get(v).filter(|x| !x.is_empty()) else {
                        continue;
                    };
                    if let Some((path, b64)) = val.split_once(':') {
                        let content = sgsim_core::base64::decode(b64).map(|b| String::from_utf8_lossy(&b).into_owned());
                        out.insert(
                            path.to_string(),
                            content.unwrap_or_else(|| "<sgsim: report content is not valid base64>".into()),
                        );
                    }
                }
            }
            Ok(st) => {
                out.insert(
                    "<sgsim>".into(),
                    format!("could not collect reports: {}", st.error.unwrap_or_default()),
                );
            }
            Err(e) => {
                out.insert("<sgsim>".into(), format!("could not collect reports: {e}"));
            }
        }
        out
    }

    /// The step container's log (the addon prints exactly the step's output).
    ///
    /// The container runtime copies a container's output into its log asynchronously, so the last
    /// lines a step printed just before it ended may not be readable yet when its status arrives:
    /// the log is read until it has been the same for [`LOG_SETTLE`] (at most [`LOG_SETTLE_MAX`]).
    async fn container_log(&self, container: &str) -> String {
        let params = LogParams {
            container: Some(container.to_string()),
            ..Default::default()
        };
        let deadline = Instant::now() + LOG_SETTLE_MAX;
        let mut last: Option<String> = None;
        loop {
            let now = match self.pods.logs(self.pod, &params).await {
                Ok(s) => s,
                Err(e) => return format!("<sgsim: could not read the log of container {container}: {e}>\n"),
            };
            if last.as_deref() == Some(now.as_str()) || Instant::now() >= deadline {
                return now;
            }
            last = Some(now);
            tokio::time::sleep(LOG_SETTLE).await;
        }
    }
}

/// How long a container log must stay unchanged to count as complete.
const LOG_SETTLE: Duration = Duration::from_millis(250);
/// The longest a runner waits for a container log to settle.
const LOG_SETTLE_MAX: Duration = Duration::from_secs(3);

/// The failure type of an attempt's outcome (None: it did not fail).
fn failure_type(o: Outcome) -> Option<FailureType> {
    match o {
        Outcome::Failed | Outcome::Aborted => Some(FailureType::Unknown),
        Outcome::Timeout => Some(FailureType::Timeout),
        Outcome::Success | Outcome::Skipped | Outcome::IgnoreFailed => None,
    }
}

/// A POSIX sh script that exports `SGSIM_REPORT_<i>=<path>:<base64 content>` for each file the
/// report paths match (at most [`MAX_REPORTS`]).
fn report_script(paths: &[String]) -> String {
    let mut script = String::from("cd /harness 2>/dev/null || true\nn=0\n");
    for p in paths {
        // Keep glob characters active, quote everything else.
        let quoted: String = p
            .chars()
            .map(|c| match c {
                '*' | '?' | '[' | ']' => c.to_string(),
                '\'' => "'\\''".to_string(),
                c => format!("'{c}'"),
            })
            .collect();
        script.push_str(&format!(
            "for f in {quoted}; do\n  [ -f \"$f\" ] || continue\n  [ \"$n\" -lt {MAX_REPORTS} ] || break\n  export SGSIM_REPORT_$n=\"$f:$(base64 < \"$f\" | tr -d '\\n')\"\n  n=$((n+1))\ndone\n"
        ));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_script_quotes_all_but_globs() {
        let s = report_script(&["reports/*.xml".into(), "it's.xml".into()]);
        assert!(s.contains("for f in 'r''e''p''o''r''t''s''/'*'.''x''m''l'; do"), "{s}");
        assert!(s.contains("'i''t''\\'''s'"), "{s}");
    }

    #[test]
    fn init_timeout_message_as_the_product_builds_it() {
        let pod = |status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status})).unwrap()
        };
        let pending = pod(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available: x."},
            {"type": "Other", "status": "False"}]}));
        assert_eq!(init_timeout_message(&pending, 5), "0/1 nodes are available: x.");
        let waiting = pod(serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "pull failed"}}},
            {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}}},
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}],
            "conditions": [{"type": "PodScheduled", "status": "True", "message": "ignored"}]}));
        assert_eq!(init_timeout_message(&waiting, 5), "pull failed, back-off");
        assert_eq!(
            init_timeout_message(&pod(serde_json::json!({})), 480),
            "Timeout exception: Pod containers failed to reach running state within 480 seconds"
        );
        assert_eq!(
            init_timeout_message(&Pod::default(), 7),
            "Timeout exception: Pod containers failed to reach running state within 7 seconds"
        );
    }

    #[test]
    fn failure_types() {
        assert_eq!(failure_type(Outcome::Timeout), Some(FailureType::Timeout));
        assert_eq!(failure_type(Outcome::Failed), Some(FailureType::Unknown));
        assert_eq!(failure_type(Outcome::IgnoreFailed), None);
    }
}
