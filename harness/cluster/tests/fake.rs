//! The fake runtime tier's kubelet (no Docker) with the real API server and scheduler: the same
//! Kubernetes strings as the failure-mode scenarios' goldens (docs/fidelity.md), deterministically.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStateWaiting, Event, Namespace, Node, Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use sgsim_cluster::fake_kubelet::{FakeKubeletHandle, FakeProfile, spawn_fake_kubelet};
use sgsim_cluster::k8s::messages::DEFAULT;
use sgsim_cluster::scheduler::{SchedulerHandle, spawn_scheduler_with};

struct Tier {
    api: ApiServerHandle,
    client: kube::Client,
    scheduler: SchedulerHandle,
    kubelet: FakeKubeletHandle,
    ns: String,
}

impl Tier {
    async fn start(test: &str, profile: FakeProfile) -> Tier {
        let api = ApiServer::start(ApiServerOptions {
            service_account_admission: false,
            ..Default::default()
        })
        .await
        .expect("api server");
        let client = api.client().await.expect("client");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1"},
            "status": {
                "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .expect("node");
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        let ns = format!("fake-{test}-{}", std::process::id());
        let nso: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &nso)
            .await
            .expect("create ns");
        let scheduler = spawn_scheduler_with(client.clone(), DEFAULT);
        let kubelet = spawn_fake_kubelet(client.clone(), "node-1", DEFAULT, profile);
        Tier {
            api,
            client,
            scheduler,
            kubelet,
            ns,
        }
    }

