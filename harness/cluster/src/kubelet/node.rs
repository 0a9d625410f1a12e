//! The Node object a kubelet registers: labels, taints, capacity (= allocatable), addresses, the
//! `Ready` condition and the node info.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::{KubeletConfig, KubeletError};
use crate::k8s::messages::{self, K8sMessages};

/// Create (or update) the Node object of `cfg`, then its status.
pub(super) async fn register_node(
    client: &kube::Client,
    cfg: &KubeletConfig,
    messages: &K8sMessages,
) -> Result<(), KubeletError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.node_name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    labels.extend(cfg.node_labels.clone());
    let mut capacity = cfg.capacity.clone();
    capacity.entry("pods".into()).or_insert_with(|| Quantity("110".into()));
    let now = Time(Timestamp::now());
    let status = NodeStatus {
        capacity: Some(capacity.clone()),
        allocatable: Some(capacity),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.gateway_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.node_name.clone(),
            },
        ]),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some(messages::NODE_READY_REASON.into()),
            message: Some(messages::NODE_READY_MESSAGE.into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now),
        }]),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            kubelet_version: messages.kubelet_version(),
            kube_proxy_version: messages.kubelet_version(),
            container_runtime_version: "docker://sgsim".into(),
            os_image: "sgsim node".into(),
            kernel_version: String::new(),
            boot_id: String::new(),
            machine_id: String::new(),
            system_uuid: String::new(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    };
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: if cfg.taints.is_empty() {
                None
            } else {
                Some(cfg.taints.clone())
            },
            ..NodeSpec::default()
        }),
        status: Some(status.clone()),
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut existing = api
                .get(&cfg.node_name)
                .await
                .map_err(KubeletError::api(format!("get node {}", cfg.node_name)))?;
            existing.metadata.labels = node.metadata.labels.clone();
            existing.spec = node.spec.clone();
            api.replace(&cfg.node_name, &PostParams::default(), &existing)
                .await
                .map_err(KubeletError::api(format!("update node {}", cfg.node_name)))?;
        }
        Err(source) => {
            return Err(KubeletError::Api {
                what: format!("register node {}", cfg.node_name),
                source,
            });
        }
    }
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(KubeletError::api(format!("node {} status", cfg.node_name)))?;
    Ok(())
}
