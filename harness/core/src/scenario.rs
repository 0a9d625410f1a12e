//! Scenario format v1 (`scenarios/<name>/scenario.yaml`) and bare pipeline files: loading,
//! validation, fixtures. See docs/scenarios.md.
//!
//! Core does no IO: the caller hands in the text of the file and a [`SourceLoader`] that returns
//! the text of files the scenario references (paths as written, relative to the scenario's
//! directory).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, Severity, SourceFile, suggest};
use crate::model::{Pipeline, StageInfo, StepGroup, StepKind};
use crate::pipeline::{FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME, discover, read_group};
use crate::walk::{Ctx, Resolver};
use crate::yaml::{Node, Pos, Value, parse};

/// Loads files referenced by a scenario. `path` is as written in scenario.yaml (relative to the
/// scenario directory); the error is a human-readable reason.
pub trait SourceLoader {
    /// The file's text (lossy UTF-8 is fine).
    fn load(&self, path: &str) -> Result<String, String>;
}

impl<F: Fn(&str) -> Result<String, String>> SourceLoader for F {
    fn load(&self, path: &str) -> Result<String, String> {
        self(path)
    }
}

/// A loader for inputs that reference no file (bare pipelines, inline pipelines).
pub fn no_files(path: &str) -> Result<String, String> {
    Err(format!("no file loader available for `{path}`"))
}

/// Errors of [`load`].
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario or its pipeline is invalid; `header` holds what could be read of
    /// scenario.yaml (so `expect.error` can still be checked).
    #[error("{diagnostics}")]
    Invalid {
        /// The scenario header, when scenario.yaml itself was readable.
        header: Option<Box<ScenarioHeader>>,
        /// Every error (and warning) found.
        diagnostics: Diagnostics,
    },
}

impl ScenarioError {
    /// The diagnostics.
    pub fn diagnostics(&self) -> &Diagnostics {
        match self {
            ScenarioError::Invalid { diagnostics, .. } => diagnostics,
        }
    }
    /// The header, if scenario.yaml was readable.
    pub fn header(&self) -> Option<&ScenarioHeader> {
        match self {
            ScenarioError::Invalid { header, .. } => header.as_deref(),
        }
    }
    /// Whether the scenario expected exactly this failure (`expect.error` is a substring of
    /// one of the error lines).
    pub fn is_expected(&self) -> bool {
        self.header()
            .is_some_and(|h| h.expect.matches_error(self.diagnostics()))
    }
}

impl miette::Diagnostic for ScenarioError {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        miette::Diagnostic::related(self.diagnostics())
    }
}

/// The scenario-level data (everything but the pipeline).
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

/// A loaded, valid scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Scenario data.
    pub header: ScenarioHeader,
    /// Path of the pipeline file as shown in messages.
    pub pipeline_path: String,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The stage holding the selected step group.
    pub stage: StageInfo,
    /// The selected containerized step group.
    pub step_group: StepGroup,
    /// Every harness secret value, to mask in logs (those the step group uses first, in order of
    /// use, then the other values of fixtures.harnessSecrets).
    pub secrets: Vec<String>,
    /// Warnings (e.g. namespace not in fixtures).
    pub warnings: Diagnostics,
}

impl Scenario {
    /// Seed.
    pub fn seed(&self) -> u64 {
        self.header.seed
    }
    /// Fixtures.
    pub fn fixtures(&self) -> &Fixtures {
        &self.header.fixtures
    }
    /// Expected outcome.
    pub fn expect(&self) -> &Expect {
        &self.header.expect
    }
    /// The step group's namespace.
    pub fn namespace(&self) -> &str {
        &self.step_group.infra.namespace
    }
    /// A connector by identifier.
    pub fn connector(&self, identifier: &str) -> Option<&Connector> {
        self.header
            .fixtures
            .connectors
            .iter()
            .find(|c| c.identifier == identifier)
    }
}

const SCENARIO_FIELDS: &[&str] = &[
    "name",
    "description",
    "pipeline",
    "stepGroup",
    "seed",
    "fixtures",
    "expect",
    "fake",
];
const FIXTURE_FIELDS: &[&str] = &[
    "accountId",
    "namespaces",
    "nodes",
    "configMaps",
    "secrets",
    "serviceAccounts",
    "persistentVolumeClaims",
    "priorityClasses",
    "connectors",
    "harnessSecrets",
    "inputs",
    "featureFlags",
    "images",
    "envVariables",
    "expressions",
    "registries",
];
/// Feature flags sgsim knows.
pub const KNOWN_FEATURE_FLAGS: &[&str] = &[FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME];

/// Default Harness account id.
pub const DEFAULT_ACCOUNT_ID: &str = "sgsimAccount";
/// Default harness image connector.
pub const DEFAULT_HARNESS_IMAGE_CONNECTOR: &str = "account.harnessImage";

/// Whether a parsed YAML document is a bare pipeline (top-level `pipeline:` mapping only)
/// rather than a scenario.
fn is_bare(root: &Node) -> bool {
    let Some(entries) = root.as_map() else { return false };
    let has_pipeline_map = root
        .get("pipeline")
        .is_some_and(|p| p.as_map().is_some() && p.get("pipeline").is_none());
    has_pipeline_map
        && entries.iter().all(|(k, _)| {
            let key = k.scalar_text().unwrap_or_default();
            !SCENARIO_FIELDS.contains(&key.as_str()) || key == "pipeline"
        })
}

/// Step groups that use a template (`stepGroup: {template: {templateRef}}`): position of the
/// `template` key, group identifier, template reference.
fn templated_step_groups(n: &Node, out: &mut Vec<(Pos, String, String)>) {
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                if k.scalar_text().as_deref() == Some("stepGroup")
                    && let Some((tk, t)) = v.entry("template")
                {
                    let id = v.get("identifier").and_then(Node::scalar_text).unwrap_or_default();
                    let r = t.get("templateRef").and_then(Node::scalar_text).unwrap_or_default();
                    out.push((tk.pos, id, r));
                } else {
                    templated_step_groups(v, out);
                }
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| templated_step_groups(i, out)),
        _ => {}
    }
}

