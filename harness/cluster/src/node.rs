//! Kind-style nodes: containers of `sgsim/node:<hash>` on the host daemon, each running its own
//! dockerd (the "container runtime" the kubelet drives) and the node agent.
//!
//! A node is started through testcontainers (via the compat proxy of [`crate::docker`]),
//! privileged or with the privileged fallback, with a labelled Docker volume at `/var/lib/docker`
//! and the node directory `<run dir>/nodes/<name>/` bind-mounted at `/run/sgsim`, where the node's
//! `docker.sock` and `agent.sock` appear and the host serves `delegate.sock`. [`Node`] is RAII:
//! dropping it (or [`Node::shutdown`]) removes the container and the volume.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Taint;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, Image, ImageExt};

use crate::cgroups::{cgroup_parent, remove_cgroups};
use crate::context::RunContext;
use crate::docker::{self, DaemonAddr, DockerError, PrivilegeMode};
use crate::images::{self, BuiltImages, ImageCatalog, ImageError};

/// How long a node may take to print its ready line.
pub const NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The line the node entrypoint prints once dockerd and the agent answer.
pub const NODE_READY_LINE: &str = "sgsim-node: ready";

/// dockerd's registry mirror inside the node: the node agent's :80, which forwards to the run's
/// registry proxy (`crate::registry`).
pub const MIRROR_URL: &str = "http://127.0.0.1";

/// Errors of nodes.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The host daemon could not be reached.
    #[error("cannot reach the host Docker daemon")]
    Host(#[source] DockerError),
    /// An image the node needs was not built.
    #[error("node image missing")]
    Image(#[source] ImageError),
    /// The node directory could not be prepared.
    #[error("cannot prepare the node directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Creating the node's `/var/lib/docker` volume failed.
    #[error("cannot create the volume {volume}")]
    Volume {
        /// The volume name.
        volume: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
    /// testcontainers could not start the node or it did not become ready.
    #[error("node {node} did not start; its log ends with:\n{log}")]
    Start {
        /// The node name.
        node: String,
        /// The last lines of the node container's log (empty if there was none).
        log: String,
        /// What testcontainers reported.
        #[source]
        source: testcontainers::TestcontainersError,
    },
    /// The node's dockerd could not be reached over its socket.
    #[error("cannot reach the dockerd of node {node}")]
    NodeDocker {
        /// The node name.
        node: String,
        /// What failed.
        #[source]
        source: DockerError,
    },
    /// The node agent refused or failed the tunnel.
    #[error("tunnel to {target} through node {node} failed")]
    Tunnel {
        /// The node name.
        node: String,
        /// The target inside the node.
        target: SocketAddr,
        /// What the agent client reported.
        #[source]
        source: sgsim_engine::node_agent::AgentError,
    },
    /// Loading an image into the node failed.
    #[error("cannot load {vendor} into node {node}")]
    Load {
        /// The node name.
        node: String,
        /// The vendor image.
        vendor: String,
        /// What failed.
        #[source]
        source: ImageError,
    },
}

/// What a node is: its Kubernetes identity.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// The node name (Kubernetes `metadata.name`; also the container hostname).
    pub name: String,
    /// The node index: its pod bridge is `10.244.<index>.0/24`.
    pub index: u8,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
}

impl NodeSpec {
    /// A node with no labels and no taints.
    pub fn new(name: impl Into<String>, index: u8) -> Self {
        NodeSpec {
            name: name.into(),
            index,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }

    /// The bridge gateway of the node's dockerd, `10.244.<index>.1`.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, self.index, 1)
    }

    /// The `--bip` of the node's dockerd, `10.244.<index>.1/24`.
    pub fn bip(&self) -> String {
        format!("{}/24", self.gateway_ip())
    }
}

/// Result of [`Node::ensure_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The node already had the image under the vendor name.
    AlreadyPresent,
    /// The stand-in was loaded (and tagged with the vendor name).
    Loaded {
        /// How long the load took.
        took: Duration,
    },
}

/// The node image for testcontainers.
#[derive(Debug, Clone)]
struct NodeImage {
    name: String,
    tag: String,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
}

impl Image for NodeImage {
    fn name(&self) -> &str {
        &self.name
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::message_on_stdout(NODE_READY_LINE)]
    }

    fn env_vars(
        &self,
    ) -> impl IntoIterator<
        Item = (
            impl Into<std::borrow::Cow<'_, str>>,
            impl Into<std::borrow::Cow<'_, str>>,
        ),
    > {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn mounts(&self) -> impl IntoIterator<Item = &Mount> {
        self.mounts.iter()
    }
}

static FALLBACK_SAID: AtomicBool = AtomicBool::new(false);

