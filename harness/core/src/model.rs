//! The parts of a Harness pipeline sgsim interprets: stages, containerized step groups, steps.
//!
//! Values are already resolved: `<+input>` replaced from the scenario's inputs,
//! `<+secrets.getValue("x")>` from its harness secrets; other expressions are kept verbatim.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::yaml::Pos;

/// A pipeline (only what sgsim uses).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pipeline {
    /// `pipeline.identifier`.
    pub identifier: String,
    /// `pipeline.name`.
    pub name: String,
    /// `pipeline.orgIdentifier` (default `default`).
    pub org_identifier: String,
    /// `pipeline.projectIdentifier` (default `default_project`).
    pub project_identifier: String,
    /// Every stage, in order (stages of `parallel` blocks flattened).
    pub stages: Vec<StageInfo>,
    /// `pipeline.variables`: name → value (`<+input>` and secrets resolved), in source order.
    pub variables: Vec<(String, String)>,
}

/// A stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageInfo {
    /// `stage.identifier`.
    pub identifier: String,
    /// `stage.name`.
    pub name: String,
    /// `stage.type` (`Deployment`, `Custom`, `CI`, ...).
    pub stage_type: String,
    /// Identifiers of the containerized step groups in this stage, in order.
    pub step_groups: Vec<String>,
    /// The stage's `failureStrategies`, raw.
    pub failure_strategies: Option<serde_json::Value>,
    /// `stage.variables`: name → value (`<+input>` and secrets resolved), in source order.
    pub variables: Vec<(String, String)>,
    /// Where the stage's `type` is.
    #[serde(skip)]
    pub pos: Pos,
}

/// Where in the stage's execution a step group is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Section {
    /// `execution.steps`.
    #[default]
    Steps,
    /// `execution.rollbackSteps`.
    RollbackSteps,
}

/// A containerized step group (`stepGroupInfra.type: KubernetesDirect`).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepGroup {
    /// `stepGroup.identifier`.
    pub identifier: String,
    /// `stepGroup.name`.
    pub name: String,
    /// The stage it belongs to.
    pub stage_identifier: String,
    /// steps or rollbackSteps.
    pub section: Section,
    /// Harness fully-qualified name, e.g. `pipeline.stages.deploy.spec.execution.steps.sg`.
    pub fqn: String,
    /// `stepGroupInfra.spec`.
    pub infra: K8sInfra,
    /// `sharedPaths` (beside stepGroupInfra).
    pub shared_paths: Vec<String>,
    /// Where each shared path is.
    #[serde(skip)]
    pub shared_path_pos: Vec<Pos>,
    /// The steps, as written (parallel blocks and nested step groups kept).
    pub steps: Vec<StepNode>,
    /// The group's `failureStrategies`, raw.
    pub failure_strategies: Option<serde_json::Value>,
    /// The group's `when`, raw.
    pub when: Option<serde_json::Value>,
}

impl StepGroup {
    /// Every step in execution order (parallel blocks and nested groups flattened).
    pub fn flat_steps(&self) -> Vec<&Step> {
        fn walk<'a>(nodes: &'a [StepNode], out: &mut Vec<&'a Step>) {
            for n in nodes {
                match n {
                    StepNode::Step(s) => out.push(s),
                    StepNode::Parallel(p) => walk(p, out),
                    StepNode::Group(g) => walk(&g.steps, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }
}

/// An element of a step list.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize)]
pub enum StepNode {
    /// A step.
    Step(Step),
    /// A `parallel` block.
    Parallel(Vec<StepNode>),
    /// A nested (plain) step group.
    Group(NestedGroup),
}

/// A step group nested in a containerized step group (runs in the same pod).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NestedGroup {
    /// Identifier.
    pub identifier: String,
    /// Name.
    pub name: String,
    /// Steps.
    pub steps: Vec<StepNode>,
}

/// `stepGroupInfra.spec` of type KubernetesDirect.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct K8sInfra {
    /// Kubernetes cluster connector.
    pub connector_ref: String,
    /// Namespace of the pod.
    pub namespace: String,
    /// Service account name.
    pub service_account_name: Option<String>,
    /// automountServiceAccountToken.
    pub automount_service_account_token: Option<bool>,
    /// `Linux` (default) or `Windows`.
    pub os: Option<String>,
    /// Docker connector for the product's own images (default `account.harnessImage`).
    pub harness_image_connector_ref: Option<String>,
    /// podSpecOverlay as written (YAML text).
    pub pod_spec_overlay: Option<String>,
    /// podSpecOverlay as the pod gets it (a PodSpec fragment merged into the rendered pod spec):
    /// the whole fragment with the feature flag CI_K8S_OVERLAY_YAML, else only its
    /// `topologySpreadConstraints`, as the product.
    pub pod_spec_overlay_json: Option<serde_json::Value>,
    /// User volumes.
    pub volumes: Vec<Volume>,
    /// Pod labels (user's).
    pub labels: BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// initTimeout as written (default `480s` applied by the caller via [`K8sInfra::init_timeout_secs`]).
    pub init_timeout: Option<String>,
    /// imagePullPolicy for the product's containers.
    pub image_pull_policy: Option<String>,
    /// Pod securityContext.runAsUser.
    pub run_as_user: Option<i64>,
    /// nodeSelector.
    pub node_selector: BTreeMap<String, String>,
    /// tolerations.
    pub tolerations: Vec<Toleration>,
    /// priorityClassName.
    pub priority_class_name: Option<String>,
    /// containerSecurityContext.
    pub container_security_context: Option<ContainerSecurityContext>,
    /// hostNames (pod hostAliases on 127.0.0.1).
    pub host_names: Vec<String>,
}

impl K8sInfra {
    /// initTimeout in seconds (default 480).
    pub fn init_timeout_secs(&self) -> u64 {
        self.init_timeout
            .as_deref()
            .and_then(crate::duration::parse_secs)
            .unwrap_or(480)
    }
}

/// A toleration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// key.
    pub key: Option<String>,
    /// operator (Equal, Exists).
    pub operator: Option<String>,
    /// value.
    pub value: Option<String>,
    /// effect.
    pub effect: Option<String>,
    /// tolerationSeconds.
    pub toleration_seconds: Option<i64>,
}

