//! The scenario-level data of scenario.yaml: the header, fixtures (what exists in the simulated
//! cluster and Harness account), expectations and the fake runtime tier's spec.

use std::collections::BTreeMap;

use crate::diag::Diagnostics;

#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioHeader {
    /// Scenario name (the pipeline identifier for bare pipelines).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Seed of every generated value (pod-name suffix, execution id).
    pub seed: u64,
    /// The `stepGroup` selector as written (`group` or `stage.group`).
    pub step_group: Option<String>,
    /// Cluster and Harness fixtures.
    pub fixtures: Fixtures,
    /// Expected outcome.
    pub expect: Expect,
    /// Whether the input was a bare pipeline (fixtures inferred).
    pub bare: bool,
    /// What the fake runtime tier (`--runtime fake`) does in place of containers.
    pub fake: FakeSpec,
}

/// The fake runtime tier's data (`fake:` in scenario.yaml): container lifecycles and latencies
/// that the Docker tier gets from real containers. Everything not given uses its default: pulls
/// take no time, images run as root, containers exit 0, steps succeed at once with an empty log.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FakeSpec {
    /// Why the scenario cannot run on the fake tier (it needs real containers); `None`: it can.
    pub skip: Option<String>,
    /// How long every image pull takes, in milliseconds.
    pub pull_millis: u64,
    /// User id an image runs as (images not listed run as root).
    pub image_users: BTreeMap<String, i64>,
    /// Exit code of a container by name (init containers such as `setup-addon`).
    pub exit_codes: BTreeMap<String, i32>,
    /// What each step does, by step identifier.
    pub steps: BTreeMap<String, FakeStep>,
}

/// One step on the fake tier: its attempts in order (retries take the next one; the last one
/// repeats).
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FakeStep {
    /// Attempts in order (at least one).
    pub attempts: Vec<FakeAttempt>,
}

impl FakeStep {
    /// The attempt numbered `n` (0 is the first run; the last given repeats).
    pub fn attempt(&self, n: usize) -> FakeAttempt {
        self.attempts
            .get(n)
            .or(self.attempts.last())
            .cloned()
            .unwrap_or_default()
    }
}

/// One execution of a step on the fake tier.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FakeAttempt {
    /// The command's exit code.
    pub exit_code: i32,
    /// How long the command runs, in milliseconds (a step whose timeout is shorter expires).
    pub duration_millis: u64,
    /// What the command prints (appended to the step container's log).
    pub log: String,
    /// Output variables the command exports.
    pub outputs: BTreeMap<String, String>,
    /// The step's container exceeds its memory limit: the runtime kills it (`OOMKilled`, 137).
    pub oom_killed: bool,
}

/// Fixtures: what exists in the simulated cluster and Harness account.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fixtures {
    /// Harness account id (default `sgsimAccount`).
    pub account_id: String,
    /// Namespaces that exist.
    pub namespaces: Vec<String>,
    /// Cluster nodes (default: one node `node-1`).
    pub nodes: Vec<NodeFixture>,
    /// ConfigMaps.
    pub config_maps: Vec<DataObject>,
    /// Kubernetes Secrets.
    pub secrets: Vec<DataObject>,
    /// ServiceAccounts.
    pub service_accounts: Vec<NamedObject>,
    /// PersistentVolumeClaims.
    pub persistent_volume_claims: Vec<NamedObject>,
    /// PriorityClasses.
    pub priority_classes: Vec<PriorityClassFixture>,
    /// Harness connectors.
    pub connectors: Vec<Connector>,
    /// Harness secrets: identifier → value (masked in logs).
    pub harness_secrets: BTreeMap<String, String>,
    /// Runtime inputs: field path → value (JSON).
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Environment variables (`<+env.variables.x>`): name → value.
    pub env_variables: BTreeMap<String, String>,
    /// Values of other run-time expressions sgsim has no model for (`infra.name`,
    /// `artifact.image`, `service.name`): the expression without `<+` `>` → value.
    pub expressions: BTreeMap<String, String>,
    /// Enabled feature flags.
    pub feature_flags: Vec<String>,
    /// Image catalog overrides: vendor image → stand-in name.
    pub images: BTreeMap<String, String>,
    /// Simulated registry conditions, by registry URL.
    pub registries: Vec<RegistryFixture>,
    /// Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (manifests, as JSON).
    pub rbac: Vec<serde_json::Value>,
    /// The Kubernetes version the cluster plays (`1.32`, `v1.30.4`): its event wording,
    /// scheduler messages, `/version` and kubelet version. None: the product documentation's
    /// generation.
    pub kubernetes_version: Option<String>,
}

