//! One pod's life on the node: volumes, sandbox, init containers, containers, status, deletion.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, KeyToPath,
    Pod, PodIP, Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio_util::sync::CancellationToken;

use super::config::{self, secret_data};
use super::convert::{self, NodeVolume, PodId};
use super::events::{EventType, pod_ref};
use super::status::{Tracker, now, waiting};
use super::{CONTAINER_NAME_LABEL, POD_UID_LABEL, PullOutcome, PullPolicy, Shared};

const RETRY: Duration = Duration::from_secs(2);

/// Files of a volume: (path inside the volume, content, mode).
type VolumeFiles = Vec<(String, Vec<u8>, u32)>;
/// A volume to populate: (Docker volume name, root mode, files).
type Populate = (String, u32, VolumeFiles);

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

fn field_path(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
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
            Err(msg) => {
                let msg = format!("Failed to create pod sandbox: {msg}");
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
        let Some(cid) = run_container(shared, pod, id, st, true, i, c, &sandbox_id, &volumes).await else {
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

    // Regular containers, in spec order.
    let mut running = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        if let Some(cid) = run_container(shared, pod, id, st, false, i, c, &sandbox_id, &volumes).await {
            running.push((i, cid));
        }
    }
    if !running.is_empty() {
        st.status.phase = Some("Running".into());
    }
    st.push().await;

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
    while let Some(ev) = events.next().await {
        match ev {
            Ok(_) => {
                tracing::debug!(container = %cid, "OOM in container: killing the container (memory.oom.group)");
                let kill = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
                let _ = docker.kill_container(&cid, Some(kill)).await;
                return;
            }
            Err(e) => {
                tracing::debug!(container = %cid, error = %e, "docker events");
                return;
            }
        }
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
    let msg = "Pod was active on the node longer than the specified deadline";
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

/// Pull (per policy), create and start one container; `None` when it could not be started (its
/// status then says why). Retries image and config errors until they resolve.
#[allow(clippy::too_many_arguments)]
async fn run_container(
    shared: &Shared,
    pod: &Pod,
    id: &PodId,
    st: &mut Tracker,
    init: bool,
    i: usize,
    c: &Container,
    sandbox_id: &str,
    volumes: &HashMap<String, NodeVolume>,
) -> Option<String> {
    let fp = field_path(init, &c.name);
    let m = shared.messages;
    let image_id = ensure_image(shared, pod, st, init, i, c).await;
    // Config errors (runAsNonRoot, missing configMap/secret keys) and create errors are retried;
    // each distinct message is reported once (Kubernetes aggregates the repeats into one Event).
    let mut last_err: Option<String> = None;
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
                    last_err = Some(msg);
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
                    last_err = Some(msg);
                }
                // A half-created container of the same name would block the retry.
                let _ = shared
                    .docker
                    .remove_container(
                        &id.container_name(&c.name),
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
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
        return None;
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
    Some(cid)
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
async fn wait_container(shared: &Shared, st: &mut Tracker, init: bool, i: usize, cid: &str) -> i32 {
    let mut s = shared.docker.wait_container(cid, None);
    while s.next().await.is_some() {}
    record_exit(shared, st, init, i, cid).await
}

async fn record_exit(shared: &Shared, st: &mut Tracker, init: bool, i: usize, cid: &str) -> i32 {
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

fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Kubernetes' image handling for one container (image_manager.go): decide by policy and
/// presence, emit `Pulled`/`Pulling`/`Failed`/`BackOff`/`ErrImageNeverPull`, retry with back-off.
/// Returns the image id for the status.
async fn ensure_image(shared: &Shared, pod: &Pod, st: &mut Tracker, init: bool, i: usize, c: &Container) -> String {
    let image = c.image.clone().unwrap_or_default();
    let fp = Some(field_path(init, &c.name));
    let m = shared.messages;
    let policy = PullPolicy::of(c.image_pull_policy.as_deref(), &image);
    let mut failures: u32 = 0;
    let mut never_reported = false;
    loop {
        let present = match shared.images.is_present(&image).await {
            Ok(p) => p,
            Err(e) => {
                let msg = m.inspect_failed(&image, &e.to_string());
                event(shared, pod, fp.clone(), EventType::Warning, "InspectFailed", &msg).await;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.error("ImageInspectError"),
                )
                .await;
                st.status_mut(init, i).state = Some(waiting("ImageInspectError", Some(msg)));
                st.push().await;
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        };
        let should_pull = match policy {
            PullPolicy::Never => false,
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
        };
        if !should_pull {
            if present {
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Normal,
                    "Pulled",
                    &m.already_present(&image),
                )
                .await;
                return image_id(shared, &image).await;
            }
            if !never_reported {
                never_reported = true;
                let msg = m.never_pull(&image);
                event(shared, pod, fp.clone(), EventType::Warning, "ErrImageNeverPull", &msg).await;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.error("ErrImageNeverPull"),
                )
                .await;
                st.status_mut(init, i).state = Some(waiting("ErrImageNeverPull", Some(msg)));
                st.push().await;
            }
            tokio::time::sleep(RETRY).await;
            continue;
        }
        if failures > 0 {
            let msg = m.backoff_pull(&image);
            event(shared, pod, fp.clone(), EventType::Normal, "BackOff", &msg).await;
            event(
                shared,
                pod,
                fp.clone(),
                EventType::Warning,
                "Failed",
                &m.error("ImagePullBackOff"),
            )
            .await;
            st.status_mut(init, i).state = Some(waiting("ImagePullBackOff", Some(msg)));
            st.push().await;
            let secs = (10u64 << (failures - 1).min(5)).min(300);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        event(
            shared,
            pod,
            fp.clone(),
            EventType::Normal,
            "Pulling",
            &m.pulling(&image),
        )
        .await;
        let start = Instant::now();
        let credentials = crate::registry::pod_pull_credentials(&shared.client, pod, &image).await;
        match shared.images.ensure_with_credentials(&image, policy, credentials).await {
            Ok(outcome) => {
                let (took, waited) = match outcome {
                    PullOutcome::Pulled { took, waited } => (took, waited),
                    PullOutcome::AlreadyPresent => (start.elapsed(), start.elapsed()),
                };
                let size = image_size(shared, &image).await;
                let msg = m.pulled(&image, took, waited, size);
                event(shared, pod, fp.clone(), EventType::Normal, "Pulled", &msg).await;
                return image_id(shared, &image).await;
            }
            Err(e) => {
                failures += 1;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.failed_pull(&image, &e.to_string()),
                )
                .await;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.error("ErrImagePull"),
                )
                .await;
                st.status_mut(init, i).state = Some(waiting("ErrImagePull", Some(e.to_string())));
                st.push().await;
            }
        }
    }
}

async fn image_id(shared: &Shared, image: &str) -> String {
    match shared.docker.inspect_image(&shared.images.local_ref(image)).await {
        Ok(info) => match info.repo_digests.as_ref().and_then(|d| d.first()) {
            Some(d) => format!("docker-pullable://{d}"),
            None => format!("docker://{}", info.id.unwrap_or_default()),
        },
        Err(_) => String::new(),
    }
}

async fn image_size(shared: &Shared, image: &str) -> Option<u64> {
    let info = shared
        .docker
        .inspect_image(&shared.images.local_ref(image))
        .await
        .ok()?;
    info.size.and_then(|s| u64::try_from(s).ok())
}

/// The docker-links-style variables of the `kubernetes` Service (port 443/TCP, named `https`),
/// pointing at the node's gateway, where the node agent forwards to sgsim's TLS endpoint.
pub(crate) fn kubernetes_service_env(host: &str) -> Vec<(String, String)> {
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

async fn get_config_map(shared: &Shared, ns: &str, name: &str) -> Option<ConfigMap> {
    config::get_config_map(&shared.client, ns, name).await
}

async fn get_secret(shared: &Shared, ns: &str, name: &str) -> Option<Secret> {
    config::get_secret(&shared.client, ns, name).await
}

/// Create the pod's volumes on the node. Emits `FailedMount` and returns `Err` while a configMap
/// or secret is missing.
async fn setup_volumes(
    shared: &Shared,
    id: &PodId,
    volumes: &[Volume],
) -> Result<HashMap<String, NodeVolume>, Option<String>> {
    let ns = id.namespace.clone();
    let mut out = HashMap::new();
    let mut to_populate: Vec<Populate> = Vec::new();
    for v in volumes {
        if let Some(hp) = &v.host_path {
            out.insert(v.name.clone(), NodeVolume::Bind { path: hp.path.clone() });
            continue;
        }
        // Content for configMap / secret volumes: (path, bytes, mode).
        let mut files: Option<Vec<(String, Vec<u8>, u32)>> = None;
        if let Some(cmv) = &v.config_map {
            match get_config_map(shared, &ns, &cmv.name).await {
                Some(cm) => {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    for (k, b) in cm.binary_data.unwrap_or_default() {
                        data.insert(k, b.0);
                    }
                    files = Some(project(&data, cmv.items.as_deref(), cmv.default_mode));
                }
                None if cmv.optional == Some(true) => files = Some(Vec::new()),
                None => {
                    return Err(Some(failed_mount(
                        &v.name,
                        &format!("configmap \"{}\" not found", cmv.name),
                    )));
                }
            }
        } else if let Some(sv) = &v.secret {
            let name = sv.secret_name.clone().unwrap_or_default();
            match get_secret(shared, &ns, &name).await {
                Some(s) => files = Some(project(&secret_data(&s), sv.items.as_deref(), sv.default_mode)),
                None if sv.optional == Some(true) => files = Some(Vec::new()),
                None => {
                    return Err(Some(failed_mount(&v.name, &format!("secret \"{name}\" not found"))));
                }
            }
        }
        if let Some(pvc) = &v.persistent_volume_claim {
            // sgsim provisions every claim as a node-local Docker volume shared by the claim's pods;
            // one per cluster (trial), since parallel trials share the physical node.
            let cluster = shared
                .labels
                .get("dev.sgsim.trial")
                .map(|t| format!("{t}_"))
                .unwrap_or_default();
            let name = format!("sgsim_pvc_{cluster}{ns}_{}", pvc.claim_name);
            let mut labels = shared.resource_labels("");
            labels.remove(POD_UID_LABEL);
            let req = VolumeCreateRequest {
                name: Some(name.clone()),
                driver: Some("local".into()),
                labels: Some(labels),
                ..VolumeCreateRequest::default()
            };
            if let Err(e) = shared.docker.create_volume(req).await {
                tracing::warn!(error = %e, volume = %name, "could not create volume");
                return Err(None);
            }
            out.insert(v.name.clone(), NodeVolume::Docker { name });
            continue;
        }
        if let Some(pr) = &v.projected {
            let mut fs = Vec::new();
            let mode = u32::try_from(pr.default_mode.unwrap_or(0o644)).unwrap_or(0o644);
            for src in pr.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let sa = pod_service_account(shared, &id.namespace, &id.name).await;
                    let token =
                        match request_token(shared, &ns, &sa, id, t.expiration_seconds, t.audience.clone()).await {
                            Some(token) => token,
                            None => service_account_token(&ns, &sa, id),
                        };
                    fs.push((t.path.clone(), token.into_bytes(), mode));
                }
                if let Some(cm) = &src.config_map
                    && let Some(c) = get_config_map(shared, &ns, &cm.name).await
                {
                    let data: BTreeMap<String, Vec<u8>> = c
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    fs.extend(project(&data, cm.items.as_deref(), Some(mode as i32)));
                }
                if let Some(sec) = &src.secret
                    && let Some(s) = get_secret(shared, &ns, &sec.name).await
                {
                    fs.extend(project(&secret_data(&s), sec.items.as_deref(), Some(mode as i32)));
                }
                if let Some(d) = &src.downward_api {
                    for it in d.items.iter().flatten() {
                        if let Some(f) = &it.field_ref {
                            let v = match f.field_path.as_str() {
                                "metadata.namespace" => ns.clone(),
                                "metadata.name" => id.name.clone(),
                                "metadata.uid" => id.uid.clone(),
                                _ => String::new(),
                            };
                            fs.push((it.path.clone(), v.into_bytes(), mode));
                        }
                    }
                }
            }
            files = Some(fs);
        }
        let name = id.volume_name(&v.name);
        let req = VolumeCreateRequest {
            name: Some(name.clone()),
            driver: Some("local".into()),
            driver_opts: convert::empty_dir_opts(v),
            labels: Some(id.labels(shared, "")),
            ..VolumeCreateRequest::default()
        };
        if let Err(e) = shared.docker.create_volume(req).await {
            tracing::warn!(error = %e, volume = %name, "could not create volume");
            return Err(None);
        }
        // emptyDir roots are world-writable as in Kubernetes; configMap/secret roots 0755.
        let root_mode = if files.is_some() { 0o755 } else { 0o777 };
        to_populate.push((name.clone(), root_mode, files.unwrap_or_default()));
        out.insert(v.name.clone(), NodeVolume::Docker { name });
    }
    if !to_populate.is_empty()
        && let Err(e) = populate(shared, id, &to_populate).await
    {
        tracing::warn!(error = %e, pod = %id.name, "could not populate volumes");
        return Err(None);
    }
    Ok(out)
}

/// The pod's `spec.serviceAccountName` as stored (admission defaults it to `default`).
async fn pod_service_account(shared: &Shared, ns: &str, name: &str) -> String {
    Api::<Pod>::namespaced(shared.client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.spec)
        .and_then(|s| s.service_account_name)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Ask the API server for a token of ServiceAccount `ns/sa` bound to the pod (TokenRequest on
/// `serviceaccounts/{sa}/token`, as the kubelet's token manager does). `None` when the server
/// does not serve TokenRequests.
async fn request_token(
    shared: &Shared,
    ns: &str,
    sa: &str,
    id: &PodId,
    expiration: Option<i64>,
    audience: Option<String>,
) -> Option<String> {
    use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a]),
            expiration_seconds: expiration,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(id.name.clone()),
                uid: Some(id.uid.clone()),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(shared.client.clone(), ns);
    match api
        .create_subresource::<_, TokenRequest>("token", sa, &PostParams::default(), &req)
        .await
    {
        Ok(tr) => tr.status.and_then(|s| s.token).filter(|t| !t.is_empty()),
        Err(e) => {
            tracing::debug!(error = %e, "TokenRequest failed; using a local token");
            None
        }
    }
}

/// A JWT-shaped bound service-account token with the claims Kubernetes puts in one (issuer,
/// audience, `sub` = `system:serviceaccount:<ns>:<name>`, the `kubernetes.io` claim naming the
/// namespace, account and pod); the signature is a digest, not an RSA signature. Used when the
/// API server serves no TokenRequest.
pub(crate) fn service_account_token(ns: &str, sa: &str, id: &PodId) -> String {
    use sha2::Digest;
    let header = serde_json::json!({"alg": "RS256", "kid": "sgsim"});
    let payload = serde_json::json!({
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {
            "namespace": ns,
            "pod": {"name": id.name, "uid": id.uid},
            "serviceaccount": {"name": sa},
        },
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    });
    let signing = format!(
        "{}.{}",
        sgsim_core::base64::encode_url(header.to_string().as_bytes()),
        sgsim_core::base64::encode_url(payload.to_string().as_bytes())
    );
    let sig = sha2::Sha256::digest(format!("{signing}.{}", id.uid).as_bytes());
    format!("{signing}.{}", sgsim_core::base64::encode_url(&sig))
}

/// `MountVolume.SetUp failed for volume %q : <why>` (operation_generator.go; note the space).
fn failed_mount(volume: &str, why: &str) -> String {
    format!(
        "MountVolume.SetUp failed for volume {} : {why}",
        super::messages::go_quote(volume)
    )
}

fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Vec<(String, Vec<u8>, u32)> {
    let mode = u32::try_from(default_mode.unwrap_or(0o644)).unwrap_or(0o644);
    match items {
        Some(items) => items
            .iter()
            .filter_map(|it| {
                let v = data.get(&it.key)?;
                let m = it.mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(mode);
                Some((it.path.clone(), v.clone(), m))
            })
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v.clone(), mode)).collect(),
    }
}

