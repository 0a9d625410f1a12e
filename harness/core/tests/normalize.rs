//! Normalization of a Pod object as the API server returns it, and of logs.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sgsim_core::normalize::{MASK, normalize_log, normalize_pod, pod_yaml};
use sgsim_core::{load, no_files, render_pod};

fn t() -> Time {
    serde_json::from_str("\"2026-11-24T08:21:52Z\"").unwrap()
}

fn live_pod() -> Pod {
    let s = load("p.yaml", include_str!("fixtures/dind_pipeline.yaml"), &no_files).unwrap();
    let mut p = render_pod(&s);
    p.metadata.uid = Some("0f8fad5b-d9cb-469f-a165-70867728950e".into());
    p.metadata.resource_version = Some("4711".into());
    p.metadata.creation_timestamp = Some(t());
    p.spec.as_mut().unwrap().node_name = Some("node-1".into());
    let cid = format!("docker://{}", "ab".repeat(32));
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("10.244.0.7".into()),
        pod_ips: Some(vec![PodIP {
            ip: "10.244.0.7".into(),
        }]),
        host_ip: Some("172.18.0.2".into()),
        start_time: Some(t()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(t()),
            ..Default::default()
        }]),
        container_statuses: Some(vec![ContainerStatus {
            name: "lite-engine".into(),
            image: "harness/ci-lite-engine:1.16.8".into(),
            image_id: "docker-pullable://harness/ci-lite-engine@sha256:0123".into(),
            container_id: Some(cid.clone()),
            ready: true,
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning { started_at: Some(t()) }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        init_container_statuses: Some(vec![ContainerStatus {
            name: "setup-addon".into(),
            image: "harness/ci-addon:1.16.8".into(),
            image_id: "x".into(),
            container_id: Some(cid.clone()),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    container_id: Some(cid),
                    started_at: Some(t()),
                    finished_at: Some(t()),
                    reason: Some("Completed".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

#[test]
fn pod_object_placeholders() {
    let n = normalize_pod(&live_pod());
    let m = &n.metadata;
    assert_eq!(m.uid.as_deref(), Some("<uid>"));
    assert_eq!(m.resource_version.as_deref(), Some("<rv>"));
    assert!(m.creation_timestamp.is_none());
    assert_eq!(m.name.as_deref(), Some("harnesscd-dindgroup-<pod-suffix>"));
    assert_eq!(
        n.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1"),
        "node names stay"
    );
    let st = n.status.as_ref().unwrap();
    assert_eq!(st.pod_ip.as_deref(), Some("<ip>"));
    assert_eq!(st.pod_ips.as_ref().unwrap()[0].ip, "<ip>");
    assert_eq!(st.host_ip.as_deref(), Some("<ip>"));
    assert!(st.start_time.is_none());
    assert!(st.conditions.as_ref().unwrap()[0].last_transition_time.is_none());
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert_eq!(cs.container_id.as_deref(), Some("<container-id>"));
    assert_eq!(cs.image_id, "<image-id>");
    assert!(
        cs.state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at
            .is_none()
    );
    let term = st.init_container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert!(term.started_at.is_none() && term.finished_at.is_none());
    assert_eq!(term.container_id.as_deref(), Some("<container-id>"));
    assert_eq!(term.exit_code, 0);
}

#[test]
fn pod_yaml_has_no_volatile_values() {
    let y = pod_yaml(&live_pod(), &[]).unwrap();
    for bad in ["10.244.0.7", "172.18.0.2", "2026-11-24", "4711", "0f8fad5b", "abababab"] {
        assert!(!y.contains(bad), "{bad} in\n{y}");
    }
    assert!(y.contains("nodeName: node-1"), "{y}");
    // Stable: normalizing twice gives the same text; keys of maps are sorted.
    assert_eq!(y, pod_yaml(&normalize_pod(&live_pod()), &[]).unwrap());
    let labels_at = y.find("  labels:").unwrap();
    let acc = y[labels_at..].find("accountID").unwrap();
    let step = y[labels_at..].find("stepID").unwrap();
    assert!(acc < step);
}

#[test]
fn logs_are_normalized_and_masked() {
    let log = "Starting job to create pod harnesscd-dindgroup-gb7mjhnr on ns namespace
Successfully assigned ns/harnesscd-dindgroup-gb7mjhnr to node-1
Successfully pulled image \"harness/ci-addon:1.16.8\" in 437.806182ms (437.815597ms including waiting)
2026-11-24T08:21:52.123Z token=hunter2 from 10.0.0.3
";
    let out = normalize_log(log, &["hunter2".to_string()]);
    assert_eq!(
        out,
        format!(
            "Starting job to create pod harnesscd-dindgroup-<pod-suffix> on ns namespace
Successfully assigned ns/harnesscd-dindgroup-<pod-suffix> to node-1
Successfully pulled image \"harness/ci-addon:1.16.8\" in <duration> (<duration> including waiting)
<timestamp> token={MASK} from <ip>
"
        )
    );
}

#[test]
fn normalizing_is_idempotent_where_a_placeholder_opens_a_word_boundary() {
    // Found by the normalize fuzz target: one pass left `kube-api-access-x7k2p` (preceded by a
    // digit), the second pass then replaced it (preceded by `<rv>`).
    for text in [
        "resourceVersion=456kube-api-access-x7k2p",
        "resourceVersion: \"123kube-api-access-x7k2p\" 1 of 8",
        "docker://01resourceVersion=45623456789abcdef0123456789abcdef0123456789abcdef0123456789abef0",
    ] {
        let once = sgsim_core::normalize::normalize_log(text, &[]);
        assert_eq!(sgsim_core::normalize::normalize_log(&once, &[]), once, "{text}");
    }
    assert_eq!(
        sgsim_core::normalize::normalize_text("resourceVersion=456kube-api-access-x7k2p"),
        "resourceVersion=<rv>kube-api-access-<suffix>"
    );
}
