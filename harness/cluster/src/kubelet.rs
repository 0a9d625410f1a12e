//! The kubelet: one task per node. It registers the Node object, watches the pods bound to the node
//! (`spec.nodeName=<node>`) and runs each one in the node's dockerd through bollard: a sandbox
//! container owning the pod's network namespace (its IP is `status.podIP`), emptyDir volumes as
//! labelled Docker volumes, init containers in order to completion, then the regular containers,
//! with Kubernetes' own events and a pod status kept current through `pods/{name}/status`.
//!
//! Everything it creates on the node's dockerd carries the run labels ([`KubeletConfig::labels`])
//! plus [`POD_UID_LABEL`] and [`NODE_LABEL`]; [`KubeletHandle::shutdown`] removes all of it.
//!
//! Where things live: the Node object in `node`, the pod workers and their reconcile in `sync`, one
//! pod's life in `pod` (with `pod/volumes`, `pod/sandbox`, `pod/image`, `pod/container`,
//! `pod/token`), pod spec → Docker configs in `convert`, container config checks shared with the
//! fake kubelet in `config`, the pod status in `status`, files onto the node in `upload`,
//! `pods/log` in `logs`. How an event is worded: [`crate::k8s::messages`].

pub(crate) mod config;
mod convert;
mod logs;
mod node;
mod pod;
pub(crate) mod status;
mod sync;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::HostConfig;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tokio::task::JoinHandle;

use crate::apiserver::PodLogSource;
use crate::k8s::events;
use crate::k8s::messages::{self, K8sMessages};

/// Label carrying the uid of the pod a container or volume belongs to.
pub const POD_UID_LABEL: &str = "dev.sgsim.pod-uid";
/// Label carrying the node (kubelet) that created a container or volume.
pub const NODE_LABEL: &str = "dev.sgsim.node";
/// Label naming the pod (as Kubernetes' docker integration did).
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Label naming the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Label naming the container (`POD` for the sandbox).
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// Errors of the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// A Docker API call on the node's dockerd failed.
    #[error("docker: {what}")]
    Docker {
        /// What the kubelet was doing.
        what: String,
        /// The bollard error.
        #[source]
        source: bollard::errors::Error,
    },
    /// A call to the API server failed.
    #[error("api server: {what}")]
    Api {
        /// What the kubelet was doing.
        what: String,
        /// The kube client error.
        #[source]
        source: kube::Error,
    },
    /// No such pod or container on this node.
    #[error("{0}")]
    NotFound(String),
}

impl KubeletError {
    /// `map_err` adapter: a Docker error while doing `what`.
    pub(crate) fn docker(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> KubeletError {
        let what = what.into();
        move |source| KubeletError::Docker { what, source }
    }

    /// `map_err` adapter: an API server error while doing `what`.
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeletError {
        let what = what.into();
        move |source| KubeletError::Api { what, source }
    }
}

/// An image pull policy (`spec.containers[].imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// `Always`.
    Always,
    /// `IfNotPresent`.
    IfNotPresent,
    /// `Never`.
    Never,
}

impl PullPolicy {
    /// The policy of a container: explicit, else `Always` for `:latest` or untagged images,
    /// else `IfNotPresent` (Kubernetes' defaulting).
    pub fn of(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let last = image.rsplit('/').next().unwrap_or(image);
                if image.contains('@') {
                    PullPolicy::IfNotPresent
                } else if !last.contains(':') || last.ends_with(":latest") {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }
}

/// What [`ImageProvider::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullOutcome {
    /// The image was on the node already; nothing was pulled.
    AlreadyPresent,
    /// The image was brought onto the node.
    Pulled {
        /// Time the pull itself took.
        took: Duration,
        /// Time including waiting for the puller.
        waited: Duration,
    },
}

/// The sandbox ("pause") container's image and command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Image reference on the node.
    pub image: String,
    /// Command (empty: the image's own entrypoint). Must block until killed.
    pub command: Vec<String>,
}

