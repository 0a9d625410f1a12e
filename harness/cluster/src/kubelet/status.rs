//! The status a kubelet reports for one pod (phase, conditions, container statuses), shared by the
//! Docker-backed kubelet and the fake runtime tier's kubelet so that both write the same objects.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::k8s::messages;

/// The status the kubelet reports for one pod.
pub(crate) struct Tracker {
    client: kube::Client,
    name: String,
    namespace: String,
    pub(crate) status: PodStatus,
    pub(crate) names: Vec<String>,
}

pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}

pub(crate) fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn new_status(c: &Container, reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting(reason, None)),
        ..ContainerStatus::default()
    }
}

impl Tracker {
    /// The status of a pod just bound to a node whose address is `host_ip`.
    pub(crate) fn new(client: kube::Client, host_ip: String, pod: &Pod) -> Tracker {
        let spec = pod.spec.clone().unwrap_or_default();
        let inits: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
        let main_reason = if inits.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let scheduled_at = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled" && c.status == "True"))
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(now);
        let mut t = Tracker {
            client,
            name: pod.metadata.name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            status: PodStatus {
                phase: Some("Pending".into()),
                host_ip: Some(host_ip.clone()),
                host_ips: Some(vec![HostIP { ip: host_ip }]),
                start_time: Some(now()),
                qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(scheduled_at),
                    ..PodCondition::default()
                }]),
                init_container_statuses: if inits.is_empty() {
                    None
                } else {
                    Some(inits.iter().map(|c| new_status(c, "PodInitializing")).collect())
                },
                container_statuses: Some(spec.containers.iter().map(|c| new_status(c, main_reason)).collect()),
                ..PodStatus::default()
            },
            names: spec.containers.iter().map(|c| c.name.clone()).collect(),
        };
        t.refresh_conditions();
        t
    }

    pub(crate) fn set_condition(&mut self, type_: &str, status: bool, reason: Option<&str>, message: Option<String>) {
        let conds = self.status.conditions.get_or_insert_with(Vec::new);
        let status = if status { "True" } else { "False" };
        let ord = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        match conds.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Some(now());
                }
                c.status = status.into();
                c.reason = reason.map(str::to_string);
                c.message = message;
            }
            None => {
                conds.push(PodCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: reason.map(str::to_string),
                    message,
                    last_transition_time: Some(now()),
                    ..PodCondition::default()
                });
                conds.sort_by_key(|c| ord.iter().position(|t| *t == c.type_).unwrap_or(ord.len()));
            }
        }
    }

    pub(crate) fn init_mut(&mut self, i: usize) -> &mut ContainerStatus {
        &mut self.status.init_container_statuses.get_or_insert_with(Vec::new)[i]
    }

    pub(crate) fn main_mut(&mut self, i: usize) -> &mut ContainerStatus {
        &mut self.status.container_statuses.get_or_insert_with(Vec::new)[i]
    }

    pub(crate) fn status_mut(&mut self, init: bool, i: usize) -> &mut ContainerStatus {
        if init { self.init_mut(i) } else { self.main_mut(i) }
    }

    pub(crate) fn phase(&self) -> &str {
        self.status.phase.as_deref().unwrap_or("Pending")
    }

    /// Recompute Initialized / ContainersReady / Ready from the container statuses.
    pub(crate) fn refresh_conditions(&mut self) {
        let phase = self.phase().to_string();
        let inits = self.status.init_container_statuses.clone().unwrap_or_default();
        let incomplete: Vec<String> = inits
            .iter()
            .filter(|s| {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_none_or(|t| t.exit_code != 0)
            })
            .map(|s| s.name.clone())
            .collect();
        if incomplete.is_empty() {
            let reason = if phase == "Succeeded" && !inits.is_empty() {
                Some("PodCompleted")
            } else {
                None
            };
            self.set_condition("Initialized", true, reason, None);
        } else {
            self.set_condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(messages::containers_incomplete(&incomplete)),
            );
        }
        let mains = self.status.container_statuses.clone().unwrap_or_default();
        let unready: Vec<String> = mains.iter().filter(|s| !s.ready).map(|s| s.name.clone()).collect();
        if unready.is_empty() {
            self.set_condition("ContainersReady", true, None, None);
            self.set_condition("Ready", true, None, None);
        } else if phase == "Succeeded" {
            self.set_condition("ContainersReady", false, Some("PodCompleted"), None);
            self.set_condition("Ready", false, Some("PodCompleted"), None);
        } else {
            let msg = messages::containers_unready(&unready);
            self.set_condition("ContainersReady", false, Some("ContainersNotReady"), Some(msg.clone()));
            self.set_condition("Ready", false, Some("ContainersNotReady"), Some(msg));
        }
    }

    /// Send the status to the API server (JSON merge patch of `status`; replace as fallback).
    /// The response (the whole pod) is read as text, never decoded: nothing here uses it.
    pub(crate) async fn push(&mut self) {
        self.refresh_conditions();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "status": self.status });
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", self.namespace))
            .patch_subresource("status", &self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .map_err(kube::Error::BuildRequest);
        let sent = match request {
            Ok(r) => self.client.request_text(r).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::debug!(error = %e, "status patch failed; trying replace");
                if let Ok(mut p) = api.get_status(&self.name).await {
                    p.status = Some(self.status.clone());
                    if let Err(e) = api.replace_status(&self.name, &PostParams::default(), &p).await {
                        tracing::warn!(error = %e, pod = %self.name, "could not update pod status");
                    }
                }
            }
        }
    }
}
