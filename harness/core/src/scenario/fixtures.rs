//! Reading the `fixtures` section of scenario.yaml (nodes, Kubernetes objects, connectors,
//! secrets, inputs, feature flags, registries), and the small field readers the sections share.

use std::collections::BTreeMap;

use super::header::{
    Connector, DataObject, Fixtures, NamedObject, NodeFixture, PriorityClassFixture, RegistryFixture, TaintFixture,
};
use crate::defaults::{DEFAULT_ACCOUNT_ID, KNOWN_FEATURE_FLAGS};
use crate::diag::suggest;
use crate::walk::Ctx;
use crate::yaml::{Node, Pos, Value};

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
    "rbac",
    "kubernetesVersion",
];

/// The minor of a Kubernetes 1.x version (`1.32`, `v1.30.4` → 32, 30).
pub fn kubernetes_minor(v: &str) -> Option<u32> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let patch_ok = parts
        .next()
        .is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if major != "1" || !patch_ok || parts.next().is_some() {
        return None;
    }
    minor.parse().ok().filter(|m| (1..100).contains(m))
}

pub(super) fn default_node() -> NodeFixture {
    NodeFixture {
        name: "node-1".into(),
        ..Default::default()
    }
}

pub(super) fn scalar(ctx: &mut Ctx<'_>, map: &Node, key: &str) -> Option<String> {
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

pub(super) fn plain_map(ctx: &mut Ctx<'_>, map: &Node, key: &str) -> BTreeMap<String, String> {
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

pub(super) fn read_fixtures(ctx: &mut Ctx<'_>, f: &Node, at: Pos, fx: &mut Fixtures) {
    fx.account_id = DEFAULT_ACCOUNT_ID.into();
    fx.nodes = vec![default_node()];
    if f.is_null() || !ctx.strict_map(f, at, FIXTURE_FIELDS, "fixtures") {
        return;
    }
    if let Some(a) = scalar(ctx, f, "accountId") {
        fx.account_id = a;
    }
    if let Some(v) = scalar(ctx, f, "kubernetesVersion") {
        if kubernetes_minor(&v).is_some() {
            fx.kubernetes_version = Some(v);
        } else {
            let pos = f.get("kubernetesVersion").map(|n| n.pos).unwrap_or(at);
            ctx.err(
                pos,
                format!("kubernetesVersion `{v}` is not a Kubernetes 1.x version (`1.32`, `v1.30.4`)"),
            );
        }
    }
    let rbac_items = list(ctx, f, "rbac");
    fx.rbac = super::rbac::read(ctx, rbac_items);
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

#[cfg(test)]
mod tests {
    use super::kubernetes_minor;

    #[test]
    fn kubernetes_versions_parse_to_their_minor() {
        assert_eq!(kubernetes_minor("1.32"), Some(32));
        assert_eq!(kubernetes_minor("v1.30.4"), Some(30));
        assert_eq!(kubernetes_minor(" 1.24 "), Some(24));
        for bad in ["2.1", "1", "1.x", "v1.30.", "1.30.4.1", "latest", ""] {
            assert_eq!(kubernetes_minor(bad), None, "{bad}");
        }
    }
}