/// A step group template file (top level only `template:` with `type: StepGroup`) as a one-stage
/// pipeline whose execution is that step group: identifier and name from the template, every
/// `spec` field but `stageType` on the group, the stage's type from `stageType` (default Custom).
/// Nodes read from the file keep their positions; the synthetic ones take the template's.
fn step_group_template_as_pipeline(root: &Node) -> Option<Node> {
    let (tk, t) = root.entry("template")?;
    if root.as_map()?.len() != 1 || t.get("type").and_then(Node::scalar_text).as_deref() != Some("StepGroup") {
        return None;
    }
    let spec = t.get("spec").filter(|s| s.as_map().is_some())?;
    let pos = tk.pos;
    let node = |value: Value| Node { value, pos, raw: None };
    let s = |v: &str| node(Value::Str(v.to_string()));
    let map = |kv: Vec<(&str, Node)>| node(Value::Map(kv.into_iter().map(|(k, v)| (s(k), v)).collect()));
    let id = t.get("identifier").and_then(Node::scalar_text).unwrap_or_default();
    let name = t.get("name").and_then(Node::scalar_text).unwrap_or_else(|| id.clone());
    let stage_type = spec.get("stageType").cloned().unwrap_or_else(|| s("Custom"));
    let mut group = vec![
        (s("identifier"), t.get("identifier").cloned().unwrap_or_else(|| s(&id))),
        (s("name"), s(&name)),
    ];
    for (k, v) in spec.as_map().unwrap_or_default() {
        if k.scalar_text().as_deref() != Some("stageType") {
            group.push((k.clone(), v.clone()));
        }
    }
    let steps = node(Value::Seq(vec![map(vec![("stepGroup", node(Value::Map(group)))])]));
    let stage = map(vec![
        ("identifier", s(&id)),
        ("name", s(&name)),
        ("type", stage_type),
        ("spec", map(vec![("execution", map(vec![("steps", steps)]))])),
    ]);
    let stages = node(Value::Seq(vec![map(vec![("stage", stage)])]));
    Some(map(vec![(
        "pipeline",
        map(vec![("identifier", s(&id)), ("name", s(&name)), ("stages", stages)]),
    )]))
}

fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

fn join(dir: &str, rel: &str) -> String {
    if rel.starts_with('/') || dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// Overrides for [`load_with_options`] (e.g. from CLI flags).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Select this step group (`group` or `stage.group`), overriding scenario.yaml's `stepGroup`;
    /// the only way to choose one in a bare pipeline with several.
    pub step_group: Option<String>,
    /// Use this seed instead of scenario.yaml's.
    pub seed: Option<u64>,
}

/// Load a scenario.yaml or a bare pipeline YAML. `path` is the file's path as shown in
/// messages; `text` its content; `loader` returns referenced files (paths as written).
pub fn load(path: &str, text: &str, loader: &dyn SourceLoader) -> Result<Scenario, ScenarioError> {
    load_with_options(path, text, loader, &LoadOptions::default())
}

/// [`load`] with overrides.
pub fn load_with_options(
    path: &str,
    text: &str,
    loader: &dyn SourceLoader,
    opts: &LoadOptions,
) -> Result<Scenario, ScenarioError> {
    let mut r = load_inner(path, text, loader, opts);
    if let (Some(seed), Ok(s)) = (opts.seed, &mut r) {
        s.header.seed = seed;
    }
    r
}

