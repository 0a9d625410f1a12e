//! The fake runtime tier's kubelet (kwok-like): it serves a node without containers. Pods bound to
//! its node go through the same lifecycle and emit the same Kubernetes strings (from
//! [`K8sMessages`]) as with the Docker-backed kubelet: FailedMount for a missing ConfigMap/Secret
//! volume, image pulls, Created/Started, CreateContainerConfigError for `runAsNonRoot` with an
//! image that runs as root, init container exit codes, `activeDeadlineSeconds`. Latencies and
//! exit codes are data ([`FakeProfile`]), so runs are deterministic.
//!
//! This is the first part of `--runtime fake`: the scheduler and API server are the real ones;
//! wiring it into `sgsim run` (a fake lite-engine for the steps) is still to do.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::kubelet::events::{EventType, Recorder, pod_ref};
use crate::kubelet::messages::{K8sMessages, go_quote};

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
        let cfg =
            kube::runtime::watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let mut stream = kube::runtime::watcher(pods, cfg).boxed();
        let mut started = std::collections::HashSet::new();
        let recorder = Recorder {
            component: "kubelet".into(),
            host: Some(node.clone()),
            instance: node.clone(),
            action: None,
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
                kube::runtime::watcher::Event::Apply(p)
                | kube::runtime::watcher::Event::InitApply(p) => vec![p],
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
                };
                let cancel = c.child_token();
                tokio::spawn(async move { w.run(pod, cancel).await });
            }
        }
    });
    FakeKubeletHandle {
        cancel,
        task: Some(task),
    }
}

struct Worker {
    client: kube::Client,
    recorder: Recorder,
    messages: &'static K8sMessages,
    profile: FakeProfile,
}

const RETRY: Duration = Duration::from_millis(500);