/// A running node. Dropping it removes its container and volume.
pub struct Node {
    spec: NodeSpec,
    container: Option<ContainerAsync<NodeImage>>,
    container_id: String,
    container_name: String,
    volume: String,
    dir: PathBuf,
    docker: Docker,
    mode: PrivilegeMode,
    started_in: Duration,
    load_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.spec.name)
            .field("container", &self.container_name)
            .field("volume", &self.volume)
            .field("mode", &self.mode)
            .finish()
    }
}

impl Node {
    /// Starts a node: creates the labelled `/var/lib/docker` volume and the node directory, runs
    /// the node image through testcontainers (privileged, or the fallback, said once), waits for
    /// its ready line, and connects to its dockerd.
    pub async fn start(ctx: &RunContext, spec: NodeSpec, built: &BuiltImages) -> Result<Node, NodeError> {
        let started = Instant::now();
        let image = built.require("node").map_err(NodeError::Image)?.to_string();
        let probe = built.require("busybox").map_err(NodeError::Image)?.to_string();
        let host = docker::host_docker().await.map_err(NodeError::Host)?;
        let mode = docker::detect_privilege_mode(&host, &probe).await;
        // The user-facing note is the reporter's (SessionEvent::NodeReady { fallback }); this is
        // for logs only.
        if mode == PrivilegeMode::Fallback && !FALLBACK_SAID.swap(true, Ordering::Relaxed) {
            tracing::info!(
                "the Docker daemon refuses --privileged containers; nodes and privileged pod containers \
                 use the fallback (all known capabilities but SYS_RESOURCE, unconfined seccomp/apparmor/\
                 system paths, all devices, /sys/fs/cgroup rw)"
            );
        }
        let api_version = host
            .version()
            .await
            .ok()
            .and_then(|v| v.api_version)
            .and_then(|v| docker::parse_api_version(&v));

        let dir = ctx.node_dir(&spec.name);
        let dir_err = |source| NodeError::Dir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(dir_err)?;
        for stale in ["docker.sock", "agent.sock"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }

        let container_name = ctx.resource_name(&spec.name);
        let volume = format!("{container_name}-docker");
        host.create_volume(VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(ctx.labels()),
            ..Default::default()
        })
        .await
        .map_err(|source| NodeError::Volume {
            volume: volume.clone(),
            source,
        })?;
        // From here on, the volume goes away again if the start fails.
        let mut volume_guard = VolumeGuard {
            volume: Some(volume.clone()),
        };

        let (repo, tag) = images::split_reference(&image);
        let node_image = NodeImage {
            name: repo,
            tag,
            env: vec![
                ("SGSIM_NODE_BIP".to_string(), spec.bip()),
                ("SGSIM_NODE_CGROUP_PARENT".to_string(), cgroup_parent(&container_name)),
                // Docker Hub names are pulled from the run's registry (crate::registry).
                (
                    "SGSIM_NODE_DOCKERD_ARGS".to_string(),
                    format!("--registry-mirror={MIRROR_URL}"),
                ),
            ],
            mounts: vec![
                Mount::volume_mount(volume.clone(), "/var/lib/docker"),
                Mount::bind_mount(dir.to_string_lossy().into_owned(), "/run/sgsim"),
            ],
        };
        let started_container = node_image
            .with_container_name(container_name.clone())
            .with_hostname(spec.name.clone())
            .with_labels(ctx.labels())
            .with_startup_timeout(NODE_STARTUP_TIMEOUT)
            .with_host_config_modifier(move |hc| {
                docker::apply_privileged_for(hc, mode, api_version);
                // Host <-> node traffic goes through the unix sockets in /run/sgsim only: the
                // node has no network interface beyond loopback (its pods have the node's bridge),
                // so nothing in it can reach any address off this machine.
                hc.network_mode = Some("none".to_string());
                // No name service either: nothing listens on the node's 127.0.0.1:53.
                hc.dns = Some(vec!["127.0.0.1".to_string()]);
            })
            .start()
            .await;
        let container = match started_container {
            Ok(c) => c,
            Err(source) => {
                // testcontainers leaves a container behind when starting it fails.
                let log = log_tail(&host, &container_name, 30).await;
                let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
                let _ = host.remove_container(&container_name, Some(opts)).await;
                return Err(NodeError::Start {
                    node: spec.name.clone(),
                    log,
                    source,
                });
            }
        };
        let container_id = container.id().to_string();

