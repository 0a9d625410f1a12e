//! One pod's life on the node, in Kubernetes' order: volumes ([`volumes`]), sandbox ([`sandbox`]),
//! init containers to completion, then the containers ([`container`], images by [`image`]), the
//! `activeDeadlineSeconds` kill, and the teardown when the pod is deleted. This file is the pod
//! worker itself: the order of the steps, the pod phase, and the OOM group kill.

mod container;
mod image;
mod sandbox;
mod token;
mod volumes;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bollard::query_parameters::{
    EventsOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodIP};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};
use tokio_util::sync::CancellationToken;

use self::container::{Start, record_exit, run_container, wait_container};
use self::image::Attempts;
use self::sandbox::start_sandbox;
use self::volumes::setup_volumes;
use super::convert::PodId;
use super::status::{Tracker, waiting};
use super::{CONTAINER_NAME_LABEL, POD_UID_LABEL, Shared};
use crate::k8s::events::{EventType, container_field_path, pod_ref};
use crate::k8s::messages;

/// Pause between retries of a failing step (volumes, container config).
const RETRY: Duration = Duration::from_secs(2);

/// Entry point of a pod worker: run the pod, then wait for its deletion and clean up.
pub(crate) async fn run_pod(shared: Arc<Shared>, pod: Pod, cancel: CancellationToken, grace: Arc<AtomicI64>) {
    let id = PodId::of(&pod);
    let mut st = Tracker::new(shared.client.clone(), shared.gateway_ip.to_string(), &pod);
    enum End {
        Done,
        Cancelled,
        Deadline,
    }
    let deadline = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    if !cancel.is_cancelled() {
        let end = {
            let life = lifecycle(&shared, &pod, &id, &mut st);
            let deadline_sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep(d).await,
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = life => End::Done,
                () = cancel.cancelled() => End::Cancelled,
                () = deadline_sleep => End::Deadline,
            }
        };
        if let End::Deadline = end {
            deadline_exceeded(&shared, &pod, &id, &mut st).await;
        }
        cancel.cancelled().await;
    }
    teardown(&shared, &pod, &id, grace.load(Ordering::SeqCst)).await;
}

async fn event(shared: &Shared, pod: &Pod, field: Option<String>, t: EventType, reason: &str, msg: &str) {
    shared
        .recorder
        .emit(&shared.client, pod_ref(pod, field), t, reason, msg)
        .await;
}