fn load_inner(
    path: &str,
    text: &str,
    loader: &dyn SourceLoader,
    opts: &LoadOptions,
) -> Result<Scenario, ScenarioError> {
    let file = SourceFile::new(path, text);
    let mut diags = Diagnostics::default();
    let root = match parse(text) {
        Ok(n) => n,
        Err(e) => {
            diags.push(Diagnostic::new(Severity::Error, &file, e.pos, yaml_message(&e)));
            return Err(ScenarioError::Invalid {
                header: None,
                diagnostics: diags,
            });
        }
    };
    if root.is_null() {
        diags.push(Diagnostic::new(
            Severity::Error,
            &file,
            Pos::default(),
            "empty file: expected a scenario or a pipeline",
        ));
        return Err(ScenarioError::Invalid {
            header: None,
            diagnostics: diags,
        });
    }
    let mut res = Resolver::default();
    if is_bare(&root) {
        let header = ScenarioHeader {
            seed: 1,
            bare: true,
            step_group: opts.step_group.clone(),
            ..Default::default()
        };
        res.infer_secrets = true;
        return finish(header, file.clone(), &root, path.to_string(), res, diags, &file);
    }
    if let Some(proot) = step_group_template_as_pipeline(&root) {
        // A step group template is loaded like a bare pipeline that uses it.
        let header = ScenarioHeader {
            seed: 1,
            bare: true,
            step_group: opts.step_group.clone(),
            ..Default::default()
        };
        res.infer_secrets = true;
        return finish(header, file.clone(), &proot, path.to_string(), res, diags, &file);
    }
    if let Some(entries) = root.as_map()
        && !entries
            .iter()
            .any(|(k, _)| SCENARIO_FIELDS.contains(&k.scalar_text().unwrap_or_default().as_str()))
    {
        let first = entries
            .first()
            .map(|(k, _)| (k.pos, k.scalar_text().unwrap_or_default()));
        let (pos, key) = first.unwrap_or((root.pos, String::new()));
        let hint = suggest(&key, SCENARIO_FIELDS.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        diags.push(Diagnostic::new(
            Severity::Error,
            &file,
            pos,
            format!("expected a scenario (`name`, `pipeline`, `fixtures`, `expect`, ...) or a pipeline (a top-level `pipeline:` mapping), found `{key}`{hint}"),
        ));
        return Err(ScenarioError::Invalid {
            header: None,
            diagnostics: diags,
        });
    }
    if root.as_map().is_none() {
        diags.push(Diagnostic::new(
            Severity::Error,
            &file,
            root.pos,
            format!(
                "expected a scenario or a pipeline (a mapping), found {}",
                root.kind_name()
            ),
        ));
        return Err(ScenarioError::Invalid {
            header: None,
            diagnostics: diags,
        });
    }
    // Scenario.
    let mut header = ScenarioHeader {
        seed: 1,
        ..Default::default()
    };
    header.fixtures.account_id = DEFAULT_ACCOUNT_ID.into();
    header.fixtures.nodes = vec![default_node()];
    let mut ctx = Ctx {
        file: file.clone(),
        diags: &mut diags,
        res: &mut res,
    };
    if !ctx.strict_map(&root, root.pos, SCENARIO_FIELDS, "scenario.yaml") {
        return Err(ScenarioError::Invalid {
            header: None,
            diagnostics: diags,
        });
    }
    header.name = scalar(&mut ctx, &root, "name").unwrap_or_default();
    header.description = scalar(&mut ctx, &root, "description").unwrap_or_default();
    header.step_group = scalar(&mut ctx, &root, "stepGroup");
    if opts.step_group.is_some() {
        header.step_group = opts.step_group.clone();
    }
    if let Some(v) = root.get("seed") {
        match &v.value {
            Value::Int(i) if *i >= 0 && *i <= u64::MAX as i128 => header.seed = *i as u64,
            _ => ctx.err(
                v.pos,
                format!("`seed` must be a non-negative integer, found {}", v.kind_name()),
            ),
        }
    }
    if let Some((fk, f)) = root.entry("fixtures") {
        read_fixtures(&mut ctx, f, fk.pos, &mut header.fixtures);
    }
    if let Some((ek, e)) = root.entry("expect") {
        read_expect(&mut ctx, e, ek.pos, &mut header.expect);
    }
    if let Some((fk, f)) = root.entry("fake") {
        read_fake(&mut ctx, f, fk.pos, &mut header.fake);
    }
    for (k, v) in &header.fixtures.harness_secrets {
        ctx.res.secrets.insert(k.clone(), v.clone());
    }
    if let Some(inputs) = root
        .get("fixtures")
        .and_then(|f| f.get("inputs"))
        .and_then(Node::as_map)
    {
        for (k, v) in inputs {
            ctx.res.inputs.insert(k.scalar_text().unwrap_or_default(), v.clone());
        }
    }
    // The pipeline.
    let Some((pk, pnode)) = root.entry("pipeline") else {
        ctx.err(
            root.pos,
            "missing required field `pipeline` (a file path or an inline `pipeline:` mapping)",
        );
        return Err(ScenarioError::Invalid {
            header: Some(Box::new(header)),
            diagnostics: diags,
        });
    };
    let _ = pk;
    match &pnode.value {
        Value::Str(rel) => {
            let shown = join(dirname(path), rel);
            match loader.load(rel) {
                Err(reason) => {
                    ctx.err(pnode.pos, format!("cannot read pipeline file `{rel}`: {reason}"));
                    Err(ScenarioError::Invalid {
                        header: Some(Box::new(header)),
                        diagnostics: diags,
                    })
                }
                Ok(ptext) => {
                    let pfile = SourceFile::new(shown.clone(), ptext);
                    let proot = match parse(&pfile.text) {
                        Ok(n) => n,
                        Err(e) => {
                            diags.push(Diagnostic::new(Severity::Error, &pfile, e.pos, yaml_message(&e)));
                            return Err(ScenarioError::Invalid {
                                header: Some(Box::new(header)),
                                diagnostics: diags,
                            });
                        }
                    };
                    finish(header, pfile, &proot, shown, res, diags, &file)
                }
            }
        }
        Value::Map(_) => {
            let p = pnode.clone();
            finish(header, file.clone(), &p, path.to_string(), res, diags, &file)
        }
        _ => {
            ctx.err(
                pnode.pos,
                format!(
                    "`pipeline` must be a file path or an inline mapping `{{pipeline: ...}}`, found {}",
                    pnode.kind_name()
                ),
            );
            Err(ScenarioError::Invalid {
                header: Some(Box::new(header)),
                diagnostics: diags,
            })
        }
    }
}

fn finish(
    mut header: ScenarioHeader,
    pfile: Arc<SourceFile>,
    proot: &Node,
    pipeline_path: String,
    mut res: Resolver,
    mut diags: Diagnostics,
    scenario_file: &Arc<SourceFile>,
) -> Result<Scenario, ScenarioError> {
    let fail = |header: ScenarioHeader, mut diags: Diagnostics| {
        diags.sort();
        Err(ScenarioError::Invalid {
            header: Some(Box::new(header)),
            diagnostics: diags,
        })
    };
    let mut ctx = Ctx {
        file: pfile.clone(),
        diags: &mut diags,
        res: &mut res,
    };
    let Some((pipeline, found)) = discover(&mut ctx, proot) else {
        return fail(header, diags);
    };
    if header.bare && header.name.is_empty() {
        header.name = pipeline.identifier.clone();
    }
    if found.is_empty() {
        let mut templated = Vec::new();
        templated_step_groups(proot, &mut templated);
        if !templated.is_empty() {
            for (pos, id, r) in templated {
                ctx.err_help(
                    pos,
                    format!("step group `{id}` uses the step group template `{r}`, which sgsim cannot fetch"),
                    "validate the template's own YAML (a `template:` file with `type: StepGroup`), or inline the step group",
                );
            }
            return fail(header, diags);
        }
        let pos = proot.get("pipeline").map(|p| p.pos).unwrap_or(proot.pos);
        ctx.err_help(
            pos,
            "the pipeline has no containerized step group (a stepGroup with `stepGroupInfra: {type: KubernetesDirect, ...}`)",
            "enable container based execution on a step group of a Deploy or Custom stage",
        );
        return fail(header, diags);
    }
    let names: Vec<String> = found
        .iter()
        .map(|f| format!("{}.{}", f.stage_identifier, f.group_identifier))
        .collect();
    let chosen = match &header.step_group {
        Some(sel) => {
            let m: Vec<usize> = found
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.group_identifier == *sel || format!("{}.{}", f.stage_identifier, f.group_identifier) == *sel
                })
                .map(|(i, _)| i)
                .collect();
            match m.as_slice() {
                [i] => Some(*i),
                [] => {
                    let cands: Vec<&str> = found.iter().map(|f| f.group_identifier.as_str()).collect();
                    let hint = suggest(sel, cands.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    let d = Diagnostic::new(
                        Severity::Error,
                        scenario_file,
                        step_group_pos(scenario_file),
                        format!(
                            "step group `{sel}` not found{hint}; containerized step groups in the pipeline: {}",
                            names.join(", ")
                        ),
                    );
                    ctx.diags.push(d);
                    None
                }
                _ => {
                    let d = Diagnostic::new(
                        Severity::Error,
                        scenario_file,
                        step_group_pos(scenario_file),
                        format!(
                            "step group `{sel}` is ambiguous; use `<stage>.<group>`: {}",
                            names.join(", ")
                        ),
                    );
                    ctx.diags.push(d);
                    None
                }
            }
        }
        None if found.len() == 1 => Some(0),
        None => {
            let pos = found[1].key_pos;
            ctx.err_help(
                pos,
                format!(
                    "the pipeline has {} containerized step groups ({}); choose one with `stepGroup`",
                    found.len(),
                    names.join(", ")
                ),
                if header.bare {
                    "pass `--step-group <identifier>` (or `stage.group`), or use a scenario.yaml with `stepGroup`"
                } else {
                    "set `stepGroup: <identifier>` in scenario.yaml"
                },
            );
            None
        }
    };
    let Some(ci) = chosen else { return fail(header, diags) };
    let f = &found[ci];
    if header.bare {
        header.fixtures.feature_flags = KNOWN_FEATURE_FLAGS.iter().map(|s| s.to_string()).collect();
    }
    let group = read_group(&mut ctx, f, &header.fixtures.feature_flags);
    let stage = pipeline
        .stages
        .iter()
        .find(|s| s.identifier == f.stage_identifier)
        .cloned()
        .unwrap_or_default();
    // Fixture-dependent checks.
    let ns = &group.infra.namespace;
    if !ns.is_empty() && !ns.contains("<+") && !is_dns_label(ns) {
        let pos = f
            .node
            .get("stepGroupInfra")
            .and_then(|i| i.get("spec"))
            .and_then(|s| s.get("namespace"))
            .map(|n| n.pos)
            .unwrap_or(f.key_pos);
        ctx.warn(pos, format!("namespace `{ns}` is not a valid Kubernetes namespace name (a lowercase RFC 1123 label); the pod will fail to be created"));
    }
    if header.bare {
        infer_fixtures(&mut header.fixtures, &group);
    } else {
        let ns = &group.infra.namespace;
        if !ns.is_empty() && !ns.contains("<+") && !header.fixtures.namespaces.iter().any(|n| n == ns) {
            let pos = f
                .node
                .get("stepGroupInfra")
                .and_then(|i| i.get("spec"))
                .and_then(|s| s.get("namespace"))
                .map(|n| n.pos)
                .unwrap_or(f.key_pos);
            ctx.warn(
                pos,
                format!("namespace `{ns}` is not in fixtures.namespaces; the pod will fail to be created"),
            );
        }
        let known: Vec<&str> = header
            .fixtures
            .connectors
            .iter()
            .map(|c| c.identifier.as_str())
            .collect();
        let cref = &group.infra.connector_ref;
        if !cref.is_empty() && !cref.contains("<+") && !known.contains(&cref.as_str()) {
            let pos = f
                .node
                .get("stepGroupInfra")
                .and_then(|i| i.get("spec"))
                .and_then(|s| s.get("connectorRef"))
                .map(|n| n.pos)
                .unwrap_or(f.key_pos);
            ctx.warn(pos, format!("connector `{cref}` is not in fixtures.connectors; treated as a KubernetesCluster connector to the simulated cluster"));
        }
    }
    if !header.bare {
        // `expect.steps` and `fake.steps` name steps of the group.
        let steps = group.flat_steps();
        let ids: Vec<&str> = steps.iter().map(|s| s.identifier.as_str()).collect();
        let sc_root = parse(&scenario_file.text).ok();
        let sections = [
            ("expect", header.expect.steps.keys().collect::<Vec<_>>()),
            ("fake", header.fake.steps.keys().collect()),
        ];
        for (section, named) in sections {
            for id in named.into_iter().filter(|id| !ids.contains(&id.as_str())) {
                let pos = sc_root
                    .as_ref()
                    .and_then(|r| r.get(section))
                    .and_then(|e| e.get("steps"))
                    .and_then(|s| s.entry(id))
                    .map(|(k, _)| k.pos)
                    .unwrap_or_default();
                let hint = suggest(id, ids.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                ctx.diags.push(Diagnostic::new(
                    Severity::Error,
                    scenario_file,
                    pos,
                    format!(
                        "{section}.steps names `{id}`, which is not a step of `{}`{hint}",
                        group.identifier
                    ),
                ));
            }
        }
    }
    if !header.bare
        && let Some(inputs) = parse(&scenario_file.text)
            .ok()
            .and_then(|r| r.get("fixtures").and_then(|f| f.get("inputs")).cloned())
        && let Some(entries) = inputs.as_map()
    {
        for (k, _) in entries {
            let key = k.scalar_text().unwrap_or_default();
            if !ctx.res.used_inputs.contains(&key) && key.starts_with("pipeline.") {
                let d = Diagnostic::new(
                    Severity::Warning,
                    scenario_file,
                    k.pos,
                    format!(
                        "input `{key}` is not used by step group `{}` (no `<+input>` at that field path)",
                        group.identifier
                    ),
                );
                ctx.diags.push(d);
            }
        }
    }
    let _ = StepKind::Run;
    if diags.has_errors() {
        return fail(header, diags);
    }
    diags.sort();
    Ok(Scenario {
        header,
        pipeline_path,
        pipeline,
        stage,
        step_group: group,
        secrets: {
            // Every harness secret value is masked: first the ones the step group uses, in order
            // of use, then the others.
            let mut all = res.used_secrets.clone();
            for v in res.secrets.values() {
                if !v.is_empty() && !all.contains(v) {
                    all.push(v.clone());
                }
            }
            all
        },
        warnings: diags,
    })
}

fn step_group_pos(file: &Arc<SourceFile>) -> Pos {
    parse(&file.text)
        .ok()
        .and_then(|r| r.get("stepGroup").map(|n| n.pos))
        .unwrap_or_default()
}

/// Fixtures of a bare pipeline: the namespace exists, connectors are anonymous, one node.
/// A Kubernetes RFC 1123 label (namespace names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn infer_fixtures(fx: &mut Fixtures, group: &StepGroup) {
    // A namespace that cannot exist is not inferred: creating the pod fails as on a real cluster.
    if !group.infra.namespace.is_empty() && is_dns_label(&group.infra.namespace) {
        fx.namespaces.push(group.infra.namespace.clone());
    }
    if !group.infra.connector_ref.is_empty() {
        fx.connectors.push(Connector {
            identifier: group.infra.connector_ref.clone(),
            connector_type: "KubernetesCluster".into(),
            auth: "anonymous".into(),
            ..Default::default()
        });
    }
    let img = group
        .infra
        .harness_image_connector_ref
        .clone()
        .unwrap_or_else(|| DEFAULT_HARNESS_IMAGE_CONNECTOR.into());
    let mut docker: Vec<String> = vec![img];
    for s in group.flat_steps() {
        if let Some(c) = &s.connector_ref
            && !docker.contains(c)
        {
            docker.push(c.clone());
        }
    }
    for c in docker {
        if fx.connectors.iter().any(|x| x.identifier == c) {
            continue;
        }
        fx.connectors.push(Connector {
            identifier: c,
            connector_type: "DockerRegistry".into(),
            url: Some("https://index.docker.io/v2/".into()),
            auth: "anonymous".into(),
            ..Default::default()
        });
    }
    for v in &group.infra.volumes {
        match &v.source {
            crate::model::VolumeSource::PersistentVolumeClaim { claim_name, .. } => {
                fx.persistent_volume_claims.push(NamedObject {
                    name: claim_name.clone(),
                    namespace: None,
                })
            }
            crate::model::VolumeSource::ConfigMap { name, .. } => fx.config_maps.push(DataObject {
                name: name.clone(),
                ..Default::default()
            }),
            crate::model::VolumeSource::Secret { name, .. } => fx.secrets.push(DataObject {
                name: name.clone(),
                ..Default::default()
            }),
            _ => {}
        }
    }
    if let Some(sa) = &group.infra.service_account_name {
        fx.service_accounts.push(NamedObject {
            name: sa.clone(),
            namespace: None,
        });
    }
    if let Some(pc) = &group.infra.priority_class_name {
        fx.priority_classes.push(PriorityClassFixture {
            name: pc.clone(),
            value: 1000,
        });
    }
    fx.feature_flags = KNOWN_FEATURE_FLAGS.iter().map(|s| s.to_string()).collect();
    fx.account_id = DEFAULT_ACCOUNT_ID.into();
    fx.nodes = vec![default_node()];
}