/// Set each volume's root mode and write its files, through one created (never started) helper
/// container that mounts volume i at `/sgsim-volume-<i>` (a tar entry for the mount point itself
/// sets the volume root's mode).
async fn populate(shared: &Shared, id: &PodId, volumes: &[Populate]) -> Result<(), bollard::errors::Error> {
    let sandbox = shared.images.sandbox();
    let _ = shared.images.ensure(&sandbox.image, PullPolicy::IfNotPresent).await;
    let mounts = volumes
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| bollard::models::Mount {
            target: Some(format!("/sgsim-volume-{i}")),
            source: Some(name.clone()),
            typ: Some(bollard::models::MountType::VOLUME),
            ..bollard::models::Mount::default()
        })
        .collect();
    let body = bollard::models::ContainerCreateBody {
        image: Some(sandbox.image),
        entrypoint: if sandbox.command.is_empty() {
            None
        } else {
            Some(sandbox.command)
        },
        labels: Some(id.labels(shared, "volume-populate")),
        network_disabled: Some(true),
        host_config: Some(bollard::models::HostConfig {
            mounts: Some(mounts),
            network_mode: Some("none".into()),
            ..bollard::models::HostConfig::default()
        }),
        ..bollard::models::ContainerCreateBody::default()
    };
    let c = shared
        .docker
        .create_container(None::<bollard::query_parameters::CreateContainerOptions>, body)
        .await?;
    let mut entries: Vec<TarEntry> = Vec::new();
    for (i, (_, root_mode, files)) in volumes.iter().enumerate() {
        entries.push(TarEntry {
            path: format!("sgsim-volume-{i}/"),
            data: Vec::new(),
            mode: *root_mode,
            dir: true,
        });
        for (path, data, mode) in files {
            entries.push(TarEntry {
                path: format!("sgsim-volume-{i}/{}", path.trim_start_matches('/')),
                data: data.clone(),
                mode: *mode,
                dir: false,
            });
        }
    }
    let tar = tar_archive(&entries);
    let res = shared
        .docker
        .upload_to_container(
            &c.id,
            Some(UploadToContainerOptionsBuilder::default().path("/").build()),
            bollard::body_full(tar.into()),
        )
        .await;
    let _ = shared
        .docker
        .remove_container(
            &c.id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    res
}

