//! The pod the product creates for a containerized step group, and the execution plan the
//! delegate follows. Shapes follow /work/shared/reference/product-facts.md ("The pod").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HostAlias, HostPathVolumeSource,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, ResourceRequirements, SecretVolumeSource,
    SecurityContext, Toleration as K8sToleration, Volume as K8sVolume, VolumeMount,
};
use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, LocalObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::model::{Shell, Step, StepGroup, StepKind, StepNode, VolumeSource};
use crate::quantity;
use crate::rng::SplitMix64;
use crate::scenario::{DEFAULT_HARNESS_IMAGE_CONNECTOR, Scenario};

/// Version of the product's addon and lite-engine images.
pub const HARNESS_IMAGE_VERSION: &str = "1.16.8";
/// setup-addon image (before any registry prefix).
pub const ADDON_IMAGE: &str = "harness/ci-addon:1.16.8";
/// lite-engine image (before any registry prefix).
pub const LITE_ENGINE_IMAGE: &str = "harness/ci-lite-engine:1.16.8";
/// Alphabet of the pod-name suffix.
pub const POD_SUFFIX_ALPHABET: &str = "123456789bcdfghjklmnpqrstvwxyz";
/// lite-engine gRPC port.
pub const LITE_ENGINE_PORT: u16 = 20001;
/// First step-container port.
pub const FIRST_STEP_PORT: u16 = 20002;
/// Workspace mount.
pub const WORKSPACE: &str = "/harness";
/// Addon mount.
pub const ADDON_DIR: &str = "/addon";
/// Delegate service endpoint as the product sets it.
pub const DELEGATE_SERVICE_ENDPOINT: &str = "delegate-service:8080";
/// Delegate service id.
pub const DELEGATE_SERVICE_ID: &str = "delegate-grpc-service";
/// Default step CPU limit.
pub const DEFAULT_STEP_CPU: &str = "400m";
/// Default step memory limit.
pub const DEFAULT_STEP_MEMORY: &str = "500Mi";

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
    /// Step group identifier (the `stepID` label).
    pub step_id: String,
    /// Pod name.
    pub pod_name: String,
}

/// The ids of a scenario's run (deterministic from its seed).
pub fn run_ids(s: &Scenario) -> RunIds {
    let mut rng = SplitMix64::new(s.seed(), 2);
    let alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let account = if s.fixtures().account_id.is_empty() {
        crate::scenario::DEFAULT_ACCOUNT_ID.to_string()
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
        step_id: s.step_group.identifier.clone(),
        pod_name: pod_name(&s.step_group.identifier, s.seed()),
    }
}

/// `harnesscd-<identifier lowercased, alphanumerics only, first 15>-<8 chars>`.
pub fn pod_name(identifier: &str, seed: u64) -> String {
    let base: String = identifier
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(15)
        .collect();
    let suffix = SplitMix64::new(seed, 1).string(POD_SUFFIX_ALPHABET, 8);
    format!("harnesscd-{base}-{suffix}")
}

/// Container name of a step: `step-` + identifier without `_`, lowercased.
pub fn container_name(step_identifier: &str) -> String {
    format!("step-{}", step_identifier.replace('_', "").to_lowercase())
}

/// Whether a label value matches `^[a-z0-9A-Z][a-z0-9A-Z\-_.]*[a-z0-9A-Z]$` (checked by hand).
pub fn is_valid_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() < 2 {
        return false;
    }
    let edge = |c: u8| c.is_ascii_alphanumeric();
    let mid = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    edge(b[0]) && edge(b[b.len() - 1]) && b[1..b.len() - 1].iter().all(|&c| mid(c))
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
    match step.step_type.as_str() {
        "Run" | "Background" | "Plugin" => true,
        _ => step.image.as_deref().is_some_and(image_needs_privileged),
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

fn res(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q(req_cpu)),
            ("memory".into(), q(req_mem)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q(lim_cpu)),
            ("memory".into(), q(lim_mem)),
        ])),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
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

