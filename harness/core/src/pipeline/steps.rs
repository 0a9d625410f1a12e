//! Reading the steps of a step group (nested groups, parallel blocks) and each step: its type
//! (from [`crate::step_types`]), spec, image, command, settings, resources and reports.

use super::infra::pull_policy;
use crate::defaults::DEFAULT_HARNESS_IMAGE_CONNECTOR;
use crate::model::*;
use crate::step_types;
use crate::walk::{Ctx, Fallback};
use crate::yaml::{Node, Value};

pub(super) fn read_steps(ctx: &mut Ctx<'_>, list: &Node, fqn: &str, depth: usize) -> Vec<StepNode> {
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
    let Some(row) = step_types::by_type(&step_type) else {
        let names: Vec<&str> = step_types::names().collect();
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
    let (kind, default_image) = (row.kind, row.default_image);
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
    let strict = row.spec_fields;
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
    step.connector_ref = ctx.str_field(spec, "connectorRef", &sfqn).and_then(|c| {
        let pos = spec.get("connectorRef").map(|n| n.pos).unwrap_or(spec_pos);
        ctx.expand(
            &c,
            pos,
            "connectorRef",
            Fallback::Whole(DEFAULT_HARNESS_IMAGE_CONNECTOR),
        )
    });
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
    // The product resolves the image's expressions (`<+pipeline.variables.plugin_image>`)
    // before it creates the pod.
    if let Some(img) = step.image.take() {
        let pos = spec.get("image").map(|n| n.pos).unwrap_or(spec_pos);
        let fallback = default_image.map_or(Fallback::LastSegment, Fallback::Whole);
        step.image = ctx.expand(&img, pos, "image", fallback);
    }
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
        for (key, val) in [("cpu", &mut step.cpu_limit), ("memory", &mut step.memory_limit)] {
            *val = ctx.str_field(lim, key, &lf).and_then(|v| {
                let pos = lim.get(key).map(|n| n.pos).unwrap_or(lk.pos);
                ctx.expand(&v, pos, key, Fallback::Unset)
            });
        }
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
