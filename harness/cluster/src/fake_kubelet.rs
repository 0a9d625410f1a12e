//! The fake runtime tier's kubelet (kwok-like): it serves a node without containers. Pods bound to
//! its node go through the same lifecycle and emit the same Kubernetes strings (from
//! [`K8sMessages`]) as with the Docker-backed kubelet: FailedMount for a missing ConfigMap/Secret
//! volume, image pulls, Created/Started, CreateContainerConfigError for `runAsNonRoot` with an
//! image that runs as root, init container exit codes, `activeDeadlineSeconds`. Latencies and
//! exit codes are data ([`FakeProfile`]), so runs are deterministic.
//!
//! Pod statuses are built with the Docker kubelet's `kubelet::status::Tracker`, so both tiers write
//! the same objects. [`crate::fake_runtime`] puts it together with the real API server and
//! scheduler and a fake lite-engine for `--runtime fake`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, Pod, PodIP, Secret,
};
use kube::api::Api;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::k8s::events::{EventType, Recorder, container_field_path, pod_ref};
use crate::k8s::messages::{self, K8sMessages};
use crate::kubelet::config;
use crate::kubelet::status::{Tracker, now, waiting};

/// What the fake runtime does, as data.
#[derive(Debug, Clone, Default)]
pub struct FakeProfile {
    /// How long each image pull takes (reported in the `Pulled` event).
    pub pull: Duration,
    /// User id each image runs as (as written in the pod); an image not listed runs as root.
    pub image_users: BTreeMap<String, i64>,
    /// Exit code of a container by name when it terminates (init containers terminate at once;
    /// default 0).
    pub exit_codes: BTreeMap<String, i32>,
    /// Images the node has before any pod runs (pulled ones are added as pods pull them).
    pub present: Vec<String>,
    /// Running containers the runtime ends (e.g. an OOM kill), announced by the fake lite-engine.
    pub kills: Option<tokio::sync::broadcast::Sender<ContainerKill>>,
    /// How long the (regular) containers run before they exit with their `exit_codes` (kwok's
    /// "pod complete" stage): the pod then ends `Succeeded`, or `Failed` when one exited non-zero.
    /// `None`: they run until the pod is deleted (a step group's pod).
    pub run_for: Option<Duration>,
}

/// A running container that the fake runtime ends, as data: its exit code and terminated reason.
#[derive(Debug, Clone)]
pub struct ContainerKill {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Exit code (137 for SIGKILL).
    pub exit_code: i32,
    /// Terminated reason (`OOMKilled`, `Error`).
    pub reason: String,
}

/// A running fake kubelet; stops on drop.
#[derive(Debug)]
pub struct FakeKubeletHandle {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl FakeKubeletHandle {
    /// Stop the kubelet and its pod workers.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for FakeKubeletHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Start a fake kubelet for `node` (the Node object must exist; the scheduler binds pods to it).
pub fn spawn_fake_kubelet(
    client: kube::Client,
    node: &str,
    messages: &'static K8sMessages,
    profile: FakeProfile,
) -> FakeKubeletHandle {
    let cancel = CancellationToken::new();
    let node = node.to_string();
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        let cfg = kube::runtime::watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut stream = kube::runtime::watcher(pods, cfg).boxed();
        let mut started = std::collections::HashSet::new();
        let present: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(profile.present.iter().cloned().collect()));
        let recorder = Recorder {
            component: "kubelet".into(),
            host: Some(node.clone()),
            instance: node.clone(),
            action: None,
            recorded: Default::default(),
        };
        loop {
            let ev = tokio::select! {
                () = c.cancelled() => break,
                ev = stream.next() => ev,
            };
            let Some(Ok(ev)) = ev else {
                if ev.is_none() {
                    break;
                }
                continue;
            };
            let list = match ev {
                kube::runtime::watcher::Event::Apply(p) | kube::runtime::watcher::Event::InitApply(p) => vec![p],
                _ => Vec::new(),
            };
            for pod in list {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if pod.metadata.deletion_timestamp.is_some() || !started.insert(uid) {
                    continue;
                }
                let w = Worker {
                    client: client.clone(),
                    recorder: recorder.clone(),
                    messages,
                    profile: profile.clone(),
                    present: present.clone(),
                };
                let cancel = c.child_token();
                let kills = profile.kills.as_ref().map(tokio::sync::broadcast::Sender::subscribe);
                tokio::spawn(async move { w.run(pod, kills, cancel).await });
            }
        }
    });
    FakeKubeletHandle {
        cancel,
        task: Some(task),
    }
}

