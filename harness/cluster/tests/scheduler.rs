//! The scheduler against the embedded API server, with Node objects registered directly (no
//! kubelet, no Docker): binding, `Scheduled`, and the exact `FailedScheduling` messages.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use sgsim_cluster::k8s::K8sMessages;
use sgsim_cluster::scheduler::{spawn_scheduler, spawn_scheduler_with};

async fn api() -> (ApiServerHandle, kube::Client) {
    let api = ApiServer::start(ApiServerOptions {
        service_account_admission: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = api.client().await.unwrap();
    (api, client)
}

async fn node(client: &kube::Client, name: &str, cpu: &str, labels: serde_json::Value, taints: serde_json::Value) {
    let n: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .unwrap();
    let api: Api<Node> = Api::all(client.clone());
    api.create(&PostParams::default(), &n).await.unwrap();
    // Status may be dropped on create (as in Kubernetes): set it through the status subresource.
    let patch = serde_json::json!({"status": n.status});
    api.patch_status(name, &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn pod(client: &kube::Client, name: &str, spec: serde_json::Value) {
    let mut spec = spec;
    spec["containers"] = serde_json::json!([{
        "name": "c", "image": "busybox:1.36",
        "resources": {"requests": {"cpu": spec.get("cpu").cloned().unwrap_or(serde_json::json!("100m"))}},
    }]);
    spec.as_object_mut().unwrap().remove("cpu");
    let p: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
}

async fn wait_event(client: &kube::Client, pod: &str, reason: &str) -> Event {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let evs = api.list(&ListParams::default()).await.unwrap().items;
        if let Some(e) = evs
            .into_iter()
            .find(|e| e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason))
        {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {reason} event for {pod}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn binds_to_the_fitting_node_and_reports_scheduled() {
    let (server, client) = api().await;
    let _s = spawn_scheduler(client.clone());
    node(
        &client,
        "small",
        "1",
        serde_json::json!({"pool": "a"}),
        serde_json::json!([]),
    )
    .await;
    node(
        &client,
        "big",
        "8",
        serde_json::json!({"pool": "b"}),
        serde_json::json!([]),
    )
    .await;
    pod(
        &client,
        "p1",
        serde_json::json!({"cpu": "2", "nodeSelector": {"pool": "b"}}),
    )
    .await;
    let ev = wait_event(&client, "p1", "Scheduled").await;
    assert_eq!(ev.message.as_deref(), Some("Successfully assigned default/p1 to big"));
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(
        ev.source.as_ref().unwrap().component.as_deref(),
        Some("default-scheduler")
    );
    assert_eq!(ev.reporting_component.as_deref(), Some("default-scheduler"));
    let p = Api::<Pod>::namespaced(client.clone(), "default")
        .get("p1")
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("big"));
    server.shutdown().await;
}

#[tokio::test]
async fn failed_scheduling_messages_are_exact() {
    let (server, client) = api().await;
    let _s = spawn_scheduler(client.clone());
    node(
        &client,
        "n1",
        "1",
        serde_json::json!({}),
        serde_json::json!([{"key": "dedicated", "value": "ci", "effect": "NoSchedule"}]),
    )
    .await;
    node(&client, "n2", "1", serde_json::json!({}), serde_json::json!([])).await;
    node(&client, "n3", "1", serde_json::json!({}), serde_json::json!([])).await;
    pod(&client, "huge", serde_json::json!({"cpu": "4"})).await;
    let ev = wait_event(&client, "huge", "FailedScheduling").await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: ci}, 2 Insufficient cpu. \
                preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption \
                victims found for incoming pod.";
    assert_eq!(ev.message.as_deref(), Some(want));
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    // PodScheduled=False, reason Unschedulable, full message.
    let p = Api::<Pod>::namespaced(client.clone(), "default")
        .get("huge")
        .await
        .unwrap();
    let cond = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(cond.message.as_deref(), Some(want));

    pod(&client, "picky", serde_json::json!({"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "dedicated", "operator": "Exists"}]})).await;
    let ev = wait_event(&client, "picky", "FailedScheduling").await;
    assert_eq!(
        ev.message.as_deref(),
        Some(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes \
              are available: 3 Preemption is not helpful for scheduling."
        )
    );

    // A node that fits arrives: the pod is retried and bound.
    node(
        &client,
        "n4",
        "1",
        serde_json::json!({"disk": "ssd"}),
        serde_json::json!([]),
    )
    .await;
    let ev = wait_event(&client, "picky", "Scheduled").await;
    assert_eq!(ev.message.as_deref(), Some("Successfully assigned default/picky to n4"));
    server.shutdown().await;
}

#[tokio::test]
async fn newer_versions_word_failures_their_way() {
    let (server, client) = api().await;
    let _s = spawn_scheduler_with(client.clone(), K8sMessages::for_version("1.33"));
    node(
        &client,
        "t1",
        "1",
        serde_json::json!({}),
        serde_json::json!([{"key": "a", "value": "b", "effect": "NoExecute"}]),
    )
    .await;
    pod(&client, "x", serde_json::json!({})).await;
    let ev = wait_event(&client, "x", "FailedScheduling").await;
    assert_eq!(
        ev.message.as_deref(),
        Some(
            "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available: \
              1 Preemption is not helpful for scheduling.."
        )
    );
    server.shutdown().await;
}

/// Pending pods are tried highest priority first (then oldest first): with room for one pod,
/// the high-priority pod created last gets the node and the earlier low-priority one stays
/// pending with FailedScheduling.
#[tokio::test]
async fn pending_pods_are_scheduled_by_priority() {
    let (server, client) = api().await;
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    for (name, value) in [("low", 10), ("high", 1000)] {
        let pc = serde_json::from_value(serde_json::json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value,
        }))
        .unwrap();
        classes.create(&PostParams::default(), &pc).await.unwrap();
    }
    node(&client, "only", "1", serde_json::json!({}), serde_json::json!([])).await;
    // Both pods exist before the scheduler starts, the low-priority one first.
    pod(
        &client,
        "early-low",
        serde_json::json!({"cpu": "600m", "priorityClassName": "low"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pod(
        &client,
        "late-high",
        serde_json::json!({"cpu": "600m", "priorityClassName": "high"}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    assert_eq!(pods.get("late-high").await.unwrap().spec.unwrap().priority, Some(1000));
    let _s = spawn_scheduler(client.clone());
    let ev = wait_event(&client, "late-high", "Scheduled").await;
    assert_eq!(
        ev.message.as_deref(),
        Some("Successfully assigned default/late-high to only")
    );
    let failed = wait_event(&client, "early-low", "FailedScheduling").await;
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{:?}",
        failed.message
    );
    let low = pods.get("early-low").await.unwrap();
    assert_eq!(low.spec.and_then(|s| s.node_name), None);
    server.shutdown().await;
}

/// The scheduler reads pods from its watch-fed cache, which lags its own bindings: the pods it has
/// just bound must count on their node until the cache shows them bound (kube-scheduler's
/// "assumed" pods), or a burst of pods would overfill a node.
#[tokio::test]
async fn a_burst_of_pods_never_overfills_a_node() {
    let (_api, client) = api().await;
    node(&client, "small-1", "1", serde_json::json!({}), serde_json::json!([])).await;
    node(&client, "small-2", "1", serde_json::json!({}), serde_json::json!([])).await;
    let _s = spawn_scheduler(client.clone());
    // 2 nodes × 1 CPU; 5 pods of 400m: 2 fit on each node, the fifth fits nowhere.
    let names: Vec<String> = (0..5).map(|i| format!("burst-{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|n| pod(&client, n, serde_json::json!({"cpu": "400m"}))),
    )
    .await;
    let failed = wait_event(&client, "burst-4", "FailedScheduling").await;
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("2 Insufficient cpu"),
        "{failed:?}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for n in &names[..4] {
        wait_event(&client, n, "Scheduled").await;
        let p = pods.get(n).await.unwrap();
        *per_node.entry(p.spec.unwrap().node_name.unwrap()).or_default() += 1;
    }
    assert_eq!(
        per_node.into_iter().collect::<Vec<_>>(),
        [("small-1".to_string(), 2), ("small-2".to_string(), 2)]
    );
    assert!(pods.get("burst-4").await.unwrap().spec.unwrap().node_name.is_none());
}