/// Why an [`ImageProvider`] could not tell or make an image present. `Display` is the text that
/// goes verbatim into the kubelet's `Failed to pull image %q: <error>` and
/// `Failed to inspect image %q: <error>` events.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The container runtime refused or failed the pull (as the CRI reports it).
    #[error("rpc error: code = Unknown desc = {0}")]
    Runtime(String),
    /// The runtime could not inspect the image.
    #[error(transparent)]
    Inspect(#[from] bollard::errors::Error),
    /// The provider's own work before or instead of a pull failed (seeding the run's registry,
    /// loading an image into the node). Shown with its whole chain of causes, so the cause is not
    /// also given as `source`.
    #[error("{}", crate::docker::error_chain(&**.0))]
    Provider(Box<dyn std::error::Error + Send + Sync>),
}

impl PullError {
    /// A [`PullError::Provider`] of `e`.
    pub fn provider(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        PullError::Provider(Box::new(e))
    }
}

/// Brings images onto a node. Implemented by `crate::pool` for real nodes and by
/// [`LocalImages`] for a daemon that already has the images.
pub trait ImageProvider: Send + Sync {
    /// The sandbox container of every pod.
    fn sandbox(&self) -> SandboxSpec;
    /// The name of `image` on the node, when it differs from the name in the pod spec.
    fn local_ref(&self, image: &str) -> String {
        image.to_string()
    }
    /// Whether `image` is on the node now (decides between `already present` and `Pulling`).
    fn is_present<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, PullError>>;
    /// Make `image` present on the node according to `policy`. The error's text goes verbatim
    /// into `Failed to pull image %q: <error>`.
    fn ensure<'a>(&'a self, image: &'a str, policy: PullPolicy) -> BoxFuture<'a, Result<PullOutcome, PullError>>;
    /// Like [`ImageProvider::ensure`], with the credentials the pod's imagePullSecrets hold for
    /// the image's registry (passed to the container runtime's pull).
    fn ensure_with_credentials<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
        credentials: Option<crate::registry::PullCredentials>,
    ) -> BoxFuture<'a, Result<PullOutcome, PullError>> {
        let _ = credentials;
        self.ensure(image, policy)
    }
}

/// An [`ImageProvider`] for a daemon that already holds every image (no registry): presence is
/// `docker image inspect`, a "pull" of a present image is instant, of an absent one an error.
/// `aliases` maps spec names to local names.
pub struct LocalImages {
    /// The daemon.
    pub docker: Docker,
    /// The sandbox container.
    pub sandbox: SandboxSpec,
    /// Spec image name → local image name.
    pub aliases: HashMap<String, String>,
}

