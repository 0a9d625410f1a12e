//! Defaulting, admission and validation, applied on create like a real API server's chain
//! (v1 defaulting, NamespaceLifecycle, ServiceAccount, Priority, DefaultTolerationSeconds, pod
//! strategy).

mod validation;

use serde_json::{Map, Value, json};

pub use validation::validate_name;
use validation::{NameRule, cause, invalid, name_errors, validate_pod};

use super::status::{ApiError, GroupResource};
use super::store::Txn;
use super::util;

/// Mount path of the service-account token volume.
const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Which admission plugins run on pod create.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// ServiceAccount: default `serviceAccountName`, require the account, mount the token volume.
    pub service_account: bool,
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_owned(), value);
    }
}

/// `IfNotPresent` unless the image has no tag or the tag `latest` (digests: `IfNotPresent`).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_probe(p: &mut Value) {
    let Some(m) = p.as_object_mut() else { return };
    set_default(m, "timeoutSeconds", json!(1));
    set_default(m, "periodSeconds", json!(10));
    set_default(m, "successThreshold", json!(1));
    set_default(m, "failureThreshold", json!(3));
    if let Some(h) = m.get_mut("httpGet") {
        default_http_get(h);
    }
    if let Some(g) = m.get_mut("grpc").and_then(Value::as_object_mut) {
        set_default(g, "service", json!(""));
    }
}

fn default_env(env: &mut Value) {
    for e in env.as_array_mut().into_iter().flatten() {
        if let Some(f) = e.pointer_mut("/valueFrom/fieldRef").and_then(Value::as_object_mut) {
            set_default(f, "apiVersion", json!("v1"));
        }
        if let Some(f) = e
            .pointer_mut("/valueFrom/resourceFieldRef")
            .and_then(Value::as_object_mut)
        {
            set_default(f, "divisor", json!("0"));
        }
    }
}

fn default_http_get(h: &mut Value) {
    if let Some(h) = h.as_object_mut() {
        set_default(h, "path", json!("/"));
        set_default(h, "scheme", json!("HTTP"));
    }
}

fn default_resources(m: &mut Map<String, Value>) {
    let r = m.entry("resources").or_insert_with(|| json!({}));
    if let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() {
        let req = obj_mut(r, "requests");
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

fn default_container(c: &mut Value) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(m) = c.as_object_mut() else { return };
    set_default(m, "imagePullPolicy", json!(default_pull_policy(&image)));
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    default_resources(m);
    for p in m.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(p) = p.as_object_mut() {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    if let Some(env) = m.get_mut("env") {
        default_env(env);
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe) {
            default_probe(p);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = m
            .get_mut("lifecycle")
            .and_then(|l| l.get_mut(hook))
            .and_then(|h| h.get_mut("httpGet"))
        {
            default_http_get(h);
        }
    }
}

fn default_volume(v: &mut Value) {
    let Some(m) = v.as_object_mut() else { return };
    for key in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(s) = m.get_mut(key).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = m.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(h, "type", json!(""));
    }
    if let Some(items) = m.get_mut("downwardAPI").and_then(|d| d.get_mut("items")) {
        default_env_like_items(items);
    }
    for src in m
        .get_mut("projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(t) = src.get_mut("serviceAccountToken").and_then(Value::as_object_mut) {
            set_default(t, "expirationSeconds", json!(3600));
        }
        if let Some(items) = src.get_mut("downwardAPI").and_then(|d| d.get_mut("items")) {
            default_env_like_items(items);
        }
    }
}

fn default_env_like_items(items: &mut Value) {
    for i in items.as_array_mut().into_iter().flatten() {
        if let Some(f) = i.get_mut("fieldRef").and_then(Value::as_object_mut) {
            set_default(f, "apiVersion", json!("v1"));
        }
        if let Some(f) = i.get_mut("resourceFieldRef").and_then(Value::as_object_mut) {
            set_default(f, "divisor", json!("0"));
        }
    }
}

