//! Values for the expressions sgsim has no model for (`<+infra.namespace>`, `<+env.name>`,
//! `<+pipeline.variables.ns>` …) in the stepGroupInfra fields that reach Kubernetes: the value the
//! scenario pins under `fixtures.expressions`, or else an inferred one with a warning, so no
//! expression ever reaches the API server or a container raw.

use std::collections::BTreeMap;

use crate::defaults::DEFAULT_HARNESS_IMAGE_CONNECTOR;
use crate::model::StepGroup;
use crate::walk::{Ctx, other_expressions};
use crate::yaml::{Node, Pos};

/// What an unresolved expression in each field becomes when the scenario gives it no value.
const FALLBACKS: &[(&str, &str)] = &[
    ("namespace", "default"),
    ("connectorRef", "sgsim_cluster"),
    ("serviceAccountName", "default"),
    ("priorityClassName", "sgsim-priority"),
    ("harnessImageConnectorRef", DEFAULT_HARNESS_IMAGE_CONNECTOR),
];

/// Replaces every expression in the group's stepGroupInfra fields by its value (see the module).
/// `spec` is the `stepGroupInfra.spec` node, for positions; `at` is used when it has none.
pub(super) fn resolve_infra_expressions(
    ctx: &mut Ctx<'_>,
    group: &mut StepGroup,
    pinned: &BTreeMap<String, String>,
    spec: Option<&Node>,
    at: Pos,
) {
    let infra = &mut group.infra;
    let fields: [(&str, Option<&mut String>); 5] = [
        ("namespace", Some(&mut infra.namespace)),
        ("connectorRef", Some(&mut infra.connector_ref)),
        ("serviceAccountName", infra.service_account_name.as_mut()),
        ("priorityClassName", infra.priority_class_name.as_mut()),
        ("harnessImageConnectorRef", infra.harness_image_connector_ref.as_mut()),
    ];
    for (key, value) in fields {
        let Some(value) = value else { continue };
        let exprs = other_expressions(value);
        if exprs.is_empty() {
            continue;
        }
        let pos = spec.and_then(|s| s.get(key)).map(|n| n.pos).unwrap_or(at);
        let fallback = FALLBACKS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        if exprs.len() == 1 && value.trim() == exprs[0] && !pinned.contains_key(inner(&exprs[0])) {
            // The whole field is one expression: it becomes a usable value of that field.
            ctx.warn(
                pos,
                format!(
                    "expression `{}` in `{key}` has no value in sgsim; using `{fallback}` (pin it under \
                     fixtures.expressions: `{}: <value>`)",
                    exprs[0],
                    inner(&exprs[0])
                ),
            );
            *value = fallback.to_string();
            continue;
        }
        let mut out = value.clone();
        for e in exprs {
            let name = inner(&e);
            let v = match pinned.get(name) {
                Some(v) => v.clone(),
                None => {
                    let v = name
                        .rsplit('.')
                        .next()
                        .unwrap_or(name)
                        .to_ascii_lowercase()
                        .replace('_', "-");
                    ctx.warn(
                        pos,
                        format!(
                            "expression `{e}` in `{key}` has no value in sgsim; using `{v}` (pin it under \
                             fixtures.expressions: `{name}: <value>`)"
                        ),
                    );
                    v
                }
            };
            out = out.replace(&e, &v);
        }
        *value = out;
    }
}

/// `<+infra.namespace>` → `infra.namespace`.
fn inner(expr: &str) -> &str {
    expr.strip_prefix("<+")
        .and_then(|e| e.strip_suffix('>'))
        .unwrap_or(expr)
}