fn default_node() -> NodeFixture {
    NodeFixture {
        name: "node-1".into(),
        ..Default::default()
    }
}

fn scalar(ctx: &mut Ctx<'_>, map: &Node, key: &str) -> Option<String> {
    let v = map.get(key)?;
    match &v.value {
        Value::Null => None,
        Value::Seq(_) | Value::Map(_) => {
            ctx.err(v.pos, format!("`{key}` must be a scalar, found {}", v.kind_name()));
            None
        }
        _ => v.scalar_text(),
    }
}

fn plain_map(ctx: &mut Ctx<'_>, map: &Node, key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(v) = map.get(key) else { return out };
    match v.as_map() {
        Some(entries) => {
            for (k, val) in entries {
                let kt = k.scalar_text().unwrap_or_default();
                match val.scalar_text() {
                    Some(s) => {
                        out.insert(kt, s);
                    }
                    None if val.is_null() => {
                        out.insert(kt, String::new());
                    }
                    None => ctx.err(
                        val.pos,
                        format!("`{key}.{kt}` must be a scalar, found {}", val.kind_name()),
                    ),
                }
            }
        }
        None if v.is_null() => {}
        None => ctx.err(v.pos, format!("`{key}` must be a mapping, found {}", v.kind_name())),
    }
    out
}

