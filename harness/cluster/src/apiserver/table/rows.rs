//! Table row cells per resource, computed as kubectl's printers do (pod READY/STATUS/RESTARTS,
//! event and node rows, ages).

use serde_json::{Value, json};

use crate::apiserver::resources::ResourceDef;
use crate::apiserver::util;

pub(super) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

pub(super) fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".to_owned()
    } else {
        x.to_owned()
    }
}

pub(super) fn age_of(o: &Value) -> String {
    util::age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
}

pub(super) fn count_keys(o: &Value, keys: &[&str]) -> i64 {
    keys.iter()
        .filter_map(|k| o.get(*k).and_then(Value::as_object))
        .map(|m| i64::try_from(m.len()).unwrap_or(0))
        .sum()
}

pub(super) fn cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
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

/// Seconds since the latest `lastState.terminated.finishedAt` seen, if any.
pub(super) fn latest(cur: Option<i64>, ts: &str) -> Option<i64> {
    match (cur, util::parse_time(ts)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub(super) fn exit_reason(prefix: &str, term: &Value) -> String {
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
pub(super) fn pod_cells(o: &Value) -> Vec<Value> {
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
pub(super) fn event_cells(o: &Value) -> Vec<Value> {
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
pub(super) fn node_cells(o: &Value) -> Vec<Value> {
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
