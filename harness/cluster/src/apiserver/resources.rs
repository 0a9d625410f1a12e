//! The resources the embedded API server serves, and their discovery documents.

use serde_json::{Value, json};

/// A served subresource.
#[derive(Debug)]
pub struct SubresourceDef {
    /// Name after the object name, e.g. `status`.
    pub name: &'static str,
    /// Kind of the request/response body.
    pub kind: &'static str,
    /// Discovery verbs.
    pub verbs: &'static [&'static str],
}

/// A served resource.
#[derive(Debug)]
pub struct ResourceDef {
    /// Store key: plural, or `plural.group` outside core.
    pub id: &'static str,
    /// API group (empty for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural, as in URLs.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Discovery verbs.
    pub verbs: &'static [&'static str],
    /// Discovery categories.
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [SubresourceDef],
    /// Field selector labels beyond `metadata.name`/`metadata.namespace`.
    pub field_labels: &'static [&'static str],
    /// Whether the object has a status that only the status subresource writes.
    pub has_status: bool,
    /// Whether the resource is stored (false: create-only virtual resources like `bindings`).
    pub stored: bool,
    /// Store id holding the objects (differs from `id` for a view such as events.k8s.io/v1).
    pub storage: &'static str,
}

impl ResourceDef {
    /// Whether this resource is another version's view of a stored resource.
    pub fn is_view(&self) -> bool {
        self.storage != self.id
    }

    /// The resource definition owning the stored objects.
    pub fn core(&'static self) -> &'static ResourceDef {
        if self.is_view() {
            by_id(self.storage).unwrap_or(self)
        } else {
            self
        }
    }

    /// A stored object as this resource serves it (converted, `apiVersion`/`kind` set).
    pub fn present(&self, stored: &Value) -> Value {
        if self.id == "events.events.k8s.io" {
            return super::convert::event_to_events_v1(stored);
        }
        let mut o = stored.clone();
        o["apiVersion"] = json!(self.api_version());
        o["kind"] = json!(self.kind);
        o
    }

    /// Whether [`Self::present`] would return `stored` unchanged (no conversion, `apiVersion` and
    /// `kind` already right), so it can be serialized as it is, without a copy.
    pub fn presents_as_stored(&self, stored: &Value) -> bool {
        if self.id == "events.events.k8s.io" {
            return false;
        }
        let version_ok = match stored.get("apiVersion").and_then(Value::as_str) {
            Some(v) if self.group.is_empty() => v == self.version,
            Some(v) => v.split_once('/') == Some((self.group, self.version)),
            None => false,
        };
        version_ok && stored.get("kind").and_then(Value::as_str) == Some(self.kind)
    }

    /// A request body of this resource converted to the stored representation.
    pub fn ingest(&self, body: Value) -> Value {
        if self.id == "events.events.k8s.io" {
            return super::convert::events_v1_to_event(&body);
        }
        body
    }

    /// `apiVersion` of objects of this resource.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS: SubresourceDef = SubresourceDef {
    name: "status",
    kind: "",
    verbs: &["get", "patch", "update"],
};

/// Every resource served.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        id: "bindings",
        group: "",
        version: "v1",
        plural: "bindings",
        singular: "binding",
        kind: "Binding",
        namespaced: true,
        short_names: &[],
        verbs: &["create"],
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "bindings",
        stored: false,
    },
    ResourceDef {
        id: "configmaps",
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "configmaps",
        stored: true,
    },
    ResourceDef {
        id: "events",
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        has_status: false,
        storage: "events",
        stored: true,
    },
    ResourceDef {
        id: "namespaces",
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        verbs: &["create", "delete", "get", "list", "patch", "update", "watch"],
        categories: &[],
        subresources: &[
            SubresourceDef {
                name: "finalize",
                kind: "Namespace",
                verbs: &["update"],
            },
            SubresourceDef {
                name: "status",
                kind: "Namespace",
                verbs: &["get", "patch", "update"],
            },
        ],
        field_labels: &["status.phase"],
        has_status: true,
        storage: "namespaces",
        stored: true,
    },
    ResourceDef {
        id: "nodes",
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[SubresourceDef {
            name: "status",
            kind: "Node",
            verbs: &["get", "patch", "update"],
        }],
        field_labels: &["spec.unschedulable"],
        has_status: true,
        storage: "nodes",
        stored: true,
    },
    ResourceDef {
        id: "persistentvolumeclaims",
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[SubresourceDef {
            name: "status",
            kind: "PersistentVolumeClaim",
            verbs: &["get", "patch", "update"],
        }],
        field_labels: &[],
        has_status: true,
        storage: "persistentvolumeclaims",
        stored: true,
    },
    ResourceDef {
        id: "persistentvolumes",
        group: "",
        version: "v1",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        kind: "PersistentVolume",
        namespaced: false,
        short_names: &["pv"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[SubresourceDef {
            name: "status",
            kind: "PersistentVolume",
            verbs: &["get", "patch", "update"],
        }],
        field_labels: &[],
        has_status: true,
        storage: "persistentvolumes",
        stored: true,
    },
    ResourceDef {
        id: "pods",
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        verbs: ALL_VERBS,
        categories: &["all"],
        subresources: &[
            SubresourceDef {
                name: "binding",
                kind: "Binding",
                verbs: &["create"],
            },
            SubresourceDef {
                name: "log",
                kind: "Pod",
                verbs: &["get"],
            },
            SubresourceDef {
                name: "status",
                kind: "Pod",
                verbs: &["get", "patch", "update"],
            },
        ],
        field_labels: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        has_status: true,
        storage: "pods",
        stored: true,
    },
    ResourceDef {
        id: "secrets",
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &["type"],
        has_status: false,
        storage: "secrets",
        stored: true,
    },
    ResourceDef {
        id: "serviceaccounts",
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[SubresourceDef {
            name: "token",
            kind: "TokenRequest",
            verbs: &["create"],
        }],
        field_labels: &[],
        has_status: false,
        storage: "serviceaccounts",
        stored: true,
    },
    ResourceDef {
        id: "services",
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        categories: &["all"],
        subresources: &[STATUS],
        field_labels: &[],
        has_status: true,
        storage: "services",
        stored: true,
    },
    ResourceDef {
        id: "events.events.k8s.io",
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        has_status: false,
        storage: "events",
        stored: true,
    },
    ResourceDef {
        id: "priorityclasses.scheduling.k8s.io",
        group: "scheduling.k8s.io",
        version: "v1",
        plural: "priorityclasses",
        singular: "priorityclass",
        kind: "PriorityClass",
        namespaced: false,
        short_names: &["pc"],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "priorityclasses.scheduling.k8s.io",
        stored: true,
    },
    ResourceDef {
        id: "roles.rbac.authorization.k8s.io",
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "roles.rbac.authorization.k8s.io",
        stored: true,
    },
    ResourceDef {
        id: "rolebindings.rbac.authorization.k8s.io",
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "rolebindings.rbac.authorization.k8s.io",
        stored: true,
    },
    ResourceDef {
        id: "clusterroles.rbac.authorization.k8s.io",
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "clusterroles.rbac.authorization.k8s.io",
        stored: true,
    },
    ResourceDef {
        id: "clusterrolebindings.rbac.authorization.k8s.io",
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
        field_labels: &[],
        has_status: false,
        storage: "clusterrolebindings.rbac.authorization.k8s.io",
        stored: true,
    },
];

