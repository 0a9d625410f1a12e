//! Reading a Harness pipeline YAML into the [`crate::model`] types, with validation.
//!
//! Strict (unknown fields are errors, with a suggestion): `stepGroupInfra`, its `spec`, volumes,
//! tolerations, containerSecurityContext, and the specs of Run, Background and Plugin steps.
//! Tolerant (unknown fields ignored): everything else (pipeline, stage, step-level keys like
//! `when`, `failureStrategies`, `timeout`, `variables`, `strategy`, ...).

use std::collections::BTreeMap;

use crate::model::*;
use crate::walk::{Ctx, other_expressions};
use crate::yaml::{Node, Pos, Value};

/// The feature flag gating ConfigMap and Secret volumes (from the product documentation).
pub const FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME: &str = "CDS_CONFIG_MAPS_AND_SECRETS_AS_VOLUME";

/// Stage types that may hold a containerized step group (`Deployment` is the Deploy stage).
pub const SUPPORTED_STAGE_TYPES: &[&str] = &["Deployment", "Custom"];

/// Fields of `stepGroupInfra.spec` (type KubernetesDirect), from harness-schema v0.
pub const INFRA_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "namespace",
    "serviceAccountName",
    "automountServiceAccountToken",
    "os",
    "harnessImageConnectorRef",
    "podSpecOverlay",
    "volumes",
    "labels",
    "annotations",
    "initTimeout",
    "imagePullPolicy",
    "runAsUser",
    "nodeSelector",
    "tolerations",
    "priorityClassName",
    "containerSecurityContext",
    "hostNames",
];

const RUN_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "image",
    "shell",
    "command",
    "envVariables",
    "outputVariables",
    "privileged",
    "reports",
    "resources",
    "imagePullPolicy",
    "runAsUser",
    "delegateSelectors",
];

const BACKGROUND_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "image",
    "shell",
    "command",
    "entrypoint",
    "envVariables",
    "portBindings",
    "privileged",
    "reports",
    "resources",
    "imagePullPolicy",
    "runAsUser",
    "delegateSelectors",
];

const PLUGIN_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "image",
    "settings",
    "envVariables",
    "entrypoint",
    "privileged",
    "reports",
    "resources",
    "imagePullPolicy",
    "runAsUser",
    "uses",
    "delegateSelectors",
];

