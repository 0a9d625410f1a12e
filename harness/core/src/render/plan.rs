//! The execution plan the delegate follows: each step as it is sent to the lite-engine, with the
//! environment the product gives it (envVariables, plugin settings as `PLUGIN_*`, the variables
//! it manages for AWS SAM and Serverless steps).

use std::collections::BTreeMap;

use serde::Serialize;

use super::git_clone::git_clone_env;
use super::{
    DEFAULT_STEP_TIMEOUT_SECS, LITE_ENGINE_PORT, RunIds, container_name, container_steps, render_pod, run_ids,
    step_privileged,
};
use crate::model::{Shell, Step, StepGroup, StepKind, StepNode};
use crate::scenario::Scenario;
use crate::step_types;

/// The delegate's plan for the step group.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPlan {
    /// Pod name.
    pub pod_name: String,
    /// Namespace.
    pub namespace: String,
    /// lite-engine port (20001).
    pub lite_engine_port: u16,
    /// Run ids (account, execution, ...).
    pub ids: RunIds,
    /// How long the pod may take to become ready (initTimeout, default 480 s).
    pub init_timeout_secs: u64,
    /// Steps in order; a `Parallel` entry runs its steps concurrently.
    pub steps: Vec<PlanNode>,
}

impl ExecutionPlan {
    /// Every step, flattened, in order.
    pub fn flat(&self) -> Vec<&PlannedStep> {
        fn walk<'a>(n: &'a [PlanNode], out: &mut Vec<&'a PlannedStep>) {
            for x in n {
                match x {
                    PlanNode::Step(s) => out.push(s),
                    PlanNode::Parallel(p) => walk(p, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }
}

/// An element of the plan.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize)]
pub enum PlanNode {
    /// One step.
    Step(PlannedStep),
    /// Steps that run concurrently.
    Parallel(Vec<PlanNode>),
}

/// One step as the delegate sends it to the lite-engine.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    /// Step identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Step type as written.
    pub step_type: String,
    /// Run, Background, Plugin or NoContainer.
    pub kind: StepKind,
    /// Harness FQN.
    pub fqn: String,
    /// Container name (none for NoContainer steps).
    pub container: Option<String>,
    /// Addon port in that container.
    pub port: Option<u16>,
    /// Image (vendor name as in the pod).
    pub image: Option<String>,
    /// Command (Run/Background).
    pub command: Option<String>,
    /// Shell.
    pub shell: Shell,
    /// Entrypoint override.
    pub entrypoint: Vec<String>,
    /// Environment (envVariables, then PLUGIN_* settings for plugins).
    pub env: Vec<(String, String)>,
    /// Background steps detach.
    pub detach: bool,
    /// Execution timeout in seconds (default 10 minutes... as the product's step default).
    pub timeout_secs: u64,
    /// Output variable names.
    pub output_variables: Vec<String>,
    /// Report paths.
    pub report_paths: Vec<String>,
    /// Plugin settings (raw).
    pub settings: Vec<(String, serde_json::Value)>,
    /// Privileged.
    pub privileged: bool,
    /// `when`, raw.
    pub when: Option<serde_json::Value>,
    /// failureStrategies, raw.
    pub failure_strategies: Option<serde_json::Value>,
}

/// The execution plan of the scenario's step group.
pub fn plan(s: &Scenario) -> ExecutionPlan {
    let g = &s.step_group;
    let ports: BTreeMap<&str, u16> = container_steps(g)
        .into_iter()
        .map(|(st, p)| (st.identifier.as_str(), p))
        .collect();
    let pod = render_pod(s);
    let images: BTreeMap<String, String> = pod
        .spec
        .as_ref()
        .map(|sp| {
            sp.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let aws = aws_env(s);
    let cx = PlanCx {
        s,
        g,
        ports: &ports,
        images: &images,
        aws: &aws,
    };
    fn conv(nodes: &[StepNode], cx: &PlanCx<'_>, out: &mut Vec<PlanNode>) {
        for n in nodes {
            match n {
                StepNode::Step(st) => out.push(PlanNode::Step(planned(st, cx))),
                StepNode::Parallel(p) => {
                    let mut inner = Vec::new();
                    conv(p, cx, &mut inner);
                    out.push(PlanNode::Parallel(inner));
                }
                StepNode::Group(ng) => conv(&ng.steps, cx, out),
            }
        }
    }
    let mut steps = Vec::new();
    conv(&g.steps, &cx, &mut steps);
    let ids = run_ids(s);
    ExecutionPlan {
        pod_name: ids.pod_name.clone(),
        namespace: g.infra.namespace.clone(),
        lite_engine_port: LITE_ENGINE_PORT,
        ids,
        init_timeout_secs: g.infra.init_timeout_secs(),
        steps,
    }
}

struct PlanCx<'a> {
    s: &'a Scenario,
    g: &'a StepGroup,
    ports: &'a BTreeMap<&'a str, u16>,
    images: &'a BTreeMap<String, String>,
    aws: &'a [(String, String)],
}

/// PLUGIN_AWS_* and PLUGIN_REGION from the scenario's first `Aws` connector (empty values when
/// there is none: the image then uses the pod's service account).
fn aws_env(s: &Scenario) -> Vec<(String, String)> {
    let c = s.fixtures().connectors.iter().find(|c| c.connector_type == "Aws");
    let secret = |r: &Option<String>| {
        r.as_ref()
            .and_then(|r| s.fixtures().harness_secrets.get(r))
            .cloned()
            .unwrap_or_default()
    };
    vec![
        (
            "PLUGIN_AWS_ACCESS_KEY".into(),
            c.and_then(|c| c.access_key.clone()).unwrap_or_default(),
        ),
        (
            "PLUGIN_AWS_SECRET_KEY".into(),
            c.map(|c| secret(&c.secret_key_ref)).unwrap_or_default(),
        ),
        (
            "PLUGIN_AWS_ROLE_ARN".into(),
            c.and_then(|c| c.cross_account_role_arn.clone()).unwrap_or_default(),
        ),
        (
            "PLUGIN_AWS_STS_EXTERNAL_ID".into(),
            c.and_then(|c| c.external_id.clone()).unwrap_or_default(),
        ),
        (
            "PLUGIN_REGION".into(),
            c.and_then(|c| c.region.clone()).unwrap_or_default(),
        ),
    ]
}

fn planned(st: &Step, cx: &PlanCx<'_>) -> PlannedStep {
    let (g, ports, images) = (cx.g, cx.ports, cx.images);
    let kind = st.kind.unwrap_or(StepKind::Run);
    let has_container = kind != StepKind::NoContainer;
    let container = has_container.then(|| container_name(&st.identifier));
    let step_type = step_types::by_type(&st.step_type);
    let mut env = st.env.clone();
    if step_type.is_some_and(|t| t.clones_git) {
        env.extend(git_clone_env(cx.s, st));
    } else if kind == StepKind::Plugin {
        for (k, v) in &st.settings {
            let val = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => s.clone(),
                        o => o.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                o => o.to_string(),
            };
            env.push((format!("PLUGIN_{}", plugin_env_key(k)), val));
        }
        let keys = step_type.map_or(&[][..], |t| t.managed_env);
        if !keys.is_empty() {
            // Command options are lists of flags: space-separated.
            for (k, v) in &st.settings {
                if k.ends_with("CommandOptions")
                    && let serde_json::Value::Array(a) = v
                {
                    let joined = a
                        .iter()
                        .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let name = format!("PLUGIN_{}", plugin_env_key(k));
                    if let Some(e) = env.iter_mut().find(|(n, _)| *n == name) {
                        e.1 = joined;
                    }
                }
            }
            for k in keys {
                if !env.iter().any(|(n, _)| n == k) {
                    env.push((k.to_string(), String::new()));
                }
            }
            for (k, v) in cx.aws {
                if !env.iter().any(|(n, _)| n == k) {
                    env.push((k.clone(), v.clone()));
                }
            }
        }
    }
    PlannedStep {
        id: st.identifier.clone(),
        name: st.name.clone(),
        step_type: st.step_type.clone(),
        kind,
        fqn: st.fqn.clone(),
        port: ports.get(st.identifier.as_str()).copied(),
        image: container
            .as_ref()
            .and_then(|c| images.get(c).cloned())
            .or_else(|| st.image.clone()),
        container,
        command: st.command.clone(),
        shell: st.shell,
        entrypoint: st.entrypoint.clone(),
        env,
        detach: kind == StepKind::Background,
        timeout_secs: st
            .timeout
            .as_deref()
            .and_then(crate::duration::parse_secs)
            .unwrap_or(DEFAULT_STEP_TIMEOUT_SECS),
        output_variables: st.output_variables.clone(),
        report_paths: st.report_paths.clone(),
        settings: st.settings.clone(),
        privileged: has_container && step_privileged(g, st),
        when: st.when.clone(),
        failure_strategies: st.failure_strategies.clone(),
    }
}

/// `buildCommandOptions` → `BUILD_COMMAND_OPTIONS`, `repo_name` → `REPO_NAME`.
pub fn plugin_env_key(k: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in k.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        if c == '-' || c == '.' {
            out.push('_');
        } else {
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}
