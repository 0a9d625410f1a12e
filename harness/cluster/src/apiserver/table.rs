//! Output shapes chosen by the Accept header: plain objects and lists, `meta.k8s.io/v1` Tables
//! (what kubectl asks for, with kubectl's columns) and PartialObjectMetadata.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::ResourceDef;
use super::util;

/// What `includeObject` asks rows to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// PartialObjectMetadata (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// The response shape negotiated from Accept and `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The object(s) themselves.
    Plain,
    /// `meta.k8s.io/v1` Table.
    Table(Include),
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
}

impl Shape {
    /// Picks the first acceptable media type we can serve.
    pub fn negotiate(accept: &str, include_object: Option<&str>) -> Self {
        for m in accept.split(',') {
            let params: Vec<&str> = m.split(';').map(str::trim).collect();
            let has = |p: &str| params.contains(&p);
            let meta_v1 = has("g=meta.k8s.io") && has("v=v1");
            if meta_v1 && has("as=Table") {
                let inc = match include_object {
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    _ => Include::Metadata,
                };
                return Self::Table(inc);
            }
            if meta_v1 && (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList")) {
                return Self::Metadata;
            }
            if params
                .first()
                .is_some_and(|t| *t == "application/json" || *t == "*/*" || t.is_empty())
                && !params.iter().any(|p| p.starts_with("as="))
            {
                return Self::Plain;
            }
        }
        Self::Plain
    }
}

fn typed(def: &ResourceDef, obj: &Value) -> Value {
    def.present(obj)
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// One object in the negotiated shape.
pub fn render_one(def: &ResourceDef, obj: &Value, shape: Shape) -> Value {
    match shape {
        Shape::Plain => typed(def, obj),
        Shape::Metadata => partial(obj),
        Shape::Table(inc) => table(def, &[obj], None, inc),
    }
}

/// A list in the negotiated shape.
pub fn render_list(def: &ResourceDef, items: &[Arc<Value>], rv: u64, shape: Shape) -> Value {
    match shape {
        Shape::Plain => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| {
                    let mut o = def.present(o);
                    if let Some(m) = o.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    o
                })
                .collect();
            json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })
        }
        Shape::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items.iter().map(|o| partial(o)).collect::<Vec<_>>(),
        }),
        Shape::Table(inc) => {
            let refs: Vec<&Value> = items.iter().map(|o| &**o).collect();
            table(def, &refs, Some(rv), inc)
        }
    }
}

fn col(name: &str, ty: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".to_owned()
    } else {
        x.to_owned()
    }
}

fn age_of(o: &Value) -> String {
    util::age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
}

