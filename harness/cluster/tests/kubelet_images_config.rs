//! The kubelet against the host Docker daemon: image handling (pull policies, pull failures and
//! back-off, `ErrImageNeverPull`) and container configuration (configMap volumes and env,
//! `runAsNonRoot`, missing configMaps as `FailedMount`), with Kubernetes' exact events.
//! Helpers in `kubelet_common`.

mod kubelet_common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};

use kubelet_common::{busybox_image, cluster, unique};

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
