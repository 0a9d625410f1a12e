//! Home of the node pool: warm kind-style nodes shared by the trials of one process, and a throwaway
//! [`Cluster`] per trial on top of it.
//!
//! A [`NodePool`] owns the expensive things: the run context (labels, run dir), the built images,
//! the node containers (started through testcontainers) with the images loaded into them, and the
//! delegate service every node's pods call back. A [`Cluster`] is cheap: its own embedded API
//! server, scheduler and one kubelet per fixture node, each kubelet mapped onto a physical node of
//! the pool. So each trial sees a fresh cluster (its own namespaces, events, node labels and
//! taints, and a node that has pulled nothing yet) while the suite pays one node start and one
//! image load.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sgsim_core::scenario::NodeFixture;
use sgsim_engine::delegate::{DelegateServer, ServeGuard};
use tokio::sync::Mutex;

use crate::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use crate::context::RunContext;
use crate::docker::{self, PrivilegeMode};
use crate::images::{self, BuildEvent, BuiltImages, ImageCatalog, StandIn};
use crate::kubelet::{
    self, ImageProvider, KubeletConfig, KubeletHandle, PullError, PullOutcome, PullPolicy, SandboxSpec,
};
use crate::node::{LoadOutcome, Node, NodeSpec};
use crate::pod_api::{EndpointGuard, PodApiGateway, RouteGuard};
use crate::registry::{self, PullCredentials, RegistryHub};
use crate::runner::{PodDialer, PodStream};
use crate::scheduler::{self, SchedulerHandle};

