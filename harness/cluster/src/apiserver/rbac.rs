//! Authorization as Kubernetes' RBAC authorizer decides it, for the requests a ServiceAccount
//! token makes (sgsim's own token is the cluster admin). Request attributes follow the API
//! server's `RequestInfo` (verb from method, name and `watch`; namespace, resource, name and
//! subresource from the path); a request is allowed when a RoleBinding in its namespace or a
//! ClusterRoleBinding names the account (or one of its groups) and the role it refers to has a
//! matching rule. Non-resource paths (discovery, `/version`, `/openapi`) and self reviews are
//! allowed to every authenticated user, as the bootstrap roles `system:discovery`,
//! `system:public-info-viewer` and `system:basic-user` grant. A denial is Kubernetes' Forbidden,
//! word for word (`responsewriters.ForbiddenStatusError`, `forbiddenMessage`), with
//! `RBAC: role.rbac.authorization.k8s.io "x" not found` appended when a binding refers to a
//! role that does not exist.

use serde_json::Value;

use super::app::App;
use super::status::{ApiError, GroupResource};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum User {
    /// sgsim's own token: allowed everything.
    Admin,
    /// A ServiceAccount token.
    ServiceAccount {
        /// The account's namespace.
        namespace: String,
        /// The account's name.
        name: String,
    },
}

impl User {
    fn name(&self) -> String {
        match self {
            User::Admin => "system:admin".into(),
            User::ServiceAccount { namespace, name } => format!("system:serviceaccount:{namespace}:{name}"),
        }
    }

    fn groups(&self) -> Vec<String> {
        match self {
            User::Admin => vec!["system:masters".into(), "system:authenticated".into()],
            User::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// The attributes of a request an authorizer decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// Whether the path names a resource (else a non-resource URL such as `/api`).
    pub resource_request: bool,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`log`, `status`, `token`, …).
    pub subresource: String,
    /// Namespace (empty: cluster scope).
    pub namespace: String,
    /// Object name (empty for collections).
    pub name: String,
    /// The request path.
    pub path: String,
}

/// Namespace subresources: `/api/v1/namespaces/{ns}/status` addresses the namespace itself.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The attributes of `method path?query`, as Kubernetes' `RequestInfoFactory` derives them.
pub(crate) fn attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let mut a = Attributes {
        path: path.to_owned(),
        verb: method.to_ascii_lowercase(),
        ..Attributes::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", group, _version, rest @ ..] => {
            a.group = (*group).to_owned();
            rest
        }
        _ => &[],
    };
    if rest.is_empty() {
        return a;
    }
    a.resource_request = true;
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        a.namespace = rest[1].to_owned();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    a.resource = rest[0].to_owned();
    a.name = rest.get(1).map(|s| (*s).to_owned()).unwrap_or_default();
    a.subresource = rest.get(2).map(|s| (*s).to_owned()).unwrap_or_default();
    let watch = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True" | "watch"))
    });
    a.verb = match (method, a.name.is_empty()) {
        ("GET" | "HEAD", _) if watch => "watch",
        ("GET" | "HEAD", true) => "list",
        ("GET" | "HEAD", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        (other, _) => {
            return Attributes {
                verb: other.to_ascii_lowercase(),
                ..a
            };
        }
    }
    .to_owned();
    a
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Whether one PolicyRule allows `a` (resource requests only).
fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let resources = strings(rule, "resources");
    let resource_ok = if a.subresource.is_empty() {
        has(&resources, &a.resource)
    } else {
        let combined = format!("{}/{}", a.resource, a.subresource);
        resources
            .iter()
            .any(|r| r == "*" || *r == combined || *r == format!("*/{}", a.subresource))
    };
    let names = strings(rule, "resourceNames");
    has(&strings(rule, "verbs"), &a.verb)
        && has(&strings(rule, "apiGroups"), &a.group)
        && resource_ok
        && (names.is_empty() || (!a.name.is_empty() && names.contains(&a.name)))
}

fn subject_matches(subject: &Value, user: &User, groups: &[String], binding_ns: &str) -> bool {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = subject.get("name").and_then(Value::as_str).unwrap_or_default();
    match (kind, user) {
        ("ServiceAccount", User::ServiceAccount { namespace, name: sa }) => {
            let ns = subject.get("namespace").and_then(Value::as_str).unwrap_or(binding_ns);
            ns == namespace && name == sa
        }
        ("User", _) => name == user.name(),
        ("Group", _) => groups.iter().any(|g| g == name),
        _ => false,
    }
}

