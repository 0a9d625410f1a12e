//! The kubelet (with the scheduler and the embedded API server) against the host Docker daemon as
//! if it were a node: a pod's life (init containers, emptyDir, localhost between containers, exit
//! codes, `activeDeadlineSeconds`, privileged containers, deletion) and the Node it registers.
//! Helpers in `kubelet_common`; image and container-config cases in `kubelet_images_config.rs`.

mod kubelet_common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams};

use kubelet_common::{busybox_image, cluster, cluster_with, docker, unique};

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