    async fn create(&self, spec: Value) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": self.ns},
            "spec": spec,
        }))
        .expect("pod");
        Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    /// `TYPE message` of the pod's events, in the order they were recorded.
    async fn events(&self) -> Vec<String> {
        let lp = ListParams::default().fields("involvedObject.name=p,involvedObject.kind=Pod");
        let mut evs = Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&lp)
            .await
            .expect("events")
            .items;
        evs.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        evs.into_iter()
            .map(|e| format!("{} {}", e.type_.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    async fn pod(&self) -> Pod {
        Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .get("p")
            .await
            .expect("get pod")
    }

    /// Wait until `done` holds for (events, pod), or panic with what was seen. The pod is read
    /// before its events: the kubelet records a state's events before it writes the state, so the
    /// events read after a pod hold every event of that pod's state.
    async fn wait(&self, what: &str, done: impl Fn(&[String], &Pod) -> bool) -> (Vec<String>, Pod) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pod = self.pod().await;
            let evs = self.events().await;
            if done(&evs, &pod) {
                return (evs, pod);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached; events {evs:#?}\npod status {:#?}",
                pod.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shutdown(self) {
        self.kubelet.shutdown().await;
        self.scheduler.shutdown().await;
        self.api.shutdown().await;
    }
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

/// The waiting state of the pod's first container.
fn first_waiting(pod: Pod) -> Option<ContainerStateWaiting> {
    pod.status?.container_statuses?.into_iter().next()?.state?.waiting
}

fn containers() -> Value {
    json!([
        {"name": "step-one", "image": "alpine:3.19"},
        {"name": "lite-engine", "image": "harness/ci-lite-engine:1.16.8"},
    ])
}

#[tokio::test]
async fn pod_runs_with_the_kubelet_event_sequence() {
    let tier = Tier::start("run", FakeProfile::default()).await;
    tier.create(json!({
        "initContainers": [{"name": "setup-addon", "image": "harness/ci-addon:1.16.8"}],
        "containers": containers(),
    }))
    .await;
    let (evs, pod) = tier.wait("Running", |_, p| phase(p) == "Running").await;
    let ns = &tier.ns;
    let mut expected = vec![format!("Normal Successfully assigned {ns}/p to node-1")];
    for (c, image) in [
        ("setup-addon", "harness/ci-addon:1.16.8"),
        ("step-one", "alpine:3.19"),
        ("lite-engine", "harness/ci-lite-engine:1.16.8"),
    ] {
        expected.push(format!("Normal Pulling image \"{image}\""));
        expected.push(format!(
            "Normal Successfully pulled image \"{image}\" in 0s (0s including waiting)"
        ));
        expected.push(format!("Normal Created container {c}"));
        expected.push(format!("Normal Started container {c}"));
    }
    assert_eq!(evs, expected);
    let st = pod.status.expect("status");
    assert_eq!(st.pod_ip.as_deref(), Some("10.244.0.2"));
    let ready: Vec<bool> = st
        .container_statuses
        .unwrap_or_default()
        .iter()
        .map(|c| c.ready)
        .collect();
    assert_eq!(ready, vec![true, true]);
    tier.shutdown().await;
}

#[tokio::test]
async fn missing_config_map_is_failed_mount() {
    let tier = Tier::start("mount", FakeProfile::default()).await;
    tier.create(json!({
        "containers": containers(),
        "volumes": [{"name": "volume-0", "configMap": {"name": "app-config"}}],
    }))
    .await;
    let msg = "Warning MountVolume.SetUp failed for volume \"volume-0\" : configmap \"app-config\" not found";
    let (evs, pod) = tier.wait("FailedMount", |e, _| e.iter().any(|l| l == msg)).await;
    assert_eq!(evs.iter().filter(|l| l.as_str() == msg).count(), 1, "{evs:#?}");
    assert_eq!(phase(&pod), "Pending");
    tier.shutdown().await;
}

#[tokio::test]
async fn run_as_non_root_with_a_root_image_is_create_container_config_error() {
    let users = BTreeMap::from([("harness/ci-lite-engine:1.16.8".to_string(), 1000)]);
    let tier = Tier::start(
        "nonroot",
        FakeProfile {
            image_users: users,
            ..Default::default()
        },
    )
    .await;
    let pod = tier
        .create(json!({
            "containers": containers(),
            "securityContext": {"runAsNonRoot": true},
        }))
        .await;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let msg = format!(
        "Warning Error: container has runAsNonRoot and image will run as root (pod: \"p_{}({uid})\", container: step-one)",
        tier.ns
    );
    let (_, pod) = tier.wait("CreateContainerConfigError", |e, _| e.contains(&msg)).await;
    let waiting = first_waiting(pod).and_then(|w| w.reason);
    assert_eq!(waiting.as_deref(), Some("CreateContainerConfigError"));
    tier.shutdown().await;
}

#[tokio::test]
async fn env_from_a_missing_secret_key_is_create_container_config_error() {
    let tier = Tier::start("envkey", FakeProfile::default()).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds", "namespace": tier.ns},
        "stringData": {"username": "deployer"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(tier.client.clone(), &tier.ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    tier.create(json!({
        "containers": [
            {"name": "step-one", "image": "alpine:3.19", "env": [
                {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "username"}}},
                {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            ]},
            {"name": "lite-engine", "image": "harness/ci-lite-engine:1.16.8"},
        ],
    }))
    .await;
    let msg = format!("Warning Error: couldn't find key token in Secret {}/creds", tier.ns);
    let (evs, pod) = tier.wait("CreateContainerConfigError", |e, _| e.contains(&msg)).await;
    assert_eq!(evs.iter().filter(|l| **l == msg).count(), 1, "{evs:#?}");
    let waiting = first_waiting(pod);
    assert_eq!(
        waiting.as_ref().and_then(|w| w.reason.as_deref()),
        Some("CreateContainerConfigError")
    );
    assert_eq!(
        waiting.and_then(|w| w.message).as_deref(),
        Some(format!("couldn't find key token in Secret {}/creds", tier.ns).as_str())
    );
    tier.shutdown().await;
}

#[tokio::test]
async fn failing_init_container_fails_the_pod() {
    let codes = BTreeMap::from([("setup-addon".to_string(), 1)]);
    let tier = Tier::start(
        "init",
        FakeProfile {
            exit_codes: codes,
            ..Default::default()
        },
    )
    .await;
    tier.create(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "setup-addon", "image": "harness/ci-addon:1.16.8"}],
        "containers": containers(),
    }))
    .await;
    let (evs, pod) = tier.wait("Failed", |_, p| phase(p) == "Failed").await;
    assert_eq!(
        evs.last().map(String::as_str),
        Some("Normal Started container setup-addon")
    );
    let init = pod.status.and_then(|s| s.init_container_statuses).unwrap_or_default();
    let t = init[0].state.clone().and_then(|s| s.terminated).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    tier.shutdown().await;
}

#[tokio::test]
async fn active_deadline_fails_the_pod() {
    let tier = Tier::start("deadline", FakeProfile::default()).await;
    tier.create(json!({
        "activeDeadlineSeconds": 1,
        "containers": containers(),
        "volumes": [{"name": "volume-0", "configMap": {"name": "deploy-settings"}}],
    }))
    .await;
    let (evs, pod) = tier.wait("DeadlineExceeded", |_, p| phase(p) == "Failed").await;
    let ns = &tier.ns;
    assert_eq!(
        evs,
        vec![
            format!("Normal Successfully assigned {ns}/p to node-1"),
            "Warning MountVolume.SetUp failed for volume \"volume-0\" : configmap \"deploy-settings\" not found"
                .to_string(),
            "Normal Pod was active on the node longer than the specified deadline".to_string(),
        ]
    );
    let st = pod.status.expect("status");
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    tier.shutdown().await;
}

/// Scale on the fake tier: 60 pods on 3 nodes of 2 CPUs each, 250m each. Exactly 24 fit (8 per
/// node) and run; the other 36 stay pending with the scheduler's resource message.
#[tokio::test]
async fn sixty_pods_on_three_nodes_fill_allocatable_cpu() {
    let api = ApiServer::start(ApiServerOptions {
        service_account_admission: false,
        ..Default::default()
    })
    .await
    .expect("api server");
    let client = api.client().await.expect("client");
    let mut kubelets = Vec::new();
    for n in ["node-a", "node-b", "node-c"] {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n},
            "status": {
                "capacity": {"cpu": "2", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "16Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .expect("node");
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        kubelets.push(spawn_fake_kubelet(client.clone(), n, DEFAULT, FakeProfile::default()));
    }
    let scheduler = spawn_scheduler_with(client.clone(), DEFAULT);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..60 {
        let p: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("load-{i:02}"), "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "c", "image": "busybox:1.36",
                "resources": {"requests": {"cpu": "250m"}},
            }]},
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &p).await.expect("create pod");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (running, per_node) = loop {
        let list = pods.list(&ListParams::default()).await.expect("list").items;
        let running: Vec<&Pod> = list
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for p in &running {
            *per_node
                .entry(p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default())
                .or_default() += 1;
        }
        if running.len() >= 24 || Instant::now() >= deadline {
            break (running.len(), per_node);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(running, 24, "{per_node:?}");
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![8, 8, 8]);
    let unbound = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
        .count();
    assert_eq!(unbound, 36);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let failed = events
        .list(&ListParams::default().fields("reason=FailedScheduling"))
        .await
        .expect("events")
        .items;
    assert!(!failed.is_empty());
    let msg = failed[0].message.clone().unwrap_or_default();
    assert!(msg.starts_with("0/3 nodes are available: 3 Insufficient cpu."), "{msg}");
    for k in kubelets {
        k.shutdown().await;
    }
    scheduler.shutdown().await;
    api.shutdown().await;
}