/// Errors of starting a [`NodePool`] or a [`Cluster`] on it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The host Docker daemon is unreachable.
    #[error("cannot reach the Docker daemon")]
    Docker(#[from] docker::DockerError),
    /// The run context could not be created.
    #[error("cannot create the run context")]
    Context(#[from] crate::context::ContextError),
    /// Building the images failed.
    #[error("building the images failed")]
    Images(#[from] images::ImageError),
    /// A node did not start.
    #[error("node failed")]
    Node(#[from] crate::node::NodeError),
    /// The API server did not start.
    #[error("the embedded API server failed")]
    ApiServer(#[from] crate::apiserver::ApiServerError),
    /// A kubelet did not start.
    #[error("kubelet failed")]
    Kubelet(#[from] kubelet::KubeletError),
    /// The delegate service could not listen.
    #[error("the delegate service failed")]
    Delegate(#[from] sgsim_engine::EngineError),
    /// The pods' TLS endpoint to the API server could not be set up.
    #[error("cannot serve the pods' API server endpoint")]
    PodApi(#[from] crate::pod_api::PodApiError),
    /// The run's registries failed.
    #[error("the registries of the run failed")]
    Registry(#[from] crate::registry::RegistryError),
}

/// Progress of starting a [`NodePool`], for the reporter.
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// Image build progress.
    Image(BuildEvent),
    /// Things left by crashed runs were removed.
    Reaped(String),
    /// A node is starting.
    NodeStarting(String),
    /// A node is up.
    NodeReady {
        /// Node container name.
        name: String,
        /// How long it took.
        took: Duration,
        /// Whether the privileged fallback is in use.
        fallback: bool,
    },
    /// A step's image is being pulled into the host daemon before the run (`--pull`).
    Pull(crate::images::PullEvent),
    /// An image was loaded into a node.
    ImageLoaded {
        /// Vendor name.
        image: String,
        /// How long it took.
        took: Duration,
    },
}

/// Options of a [`NodePool`].
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Repository root (where `scripts/build-images.sh` is).
    pub repo_root: PathBuf,
    /// How many physical nodes to start.
    pub nodes: usize,
}

/// Warm nodes shared by the trials of a process.
pub struct NodePool {
    ctx: RunContext,
    host: Docker,
    built: BuiltImages,
    nodes: Vec<Arc<Node>>,
    registries: Vec<Arc<RegistryHub>>,
    delegate: Arc<DelegateServer>,
    guards: Vec<ServeGuard>,
    sandbox: SandboxSpec,
    pod_api: Arc<PodApiGateway>,
    pod_api_guards: Vec<EndpointGuard>,
}

impl std::fmt::Debug for NodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePool")
            .field("run", &self.ctx.run_id)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl NodePool {
    /// Builds missing images, removes what crashed runs left, starts the nodes and loads the
    /// pod sandbox image into them.
    pub async fn start(
        opts: &PoolOptions,
        progress: &(dyn Fn(SessionEvent) + Send + Sync),
    ) -> Result<NodePool, SessionError> {
        let host = docker::host_docker().await?;
        if let Ok(r) = crate::reaper::reap_stale(&host).await {
            let n = r.containers.len() + r.volumes.len() + r.networks.len();
            if n > 0 {
                progress(SessionEvent::Reaped(format!(
                    "removed {} container(s), {} volume(s), {} network(s) left by crashed runs",
                    r.containers.len(),
                    r.volumes.len(),
                    r.networks.len()
                )));
            }
        }
        let built = images::ensure_built(&opts.repo_root, &|e| progress(SessionEvent::Image(e))).await?;
        let ctx = RunContext::new()?;
        let pause = built.require("pause")?.to_string();
        let sandbox = SandboxSpec {
            image: pause.clone(),
            command: Vec::new(),
        };
        let delegate = Arc::new(DelegateServer::new());
        let pod_api = Arc::new(PodApiGateway::new()?);
        let mut pool = NodePool {
            ctx,
            host,
            built,
            nodes: Vec::new(),
            registries: Vec::new(),
            delegate,
            guards: Vec::new(),
            sandbox,
            pod_api,
            pod_api_guards: Vec::new(),
        };
        for i in 0..opts.nodes.max(1) {
            let name = format!("node-{i}");
            progress(SessionEvent::NodeStarting(name.clone()));
            let started = Instant::now();
            let node = Node::start(&pool.ctx, NodeSpec::new(name.clone(), i as u8), &pool.built).await?;
            let standin = StandIn {
                vendor: pause.clone(),
                local: pause.clone(),
                entrypoint: vec![],
                cmd: vec![],
                user: None,
            };
            if !images::present_on_node(node.docker(), &pause).await.unwrap_or(false) {
                images::load_into_node(&pool.host, node.docker(), &standin).await?;
            }
            let guard = pool.delegate.serve_unix(&node.delegate_socket()).await?;
            progress(SessionEvent::NodeReady {
                name: node.container_name().to_string(),
                took: started.elapsed(),
                fallback: node.privilege_mode() == PrivilegeMode::Fallback,
            });
            pool.guards.push(guard);
            let endpoint = pool.pod_api.serve_unix(
                &node.dir().join("apiserver.sock"),
                &[std::net::IpAddr::V4(node.gateway_ip())],
            )?;
            pool.pod_api_guards.push(endpoint);
            let registry_image = pool.built.require("registry")?.to_string();
            let hub =
                RegistryHub::start(&node, pool.host.clone(), &registry_image, pool.ctx.node_level_labels()).await?;
            hub.configure(&[]).await?;
            pool.registries.push(hub);
            pool.nodes.push(Arc::new(node));
        }
        Ok(pool)
    }

    /// The run id of this pool (every container it starts is labelled with it).
    pub fn run_id(&self) -> &str {
        &self.ctx.run_id
    }

    /// The delegate service the pods report to.
    pub fn delegate(&self) -> &DelegateServer {
        &self.delegate
    }

    /// The host daemon.
    pub fn host(&self) -> &Docker {
        &self.host
    }

    /// The built images.
    pub fn built(&self) -> &BuiltImages {
        &self.built
    }

    /// The physical nodes.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The registries of the pool's nodes (one hub per physical node).
    pub fn registries(&self) -> &[Arc<RegistryHub>] {
        &self.registries
    }

    /// Starts a fresh cluster for a scenario: [`Self::cluster_for`] its fixtures, plus an anonymous
    /// registry for each other (public) host its pod's images name.
    /// `host` are the images of the host daemon that run as themselves
    /// ([`crate::images::host_images`]).
    pub async fn cluster_for_scenario(
        &self,
        scenario: &sgsim_core::Scenario,
        host: Vec<(String, images::HostImage)>,
        progress: &(dyn Fn(SessionEvent) + Send + Sync),
    ) -> Result<Cluster, SessionError> {
        let f = scenario.fixtures();
        let specs = registry::specs_for_scenario(scenario);
        for hub in &self.registries {
            hub.configure(&specs).await?;
        }
        let version = f.kubernetes_version.as_deref();
        self.cluster_with(&f.nodes, &f.images, &specs, host, version, progress)
            .await
    }

    /// Starts a fresh cluster for a scenario's fixtures: its registries (Docker connectors,
    /// `fixtures.registries` conditions), nodes (with pre-pulled images) and catalog overrides.
    pub async fn cluster_for(
        &self,
        f: &sgsim_core::scenario::Fixtures,
        progress: &(dyn Fn(SessionEvent) + Send + Sync),
    ) -> Result<Cluster, SessionError> {
        self.cluster_with_registries(f, registry::specs_from_fixtures(f), progress)
            .await
    }

    async fn cluster_with_registries(
        &self,
        f: &sgsim_core::scenario::Fixtures,
        specs: Vec<registry::RegistrySpec>,
        progress: &(dyn Fn(SessionEvent) + Send + Sync),
    ) -> Result<Cluster, SessionError> {
        for hub in &self.registries {
            hub.configure(&specs).await?;
        }
        let version = f.kubernetes_version.as_deref();
        self.cluster_with(&f.nodes, &f.images, &specs, Vec::new(), version, progress)
            .await
    }

    /// Starts a fresh cluster for one trial on the pool's nodes. `fixtures` are the logical nodes
    /// (names, labels, taints); with none, one node `node-1`. `images` are catalog overrides.
    pub async fn cluster(
        &self,
        fixtures: &[NodeFixture],
        images: &BTreeMap<String, String>,
        progress: &(dyn Fn(SessionEvent) + Send + Sync),
    ) -> Result<Cluster, SessionError> {
        self.cluster_with(fixtures, images, &[], Vec::new(), None, progress)
            .await
    }

    async fn cluster_with(
        &self,
        fixtures: &[NodeFixture],
        images: &BTreeMap<String, String>,
        specs: &[registry::RegistrySpec],
        host: Vec<(String, images::HostImage)>,
        version: Option<&str>,
        progress: &(dyn Fn(SessionEvent) + Send + Sync),
    ) -> Result<Cluster, SessionError> {
        let _ = progress;
        // The Kubernetes version the cluster plays (`fixtures.kubernetesVersion`): its wording
        // and what /version says.
        let messages = version.map_or(crate::k8s::messages::DEFAULT, crate::k8s::K8sMessages::for_version);
        let mut opts = ApiServerOptions {
            root_ca: Some(self.pod_api.ca_pem().to_string()),
            ..ApiServerOptions::default()
        };
        if let Some(v) = version {
            opts.git_version = crate::k8s::messages::git_version(v);
        }
        let api = ApiServer::start(opts).await?;
        let client = api.client().await?;
        let pod_api_route = self.pod_api.register(&api.token_key_id(), api.endpoint());
        let trial = crate::context::random_suffix(10);
        let catalog = Arc::new(
            ImageCatalog::builtin(&self.built)
                .with_overrides(images)
                .with_host_images(host),
        );
        let default_fixture = [NodeFixture {
            name: "node-1".into(),
            ..Default::default()
        }];
        let fixtures = if fixtures.is_empty() {
            &default_fixture[..]
        } else {
            fixtures
        };
        let mut kubelets = Vec::new();
        let mut map = HashMap::new();
        for (i, f) in fixtures.iter().enumerate() {
            let physical = self.nodes[i % self.nodes.len()].clone();
            let provider = Arc::new(NodeImages {
                node: physical.clone(),
                host: self.host.clone(),
                catalog: catalog.clone(),
                sandbox: self.sandbox.clone(),
                pulled: Mutex::new(HashSet::new()),
                registries: self.registries[i % self.nodes.len()].clone(),
                missing: specs.iter().flat_map(|s| s.missing.iter().cloned()).collect(),
            });
            // Images the fixture says the node has already: pulled before the trial starts.
            for image in &f.images {
                if let Err(e) = provider.ensure(image, PullPolicy::Always).await {
                    tracing::warn!("node {}: pre-pulling {image} failed: {e}", f.name);
                }
            }
            let mode = physical.privilege_mode();
            let mut labels = self.ctx.labels();
            labels.insert("dev.sgsim.trial".into(), trial.clone());
            let mut helper_labels = labels.clone();
            helper_labels.extend([
                ("dev.sgsim.managed".to_string(), "true".to_string()),
                (kubelet::NODE_LABEL.to_string(), f.name.clone()),
            ]);
            kubelet::write_node_files(physical.docker(), provider.as_ref(), helper_labels, &f.files).await?;
            let cfg = KubeletConfig {
                node_name: f.name.clone(),
                docker: physical.docker().clone(),
                gateway_ip: physical.gateway_ip(),
                images: provider,
                privileged: Arc::new(move |hc| docker::apply_privileged(hc, mode)),
                labels,
                node_labels: f.labels.clone(),
                taints: f
                    .taints
                    .iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                        time_added: None,
                    })
                    .collect(),
                capacity: BTreeMap::from([
                    ("cpu".to_string(), Quantity(f.cpu.clone().unwrap_or_else(|| "8".into()))),
                    (
                        "memory".to_string(),
                        Quantity(f.memory.clone().unwrap_or_else(|| "16Gi".into())),
                    ),
                    ("pods".to_string(), Quantity("110".into())),
                ]),
            };
            let k = kubelet::start_kubelet_with(client.clone(), cfg, messages).await?;
            api.register_node_logs(&f.name, k.log_source());
            api.register_node_ports(&f.name, Arc::new(NodePorts(physical.clone())));
            kubelets.push(k);
            map.insert(f.name.clone(), physical);
        }
        let scheduler = scheduler::spawn_scheduler_with(client.clone(), messages);
        Ok(Cluster {
            api,
            client,
            scheduler: Some(scheduler),
            kubelets,
            dialer: Arc::new(NodeDialer { map }),
            catalog,
            _pod_api_route: pod_api_route,
        })
    }

    /// Stops the nodes and removes everything the pool started.
    pub async fn shutdown(mut self) {
        self.guards.clear();
        self.pod_api_guards.clear();
        let nodes: Vec<Arc<Node>> = self.nodes.drain(..).collect();
        let orderly = async move {
            let mut held = false;
            for node in nodes {
                match unwrap_arc(node, RELEASE_WAIT).await {
                    Ok(n) => n.shutdown().await,
                    Err(n) => {
                        held = true;
                        drop(n);
                    }
                }
            }
            held
        };
        // Bounded: a kubelet stuck in a pull whose registry is gone must not keep the process
        // alive; what is left is removed by the run's label.
        match tokio::time::timeout(SHUTDOWN_LIMIT, orderly).await {
            Ok(false) => {}
            Ok(true) => self.remove_everything().await,
            Err(_) => {
                tracing::warn!(
                    "the node pool did not shut down within {SHUTDOWN_LIMIT:?}; removing run {} by label",
                    self.run_id()
                );
                self.remove_everything().await;
                // The removed nodes' empty cgroups (and whatever dead runs left).
                let _ = crate::reaper::reap_stale(&self.host).await;
            }
        }
    }

    /// Resolves when a node of the pool stops running, or when the host's Docker daemon stops
    /// answering: what happened, for the run's error. Polls every [`NODE_WATCH_INTERVAL`] (the
    /// state Docker reports cannot be fooled by a missed event), so a run whose node dies fails
    /// within about a second instead of waiting for a timeout.
    pub async fn watch_nodes(&self) -> NodeLost {
        let mut unreachable_since: Option<Instant> = None;
        loop {
            for node in &self.nodes {
                match self.host.inspect_container(node.container_id(), None).await {
                    Ok(info) => {
                        unreachable_since = None;
                        let state = info.state.unwrap_or_default();
                        if state.running != Some(true) {
                            let mut how = node_end(&state);
                            // The node's entrypoint says which of its processes ended it.
                            let log = crate::node::log_tail(&self.host, node.container_id(), 20).await;
                            if let Some(last) = log
                                .lines()
                                .rev()
                                .find(|l| l.starts_with("sgsim-node: ") && !l.ends_with(": ready"))
                            {
                                how.push_str(&format!(" (it said `{}`)", last.trim_end()));
                            }
                            return NodeLost::Node {
                                node: node.name().to_string(),
                                container: node.container_name().to_string(),
                                how,
                            };
                        }
                    }
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                        return NodeLost::Node {
                            node: node.name().to_string(),
                            container: node.container_name().to_string(),
                            how: "was removed".to_string(),
                        };
                    }
                    Err(e) => {
                        let since = *unreachable_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= HOST_UNREACHABLE_GRACE {
                            return NodeLost::Host(e.to_string());
                        }
                    }
                }
            }
            tokio::time::sleep(NODE_WATCH_INTERVAL).await;
        }
    }

    /// Removes every container, volume and network of this run by its label, also those a
    /// running trial still holds (for an interrupted suite that exits right after).
    pub async fn remove_everything(&self) {
        if let Err(e) = crate::reaper::remove_run(&self.host, self.run_id()).await {
            tracing::warn!("cannot remove the containers of run {}: {e}", self.run_id());
        }
    }
}

/// How long [`NodePool::shutdown`] waits for the nodes' orderly shutdown before removing the
/// run's resources by label.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// How long shutting down waits for tasks that are being cancelled (a run given up, an
/// interrupted trial) to let go of a node or the pool before removing it by label.
pub const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// The value inside `a` once every other holder has dropped it (cancelled tasks drop theirs
/// a moment later), or `a` back after `wait`. Waiting avoids removing a node's container twice
/// at once (by label here, and by the last holder's drop).
pub async fn unwrap_arc<T>(mut a: Arc<T>, wait: Duration) -> Result<T, Arc<T>> {
    let deadline = Instant::now() + wait;
    loop {
        match Arc::try_unwrap(a) {
            Ok(v) => return Ok(v),
            Err(back) if Instant::now() < deadline => {
                a = back;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(back) => return Err(back),
        }
    }
}

/// How often [`NodePool::watch_nodes`] asks the host daemon about the nodes.
pub const NODE_WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// How long the host daemon may fail to answer before the run is given up.
const HOST_UNREACHABLE_GRACE: Duration = Duration::from_secs(2);

/// Why a run lost its nodes ([`NodePool::watch_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLost {
    /// A node container stopped.
    Node {
        /// The node's name (as in the Initialize log and `kubectl get nodes`).
        node: String,
        /// Its container on the host.
        container: String,
        /// What Docker says ended it: `exited with code 137 (killed)`, `was removed`, ...
        how: String,
    },
    /// The host's Docker daemon stopped answering.
    Host(String),
}

impl std::fmt::Display for NodeLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeLost::Node { node, container, how } => write!(
                f,
                "node `{node}` (container {container}) {how} during the run; its pods and their steps are gone, so \
                 the run cannot go on (sgsim's error, not the product's: the step group's outcome is unknown)"
            ),
            NodeLost::Host(e) => write!(
                f,
                "the host's Docker daemon stopped answering during the run ({e}); the nodes cannot be reached, so \
                 the run cannot go on"
            ),
        }
    }
}

