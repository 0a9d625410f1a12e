//! Loading a scenario.yaml or a bare pipeline: parse each file once, dispatch on its shape,
//! read the scenario sections, select the step group and run the fixture-dependent checks.

use std::sync::Arc;

use super::bare::{
    SCENARIO_FIELDS, infer_fixtures, is_bare, node_labels_for, step_group_template_as_pipeline, templated_step_groups,
};
use super::expect::{read_expect, read_fake};
use super::fixtures::{default_node, read_fixtures, scalar};
use super::unmodelled::resolve_infra_expressions;
use super::{LoadOptions, Scenario, ScenarioError, ScenarioHeader, SourceLoader};
use crate::defaults::{DEFAULT_ACCOUNT_ID, KNOWN_FEATURE_FLAGS};
use crate::diag::{Diagnostic, Diagnostics, Severity, SourceFile, suggest};
use crate::naming::is_dns_label;
use crate::pipeline::{discover, read_group};
use crate::walk::{Ctx, Resolver};
use crate::yaml::{Node, Pos, Value, parse};

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

pub(super) fn load_inner(
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
    let template = step_group_template_as_pipeline(&root, opts.identifier.as_deref());
    if let Some(id) = opts.identifier.as_deref().filter(|_| template.is_none()) {
        diags.push(Diagnostic::new(
            Severity::Warning,
            &file,
            root.pos,
            format!("identifier `{id}` is ignored: it renames the step group of a step group template file, and this is not one"),
        ));
    }
    // A bare pipeline, or a step group template loaded like a bare pipeline that uses it.
    let pipeline_root = if is_bare(&root) { Some(&root) } else { template.as_ref() };
    if let Some(proot) = pipeline_root {
        let header = ScenarioHeader {
            seed: 1,
            bare: true,
            step_group: opts.step_group.clone(),
            ..Default::default()
        };
        res.infer_secrets = true;
        for (k, v) in &opts.inputs {
            res.inputs.insert(k.clone(), v.clone());
        }
        return finish(
            header,
            file.clone(),
            proot,
            path.to_string(),
            res,
            diags,
            Parsed {
                file: &file,
                root: &root,
            },
        );
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
    let Some(pnode) = root.get("pipeline") else {
        ctx.err(
            root.pos,
            "missing required field `pipeline` (a file path or an inline `pipeline:` mapping)",
        );
        return Err(ScenarioError::Invalid {
            header: Some(Box::new(header)),
            diagnostics: diags,
        });
    };
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
                    finish(
                        header,
                        pfile,
                        &proot,
                        shown,
                        res,
                        diags,
                        Parsed {
                            file: &file,
                            root: &root,
                        },
                    )
                }
            }
        }
        Value::Map(_) => {
            let p = pnode.clone();
            finish(
                header,
                file.clone(),
                &p,
                path.to_string(),
                res,
                diags,
                Parsed {
                    file: &file,
                    root: &root,
                },
            )
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

/// The input file (scenario.yaml, or the bare pipeline itself), parsed once.
#[derive(Clone, Copy)]
struct Parsed<'a> {
    file: &'a Arc<SourceFile>,
    root: &'a Node,
}

fn finish(
    mut header: ScenarioHeader,
    pfile: Arc<SourceFile>,
    proot: &Node,
    pipeline_path: String,
    mut res: Resolver,
    mut diags: Diagnostics,
    scenario: Parsed<'_>,
) -> Result<Scenario, ScenarioError> {
    let Parsed {
        file: scenario_file,
        root: scenario_root,
    } = scenario;
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
                        step_group_pos(scenario_root),
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
                        step_group_pos(scenario_root),
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
    if header.bare {
        header.fixtures.feature_flags = KNOWN_FEATURE_FLAGS.iter().map(|s| s.to_string()).collect();
    }
    let stage_of = |f: &crate::pipeline::Found<'_>| {
        pipeline
            .stages
            .iter()
            .find(|s| s.identifier == f.stage_identifier)
            .cloned()
            .unwrap_or_default()
    };
    // The product validates the whole pipeline when it is saved or run: the errors of every other
    // containerized step group are reported too (not its warnings, nor its runtime inputs and
    // secrets, which are given when that group runs).
    for (i, other) in found.iter().enumerate() {
        if Some(i) == chosen {
            continue;
        }
        let mut other_diags = Diagnostics::default();
        let mut other_res = ctx.res.clone();
        other_res.validate_only = true;
        other_res.set_known(
            &header.fixtures.expressions,
            &pipeline,
            &stage_of(other),
            &header.fixtures.env_variables,
        );
        let mut octx = Ctx {
            file: pfile.clone(),
            diags: &mut other_diags,
            res: &mut other_res,
        };
        read_group(&mut octx, other, &header.fixtures.feature_flags);
        for d in other_diags.items.into_iter().filter(Diagnostic::is_error) {
            ctx.diags.push(d);
        }
    }
    let Some(ci) = chosen else { return fail(header, diags) };
    let f = &found[ci];
    let stage = stage_of(f);
    ctx.res.set_known(
        &header.fixtures.expressions,
        &pipeline,
        &stage,
        &header.fixtures.env_variables,
    );
    let mut group = read_group(&mut ctx, f, &header.fixtures.feature_flags);
    let infra_spec = f.node.get("stepGroupInfra").and_then(|i| i.get("spec"));
    resolve_infra_expressions(&mut ctx, &mut group, infra_spec, f.key_pos);
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
        // What the pipeline read that sgsim inferred or was given: Harness secrets and runtime
        // inputs, so the fixtures say everything the run used (`sgsim repro` writes them).
        header.fixtures.harness_secrets = ctx.res.secrets.clone();
        header.fixtures.inputs = ctx.res.inputs.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
        let labels = node_labels_for(&group);
        if !labels.is_empty() {
            let spec = f.node.get("stepGroupInfra").and_then(|i| i.get("spec"));
            let pos = spec
                .and_then(|s| s.get("nodeSelector").or_else(|| s.get("podSpecOverlay")))
                .map(|n| n.pos)
                .unwrap_or(f.key_pos);
            let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            ctx.warn(
                pos,
                format!(
                    "the inferred node `node-1` gets the labels {} so the pod can be scheduled on it; pin the \
                     cluster's real nodes in a scenario's fixtures.nodes to change that",
                    shown.join(", ")
                ),
            );
            if let Some(node) = header.fixtures.nodes.first_mut() {
                node.labels.extend(labels);
            }
        }
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
        let sections = [
            ("expect", header.expect.steps.keys().collect::<Vec<_>>()),
            ("fake", header.fake.steps.keys().collect()),
        ];
        for (section, named) in sections {
            for id in named.into_iter().filter(|id| !ids.contains(&id.as_str())) {
                let pos = scenario_root
                    .get(section)
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
        && let Some(entries) = scenario_root
            .get("fixtures")
            .and_then(|f| f.get("inputs"))
            .and_then(Node::as_map)
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

/// Where scenario.yaml selects the step group (`stepGroup`), for messages about the selection.
fn step_group_pos(scenario_root: &Node) -> Pos {
    scenario_root.get("stepGroup").map(|n| n.pos).unwrap_or_default()
}

fn yaml_message(e: &crate::yaml::YamlError) -> String {
    match e.kind {
        crate::yaml::YamlErrorKind::Syntax => format!("YAML syntax error: {}", e.message),
        crate::yaml::YamlErrorKind::Limit => format!("YAML document rejected: {}", e.message),
        crate::yaml::YamlErrorKind::Internal => e.message.clone(),
    }
}