/// Write `files` (absolute node path → content) onto the node's filesystem, through one created
/// (never started) helper container that binds the node's `/` at `/sgsim-node-root`. Used for
/// `nodes[].files` fixtures that hostPath volumes then expose.
pub(crate) async fn write_node_files(
    docker: &bollard::Docker,
    images: &dyn super::ImageProvider,
    labels: HashMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Result<(), bollard::errors::Error> {
    if files.is_empty() {
        return Ok(());
    }
    let sandbox = images.sandbox();
    let _ = images.ensure(&sandbox.image, PullPolicy::IfNotPresent).await;
    let body = bollard::models::ContainerCreateBody {
        image: Some(sandbox.image),
        entrypoint: if sandbox.command.is_empty() {
            None
        } else {
            Some(sandbox.command)
        },
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(bollard::models::HostConfig {
            binds: Some(vec!["/:/sgsim-node-root".to_string()]),
            network_mode: Some("none".into()),
            ..bollard::models::HostConfig::default()
        }),
        ..bollard::models::ContainerCreateBody::default()
    };
    let c = docker
        .create_container(None::<bollard::query_parameters::CreateContainerOptions>, body)
        .await?;
    let entries: Vec<TarEntry> = files
        .iter()
        .map(|(path, text)| TarEntry {
            path: format!("sgsim-node-root/{}", path.trim_start_matches('/')),
            data: text.clone().into_bytes(),
            mode: 0o644,
            dir: false,
        })
        .collect();
    let tar = tar_archive(&entries);
    let res = docker
        .upload_to_container(
            &c.id,
            Some(UploadToContainerOptionsBuilder::default().path("/").build()),
            bollard::body_full(tar.into()),
        )
        .await;
    let _ = docker
        .remove_container(
            &c.id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    res
}

struct TarEntry {
    path: String,
    data: Vec<u8>,
    mode: u32,
    dir: bool,
}

/// A minimal ustar archive (directories implied by paths are added, mode 0755).
fn tar_archive(entries: &[TarEntry]) -> Vec<u8> {
    fn header(name: &str, size: usize, mode: u32, dir: bool) -> [u8; 512] {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], off: usize, s: &[u8]| h[off..off + s.len()].copy_from_slice(s);
        let name = name.as_bytes();
        put(&mut h, 0, &name[..name.len().min(100)]);
        put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{size:011o}\0").as_bytes());
        put(
            &mut h,
            136,
            format!("{:011o}\0", Timestamp::now().as_second().max(0)).as_bytes(),
        );
        put(&mut h, 148, b"        ");
        h[156] = if dir { b'5' } else { b'0' };
        put(&mut h, 257, b"ustar\0");
        put(&mut h, 263, b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        h
    }
    let mut out = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for e in entries {
        if e.dir {
            if dirs.insert(e.path.clone()) {
                out.extend_from_slice(&header(&e.path, 0, e.mode, true));
            }
            continue;
        }
        let parts: Vec<&str> = e.path.split('/').collect();
        for n in 1..parts.len() {
            let d = format!("{}/", parts[..n].join("/"));
            if dirs.insert(d.clone()) {
                out.extend_from_slice(&header(&d, 0, 0o755, true));
            }
        }
        out.extend_from_slice(&header(&e.path, e.data.len(), e.mode, false));
        out.extend_from_slice(&e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// Start the sandbox; returns (container id, pod IP).
async fn start_sandbox(shared: &Shared, pod: &Pod, id: &PodId) -> Result<(String, String), String> {
    let sandbox = shared.images.sandbox();
    shared
        .images
        .ensure(&sandbox.image, PullPolicy::IfNotPresent)
        .await
        .map_err(|e| format!("failed to get sandbox image {:?}: {e}", sandbox.image))?;
    let name = id.container_name("POD");
    // A leftover from an earlier attempt is replaced.
    let _ = shared
        .docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    let body = convert::sandbox_body(shared, pod, id);
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let c = shared
        .docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| docker_message(&e))?;
    shared
        .docker
        .start_container(&c.id, None)
        .await
        .map_err(|e| docker_message(&e))?;
    let info = shared
        .docker
        .inspect_container(&c.id, None)
        .await
        .map_err(|e| docker_message(&e))?;
    let ip = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|nets| {
            let mut v: Vec<_> = nets.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter()
                .find_map(|(_, e)| e.ip_address.filter(|ip| !ip.is_empty()))
        })
        .ok_or_else(|| "sandbox has no IP address".to_string())?;
    Ok((c.id, ip))
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
            Some(field_path(init, name)),
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