/// The container (running until now) has exited with `exit_code` and `reason`.
fn terminate(s: &mut k8s_openapi::api::core::v1::ContainerStatus, exit_code: i32, reason: &str) {
    let started_at = s
        .state
        .as_ref()
        .and_then(|x| x.running.as_ref())
        .and_then(|r| r.started_at.clone());
    s.state = Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(reason.to_string()),
            started_at,
            finished_at: Some(now()),
            container_id: s.container_id.clone(),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    });
}

struct Worker {
    client: kube::Client,
    recorder: Recorder,
    messages: &'static K8sMessages,
    profile: FakeProfile,
    /// Images on the node.
    present: Arc<Mutex<HashSet<String>>>,
}

const RETRY: Duration = Duration::from_millis(500);
/// The fake node's address and the address of its pods.
const HOST_IP: &str = "10.244.0.1";
const POD_IP: &str = "10.244.0.2";

/// A container id as the Docker-backed kubelet reports it (`docker://<64 hex>`).
/// What a container's earlier start attempts reported (each distinct problem is reported once).
#[derive(Debug, Default)]
struct Attempts {
    /// The last config error reported.
    last: Option<String>,
    /// `ErrImageNeverPull` was reported.
    never_reported: bool,
}

fn container_id() -> String {
    let a = crate::context::random_suffix(32);
    let b = crate::context::random_suffix(32);
    let hex: String = format!("{a}{b}")
        .bytes()
        .map(|c| char::from(b"0123456789abcdef"[usize::from(c) % 16]))
        .collect();
    format!("docker://{hex}")
}

impl Worker {
    async fn event(&self, pod: &Pod, field_path: Option<String>, t: EventType, reason: &str, msg: &str) {
        self.recorder
            .emit(&self.client, pod_ref(pod, field_path), t, reason, msg)
            .await;
    }