fn list<'n>(ctx: &mut Ctx<'_>, map: &'n Node, key: &str) -> &'n [Node] {
    match map.get(key) {
        None => &[],
        Some(v) => match v.as_seq() {
            Some(items) => items,
            None => {
                if !v.is_null() {
                    ctx.err(v.pos, format!("`{key}` must be a list, found {}", v.kind_name()));
                }
                &[]
            }
        },
    }
}

fn read_fixtures(ctx: &mut Ctx<'_>, f: &Node, at: Pos, fx: &mut Fixtures) {
    fx.account_id = DEFAULT_ACCOUNT_ID.into();
    fx.nodes = vec![default_node()];
    if f.is_null() || !ctx.strict_map(f, at, FIXTURE_FIELDS, "fixtures") {
        return;
    }
    if let Some(a) = scalar(ctx, f, "accountId") {
        fx.account_id = a;
    }
    for n in list(ctx, f, "namespaces") {
        match n.scalar_text() {
            Some(s) => fx.namespaces.push(s),
            None => ctx.err(n.pos, "a namespace must be a name"),
        }
    }
    if f.get("nodes").is_some() {
        fx.nodes.clear();
    }
    for n in list(ctx, f, "nodes") {
        if let Some(name) = n.scalar_text() {
            fx.nodes.push(NodeFixture {
                name,
                ..Default::default()
            });
            continue;
        }
        if !ctx.strict_map(
            n,
            n.pos,
            &["name", "labels", "taints", "cpu", "memory", "files", "images"],
            "node fixture",
        ) {
            continue;
        }
        let mut node = NodeFixture {
            name: scalar(ctx, n, "name").unwrap_or_default(),
            labels: plain_map(ctx, n, "labels"),
            cpu: scalar(ctx, n, "cpu"),
            memory: scalar(ctx, n, "memory"),
            files: plain_map(ctx, n, "files"),
            images: list(ctx, n, "images").iter().filter_map(|i| i.scalar_text()).collect(),
            ..Default::default()
        };
        for path in node.files.keys() {
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                let pos = n.get("files").map(|x| x.pos).unwrap_or(n.pos);
                ctx.err(pos, format!("node file `{path}` must be an absolute path without `..`"));
            }
        }
        if node.name.is_empty() {
            ctx.err(n.pos, "missing required field `name` in node fixture");
        }
        for (key, v) in [("cpu", &node.cpu), ("memory", &node.memory)] {
            if let Some(v) = v
                && crate::quantity::parse(v).is_none()
            {
                let pos = n.get(key).map(|x| x.pos).unwrap_or(n.pos);
                ctx.err(pos, format!("node `{key}` `{v}` is not a valid Kubernetes quantity"));
            }
        }
        for t in list(ctx, n, "taints") {
            if !ctx.strict_map(t, t.pos, &["key", "value", "effect"], "taint") {
                continue;
            }
            let taint = TaintFixture {
                key: scalar(ctx, t, "key").unwrap_or_default(),
                value: scalar(ctx, t, "value"),
                effect: scalar(ctx, t, "effect").unwrap_or_else(|| "NoSchedule".into()),
            };
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
                let pos = t.get("effect").map(|x| x.pos).unwrap_or(t.pos);
                ctx.err(
                    pos,
                    format!(
                        "taint effect must be NoSchedule, PreferNoSchedule or NoExecute, found `{}`",
                        taint.effect
                    ),
                );
            }
            node.taints.push(taint);
        }
        fx.nodes.push(node);
    }
    for (key, target) in [("configMaps", &mut fx.config_maps), ("secrets", &mut fx.secrets)] {
        for n in list(ctx, f, key) {
            if !ctx.strict_map(n, n.pos, &["name", "namespace", "data"], key) {
                continue;
            }
            let o = DataObject {
                name: scalar(ctx, n, "name").unwrap_or_default(),
                namespace: scalar(ctx, n, "namespace"),
                data: plain_map(ctx, n, "data"),
            };
            if o.name.is_empty() {
                ctx.err(n.pos, format!("missing required field `name` in {key} fixture"));
            }
            target.push(o);
        }
    }
    for (key, target) in [
        ("serviceAccounts", &mut fx.service_accounts),
        ("persistentVolumeClaims", &mut fx.persistent_volume_claims),
    ] {
        for n in list(ctx, f, key) {
            if let Some(name) = n.scalar_text() {
                target.push(NamedObject { name, namespace: None });
                continue;
            }
            if !ctx.strict_map(n, n.pos, &["name", "namespace"], key) {
                continue;
            }
            target.push(NamedObject {
                name: scalar(ctx, n, "name").unwrap_or_default(),
                namespace: scalar(ctx, n, "namespace"),
            });
        }
    }
    for n in list(ctx, f, "priorityClasses") {
        if !ctx.strict_map(n, n.pos, &["name", "value"], "priorityClasses") {
            continue;
        }
        let value = match n.get("value").map(|v| &v.value) {
            Some(Value::Int(i)) => match i32::try_from(*i) {
                Ok(v) => v,
                Err(_) => {
                    ctx.err(n.pos, "priority class `value` is out of range");
                    0
                }
            },
            None => 0,
            Some(_) => {
                ctx.err(n.pos, "priority class `value` must be an integer");
                0
            }
        };
        fx.priority_classes.push(PriorityClassFixture {
            name: scalar(ctx, n, "name").unwrap_or_default(),
            value,
        });
    }
    const CONNECTOR_FIELDS: &[&str] = &[
        "identifier",
        "type",
        "url",
        "auth",
        "username",
        "passwordRef",
        "accessKey",
        "secretKeyRef",
        "crossAccountRoleArn",
        "externalId",
        "region",
    ];
    fx.harness_secrets = plain_map(ctx, f, "harnessSecrets");
    fx.env_variables = plain_map(ctx, f, "envVariables");
    fx.expressions = plain_map(ctx, f, "expressions");
    for n in list(ctx, f, "connectors") {
        if !ctx.strict_map(n, n.pos, CONNECTOR_FIELDS, "connector") {
            continue;
        }
        let c = Connector {
            identifier: scalar(ctx, n, "identifier").unwrap_or_default(),
            connector_type: scalar(ctx, n, "type").unwrap_or_else(|| "DockerRegistry".into()),
            url: scalar(ctx, n, "url"),
            auth: scalar(ctx, n, "auth").unwrap_or_else(|| "anonymous".into()),
            username: scalar(ctx, n, "username"),
            password_ref: scalar(ctx, n, "passwordRef"),
            access_key: scalar(ctx, n, "accessKey"),
            secret_key_ref: scalar(ctx, n, "secretKeyRef"),
            cross_account_role_arn: scalar(ctx, n, "crossAccountRoleArn"),
            external_id: scalar(ctx, n, "externalId"),
            region: scalar(ctx, n, "region"),
        };
        if c.identifier.is_empty() {
            ctx.err(n.pos, "missing required field `identifier` in connector");
        }
        const TYPES: &[&str] = &[
            "DockerRegistry",
            "KubernetesCluster",
            "Aws",
            "Git",
            "Github",
            "Gitlab",
            "Bitbucket",
            "Gcp",
            "Azure",
        ];
        if !TYPES.contains(&c.connector_type.as_str()) {
            let pos = n.get("type").map(|x| x.pos).unwrap_or(n.pos);
            let hint = suggest(&c.connector_type, TYPES.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            ctx.err(
                pos,
                format!(
                    "unknown connector type `{}`: expected one of {}{hint}",
                    c.connector_type,
                    TYPES.join(", ")
                ),
            );
        }
        if c.auth != "anonymous" && c.auth != "usernamePassword" {
            let pos = n.get("auth").map(|x| x.pos).unwrap_or(n.pos);
            ctx.err(
                pos,
                format!(
                    "connector `auth` must be `anonymous` or `usernamePassword`, found `{}`",
                    c.auth
                ),
            );
        }
        if c.auth == "usernamePassword" && (c.username.is_none() || c.password_ref.is_none()) {
            let pos = n.get("auth").map(|x| x.pos).unwrap_or(n.pos);
            ctx.err(
                pos,
                "connector `auth: usernamePassword` needs `username` and `passwordRef`",
            );
        }
        for key in ["passwordRef", "secretKeyRef"] {
            if let Some(v) = n.get(key)
                && let Some(r) = v.scalar_text()
                && !fx.harness_secrets.contains_key(&r)
            {
                let hint = suggest(&r, fx.harness_secrets.keys().map(String::as_str))
                    .map(|x| format!(", did you mean `{x}`?"))
                    .unwrap_or_default();
                ctx.err(
                    v.pos,
                    format!("connector `{key}` names `{r}`, which is not in fixtures.harnessSecrets{hint}"),
                );
            }
        }
        fx.connectors.push(c);
    }
    for n in list(ctx, f, "registries") {
        const FIELDS: &[&str] = &[
            "url",
            "username",
            "passwordRef",
            "delay",
            "tooManyRequests",
            "missingImages",
        ];
        if !ctx.strict_map(n, n.pos, FIELDS, "registry fixture") {
            continue;
        }
        let r = RegistryFixture {
            url: scalar(ctx, n, "url").unwrap_or_default(),
            username: scalar(ctx, n, "username"),
            password_ref: scalar(ctx, n, "passwordRef"),
            delay: scalar(ctx, n, "delay"),
            too_many_requests: scalar(ctx, n, "tooManyRequests")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            missing_images: list(ctx, n, "missingImages")
                .iter()
                .filter_map(|i| i.scalar_text())
                .collect(),
        };
        if r.url.is_empty() {
            ctx.err(n.pos, "missing required field `url` in registry fixture");
        }
        if r.username.is_some() != r.password_ref.is_some() {
            ctx.err(
                n.pos,
                "registry fixture needs both `username` and `passwordRef`, or neither",
            );
        }
        if let Some(p) = &r.password_ref
            && !fx.harness_secrets.contains_key(p)
        {
            ctx.err(
                n.pos,
                format!("registry `passwordRef` names `{p}`, which is not in fixtures.harnessSecrets"),
            );
        }
        if let Some(d) = &r.delay
            && crate::duration::parse_millis(d).is_none()
        {
            ctx.err(
                n.pos,
                format!("registry `delay` `{d}` is not a duration (e.g. 2s, 500ms)"),
            );
        }
        fx.registries.push(r);
    }
    if let Some(v) = f.get("inputs") {
        match v.as_map() {
            Some(entries) => {
                for (k, val) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    if !key.starts_with("pipeline.") {
                        ctx.err(
                            k.pos,
                            format!("input key `{key}` must be a field path starting with `pipeline.`"),
                        );
                    }
                    fx.inputs.insert(key, val.to_json());
                }
            }
            None if v.is_null() => {}
            None => ctx.err(v.pos, format!("`inputs` must be a mapping, found {}", v.kind_name())),
        }
    }
    for n in list(ctx, f, "featureFlags") {
        match n.scalar_text() {
            Some(s) => {
                if !KNOWN_FEATURE_FLAGS.contains(&s.as_str()) {
                    match suggest(&s, KNOWN_FEATURE_FLAGS.iter().copied()) {
                        Some(k) => ctx.err(n.pos, format!("unknown feature flag `{s}`, did you mean `{k}`?")),
                        None => ctx.warn(n.pos, format!("feature flag `{s}` has no effect in sgsim")),
                    }
                }
                fx.feature_flags.push(s);
            }
            None => ctx.err(n.pos, "a feature flag must be a name"),
        }
    }
    fx.images = plain_map(ctx, f, "images");
}