/// kwok's "pod complete" stage as data: with `run_for`, the containers exit after that long with
/// their `exit_codes`; the pod ends Succeeded, or Failed when one exited non-zero.
#[tokio::test]
async fn containers_run_for_their_time_then_the_pod_completes() {
    for (name, codes, want) in [
        ("complete", BTreeMap::new(), ("Succeeded", 0, "Completed")),
        (
            "complete-fails",
            BTreeMap::from([("lite-engine".to_string(), 3)]),
            ("Failed", 3, "Error"),
        ),
    ] {
        let tier = Tier::start(
            name,
            FakeProfile {
                run_for: Some(Duration::from_secs(5)),
                exit_codes: codes,
                ..Default::default()
            },
        )
        .await;
        tier.create(json!({"containers": containers(), "restartPolicy": "Never"}))
            .await;
        let (_, pod) = tier.wait(name, |_, p| matches!(phase(p), "Succeeded" | "Failed")).await;
        assert_eq!(phase(&pod), want.0, "{:#?}", pod.status);
        let terminated = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == "lite-engine")
            .and_then(|c| c.state?.terminated)
            .expect("lite-engine terminated");
        assert_eq!(
            (terminated.exit_code, terminated.reason.as_deref()),
            (want.1, Some(want.2))
        );
        tier.shutdown().await;
    }
}