/// Words for how a node container ended, from its state.
fn node_end(state: &bollard::models::ContainerState) -> String {
    let mut how = match state.exit_code {
        Some(137) => "exited with code 137 (SIGKILL)".to_string(),
        Some(c) => format!("exited with code {c}"),
        None => "stopped".to_string(),
    };
    if state.oom_killed == Some(true) {
        how.push_str(", out of memory");
    }
    how
}

/// One trial's cluster: API server, scheduler, kubelets.
pub struct Cluster {
    api: ApiServerHandle,
    client: kube::Client,
    scheduler: Option<SchedulerHandle>,
    kubelets: Vec<KubeletHandle>,
    dialer: Arc<NodeDialer>,
    catalog: Arc<ImageCatalog>,
    /// Pods' requests with this cluster's tokens reach its API server while this lives.
    _pod_api_route: RouteGuard,
}

impl Cluster {
    /// ENTRYPOINT/CMD of the stand-in of a vendor image, for the runner.
    pub fn image_entrypoint(&self) -> crate::runner::ImageEntrypoint {
        self.catalog.entrypoint_lookup()
    }

    /// The name of the stand-in image a vendor image runs as (`busybox`, `python`, ...).
    pub fn standin_name(&self, image: &str) -> String {
        self.catalog.standin_name(image).to_string()
    }