fn status(ctx: &mut Ctx<'_>, v: &Node) -> Option<ExpectedStatus> {
    let s = v.scalar_text()?;
    match s.as_str() {
        "Success" => Some(ExpectedStatus::Success),
        "Failed" => Some(ExpectedStatus::Failed),
        "Skipped" => Some(ExpectedStatus::Skipped),
        _ => {
            let hint = suggest(&s, ["Success", "Failed", "Skipped"])
                .map(|x| format!(", did you mean `{x}`?"))
                .unwrap_or_default();
            ctx.err(
                v.pos,
                format!("status must be Success, Failed or Skipped, found `{s}`{hint}"),
            );
            None
        }
    }
}

fn read_expect(ctx: &mut Ctx<'_>, e: &Node, at: Pos, ex: &mut Expect) {
    if e.is_null() || !ctx.strict_map(e, at, &["status", "steps", "error"], "expect") {
        return;
    }
    if let Some(v) = e.get("status")
        && let Some(s) = status(ctx, v)
    {
        ex.status = s;
    }
    ex.error = scalar(ctx, e, "error");
    if ex.error.is_some() && e.get("status").is_none() {
        ex.status = ExpectedStatus::Failed;
    }
    if let Some(steps) = e.get("steps") {
        match steps.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let id = k.scalar_text().unwrap_or_default();
                    let mut se = StepExpect::default();
                    if ctx.strict_map(v, k.pos, &["status", "exitCode"], "expect.steps entry") {
                        if let Some(s) = v.get("status") {
                            se.status = status(ctx, s);
                        }
                        if let Some(c) = v.get("exitCode") {
                            match &c.value {
                                Value::Int(i) if (0..=255).contains(i) => se.exit_code = Some(*i as i32),
                                _ => ctx.err(c.pos, "`exitCode` must be an integer between 0 and 255"),
                            }
                        }
                    }
                    ex.steps.insert(id, se);
                }
            }
            None if steps.is_null() => {}
            None => ctx.err(
                steps.pos,
                format!("`expect.steps` must be a mapping, found {}", steps.kind_name()),
            ),
        }
    }
}

