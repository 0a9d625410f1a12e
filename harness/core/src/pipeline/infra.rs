//! Reading `stepGroupInfra.spec` (KubernetesDirect): namespace, connector, service account,
//! labels and annotations, node selection, security context, volumes and the podSpecOverlay.

use std::collections::BTreeMap;

use crate::defaults::{FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME, FF_POD_SPEC_OVERLAY, OVERLAY_WITHOUT_FLAG};
use crate::model::*;
use crate::naming::{invalid_label_value, invalid_qualified_name};
use crate::overlay::merge_overlay;
use crate::walk::Ctx;
use crate::yaml::{Node, Pos, Value};

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

pub(super) fn read_infra(ctx: &mut Ctx<'_>, spec: &Node, at: Pos, fqn: &str, ffs: &[String]) -> K8sInfra {
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
        read_overlay(ctx, ov, &format!("{fqn}.podSpecOverlay"), &mut infra, ffs);
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

pub(super) fn pull_policy(ctx: &mut Ctx<'_>, map: &Node, fqn: &str) -> Option<String> {
    let p = ctx.str_field(map, "imagePullPolicy", fqn)?;
    let pos = map.get("imagePullPolicy").map(|n| n.pos).unwrap_or_default();
    let p = ctx.expand(&p, pos, "imagePullPolicy", crate::walk::Fallback::Unset)?;
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

/// podSpecOverlay: YAML text (or a mapping) holding a PodSpec fragment.
fn read_overlay(ctx: &mut Ctx<'_>, ov: &Node, fqn: &str, infra: &mut K8sInfra, ffs: &[String]) {
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
    // The product's documentation for the flag asks for the fragment under `spec:`.
    let json = match json {
        serde_json::Value::Object(mut o) if o.len() == 1 && o.get("spec").is_some_and(|v| v.is_object()) => {
            o.remove("spec").unwrap_or_default()
        }
        other => other,
    };
    let full = ffs.iter().any(|f| f == FF_POD_SPEC_OVERLAY);
    if !full {
        let ignored: Vec<&str> = json
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .map(String::as_str)
            .filter(|k| *k != OVERLAY_WITHOUT_FLAG)
            .collect();
        if !ignored.is_empty() {
            ctx.warn(
                n.pos,
                format!(
                    "without the feature flag {FF_POD_SPEC_OVERLAY} the product takes only `{OVERLAY_WITHOUT_FLAG}` from \
                     podSpecOverlay; like the product, sgsim ignores {} (add {FF_POD_SPEC_OVERLAY} to \
                     fixtures.featureFlags to apply the whole overlay)",
                    ignored.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    let mut probe = serde_json::json!({"containers": []});
    merge_overlay(&mut probe, &json);
    if let Err(e) = serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(probe) {
        ctx.err(n.pos, format!("`podSpecOverlay` is not a valid PodSpec fragment: {e}"));
        return;
    }
    // What the pod gets: the whole fragment with the flag, else only what the product takes.
    let json = if full {
        json
    } else {
        match json.get(OVERLAY_WITHOUT_FLAG) {
            Some(v) => serde_json::json!({ OVERLAY_WITHOUT_FLAG: v }),
            None => return,
        }
    };
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