    /// What a vendor image runs as: itself when the host has it, else its stand-in's name.
    pub fn ran_as(&self, image: &str) -> String {
        self.catalog.ran_as(image)
    }

    /// Where a vendor image comes from.
    pub fn image_source(&self, image: &str) -> images::ImageSource {
        self.catalog.source(image)
    }

    /// Whether sgsim has the image itself (host) or a stand-in chosen for it (an override or a
    /// catalog rule), not only the fallback stand-in.
    pub fn models(&self, image: &str) -> bool {
        self.catalog.models(image)
    }

    /// A client of the cluster's API server.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API server (kubeconfig, url).
    pub fn api(&self) -> &ApiServerHandle {
        &self.api
    }

    /// Tunnels to pods of this cluster.
    pub fn dialer(&self) -> Arc<dyn PodDialer> {
        self.dialer.clone()
    }

    /// Stops the kubelets (removing every container and volume of the trial), the scheduler and
    /// the API server.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.scheduler.take() {
            s.shutdown().await;
        }
        for k in self.kubelets.drain(..) {
            if let Err(e) = k.shutdown().await {
                tracing::warn!("kubelet shutdown: {e}");
            }
        }
        self.api.shutdown().await;
    }
}

/// `pods/portforward` of a node's pods: the node agent's tunnel.
struct NodePorts(Arc<Node>);