/// Groups served under `/apis`, with their single version.
pub static GROUPS: &[(&str, &str)] = &[
    ("events.k8s.io", "v1"),
    ("scheduling.k8s.io", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
];

/// Looks a resource up by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by store id.
pub fn by_id(id: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.id == id)
}

/// `APIResourceList` of one group version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    let mut any = false;
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        any = true;
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for s in r.subresources {
            resources.push(json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            }));
        }
    }
    any.then(|| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// `APIGroup` of one group.
pub fn api_group(group: &str) -> Option<Value> {
    GROUPS.iter().find(|(g, _)| *g == group).map(|(g, v)| {
        let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv], "preferredVersion": gv})
    })
}

/// `APIGroupList` served at `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .filter_map(|(g, _)| {
            let mut v = api_group(g)?;
            let o = v.as_object_mut()?;
            o.remove("kind");
            o.remove("apiVersion");
            Some(v)
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/openapi/v3` index: one entry per served group version.
pub fn openapi_v3_index() -> Value {
    // The documents are static: hash them once.
    static INDEX: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    INDEX.get_or_init(build_openapi_v3_index).clone()
}

fn build_openapi_v3_index() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", openapi_hash("", "v1"))}),
    );
    for (g, v) in GROUPS {
        paths.insert(
            format!("apis/{g}/{v}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash={}", openapi_hash(g, v))}),
        );
    }
    json!({"paths": paths})
}

fn openapi_hash(group: &str, version: &str) -> String {
    use sha2::Digest;
    let doc = openapi_v3_group(group, version)
        .map(|d| d.to_string())
        .unwrap_or_default();
    hex::encode(sha2::Sha256::digest(doc.as_bytes())).to_uppercase()[..32].to_owned()
}

/// A minimal OpenAPI v3 document of one group version: every object path with its verbs, the
/// `x-kubernetes-group-version-kind` extension and the `fieldValidation` query parameter, which
/// is what kubectl looks for before using server-side field validation, and the schemas of the
/// served kinds (`kubectl explain`).
pub fn openapi_v3_group(group: &str, version: &str) -> Option<Value> {
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    let mut any = false;
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && r.stored)
    {
        any = true;
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let field_validation =
            json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "parameters": [field_validation],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(collection.clone(), json!({"get": op("list"), "post": op("post")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
    }
    any.then(|| {
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.37.0"},
            "paths": paths,
            "components": {"schemas": super::openapi::v3_schemas()},
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_presents_as_stored_only_when_present_would_not_change_it() {
        let pods = by_id("pods").expect("pods");
        let pcs = by_id("priorityclasses.scheduling.k8s.io").expect("priorityclasses");
        let events_v1 = by_id("events.events.k8s.io").expect("events.k8s.io");
        for (def, obj) in [
            (
                pods,
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}),
            ),
            (pods, json!({"kind": "Pod", "metadata": {"name": "a"}})),
            (pods, json!({"apiVersion": "v2", "kind": "Pod"})),
            (pods, json!({"apiVersion": "v1", "kind": "Node"})),
            (
                pcs,
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 1}),
            ),
            (pcs, json!({"apiVersion": "v1", "kind": "PriorityClass"})),
            (events_v1, json!({"apiVersion": "events.k8s.io/v1", "kind": "Event"})),
        ] {
            assert_eq!(
                def.presents_as_stored(&obj),
                def.present(&obj) == obj,
                "{} {obj}",
                def.id
            );
        }
    }
}
