//! The scheduler: binds pending pods (empty `spec.nodeName`, scheduler `default-scheduler`) to a
//! node that passes Kubernetes' default filters, in the order the default profile runs them:
//! NodeUnschedulable, TaintToleration (NoSchedule/NoExecute), NodeAffinity (nodeSelector and
//! required node affinity), NodeResourcesFit (requests vs allocatable minus the requests of the
//! node's other pods). Preemption is not implemented; its message is, as Kubernetes words it when
//! it finds nothing to preempt.
//!
//! On success: `pods/{name}/binding`, then Event `Scheduled`. On failure: Warning
//! `FailedScheduling` with the `0/N nodes are available: ...` message
//! ([`crate::k8s::messages::K8sMessages::fit_error`]) and `PodScheduled=False` (reason
//! `Unschedulable`), retried whenever pods or nodes change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{
    Binding, Node, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, PersistentVolumeClaim, Pod, Taint,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::k8s::events::{EventType, Recorder, pod_ref};
use crate::k8s::messages::{self, K8sMessages, truncate_event_message};
use crate::k8s::resources::{milli, pod_requests};

/// The scheduler's name (`spec.schedulerName` it serves, event source).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A call to the API server failed.
    #[error("api server: {what}")]
    Api {
        /// What the scheduler was doing.
        what: String,
        /// The kube client error.
        #[source]
        source: kube::Error,
    },
}

impl SchedulerError {
    /// `map_err` adapter: an API server error while doing `what`.
    fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> SchedulerError {
        let what = what.into();
        move |source| SchedulerError::Api { what, source }
    }
}

/// A running scheduler; dropping it stops the scheduler.
#[derive(Debug)]
pub struct SchedulerHandle {
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<(), SchedulerError>>>,
}