        let docker = docker::connect(&DaemonAddr::Unix(dir.join("docker.sock")))
            .await
            .map_err(|source| NodeError::NodeDocker {
                node: spec.name.clone(),
                source,
            })?;
        volume_guard.volume = None;
        let started_in = started.elapsed();
        tracing::debug!(node = %spec.name, ?mode, ?started_in, "node started");
        Ok(Node {
            spec,
            container: Some(container),
            container_id,
            container_name,
            volume,
            dir,
            docker,
            mode,
            started_in,
            load_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What the node was started as.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// The node's dockerd (over `<node dir>/docker.sock`, version negotiated).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The node's bridge gateway, `10.244.<index>.1` (where pods reach the node agent's :8080).
    pub fn gateway_ip(&self) -> Ipv4Addr {
        self.spec.gateway_ip()
    }

    /// `<node dir>/delegate.sock`: the host serves the DelegateService here; the node agent
    /// forwards the node's TCP 8080 to it.
    pub fn delegate_socket(&self) -> PathBuf {
        self.dir.join("delegate.sock")
    }

    /// `<node dir>/agent.sock`: the node agent's CONNECT tunnel.
    pub fn agent_socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// `<node dir>/docker.sock`: the node's dockerd.
    pub fn docker_socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The node directory on the host (`<run dir>/nodes/<name>/`, `/run/sgsim` in the node).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether privileged containers use `--privileged` or the fallback (on the host daemon;
    /// the kubelet uses the same mode one level down).
    pub fn privilege_mode(&self) -> PrivilegeMode {
        self.mode
    }

    /// The node container's id on the host daemon.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The node container's name on the host daemon (`sgsim-<run id>-<node>`).
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// The name of the node's `/var/lib/docker` volume on the host daemon.
    pub fn volume_name(&self) -> &str {
        &self.volume
    }

    /// How long [`Node::start`] took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Opens a byte stream to `ip:port` as seen from inside the node (a pod IP on the node's
    /// bridge), through the node agent's `CONNECT` protocol.
    pub async fn connect(&self, ip: IpAddr, port: u16) -> Result<tokio::net::UnixStream, NodeError> {
        let target = SocketAddr::new(ip, port);
        sgsim_engine::node_agent::connect_via_agent(&self.agent_socket(), target)
            .await
            .map_err(|source| NodeError::Tunnel {
                node: self.spec.name.clone(),
                target,
                source,
            })
    }

    /// Makes the vendor image available in the node: nothing if it is there already, else the
    /// catalog's stand-in is loaded from the host daemon and tagged with the vendor name. Loads
    /// into one node are serialized.
    pub async fn ensure_image(
        &self,
        host: &Docker,
        catalog: &ImageCatalog,
        vendor: &str,
    ) -> Result<LoadOutcome, NodeError> {
        let load_err = |source| NodeError::Load {
            node: self.spec.name.clone(),
            vendor: vendor.to_string(),
            source,
        };
        let _guard = self.load_lock.lock().await;
        if images::present_on_node(&self.docker, vendor).await.map_err(load_err)? {
            return Ok(LoadOutcome::AlreadyPresent);
        }
        let standin = catalog.resolve(vendor);
        let took = images::load_into_node(host, &self.docker, &standin)
            .await
            .map_err(load_err)?;
        Ok(LoadOutcome::Loaded { took })
    }

    /// Stops the node: removes its container, then its volume and directory.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.container.take()
            && let Err(e) = c.rm().await
        {
            tracing::warn!("node {}: removing the container failed: {e}", self.spec.name);
        }
        remove_volume(&self.volume).await;
        remove_cgroups(&self.container_name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else { return };
        let volume = self.volume.clone();
        // testcontainers removes the container in its own Drop, blocking on the runtime it is
        // dropped in. On a runtime that is shutting down (a task that holds the last reference is
        // dropped as the process ends, e.g. `sgsim run … | head`) that never completes: the
        // process hung until killed. So it is dropped on a thread with a runtime of its own.
        run_blocking_cleanup(move || async move {
            drop(container);
            remove_volume(&volume).await;
        });
        remove_cgroups(&self.container_name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last `lines` lines of a container's log (stdout and stderr), or "" if unavailable.
pub(crate) async fn log_tail(docker: &Docker, container: &str, lines: usize) -> String {
    let opts = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(container, Some(opts));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&chunk.to_string());
    }
    text
}

async fn remove_volume(volume: &str) {
    let host = match docker::host_docker().await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("cannot remove volume {volume}: {e}");
            return;
        }
    };
    let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
    // The container may still be going away: retry briefly.
    for attempt in 0..20 {
        match host.remove_volume(volume, Some(opts.clone())).await {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return,
            Err(e) if attempt == 19 => tracing::warn!("cannot remove volume {volume}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Runs an async cleanup to completion from synchronous code (Drop) on a thread of its own with
/// its own runtime, so it finishes even while the caller's runtime is shutting down, without
/// blocking a runtime worker without telling it.
fn run_blocking_cleanup<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let worker = std::thread::Builder::new().name("sgsim-cleanup".into()).spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(f());
        }
    });
    let Ok(worker) = worker else { return };
    let join = move || {
        let _ = worker.join();
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(join),
        _ => join(),
    }
}

/// Removes a freshly created node volume if the start fails before the node exists.
struct VolumeGuard {
    volume: Option<String>,
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        if let Some(volume) = self.volume.take() {
            run_blocking_cleanup(move || async move { remove_volume(&volume).await });
        }
    }
}