fn duration_millis(ctx: &mut Ctx<'_>, map: &Node, key: &str) -> u64 {
    let Some(text) = scalar(ctx, map, key) else { return 0 };
    match crate::duration::parse_millis(&text) {
        Some(ms) => ms,
        None => {
            let pos = map.get(key).map(|n| n.pos).unwrap_or_default();
            ctx.err(pos, format!("`{key}` `{text}` is not a duration (e.g. 2s, 500ms)"));
            0
        }
    }
}

fn int_in(ctx: &mut Ctx<'_>, v: &Node, what: &str, range: std::ops::RangeInclusive<i128>) -> Option<i128> {
    match &v.value {
        Value::Int(i) if range.contains(i) => Some(*i),
        _ => {
            ctx.err(
                v.pos,
                format!(
                    "`{what}` must be an integer between {} and {}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

fn read_fake_attempt(ctx: &mut Ctx<'_>, v: &Node, at: Pos) -> FakeAttempt {
    const FIELDS: &[&str] = &["exitCode", "duration", "log", "outputs", "oomKilled"];
    let mut a = FakeAttempt::default();
    if v.is_null() || !ctx.strict_map(v, at, FIELDS, "fake step") {
        return a;
    }
    if let Some(c) = v.get("exitCode") {
        a.exit_code = int_in(ctx, c, "exitCode", 0..=255).unwrap_or(0) as i32;
    }
    a.duration_millis = duration_millis(ctx, v, "duration");
    a.log = scalar(ctx, v, "log").unwrap_or_default();
    a.outputs = plain_map(ctx, v, "outputs");
    if let Some(o) = v.get("oomKilled") {
        match &o.value {
            Value::Bool(b) => a.oom_killed = *b,
            _ => ctx.err(
                o.pos,
                format!("`oomKilled` must be true or false, found {}", o.kind_name()),
            ),
        }
    }
    a
}

fn read_fake(ctx: &mut Ctx<'_>, f: &Node, at: Pos, fake: &mut FakeSpec) {
    const FIELDS: &[&str] = &["skip", "pull", "imageUsers", "exitCodes", "steps"];
    if f.is_null() || !ctx.strict_map(f, at, FIELDS, "fake") {
        return;
    }
    fake.skip = scalar(ctx, f, "skip");
    fake.pull_millis = duration_millis(ctx, f, "pull");
    for (key, out) in [("imageUsers", 0), ("exitCodes", 1)] {
        let Some(m) = f.get(key) else { continue };
        match m.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let name = k.scalar_text().unwrap_or_default();
                    if out == 0 {
                        if let Some(uid) = int_in(ctx, v, &format!("{key}.{name}"), 0..=i64::MAX as i128) {
                            fake.image_users.insert(name, uid as i64);
                        }
                    } else if let Some(code) = int_in(ctx, v, &format!("{key}.{name}"), 0..=255) {
                        fake.exit_codes.insert(name, code as i32);
                    }
                }
            }
            None if m.is_null() => {}
            None => ctx.err(
                m.pos,
                format!("`fake.{key}` must be a mapping, found {}", m.kind_name()),
            ),
        }
    }
    if let Some(steps) = f.get("steps") {
        match steps.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let id = k.scalar_text().unwrap_or_default();
                    let step = match v.get("attempts") {
                        Some(list) => {
                            if v.as_map().is_some_and(|m| m.len() > 1) {
                                ctx.err(
                                    k.pos,
                                    "a fake step has either `attempts` or one attempt's fields, not both",
                                );
                            }
                            match list.as_seq() {
                                Some(items) if !items.is_empty() => FakeStep {
                                    attempts: items.iter().map(|i| read_fake_attempt(ctx, i, i.pos)).collect(),
                                },
                                _ => {
                                    ctx.err(list.pos, "`attempts` must be a non-empty list");
                                    FakeStep::default()
                                }
                            }
                        }
                        None => FakeStep {
                            attempts: vec![read_fake_attempt(ctx, v, k.pos)],
                        },
                    };
                    fake.steps.insert(id, step);
                }
            }
            None if steps.is_null() => {}
            None => ctx.err(
                steps.pos,
                format!("`fake.steps` must be a mapping, found {}", steps.kind_name()),
            ),
        }
    }
}