fn columns(def: &ResourceDef) -> Vec<Value> {
    let name = col("Name", "string", "name", 0, NAME_DESC);
    let age = col("Age", "string", "", 0, AGE_DESC);
    match def.storage {
        "pods" => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            col(
                "IP",
                "string",
                "",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                "",
                1,
                "Name of the Node where the pod is running, if it has been scheduled.",
            ),
            col(
                "Nominated Node",
                "string",
                "",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            col(
                "Readiness Gates",
                "string",
                "",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "events" => vec![
            col(
                "Last Seen",
                "string",
                "",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            col(
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            col(
                "Reason",
                "string",
                "",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col("Object", "string", "", 0, "The object that this event is about."),
            col(
                "Subobject",
                "string",
                "",
                1,
                "The subobject (field path) within the object that this event is about.",
            ),
            col("Source", "string", "", 1, "The component reporting this event."),
            col(
                "Message",
                "string",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                "",
                1,
                "The time at which the event was first recorded.",
            ),
            col("Count", "string", "", 1, "The number of times this event has occurred."),
            col("Name", "string", "", 1, NAME_DESC),
        ],
        "namespaces" => vec![name, col("Status", "string", "", 0, "The status of the namespace"), age],
        "nodes" => vec![
            name,
            col("Status", "string", "", 0, "The status of the node"),
            col("Roles", "string", "", 0, "The roles of the node"),
            age,
            col("Version", "string", "", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", "", 1, "List of internal IPs of the node."),
            col("External-IP", "string", "", 1, "List of external IPs of the node."),
            col(
                "OS-Image",
                "string",
                "",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                "",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                "",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "configmaps" => vec![
            name,
            col("Data", "integer", "", 0, "Data contains the configuration data."),
            age,
        ],
        "secrets" => vec![
            name,
            col(
                "Type",
                "string",
                "",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", "integer", "", 0, "Data contains the secret data."),
            age,
        ],
        "serviceaccounts" => vec![
            name,
            col(
                "Secrets",
                "integer",
                "",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        "priorityclasses.scheduling.k8s.io" => vec![
            name,
            col("Value", "integer", "", 0, "The value of this priority class."),
            col(
                "Global-Default",
                "boolean",
                "",
                0,
                "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
            ),
            age,
            col(
                "PreemptionPolicy",
                "string",
                "",
                0,
                "PreemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        "persistentvolumeclaims" => vec![
            name,
            col("Status", "string", "", 0, "The phase of the claim."),
            col("Volume", "string", "", 0, "The volume bound to the claim."),
            col("Capacity", "string", "", 0, "The capacity of the bound volume."),
            col("Access Modes", "string", "", 0, "The access modes of the claim."),
            col("StorageClass", "string", "", 0, "The storage class of the claim."),
            col(
                "VolumeAttributesClass",
                "string",
                "",
                0,
                "The volume attributes class of the claim.",
            ),
            age,
            col("VolumeMode", "string", "", 1, "The volume mode of the claim."),
        ],
        _ => vec![name, age],
    }
}

fn count_keys(o: &Value, keys: &[&str]) -> i64 {
    keys.iter()
        .filter_map(|k| o.get(*k).and_then(Value::as_object))
        .map(|m| i64::try_from(m.len()).unwrap_or(0))
        .sum()
}

fn cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    match def.storage {
        "pods" => pod_cells(o),
        "events" => event_cells(o),
        "namespaces" => vec![name, json!(s(o, "/status/phase")), json!(age_of(o))],
        "nodes" => node_cells(o),
        "configmaps" => vec![name, json!(count_keys(o, &["data", "binaryData"])), json!(age_of(o))],
        "secrets" => vec![
            name,
            json!(s(o, "/type")),
            json!(count_keys(o, &["data"])),
            json!(age_of(o)),
        ],
        "serviceaccounts" => {
            let n = o.get("secrets").and_then(Value::as_array).map_or(0, Vec::len);
            vec![name, json!(n), json!(age_of(o))]
        }
        "priorityclasses.scheduling.k8s.io" => vec![
            name,
            o.get("value").cloned().unwrap_or(json!(0)),
            json!(o.get("globalDefault").and_then(Value::as_bool).unwrap_or(false)),
            json!(age_of(o)),
            json!(s(o, "/preemptionPolicy")),
        ],
        "persistentvolumeclaims" => {
            let modes: Vec<&str> = o
                .pointer("/status/accessModes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect();
            vec![
                name,
                json!(s(o, "/status/phase")),
                json!(s(o, "/spec/volumeName")),
                json!(s(o, "/status/capacity/storage")),
                json!(modes.join(",")),
                json!(or_none(s(o, "/spec/storageClassName"))),
                json!(or_none(s(o, "/spec/volumeAttributesClassName"))),
                json!(age_of(o)),
                json!(s(o, "/spec/volumeMode")),
            ]
        }
        _ => vec![name, json!(age_of(o))],
    }
}

fn table(def: &ResourceDef, items: &[&Value], rv: Option<u64>, inc: Include) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, o)});
            match inc {
                Include::None => {}
                Include::Metadata => row["object"] = partial(o),
                Include::Object => row["object"] = typed(def, o),
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns(def),
        "rows": rows,
    })
}

/// Seconds since the latest `lastState.terminated.finishedAt` seen, if any.
fn latest(cur: Option<i64>, ts: &str) -> Option<i64> {
    match (cur, util::parse_time(ts)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn exit_reason(prefix: &str, term: &Value) -> String {
    let reason = s(term, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = term.get("signal").and_then(Value::as_i64).unwrap_or(0);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!(
            "{prefix}ExitCode:{}",
            term.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
        )
    }
}

/// kubectl's pod row: NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES.
fn pod_cells(o: &Value) -> Vec<Value> {
    let arr = |p: &str| o.pointer(p).and_then(Value::as_array).cloned().unwrap_or_default();
    let spec_init = arr("/spec/initContainers");
    let init_statuses = arr("/status/initContainerStatuses");
    let statuses = arr("/status/containerStatuses");
    let conditions = arr("/status/conditions");
    let cond_true = |t: &str| {
        conditions
            .iter()
            .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
    };
    let sidecar = |name: &str| {
        spec_init
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    let mut total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<i64> = None;
    let mut reason = s(o, "/status/phase").to_owned();
    if !s(o, "/status/reason").is_empty() {
        reason = s(o, "/status/reason").to_owned();
    }
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }
    for c in &spec_init {
        if s(c, "/restartPolicy") == "Always" {
            total += 1;
        }
    }
    let mut initializing = false;
    for (i, st) in init_statuses.iter().enumerate() {
        let count = st.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        restarts += count;
        if let Some(t) = st.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str) {
            last_restart = latest(last_restart, t);
        }
        let is_sidecar = sidecar(s(st, "/name"));
        if is_sidecar {
            sidecar_restarts += count;
            if st.get("started").and_then(Value::as_bool) == Some(true)
                && st.get("ready").and_then(Value::as_bool) == Some(true)
            {
                ready += 1;
            }
        }
        let term = st.pointer("/state/terminated");
        let waiting_reason = s(st, "/state/waiting/reason");
        if term.is_some_and(|t| t.get("exitCode").and_then(Value::as_i64) == Some(0)) {
            continue;
        }
        if is_sidecar && st.get("started").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        reason = match term {
            Some(t) => exit_reason("Init:", t),
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                format!("Init:{waiting_reason}")
            }
            None => format!("Init:{i}/{}", spec_init.len()),
        };
        initializing = true;
        break;
    }
    if !initializing || cond_true("Initialized") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for st in statuses.iter().rev() {
            restarts += st.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            if let Some(t) = st.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str) {
                last_restart = latest(last_restart, t);
            }
            let waiting_reason = s(st, "/state/waiting/reason");
            let term = st.pointer("/state/terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(t) = term {
                reason = exit_reason("", t);
            } else if st.get("ready").and_then(Value::as_bool) == Some(true) && st.pointer("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if cond_true("Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }
    let terminal = matches!(s(o, "/status/phase"), "Succeeded" | "Failed");
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        if s(o, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_owned();
        } else if !terminal {
            reason = "Terminating".to_owned();
        }
    }
    let restarts_cell = match last_restart {
        Some(t) => {
            let now = util::parse_time(&util::now_time()).unwrap_or(t);
            format!("{restarts} ({} ago)", util::human_duration(now - t))
        }
        None => restarts.to_string(),
    };
    let ips: Vec<String> = match o.pointer("/status/podIPs").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a.iter().map(|i| s(i, "/ip").to_owned()).collect(),
        _ => vec![s(o, "/status/podIP").to_owned()],
    };
    let gates = o
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let gates_cell = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let true_count = gates.iter().filter(|g| cond_true(s(g, "/conditionType"))).count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age_of(o)),
        json!(or_none(&ips.join(","))),
        json!(or_none(s(o, "/spec/nodeName"))),
        json!(or_none(s(o, "/status/nominatedNodeName"))),
        json!(gates_cell),
    ]
}

/// kubectl's event row: LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME.
fn event_cells(o: &Value) -> Vec<Value> {
    let since = |ts: &str| {
        if ts.is_empty() {
            "<unknown>".to_owned()
        } else {
            util::age(Some(ts))
        }
    };
    let first_ts = if s(o, "/firstTimestamp").is_empty() {
        s(o, "/eventTime")
    } else {
        s(o, "/firstTimestamp")
    };
    let first = since(first_ts);
    let mut last = if s(o, "/lastTimestamp").is_empty() {
        first.clone()
    } else {
        since(s(o, "/lastTimestamp"))
    };
    let mut count = o.get("count").and_then(Value::as_i64).unwrap_or(0);
    if o.get("series").is_some_and(Value::is_object) {
        last = since(s(o, "/series/lastObservedTime"));
        count = o.pointer("/series/count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(o, "/involvedObject/kind").to_lowercase();
    let name = s(o, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let (component, host) = if s(o, "/source/component").is_empty() {
        (s(o, "/reportingComponent"), s(o, "/reportingInstance"))
    } else {
        (s(o, "/source/component"), s(o, "/source/host"))
    };
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(s(o, "/type")),
        json!(s(o, "/reason")),
        json!(target),
        json!(s(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(o, "/message").trim()),
        json!(first),
        json!(count),
        json!(s(o, "/metadata/name")),
    ]
}

/// kubectl's node row.
fn node_cells(o: &Value) -> Vec<Value> {
    let conditions = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status = match conditions.iter().find(|c| s(c, "/type") == "Ready") {
        Some(c) if s(c, "/status") == "True" => "Ready".to_owned(),
        Some(c) if s(c, "/status") == "False" => "NotReady".to_owned(),
        _ => "Unknown".to_owned(),
    };
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                Some(r.to_owned())
            } else if k == "kubernetes.io/role" {
                v.as_str().map(str::to_owned)
            } else {
                None
            }
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let addr = |t: &str| {
        o.pointer("/status/addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| s(a, "/type") == t)
            .map(|a| s(a, "/address").to_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(status),
        json!(or_none(&roles.join(","))),
        json!(age_of(o)),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(or_none(&addr("InternalIP"))),
        json!(or_none(&addr("ExternalIP"))),
        json!(or_none(s(o, "/status/nodeInfo/osImage"))),
        json!(or_none(s(o, "/status/nodeInfo/kernelVersion"))),
        json!(or_none(s(o, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(Shape::negotiate(kubectl, None), Shape::Table(Include::Metadata));
        assert_eq!(Shape::negotiate("application/json", None), Shape::Plain);
        assert_eq!(Shape::negotiate("", None), Shape::Plain);
        assert_eq!(
            Shape::negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", None),
            Shape::Metadata
        );
    }

    #[test]
    fn pod_row() {
        let p = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let c = pod_cells(&p);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "1");
        let init = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]},
        });
        assert_eq!(pod_cells(&init)[2], "Init:0/1");
    }
}