/// Checks `a` for `user`: `Ok` when allowed, else Kubernetes' Forbidden.
pub(crate) fn authorize(app: &App, user: &User, a: &Attributes) -> Result<(), ApiError> {
    if *user == User::Admin || !a.resource_request {
        return Ok(());
    }
    if a.verb == "create"
        && ((a.group == "authorization.k8s.io"
            && matches!(
                a.resource.as_str(),
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ))
            || (a.group == "authentication.k8s.io" && a.resource == "selfsubjectreviews"))
    {
        return Ok(());
    }
    let groups = user.groups();
    let mut missing: Vec<String> = Vec::new();
    let (bindings, cluster_bindings) = app.store.transact(|t| {
        let rb = if a.namespace.is_empty() {
            Vec::new()
        } else {
            t.list("rolebindings.rbac.authorization.k8s.io", Some(&a.namespace))
        };
        (rb, t.list("clusterrolebindings.rbac.authorization.k8s.io", None))
    });
    let mut allowed = false;
    for (binding, namespaced) in bindings
        .iter()
        .map(|b| (b, true))
        .chain(cluster_bindings.iter().map(|b| (b, false)))
    {
        let binding_ns = binding
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let subjects = binding
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, &groups, binding_ns)) {
            continue;
        }
        let kind = binding
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role_name = binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = app.store.transact(|t| match kind {
            "Role" if namespaced => t.get("roles.rbac.authorization.k8s.io", binding_ns, role_name),
            "ClusterRole" => t.get("clusterroles.rbac.authorization.k8s.io", "", role_name),
            _ => None,
        });
        let Some(role) = role else {
            let what = if kind == "Role" { "role" } else { "clusterrole" };
            missing.push(format!("{what}.{RBAC_GROUP} {role_name:?} not found"));
            continue;
        };
        let rules = role.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
        if rules.iter().any(|r| rule_allows(r, a)) {
            allowed = true;
            break;
        }
    }
    if allowed {
        return Ok(());
    }
    Err(forbidden(user, a, &missing))
}

/// Kubernetes' Forbidden for a denied request (`forbiddenMessage` + the RBAC reason).
fn forbidden(user: &User, a: &Attributes, missing: &[String]) -> ApiError {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let mut detail = if a.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            user.name(),
            a.verb,
            a.group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            user.name(),
            a.verb,
            a.group,
            a.namespace
        )
    };
    match missing {
        [] => {}
        [one] => detail.push_str(&format!(": RBAC: {one}")),
        many => detail.push_str(&format!(": RBAC: [{}]", many.join(", "))),
    }
    ApiError::Forbidden {
        resource: GroupResource::new(&a.group, &a.resource),
        name: a.name.clone(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_attributes_follow_kubernetes_request_info() {
        let a = attributes("GET", "/api/v1/namespaces/ns/pods", Some("limit=500"));
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
            ("list", "pods", "ns")
        );
        let a = attributes(
            "GET",
            "/api/v1/namespaces/ns/pods",
            Some("watch=true&resourceVersion=1"),
        );
        assert_eq!(a.verb, "watch");
        let a = attributes("GET", "/api/v1/namespaces/ns/pods/p/log", None);
        assert_eq!(
            (a.verb.as_str(), a.name.as_str(), a.subresource.as_str()),
            ("get", "p", "log")
        );
        let a = attributes("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles", None);
        assert_eq!((a.verb.as_str(), a.group.as_str()), ("deletecollection", RBAC_GROUP));
        let a = attributes("GET", "/api/v1/namespaces/ns", None);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "ns", "ns")
        );
        let a = attributes("GET", "/api/v1/nodes", None);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
        assert!(!attributes("GET", "/api/v1", None).resource_request);
        assert!(!attributes("GET", "/version", None).resource_request);
    }

    #[test]
    fn the_forbidden_message_is_kubernetes_own() {
        let sa = User::ServiceAccount {
            namespace: "ns".into(),
            name: "sa".into(),
        };
        let e = forbidden(&sa, &attributes("GET", "/api/v1/namespaces/ns/pods", None), &[]);
        assert_eq!(
            e.to_string(),
            r#"pods is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "pods" in API group "" in the namespace "ns""#
        );
        let e = forbidden(&sa, &attributes("GET", "/api/v1/namespaces/ns/pods/p/log", None), &[]);
        assert_eq!(
            e.to_string(),
            r#"pods "p" is forbidden: User "system:serviceaccount:ns:sa" cannot get resource "pods/log" in API group "" in the namespace "ns""#
        );
        let e = forbidden(
            &sa,
            &attributes("GET", "/api/v1/nodes", None),
            &[r#"role.rbac.authorization.k8s.io "r" not found"#.to_owned()],
        );
        assert_eq!(
            e.to_string(),
            r#"nodes is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "nodes" in API group "" at the cluster scope: RBAC: role.rbac.authorization.k8s.io "r" not found"#
        );
        assert_eq!(e.code().as_u16(), 403);
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let rule = serde_json::json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]});
        assert!(rule_allows(
            &rule,
            &attributes("GET", "/api/v1/namespaces/n/pods", None)
        ));
        assert!(rule_allows(
            &rule,
            &attributes("GET", "/api/v1/namespaces/n/pods/p/log", None)
        ));
        assert!(!rule_allows(
            &rule,
            &attributes("DELETE", "/api/v1/namespaces/n/pods/p", None)
        ));
        assert!(!rule_allows(
            &rule,
            &attributes("GET", "/api/v1/namespaces/n/pods?watch=1", Some("watch=1"))
        ));
        assert!(!rule_allows(
            &rule,
            &attributes("GET", "/api/v1/namespaces/n/secrets", None)
        ));
        let named = serde_json::json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"], "resourceNames": ["x"]});
        assert!(rule_allows(
            &named,
            &attributes("GET", "/api/v1/namespaces/n/configmaps/x", None)
        ));
        assert!(!rule_allows(
            &named,
            &attributes("GET", "/api/v1/namespaces/n/configmaps", None)
        ));
    }
}