impl crate::apiserver::PodPortSource for NodePorts {
    fn connect(&self, ip: IpAddr, port: u16) -> BoxFuture<'static, std::io::Result<tokio::net::UnixStream>> {
        let n = self.0.clone();
        Box::pin(async move { n.connect(ip, port).await.map_err(std::io::Error::other) })
    }
}

struct NodeDialer {
    map: HashMap<String, Arc<Node>>,
}

impl PodDialer for NodeDialer {
    fn dial(&self, node: &str, ip: IpAddr, port: u16) -> BoxFuture<'static, std::io::Result<PodStream>> {
        let n = self.map.get(node).cloned();
        let node = node.to_string();
        Box::pin(async move {
            let n = n.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("no node {node} in this cluster"))
            })?;
            let stream: PodStream = Box::new(n.connect(ip, port).await.map_err(std::io::Error::other)?);
            Ok(stream)
        })
    }
}

/// Images of one logical node: it starts with nothing pulled (as a fresh node, or with the
/// fixture's pre-pulled images). A pull is a real pull by the node's dockerd from the run's
/// registries ([`RegistryHub`]), which are seeded with the catalog's stand-in under the image's
/// name first (unless the scenario declares the image missing). The pod sandbox image is loaded
/// directly (it has no vendor name).
struct NodeImages {
    node: Arc<Node>,
    host: Docker,
    catalog: Arc<ImageCatalog>,
    sandbox: SandboxSpec,
    pulled: Mutex<HashSet<String>>,
    registries: Arc<RegistryHub>,
    missing: HashSet<String>,
}