fn now() -> Value {
    let t =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn waiting(reason: &str, message: Option<&str>) -> Value {
    match message {
        Some(m) => json!({"waiting": {"reason": reason, "message": m}}),
        None => json!({"waiting": {"reason": reason}}),
    }
}

impl Worker {
    fn pods(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }

    async fn event(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        t: EventType,
        reason: &str,
        msg: &str,
    ) {
        self.recorder
            .emit(&self.client, pod_ref(pod, field_path), t, reason, msg)
            .await;
    }

    async fn status(&self, pod: &Pod, status: Value) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({"status": status});
        if let Err(e) = self
            .pods(pod)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(error = %e, pod = %name, "fake kubelet: status update failed");
        }
    }

    async fn run(self, pod: Pod, cancel: CancellationToken) {
        let deadline = pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
        self.status(&pod, json!({"phase": "Pending", "startTime": now()}))
            .await;
        let life = self.lifecycle(&pod);
        let deadline_sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = life => {}
            () = cancel.cancelled() => {}
            () = deadline_sleep => {
                let msg = "Pod was active on the node longer than the specified deadline";
                self.event(&pod, None, EventType::Normal, "DeadlineExceeded", msg).await;
                self.status(&pod, json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": msg})).await;
            }
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
                    return Some(mount_failed(
                        &v.name,
                        &format!("configmap {} not found", go_quote(&cm.name)),
                    ));
                }
            }
            if let Some(s) = &v.secret
                && s.optional != Some(true)
            {
                let name = s.secret_name.clone().unwrap_or_default();
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
                if matches!(api.get_opt(&name).await, Ok(None)) {
                    return Some(mount_failed(
                        &v.name,
                        &format!("secret {} not found", go_quote(&name)),
                    ));
                }
            }
        }
        None
    }

    async fn lifecycle(&self, pod: &Pod) {
        // Volumes first (ContainerCreating until they mount).
        let mut reported = None;
        while let Some(msg) = self.missing_volume(pod).await {
            if reported.as_deref() != Some(msg.as_str()) {
                self.event(pod, None, EventType::Warning, "FailedMount", &msg)
                    .await;
                reported = Some(msg);
            }
            tokio::time::sleep(RETRY).await;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let mut init_statuses: Vec<Value> = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            self.start(pod, c, true).await;
            let code = self.profile.exit_codes.get(&c.name).copied().unwrap_or(0);
            let reason = if code == 0 { "Completed" } else { "Error" };
            init_statuses.push(json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": code == 0, "restartCount": 0,
                "started": false,
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": now(), "finishedAt": now()}},
            }));
            if code != 0 {
                // restartPolicy Never: the pod fails.
                self.status(
                    pod,
                    json!({"phase": "Failed", "initContainerStatuses": init_statuses}),
                )
                .await;
                return;
            }
        }
        let mut statuses: Vec<Value> = Vec::new();
        for c in &spec.containers {
            // As the kubelet: the image first, then the container's config (runAsNonRoot).
            self.pull(pod, c, false).await;
            let mut last = None;
            while let Some(msg) = self.config_error(pod, c) {
                if last.as_deref() != Some(msg.as_str()) {
                    let st = json!([{"name": c.name, "image": c.image, "imageID": "", "ready": false,
                        "restartCount": 0, "started": false,
                        "state": waiting("CreateContainerConfigError", Some(&msg))}]);
                    self.status(pod, json!({"containerStatuses": st})).await;
                    let fp = format!("spec.containers{{{}}}", c.name);
                    self.event(
                        pod,
                        Some(fp),
                        EventType::Warning,
                        "Failed",
                        &self.messages.error(&msg),
                    )
                    .await;
                    last = Some(msg);
                }
                tokio::time::sleep(RETRY).await;
            }
            self.create_start(pod, c, false).await;
            statuses.push(json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": true, "restartCount": 0,
                "started": true, "state": {"running": {"startedAt": now()}},
            }));
        }
        let ready = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now()});
        self.status(
            pod,
            json!({
                "phase": "Running",
                "podIP": "10.244.0.2",
                "podIPs": [{"ip": "10.244.0.2"}],
                "conditions": [ready("Initialized"), ready("Ready"), ready("ContainersReady"), ready("PodScheduled")],
                "initContainerStatuses": init_statuses,
                "containerStatuses": statuses,
            }),
        )
        .await;
    }

    /// `runAsNonRoot` against the image's user (data), as `verifyRunAsNonRoot` words it.
    fn config_error(&self, pod: &Pod, c: &Container) -> Option<String> {
        let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let csc = c.security_context.as_ref();
        let non_root = csc
            .and_then(|s| s.run_as_non_root)
            .or(psc.and_then(|s| s.run_as_non_root))
            == Some(true);
        if !non_root {
            return None;
        }
        let run_as = csc
            .and_then(|s| s.run_as_user)
            .or(psc.and_then(|s| s.run_as_user));
        let pod_desc = format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default()
        );
        match run_as {
            Some(0) => Some(format!(
                "container's runAsUser breaks non-root policy (pod: {}, container: {})",
                go_quote(&pod_desc),
                c.name
            )),
            Some(_) => None,
            None => {
                let image = c.image.clone().unwrap_or_default();
                match self.profile.image_users.get(&image) {
                    Some(uid) if *uid != 0 => None,
                    _ => Some(format!(
                        "container has runAsNonRoot and image will run as root (pod: {}, container: {})",
                        go_quote(&pod_desc),
                        c.name
                    )),
                }
            }
        }
    }

    /// Pull (fake latency), then Created, Started.
    async fn start(&self, pod: &Pod, c: &Container, init: bool) {
        self.pull(pod, c, init).await;
        self.create_start(pod, c, init).await;
    }

    fn field_path(c: &Container, init: bool) -> String {
        format!(
            "spec.{}{{{}}}",
            if init { "initContainers" } else { "containers" },
            c.name
        )
    }

    /// `Pulling` and `Pulled` after the profile's pull time.
    async fn pull(&self, pod: &Pod, c: &Container, init: bool) {
        let fp = Self::field_path(c, init);
        let image = c.image.clone().unwrap_or_default();
        let m = self.messages;
        self.event(
            pod,
            Some(fp.clone()),
            EventType::Normal,
            "Pulling",
            &m.pulling(&image),
        )
        .await;
        tokio::time::sleep(self.profile.pull).await;
        let pulled = m.pulled(&image, self.profile.pull, self.profile.pull, None);
        self.event(pod, Some(fp), EventType::Normal, "Pulled", &pulled)
            .await;
    }

    /// `Created` and `Started`.
    async fn create_start(&self, pod: &Pod, c: &Container, init: bool) {
        let fp = Self::field_path(c, init);
        let m = self.messages;
        self.event(
            pod,
            Some(fp.clone()),
            EventType::Normal,
            "Created",
            &m.created(&c.name),
        )
        .await;
        self.event(
            pod,
            Some(fp),
            EventType::Normal,
            "Started",
            &m.started(&c.name),
        )
        .await;
    }
}

/// `MountVolume.SetUp failed for volume %q : <why>`.
fn mount_failed(volume: &str, why: &str) -> String {
    format!(
        "MountVolume.SetUp failed for volume {} : {why}",
        go_quote(volume)
    )
}
