//! The kubelet (with the scheduler and the embedded API server) against the host Docker daemon
//! as if it were a node. Images: a busybox image imported from the host's static busybox
//! (content-addressed tag, labelled `dev.sgsim.managed=true`, kept for reuse like the other
//! content-hashed sgsim images). Every container/volume a test creates carries a unique
//! `dev.sgsim.run` label; a guard removes them even when the test panics, and each test asserts
//! that nothing is left.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bollard::Docker;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use sgsim_cluster::kubelet::{KubeletConfig, KubeletHandle, LocalImages, SandboxSpec, start_kubelet};
use sgsim_cluster::scheduler::{SchedulerHandle, spawn_scheduler};

const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "nc", "grep", "seq", "ls", "mkdir", "test", "true", "false", "id", "wget", "env",
    "mount",
];

/// Import (once per process) a busybox image built from the host's static busybox.
fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let bb = std::fs::read("/bin/busybox").expect("static busybox at /bin/busybox");
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bb.hash(&mut h);
            BUSYBOX_APPLETS.hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let tag = format!("sgsim-test/busybox:{}", &hash[..12]);
        let present = Command::new("docker")
            .args(["image", "inspect", &tag])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if present {
            return tag;
        }
        let dir = std::env::temp_dir().join(format!("sgsim-bb-{}-{}", std::process::id(), &hash[..8]));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for a in BUSYBOX_APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        let tar = dir.join("rootfs.tar");
        let st = Command::new("tar")
            .args(["-C", root.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."])
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("docker")
            .args([
                "import",
                "--change",
                "LABEL dev.sgsim.managed=true",
                "--change",
                "ENV PATH=/bin",
                tar.to_str().unwrap(),
                &tag,
            ])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        tag
    })
}

fn unique(prefix: &str) -> String {
    use rand::Rng;
    let s: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect();
    format!("{prefix}{s}")
}

/// Removes everything labelled with the test's run id, also when the test panics.
struct Guard {
    run: String,
}

