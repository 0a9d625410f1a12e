//! One container of a pod on the node: its image ([`super::image`]), its config check
//! (`runAsNonRoot`, environment with the `kubernetes` Service variables and `fieldRef`s), create and
//! start with the `Created`/`Started`/`Failed` events, and its exit recorded in the status.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::image::{Attempts, ensure_image};
use super::{RETRY, event};
use crate::k8s::events::{EventType, container_field_path};
use crate::kubelet::Shared;
use crate::kubelet::config;
use crate::kubelet::convert::{self, NodeVolume, PodId};
use crate::kubelet::status::{Tracker, now, waiting};

/// How an attempt to start a container ended.
#[derive(Debug)]
pub(super) enum Start {
    /// Running: its container id.
    Started(String),
    /// Created but it failed to start (its status says why); not retried.
    Failed,
    /// Not started yet (an image, config or create error, reported): a later sync retries.
    NotYet,
}

/// Pull (per policy), create and start one container (its status says why when it does not
/// start). With `once`, one attempt, as one pass of the kubelet's SyncPod over the pod's
/// containers; otherwise image and config errors are retried until they resolve.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_container(
    shared: &Shared,
    pod: &Pod,
    id: &PodId,
    st: &mut Tracker,
    (init, i, c): (bool, usize, &Container),
    sandbox_id: &str,
    volumes: &HashMap<String, NodeVolume>,
    attempts: &mut Attempts,
    once: bool,
) -> Start {
    let fp = container_field_path(init, &c.name);
    let m = shared.messages;
    let Some(image_id) = ensure_image(shared, pod, st, (init, i, c), attempts, once).await else {
        return Start::NotYet;
    };
    let last_err = &mut attempts.last_err;
    let env = loop {
        let r = match verify_run_as_non_root(shared, pod, c).await {
            Some(msg) => Err(msg),
            None => {
                let service_env = kubernetes_service_env(&shared.gateway_ip.to_string());
                config::resolve_env(&shared.client, pod, c, |path| field_value(pod, st, path), service_env).await
            }
        };
        match r {
            Ok(env) => break env,
            Err(msg) => {
                if last_err.as_deref() != Some(msg.as_str()) {
                    st.status_mut(init, i).state = Some(waiting("CreateContainerConfigError", Some(msg.clone())));
                    st.push().await;
                    event(
                        shared,
                        pod,
                        Some(fp.clone()),
                        EventType::Warning,
                        "Failed",
                        &m.error(&msg),
                    )
                    .await;
                    *last_err = Some(msg);
                }
                if once {
                    return Start::NotYet;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    let body = convert::container_body(shared, pod, id, c, &env, sandbox_id, volumes);
    let opts = CreateContainerOptionsBuilder::default()
        .name(&id.container_name(&c.name))
        .build();
    let cid = loop {
        match shared.docker.create_container(Some(opts.clone()), body.clone()).await {
            Ok(r) => break r.id,
            Err(e) => {
                let msg = docker_message(&e);
                if last_err.as_deref() != Some(msg.as_str()) {
                    st.status_mut(init, i).state = Some(waiting("CreateContainerError", Some(msg.clone())));
                    st.push().await;
                    event(
                        shared,
                        pod,
                        Some(fp.clone()),
                        EventType::Warning,
                        "Failed",
                        &m.error(&msg),
                    )
                    .await;
                    *last_err = Some(msg);
                }
                // A half-created container of the same name would block the retry.
                let _ = shared
                    .docker
                    .remove_container(
                        &id.container_name(&c.name),
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
                if once {
                    return Start::NotYet;
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    event(
        shared,
        pod,
        Some(fp.clone()),
        EventType::Normal,
        "Created",
        &m.created(&c.name),
    )
    .await;
    {
        let s = st.status_mut(init, i);
        s.container_id = Some(format!("docker://{cid}"));
        s.image_id = image_id;
    }
    if let Err(e) = shared.docker.start_container(&cid, None).await {
        let msg = docker_message(&e);
        event(shared, pod, Some(fp), EventType::Warning, "Failed", &m.error(&msg)).await;
        let at = now();
        let s = st.status_mut(init, i);
        s.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 128,
                reason: Some("StartError".into()),
                message: Some(msg),
                started_at: Some(Time(Timestamp::UNIX_EPOCH)),
                finished_at: Some(at),
                container_id: Some(format!("docker://{cid}")),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
        s.started = Some(false);
        return Start::Failed;
    }
    event(shared, pod, Some(fp), EventType::Normal, "Started", &m.started(&c.name)).await;
    let started_at = inspect(shared, &cid)
        .await
        .and_then(|r| r.state.and_then(|s| s.started_at))
        .and_then(|s| parse_time(&s))
        .unwrap_or_else(now);
    let s = st.status_mut(init, i);
    s.state = Some(ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(started_at),
        }),
        ..ContainerState::default()
    });
    s.started = Some(true);
    s.ready = !init;
    Start::Started(cid)
}

/// [`config::run_as_non_root_error`] with the user of the container's image on the node.
async fn verify_run_as_non_root(shared: &Shared, pod: &Pod, c: &Container) -> Option<String> {
    let mut user = String::new();
    if config::needs_image_user(pod, c) {
        let image = shared.images.local_ref(&c.image.clone().unwrap_or_default());
        user = shared
            .docker
            .inspect_image(&image)
            .await
            .ok()
            .and_then(|i| i.config)
            .and_then(|cfg| cfg.user)
            .unwrap_or_default();
    }
    config::run_as_non_root_error(pod, c, &user)
}

/// Wait for a container's exit; record it; return its exit code.
pub(super) async fn wait_container(shared: &Shared, st: &mut Tracker, init: bool, i: usize, cid: &str) -> i32 {
    let mut s = shared.docker.wait_container(cid, None);
    while s.next().await.is_some() {}
    record_exit(shared, st, init, i, cid).await
}

pub(super) async fn record_exit(shared: &Shared, st: &mut Tracker, init: bool, i: usize, cid: &str) -> i32 {
    let Some(info) = inspect(shared, cid).await else {
        return -1;
    };
    let state = info.state.unwrap_or_default();
    if state.running == Some(true) {
        return 0;
    }
    let exit = i32::try_from(state.exit_code.unwrap_or(-1)).unwrap_or(-1);
    let reason = if state.oom_killed == Some(true) {
        "OOMKilled"
    } else if exit == 0 {
        "Completed"
    } else {
        "Error"
    };
    let s = st.status_mut(init, i);
    s.state = Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: exit,
            reason: Some(reason.into()),
            started_at: state.started_at.as_deref().and_then(parse_time),
            finished_at: state.finished_at.as_deref().and_then(parse_time),
            container_id: Some(format!("docker://{cid}")),
            message: state.error.filter(|e| !e.is_empty()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    });
    // prober_manager.go UpdatePodStatus: a (non-restartable) init container that terminated
    // with exit code 0 is ready; any other terminated container is not.
    s.ready = init && exit == 0;
    s.started = Some(false);
    exit
}

async fn inspect(shared: &Shared, cid: &str) -> Option<ContainerInspectResponse> {
    shared.docker.inspect_container(cid, None).await.ok()
}

fn parse_time(s: &str) -> Option<Time> {
    let t: Timestamp = s.parse().ok()?;
    if t.as_second() <= 0 {
        return None;
    }
    Some(Time(t))
}

pub(super) fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The docker-links-style variables of the `kubernetes` Service (port 443/TCP, named `https`),
/// pointing at the node's gateway, where the node agent forwards to sgsim's TLS endpoint.
fn kubernetes_service_env(host: &str) -> Vec<(String, String)> {
    let url = format!("tcp://{host}:443");
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), host.to_string()),
        ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), "443".into()),
        ("KUBERNETES_PORT".into(), url.clone()),
        ("KUBERNETES_PORT_443_TCP".into(), url),
        ("KUBERNETES_PORT_443_TCP_PROTO".into(), "tcp".into()),
        ("KUBERNETES_PORT_443_TCP_PORT".into(), "443".into()),
        ("KUBERNETES_PORT_443_TCP_ADDR".into(), host.to_string()),
    ]
}

fn field_value(pod: &Pod, st: &Tracker, path: &str) -> String {
    let md = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let bracket = |prefix: &str, map: &Option<BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")?;
        Some(map.as_ref().and_then(|m| m.get(key).cloned()).unwrap_or_default())
    };
    if let Some(v) = bracket("metadata.labels", &md.labels) {
        return v;
    }
    if let Some(v) = bracket("metadata.annotations", &md.annotations) {
        return v;
    }
    match path {
        "metadata.name" => md.name.clone().unwrap_or_default(),
        "metadata.namespace" => md.namespace.clone().unwrap_or_default(),
        "metadata.uid" => md.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => st.status.host_ip.clone().unwrap_or_default(),
        "status.podIP" | "status.podIPs" => st.status.pod_ip.clone().unwrap_or_default(),
        _ => String::new(),
    }
}