impl ImageProvider for LocalImages {
    fn sandbox(&self) -> SandboxSpec {
        self.sandbox.clone()
    }
    fn local_ref(&self, image: &str) -> String {
        self.aliases.get(image).cloned().unwrap_or_else(|| image.to_string())
    }
    fn is_present<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, PullError>> {
        Box::pin(async move {
            match self.docker.inspect_image(&self.local_ref(image)).await {
                Ok(_) => Ok(true),
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
    fn ensure<'a>(&'a self, image: &'a str, _policy: PullPolicy) -> BoxFuture<'a, Result<PullOutcome, PullError>> {
        Box::pin(async move {
            let start = std::time::Instant::now();
            if self.is_present(image).await? {
                let took = start.elapsed();
                Ok(PullOutcome::Pulled { took, waited: took })
            } else {
                Err(PullError::Runtime(format!(
                    "Error response from daemon: pull access denied for {image}, repository does not exist or may require 'docker login'"
                )))
            }
        })
    }
}

/// Configuration of one node's kubelet.
pub struct KubeletConfig {
    /// Node name (also `kubernetes.io/hostname`).
    pub node_name: String,
    /// The node's dockerd.
    pub docker: Docker,
    /// The node's bridge gateway: `delegate-service` resolves to it in every pod; also the node's
    /// InternalIP and the pods' hostIP.
    pub gateway_ip: Ipv4Addr,
    /// Image handling.
    pub images: Arc<dyn ImageProvider>,
    /// Applies "privileged" to a container's HostConfig (the daemon-dependent fallback).
    pub privileged: Arc<dyn Fn(&mut HostConfig) + Send + Sync>,
    /// Run labels put on every container and volume.
    pub labels: HashMap<String, String>,
    /// Extra Node labels.
    pub node_labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// Node capacity (`cpu`, `memory`, `pods`, ...); allocatable is the same.
    pub capacity: BTreeMap<String, Quantity>,
}

/// The default privileged handling: `HostConfig.privileged = true`.
pub fn privileged_flag(hc: &mut HostConfig) {
    hc.privileged = Some(true);
}

pub(crate) struct Shared {
    pub(crate) client: kube::Client,
    pub(crate) docker: Docker,
    pub(crate) node: String,
    pub(crate) gateway_ip: Ipv4Addr,
    pub(crate) images: Arc<dyn ImageProvider>,
    pub(crate) privileged: Arc<dyn Fn(&mut HostConfig) + Send + Sync>,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) messages: &'static K8sMessages,
    pub(crate) recorder: events::Recorder,
    workers: Mutex<HashMap<String, sync::Worker>>,
}

impl Shared {
    /// Labels for a resource of pod `uid`.
    pub(crate) fn resource_labels(&self, uid: &str) -> HashMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("dev.sgsim.managed".into(), "true".into());
        l.insert(POD_UID_LABEL.into(), uid.into());
        l.insert(NODE_LABEL.into(), self.node.clone());
        l
    }

    fn filters(&self, extra: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.push(format!("{NODE_LABEL}={}", self.node));
        for (k, v) in extra {
            labels.push(format!("{k}={v}"));
        }
        HashMap::from([("label".to_string(), labels)])
    }

    async fn container_id(&self, namespace: &str, pod: &str, container: &str) -> Result<String, KubeletError> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&self.filters(&[
                (POD_NAMESPACE_LABEL, namespace),
                (POD_NAME_LABEL, pod),
                (CONTAINER_NAME_LABEL, container),
            ]))
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(KubeletError::docker("list containers"))?;
        list.into_iter()
            .find_map(|c| c.id)
            .ok_or_else(|| KubeletError::NotFound(messages::waiting_to_start(container, pod)))
    }