/// containerSecurityContext.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSecurityContext {
    /// privileged.
    pub privileged: Option<bool>,
    /// allowPrivilegeEscalation.
    pub allow_privilege_escalation: Option<bool>,
    /// capabilities.add.
    pub capabilities_add: Vec<String>,
    /// capabilities.drop.
    pub capabilities_drop: Vec<String>,
    /// runAsNonRoot.
    pub run_as_non_root: Option<bool>,
    /// readOnlyRootFilesystem.
    pub read_only_root_filesystem: Option<bool>,
    /// runAsUser.
    pub run_as_user: Option<i64>,
    /// runAsGroup.
    pub run_as_group: Option<i64>,
    /// procMount.
    pub proc_mount: Option<String>,
}

/// A user volume.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// mountPath.
    pub mount_path: String,
    /// The type and its spec.
    pub source: VolumeSource,
    /// Where `mountPath`'s value is.
    #[serde(skip)]
    pub pos: Pos,
}

/// A user volume's type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum VolumeSource {
    /// EmptyDir.
    EmptyDir {
        /// medium (e.g. Memory).
        medium: Option<String>,
        /// size (sizeLimit), a quantity.
        size: Option<String>,
    },
    /// HostPath.
    HostPath {
        /// path on the node.
        path: String,
        /// hostPath type.
        path_type: Option<String>,
    },
    /// PersistentVolumeClaim.
    PersistentVolumeClaim {
        /// claimName.
        claim_name: String,
        /// readOnly.
        read_only: Option<bool>,
    },
    /// ConfigMap (feature flag CDS_CONFIG_MAPS_AND_SECRETS_AS_VOLUME).
    ConfigMap {
        /// ConfigMap name.
        name: String,
        /// optional.
        optional: Option<bool>,
    },
    /// Secret (feature flag CDS_CONFIG_MAPS_AND_SECRETS_AS_VOLUME).
    Secret {
        /// Secret name.
        name: String,
        /// optional.
        optional: Option<bool>,
    },
}

/// How a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StepKind {
    /// A command in a container (`Run`).
    Run,
    /// A detached service (`Background`).
    Background,
    /// A plugin image with settings (`Plugin` and the product-managed steps).
    Plugin,
    /// A step that needs no container (approvals); runs on the delegate.
    NoContainer,
}

/// Shell of a Run/Background step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Shell {
    /// sh (default).
    #[default]
    Sh,
    /// bash.
    Bash,
    /// Windows PowerShell.
    Powershell,
    /// PowerShell core.
    Pwsh,
    /// python.
    Python,
}

impl Shell {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Shell::Sh => "Sh",
            Shell::Bash => "Bash",
            Shell::Powershell => "Powershell",
            Shell::Pwsh => "Pwsh",
            Shell::Python => "Python",
        }
    }
    /// Parse the YAML spelling.
    pub fn parse(s: &str) -> Option<Shell> {
        Some(match s {
            "Sh" => Shell::Sh,
            "Bash" => Shell::Bash,
            "Powershell" => Shell::Powershell,
            "Pwsh" => Shell::Pwsh,
            "Python" => Shell::Python,
            _ => return None,
        })
    }
}

/// A step inside a containerized step group.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// identifier.
    pub identifier: String,
    /// name.
    pub name: String,
    /// type as written (`Run`, `Background`, `GitClone`, ...).
    pub step_type: String,
    /// How it runs (derived from the type).
    pub kind: Option<StepKind>,
    /// Harness FQN of the step.
    pub fqn: String,
    /// connectorRef of the image registry.
    pub connector_ref: Option<String>,
    /// image as written (vendor name); product-managed steps get their default image.
    pub image: Option<String>,
    /// command (Run/Background).
    pub command: Option<String>,
    /// shell.
    pub shell: Shell,
    /// entrypoint (Background).
    pub entrypoint: Vec<String>,
    /// envVariables, in source order.
    pub env: Vec<(String, String)>,
    /// Plugin settings (and product-managed step spec fields), as JSON, in source order.
    pub settings: Vec<(String, serde_json::Value)>,
    /// privileged as written.
    pub privileged: Option<bool>,
    /// resources.limits.cpu.
    pub cpu_limit: Option<String>,
    /// resources.limits.memory.
    pub memory_limit: Option<String>,
    /// imagePullPolicy.
    pub image_pull_policy: Option<String>,
    /// runAsUser.
    pub run_as_user: Option<i64>,
    /// reports.spec.paths.
    pub report_paths: Vec<String>,
    /// outputVariables names.
    pub output_variables: Vec<String>,
    /// portBindings (Background).
    pub port_bindings: BTreeMap<String, String>,
    /// timeout as written (e.g. `10m`).
    pub timeout: Option<String>,
    /// `when`, raw.
    pub when: Option<serde_json::Value>,
    /// `failureStrategies`, raw.
    pub failure_strategies: Option<serde_json::Value>,
    /// Where the step is (its `identifier` line).
    #[serde(skip)]
    pub pos: Pos,
}