/// Render the pod the product would create for the scenario's step group (deterministic given
/// the scenario's seed).
pub fn render_pod(s: &Scenario) -> Pod {
    let g = &s.step_group;
    let infra = &g.infra;
    let ids = run_ids(s);
    let prefix = harness_image_prefix(s);

    // Labels.
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("accountID", &ids.account_id),
        ("orgID", &ids.org_id),
        ("projectID", &ids.project_id),
        ("pipelineID", &ids.pipeline_id),
        ("pipelineExecutionID", &ids.execution_id),
        ("stepID", &ids.step_id),
    ] {
        if is_valid_label_value(v) {
            labels.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in &infra.labels {
        labels.insert(k.clone(), v.clone());
    }

    // Volumes and mounts.
    let mut volumes = vec![
        K8sVolume {
            name: "harness".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        K8sVolume {
            name: "addon".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "harness".into(),
            mount_path: WORKSPACE.into(),
            ..Default::default()
        },
        VolumeMount {
            name: "addon".into(),
            mount_path: ADDON_DIR.into(),
            ..Default::default()
        },
    ];
    for (i, p) in g.shared_paths.iter().enumerate() {
        let name = format!("shared-{i}");
        volumes.push(K8sVolume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: p.clone(),
            ..Default::default()
        });
    }
    for (i, v) in infra.volumes.iter().enumerate() {
        let name = format!("volume-{i}");
        let mut vol = K8sVolume {
            name: name.clone(),
            ..Default::default()
        };
        let mut read_only = None;
        match &v.source {
            VolumeSource::EmptyDir { medium, size } => {
                vol.empty_dir = Some(EmptyDirVolumeSource {
                    medium: medium.clone(),
                    size_limit: size.as_deref().map(q),
                    ..Default::default()
                });
            }
            VolumeSource::HostPath { path, path_type } => {
                vol.host_path = Some(HostPathVolumeSource {
                    path: path.clone(),
                    type_: path_type.clone(),
                });
            }
            VolumeSource::PersistentVolumeClaim {
                claim_name,
                read_only: ro,
            } => {
                vol.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name.clone(),
                    read_only: *ro,
                });
                read_only = *ro;
            }
            VolumeSource::ConfigMap { name: cm, optional } => {
                vol.config_map = Some(ConfigMapVolumeSource {
                    name: cm.clone(),
                    optional: *optional,
                    ..Default::default()
                });
            }
            VolumeSource::Secret { name: sec, optional } => {
                vol.secret = Some(SecretVolumeSource {
                    secret_name: Some(sec.clone()),
                    optional: *optional,
                    ..Default::default()
                });
            }
        }
        volumes.push(vol);
        mounts.push(VolumeMount {
            name,
            mount_path: v.mount_path.clone(),
            read_only,
            ..Default::default()
        });
    }

    // Init container.
    let addon_script = format!(
        "mkdir -p {ADDON_DIR}/bin && mkdir -p {ADDON_DIR}/tmp && cp /usr/local/bin/ci-addon {ADDON_DIR}/bin/ci-addon && chmod +x {ADDON_DIR}/bin/ci-addon"
    );
    let setup_addon = Container {
        name: "setup-addon".into(),
        image: Some(format!("{prefix}{ADDON_IMAGE}")),
        image_pull_policy: infra.image_pull_policy.clone(),
        command: Some(vec!["sh".into(), "-c".into(), "--".into()]),
        args: Some(vec![addon_script]),
        env: Some(vec![env("HARNESS_WORKSPACE", WORKSPACE)]),
        resources: Some(res("100m", "100Mi", "100m", "100Mi")),
        volume_mounts: Some(mounts.clone()),
        working_dir: None,
        ..Default::default()
    };

    // Step containers.
    let csc = infra.container_security_context.clone().unwrap_or_default();
    let mut containers = Vec::new();
    let mut cpu_sum: i128 = 0;
    let mut mem_sum: i128 = 0;
    for (step, port) in container_steps(g) {
        let cpu = step.cpu_limit.clone().unwrap_or_else(|| DEFAULT_STEP_CPU.into());
        let mem = step.memory_limit.clone().unwrap_or_else(|| DEFAULT_STEP_MEMORY.into());
        cpu_sum += quantity::parse(&cpu).unwrap_or(400);
        mem_sum += quantity::parse(&mem).unwrap_or(500 * 1024 * 1024 * 1000);
        let caps = if csc.capabilities_add.is_empty() && csc.capabilities_drop.is_empty() {
            None
        } else {
            Some(Capabilities {
                add: (!csc.capabilities_add.is_empty()).then(|| csc.capabilities_add.clone()),
                drop: (!csc.capabilities_drop.is_empty()).then(|| csc.capabilities_drop.clone()),
            })
        };
        let sc = SecurityContext {
            privileged: Some(step_privileged(g, step)),
            allow_privilege_escalation: csc.allow_privilege_escalation,
            capabilities: caps,
            run_as_non_root: csc.run_as_non_root,
            read_only_root_filesystem: csc.read_only_root_filesystem,
            run_as_user: step.run_as_user.or(csc.run_as_user),
            run_as_group: csc.run_as_group,
            proc_mount: csc.proc_mount.clone(),
            ..Default::default()
        };
        let image = match step.step_type.as_str() {
            "Run" | "Background" | "Plugin" => step.image.clone().unwrap_or_default(),
            // Product-managed images come through the harness image connector.
            _ => match &step.image {
                Some(i)
                    if crate::pipeline::SUPPORTED_STEP_TYPES
                        .iter()
                        .any(|(_, _, d)| *d == Some(i.as_str())) =>
                {
                    format!("{prefix}{i}")
                }
                Some(i) => i.clone(),
                None => String::new(),
            },
        };
        let envs: Vec<EnvVar> = step.env.iter().map(|(k, v)| env(k, v)).collect();
        containers.push(Container {
            name: container_name(&step.identifier),
            image: Some(image),
            image_pull_policy: step.image_pull_policy.clone(),
            command: Some(vec![format!("{ADDON_DIR}/bin/ci-addon")]),
            args: Some(vec!["--port".into(), port.to_string()]),
            ports: Some(vec![ContainerPort {
                container_port: i32::from(port),
                ..Default::default()
            }]),
            working_dir: Some(WORKSPACE.into()),
            env: (!envs.is_empty()).then_some(envs),
            resources: Some(res("10m", "10Mi", &cpu, &mem)),
            security_context: Some(sc),
            volume_mounts: Some(mounts.clone()),
            ..Default::default()
        });
    }
    let le_cpu = quantity::format_cpu(cpu_sum + 100);
    let le_mem = quantity::format_memory(mem_sum + 100 * 1024 * 1024 * 1000);
    let log_prefix = format!(
        "{}/pipeline/{}/{}/-{}",
        ids.account_id, ids.pipeline_id, ids.build_id, ids.execution_id
    );
    containers.push(Container {
        name: "lite-engine".into(),
        image: Some(format!("{prefix}{LITE_ENGINE_IMAGE}")),
        image_pull_policy: infra.image_pull_policy.clone(),
        working_dir: Some(WORKSPACE.into()),
        env: Some(vec![
            env("HARNESS_WORKSPACE", WORKSPACE),
            env("DELEGATE_SERVICE_ENDPOINT", DELEGATE_SERVICE_ENDPOINT),
            env("DELEGATE_SERVICE_ID", DELEGATE_SERVICE_ID),
            env("HARNESS_ACCOUNT_ID", &ids.account_id),
            env("HARNESS_PROJECT_ID", &ids.project_id),
            env("HARNESS_ORG_ID", &ids.org_id),
            env("HARNESS_PIPELINE_ID", &ids.pipeline_id),
            env("HARNESS_BUILD_ID", &ids.build_id),
            env("HARNESS_STAGE_ID", &ids.stage_id),
            env("HARNESS_EXECUTION_ID", &ids.execution_id),
            env("HARNESS_LOG_PREFIX", &log_prefix),
        ]),
        ports: Some(vec![ContainerPort {
            container_port: i32::from(LITE_ENGINE_PORT),
            ..Default::default()
        }]),
        resources: Some(res(&le_cpu, &le_mem, &le_cpu, &le_mem)),
        volume_mounts: Some(mounts.clone()),
        ..Default::default()
    });

    let tolerations: Vec<K8sToleration> = infra
        .tolerations
        .iter()
        .map(|t| K8sToleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect();
    let pull_secrets: Vec<LocalObjectReference> = image_pull_secret_names(s)
        .into_iter()
        .map(|(name, _)| LocalObjectReference { name })
        .collect();
    let spec = PodSpec {
        image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
        restart_policy: Some("Never".into()),
        active_deadline_seconds: Some(86400),
        init_containers: Some(vec![setup_addon]),
        containers,
        volumes: Some(volumes),
        service_account_name: infra.service_account_name.clone(),
        automount_service_account_token: infra.automount_service_account_token,
        priority_class_name: infra.priority_class_name.clone(),
        node_selector: (!infra.node_selector.is_empty()).then(|| infra.node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        security_context: infra.run_as_user.map(|u| PodSecurityContext {
            run_as_user: Some(u),
            ..Default::default()
        }),
        host_aliases: (!infra.host_names.is_empty()).then(|| {
            vec![HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: Some(infra.host_names.clone()),
            }]
        }),
        ..Default::default()
    };
    let spec = match &infra.pod_spec_overlay_json {
        Some(ov) => {
            let mut v = serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null);
            // As Harness documents for the Pod Spec Overlay: `containers` entries apply to existing
            // containers only (others are dropped) and `initContainers` is ignored.
            let mut ov = ov.clone();
            if let Some(o) = ov.as_object_mut() {
                o.remove("initContainers");
                if let Some(serde_json::Value::Array(cs)) = o.get_mut("containers") {
                    cs.retain(|c| {
                        let name = c.get("name").and_then(serde_json::Value::as_str);
                        spec.containers.iter().any(|e| Some(e.name.as_str()) == name)
                    });
                }
            }
            merge_overlay(&mut v, &ov);
            serde_json::from_value(v).unwrap_or(spec)
        }
        None => spec,
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(ids.pod_name.clone()),
            namespace: Some(infra.namespace.clone()),
            labels: Some(labels),
            annotations: (!infra.annotations.is_empty()).then(|| infra.annotations.clone()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

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

/// Default step timeout when the step sets none (10 minutes).
pub const DEFAULT_STEP_TIMEOUT_SECS: u64 = 600;

/// The execution plan of the scenario's step group.
pub fn plan(s: &Scenario) -> ExecutionPlan {
    let g = &s.step_group;
    let ports: BTreeMap<&str, u16> = container_steps(g)
        .into_iter()
        .map(|(st, p)| (st.identifier.as_str(), p))
        .collect();
    let prefix = harness_image_prefix(s);
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
    let _ = prefix;
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

/// Variables the product sets for AWS SAM and Serverless steps (besides the AWS ones).
fn managed_keys(step_type: &str) -> &'static [&'static str] {
    match step_type {
        "AwsSamBuild" => &[
            "PLUGIN_SAM_DIR",
            "PLUGIN_SAM_TEMPLATE_FILE_PATH",
            "PLUGIN_BUILD_COMMAND_OPTIONS",
        ],
        "AwsSamDeploy" | "AwsSamRollback" => &[
            "PLUGIN_SAM_DIR",
            "PLUGIN_SAM_TEMPLATE_FILE_PATH",
            "PLUGIN_DEPLOY_COMMAND_OPTIONS",
            "PLUGIN_STACK_NAME",
        ],
        "ServerlessAwsLambdaPackageV2" => &[
            "PLUGIN_SERVERLESS_DIR",
            "PLUGIN_SERVERLESS_YAML_CUSTOM_PATH",
            "PLUGIN_SERVERLESS_STAGE",
            "PLUGIN_PACKAGE_COMMAND_OPTIONS",
        ],
        "ServerlessAwsLambdaDeployV2" => &[
            "PLUGIN_SERVERLESS_DIR",
            "PLUGIN_SERVERLESS_YAML_CUSTOM_PATH",
            "PLUGIN_SERVERLESS_STAGE",
            "PLUGIN_DEPLOY_COMMAND_OPTIONS",
        ],
        "ServerlessAwsLambdaPrepareRollbackV2" | "ServerlessAwsLambdaRollbackV2" => &[
            "PLUGIN_SERVERLESS_DIR",
            "PLUGIN_SERVERLESS_YAML_CUSTOM_PATH",
            "PLUGIN_SERVERLESS_STAGE",
        ],
        _ => &[],
    }
}

fn planned(st: &Step, cx: &PlanCx<'_>) -> PlannedStep {
    let (g, ports, images) = (cx.g, cx.ports, cx.images);
    let kind = st.kind.unwrap_or(StepKind::Run);
    let has_container = kind != StepKind::NoContainer;
    let container = has_container.then(|| container_name(&st.identifier));
    let mut env = st.env.clone();
    if st.step_type == "GitClone" {
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
        let keys = managed_keys(&st.step_type);
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

/// Git connector types whose `url` a GitClone step clones from.
const GIT_CONNECTOR_TYPES: &[&str] = &[
    "Git",
    "Github",
    "GitHub",
    "Gitlab",
    "GitLab",
    "Bitbucket",
    "AzureRepo",
    "Codecommit",
    "Harness",
];

/// The drone-git plugin's variables for a GitClone step, as the product derives them from the
/// step's spec and its Git connector: `DRONE_REMOTE_URL` (connector URL, plus `/<repoName>` for
/// an account-level URL), `DRONE_NETRC_MACHINE` (its host), the build (`DRONE_BUILD_EVENT` with
/// `DRONE_COMMIT_BRANCH`, `DRONE_TAG`, `DRONE_COMMIT_SHA` or `DRONE_COMMIT_REF`), `PLUGIN_DEPTH`,
/// `DRONE_WORKSPACE` (`cloneDirectory`, default `/harness/<repository name>`), `GIT_SSL_NO_VERIFY`
/// when `sslVerify` is false, and `DRONE_NETRC_USERNAME`/`DRONE_NETRC_PASSWORD` from the
/// connector's credentials.
fn git_clone_env(s: &Scenario, st: &Step) -> Vec<(String, String)> {
    let setting = |k: &str| st.settings.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        o => o.to_string(),
    };
    let conn = st.connector_ref.as_deref().and_then(|r| {
        s.fixtures()
            .connectors
            .iter()
            .find(|c| c.identifier == r && GIT_CONNECTOR_TYPES.contains(&c.connector_type.as_str()))
    });
    let repo_name = setting("repoName").map(|v| text(&v)).unwrap_or_default();
    let base = conn.and_then(|c| c.url.clone()).unwrap_or_default();
    let url = match (base.trim_end_matches('/'), repo_name.trim_matches('/')) {
        ("", r) => r.to_string(),
        (b, "") => b.to_string(),
        (b, r) if b.ends_with(&format!("/{r}")) || b.ends_with(&format!("/{r}.git")) => b.to_string(),
        (b, r) => format!("{b}/{r}"),
    };
    let mut env = vec![("DRONE_REMOTE_URL".to_string(), url.clone())];
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or(host);
    env.push(("DRONE_NETRC_MACHINE".into(), host.to_string()));
    let build = setting("build").unwrap_or_default();
    let bspec = build.get("spec").cloned().unwrap_or_default();
    let field = |k: &str| bspec.get(k).map(text).unwrap_or_default();
    match build.get("type").map(text).as_deref() {
        Some("branch") => {
            env.push(("DRONE_BUILD_EVENT".into(), "push".into()));
            env.push(("DRONE_COMMIT_BRANCH".into(), field("branch")));
        }
        Some("tag") => {
            env.push(("DRONE_BUILD_EVENT".into(), "tag".into()));
            env.push(("DRONE_TAG".into(), field("tag")));
        }
        Some("commitSha") => {
            env.push(("DRONE_BUILD_EVENT".into(), "push".into()));
            env.push(("DRONE_COMMIT_SHA".into(), field("commitSha")));
        }
        Some("PR") => {
            env.push(("DRONE_BUILD_EVENT".into(), "pull_request".into()));
            env.push(("DRONE_COMMIT_REF".into(), format!("refs/pull/{}/head", field("number"))));
        }
        _ => {}
    }
    if let Some(d) = setting("depth").map(|v| text(&v)).filter(|d| !d.is_empty()) {
        env.push(("PLUGIN_DEPTH".into(), d));
    }
    let repo = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git")
        .to_string();
    let workspace = match setting("cloneDirectory").map(|v| text(&v)).filter(|d| !d.is_empty()) {
        Some(d) => d,
        None if repo.is_empty() => WORKSPACE.to_string(),
        None => format!("{WORKSPACE}/{repo}"),
    };
    env.push(("DRONE_WORKSPACE".into(), workspace));
    if setting("sslVerify").is_some_and(|v| v == serde_json::Value::Bool(false) || text(&v) == "false") {
        env.push(("GIT_SSL_NO_VERIFY".into(), "true".into()));
    }
    if let Some(c) = conn.filter(|c| c.auth == "usernamePassword") {
        env.push(("DRONE_NETRC_USERNAME".into(), c.username.clone().unwrap_or_default()));
        let pw = c
            .password_ref
            .as_ref()
            .and_then(|r| s.fixtures().harness_secrets.get(r))
            .cloned()
            .unwrap_or_default();
        env.push(("DRONE_NETRC_PASSWORD".into(), pw));
    }
    env
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

/// The registry connector of each container of the pod, in pod order (setup-addon, steps,
/// lite-engine): `(container name, connector identifier)`.
pub fn container_connectors(s: &Scenario) -> Vec<(String, String)> {
    let g = &s.step_group;
    let harness = g
        .infra
        .harness_image_connector_ref
        .clone()
        .unwrap_or_else(|| DEFAULT_HARNESS_IMAGE_CONNECTOR.to_string());
    let mut out = vec![("setup-addon".to_string(), harness.clone())];
    for (st, _) in container_steps(g) {
        let conn = match st.step_type.as_str() {
            "Run" | "Background" | "Plugin" => st.connector_ref.clone(),
            _ => {
                let managed = crate::pipeline::SUPPORTED_STEP_TYPES
                    .iter()
                    .any(|(_, _, d)| d.is_some() && *d == st.image.as_deref());
                if managed {
                    Some(harness.clone())
                } else {
                    st.connector_ref.clone()
                }
            }
        };
        if let Some(c) = conn {
            out.push((container_name(&st.identifier), c));
        }
    }
    out.push(("lite-engine".to_string(), harness));
    out
}

/// Names of the image pull secrets (`<pod>-image-<container>`) for containers whose registry
/// connector authenticates (`auth: usernamePassword`), with that connector.
pub fn image_pull_secret_names(s: &Scenario) -> Vec<(String, String)> {
    let pod = pod_name(&s.step_group.identifier, s.seed());
    container_connectors(s)
        .into_iter()
        .filter(|(_, c)| s.connector(c).is_some_and(|c| c.auth == "usernamePassword"))
        .map(|(container, c)| (format!("{pod}-image-{container}"), c))
        .collect()
}

/// The image pull Secrets the product creates beside the pod (type
/// `kubernetes.io/dockerconfigjson`), for the containers of [`image_pull_secret_names`].
pub fn image_pull_secrets(s: &Scenario) -> Vec<Secret> {
    let mut out = Vec::new();
    for (name, conn) in image_pull_secret_names(s) {
        let Some(c) = s.connector(&conn) else { continue };
        let user = c.username.clone().unwrap_or_default();
        let pass = c
            .password_ref
            .as_ref()
            .and_then(|r| s.fixtures().harness_secrets.get(r))
            .cloned()
            .unwrap_or_default();
        let registry = match c.url.as_deref().map(registry_prefix) {
            Some(p) if !p.is_empty() => p.split('/').next().unwrap_or_default().to_string(),
            _ => "https://index.docker.io/v1/".to_string(),
        };
        let auth = crate::base64::encode(format!("{user}:{pass}").as_bytes());
        let cfg = serde_json::json!({"auths": {registry: {"username": user, "password": pass, "auth": auth}}});
        out.push(Secret {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(s.namespace().to_string()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_string(),
                k8s_openapi::ByteString(cfg.to_string().into_bytes()),
            )])),
            ..Default::default()
        });
    }
    out
}

/// Merge a podSpecOverlay fragment into a PodSpec (as JSON): mappings merge recursively;
/// `containers`, `initContainers` and `volumes` merge by `name` (unknown names are appended);
/// other lists and scalars are replaced.
pub fn merge_overlay(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    use serde_json::Value as J;
    match (base, overlay) {
        (J::Object(b), J::Object(o)) => {
            for (k, ov) in o {
                let by_name = matches!(
                    k.as_str(),
                    "containers" | "initContainers" | "volumes" | "ephemeralContainers"
                );
                match b.get_mut(k) {
                    Some(J::Array(items)) if by_name && ov.is_array() => {
                        for oi in ov.as_array().into_iter().flatten() {
                            let name = oi.get("name").and_then(J::as_str);
                            match items
                                .iter_mut()
                                .find(|i| name.is_some() && i.get("name").and_then(J::as_str) == name)
                            {
                                Some(existing) => merge_overlay(existing, oi),
                                None => items.push(oi.clone()),
                            }
                        }
                    }
                    Some(bv) if bv.is_object() && ov.is_object() => merge_overlay(bv, ov),
                    _ => {
                        b.insert(k.clone(), ov.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}