    /// Force-remove every container and volume matching the run labels, this node and `extra`.
    pub(crate) async fn sweep(&self, extra: &[(&str, &str)]) -> Result<(), KubeletError> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&self.filters(extra))
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(KubeletError::docker("list containers"))?;
        for c in list {
            if let Some(id) = c.id {
                let rm = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                match self.docker.remove_container(&id, Some(rm)).await {
                    // 409: a removal of the same container is already in progress.
                    Ok(())
                    | Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404 | 409, ..
                    }) => {}
                    Err(source) => {
                        return Err(KubeletError::Docker {
                            what: format!("remove container {id}"),
                            source,
                        });
                    }
                }
            }
        }
        let vopts = ListVolumesOptionsBuilder::default()
            .filters(&self.filters(extra))
            .build();
        let vols = self
            .docker
            .list_volumes(Some(vopts))
            .await
            .map_err(KubeletError::docker("list volumes"))?;
        for v in vols.volumes.unwrap_or_default() {
            let rm = RemoveVolumeOptionsBuilder::default().force(true).build();
            match self.docker.remove_volume(&v.name, Some(rm)).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(source) => {
                    return Err(KubeletError::Docker {
                        what: format!("remove volume {}", v.name),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A running kubelet. Dropping it stops the kubelet's tasks (without removing containers); call
/// [`KubeletHandle::shutdown`] to remove everything it created.
pub struct KubeletHandle {
    shared: Arc<Shared>,
    main: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KubeletHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletHandle")
            .field("node", &self.shared.node)
            .finish()
    }
}

impl KubeletHandle {
    /// The node name.
    pub fn node_name(&self) -> &str {
        &self.shared.node
    }

    /// The `pods/log` source of this node, to register with the API server
    /// (`ApiServerHandle::register_node_logs`).
    pub fn log_source(&self) -> Arc<dyn PodLogSource> {
        Arc::new(logs::KubeletLogs {
            shared: self.shared.clone(),
        })
    }

    /// The Docker container id of `container` of pod `namespace/pod` on this node.
    pub async fn container_id(&self, namespace: &str, pod: &str, container: &str) -> Result<String, KubeletError> {
        self.shared.container_id(namespace, pod, container).await
    }

    /// Stop the kubelet and remove every container and volume it created.
    pub async fn shutdown(mut self) -> Result<(), KubeletError> {
        if let Some(main) = self.main.take() {
            main.abort();
            let _ = main.await;
        }
        let workers: Vec<sync::Worker> = {
            let mut w = self.shared.workers.lock().unwrap_or_else(|e| e.into_inner());
            w.drain().map(|(_, w)| w).collect()
        };
        for w in workers {
            w.task.abort();
            let _ = w.task.await;
        }
        self.shared.sweep(&[]).await?;
        // A Docker call of an aborted worker may still land on the daemon: sweep once more.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.shared.sweep(&[]).await
    }
}

impl Drop for KubeletHandle {
    fn drop(&mut self) {
        if let Some(main) = self.main.take() {
            main.abort();
        }
        let mut w = self.shared.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (_, w) in w.drain() {
            w.task.abort();
        }
    }
}

/// Put fixture files (absolute node path → text) on a node's filesystem, for hostPath volumes.
/// `labels` go on the short-lived helper container (so a sweep finds it if the call is
/// interrupted).
pub async fn write_node_files(
    docker: &Docker,
    images: &dyn ImageProvider,
    labels: HashMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Result<(), KubeletError> {
    let docker = docker
        .clone()
        .negotiate_version()
        .await
        .map_err(KubeletError::docker("negotiate API version"))?;
    upload::write_node_files(&docker, images, labels, files)
        .await
        .map_err(KubeletError::docker("write node files"))
}

/// Start a kubelet with the default Kubernetes strings ([`messages::DEFAULT`]).
pub async fn start_kubelet(client: kube::Client, cfg: KubeletConfig) -> Result<KubeletHandle, KubeletError> {
    start_kubelet_with(client, cfg, messages::DEFAULT).await
}

/// Start a kubelet that words its events as the given Kubernetes generation does.
pub async fn start_kubelet_with(
    client: kube::Client,
    cfg: KubeletConfig,
    messages: &'static K8sMessages,
) -> Result<KubeletHandle, KubeletError> {
    let docker = cfg
        .docker
        .clone()
        .negotiate_version()
        .await
        .map_err(KubeletError::docker("negotiate API version"))?;
    node::register_node(&client, &cfg, messages).await?;
    let shared = Arc::new(Shared {
        client,
        docker,
        node: cfg.node_name.clone(),
        gateway_ip: cfg.gateway_ip,
        images: cfg.images,
        privileged: cfg.privileged,
        labels: cfg.labels,
        messages,
        recorder: events::Recorder {
            component: "kubelet".into(),
            host: Some(cfg.node_name.clone()),
            instance: cfg.node_name.clone(),
            action: None,
            recorded: Default::default(),
        },
        workers: Mutex::new(HashMap::new()),
    });
    let main = tokio::spawn(sync::sync_loop(shared.clone()));
    Ok(KubeletHandle {
        shared,
        main: Some(main),
    })
}