/// Parses a resource quantity (`100m`, `1Gi`, `2`, `1e3`) to a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// The pod's QoS class (BestEffort, Burstable, Guaranteed) from its (defaulted) containers.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&Map<String, Value>>, k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .and_then(parse_quantity)
                .filter(|q| *q != 0.0)
        };
        for k in ["cpu", "memory"] {
            let (r, l) = (relevant(req, k), relevant(lim, k));
            any |= r.is_some() || l.is_some();
            match (r, l) {
                (Some(r), Some(l)) if (r - l).abs() < f64::EPSILON * l.abs().max(1.0) => {}
                (None, Some(_)) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn forbidden(name: &str, detail: String) -> ApiError {
    ApiError::Forbidden {
        resource: GroupResource::new("", "pods"),
        name: name.to_owned(),
        detail,
    }
}

/// Defaults, admits and validates a pod being created in `ns` (metadata already named).
pub fn admit_pod(txn: &Txn<'_>, ns: &str, pod: &mut Value, adm: Admission) -> Result<(), ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let spec = obj_mut(pod, "spec");
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    // `serviceAccount` is the deprecated alias of `serviceAccountName`.
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
        && let Some(sa) = spec
            .get("serviceAccount")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    {
        spec.insert("serviceAccountName".into(), json!(sa));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            default_container(c);
        }
    }
    for v in spec
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        default_volume(v);
    }
    if let Some(limits) = spec.get("resources").and_then(|r| r.get("limits")).cloned()
        && let Some(r) = spec.get_mut("resources")
        && let (Some(limits), Some(req)) = (limits.as_object(), Some(obj_mut(r, "requests")))
    {
        for (k, v) in limits {
            req.entry(k.clone()).or_insert(v.clone());
        }
    }

    // ServiceAccount admission.
    let spec = obj_mut(pod, "spec");
    if adm.service_account {
        let sa_name = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        let Some(sa) = txn.get("serviceaccounts", ns, &sa_name) else {
            return Err(forbidden(
                &name,
                format!("error looking up service account {ns}/{sa_name}: serviceaccount {sa_name:?} not found"),
            ));
        };
        spec.insert("serviceAccountName".into(), json!(sa_name));
        let automount = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| sa.get("automountServiceAccountToken").and_then(Value::as_bool))
            .unwrap_or(true);
        if automount {
            mount_token(spec);
        }
    } else {
        set_default(spec, "serviceAccountName", json!("default"));
    }
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        spec.insert("serviceAccount".into(), sa);
    }

    // Priority admission.
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let found = match class {
        Some(c) => match txn.get("priorityclasses.scheduling.k8s.io", "", c) {
            Some(pc) => Some(pc),
            None => {
                return Err(forbidden(&name, format!("no PriorityClass with name {c} was found")));
            }
        },
        None => txn
            .list("priorityclasses.scheduling.k8s.io", None)
            .into_iter()
            .find(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true)),
    };
    let (priority, policy) = match &found {
        Some(pc) => (
            pc.get("value").cloned().unwrap_or(json!(0)),
            pc.get("preemptionPolicy")
                .cloned()
                .unwrap_or(json!("PreemptLowerPriority")),
        ),
        None => (json!(0), json!("PreemptLowerPriority")),
    };
    spec.insert("priority".into(), priority);
    set_default(spec, "preemptionPolicy", policy);

    // DefaultTolerationSeconds admission.
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let arr = tolerations.as_array_mut().expect("tolerations is an array");
        let covered = arr.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or_default();
            let e = t.get("effect").and_then(Value::as_str).unwrap_or_default();
            let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
            (k == key || (k.is_empty() && exists)) && (e.is_empty() || e == "NoExecute")
        });
        if !covered {
            arr.push(json!({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}));
        }
    }

    let mut errs = name_errors(&name, NameRule::Subdomain)
        .into_iter()
        .map(|d| {
            cause(
                "FieldValueInvalid",
                "metadata.name".into(),
                format!("Invalid value: {name:?}: {d}"),
            )
        })
        .collect::<Vec<_>>();
    errs.extend(validate_pod(pod));
    if !errs.is_empty() {
        return Err(invalid("Pod", &name, errs));
    }

    // Pod strategy: status reset, generation.
    let qos = qos_class(pod.get("spec").unwrap_or(&Value::Null));
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    pod["metadata"]["generation"] = json!(1);
    Ok(())
}

fn mount_token(spec: &mut Map<String, Value>) {
    let mounted = ["initContainers", "containers"].iter().any(|list| {
        spec.get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("volumeMounts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(SA_MOUNT))
            })
    });
    if mounted {
        return;
    }
    let vol_name = format!("kube-api-access-{}", util::random_suffix(5));
    let volume = json!({
        "name": vol_name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
            ],
        },
    });
    let vols = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(a) = vols.as_array_mut() {
        a.push(volume);
    }
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let mounts = c
                .as_object_mut()
                .map(|m| m.entry("volumeMounts").or_insert_with(|| json!([])));
            if let Some(a) = mounts.and_then(Value::as_array_mut) {
                a.push(json!({"mountPath": SA_MOUNT, "name": vol_name, "readOnly": true}));
            }
        }
    }
}

/// Defaults a namespace being created.
pub fn admit_namespace(ns: &mut Value) {
    let name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let labels = obj_mut(obj_mut_value(ns, "metadata"), "labels");
    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    let spec = obj_mut(ns, "spec");
    set_default(spec, "finalizers", json!(["kubernetes"]));
    ns["status"] = json!({"phase": "Active"});
}

fn obj_mut_value<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    obj_mut(v, key);
    &mut v[key]
}

/// Placeholder CA bundle published as `kube-root-ca.crt` by a server without a listener (and so
/// without a CA: the fuzzer's and in-process tests' router).
pub const ROOT_CA_PLACEHOLDER: &str = "# sgsim in-process API server: no listener, no cluster CA\n";

/// Generic defaults for other kinds.
pub fn admit_other(kind: &str, obj: &mut Value) {
    match kind {
        "Secret" => {
            if let Some(m) = obj.as_object_mut() {
                // SetDefaults_Secret: an empty type is Opaque too.
                if m.get("type").and_then(Value::as_str) == Some("") {
                    m.remove("type");
                }
                set_default(m, "type", json!("Opaque"));
            }
        }
        "Event" => {
            // Fields core/v1 Event always serializes (Go zero values).
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "involvedObject", json!({}));
                set_default(m, "source", json!({}));
                for k in ["firstTimestamp", "lastTimestamp", "eventTime"] {
                    m.entry(k).or_insert(Value::Null);
                }
                for k in ["reportingComponent", "reportingInstance"] {
                    set_default(m, k, json!(""));
                }
            }
        }
        "PriorityClass" => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        "PersistentVolumeClaim" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "volumeMode", json!("Filesystem"));
            obj["status"] = json!({"phase": "Pending"});
        }
        "Service" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_defaults() {
        let mut c = json!({
            "name": "c", "image": "busybox:1.36",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
            "readinessProbe": {"httpGet": {"port": 80}},
            "resources": {"limits": {"cpu": "1"}},
        });
        default_container(&mut c);
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"], "0");
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(c["terminationMessagePolicy"], "File");
    }

    #[test]
    fn pull_policy() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("a/b@sha256:00"), "IfNotPresent");
    }

    #[test]
    fn qos() {
        assert_eq!(qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