/// The pod's life until every container has terminated (or an init container failed).
async fn lifecycle(shared: &Shared, pod: &Pod, id: &PodId, st: &mut Tracker) {
    st.push().await;
    let spec = pod.spec.clone().unwrap_or_default();

    // Volumes.
    // Each distinct failure is reported once (Kubernetes aggregates repeats into one Event).
    let mut reported: Option<String> = None;
    let volumes = loop {
        match setup_volumes(shared, id, &spec.volumes.clone().unwrap_or_default()).await {
            Ok(v) => break v,
            Err(msg) => {
                if let Some(msg) = msg
                    && reported.as_deref() != Some(msg.as_str())
                {
                    event(shared, pod, None, EventType::Warning, "FailedMount", &msg).await;
                    reported = Some(msg);
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    };

    // Sandbox.
    let sandbox_id = loop {
        match start_sandbox(shared, pod, id).await {
            Ok((sid, ip)) => {
                st.status.pod_ip = Some(ip.clone());
                st.status.pod_ips = Some(vec![PodIP { ip }]);
                if shared.messages.ready_to_start_condition {
                    st.set_condition("PodReadyToStartContainers", true, None, None);
                }
                break sid;
            }
            Err(e) => {
                let msg = messages::failed_create_sandbox(&e);
                if reported.as_deref() != Some(msg.as_str()) {
                    event(shared, pod, None, EventType::Warning, "FailedCreatePodSandBox", &msg).await;
                    reported = Some(msg);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    st.push().await;

    // Init containers, in order, each to completion.
    let inits = spec.init_containers.clone().unwrap_or_default();
    for (i, c) in inits.iter().enumerate() {
        let mut attempts = Attempts::default();
        let Start::Started(cid) = run_container(
            shared,
            pod,
            id,
            st,
            (true, i, c),
            &sandbox_id,
            &volumes,
            &mut attempts,
            false,
        )
        .await
        else {
            fail_pod(st);
            st.push().await;
            return;
        };
        st.push().await;
        let exit = wait_container(shared, st, true, i, &cid).await;
        if exit != 0 {
            fail_pod(st);
            st.push().await;
            return;
        }
        st.push().await;
    }
    for i in 0..st.names.len() {
        st.main_mut(i).state = Some(waiting("ContainerCreating", None));
    }

    // Regular containers, in spec order, as SyncPod starts them: one that cannot start yet (an
    // image, config or create error) does not hold up the others; later syncs retry it with
    // back-off. The pod stays Pending while one has not started.
    let mut running = Vec::new();
    let mut pending = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let mut attempts = Attempts::default();
        match run_container(
            shared,
            pod,
            id,
            st,
            (false, i, c),
            &sandbox_id,
            &volumes,
            &mut attempts,
            true,
        )
        .await
        {
            Start::Started(cid) => running.push((i, cid)),
            Start::Failed => {}
            Start::NotYet => pending.push((i, attempts)),
        }
    }
    if pending.is_empty() && !running.is_empty() {
        st.status.phase = Some("Running".into());
    }
    st.push().await;
    if !pending.is_empty() {
        for (i, mut attempts) in pending {
            let c = &spec.containers[i];
            if let Start::Started(cid) = run_container(
                shared,
                pod,
                id,
                st,
                (false, i, c),
                &sandbox_id,
                &volumes,
                &mut attempts,
                false,
            )
            .await
            {
                running.push((i, cid));
            }
        }
        if !running.is_empty() {
            st.status.phase = Some("Running".into());
        }
        st.push().await;
    }

    // memory.oom.group: an OOM kill in a container with a memory limit ends the whole container.
    let since = Timestamp::now().as_second() - 5;
    let _oom_watchers: Vec<AbortOnDrop> = running
        .iter()
        .filter(|(i, _)| has_memory_limit(&spec.containers[*i]))
        .map(|(_, cid)| AbortOnDrop(tokio::spawn(oom_group_kill(shared.docker.clone(), cid.clone(), since))))
        .collect();

    // Wait for every container to exit.
    let docker = shared.docker.clone();
    let mut waits: FuturesUnordered<_> = running
        .into_iter()
        .map(|(i, cid)| {
            let docker = docker.clone();
            async move {
                let mut s = docker.wait_container(&cid, None);
                while s.next().await.is_some() {}
                (i, cid)
            }
        })
        .collect();
    while let Some((i, cid)) = waits.next().await {
        record_exit(shared, st, false, i, &cid).await;
        if waits.is_empty() {
            finish_phase(st);
        }
        st.push().await;
    }
    finish_phase(st);
    st.push().await;
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn has_memory_limit(c: &Container) -> bool {
    c.resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|l| l.contains_key("memory"))
}

/// Kubernetes (≥ 1.28 on cgroup v2) sets `memory.oom.group` on a container's cgroup, so the kernel's
/// OOM killer ends every process of the container, not only the one that exceeded the limit. The
/// nodes here may run cgroup v1, where only that process dies: on the runtime's `oom` event for
/// the container, the kubelet kills the rest (SIGKILL). The runtime then reports the exit as
/// OOM-killed (exit code 137), which the status shows as reason `OOMKilled`.
async fn oom_group_kill(docker: bollard::Docker, cid: String, since: i64) {
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([
        ("type", vec!["container"]),
        ("event", vec!["oom"]),
        ("container", vec![cid.as_str()]),
    ]);
    let opts = EventsOptionsBuilder::default()
        .since(&since.to_string())
        .filters(&filters)
        .build();
    let mut events = docker.events(Some(opts));
    // The first event decides: an OOM kills the container; an error ends the watch.
    match events.next().await {
        Some(Ok(_)) => {
            tracing::debug!(container = %cid, "OOM in container: killing the container (memory.oom.group)");
            let kill = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
            let _ = docker.kill_container(&cid, Some(kill)).await;
        }
        Some(Err(e)) => tracing::debug!(container = %cid, error = %e, "docker events"),
        None => {}
    }
}

fn terminated_exit(s: &ContainerStatus) -> Option<i32> {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// All main containers terminated → Succeeded (all 0) or Failed.
fn finish_phase(st: &mut Tracker) {
    let mains = st.status.container_statuses.clone().unwrap_or_default();
    let exits: Vec<Option<i32>> = mains.iter().map(terminated_exit).collect();
    if exits.iter().all(Option::is_some) {
        let ok = exits.iter().all(|e| *e == Some(0));
        st.status.phase = Some(if ok { "Succeeded" } else { "Failed" }.into());
    }
}

fn fail_pod(st: &mut Tracker) {
    st.status.phase = Some("Failed".into());
}

async fn deadline_exceeded(shared: &Shared, pod: &Pod, id: &PodId, st: &mut Tracker) {
    let msg = messages::DEADLINE_EXCEEDED;
    event(shared, pod, None, EventType::Normal, "DeadlineExceeded", msg).await;
    // Kill what runs, then record the exits.
    let containers = pod_containers(shared, id).await;
    for (name, cid, running) in &containers {
        if *running && name != "POD" {
            let _ = shared
                .docker
                .stop_container(cid, Some(StopContainerOptionsBuilder::default().t(0).build()))
                .await;
        }
    }
    let spec = pod.spec.clone().unwrap_or_default();
    for (init, list) in [
        (true, spec.init_containers.clone().unwrap_or_default()),
        (false, spec.containers.clone()),
    ] {
        for (i, c) in list.iter().enumerate() {
            if let Some((_, cid, _)) = containers.iter().find(|(n, _, _)| n == &c.name) {
                record_exit(shared, st, init, i, cid).await;
            }
        }
    }
    st.status.phase = Some("Failed".into());
    st.status.reason = Some("DeadlineExceeded".into());
    st.status.message = Some(msg.into());
    st.push().await;
}

/// (container name label, id, running) of every container of the pod on the node.
async fn pod_containers(shared: &Shared, id: &PodId) -> Vec<(String, String, bool)> {
    let mut labels: Vec<String> = shared.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.push(format!("{POD_UID_LABEL}={}", id.uid));
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&HashMap::from([("label".to_string(), labels)]))
        .build();
    shared
        .docker
        .list_containers(Some(opts))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            let name = c.labels.as_ref()?.get(CONTAINER_NAME_LABEL)?.clone();
            let running = c.state.as_ref().map(|s| s.to_string()) == Some("running".into());
            Some((name, c.id?, running))
        })
        .collect()
}

/// Stop (grace period) and remove everything of the pod; finish a graceful deletion.
async fn teardown(shared: &Shared, pod: &Pod, id: &PodId, grace: i64) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &id.namespace);
    let current = api
        .get_opt(&id.name)
        .await
        .ok()
        .flatten()
        .filter(|p| p.metadata.uid.as_deref() == Some(id.uid.as_str()));
    let spec = pod.spec.clone().unwrap_or_default();
    let containers = pod_containers(shared, id).await;
    let mut stops = Vec::new();
    for (name, cid, running) in &containers {
        if !*running || name == "POD" || name == "volume-populate" {
            continue;
        }
        let init = spec.init_containers.iter().flatten().any(|c| &c.name == name);
        event(
            shared,
            pod,
            Some(container_field_path(init, name)),
            EventType::Normal,
            "Killing",
            &shared.messages.killing(name),
        )
        .await;
        let t = i32::try_from(grace).unwrap_or(30);
        stops.push(async move {
            let _ = shared
                .docker
                .stop_container(cid, Some(StopContainerOptionsBuilder::default().t(t).build()))
                .await;
        });
    }
    futures::future::join_all(stops).await;
    let uid = id.uid.clone();
    if let Err(e) = shared.sweep(&[(POD_UID_LABEL, uid.as_str())]).await {
        tracing::warn!(error = %e, pod = %id.name, "pod cleanup failed");
    }
    if let Some(p) = current
        && p.metadata.deletion_timestamp.is_some()
    {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(id.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let _ = api.delete(&id.name, &dp).await;
    }
}