/// A registry of the run with simulated conditions (`fixtures.registries`). Its `url` names a
/// Docker connector's registry (or Docker Hub); without `username`, it accepts what the
/// connectors pointing at it present (anonymous connectors: no authentication).
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryFixture {
    /// Registry URL (`https://registry.mycompany.io/v2/`, `docker.io`).
    pub url: String,
    /// User the registry accepts (with `passwordRef`): pulls need these credentials.
    pub username: Option<String>,
    /// Harness secret holding the password the registry accepts.
    pub password_ref: Option<String>,
    /// A fixed delay before each pull (`2s`, `500ms`).
    pub delay: Option<String>,
    /// The first N pulls are answered `429 Too Many Requests`.
    pub too_many_requests: u32,
    /// Images (as written in the pod) the registry does not have.
    pub missing_images: Vec<String>,
}

/// A cluster node.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NodeFixture {
    /// Node name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<TaintFixture>,
    /// Allocatable CPU (quantity, default `8`).
    pub cpu: Option<String>,
    /// Allocatable memory (quantity, default `16Gi`).
    pub memory: Option<String>,
    /// Files on the node (absolute path → text), for hostPath volumes.
    pub files: BTreeMap<String, String>,
    /// Images already pulled on the node when the run starts.
    pub images: Vec<String>,
}

/// A node taint.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TaintFixture {
    /// key.
    pub key: String,
    /// value.
    pub value: Option<String>,
    /// effect (NoSchedule, PreferNoSchedule, NoExecute).
    pub effect: String,
}

/// A ConfigMap or Secret.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DataObject {
    /// Name.
    pub name: String,
    /// Namespace (default: the step group's).
    pub namespace: Option<String>,
    /// Data (plain text values).
    pub data: BTreeMap<String, String>,
}

/// A namespaced object known by name (ServiceAccount, PVC).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NamedObject {
    /// Name.
    pub name: String,
    /// Namespace (default: the step group's).
    pub namespace: Option<String>,
}

/// A PriorityClass.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PriorityClassFixture {
    /// Name.
    pub name: String,
    /// Priority value.
    pub value: i32,
}

/// A Harness connector.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    /// Identifier, with scope prefix as referenced (`account.harnessImage`, `k8s`).
    pub identifier: String,
    /// `DockerRegistry`, `KubernetesCluster`, `Aws`, `Git`, `Github`...
    #[serde(rename = "type")]
    pub connector_type: String,
    /// Registry/API URL.
    pub url: Option<String>,
    /// `anonymous` (default) or `usernamePassword`.
    pub auth: String,
    /// Username (usernamePassword).
    pub username: Option<String>,
    /// Harness secret holding the password.
    pub password_ref: Option<String>,
    /// AWS: access key.
    pub access_key: Option<String>,
    /// AWS: Harness secret with the secret key.
    pub secret_key_ref: Option<String>,
    /// AWS: cross-account role ARN.
    pub cross_account_role_arn: Option<String>,
    /// AWS: STS external id.
    pub external_id: Option<String>,
    /// AWS: region.
    pub region: Option<String>,
}

/// Expected outcome.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Expect {
    /// Status of the step group.
    pub status: ExpectedStatus,
    /// Per-step expectations.
    pub steps: BTreeMap<String, StepExpect>,
    /// For validation-failure scenarios: a substring of the expected error line.
    pub error: Option<String>,
}

impl Expect {
    /// Whether `diags` contains an error whose `path:line:col: message` line contains
    /// `self.error`.
    pub fn matches_error(&self, diags: &Diagnostics) -> bool {
        match &self.error {
            Some(e) => diags.errors().any(|d| d.to_string().contains(e.as_str())),
            None => false,
        }
    }
}

/// Expected status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum ExpectedStatus {
    /// Everything succeeded.
    #[default]
    Success,
    /// Failed.
    Failed,
    /// Skipped (steps only).
    Skipped,
}

/// Per-step expectation.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepExpect {
    /// Status.
    pub status: Option<ExpectedStatus>,
    /// Exit code of the step's command.
    pub exit_code: Option<i32>,
}
