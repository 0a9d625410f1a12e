//! Runs one scenario's step group on a cluster, as the product's delegate would.
//!
//! The runner only speaks Kubernetes through `kube::Client` (so it drives the embedded cluster and a
//! real one alike) and the engine's gRPC through a [`PodDialer`] (a tunnel to `podIP:port`). It:
//! creates the fixtures, creates the rendered Pod, writes the Initialize log from the pod's events,
//! waits for the pod to run (within `initTimeout`), executes the plan's steps through the
//! lite-engine, collects step logs and the stored Pod, and deletes the pod. Everything it observes is
//! returned as a [`RunRecord`] and reported live as [`RunEvent`]s.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

// tokio's clock (the wall clock, or a paused test clock).
use tokio::time::Instant;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use sgsim_core::Scenario;
use sgsim_core::initialize;
use sgsim_core::record::{InitLine, Level, Outcome, RunRecord, StepRecord};
use sgsim_core::render::{ExecutionPlan, PlannedStep};
use sgsim_engine::delegate::{DelegateServer, LiteEngineClient};

mod changes;
pub mod expr;
mod fixtures;
mod pod_start;
mod steps;
pub mod strategy;

pub use fixtures::create_fixtures;
use pod_start::{EventTail, PodStart, cleanup, pod_start_state, push_line, wait_engine_ready};
use steps::StepCtx;

use expr::{ExprEnv, StepValues};

/// The product's failure message for a step killed by its `timeout` (harness-core
/// `ExpiryHelper.EXPIRE_ERROR_MESSAGE`, status EXPIRED, failure type TIMEOUT_FAILURE).
pub const STEP_EXPIRED_MESSAGE: &str =
    "Please Check the timeout configuration on the step to extend the duration of the step";

/// A byte stream to a pod: a node agent's tunnel, a port-forward, or the fake tier's in-memory pipe.
pub trait PodIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> PodIo for T {}

/// What [`PodDialer::dial`] opens.
pub type PodStream = Box<dyn PodIo>;

/// Opens a byte stream to `ip:port` of a pod running on `node`.
pub trait PodDialer: Send + Sync + 'static {
    /// Dial `ip:port` on the node named `node` (the Kubernetes node name).
    fn dial(&self, node: &str, ip: IpAddr, port: u16) -> BoxFuture<'static, std::io::Result<PodStream>>;
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
    StepFinished(Box<StepRecord>),
}

pub use crate::images::ImageEntrypoint;

/// Options of a run.
#[derive(Clone)]
pub struct RunOptions {
    /// Unique prefix for task ids (the run id).
    pub task_prefix: String,
    /// Keep the pod after the run (debugging).
    pub keep_pod: bool,
    /// How long to wait for a watch to report a change of the pod or its events before reading
    /// them again anyway (the runner is event-driven: see `runner::changes`).
    pub poll: Duration,
    /// Image ENTRYPOINT/CMD lookup, for Background steps that set neither entrypoint nor command.
    pub image_entrypoint: Option<ImageEntrypoint>,
    /// `hostAliases` added to the rendered pod (`--backend kube`: `delegate-service` → its
    /// in-cluster relay); the caller removes them from the record again.
    pub host_aliases: Vec<k8s_openapi::api::core::v1::HostAlias>,
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
            poll: Duration::from_secs(1),
            image_entrypoint: None,
            host_aliases: Vec::new(),
        }
    }
}

/// How long the runner waits, after the pod started or failed, for `Started` events still missing.
const AFTER_START_SETTLE: Duration = Duration::from_millis(150);

/// The image pull Secrets, the lite-engine's Secret (with this delegate's token) and the pod.
async fn create_pod_and_secrets(
    client: &kube::Client,
    scenario: &Scenario,
    delegate: &DelegateServer,
    pod: &Pod,
) -> Result<(), kube::Error> {
    let credentials = sgsim_core::render::EngineCredentials {
        delegate_token: delegate.token().to_string(),
        log_service_token: delegate.token().to_string(),
        log_service_endpoint: LOG_SERVICE_ENDPOINT.to_string(),
    };
    crate::registry::create_pod_secrets(client, scenario, &credentials).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), scenario.namespace());
    pods.create(&PostParams::default(), pod).await.map(|_| ())
}