impl SchedulerHandle {
    /// Stop the scheduler and wait for it.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Spawn the scheduler with the default Kubernetes strings.
pub fn spawn_scheduler(client: kube::Client) -> SchedulerHandle {
    spawn_scheduler_with(client, messages::DEFAULT)
}

/// Spawn the scheduler wording its events as the given Kubernetes generation.
pub fn spawn_scheduler_with(client: kube::Client, messages: &'static K8sMessages) -> SchedulerHandle {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_scheduler(client, messages, cancel.clone()));
    SchedulerHandle {
        cancel,
        task: Some(task),
    }
}

/// Run the scheduler until `shutdown` is cancelled.
pub async fn run_scheduler(
    client: kube::Client,
    messages: &'static K8sMessages,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    // Pods come from a watch-fed cache (kube-scheduler's informer), never from a list per cycle:
    // a list of every pod on every pod event made the work grow with pods × events.
    let (pod_cache, pod_writer) = kube::runtime::reflector::store::<Pod>();
    let mut pod_watch = kube::runtime::reflector(pod_writer, kube::runtime::watcher(pods, Default::default())).boxed();
    let mut node_watch = kube::runtime::watcher(nodes, Default::default()).boxed();
    let (mut pw, mut nw) = (true, true);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = State {
        recorder: Recorder {
            component: SCHEDULER_NAME.into(),
            host: None,
            instance: format!("{SCHEDULER_NAME}-sgsim"),
            action: None,
            recorded: Default::default(),
        },
        reported: HashMap::new(),
        assumed: HashMap::new(),
        messages,
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            ev = pod_watch.next(), if pw => match ev {
                None => pw = false,
                Some(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Some(Ok(_)) => {}
            },
            ev = node_watch.next(), if nw => match ev {
                None => nw = false,
                Some(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {}
        }
        // One cycle for every change already delivered, not one per change.
        for _ in 0..DRAIN_MAX {
            let more = [
                pw && matches!(pod_watch.next().now_or_never(), Some(Some(Ok(_)))),
                nw && matches!(node_watch.next().now_or_never(), Some(Some(Ok(_)))),
            ];
            if !more.contains(&true) {
                break;
            }
        }
        let all = pod_cache.state();
        if let Err(e) = schedule_pending(&client, &mut state, &all).await {
            tracing::debug!(error = %e, "scheduling cycle failed");
        }
    }
}

/// At most this many delivered changes are taken into one cycle.
const DRAIN_MAX: usize = 4096;

struct State {
    recorder: Recorder,
    /// Last FailedScheduling message per pod uid (one event per distinct message).
    reported: HashMap<String, String>,
    /// Pods this scheduler bound that the cache does not show bound yet: uid → (node, pod).
    /// They count on their node and are not scheduled again (kube-scheduler's assumed pods).
    assumed: HashMap<String, (String, Arc<Pod>)>,
    messages: &'static K8sMessages,
}

/// One pass over the cache: try every pending pod.
async fn schedule_pending(client: &kube::Client, state: &mut State, all: &[Arc<Pod>]) -> Result<(), SchedulerError> {
    // Forget assumptions the cache has caught up with (bound, ended or gone).
    let mut still: HashMap<String, (String, Arc<Pod>)> = HashMap::new();
    for p in all {
        if let Some(uid) = p.metadata.uid.as_deref()
            && is_pending(p)
            && let Some(a) = state.assumed.remove(uid)
        {
            still.insert(uid.to_string(), a);
        }
    }
    state.assumed = still;
    let mut pending: Vec<Arc<Pod>> = all
        .iter()
        .filter(|p| is_pending(p) && !p.metadata.uid.as_ref().is_some_and(|u| state.assumed.contains_key(u)))
        .cloned()
        .collect();
    if pending.is_empty() {
        state.reported.clear();
        return Ok(());
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let node_list = nodes
        .list(&ListParams::default())
        .await
        .map_err(SchedulerError::api("list nodes"))?
        .items;
    if node_list.is_empty() {
        // Kubernetes would report `no nodes available to schedule pods`; sgsim starts its nodes
        // before any pod, so an empty list only means "not registered yet": wait quietly.
        return Ok(());
    }
    // Requests already placed on each node: bound pods, and the pods assumed on it.
    let mut used: HashMap<String, (BTreeMap<String, i128>, i64)> = HashMap::new();
    let placed = all
        .iter()
        .filter(|p| !is_terminal(p))
        .filter_map(|p| {
            Some((
                p.spec.as_ref()?.node_name.clone().filter(|n| !n.is_empty())?,
                p.as_ref(),
            ))
        })
        .chain(state.assumed.values().map(|(n, p)| (n.clone(), p.as_ref())));
    for (node, p) in placed {
        let e = used.entry(node).or_default();
        for (k, v) in pod_requests(p) {
            *e.0.entry(k).or_default() += v;
        }
        e.1 += 1;
    }
    // The scheduling queue's order: priority, then age (then name, for a stable order).
    pending.sort_by(|a, b| {
        let pa = a.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let pb = b.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        pb.cmp(&pa).then_with(|| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ta.cmp(&tb).then_with(|| {
                (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
                    .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
            })
        })
    });
    for pod in pending {
        let pod = pod.as_ref();
        let pre_filter = pre_filter(client, pod).await;
        let mut reasons: Vec<Vec<String>> = Vec::new();
        let mut resolvable: Vec<bool> = Vec::new();
        let mut chosen: Option<String> = None;
        if pre_filter.is_none() {
            for node in &node_list {
                let name = node.metadata.name.clone().unwrap_or_default();
                let u = used.get(&name).cloned().unwrap_or_default();
                match filter(state.messages, pod, node, &u.0, u.1) {
                    Ok(()) => {
                        chosen = Some(name);
                        break;
                    }
                    Err((r, res)) => {
                        reasons.push(r);
                        resolvable.push(res);
                    }
                }
            }
        }
        match chosen {
            Some(node) => {
                if bind(client, state, pod, &node).await? {
                    let e = used.entry(node.clone()).or_default();
                    for (k, v) in pod_requests(pod) {
                        *e.0.entry(k).or_default() += v;
                    }
                    e.1 += 1;
                    if let Some(uid) = &pod.metadata.uid {
                        state.assumed.insert(uid.clone(), (node, Arc::new(pod.clone())));
                    }
                }
            }
            None => {
                let never = pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
                let msg = if never {
                    state
                        .messages
                        .fit_error_preemption_never(node_list.len(), pre_filter.as_deref(), &reasons)
                } else {
                    // A PreFilter rejection (UnschedulableAndUnresolvable, e.g. VolumeBinding's
                    // missing claim) is every node's status (schedule_one.go
                    // `SetAbsentNodesStatus`), so preemption cannot help on any node.
                    let preemption: Vec<String> = if pre_filter.is_some() {
                        vec![messages::PREEMPTION_NOT_HELPFUL.to_string(); node_list.len()]
                    } else {
                        resolvable
                            .iter()
                            .map(|r| {
                                if *r {
                                    messages::NO_PREEMPTION_VICTIMS.to_string()
                                } else {
                                    messages::PREEMPTION_NOT_HELPFUL.to_string()
                                }
                            })
                            .collect()
                    };
                    let preemption = if node_list.is_empty() { Vec::new() } else { preemption };
                    state
                        .messages
                        .fit_error(node_list.len(), pre_filter.as_deref(), &reasons, &preemption)
                };
                unschedulable(client, state, pod, &msg).await;
            }
        }
    }
    Ok(())
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn is_pending(p: &Pod) -> bool {
    let Some(spec) = &p.spec else { return false };
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && spec.scheduler_name.as_deref().unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && p.metadata.deletion_timestamp.is_none()
        && !is_terminal(p)
}

/// PreFilter failures (VolumeBinding): a missing PersistentVolumeClaim.
async fn pre_filter(client: &kube::Client, pod: &Pod) -> Option<String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    for v in pod.spec.as_ref()?.volumes.iter().flatten() {
        if let Some(pvc) = &v.persistent_volume_claim
            && let Ok(None) = api.get_opt(&pvc.claim_name).await
        {
            return Some(messages::pvc_not_found(&pvc.claim_name));
        }
    }
    None
}

/// The default filters for one node. `Err((reasons, resolvable_by_preemption))`.
pub fn filter(
    m: &K8sMessages,
    pod: &Pod,
    node: &Node,
    used: &BTreeMap<String, i128>,
    used_pods: i64,
) -> Result<(), (Vec<String>, bool)> {
    let spec = pod.spec.clone().unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let nspec = node.spec.clone().unwrap_or_default();
    // NodeUnschedulable.
    if nspec.unschedulable == Some(true) {
        let t = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerations.iter().any(|tol| tolerates(tol, &t)) {
            return Err((vec![messages::NODE_UNSCHEDULABLE.into()], false));
        }
    }
    // TaintToleration.
    for t in nspec.taints.iter().flatten() {
        if t.effect != "NoSchedule" && t.effect != "NoExecute" {
            continue;
        }
        if !tolerations.iter().any(|tol| tolerates(tol, t)) {
            let value = t.value.clone().unwrap_or_default();
            return Err((vec![m.untolerated_taint(&t.key, &value)], false));
        }
    }
    // NodeAffinity (nodeSelector and required node affinity).
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = match spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref())
    {
        Some(sel) => sel.node_selector_terms.iter().any(|term| term_matches(term, node)),
        None => true,
    };
    if !selector_ok || !affinity_ok {
        return Err((vec![messages::NODE_AFFINITY_MISMATCH.into()], false));
    }
    // NodeResourcesFit.
    let alloc = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone().or_else(|| s.capacity.clone()))
        .unwrap_or_default();
    let mut reasons = Vec::new();
    let max_pods = alloc.get("pods").map(|q| milli(q) / 1000).unwrap_or(110);
    if i128::from(used_pods) + 1 > max_pods {
        reasons.push(messages::TOO_MANY_PODS.to_string());
    }
    let req = pod_requests(pod);
    for (res, want) in &req {
        if *want <= 0 {
            continue;
        }
        let have = alloc.get(res).map(milli).unwrap_or(0);
        let already = used.get(res).copied().unwrap_or(0);
        if *want > have - already {
            reasons.push(messages::insufficient(res));
        }
    }
    if !reasons.is_empty() {
        return Err((reasons, true));
    }
    Ok(())
}

/// Toleration semantics of `v1.Toleration.ToleratesTaint`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        _ => key == taint.key && tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let exprs = term.match_expressions.clone().unwrap_or_default();
    let fields = term.match_fields.clone().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = if r.key == "metadata.name" {
                Some(name.as_str())
            } else {
                None
            };
            requirement_matches(r, v)
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(x)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|x| x.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" { v > x } else { v < x }
        }
        _ => false,
    }
}

