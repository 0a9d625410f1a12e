//! Values for the expressions in the stepGroupInfra fields that reach Kubernetes
//! (`<+pipeline.variables.ns>`, `<+infra.namespace>`, `<+env.name>` …): the value the scenario
//! pins under `fixtures.expressions`, the pipeline's or stage's variable, or else an inferred one
//! with a warning, so no expression ever reaches the API server or a container raw. Step fields
//! (image, connectorRef, resources, imagePullPolicy) are expanded the same way as they are read
//! (`pipeline/steps.rs`, [`Ctx::expand`]).

use crate::defaults::DEFAULT_HARNESS_IMAGE_CONNECTOR;
use crate::model::StepGroup;
use crate::walk::{Ctx, Fallback};
use crate::yaml::{Node, Pos};

/// What an unresolved expression in each field becomes when the scenario gives it no value.
const FALLBACKS: &[(&str, &str)] = &[
    ("namespace", "default"),
    ("connectorRef", "sgsim_cluster"),
    ("serviceAccountName", "default"),
    ("priorityClassName", "sgsim-priority"),
    ("harnessImageConnectorRef", DEFAULT_HARNESS_IMAGE_CONNECTOR),
];

/// Replaces every expression in the group's stepGroupInfra fields by its value (see the module
/// and [`Ctx::expand`]). `spec` is the `stepGroupInfra.spec` node, for positions; `at` is used
/// when it has none.
pub(super) fn resolve_infra_expressions(ctx: &mut Ctx<'_>, group: &mut StepGroup, spec: Option<&Node>, at: Pos) {
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
        let pos = spec.and_then(|s| s.get(key)).map(|n| n.pos).unwrap_or(at);
        let fallback = FALLBACKS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        if let Some(v) = ctx.expand(value, pos, key, Fallback::Whole(fallback)) {
            *value = v;
        }
    }
}
