//! The pod the product creates for a containerized step group, and the execution plan the
//! delegate follows. Shapes follow /work/shared/reference/product-facts.md ("The pod").
//!
//! This module holds what the pod, the plan and the pull secrets share: the run's ids, image
//! registry prefixes, privilege rules and the steps that get a container.

mod engine_secret;
mod git_clone;
mod plan;
mod pod;
mod pull_secrets;

use serde::Serialize;

use crate::model::{Step, StepGroup, StepKind};
use crate::rng::SplitMix64;
use crate::scenario::Scenario;
use crate::step_types;

pub use crate::defaults::{
    ADDON_DIR, ADDON_IMAGE, DEFAULT_STEP_CPU, DEFAULT_STEP_MEMORY, DEFAULT_STEP_TIMEOUT_SECS,
    DELEGATE_SERVICE_ENDPOINT, DELEGATE_SERVICE_ID, FIRST_STEP_PORT, HARNESS_IMAGE_VERSION, LITE_ENGINE_IMAGE,
    LITE_ENGINE_PORT, SETUP_ADDON_SCRIPT, WORKSPACE,
};
use crate::defaults::{DEFAULT_ACCOUNT_ID, DEFAULT_HARNESS_IMAGE_CONNECTOR};
pub use crate::naming::{POD_SUFFIX_ALPHABET, container_name, is_valid_label_value, pod_name};
pub use crate::overlay::merge_overlay;
pub use engine_secret::{
    ENGINE_SECRET_VARS, EngineCredentials, engine_secret, engine_secret_env, engine_secret_name, java_hash_set_order,
    pod_secrets,
};
pub use plan::{ExecutionPlan, PlanNode, PlannedStep, plan, plugin_env_key};
pub use pod::render_pod;
pub use pull_secrets::{container_connectors, image_pull_secret_names, image_pull_secrets};

/// The identifiers of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunIds {
    /// Account.
    pub account_id: String,
    /// Organization.
    pub org_id: String,
    /// Project.
    pub project_id: String,
    /// Pipeline.
    pub pipeline_id: String,
    /// Execution id (22 alphanumerics, from the seed).
    pub execution_id: String,
    /// Build number (`1`).
    pub build_id: String,
    /// Stage identifier.
    pub stage_id: String,
    /// The `stepID` label: the step group identifier with `_` removed, as the product's
    /// ContainerStepInitHelper passes it to `K8sPodInitUtils.getLabels`.
    pub step_id: String,
    /// Pod name.
    pub pod_name: String,
}

/// The ids of a scenario's run (deterministic from its seed).
pub fn run_ids(s: &Scenario) -> RunIds {
    let mut rng = SplitMix64::new(s.seed(), 2);
    let alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let account = if s.fixtures().account_id.is_empty() {
        DEFAULT_ACCOUNT_ID.to_string()
    } else {
        s.fixtures().account_id.clone()
    };
    RunIds {
        account_id: account,
        org_id: s.pipeline.org_identifier.clone(),
        project_id: s.pipeline.project_identifier.clone(),
        pipeline_id: s.pipeline.identifier.clone(),
        execution_id: rng.string(alnum, 22),
        build_id: "1".into(),
        stage_id: s.stage.identifier.clone(),
        step_id: s.step_group.identifier.replace('_', ""),
        pod_name: pod_name(&s.step_group.identifier, s.seed()),
    }
}

/// The registry prefix for the product's images from `harnessImageConnectorRef` (empty for
/// Docker Hub or an unknown connector).
pub fn harness_image_prefix(s: &Scenario) -> String {
    let id = s
        .step_group
        .infra
        .harness_image_connector_ref
        .as_deref()
        .unwrap_or(DEFAULT_HARNESS_IMAGE_CONNECTOR);
    let Some(url) = s.connector(id).and_then(|c| c.url.clone()) else {
        return String::new();
    };
    registry_prefix(&url)
}

/// `https://registry.example.com/v2/path/` → `registry.example.com/path/`; Docker Hub → ``.
pub fn registry_prefix(url: &str) -> String {
    let u = url.trim();
    let u = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or(u);
    let u = u.trim_end_matches('/');
    let (host, path) = match u.split_once('/') {
        Some((h, p)) => (h, p),
        None => (u, ""),
    };
    const HUB: &[&str] = &[
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "registry.hub.docker.com",
        "hub.docker.com",
    ];
    if host.is_empty() || HUB.contains(&host) {
        return String::new();
    }
    let path: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "v1" && *p != "v2")
        .collect();
    if path.is_empty() {
        format!("{host}/")
    } else {
        format!("{host}/{}/", path.join("/"))
    }
}

/// Whether an image gets privileged automatically: plugins/docker|ecr|acr|gcr|heroku, or
/// `docker` with a tag containing `dind`.
pub fn image_needs_privileged(image: &str) -> bool {
    let (name, tag) = split_image(image);
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    matches!(
        name,
        "plugins/docker" | "plugins/ecr" | "plugins/acr" | "plugins/gcr" | "plugins/heroku"
    ) || (name == "docker" && tag.contains("dind"))
}

fn split_image(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// Whether a step's container is privileged: the step's `privileged`, else
/// containerSecurityContext.privileged, else the automatic rule (Run/Background/Plugin steps of
/// a CD step group default to privileged; product-managed steps by image).
pub fn step_privileged(group: &StepGroup, step: &Step) -> bool {
    if let Some(p) = step.privileged {
        return p;
    }
    if let Some(p) = group
        .infra
        .container_security_context
        .as_ref()
        .and_then(|c| c.privileged)
    {
        return p;
    }
    match step_types::by_type(&step.step_type) {
        Some(t) if !t.product_managed => true,
        _ => step.image.as_deref().is_some_and(image_needs_privileged),
    }
}

/// Steps that get a container, in order, with their port.
pub fn container_steps(group: &StepGroup) -> Vec<(&Step, u16)> {
    group
        .flat_steps()
        .into_iter()
        .filter(|s| s.kind != Some(StepKind::NoContainer))
        .enumerate()
        .map(|(i, s)| (s, FIRST_STEP_PORT.saturating_add(u16::try_from(i).unwrap_or(u16::MAX))))
        .collect()
}