impl NodeImages {
    async fn pull(&self, image: &str, credentials: Option<PullCredentials>) -> Result<Duration, PullError> {
        let standin = self.catalog.resolve(image);
        let missing = self.missing.contains(image);
        self.registries
            .ensure_seeded(image, &standin, missing)
            .await
            .map_err(PullError::provider)?;
        let started = Instant::now();
        let (repo, tag) = images::split_reference(&images::node_reference(image));
        let opts = bollard::query_parameters::CreateImageOptionsBuilder::new()
            .from_image(&repo)
            .tag(&tag)
            .build();
        let mut stream = self
            .node
            .docker()
            .create_image(Some(opts), None, credentials.map(|c| c.docker()));
        while let Some(item) = futures::StreamExt::next(&mut stream).await {
            match item {
                Ok(info) => {
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        return Err(PullError::Runtime(message));
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                    return Err(PullError::Runtime(format!("Error response from daemon: {message}")));
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(PullError::Runtime(error));
                }
                Err(e) => return Err(PullError::Runtime(docker::error_chain(&e))),
            }
        }
        Ok(started.elapsed())
    }
}

impl ImageProvider for NodeImages {
    fn sandbox(&self) -> SandboxSpec {
        self.sandbox.clone()
    }

    fn local_ref(&self, image: &str) -> String {
        images::node_reference(image)
    }

    fn is_present<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, PullError>> {
        Box::pin(async move { Ok(self.pulled.lock().await.contains(image)) })
    }

    fn ensure<'a>(&'a self, image: &'a str, policy: PullPolicy) -> BoxFuture<'a, Result<PullOutcome, PullError>> {
        self.ensure_with_credentials(image, policy, None)
    }

    fn ensure_with_credentials<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
        credentials: Option<PullCredentials>,
    ) -> BoxFuture<'a, Result<PullOutcome, PullError>> {
        Box::pin(async move {
            let queued = Instant::now();
            // One pull at a time per node (the kubelet's serialized image pulls).
            let mut pulled = self.pulled.lock().await;
            if pulled.contains(image) && policy != PullPolicy::Always {
                return Ok(PullOutcome::AlreadyPresent);
            }
            if image == self.sandbox.image {
                let started = Instant::now();
                let outcome = self
                    .node
                    .ensure_image(&self.host, &self.catalog, image)
                    .await
                    .map_err(PullError::provider)?;
                let took = match outcome {
                    LoadOutcome::AlreadyPresent => started.elapsed(),
                    LoadOutcome::Loaded { took } => took,
                };
                pulled.insert(image.to_string());
                return Ok(PullOutcome::Pulled {
                    took,
                    waited: took + (started - queued),
                });
            }
            let took = self.pull(image, credentials).await?;
            pulled.insert(image.to_string());
            Ok(PullOutcome::Pulled {
                took,
                waited: queued.elapsed(),
            })
        })
    }
}
