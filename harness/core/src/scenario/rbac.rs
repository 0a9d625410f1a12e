//! `fixtures.rbac`: the customer's Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, as
//! manifests (`apiVersion: rbac.authorization.k8s.io/v1`). The embedded API server enforces RBAC
//! for ServiceAccount tokens as a real cluster does, so a step that runs kubectl under an
//! account gets exactly what these grant. Namespaced objects without a namespace go to the step
//! group's namespace.

use crate::walk::Ctx;
use crate::yaml::Node;

/// The RBAC API version.
pub const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const KINDS: &[&str] = &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];
const SUBJECT_KINDS: &[&str] = &["ServiceAccount", "User", "Group"];

fn text<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    n.get(key).and_then(Node::as_str)
}

/// Reads and checks `fixtures.rbac` entries; each valid one is returned as JSON.
pub(super) fn read(ctx: &mut Ctx<'_>, items: &[Node]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for n in items {
        if n.as_map().is_none() {
            ctx.err(
                n.pos,
                "an rbac fixture must be a manifest (a map with apiVersion, kind, metadata)",
            );
            continue;
        }
        let mut ok = true;
        match n.get("apiVersion") {
            Some(v) if v.as_str() == Some(RBAC_API_VERSION) => {}
            Some(v) => {
                ctx.err(
                    v.pos,
                    format!("rbac fixtures must have `apiVersion: {RBAC_API_VERSION}`"),
                );
                ok = false;
            }
            None => {
                ctx.err(n.pos, "missing required field `apiVersion` in rbac fixture");
                ok = false;
            }
        }
        let kind = text(n, "kind").unwrap_or_default();
        if !KINDS.contains(&kind) {
            let at = n.get("kind").map_or(n.pos, |k| k.pos);
            ctx.err(at, format!("rbac fixture `kind` must be one of {}", KINDS.join(", ")));
            ok = false;
        }
        if n.get("metadata")
            .and_then(|m| text(m, "name"))
            .is_none_or(str::is_empty)
        {
            ctx.err(n.pos, "missing required field `metadata.name` in rbac fixture");
            ok = false;
        }
        if kind.ends_with("Binding") {
            match n.get("roleRef") {
                Some(r) => {
                    let rk = text(r, "kind").unwrap_or_default();
                    let allowed: &[&str] = if kind == "RoleBinding" {
                        &["Role", "ClusterRole"]
                    } else {
                        &["ClusterRole"]
                    };
                    if !allowed.contains(&rk) {
                        ctx.err(
                            r.pos,
                            format!("`roleRef.kind` of a {kind} must be {}", allowed.join(" or ")),
                        );
                        ok = false;
                    }
                    if text(r, "name").is_none_or(str::is_empty) {
                        ctx.err(r.pos, "missing required field `roleRef.name`");
                        ok = false;
                    }
                }
                None => {
                    ctx.err(n.pos, format!("missing required field `roleRef` in {kind} fixture"));
                    ok = false;
                }
            }
            for s in n.get("subjects").and_then(Node::as_seq).unwrap_or_default() {
                let sk = text(s, "kind").unwrap_or_default();
                if !SUBJECT_KINDS.contains(&sk) {
                    ctx.err(
                        s.pos,
                        format!("subject `kind` must be one of {}", SUBJECT_KINDS.join(", ")),
                    );
                    ok = false;
                }
                if text(s, "name").is_none_or(str::is_empty) {
                    ctx.err(s.pos, "missing required field `name` in subject");
                    ok = false;
                }
            }
        }
        if ok {
            out.push(n.to_json());
        }
    }
    out
}