/// Bind through `pods/{name}/binding`, then emit `Scheduled`. `Ok(false)` when the pod went away
/// or was bound meanwhile.
async fn bind(client: &kube::Client, state: &mut State, pod: &Pod, node: &str) -> Result<bool, SchedulerError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(false),
        Err(source) => {
            return Err(SchedulerError::Api {
                what: format!("bind pod {ns}/{name} to {node}"),
                source,
            });
        }
    }
    if let Some(uid) = &pod.metadata.uid {
        state.reported.remove(uid);
    }
    let mut rec = state.recorder.clone();
    rec.action = Some("Binding".into());
    rec.emit(
        client,
        pod_ref(pod, None),
        EventType::Normal,
        "Scheduled",
        &state.messages.scheduled(&ns, &name, node),
    )
    .await;
    Ok(true)
}

/// Record a scheduling failure: `FailedScheduling` (once per distinct message) and
/// `PodScheduled=False`.
async fn unschedulable(client: &kube::Client, state: &mut State, pod: &Pod, msg: &str) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if state.reported.get(&uid).map(String::as_str) == Some(msg) {
        return;
    }
    state.reported.insert(uid, msg.to_string());
    let mut rec = state.recorder.clone();
    rec.action = Some("Scheduling".into());
    rec.emit(
        client,
        pod_ref(pod, None),
        EventType::Warning,
        "FailedScheduling",
        &truncate_event_message(msg),
    )
    .await;
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({
        "status": {
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": msg,
                "lastProbeTime": null,
                "lastTransitionTime": Time(Timestamp::now()),
            }]
        }
    });
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(error = %e, "could not set PodScheduled=False");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] =
            serde_json::json!([{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]);
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn tolerations() {
        let t = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tol = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(&tol(serde_json::json!({"key": "k", "value": "v"})), &t));
        assert!(tolerates(
            &tol(serde_json::json!({"key": "k", "operator": "Exists"})),
            &t
        ));
        assert!(tolerates(&tol(serde_json::json!({"operator": "Exists"})), &t));
        assert!(!tolerates(&tol(serde_json::json!({"key": "k", "value": "w"})), &t));
        assert!(!tolerates(
            &tol(serde_json::json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
    }

    #[test]
    fn filters_in_kubernetes_order() {
        let m = messages::DEFAULT;
        let n = node(serde_json::json!({
            "metadata": {"name": "n", "labels": {"zone": "a", "size": "4"}},
            "spec": {"taints": [{"key": "t", "value": "x", "effect": "NoExecute"}, {"key": "soft", "effect": "PreferNoSchedule"}]},
            "status": {"allocatable": {"cpu": "1", "memory": "2Gi", "pods": "2"}},
        }));
        let used = BTreeMap::from([("cpu".to_string(), 600)]);
        // Taint first.
        let err = filter(m, &pod(serde_json::json!({})), &n, &BTreeMap::new(), 0).unwrap_err();
        assert_eq!(err, (vec!["node(s) had untolerated taint {t: x}".to_string()], false));
        let tol = serde_json::json!([{"key": "t", "operator": "Exists"}]);
        // Then affinity.
        let p = pod(
            serde_json::json!({"tolerations": tol, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["8"]}]}]}}}}),
        );
        assert_eq!(
            filter(m, &p, &n, &BTreeMap::new(), 0).unwrap_err().0[0],
            "node(s) didn't match Pod's node affinity/selector"
        );
        let p = pod(
            serde_json::json!({"tolerations": tol, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}}),
        );
        assert!(filter(m, &p, &n, &BTreeMap::new(), 0).is_ok());
        // Then resources, all insufficient ones reported.
        assert_eq!(
            filter(m, &p, &n, &used, 2).unwrap_err(),
            (vec!["Too many pods".to_string(), "Insufficient cpu".to_string()], true)
        );
        let unsched = node(serde_json::json!({"metadata": {"name": "u"}, "spec": {"unschedulable": true}}));
        assert_eq!(
            filter(m, &p, &unsched, &BTreeMap::new(), 0).unwrap_err().0[0],
            "node(s) were unschedulable"
        );
    }
}