    /// The scheduler writes its `Scheduled` event right after the binding; a real kubelet takes
    /// far longer to start a pod, so its events always come later. The fake one starts at once:
    /// it waits (briefly) for that event so that the pod's events keep Kubernetes' order.
    ///
    /// A watch of the pod's `Scheduled` event from the resourceVersion the kubelet saw the pod at
    /// (its binding): the server replays only what changed since, instead of a list of every
    /// event of the namespace per pod. Up to 2 s, as the list it replaces waited. (Had the event
    /// been written before that version, it would already precede every event of the kubelet's:
    /// the order holds, only the wait is lost.)
    async fn scheduled_event_written(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), &ns);
        let fields = format!("involvedObject.name={name},involvedObject.kind=Pod,reason=Scheduled");
        let rv = pod.metadata.resource_version.clone().unwrap_or_else(|| "0".into());
        let wait = async {
            let wp = kube::api::WatchParams::default().fields(&fields).timeout(2);
            let Ok(stream) = events.watch(&wp, &rv).await else {
                return;
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if matches!(
                    ev,
                    Ok(kube::api::WatchEvent::Added(_) | kube::api::WatchEvent::Modified(_))
                ) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    }

    async fn run(
        self,
        pod: Pod,
        kills: Option<tokio::sync::broadcast::Receiver<ContainerKill>>,
        cancel: CancellationToken,
    ) {
        self.scheduled_event_written(&pod).await;
        let deadline = pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
        let mut st = Tracker::new(self.client.clone(), HOST_IP.to_string(), &pod);
        let deadline_sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        let exceeded = tokio::select! {
            () = self.lifecycle(&pod, &mut st, kills) => false,
            () = cancel.cancelled() => false,
            () = deadline_sleep => true,
        };
        if exceeded {
            let msg = messages::DEADLINE_EXCEEDED;
            self.event(&pod, None, EventType::Normal, "DeadlineExceeded", msg).await;
            // What runs is killed (SIGKILL after no grace: exit code 137).
            for init in [true, false] {
                let n = if init {
                    st.status.init_container_statuses.as_ref().map_or(0, Vec::len)
                } else {
                    st.names.len()
                };
                for i in 0..n {
                    let s = st.status_mut(init, i);
                    if let Some(running) = s.state.as_ref().and_then(|x| x.running.clone()) {
                        let cid = s.container_id.clone();
                        s.state = Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 137,
                                reason: Some("Error".into()),
                                started_at: running.started_at,
                                finished_at: Some(now()),
                                container_id: cid,
                                ..ContainerStateTerminated::default()
                            }),
                            ..ContainerState::default()
                        });
                        s.ready = false;
                        s.started = Some(false);
                    }
                }
            }
            st.status.phase = Some("Failed".into());
            st.status.reason = Some("DeadlineExceeded".into());
            st.status.message = Some(msg.into());
            st.push().await;
        }
    }

    /// A missing required ConfigMap/Secret volume source, as the kubelet words it.
    async fn missing_volume(&self, pod: &Pod) -> Option<String> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        for v in pod.spec.as_ref()?.volumes.iter().flatten() {
            if let Some(cm) = &v.config_map
                && cm.optional != Some(true)
            {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
                if matches!(api.get_opt(&cm.name).await, Ok(None)) {
                    return Some(messages::failed_mount(
                        &v.name,
                        &messages::configmap_not_found(&cm.name),
                    ));
                }
            }
            if let Some(s) = &v.secret
                && s.optional != Some(true)
            {
                let name = s.secret_name.clone().unwrap_or_default();
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
                if matches!(api.get_opt(&name).await, Ok(None)) {
                    return Some(messages::failed_mount(&v.name, &messages::secret_not_found(&name)));
                }
            }
        }
        None
    }

    /// The same steps and statuses as the Docker-backed kubelet's pod worker, without containers:
    /// volumes, sandbox (pod IP), init containers to completion (exit codes as data), then the
    /// containers, which run until the pod is deleted.
    async fn lifecycle(
        &self,
        pod: &Pod,
        st: &mut Tracker,
        kills: Option<tokio::sync::broadcast::Receiver<ContainerKill>>,
    ) {
        st.push().await;
        // Volumes first (ContainerCreating until they mount).
        let mut reported = None;
        while let Some(msg) = self.missing_volume(pod).await {
            if reported.as_deref() != Some(msg.as_str()) {
                self.event(pod, None, EventType::Warning, "FailedMount", &msg).await;
                reported = Some(msg);
            }
            tokio::time::sleep(RETRY).await;
        }
        // Sandbox.
        st.status.pod_ip = Some(POD_IP.into());
        st.status.pod_ips = Some(vec![PodIP { ip: POD_IP.into() }]);
        if self.messages.ready_to_start_condition {
            st.set_condition("PodReadyToStartContainers", true, None, None);
        }
        st.push().await;

        let spec = pod.spec.clone().unwrap_or_default();
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            self.start(pod, st, c, (true, i), &mut Attempts::default(), false).await;
            st.push().await;
            let code = self.profile.exit_codes.get(&c.name).copied().unwrap_or(0);
            let s = st.status_mut(true, i);
            terminate(s, code, if code == 0 { "Completed" } else { "Error" });
            // prober_manager.go: a terminated init container is ready when it exited 0.
            s.ready = code == 0;
            s.started = Some(false);
            if code != 0 {
                // restartPolicy Never: the pod fails.
                st.status.phase = Some("Failed".into());
                st.push().await;
                return;
            }
            st.push().await;
        }
        for i in 0..st.names.len() {
            st.main_mut(i).state = Some(waiting("ContainerCreating", None));
        }
        // As SyncPod (and the Docker-backed kubelet): a container that cannot start yet does not
        // hold up the others; it is retried after them, and the pod stays Pending until it starts.
        let mut pending = Vec::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let mut attempts = Attempts::default();
            if !self.start(pod, st, c, (false, i), &mut attempts, true).await {
                pending.push((i, attempts));
            }
        }
        if !pending.is_empty() {
            st.push().await;
            for (i, mut attempts) in pending {
                self.start(pod, st, &spec.containers[i], (false, i), &mut attempts, false)
                    .await;
            }
        }
        st.status.phase = Some("Running".into());
        st.push().await;
        if let Some(d) = self.profile.run_for {
            tokio::time::sleep(d).await;
            self.complete(st).await;
            return;
        }
        // The containers run until the pod goes away, unless the runtime ends one (data).
        let Some(mut kills) = kills else {
            return futures::future::pending::<()>().await;
        };
        let (ns, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        while let Ok(k) = kills.recv().await {
            let Some(i) = st.names.iter().position(|n| *n == k.container) else {
                continue;
            };
            if k.namespace != ns || k.pod != name {
                continue;
            }
            let s = st.main_mut(i);
            terminate(s, k.exit_code, &k.reason);
            s.ready = false;
            s.started = Some(false);
            st.push().await;
        }
        futures::future::pending::<()>().await;
    }

    /// Every running container exits with its `exit_codes` entry (default 0); the pod ends
    /// `Succeeded`, or `Failed` when one exited non-zero (restartPolicy Never).
    async fn complete(&self, st: &mut Tracker) {
        let mut failed = false;
        for i in 0..st.names.len() {
            let code = self.profile.exit_codes.get(&st.names[i]).copied().unwrap_or(0);
            failed |= code != 0;
            let s = st.main_mut(i);
            terminate(s, code, if code == 0 { "Completed" } else { "Error" });
            s.ready = false;
            s.started = Some(false);
        }
        st.status.phase = Some(if failed { "Failed" } else { "Succeeded" }.into());
        st.push().await;
    }

    /// The container's config as the kubelet checks it (shared with the Docker-backed kubelet):
    /// `runAsNonRoot` against the image's user (data), then the env's ConfigMap/Secret keys.
    async fn config_error(&self, pod: &Pod, c: &Container) -> Option<String> {
        let image = c.image.clone().unwrap_or_default();
        let user = self
            .profile
            .image_users
            .get(&image)
            .map(i64::to_string)
            .unwrap_or_default();
        if let Some(msg) = config::run_as_non_root_error(pod, c, &user) {
            return Some(msg);
        }
        config::resolve_env(&self.client, pod, c, |_| String::new(), Vec::new())
            .await
            .err()
    }

    /// Pull (fake latency), the container's config (runAsNonRoot, retried until it resolves),
    /// then Created and Started: the container runs. With `once`, one attempt: false when the
    /// container could not start yet (reported; `attempts` remembers what was).
    async fn start(
        &self,
        pod: &Pod,
        st: &mut Tracker,
        c: &Container,
        (init, i): (bool, usize),
        attempts: &mut Attempts,
        once: bool,
    ) -> bool {
        if !self.pull(pod, st, c, (init, i), attempts, once).await {
            return false;
        }
        while let Some(msg) = self.config_error(pod, c).await {
            if attempts.last.as_deref() != Some(msg.as_str()) {
                st.status_mut(init, i).state = Some(waiting("CreateContainerConfigError", Some(msg.clone())));
                st.push().await;
                let fp = container_field_path(init, &c.name);
                self.event(pod, Some(fp), EventType::Warning, "Failed", &self.messages.error(&msg))
                    .await;
                attempts.last = Some(msg);
            }
            if once {
                return false;
            }
            tokio::time::sleep(RETRY).await;
        }
        self.create_start(pod, c, init).await;
        let s = st.status_mut(init, i);
        s.container_id = Some(container_id());
        s.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..ContainerState::default()
        });
        s.started = Some(true);
        s.ready = !init;
        true
    }

    /// The image per the container's pull policy, as the kubelet's image manager does it:
    /// `Pulling` and `Pulled` after the profile's pull time, `already present on machine`, or
    /// `ErrImageNeverPull` (retried until the pod goes away; with `once`, false at once).
    async fn pull(
        &self,
        pod: &Pod,
        st: &mut Tracker,
        c: &Container,
        (init, i): (bool, usize),
        attempts: &mut Attempts,
        once: bool,
    ) -> bool {
        let fp = container_field_path(init, &c.name);
        let image = c.image.clone().unwrap_or_default();
        let m = self.messages;
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'))
                .map(|(_, t)| t);
            if image.contains('@') || tag.is_some_and(|t| t != "latest") {
                "IfNotPresent"
            } else {
                "Always"
            }
            .to_string()
        });
        let present = || {
            self.present
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&image)
        };
        match policy.as_str() {
            "Never" | "IfNotPresent" if present() => {
                self.event(pod, Some(fp), EventType::Normal, "Pulled", &m.already_present(&image))
                    .await;
                return true;
            }
            "Never" => {
                if !attempts.never_reported {
                    attempts.never_reported = true;
                    let msg = m.never_pull(&image);
                    self.event(pod, Some(fp.clone()), EventType::Warning, "ErrImageNeverPull", &msg)
                        .await;
                    self.event(
                        pod,
                        Some(fp.clone()),
                        EventType::Warning,
                        "Failed",
                        &m.error("ErrImageNeverPull"),
                    )
                    .await;
                    st.status_mut(init, i).state = Some(waiting("ErrImageNeverPull", Some(msg)));
                    st.push().await;
                }
                if once {
                    return false;
                }
                futures::future::pending::<()>().await;
            }
            _ => {}
        }
        self.event(pod, Some(fp.clone()), EventType::Normal, "Pulling", &m.pulling(&image))
            .await;
        tokio::time::sleep(self.profile.pull).await;
        self.present
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(image.clone());
        let pulled = m.pulled(&image, self.profile.pull, self.profile.pull, None);
        self.event(pod, Some(fp), EventType::Normal, "Pulled", &pulled).await;
        true
    }

    /// `Created` and `Started`.
    async fn create_start(&self, pod: &Pod, c: &Container, init: bool) {
        let fp = container_field_path(init, &c.name);
        let m = self.messages;
        self.event(pod, Some(fp.clone()), EventType::Normal, "Created", &m.created(&c.name))
            .await;
        self.event(pod, Some(fp), EventType::Normal, "Started", &m.started(&c.name))
            .await;
    }
}