/// The Kubernetes objects a scenario's fixtures describe, ready to create in the API server.
#[derive(Clone, Debug, Default)]
pub struct FixtureObjects {
    /// Namespaces.
    pub namespaces: Vec<k8s_openapi::api::core::v1::Namespace>,
    /// Nodes (labels, taints, capacity/allocatable; Ready condition).
    pub nodes: Vec<k8s_openapi::api::core::v1::Node>,
    /// ConfigMaps.
    pub config_maps: Vec<k8s_openapi::api::core::v1::ConfigMap>,
    /// Secrets (Opaque, `stringData` turned into `data`).
    pub secrets: Vec<k8s_openapi::api::core::v1::Secret>,
    /// ServiceAccounts.
    pub service_accounts: Vec<k8s_openapi::api::core::v1::ServiceAccount>,
    /// PersistentVolumeClaims (1Gi, ReadWriteOnce).
    pub persistent_volume_claims: Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    /// PriorityClasses.
    pub priority_classes: Vec<k8s_openapi::api::scheduling::v1::PriorityClass>,
}

impl Fixtures {
    /// Build the fixtures' Kubernetes objects; namespaced objects without a namespace go to
    /// `default_namespace` (the step group's).
    pub fn k8s_objects(&self, default_namespace: &str) -> FixtureObjects {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1;
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta = |name: &str, ns: Option<&str>| ObjectMeta {
            name: Some(name.to_string()),
            namespace: ns.map(str::to_string),
            ..Default::default()
        };
        let ns_of = |o: &Option<String>| o.clone().unwrap_or_else(|| default_namespace.to_string());
        let mut out = FixtureObjects::default();
        for n in &self.namespaces {
            out.namespaces.push(v1::Namespace {
                metadata: meta(n, None),
                ..Default::default()
            });
        }
        for n in &self.nodes {
            let cpu = n.cpu.clone().unwrap_or_else(|| "8".into());
            let mem = n.memory.clone().unwrap_or_else(|| "16Gi".into());
            let mut labels = BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), n.name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ]);
            labels.extend(n.labels.clone());
            let res = BTreeMap::from([
                ("cpu".to_string(), Quantity(cpu)),
                ("memory".to_string(), Quantity(mem)),
                ("pods".to_string(), Quantity("110".into())),
            ]);
            out.nodes.push(v1::Node {
                metadata: ObjectMeta {
                    labels: Some(labels),
                    ..meta(&n.name, None)
                },
                spec: Some(v1::NodeSpec {
                    taints: (!n.taints.is_empty()).then(|| {
                        n.taints
                            .iter()
                            .map(|t| v1::Taint {
                                key: t.key.clone(),
                                value: t.value.clone(),
                                effect: t.effect.clone(),
                                ..Default::default()
                            })
                            .collect()
                    }),
                    ..Default::default()
                }),
                status: Some(v1::NodeStatus {
                    capacity: Some(res.clone()),
                    allocatable: Some(res),
                    conditions: Some(vec![v1::NodeCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            });
        }
        for c in &self.config_maps {
            out.config_maps.push(v1::ConfigMap {
                metadata: meta(&c.name, Some(&ns_of(&c.namespace))),
                data: Some(c.data.clone()),
                ..Default::default()
            });
        }
        for s in &self.secrets {
            out.secrets.push(v1::Secret {
                metadata: meta(&s.name, Some(&ns_of(&s.namespace))),
                type_: Some("Opaque".into()),
                data: Some(
                    s.data
                        .iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                        .collect(),
                ),
                ..Default::default()
            });
        }
        for s in &self.service_accounts {
            out.service_accounts.push(v1::ServiceAccount {
                metadata: meta(&s.name, Some(&ns_of(&s.namespace))),
                ..Default::default()
            });
        }
        for p in &self.persistent_volume_claims {
            out.persistent_volume_claims.push(v1::PersistentVolumeClaim {
                metadata: meta(&p.name, Some(&ns_of(&p.namespace))),
                spec: Some(v1::PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(v1::VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_string(), Quantity("1Gi".into()))])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for p in &self.priority_classes {
            out.priority_classes
                .push(k8s_openapi::api::scheduling::v1::PriorityClass {
                    metadata: meta(&p.name, None),
                    value: Some(p.value),
                    ..Default::default()
                });
        }
        out
    }
}

fn yaml_message(e: &crate::yaml::YamlError) -> String {
    match e.kind {
        crate::yaml::YamlErrorKind::Syntax => format!("YAML syntax error: {}", e.message),
        crate::yaml::YamlErrorKind::Limit => format!("YAML document rejected: {}", e.message),
        crate::yaml::YamlErrorKind::Internal => e.message.clone(),
    }
}