/// HARNESS_LOG_SERVICE_ENDPOINT in the lite-engine's Secret: the run's delegate serves the log
/// service under this path on its own listener (`delegate-service:8080`, relayed by the node
/// agent), so the lite-engine's LogProxy reaches it the way it reaches the delegate.
pub const LOG_SERVICE_ENDPOINT: &str = "http://delegate-service:8080/log-service";

/// Init containers and containers of the pod.
fn container_count(p: &Pod) -> usize {
    p.spec.as_ref().map_or(0, |s| {
        s.containers.len() + s.init_containers.as_ref().map_or(0, Vec::len)
    })
}

fn kerr(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Kube { what, source }
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
    let mut pod = sgsim_core::render_pod(scenario);
    if !opts.host_aliases.is_empty()
        && let Some(spec) = pod.spec.as_mut()
    {
        spec.host_aliases
            .get_or_insert_with(Vec::new)
            .extend(opts.host_aliases.iter().cloned());
    }
    let plan = sgsim_core::plan(scenario);
    // The group's own `when` (evaluated while the stage status is Success): a skipped group never
    // creates its pod.
    match group_runs(scenario, &plan) {
        Ok(true) => {}
        Ok(false) => {
            let steps = skipped_steps(&plan);
            for s in &steps {
                sink(RunEvent::StepFinished(Box::new(s.clone())));
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
    push_line(&mut init, sink, Level::Info, initialize::starting_job(&name, &ns));

    // As the product's initialize task: the image pull Secrets, the lite-engine's `<pod>-secret`,
    // then the pod. An API refusal of any of them ends the group with the API server's message as
    // its error, and the Initialize log holds nothing after the first line (the product streams
    // no line for it).
    if let Err(e) = create_pod_and_secrets(&client, scenario, delegate, &pod).await {
        let msg = match e {
            kube::Error::Api(s) => s.message,
            // Anything else (a request that could not even be built or sent) is sgsim's error,
            // never a line of the log.
            other => return Err(kerr(format!("create pod {ns}/{name} and its secrets"))(other)),
        };
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
        seen: std::collections::HashMap::new(),
        started: std::collections::HashSet::new(),
    };
    let changes = changes::Changes::watch(&client, &ns, &name);
    let deadline = Instant::now() + Duration::from_secs(plan.init_timeout_secs);
    let (start, containers) = loop {
        tail.poll(&mut init, sink).await?;
        let p = pods.get(&name).await.map_err(kerr(format!("get pod {ns}/{name}")))?;
        match pod_start_state(&p) {
            Some(s) => break (s, container_count(&p)),
            None if Instant::now() >= deadline => {
                let why = initialize::init_timeout_message(&p, plan.init_timeout_secs);
                break (PodStart::TimedOut(why), container_count(&p));
            }
            None => {
                changes
                    .wait(opts.poll.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
        }
    };
    // Events written just before the pod's new state (e.g. `Started container lite-engine`): a
    // kubelet may record them after the status; wait (briefly) until every container's Started
    // event is in.
    let settle = Instant::now() + AFTER_START_SETTLE;
    loop {
        tail.poll(&mut init, sink).await?;
        let now = Instant::now();
        if tail.started.len() >= containers || now >= settle {
            break;
        }
        changes.wait(settle - now).await;
    }
    drop(changes);

    let (node, ip) = match start {
        PodStart::Running { node, ip } => {
            push_line(&mut init, sink, Level::Info, initialize::pod_running(&name, &ns));
            (node, ip)
        }
        PodStart::Failed(why) | PodStart::TimedOut(why) => {
            push_line(
                &mut init,
                sink,
                Level::Info,
                initialize::pod_failed_to_start(&name, &ns),
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
            rec.log = ctx.step_log(planned, rec.attempts, c, None).await;
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
    let w = strategy::parse_when(scenario.step_group.when.as_ref()).map_err(|e| e.to_string())?;
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
        image: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_log_service_endpoint_is_served_by_the_delegates_listener() {
        let rest = super::LOG_SERVICE_ENDPOINT
            .strip_prefix(&format!("http://{}", sgsim_core::defaults::DELEGATE_SERVICE_ENDPOINT))
            .expect("the delegate's address");
        assert_eq!(rest, sgsim_engine::log_service::LOG_SERVICE_PATH);
    }
}
