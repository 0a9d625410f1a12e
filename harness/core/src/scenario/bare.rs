//! Inputs that are not a scenario.yaml: a bare pipeline (fixtures inferred from the step group)
//! and a step group template file (loaded as a one-stage pipeline that uses it).

use super::fixtures::default_node;
use super::header::{Connector, DataObject, Fixtures, NamedObject, PriorityClassFixture};
use crate::defaults::{DEFAULT_ACCOUNT_ID, DEFAULT_HARNESS_IMAGE_CONNECTOR, KNOWN_FEATURE_FLAGS};
use crate::model::StepGroup;
use crate::naming::is_dns_label;
use crate::yaml::{Node, Pos, Value};

/// The top-level fields of scenario.yaml.
pub(super) const SCENARIO_FIELDS: &[&str] = &[
    "name",
    "description",
    "pipeline",
    "stepGroup",
    "seed",
    "fixtures",
    "expect",
    "fake",
];

/// Whether a parsed YAML document is a bare pipeline (top-level `pipeline:` mapping only)
/// rather than a scenario.
pub(super) fn is_bare(root: &Node) -> bool {
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
pub(super) fn templated_step_groups(n: &Node, out: &mut Vec<(Pos, String, String)>) {
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
/// `identifier` replaces the group's identifier (the one it has where the customer uses it).
pub(super) fn step_group_template_as_pipeline(root: &Node, identifier: Option<&str>) -> Option<Node> {
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
        (
            s("identifier"),
            match identifier {
                Some(i) => s(i),
                None => t.get("identifier").cloned().unwrap_or_else(|| s(&id)),
            },
        ),
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

/// Fixtures of a bare pipeline: the namespace exists, connectors are anonymous, one node.
pub(super) fn infer_fixtures(fx: &mut Fixtures, group: &StepGroup) {
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

/// Labels the inferred node of a bare pipeline needs so the pod can land on it: the group's
/// `nodeSelector`, and for each `In`/`Exists`/`Gt`/`Lt` expression of the first required
/// node-affinity term of its podSpecOverlay, a value that satisfies it. Returned in the order they
/// were found, so the caller can say what it inferred.
pub(super) fn node_labels_for(group: &StepGroup) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = group
        .infra
        .node_selector
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let terms = group
        .infra
        .pod_spec_overlay_json
        .as_ref()
        .and_then(|o| {
            o.pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        })
        .and_then(|t| t.as_array());
    // Terms are ORed: satisfying the first is enough.
    if let Some(exprs) = terms
        .and_then(|t| t.first())
        .and_then(|t| t.get("matchExpressions"))
        .and_then(|e| e.as_array())
    {
        for e in exprs {
            let Some(key) = e.get("key").and_then(|k| k.as_str()) else {
                continue;
            };
            let values: Vec<&str> = e
                .get("values")
                .and_then(|v| v.as_array())
                .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let value = match e.get("operator").and_then(|o| o.as_str()) {
                Some("In") => values.first().map(|v| v.to_string()),
                Some("Exists") => Some(String::new()),
                Some("Gt") => values
                    .first()
                    .and_then(|v| v.parse::<i64>().ok())
                    .map(|n| (n + 1).to_string()),
                Some("Lt") => values
                    .first()
                    .and_then(|v| v.parse::<i64>().ok())
                    .map(|n| (n - 1).to_string()),
                _ => None,
            };
            if let Some(v) = value
                && !out.iter().any(|(k, _)| k == key)
            {
                out.push((key.to_string(), v));
            }
        }
    }
    out
}
