//! Reading a Harness pipeline YAML into the [`crate::model`] types, with validation.
//!
//! Strict (unknown fields are errors, with a suggestion): `stepGroupInfra`, its `spec`, volumes,
//! tolerations, containerSecurityContext, and the specs of Run, Background and Plugin steps.
//! Tolerant (unknown fields ignored): everything else (pipeline, stage, step-level keys like
//! `when`, `failureStrategies`, `timeout`, `variables`, `strategy`, ...).

mod infra;
mod steps;

use std::collections::BTreeMap;

use crate::model::*;
use crate::naming::container_name;
use crate::walk::Ctx;
use crate::yaml::{Node, Pos, Value};
use infra::read_infra;
use steps::read_steps;

pub use crate::defaults::FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME;
pub use crate::naming::{invalid_label_value, invalid_qualified_name};
pub use infra::INFRA_SPEC_FIELDS;

/// Stage types that may hold a containerized step group (`Deployment` is the Deploy stage).
pub const SUPPORTED_STAGE_TYPES: &[&str] = &["Deployment", "Custom"];

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
    if let Some(sp) = g.get("sharedPaths") {
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
        let cname = container_name(&s.identifier);
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