/// Step types supported inside a containerized step group, with the kind of container they get
/// and, for product-managed steps, the image used when the step does not name one.
pub const SUPPORTED_STEP_TYPES: &[(&str, StepKind, Option<&str>)] = &[
    ("Run", StepKind::Run, None),
    ("Background", StepKind::Background, None),
    ("Plugin", StepKind::Plugin, None),
    ("GitClone", StepKind::Plugin, Some("harness/drone-git:1.3.4-rootless")),
    (
        "DownloadManifests",
        StepKind::Plugin,
        Some("harness/drone-git:1.3.4-rootless"),
    ),
    ("S3Upload", StepKind::Plugin, Some("plugins/s3:1.2.2")),
    (
        "AwsSamBuild",
        StepKind::Plugin,
        Some("harnessdev/sam-build:1.82.0-latest"),
    ),
    (
        "AwsSamDeploy",
        StepKind::Plugin,
        Some("harnessdev/sam-deploy:1.82.0-latest"),
    ),
    (
        "AwsSamRollback",
        StepKind::Plugin,
        Some("harnessdev/sam-deploy:1.82.0-latest"),
    ),
    (
        "ServerlessAwsLambdaPrepareRollbackV2",
        StepKind::Plugin,
        Some("harnessdev/serverless-preparerollback:3.30.1-1.0.0"),
    ),
    (
        "ServerlessAwsLambdaPackageV2",
        StepKind::Plugin,
        Some("harnessdev/serverless-package:3.30.1-1.0.0"),
    ),
    (
        "ServerlessAwsLambdaDeployV2",
        StepKind::Plugin,
        Some("harnessdev/serverless-deploy:3.30.1-1.0.0"),
    ),
    (
        "ServerlessAwsLambdaRollbackV2",
        StepKind::Plugin,
        Some("harnessdev/serverless-rollback:3.30.1-1.0.0"),
    ),
    (
        "AwsCdkBootstrap",
        StepKind::Plugin,
        Some("harness/aws-cdk-plugin:1.0.0"),
    ),
    ("AwsCdkSynth", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    ("AwsCdkDiff", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    ("AwsCdkDeploy", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    ("AwsCdkDestroy", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    ("AwsCdkRollback", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    // Google Cloud Run (the product's generated step group names the image in each step).
    (
        "GoogleCloudRunPrepareRollbackData",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    (
        "GoogleCloudRunDeploy",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    (
        "GoogleCloudRunTrafficShift",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    (
        "GoogleCloudRunRollback",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    (
        "GoogleCloudRunJob",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    // Other steps documented as running in a containerized step group: GitHub Actions, Slack
    // notifications, Database DevOps, supply-chain (SBOM/SLSA) and STO scanner steps. Their
    // default images are sgsim's best knowledge of the product's plugin images.
    ("Action", StepKind::Plugin, Some("plugins/github-actions:1.0.0")),
    ("SlackNotify", StepKind::Plugin, Some("plugins/slack:1.4.1")),
    (
        "DBSchemaApply",
        StepKind::Plugin,
        Some("harness/drone-liquibase:latest"),
    ),
    (
        "DBSchemaRollback",
        StepKind::Plugin,
        Some("harness/drone-liquibase:latest"),
    ),
    (
        "LiquibaseCommand",
        StepKind::Plugin,
        Some("harness/drone-liquibase:latest"),
    ),
    ("FlywayCommand", StepKind::Plugin, Some("harness/drone-flyway:latest")),
    ("provenance", StepKind::Plugin, Some("harness/slsa-plugin:latest")),
    ("SlsaVerification", StepKind::Plugin, Some("harness/slsa-plugin:latest")),
    (
        "SscaOrchestration",
        StepKind::Plugin,
        Some("harness/ssca-plugin:latest"),
    ),
    ("SscaEnforcement", StepKind::Plugin, Some("harness/ssca-plugin:latest")),
    (
        "CdSscaOrchestration",
        StepKind::Plugin,
        Some("harness/ssca-plugin:latest"),
    ),
    (
        "CdSscaEnforcement",
        StepKind::Plugin,
        Some("harness/ssca-plugin:latest"),
    ),
    ("CustomIngest", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    ("Wiz", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    ("AquaTrivy", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    ("Snyk", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    ("Grype", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    ("HarnessApproval", StepKind::NoContainer, None),
    ("JiraApproval", StepKind::NoContainer, None),
    ("ServiceNowApproval", StepKind::NoContainer, None),
    ("CustomApproval", StepKind::NoContainer, None),
];

/// A containerized step group found in the pipeline (before it is read in full).
#[derive(Clone, Debug)]
pub(crate) struct Found<'n> {
    pub stage_identifier: String,
    pub group_identifier: String,
    pub section: Section,
    pub fqn: String,
    pub node: &'n Node,
    pub key_pos: Pos,
}

/// `variables` of a pipeline or stage (`- {name, type, value}`): name → value, with `<+input>`
/// and secrets resolved (field path `<fqn>.variables.<name>`).
fn read_variables(ctx: &mut Ctx<'_>, node: &Node, fqn: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in node.get("variables").and_then(Node::as_seq).unwrap_or_default() {
        let name = v.get("name").and_then(Node::scalar_text).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let value = match v.get("value") {
            Some(n) => ctx
                .resolve(n, &format!("{fqn}.variables.{name}"))
                .scalar_text()
                .unwrap_or_default(),
            None => String::new(),
        };
        out.push((name, value));
    }
    out
}

/// Read pipeline-level data and find every containerized step group. Stage-type errors are
/// reported here.
pub(crate) fn discover<'n>(ctx: &mut Ctx<'_>, root: &'n Node) -> Option<(Pipeline, Vec<Found<'n>>)> {
    let Some(p) = root.get("pipeline") else {
        let pos = root.pos;
        if root.as_map().is_none() {
            ctx.err(
                pos,
                format!(
                    "expected a pipeline (a mapping with a top-level `pipeline:` key), found {}",
                    root.kind_name()
                ),
            );
        } else {
            ctx.err(pos, "expected a top-level `pipeline:` key");
        }
        return None;
    };
    if p.as_map().is_none() {
        ctx.err(p.pos, format!("`pipeline` must be a mapping, found {}", p.kind_name()));
        return None;
    }
    let text = |n: &Node, k: &str| n.get(k).and_then(Node::scalar_text).unwrap_or_default();
    let mut pipeline = Pipeline {
        identifier: text(p, "identifier"),
        name: text(p, "name"),
        org_identifier: text(p, "orgIdentifier"),
        project_identifier: text(p, "projectIdentifier"),
        stages: Vec::new(),
        variables: Vec::new(),
    };
    pipeline.variables = read_variables(ctx, p, "pipeline");
    if pipeline.org_identifier.is_empty() {
        pipeline.org_identifier = "default".into();
    }
    if pipeline.project_identifier.is_empty() {
        pipeline.project_identifier = "default_project".into();
    }
    if pipeline.identifier.is_empty() {
        let pos = p.entry("identifier").map(|(k, _)| k.pos).unwrap_or(root.pos);
        ctx.err(pos, "missing required field `identifier` in pipeline");
    }
    let mut found = Vec::new();
    let Some(stages) = p.get("stages") else {
        ctx.err(root.pos, "pipeline has no `stages`");
        return Some((pipeline, found));
    };
    let Some(items) = stages.as_seq() else {
        ctx.err(
            stages.pos,
            format!("`stages` must be a list, found {}", stages.kind_name()),
        );
        return Some((pipeline, found));
    };
    let mut stage_nodes: Vec<&Node> = Vec::new();
    for it in items {
        if let Some(s) = it.get("stage") {
            stage_nodes.push(s);
        } else if let Some(par) = it.get("parallel").and_then(Node::as_seq) {
            for pi in par {
                if let Some(s) = pi.get("stage") {
                    stage_nodes.push(s);
                }
            }
        }
    }
    for s in stage_nodes {
        let id = text(s, "identifier");
        let (type_pos, stage_type) = match s.entry("type") {
            Some((_, v)) => (v.pos, v.scalar_text().unwrap_or_default()),
            None => (s.pos, String::new()),
        };
        let mut info = StageInfo {
            identifier: id.clone(),
            name: text(s, "name"),
            stage_type,
            step_groups: Vec::new(),
            failure_strategies: s.get("failureStrategies").map(Node::to_json),
            variables: read_variables(ctx, s, &format!("pipeline.stages.{id}")),
            pos: type_pos,
        };
        let fqn = format!("pipeline.stages.{id}");
        let exec = s.get("spec").and_then(|sp| sp.get("execution"));
        let before = found.len();
        if let Some(exec) = exec {
            for (key, section) in [("steps", Section::Steps), ("rollbackSteps", Section::RollbackSteps)] {
                if let Some(list) = exec.get(key) {
                    find_groups(list, &id, section, &format!("{fqn}.spec.execution.{key}"), &mut found);
                }
            }
        }
        info.step_groups = found[before..].iter().map(|f| f.group_identifier.clone()).collect();
        if found.len() > before && !SUPPORTED_STAGE_TYPES.contains(&info.stage_type.as_str()) {
            let shown = if info.stage_type.is_empty() {
                "(none)".to_string()
            } else {
                info.stage_type.clone()
            };
            ctx.err_help(
                type_pos,
                format!(
                    "stage `{id}` of type `{shown}` holds a containerized step group (`{}`); containerized step groups are supported in Deploy (`Deployment`) and `Custom` stages only",
                    info.step_groups.join("`, `")
                ),
                "move the step group to a Deploy or Custom stage",
            );
        }
        pipeline.stages.push(info);
    }
    Some((pipeline, found))
}

fn find_groups<'n>(list: &'n Node, stage: &str, section: Section, fqn: &str, out: &mut Vec<Found<'n>>) {
    let Some(items) = list.as_seq() else { return };
    for it in items {
        if let Some(par) = it.get("parallel") {
            find_groups(par, stage, section, fqn, out);
        } else if let Some((k, g)) = it.entry("stepGroup") {
            let id = g.get("identifier").and_then(Node::scalar_text).unwrap_or_default();
            let gfqn = format!("{fqn}.{id}");
            let infra_type = g
                .get("stepGroupInfra")
                .and_then(|i| i.get("type"))
                .and_then(Node::scalar_text);
            if infra_type.as_deref() == Some("KubernetesDirect") {
                out.push(Found {
                    stage_identifier: stage.to_string(),
                    group_identifier: id,
                    section,
                    fqn: gfqn,
                    node: g,
                    key_pos: k.pos,
                });
            } else if let Some(steps) = g.get("steps") {
                find_groups(steps, stage, section, &format!("{gfqn}.steps"), out);
            }
        }
    }
}

/// Read a containerized step group in full.
pub(crate) fn read_group(ctx: &mut Ctx<'_>, f: &Found<'_>, feature_flags: &[String]) -> StepGroup {
    let g = f.node;
    let fqn = f.fqn.clone();
    let mut group = StepGroup {
        identifier: f.group_identifier.clone(),
        name: g.get("name").and_then(Node::scalar_text).unwrap_or_default(),
        stage_identifier: f.stage_identifier.clone(),
        section: f.section,
        fqn: fqn.clone(),
        failure_strategies: g.get("failureStrategies").map(Node::to_json),
        when: g.get("when").map(Node::to_json),
        ..Default::default()
    };
    if group.identifier.is_empty() {
        ctx.err(f.key_pos, "missing required field `identifier` in stepGroup");
    }
    // stepGroupInfra
    if let Some((ik, infra)) = g.entry("stepGroupInfra")
        && ctx.strict_map(infra, ik.pos, &["type", "spec"], "stepGroupInfra")
    {
        match infra.entry("spec") {
            None => ctx.err(ik.pos, "missing required field `spec` in stepGroupInfra"),
            Some((sk, spec)) => {
                group.infra = read_infra(ctx, spec, sk.pos, &format!("{fqn}.stepGroupInfra.spec"), feature_flags);
            }
        }
    }
    // sharedPaths
    let sp_fqn = format!("{fqn}.sharedPaths");
    if let Some((sk, sp)) = g.entry("sharedPaths") {
        let n = ctx.resolve(sp, &sp_fqn);
        let items: Vec<Node> = match &n.value {
            Value::Seq(items) => items.clone(),
            Value::Null => Vec::new(),
            Value::Map(_) => {
                ctx.err(n.pos, "`sharedPaths` must be a list of paths, found a mapping");
                Vec::new()
            }
            _ => vec![n.clone()],
        };
        let _ = sk;
        for (i, it) in items.iter().enumerate() {
            let Some(p) = ctx.scalar(it, &format!("{sp_fqn}.{i}"), "`sharedPaths` item") else {
                continue;
            };
            let norm = normalize_path(&p);
            if norm == "/harness" || norm == "/addon" {
                ctx.err_help(
                    it.pos,
                    format!(
                        "shared path `{p}` is reserved: /harness and /addon are mounted by Harness in every container"
                    ),
                    "use another path; /harness is already shared between all steps",
                );
                continue;
            }
            if !p.starts_with('/') {
                ctx.err(it.pos, format!("shared path `{p}` must be an absolute path"));
                continue;
            }
            group.shared_paths.push(p);
            group.shared_path_pos.push(it.pos);
        }
    }
    check_mount_paths(ctx, &group);
    // steps
    match g.entry("steps") {
        None => ctx.err(f.key_pos, format!("step group `{}` has no `steps`", group.identifier)),
        Some((_, steps)) => {
            group.steps = read_steps(ctx, steps, &format!("{fqn}.steps"), 0);
        }
    }
    check_identifiers(ctx, &group);
    group
}

fn normalize_path(p: &str) -> String {
    let t = p.trim();
    let t = t.trim_end_matches('/');
    if t.is_empty() { "/".into() } else { t.to_string() }
}

/// "only one volume per mount path": sharedPaths, user volumes, /harness and /addon.
fn check_mount_paths(ctx: &mut Ctx<'_>, group: &StepGroup) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    seen.insert("/harness".into(), "the Harness workspace volume".into());
    seen.insert("/addon".into(), "the Harness addon volume".into());
    for (i, p) in group.shared_paths.iter().enumerate() {
        let pos = group.shared_path_pos.get(i).copied().unwrap_or_default();
        let norm = normalize_path(p);
        if let Some(prev) = seen.get(&norm) {
            ctx.err(
                pos,
                format!("only one volume per mount path: `{p}` is already used by {prev}"),
            );
        } else {
            seen.insert(norm, format!("shared path #{i}"));
        }
    }
    for (i, v) in group.infra.volumes.iter().enumerate() {
        let pos = v.pos;
        let norm = normalize_path(&v.mount_path);
        if let Some(prev) = seen.get(&norm) {
            ctx.err(
                pos,
                format!(
                    "only one volume per mount path: `{}` is already used by {prev}",
                    v.mount_path
                ),
            );
        } else {
            seen.insert(norm, format!("volume #{i}"));
        }
    }
}

fn read_infra(ctx: &mut Ctx<'_>, spec: &Node, at: Pos, fqn: &str, ffs: &[String]) -> K8sInfra {
    let mut infra = K8sInfra::default();
    if !ctx.strict_map(spec, at, INFRA_SPEC_FIELDS, "stepGroupInfra.spec") {
        return infra;
    }
    infra.connector_ref = ctx
        .req_str(spec, at, "connectorRef", fqn, "stepGroupInfra.spec")
        .unwrap_or_default();
    infra.namespace = ctx
        .req_str(spec, at, "namespace", fqn, "stepGroupInfra.spec")
        .unwrap_or_default();
    for key in [
        "connectorRef",
        "namespace",
        "serviceAccountName",
        "priorityClassName",
        "harnessImageConnectorRef",
    ] {
        if let Some(v) = spec.get(key)
            && let Some(s) = v.as_str()
        {
            for e in other_expressions(s) {
                ctx.warn(
                    v.pos,
                    format!("expression `{e}` in `{key}` is not supported by sgsim; kept verbatim"),
                );
            }
        }
    }
    infra.service_account_name = ctx.str_field(spec, "serviceAccountName", fqn);
    infra.automount_service_account_token = ctx.bool_field(spec, "automountServiceAccountToken", fqn);
    infra.os = ctx.str_field(spec, "os", fqn);
    if let Some(os) = &infra.os
        && !["Linux", "Windows", "MacOS"].contains(&os.as_str())
    {
        let pos = spec.get("os").map(|n| n.pos).unwrap_or(at);
        ctx.err(pos, format!("`os` must be one of Linux, Windows, MacOS, found `{os}`"));
    } else if let Some(os) = &infra.os
        && os != "Linux"
    {
        let pos = spec.get("os").map(|n| n.pos).unwrap_or(at);
        ctx.warn(
            pos,
            format!("`os: {os}` is not simulated: sgsim runs the pod on Linux nodes"),
        );
    }
    infra.harness_image_connector_ref = ctx.str_field(spec, "harnessImageConnectorRef", fqn);
    if let Some(ov) = spec.get("podSpecOverlay") {
        read_overlay(ctx, ov, &format!("{fqn}.podSpecOverlay"), &mut infra);
    }
    infra.labels = ctx.str_map(spec, "labels", fqn).into_iter().collect();
    infra.annotations = ctx.str_map(spec, "annotations", fqn).into_iter().collect();
    check_k8s_map(ctx, spec, "labels", &infra.labels, true);
    check_k8s_map(ctx, spec, "annotations", &infra.annotations, false);
    infra.init_timeout = ctx.str_field(spec, "initTimeout", fqn);
    if let Some(t) = &infra.init_timeout
        && crate::duration::parse_millis(t).is_none()
    {
        let pos = spec.get("initTimeout").map(|n| n.pos).unwrap_or(at);
        ctx.err(
            pos,
            format!("`initTimeout` must be a duration like `10m` or `480s`, found `{t}`"),
        );
    }
    infra.image_pull_policy = pull_policy(ctx, spec, fqn);
    infra.run_as_user = ctx.int_field(spec, "runAsUser", fqn);
    infra.node_selector = ctx.str_map(spec, "nodeSelector", fqn).into_iter().collect();
    check_k8s_map(ctx, spec, "nodeSelector", &infra.node_selector, true);
    infra.priority_class_name = ctx.str_field(spec, "priorityClassName", fqn);
    infra.host_names = ctx.str_list(spec, "hostNames", fqn);
    if let Some((tk, tol)) = spec.entry("tolerations") {
        let tfqn = format!("{fqn}.tolerations");
        let tol = ctx.resolve(tol, &tfqn);
        match &tol.value {
            Value::Null => {}
            Value::Seq(items) => {
                for (i, t) in items.iter().enumerate() {
                    let f = format!("{tfqn}.{i}");
                    if !ctx.strict_map(
                        t,
                        t.pos,
                        &["key", "operator", "value", "effect", "tolerationSeconds"],
                        "toleration",
                    ) {
                        continue;
                    }
                    let tol = Toleration {
                        key: ctx.str_field(t, "key", &f),
                        operator: ctx.str_field(t, "operator", &f),
                        value: ctx.str_field(t, "value", &f),
                        effect: ctx.str_field(t, "effect", &f),
                        toleration_seconds: ctx.int_field(t, "tolerationSeconds", &f),
                    };
                    if let Some(op) = &tol.operator
                        && op != "Equal"
                        && op != "Exists"
                    {
                        let pos = t.get("operator").map(|n| n.pos).unwrap_or(t.pos);
                        ctx.err(
                            pos,
                            format!("toleration `operator` must be Equal or Exists, found `{op}`"),
                        );
                    }
                    if let Some(e) = &tol.effect
                        && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&e.as_str())
                    {
                        let pos = t.get("effect").map(|n| n.pos).unwrap_or(t.pos);
                        ctx.err(
                            pos,
                            format!(
                                "toleration `effect` must be NoSchedule, PreferNoSchedule or NoExecute, found `{e}`"
                            ),
                        );
                    }
                    infra.tolerations.push(tol);
                }
            }
            _ => ctx.err(
                tk.pos,
                format!("`tolerations` must be a list, found {}", tol.kind_name()),
            ),
        }
    }
    if let Some((ck, csc)) = spec.entry("containerSecurityContext") {
        let cfqn = format!("{fqn}.containerSecurityContext");
        let fields = [
            "privileged",
            "allowPrivilegeEscalation",
            "capabilities",
            "runAsNonRoot",
            "readOnlyRootFilesystem",
            "runAsUser",
            "runAsGroup",
            "procMount",
        ];
        if !csc.is_null() && ctx.strict_map(csc, ck.pos, &fields, "containerSecurityContext") {
            let mut c = ContainerSecurityContext {
                privileged: ctx.bool_field(csc, "privileged", &cfqn),
                allow_privilege_escalation: ctx.bool_field(csc, "allowPrivilegeEscalation", &cfqn),
                run_as_non_root: ctx.bool_field(csc, "runAsNonRoot", &cfqn),
                read_only_root_filesystem: ctx.bool_field(csc, "readOnlyRootFilesystem", &cfqn),
                run_as_user: ctx.int_field(csc, "runAsUser", &cfqn),
                run_as_group: ctx.int_field(csc, "runAsGroup", &cfqn),
                proc_mount: ctx.str_field(csc, "procMount", &cfqn),
                ..Default::default()
            };
            if let Some((capk, caps)) = csc.entry("capabilities")
                && !caps.is_null()
                && ctx.strict_map(
                    caps,
                    capk.pos,
                    &["add", "drop"],
                    "containerSecurityContext.capabilities",
                )
            {
                c.capabilities_add = ctx.str_list(caps, "add", &format!("{cfqn}.capabilities"));
                c.capabilities_drop = ctx.str_list(caps, "drop", &format!("{cfqn}.capabilities"));
            }
            infra.container_security_context = Some(c);
        }
    }
    if let Some((vk, vols)) = spec.entry("volumes") {
        let vfqn = format!("{fqn}.volumes");
        let vols = ctx.resolve(vols, &vfqn);
        match &vols.value {
            Value::Null => {}
            Value::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    if let Some(vol) = read_volume(ctx, v, &format!("{vfqn}.{i}"), ffs) {
                        infra.volumes.push(vol);
                    }
                }
            }
            _ => ctx.err(vk.pos, format!("`volumes` must be a list, found {}", vols.kind_name())),
        }
    }
    infra
}

fn pull_policy(ctx: &mut Ctx<'_>, map: &Node, fqn: &str) -> Option<String> {
    let p = ctx.str_field(map, "imagePullPolicy", fqn)?;
    const OK: &[&str] = &["Always", "Never", "IfNotPresent"];
    if !OK.contains(&p.as_str()) {
        let pos = map.get("imagePullPolicy").map(|n| n.pos).unwrap_or_default();
        match crate::diag::suggest(&p, OK.iter().copied()) {
            Some(s) => ctx.err(
                pos,
                format!("`imagePullPolicy` must be Always, Never or IfNotPresent, found `{p}`; did you mean `{s}`?"),
            ),
            None => ctx.err(
                pos,
                format!("`imagePullPolicy` must be Always, Never or IfNotPresent, found `{p}`"),
            ),
        }
        return None;
    }
    Some(p)
}

const VOLUME_TYPES: &[&str] = &["EmptyDir", "HostPath", "PersistentVolumeClaim", "ConfigMap", "Secret"];

fn read_volume(ctx: &mut Ctx<'_>, v: &Node, fqn: &str, ffs: &[String]) -> Option<Volume> {
    if !ctx.strict_map(v, v.pos, &["mountPath", "type", "spec"], "volume") {
        return None;
    }
    let mount_path = ctx.req_str(v, v.pos, "mountPath", fqn, "volume");
    let ty = ctx.req_str(v, v.pos, "type", fqn, "volume")?;
    let type_pos = v.get("type").map(|n| n.pos).unwrap_or(v.pos);
    if !VOLUME_TYPES.contains(&ty.as_str()) {
        let hint = crate::diag::suggest(&ty, VOLUME_TYPES.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        ctx.err(
            type_pos,
            format!(
                "unknown volume type `{ty}`: supported types are {}{hint}",
                VOLUME_TYPES.join(", ")
            ),
        );
        return None;
    }
    if (ty == "ConfigMap" || ty == "Secret") && !ffs.iter().any(|f| f == FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME) {
        ctx.err_help(
            type_pos,
            format!("{ty} volumes require the feature flag {FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME}"),
            format!("add {FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME} to fixtures.featureFlags"),
        );
    }
    let empty = Node::synthetic(Value::Map(Vec::new()));
    let (spec_pos, spec) = match v.entry("spec") {
        Some((k, s)) if !s.is_null() => (k.pos, s),
        Some((k, _)) => (k.pos, &empty),
        None => (v.pos, &empty),
    };
    let sfqn = format!("{fqn}.spec");
    let what = format!("{ty} volume spec");
    let source = match ty.as_str() {
        "EmptyDir" => {
            if !ctx.strict_map(spec, spec_pos, &["medium", "size"], &what) {
                return None;
            }
            VolumeSource::EmptyDir {
                medium: ctx.str_field(spec, "medium", &sfqn),
                size: ctx.str_field(spec, "size", &sfqn),
            }
        }
        "HostPath" => {
            if !ctx.strict_map(spec, spec_pos, &["path", "type"], &what) {
                return None;
            }
            VolumeSource::HostPath {
                path: ctx.req_str(spec, spec_pos, "path", &sfqn, &what).unwrap_or_default(),
                path_type: ctx.str_field(spec, "type", &sfqn),
            }
        }
        "PersistentVolumeClaim" => {
            if !ctx.strict_map(spec, spec_pos, &["claimName", "readOnly"], &what) {
                return None;
            }
            VolumeSource::PersistentVolumeClaim {
                claim_name: ctx
                    .req_str(spec, spec_pos, "claimName", &sfqn, &what)
                    .unwrap_or_default(),
                read_only: ctx.bool_field(spec, "readOnly", &sfqn),
            }
        }
        "ConfigMap" | "Secret" => {
            if !ctx.strict_map(spec, spec_pos, &["name", "optional"], &what) {
                return None;
            }
            let name = ctx.req_str(spec, spec_pos, "name", &sfqn, &what).unwrap_or_default();
            let optional = ctx.bool_field(spec, "optional", &sfqn);
            if ty == "ConfigMap" {
                VolumeSource::ConfigMap { name, optional }
            } else {
                VolumeSource::Secret { name, optional }
            }
        }
        _ => return None,
    };
    let pos = v.get("mountPath").map(|n| n.pos).unwrap_or(v.pos);
    Some(Volume {
        mount_path: mount_path?,
        source,
        pos,
    })
}

fn read_steps(ctx: &mut Ctx<'_>, list: &Node, fqn: &str, depth: usize) -> Vec<StepNode> {
    let mut out = Vec::new();
    let Some(items) = list.as_seq() else {
        if !list.is_null() {
            ctx.err(list.pos, format!("`steps` must be a list, found {}", list.kind_name()));
        }
        return out;
    };
    for it in items {
        if let Some((_, s)) = it.entry("step") {
            if let Some(step) = read_step(ctx, s, fqn) {
                out.push(StepNode::Step(step));
            }
        } else if let Some((pk, par)) = it.entry("parallel") {
            if par.as_seq().is_none() {
                ctx.err(pk.pos, "`parallel` must be a list of steps");
                continue;
            }
            out.push(StepNode::Parallel(read_steps(ctx, par, fqn, depth)));
        } else if let Some((gk, g)) = it.entry("stepGroup") {
            if g.get("stepGroupInfra").is_some() {
                ctx.err(
                    gk.pos,
                    "a containerized step group cannot be nested in another containerized step group",
                );
                continue;
            }
            if depth >= 3 {
                ctx.err(gk.pos, "step groups nest at most 3 levels deep");
                continue;
            }
            let id = g.get("identifier").and_then(Node::scalar_text).unwrap_or_default();
            let steps = match g.get("steps") {
                Some(s) => read_steps(ctx, s, &format!("{fqn}.{id}.steps"), depth + 1),
                None => Vec::new(),
            };
            out.push(StepNode::Group(NestedGroup {
                identifier: id,
                name: g.get("name").and_then(Node::scalar_text).unwrap_or_default(),
                steps,
            }));
        } else if let Some(entries) = it.as_map()
            && let Some((k, _)) = entries.first()
        {
            let key = k.scalar_text().unwrap_or_default();
            let hint = crate::diag::suggest(&key, ["step", "parallel", "stepGroup"])
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            ctx.err(
                k.pos,
                format!("unknown step list element `{key}`: expected `step`, `parallel` or `stepGroup`{hint}"),
            );
        } else {
            ctx.err(
                it.pos,
                "a step list element must be a mapping with `step`, `parallel` or `stepGroup`",
            );
        }
    }
    out
}

fn read_step(ctx: &mut Ctx<'_>, s: &Node, list_fqn: &str) -> Option<Step> {
    if s.as_map().is_none() {
        ctx.err(s.pos, format!("`step` must be a mapping, found {}", s.kind_name()));
        return None;
    }
    let (id_pos, identifier) = match s.entry("identifier") {
        Some((k, v)) => (k.pos, v.scalar_text().unwrap_or_default()),
        None => {
            ctx.err(s.pos, "missing required field `identifier` in step");
            (s.pos, String::new())
        }
    };
    let fqn = format!("{list_fqn}.{identifier}");
    let (type_pos, step_type) = match s.entry("type") {
        Some((_, v)) => (v.pos, v.scalar_text().unwrap_or_default()),
        None if s.get("template").is_some() => {
            let (tk, t) = s.entry("template").unwrap_or((s, s));
            let r = t.get("templateRef").and_then(Node::scalar_text).unwrap_or_default();
            ctx.err(tk.pos, format!("step `{identifier}` uses the step template `{r}`; templates are not supported by sgsim, inline the step"));
            return None;
        }
        None => {
            ctx.err(id_pos, format!("missing required field `type` in step `{identifier}`"));
            return None;
        }
    };
    let Some(&(_, kind, default_image)) = SUPPORTED_STEP_TYPES.iter().find(|(t, _, _)| *t == step_type) else {
        let names: Vec<&str> = SUPPORTED_STEP_TYPES.iter().map(|(t, _, _)| *t).collect();
        let hint = crate::diag::suggest(&step_type, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        ctx.err(
            type_pos,
            format!(
                "step type `{step_type}` is not supported in a containerized step group{hint}; supported types: {}",
                names.join(", ")
            ),
        );
        return None;
    };
    if let Some((sk, sv)) = s.entry("strategy") {
        let kinds: Vec<String> = sv
            .as_map()
            .map(|m| m.iter().filter_map(|(k, _)| k.scalar_text()).collect())
            .unwrap_or_default();
        ctx.warn(
            sk.pos,
            format!(
                "looping strategy ({}) of step `{identifier}` is not simulated by sgsim: the step runs once, and `<+matrix.*>`, `<+repeat.*>`, `<+strategy.*>` expressions fail it",
                if kinds.is_empty() { "unknown".to_string() } else { kinds.join(", ") }
            ),
        );
    }
    let mut step = Step {
        identifier: identifier.clone(),
        name: s.get("name").and_then(Node::scalar_text).unwrap_or_default(),
        step_type: step_type.clone(),
        kind: Some(kind),
        fqn: fqn.clone(),
        timeout: ctx.str_field(s, "timeout", &fqn),
        when: s.get("when").map(Node::to_json),
        failure_strategies: s.get("failureStrategies").map(Node::to_json),
        pos: id_pos,
        ..Default::default()
    };
    if let Some(t) = &step.timeout
        && !t.contains("<+")
        && crate::duration::parse_millis(t).is_none()
    {
        let pos = s.get("timeout").map(|n| n.pos).unwrap_or(id_pos);
        ctx.err(pos, format!("`timeout` must be a duration like `10m`, found `{t}`"));
    }
    let empty = Node::synthetic(Value::Map(Vec::new()));
    let (spec_pos, spec) = match s.entry("spec") {
        Some((k, v)) if !v.is_null() => (k.pos, v),
        Some((k, _)) => (k.pos, &empty),
        None => (id_pos, &empty),
    };
    let sfqn = format!("{fqn}.spec");
    let what = format!("{step_type} step spec");
    let strict: Option<&[&str]> = match step_type.as_str() {
        "Run" => Some(RUN_SPEC_FIELDS),
        "Background" => Some(BACKGROUND_SPEC_FIELDS),
        "Plugin" => Some(PLUGIN_SPEC_FIELDS),
        _ => None,
    };
    if let Some(fields) = strict {
        if !ctx.strict_map(spec, spec_pos, fields, &what) {
            return Some(step);
        }
    } else if spec.as_map().is_none() {
        ctx.err(
            spec.pos,
            format!("`spec` must be a mapping, found {}", spec.kind_name()),
        );
        return Some(step);
    }
    if kind == StepKind::NoContainer {
        return Some(step);
    }
    step.connector_ref = ctx.str_field(spec, "connectorRef", &sfqn);
    let needs_image =
        matches!(kind, StepKind::Run | StepKind::Background | StepKind::Plugin) && default_image.is_none();
    step.image = if needs_image {
        ctx.req_str(
            spec,
            spec_pos,
            "image",
            &sfqn,
            &format!("{step_type} step `{identifier}`"),
        )
    } else {
        // Some product-managed steps (STO scanners) use `image` for the scanned target, a mapping.
        match spec.get("image") {
            Some(n) if n.as_map().is_some() => default_image.map(str::to_string),
            _ => ctx
                .str_field(spec, "image", &sfqn)
                .or(default_image.map(str::to_string)),
        }
    };
    if let (Some(img), Some(n)) = (&step.image, spec.get("image"))
        && img.chars().any(char::is_whitespace)
    {
        ctx.err(n.pos, format!("image `{img}` is not a valid image reference"));
    }
    match kind {
        StepKind::Run | StepKind::Background => {
            step.command = ctx.str_field(spec, "command", &sfqn);
            if kind == StepKind::Run && step.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                ctx.err(
                    spec_pos,
                    format!("missing required field `command` in Run step `{identifier}`"),
                );
            }
            if let Some(sh) = ctx.str_field(spec, "shell", &sfqn) {
                match Shell::parse(&sh) {
                    Some(x) => step.shell = x,
                    None => {
                        let pos = spec.get("shell").map(|n| n.pos).unwrap_or(spec_pos);
                        let opts = ["Sh", "Bash", "Powershell", "Pwsh", "Python"];
                        let hint = crate::diag::suggest(&sh, opts)
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        ctx.err(
                            pos,
                            format!("`shell` must be one of Sh, Bash, Powershell, Pwsh, Python, found `{sh}`{hint}"),
                        );
                    }
                }
            }
            step.output_variables = read_output_vars(ctx, spec, &sfqn);
            step.port_bindings = ctx.str_map(spec, "portBindings", &sfqn).into_iter().collect();
        }
        StepKind::Plugin => {
            if let Some(settings) = spec.get("settings") {
                let sf = format!("{sfqn}.settings");
                let n = ctx.resolve(settings, &sf);
                if let Some(entries) = n.as_map() {
                    for (k, v) in entries {
                        let key = k.scalar_text().unwrap_or_default();
                        let rv = ctx.resolve(v, &format!("{sf}.{key}"));
                        step.settings.push((key, rv.to_json()));
                    }
                } else if !n.is_null() {
                    ctx.err(n.pos, format!("`settings` must be a mapping, found {}", n.kind_name()));
                }
            }
            if strict.is_none() {
                // Product-managed steps: keep their spec fields as settings.
                if let Some(entries) = spec.as_map() {
                    for (k, v) in entries {
                        let key = k.scalar_text().unwrap_or_default();
                        if (key == "image" && v.as_map().is_none())
                            || [
                                "connectorRef",
                                "envVariables",
                                "resources",
                                "privileged",
                                "imagePullPolicy",
                                "runAsUser",
                                "settings",
                                "entrypoint",
                                "reports",
                                "delegateSelectors",
                            ]
                            .contains(&key.as_str())
                        {
                            continue;
                        }
                        let rv = ctx.resolve(v, &format!("{sfqn}.{key}"));
                        step.settings.push((key, rv.to_json()));
                    }
                }
            }
        }
        StepKind::NoContainer => {}
    }
    step.entrypoint = ctx.str_list(spec, "entrypoint", &sfqn);
    step.env = ctx.str_map(spec, "envVariables", &sfqn);
    step.privileged = ctx.bool_field(spec, "privileged", &sfqn);
    step.image_pull_policy = pull_policy(ctx, spec, &sfqn);
    step.run_as_user = ctx.int_field(spec, "runAsUser", &sfqn);
    if let Some((rk, res)) = spec.entry("resources")
        && !res.is_null()
        && ctx.strict_map(res, rk.pos, &["limits"], "resources")
        && let Some((lk, lim)) = res.entry("limits")
        && !lim.is_null()
        && ctx.strict_map(lim, lk.pos, &["cpu", "memory"], "resources.limits")
    {
        let lf = format!("{sfqn}.resources.limits");
        step.cpu_limit = ctx.str_field(lim, "cpu", &lf);
        step.memory_limit = ctx.str_field(lim, "memory", &lf);
        for (key, val) in [("cpu", &step.cpu_limit), ("memory", &step.memory_limit)] {
            if let Some(v) = val
                && crate::quantity::parse(v).is_none()
            {
                let pos = lim.get(key).map(|n| n.pos).unwrap_or(lk.pos);
                ctx.err(pos, format!("`{key}` limit `{v}` is not a valid Kubernetes quantity"));
            }
        }
    }
    if let Some((rk, rep)) = spec.entry("reports")
        && !rep.is_null()
        && ctx.strict_map(rep, rk.pos, &["type", "spec"], "reports")
        && let Some(rs) = rep.get("spec")
    {
        step.report_paths = ctx.str_list(rs, "paths", &format!("{sfqn}.reports.spec"));
    }
    Some(step)
}

fn read_output_vars(ctx: &mut Ctx<'_>, spec: &Node, fqn: &str) -> Vec<String> {
    let Some(v) = spec.get("outputVariables") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match v.as_seq() {
        Some(items) => {
            for it in items {
                match it.get("name").and_then(Node::scalar_text) {
                    Some(n) => out.push(n),
                    None => match it.scalar_text() {
                        Some(n) => out.push(n),
                        None => ctx.err(it.pos, "an output variable needs a `name`"),
                    },
                }
            }
        }
        None if v.is_null() => {}
        None => {
            let _ = fqn;
            ctx.err(
                v.pos,
                format!("`outputVariables` must be a list, found {}", v.kind_name()),
            );
        }
    }
    out
}

/// Duplicate step identifiers, and identifiers that give the same container name.
fn check_identifiers(ctx: &mut Ctx<'_>, group: &StepGroup) {
    let mut seen: BTreeMap<String, (String, u32)> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for s in group.flat_steps() {
        if s.identifier.is_empty() {
            continue;
        }
        if let Some((_, line)) = seen.get(&s.identifier) {
            ctx.err(
                s.pos,
                format!(
                    "duplicate step identifier `{}` (first defined at line {line})",
                    s.identifier
                ),
            );
            continue;
        }
        seen.insert(s.identifier.clone(), (s.identifier.clone(), s.pos.line));
        if s.kind == Some(StepKind::NoContainer) {
            continue;
        }
        let cname = crate::render::container_name(&s.identifier);
        if let Some(other) = names.get(&cname) {
            ctx.err(
                s.pos,
                format!(
                    "step identifiers `{other}` and `{}` both give the container name `{cname}`",
                    s.identifier
                ),
            );
        } else {
            names.insert(cname, s.identifier.clone());
        }
    }
}

/// podSpecOverlay: YAML text (or a mapping) holding a PodSpec fragment.
fn read_overlay(ctx: &mut Ctx<'_>, ov: &Node, fqn: &str, infra: &mut K8sInfra) {
    let n = ctx.resolve(ov, fqn);
    let json = match &n.value {
        Value::Null => return,
        Value::Map(_) => n.to_json(),
        Value::Str(text) => {
            infra.pod_spec_overlay = Some(text.clone());
            if text.trim().is_empty() {
                return;
            }
            match crate::yaml::parse(text) {
                Ok(inner) if inner.as_map().is_some() => inner.to_json(),
                Ok(inner) if inner.is_null() => return,
                Ok(inner) => {
                    ctx.err(
                        n.pos,
                        format!(
                            "`podSpecOverlay` must hold a mapping (a PodSpec fragment), found {}",
                            inner.kind_name()
                        ),
                    );
                    return;
                }
                Err(e) => {
                    ctx.err(
                        n.pos,
                        format!(
                            "`podSpecOverlay` is not valid YAML: {} (line {} of the overlay)",
                            e.message, e.pos.line
                        ),
                    );
                    return;
                }
            }
        }
        _ => {
            ctx.err(
                n.pos,
                format!(
                    "`podSpecOverlay` must be YAML text or a mapping, found {}",
                    n.kind_name()
                ),
            );
            return;
        }
    };
    let mut probe = serde_json::json!({"containers": []});
    crate::render::merge_overlay(&mut probe, &json);
    if let Err(e) = serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(probe) {
        ctx.err(n.pos, format!("`podSpecOverlay` is not a valid PodSpec fragment: {e}"));
        return;
    }
    infra.pod_spec_overlay_json = Some(json);
}

/// Kubernetes label/annotation key and label value syntax (checked by hand).
fn check_k8s_map(ctx: &mut Ctx<'_>, spec: &Node, key: &str, values: &BTreeMap<String, String>, check_values: bool) {
    let Some(map) = spec.get(key) else { return };
    let Some(entries) = map.as_map() else { return };
    for (k, v) in entries {
        let name = k.scalar_text().unwrap_or_default();
        if let Some(why) = invalid_qualified_name(&name) {
            ctx.err(
                k.pos,
                format!(
                    "`{name}` is not a valid Kubernetes {} key: {why}",
                    key.trim_end_matches('s')
                ),
            );
            continue;
        }
        if check_values
            && let Some(val) = values.get(&name)
            && !val.contains("<+")
            && let Some(why) = invalid_label_value(val)
        {
            ctx.err(v.pos, format!("`{val}` is not a valid Kubernetes label value: {why}"));
        }
    }
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[prefix/]name`: prefix a DNS subdomain (≤ 253), name ≤ 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
pub fn invalid_qualified_name(k: &str) -> Option<&'static str> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            });
        if !ok {
            return Some("the prefix must be a lowercase DNS subdomain");
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Some("the name must be 1 to 63 characters");
    }
    if !is_name_part(name) {
        return Some("the name must consist of alphanumerics, `-`, `_` or `.`, and start and end with an alphanumeric");
    }
    None
}

/// Label values: empty, or ≤ 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn invalid_label_value(v: &str) -> Option<&'static str> {
    if v.is_empty() {
        return None;
    }
    if v.len() > 63 {
        return Some("at most 63 characters");
    }
    if !is_name_part(v) {
        return Some("alphanumerics, `-`, `_` or `.`, starting and ending with an alphanumeric");
    }
    None
}