impl Guard {
    fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let filter = format!("label=dev.sgsim.run={}", self.run);
        let out = |args: &[&str]| -> Vec<String> {
            let o = Command::new("docker").args(args).output().unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        };
        (
            out(&["ps", "-aq", "--filter", &filter]),
            out(&["volume", "ls", "-q", "--filter", &filter]),
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (containers, volumes) = self.leftovers();
        if !containers.is_empty() {
            let mut args = vec!["rm".to_string(), "-fv".to_string()];
            args.extend(containers);
            let _ = Command::new("docker").args(&args).output();
        }
        if !volumes.is_empty() {
            let mut args = vec!["volume".to_string(), "rm".to_string(), "-f".to_string()];
            args.extend(volumes);
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

struct Cluster {
    api: ApiServerHandle,
    client: kube::Client,
    _scheduler: SchedulerHandle,
    kubelet: Option<KubeletHandle>,
    node: String,
    guard: Guard,
}

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

async fn cluster() -> Cluster {
    cluster_with(Arc::new(sgsim_cluster::kubelet::privileged_flag)).await
}

async fn cluster_with(privileged: Arc<dyn Fn(&mut bollard::models::HostConfig) + Send + Sync>) -> Cluster {
    let image = busybox_image().to_string();
    let run = unique("sgt");
    let guard = Guard { run: run.clone() };
    let api = ApiServer::start(ApiServerOptions {
        service_account_admission: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = api.client().await.unwrap();
    let scheduler = spawn_scheduler(client.clone());
    let node = unique("node-");
    let docker = docker().await;
    let images = Arc::new(LocalImages {
        docker: docker.clone(),
        sandbox: SandboxSpec {
            image: image.clone(),
            command: vec!["sleep".into(), "2147483647".into()],
        },
        aliases: HashMap::new(),
    });
    let kubelet = start_kubelet(
        client.clone(),
        KubeletConfig {
            node_name: node.clone(),
            docker,
            gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
            images,
            privileged,
            labels: HashMap::from([
                ("dev.sgsim.managed".to_string(), "true".to_string()),
                ("dev.sgsim.run".to_string(), run.clone()),
            ]),
            node_labels: BTreeMap::new(),
            taints: Vec::new(),
            capacity: BTreeMap::from([
                (
                    "cpu".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
                ),
                (
                    "memory".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("4Gi".into()),
                ),
            ]),
        },
    )
    .await
    .unwrap();
    api.register_node_logs(&node, kubelet.log_source());
    Cluster {
        api,
        client,
        _scheduler: scheduler,
        kubelet: Some(kubelet),
        node,
        guard,
    }
}

impl Cluster {
    async fn finish(mut self) {
        if let Some(k) = self.kubelet.take() {
            k.shutdown().await.unwrap();
        }
        let (c, v) = self.guard.leftovers();
        assert!(c.is_empty(), "containers left: {c:?}");
        assert!(v.is_empty(), "volumes left: {v:?}");
        self.api.shutdown().await;
    }

    async fn create(&self, pod: serde_json::Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    async fn wait_phase(&self, name: &str, phases: &[&str], timeout: Duration) -> Pod {
        let api = Api::<Pod>::namespaced(self.client.clone(), "default");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let p = api.get(name).await.unwrap();
            let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            if phases.contains(&phase.as_str()) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {name} still {phase}: {:#?}",
                p.status
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn event_messages(&self, pod: &str) -> Vec<(String, String, String)> {
        let api = Api::<Event>::namespaced(self.client.clone(), "default");
        let mut evs: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .collect();
        evs.sort_by_key(|e| (e.event_time.as_ref().map(|t| t.0), e.metadata.name.clone()));
        evs.into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect()
    }
}

fn container(name: &str, script: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "image": busybox_image(),
        "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_container_feeds_main_container_through_empty_dir() {
    let c = cluster().await;
    let name = unique("pod-");
    let image = busybox_image();
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [container("init", "echo hello from init > /data/msg")],
            "containers": [container("main", "cat /data/msg; grep -c delegate-service /etc/hosts")],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }
    }))
    .await;
    let pod = c
        .wait_phase(&name, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let status = pod.status.clone().unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&status).unwrap());
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:#?}");
    assert!(status.pod_ip.is_some());
    let main = &status.container_statuses.as_ref().unwrap()[0];
    let term = main.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(term.exit_code, 0);
    assert_eq!(term.reason.as_deref(), Some("Completed"));
    assert!(main.container_id.as_deref().unwrap().starts_with("docker://"));
    let init = &status.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );

    let msgs: Vec<String> = c.event_messages(&name).await.into_iter().map(|(_, _, m)| m).collect();
    let present = format!("Container image \"{image}\" already present on machine");
    assert_eq!(
        msgs,
        vec![
            format!("Successfully assigned default/{name} to {}", c.node),
            present.clone(),
            "Created container init".to_string(),
            "Started container init".to_string(),
            present,
            "Created container main".to_string(),
            "Started container main".to_string(),
        ]
    );

    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    let logs = api
        .logs(
            &name,
            &LogParams {
                container: Some("main".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs, "hello from init\n1\n");

    // Deleting the pod removes its containers and volumes.
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let docker = docker().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let filter = HashMap::from([("label".to_string(), vec![format!("dev.sgsim.pod-uid={uid}")])]);
        let cs = docker
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
            .await
            .unwrap();
        let vs = docker
            .list_volumes(Some(
                bollard::query_parameters::ListVolumesOptionsBuilder::default()
                    .filters(&filter)
                    .build(),
            ))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default();
        if cs.is_empty() && vs.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod resources not removed: {cs:?} {vs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_talk_over_localhost() {
    let c = cluster().await;
    let name = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["alias.example"]}],
            "containers": [
                // stdin stays open a while: busybox nc may end the connection when its stdin ends,
                // before the peer's line has arrived (a flake under load).
                container("server", "(echo pong; sleep 2) | nc -l -p 18080"),
                container("client", "grep -q alias.example /etc/hosts || exit 7; for i in $(seq 100); do \
                                     if (echo ping; sleep 2) | nc localhost 18080; then exit 0; fi; sleep 0.1; done; exit 1"),
            ],
            "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}],
        }
    }))
    .await;
    let pod = c
        .wait_phase(&name, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:#?}");
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    let server = api
        .logs(
            &name,
            &LogParams {
                container: Some("server".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(server, "ping\n");
    let client = api
        .logs(
            &name,
            &LogParams {
                container: Some("client".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(client, "pong\n");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_container_fails_the_pod() {
    let c = cluster().await;
    let name = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                container("ok", "echo fine"),
                container("bad", "echo broken >&2; exit 3"),
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }
    }))
    .await;
    let pod = c
        .wait_phase(&name, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:#?}");
    let bad = status
        .container_statuses
        .as_ref()
        .unwrap()
        .iter()
        .find(|s| s.name == "bad")
        .unwrap();
    let t = bad.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(t.exit_code, 3);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    let ok = status
        .container_statuses
        .as_ref()
        .unwrap()
        .iter()
        .find(|s| s.name == "ok")
        .unwrap();
    assert_eq!(
        ok.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    let logs = api
        .logs(
            &name,
            &LogParams {
                container: Some("bad".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs, "broken\n");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_init_container_fails_the_pod_and_deadline_is_enforced() {
    let c = cluster().await;
    let bad_init = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": bad_init, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [container("init", "exit 2")],
            "containers": [container("main", "echo never")],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }
    }))
    .await;
    let slow = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": slow, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 3,
            "containers": [container("main", "sleep 300")],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }
    }))
    .await;
    let pod = c
        .wait_phase(&bad_init, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let init = &status.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(init.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 2);
    let main = &status.container_statuses.as_ref().unwrap()[0];
    assert!(main.state.as_ref().unwrap().waiting.is_some());
    let msgs: Vec<String> = c
        .event_messages(&bad_init)
        .await
        .into_iter()
        .map(|(_, _, m)| m)
        .collect();
    assert!(!msgs.contains(&"Created container main".to_string()), "{msgs:?}");

    let pod = c
        .wait_phase(&slow, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        status.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    let evs = c.event_messages(&slow).await;
    assert!(
        evs.iter().any(|(t, r, m)| t == "Normal"
            && r == "DeadlineExceeded"
            && m == "Pod was active on the node longer than the specified deadline"),
        "{evs:?}"
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_never_pulled_is_reported() {
    let c = cluster().await;
    let name = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "sgsim-test/absent:1.0", "imagePullPolicy": "Never"}],
        }
    }))
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let want = (
        "Warning".to_string(),
        "ErrImageNeverPull".to_string(),
        "Container image \"sgsim-test/absent:1.0\" is not present with pull policy of Never".to_string(),
    );
    loop {
        let evs = c.event_messages(&name).await;
        if evs.contains(&want) {
            let pos = evs.iter().position(|e| *e == want).unwrap();
            assert_eq!(
                evs[pos + 1],
                ("Warning".into(), "Failed".into(), "Error: ErrImageNeverPull".into())
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{evs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    let p = api.get(&name).await.unwrap();
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    let w = st.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(w.reason.as_deref(), Some("ErrImageNeverPull"));
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_volume_env_non_root_and_always_pull() {
    let c = cluster().await;
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"},
        "data": {"greeting": "hi there", "nested.txt": "n"},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let name = unique("pod-");
    let image = busybox_image();
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "x"}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": "Always",
                "command": ["sh", "-c"],
                "args": ["cat /cfg/greeting; echo; echo $(GREETING) $POD $APP; id -u; echo w > /data/f && echo wrote"],
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                ],
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/cfg", "readOnly": true},
                    {"name": "data", "mountPath": "/data"},
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "data", "emptyDir": {}},
            ],
        }
    }))
    .await;
    let pod = c
        .wait_phase(&name, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    let logs = api
        .logs(
            &name,
            &LogParams {
                container: Some("main".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"), "{logs}");
    assert_eq!(logs, format!("hi there\nhi there {name} x\n1000\nwrote\n"));
    let msgs: Vec<String> = c.event_messages(&name).await.into_iter().map(|(_, _, m)| m).collect();
    assert_eq!(msgs[1], format!("Pulling image \"{image}\""));
    let pulled = &msgs[2];
    let prefix = format!("Successfully pulled image \"{image}\" in ");
    assert!(pulled.starts_with(&prefix), "{pulled}");
    assert!(pulled.ends_with(" including waiting)"), "{pulled}");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_with_a_root_image_is_a_config_error() {
    let c = cluster().await;
    let name = unique("pod-");
    let created = c
        .create(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main", "image": busybox_image(), "command": ["true"],
                    "securityContext": {"runAsNonRoot": true},
                }],
            }
        }))
        .await;
    let uid = created.metadata.uid.unwrap();
    let want = format!(
        "Error: container has runAsNonRoot and image will run as root (pod: \"{name}_default({uid})\", container: main)"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let evs = c.event_messages(&name).await;
        if evs
            .iter()
            .any(|(t, r, m)| t == "Warning" && r == "Failed" && *m == want)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{evs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = Api::<Pod>::namespaced(c.client.clone(), "default")
        .get(&name)
        .await
        .unwrap();
    let w = p.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_failure_backs_off_and_start_error_fails_the_pod() {
    let c = cluster().await;
    let absent = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": absent, "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "sgsim-test/absent:2.0"}]}
    }))
    .await;
    let bad_cmd = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": bad_cmd, "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": busybox_image(), "command": ["/no/such/binary"]}]}
    }))
    .await;
    let pod = c
        .wait_phase(&bad_cmd, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let st = pod.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    let t = st.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (128, Some("StartError")));
    let evs = c.event_messages(&bad_cmd).await;
    assert!(
        evs.iter()
            .any(|(t, r, m)| t == "Warning" && r == "Failed" && m.starts_with("Error: ")),
        "{evs:?}"
    );

    let image = "sgsim-test/absent:2.0";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let evs = c.event_messages(&absent).await;
        let msgs: Vec<&str> = evs.iter().map(|(_, _, m)| m.as_str()).collect();
        if msgs.len() >= 6 {
            assert_eq!(msgs[1], format!("Pulling image \"{image}\""));
            assert!(
                msgs[2].starts_with(&format!("Failed to pull image \"{image}\": ")),
                "{msgs:?}"
            );
            assert_eq!(msgs[3], "Error: ErrImagePull");
            assert_eq!(msgs[4], format!("Back-off pulling image \"{image}\""));
            assert_eq!(msgs[5], "Error: ImagePullBackOff");
            assert_eq!(evs[4].0, "Normal");
            assert_eq!(evs[5].0, "Warning");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{evs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_container_uses_the_daemons_privilege_mode() {
    use sgsim_cluster::docker::{apply_privileged, detect_privilege_mode};
    let mode = detect_privilege_mode(&docker().await, busybox_image()).await;
    let c = cluster_with(Arc::new(move |hc| apply_privileged(hc, mode))).await;
    let name = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": busybox_image(),
                "command": ["sh", "-c", "mkdir -p /m && mount -t tmpfs none /m && echo mounted"],
                "securityContext": {"privileged": true},
            }],
        }
    }))
    .await;
    let pod = c
        .wait_phase(&name, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    let logs = api
        .logs(
            &name,
            &LogParams {
                container: Some("main".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_or_default();
    assert_eq!(
        pod.status.unwrap().phase.as_deref(),
        Some("Succeeded"),
        "{mode:?}: {logs}"
    );
    assert_eq!(logs, "mounted\n");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_pod_stops_and_removes_it() {
    let c = cluster().await;
    let name = unique("pod-");
    let created = c
        .create(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [container("main", "echo up; sleep 300")],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        }))
        .await;
    let pod = c.wait_phase(&name, &["Running"], Duration::from_secs(60)).await;
    let st = pod.status.unwrap();
    let ready = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    let api = Api::<Pod>::namespaced(c.client.clone(), "default");
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let uid = created.metadata.uid.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=dev.sgsim.pod-uid={uid}")])
            .output()
            .unwrap();
        let vols = Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=dev.sgsim.pod-uid={uid}"),
            ])
            .output()
            .unwrap();
        if out.stdout.is_empty() && vols.stdout.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pod resources not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let evs = c.event_messages(&name).await;
    assert_eq!(
        evs.last().unwrap(),
        &(
            "Normal".to_string(),
            "Killing".to_string(),
            "Stopping container main".to_string()
        )
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_map_is_a_failed_mount_until_it_exists() {
    let c = cluster().await;
    let name = unique("pod-");
    c.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": busybox_image(), "command": ["cat", "/cfg/k"],
                            "volumeMounts": [{"name": "volume-0", "mountPath": "/cfg"}]}],
            "volumes": [{"name": "volume-0", "configMap": {"name": "late"}}],
        }
    }))
    .await;
    let want = (
        "Warning".to_string(),
        "FailedMount".to_string(),
        "MountVolume.SetUp failed for volume \"volume-0\" : configmap \"late\" not found".to_string(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let evs = c.event_messages(&name).await;
        if evs.contains(&want) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{evs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "late", "namespace": "default"},
        "data": {"k": "v"},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let pod = c
        .wait_phase(&name, &["Succeeded", "Failed"], Duration::from_secs(60))
        .await;
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
    let evs = c.event_messages(&name).await;
    assert_eq!(evs.iter().filter(|e| **e == want).count(), 1, "{evs:?}");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_is_registered_ready() {
    let c = cluster().await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    let n = nodes.get(&c.node).await.unwrap();
    let labels = n.metadata.labels.unwrap();
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&c.node));
    let st = n.status.unwrap();
    let ready = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(st.allocatable.unwrap().get("cpu").unwrap().0, "2");
    // Keep the stream import used: watch the node briefly.
    let _ = kube::runtime::watcher(nodes, Default::default()).boxed().next().await;
    c.finish().await;
}
