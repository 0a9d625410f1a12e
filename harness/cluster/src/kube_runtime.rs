//! `--backend kube`: the scenarios on a cluster sgsim does not own (kind, k3d, a shared cluster,
//! or an `sgsim cluster up` of another process), reached only through a kubeconfig.
//!
//! Per trial ([`KubeRuntime`]):
//! - a namespace of its own: every namespace the scenario names gets a unique stand-in
//!   (`sgsim-<run>-<trial>-<i>`, labelled `dev.sgsim.run`), and the record is mapped back, so the
//!   goldens compare as on the embedded cluster;
//! - the in-cluster delegate relay (`sgsim/relay`, [`sgsim_engine::relay`]) in a namespace of its
//!   own (`…-relay`, so the step group's namespace holds only what the product's would): sgsim keeps
//!   back connections to it open through `pods/portforward`, and the step group's pod reaches
//!   `delegate-service:8080` through a `hostAliases` entry pointing at the relay (removed again
//!   from the recorded pod);
//! - the lite-engine is dialed through `pods/portforward` as well;
//! - everything is deleted afterwards (pods first, then the namespaces), also on Ctrl-C.
//!
//! Scenarios that need control over the cluster itself (its nodes, registries, image catalog,
//! Kubernetes version, cluster-scoped objects) do not apply: [`not_applicable`] says why, and the
//! suite skips them. docs/kube-backend.md lists what may differ on a real cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, HostAlias, Namespace, Pod, PodSpec};
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use sgsim_core::Scenario;
use sgsim_core::record::RunRecord;
use sgsim_engine::delegate::{DelegateServer, ServeGuard};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

use crate::context::RunContext;
use crate::images::{BuiltImages, ImageCatalog};
use crate::pool::SessionEvent;
use crate::runner::{self, PodDialer, PodStream, RunOptions};
use crate::runtime::{RunOutput, RunSettings, Runtime, RuntimeError, Sink};

/// The relay pod's name in each trial's relay namespace.
pub const RELAY_POD: &str = "sgsim-delegate-relay";
/// The relay's port for sgsim's back connections.
pub const RELAY_BACK_PORT: u16 = 8081;
/// Back connections kept waiting per trial.
const IDLE_BACK_CONNECTIONS: usize = 3;
/// How long the relay pod may take to run (a first pull of its image included).
const RELAY_START: Duration = Duration::from_secs(180);
/// How long the deletion of a trial's pods may take before the namespaces go anyway.
const POD_DELETION: Duration = Duration::from_secs(60);
/// The label that names the sgsim run of a namespace.
const RUN_LABEL: &str = "dev.sgsim.run";

/// Which cluster: a kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`) and a
/// context in it (default: its current context).
#[derive(Debug, Clone, Default)]
pub struct KubeTarget {
    /// The kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// The context.
    pub context: Option<String>,
}

impl KubeTarget {
    /// `SGSIM_KUBECONFIG` and `SGSIM_KUBE_CONTEXT` (what `cargo test` passes to the suite).
    pub fn from_env() -> KubeTarget {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        KubeTarget {
            kubeconfig: var("SGSIM_KUBECONFIG").map(PathBuf::from),
            context: var("SGSIM_KUBE_CONTEXT"),
        }
    }

    async fn client(&self) -> Result<kube::Client, String> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("reading the kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| format!("loading the kubeconfig: {e}"))?;
        kube::Client::try_from(config).map_err(|e| format!("building the Kubernetes client: {e}"))
    }
}

/// Why `scenario` cannot run on a cluster sgsim does not own (`None`: it can).
pub fn not_applicable(scenario: &Scenario) -> Option<String> {
    let f = scenario.fixtures();
    let cluster_scoped = f.rbac.iter().any(|m| {
        matches!(
            m.get("kind").and_then(serde_json::Value::as_str),
            Some("ClusterRole" | "ClusterRoleBinding")
        )
    });
    // The default: one plain node `node-1` (the cluster's own node stands in for it).
    let plain_node = |n: &sgsim_core::scenario::NodeFixture| {
        n.labels.is_empty()
            && n.taints.is_empty()
            && n.cpu.is_none()
            && n.memory.is_none()
            && n.files.is_empty()
            && n.images.is_empty()
    };
    let why = if f.nodes.len() > 1 || !f.nodes.iter().all(plain_node) {
        "fixtures.nodes: the nodes are the cluster's own".to_string()
    } else if !f.registries.is_empty() {
        "fixtures.registries: simulated registry conditions exist only on the embedded cluster".to_string()
    } else if !f.images.is_empty() {
        "fixtures.images: which image a step runs as is the cluster's own business".to_string()
    } else if f.kubernetes_version.is_some() {
        "fixtures.kubernetesVersion: the cluster plays its own Kubernetes version".to_string()
    } else if !f.priority_classes.is_empty() || cluster_scoped {
        "cluster-scoped fixtures (PriorityClasses, ClusterRoles): they would change the cluster for every user"
            .to_string()
    } else {
        pod_needs_the_embedded_cluster(scenario)?
    };
    Some(format!("not applicable on --backend kube: {why}"))
}

/// What of the scenario's pod only the embedded cluster gives: images from registries it
/// simulates, a node without the images (`imagePullPolicy: Never`), steps that name the pod's
/// namespace (a trial namespace would change what they do).
fn pod_needs_the_embedded_cluster(scenario: &Scenario) -> Option<String> {
    let pod = sgsim_core::render_pod(scenario);
    let spec = pod.spec.unwrap_or_default();
    let containers: Vec<&Container> = spec.init_containers.iter().flatten().chain(&spec.containers).collect();
    if let Some(c) = containers
        .iter()
        .find(|c| c.image_pull_policy.as_deref() == Some("Never"))
    {
        return Some(format!(
            "container {} has imagePullPolicy Never: its outcome depends on which images the node already holds",
            c.name
        ));
    }
    if let Some((c, host)) = containers.iter().find_map(|c| {
        let host = crate::registry::registry_host(c.image.as_deref().unwrap_or_default());
        (host != crate::registry::DOCKER_HUB).then_some((c, host))
    }) {
        return Some(format!(
            "container {} pulls from {host}, a registry only the embedded cluster simulates",
            c.name
        ));
    }
    let ns = scenario.namespace();
    let plan = sgsim_core::plan(scenario);
    plan.flat().into_iter().find_map(|st| {
        let mut texts: Vec<String> = st.command.iter().cloned().collect();
        texts.extend(st.settings.iter().map(|(_, v)| v.to_string()));
        texts.iter().any(|t| names_word(t, ns)).then(|| {
            format!(
                "step {} names the namespace {ns}: a trial namespace would change what it does",
                st.id
            )
        })
    })
}

/// Whether `word` occurs in `text` on its own (not inside a longer name of `[a-z0-9-]`).
fn names_word(text: &str, word: &str) -> bool {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    text.match_indices(word)
        .any(|(i, _)| !part(text[..i].chars().next_back()) && !part(text[i + word.len()..].chars().next()))
}

/// The kube backend's allowed difference in `initialize.log`: whether a node pulls an image or
/// already holds it depends on the cluster's history, so `Pulling image` + `Successfully pulled
/// image` and `Container image … already present on machine` compare as one line.
pub fn canonical_initialize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let image_of = |l: &str, prefix: &str| -> Option<String> {
        let rest = l.strip_prefix(prefix)?;
        let end = rest.find('"')?;
        Some(rest[..end].to_string())
    };
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        if let Some(img) = image_of(l, "Pulling image \"") {
            let pulled = format!("Successfully pulled image \"{img}\"");
            if lines[i + 1..].iter().any(|n| n.starts_with(&pulled)) {
                continue;
            }
        }
        let ready = image_of(l, "Successfully pulled image \"").or_else(|| {
            l.ends_with("\" already present on machine")
                .then(|| image_of(l, "Container image \""))
                .flatten()
        });
        match ready {
            Some(img) => out.push(format!("[image \"{img}\" on the node: pulled, or already present]")),
            None => out.push((*l).to_string()),
        }
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Every namespace a scenario names, each with the unique namespace that stands in for it.
#[derive(Debug, Clone)]
struct NamespaceMap {
    pairs: Vec<(String, String)>,
}

impl NamespaceMap {
    fn new(scenario: &Scenario, prefix: &str) -> NamespaceMap {
        let f = scenario.fixtures();
        let mut names: BTreeSet<String> = BTreeSet::new();
        names.insert(scenario.namespace().to_string());
        names.extend(f.namespaces.iter().cloned());
        let object_ns = f
            .config_maps
            .iter()
            .chain(&f.secrets)
            .filter_map(|o| o.namespace.clone())
            .chain(
                f.service_accounts
                    .iter()
                    .chain(&f.persistent_volume_claims)
                    .filter_map(|o| o.namespace.clone()),
            );
        names.extend(object_ns);
        for m in &f.rbac {
            if let Some(ns) = m.pointer("/metadata/namespace").and_then(serde_json::Value::as_str) {
                names.insert(ns.to_string());
            }
        }
        // Longest first: a name that contains another is replaced before it when mapping back.
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let pairs = names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, format!("{prefix}-{i}")))
            .collect();
        NamespaceMap { pairs }
    }

    fn unique(&self, ns: &str) -> String {
        self.pairs
            .iter()
            .find(|(o, _)| o == ns)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| ns.to_string())
    }

    /// The scenario with every namespace replaced by its unique one.
    fn apply(&self, scenario: &Scenario) -> Scenario {
        let mut sc = scenario.clone();
        sc.step_group.infra.namespace = self.unique(scenario.namespace());
        let f = &mut sc.header.fixtures;
        for ns in &mut f.namespaces {
            *ns = self.unique(ns);
        }
        for o in f.config_maps.iter_mut().chain(f.secrets.iter_mut()) {
            o.namespace = o.namespace.as_deref().map(|n| self.unique(n));
        }
        for o in f
            .service_accounts
            .iter_mut()
            .chain(f.persistent_volume_claims.iter_mut())
        {
            o.namespace = o.namespace.as_deref().map(|n| self.unique(n));
        }
        for m in &mut f.rbac {
            if let Some(ns) = m.pointer_mut("/metadata/namespace")
                && let Some(s) = ns.as_str()
            {
                *ns = self.unique(s).into();
            }
            if let Some(subjects) = m.get_mut("subjects").and_then(serde_json::Value::as_array_mut) {
                for s in subjects {
                    if let Some(ns) = s.get_mut("namespace")
                        && let Some(n) = ns.as_str()
                    {
                        *ns = self.unique(n).into();
                    }
                }
            }
        }
        sc
    }

    /// `text` with every unique namespace replaced by the scenario's own.
    fn back(&self, text: &str) -> String {
        // Unique names share a prefix: the longest (`…-10`) goes before `…-1`.
        let mut by_len: Vec<&(String, String)> = self.pairs.iter().collect();
        by_len.sort_by_key(|(_, u)| std::cmp::Reverse(u.len()));
        let mut out = text.to_string();
        for (orig, unique) in by_len {
            out = out.replace(unique.as_str(), orig);
        }
        out
    }

    /// The record as the scenario's own namespaces would have produced it; the relay's host
    /// alias is removed from the pod.
    fn record_back(&self, mut rec: RunRecord, relay_ip: Option<IpAddr>) -> RunRecord {
        if let Some(pod) = rec.pod.take() {
            let mut pod = serde_json::to_string(&pod)
                .ok()
                .and_then(|s| serde_json::from_str::<Pod>(&self.back(&s)).ok())
                .unwrap_or(pod);
            if let (Some(ip), Some(spec)) = (relay_ip, pod.spec.as_mut()) {
                strip_relay_alias(spec, ip);
            }
            rec.pod = Some(pod);
        }
        for l in &mut rec.initialize {
            l.text = self.back(&l.text);
        }
        rec.error = rec.error.map(|e| self.back(&e));
        for s in &mut rec.steps {
            s.log = self.back(&s.log);
            s.error = s.error.as_deref().map(|e| self.back(e));
            for v in s.outputs.values_mut() {
                *v = self.back(v);
            }
            for v in s.reports.values_mut() {
                *v = self.back(v);
            }
        }
        rec
    }
}

/// The `delegate-service` alias sgsim added for the relay.
fn relay_alias(ip: IpAddr) -> HostAlias {
    HostAlias {
        ip: ip.to_string(),
        hostnames: Some(vec!["delegate-service".to_string()]),
    }
}

fn strip_relay_alias(spec: &mut PodSpec, ip: IpAddr) {
    let ours = relay_alias(ip);
    if let Some(aliases) = spec.host_aliases.as_mut() {
        if let Some(i) = aliases.iter().position(|a| *a == ours) {
            aliases.remove(i);
        }
        if aliases.is_empty() {
            spec.host_aliases = None;
        }
    }
}

/// What one process's trials share once connected.
struct Session {
    client: kube::Client,
    delegate: Arc<DelegateServer>,
    socket: PathBuf,
    _serving: ServeGuard,
    built: BuiltImages,
    /// The built-in catalog over `built` (what each image runs as, its entrypoint).
    catalog: Arc<ImageCatalog>,
    ctx: RunContext,
}

/// Scenarios on an existing cluster (see the module documentation).
pub struct KubeRuntime {
    target: KubeTarget,
    repo_root: PathBuf,
    progress: Arc<dyn Fn(SessionEvent) + Send + Sync>,
    session: Mutex<Option<Result<Arc<Session>, String>>>,
    trials: AtomicUsize,
    /// Namespaces of trials in progress (removed by [`Runtime::shutdown`] on Ctrl-C).
    live: std::sync::Mutex<BTreeSet<String>>,
}

impl KubeRuntime {
    /// A runtime for `target`; sgsim's images are built from `repo_root` on first use.
    pub fn new(target: KubeTarget, repo_root: PathBuf, progress: Arc<dyn Fn(SessionEvent) + Send + Sync>) -> Self {
        KubeRuntime {
            target,
            repo_root,
            progress,
            session: Mutex::new(None),
            trials: AtomicUsize::new(0),
            live: std::sync::Mutex::new(BTreeSet::new()),
        }
    }

    async fn session(&self) -> Result<Arc<Session>, RuntimeError> {
        let mut s = self.session.lock().await;
        if s.is_none() {
            *s = Some(self.connect().await.map(Arc::new));
        }
        match s.as_ref().expect("set above") {
            Ok(s) => Ok(s.clone()),
            Err(e) => Err(RuntimeError::Backend(e.clone())),
        }
    }

    async fn connect(&self) -> Result<Session, String> {
        let client = self.target.client().await?;
        let version = client
            .apiserver_version()
            .await
            .map_err(|e| format!("the cluster's API server does not answer: {e}"))?;
        tracing::info!("kube backend: cluster {}", version.git_version);
        let progress = self.progress.clone();
        let built = crate::images::ensure_built(&self.repo_root, &move |e| progress(SessionEvent::Image(e)))
            .await
            .map_err(|e| format!("building sgsim's images: {}", crate::docker::error_chain(&e)))?;
        let ctx = RunContext::new().map_err(|e| format!("the run directory: {e}"))?;
        let delegate = Arc::new(DelegateServer::new());
        let socket = ctx.dir.join("delegate.sock");
        let serving = delegate
            .serve_unix(&socket)
            .await
            .map_err(|e| format!("serving the delegate on {}: {e}", socket.display()))?;
        Ok(Session {
            client,
            delegate,
            socket,
            _serving: serving,
            catalog: Arc::new(ImageCatalog::builtin(&built)),
            built,
            ctx,
        })
    }

    async fn run_trial(
        &self,
        session: &Session,
        scenario: &Scenario,
        settings: &RunSettings,
        sink: Sink<'_>,
    ) -> Result<RunOutput, RuntimeError> {
        let n = self.trials.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("sgsim-{}-{n}", session.ctx.run_id.to_ascii_lowercase());
        let map = NamespaceMap::new(scenario, &prefix);
        let sc = map.apply(scenario);
        let client = session.client.clone();
        let relay_ns = format!("{prefix}-relay");
        let mut uniques: Vec<String> = map.pairs.iter().map(|(_, u)| u.clone()).collect();
        uniques.push(relay_ns.clone());
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(uniques.iter().cloned());
        let result = self.run_in_namespaces(session, &relay_ns, &sc, settings, sink).await;
        if !settings.keep_pod {
            remove_namespaces(&client, &uniques).await;
        }
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            for u in &uniques {
                live.remove(u);
            }
        }
        let (record, relay_ip) = result?;
        let catalog = &session.catalog;
        let images = crate::runtime::step_images(scenario, |i| (catalog.ran_as(i), catalog.source(i).as_str()));
        Ok(RunOutput::new(map.record_back(record, relay_ip), images))
    }

    async fn run_in_namespaces(
        &self,
        session: &Session,
        relay_ns: &str,
        sc: &Scenario,
        settings: &RunSettings,
        sink: Sink<'_>,
    ) -> Result<(RunRecord, Option<IpAddr>), RuntimeError> {
        let client = &session.client;
        let backend = |what: String| move |e: kube::Error| RuntimeError::Backend(format!("{what}: {e}"));
        // The namespaces the scenario has, labelled so that a leftover is recognizable.
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let create_namespace = async |name: &str| {
            let obj = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(BTreeMap::from([
                        (RUN_LABEL.to_string(), session.ctx.run_id.clone()),
                        ("dev.sgsim.managed".to_string(), "true".to_string()),
                    ])),
                    ..Default::default()
                },
                ..Default::default()
            };
            ns_api
                .create(&PostParams::default(), &obj)
                .await
                .map(|_| ())
                .map_err(backend(format!("create namespace {name}")))
        };
        for ns in &sc.fixtures().namespaces {
            create_namespace(ns).await?;
        }
        let pod_ns = sc.namespace().to_string();
        // Without its namespace the pod is refused: no relay is needed. The relay has a
        // namespace of its own, so the step group's namespace holds nothing the product's
        // would not (a step listing its pods sees only its own).
        let relay = if sc.fixtures().namespaces.contains(&pod_ns) {
            create_namespace(relay_ns).await?;
            Some(start_relay(client, relay_ns, &session.built).await?)
        } else {
            None
        };
        let back = relay.map(|_| {
            let pods: Api<Pod> = Api::namespaced(client.clone(), relay_ns);
            let socket = session.socket.clone();
            tokio::spawn(sgsim_engine::relay::serve_back(
                move || port_stream(pods.clone(), RELAY_POD.to_string(), RELAY_BACK_PORT),
                move || UnixStream::connect(socket.clone()),
                IDLE_BACK_CONNECTIONS,
            ))
        });
        let task_prefix = match &settings.name {
            Some(name) => format!("{}-{name}", session.ctx.run_id),
            None => session.ctx.run_id.clone(),
        };
        let opts = RunOptions {
            task_prefix,
            keep_pod: settings.keep_pod,
            image_entrypoint: Some(session.catalog.entrypoint_lookup()),
            host_aliases: relay.map(relay_alias).into_iter().collect(),
            ..Default::default()
        };
        let dialer = Arc::new(PortForwardDialer {
            pods: Api::namespaced(client.clone(), &pod_ns),
            pod: sgsim_core::plan(sc).pod_name,
        });
        let record = runner::run(client.clone(), dialer, &session.delegate, sc, &opts, sink).await;
        if let Some(b) = back {
            b.abort();
        }
        Ok((record?, relay))
    }
}

/// Starts the relay pod in `ns` and waits until it runs; its pod IP.
async fn start_relay(client: &kube::Client, ns: &str, built: &BuiltImages) -> Result<IpAddr, RuntimeError> {
    let image = built
        .require("relay")
        .map_err(|e| RuntimeError::Backend(format!("the relay image: {e}")))?
        .to_string();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(RELAY_POD.to_string()),
            labels: Some(BTreeMap::from([
                ("dev.sgsim.managed".to_string(), "true".to_string()),
                ("app.kubernetes.io/name".to_string(), "sgsim-delegate-relay".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "relay".into(),
                image: Some(image),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["/usr/local/bin/sgsim-relay".into()]),
                args: Some(vec![
                    "--listen".into(),
                    "0.0.0.0:8080".into(),
                    "--relay-back".into(),
                    format!("0.0.0.0:{RELAY_BACK_PORT}"),
                ]),
                ..Default::default()
            }],
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| RuntimeError::Backend(format!("create the relay pod in {ns}: {e}")))?;
    let deadline = Instant::now() + RELAY_START;
    loop {
        let p = pods
            .get(RELAY_POD)
            .await
            .map_err(|e| RuntimeError::Backend(format!("get the relay pod in {ns}: {e}")))?;
        let status = p.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Running")
            && let Some(ip) = status.pod_ip.as_deref().and_then(|i| i.parse().ok())
        {
            return Ok(ip);
        }
        if Instant::now() >= deadline || matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
            let waiting = status
                .container_statuses
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.state.and_then(|s| s.waiting))
                .map(|w| format!("{}: {}", w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(RuntimeError::Backend(format!(
                "the relay pod in {ns} did not run (phase {}{}); can the cluster pull {}?",
                status.phase.unwrap_or_default(),
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!(", {waiting}")
                },
                built.get("relay").unwrap_or("sgsim/relay"),
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes the pods of `namespaces`, waits (bounded) until they are gone, then the namespaces.
async fn remove_namespaces(client: &kube::Client, namespaces: &[String]) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for ns in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let _ = pods.delete_collection(&dp, &ListParams::default()).await;
    }
    let deadline = Instant::now() + POD_DELETION;
    for ns in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        while Instant::now() < deadline {
            match pods.list(&ListParams::default()).await {
                Ok(l) if !l.items.is_empty() => tokio::time::sleep(Duration::from_millis(200)).await,
                _ => break,
            }
        }
    }
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        match ns_api.delete(ns, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!("kube backend: deleting namespace {ns}: {e}"),
        }
    }
}

/// A byte stream to `port` of `pod` through `pods/portforward` (one WebSocket per stream: v4 has
/// no half close, so a stream ends with its connection). The forwarder's task runs on its own once
/// the stream is taken.
async fn port_stream(
    pods: Api<Pod>,
    pod: String,
    port: u16,
) -> io::Result<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + use<>> {
    let mut pf = pods.portforward(&pod, &[port]).await.map_err(io::Error::other)?;
    pf.take_stream(port)
        .ok_or_else(|| io::Error::other("port-forward gave no stream"))
}

/// The lite-engine through `pods/portforward`.
struct PortForwardDialer {
    pods: Api<Pod>,
    pod: String,
}

impl PodDialer for PortForwardDialer {
    fn dial(&self, _node: &str, _ip: IpAddr, port: u16) -> BoxFuture<'static, io::Result<PodStream>> {
        let (pods, pod) = (self.pods.clone(), self.pod.clone());
        Box::pin(async move {
            let stream: PodStream = Box::new(port_stream(pods, pod, port).await?);
            Ok(stream)
        })
    }
}

impl Runtime for KubeRuntime {
    fn name(&self) -> &'static str {
        "kube"
    }

    fn writes_goldens(&self) -> bool {
        // Goldens come from the embedded cluster; a real cluster is compared with them.
        false
    }

    fn match_scope(&self) -> Option<String> {
        Some("kube backend: the differences docs/kube-backend.md allows aside".into())
    }

    fn compare_only_note(&self) -> &'static str {
        "the kube backend never writes goldens (they come from the embedded cluster): a difference here is the real \
         cluster's or sgsim's; docs/kube-backend.md lists the allowed ones"
    }

    fn canonical(&self, name: &str, text: &str) -> Option<String> {
        (name == "initialize.log").then(|| canonical_initialize(text))
    }

    fn run<'a>(
        &'a self,
        scenario: &'a Scenario,
        settings: &'a RunSettings,
        sink: Sink<'a>,
    ) -> BoxFuture<'a, Result<RunOutput, RuntimeError>> {
        Box::pin(async move {
            if let Some(why) = not_applicable(scenario) {
                return Err(RuntimeError::NotApplicable(why));
            }
            let session = self.session().await?;
            self.run_trial(&session, scenario, settings, sink).await
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let live: Vec<String> = std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
            let session = self.session.lock().await.take();
            if let Some(Ok(s)) = session
                && !live.is_empty()
            {
                remove_namespaces(&s.client, &live).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(yaml_fixtures: &str) -> Scenario {
        let pipeline = include_str!("../../../scenarios/dind-basic/pipeline.yaml");
        let scen = format!(
            "pipeline: p.yaml\nfixtures:\n  connectors:\n    - {{identifier: k8s, type: KubernetesCluster}}\n    - {{identifier: account.harnessImage, type: DockerRegistry, url: https://index.docker.io/v2/}}\n{yaml_fixtures}"
        );
        let loader = |p: &str| {
            if p == "p.yaml" {
                Ok(pipeline.to_string())
            } else {
                Err("no such file".to_string())
            }
        };
        sgsim_core::scenario::load("scenario.yaml", &scen, &loader).expect("scenario")
    }

    #[test]
    fn namespaces_map_to_unique_ones_and_back() {
        let sc = scenario(
            "  namespaces: [harness-delegate-ng, other]\n  secrets:\n    - {name: s, namespace: other, data: {a: b}}\n",
        );
        let map = NamespaceMap::new(&sc, "sgsim-sgabc-7");
        let mapped = map.apply(&sc);
        let pod_ns = mapped.namespace().to_string();
        assert!(pod_ns.starts_with("sgsim-sgabc-7-"), "{pod_ns}");
        assert!(!mapped.fixtures().namespaces.contains(&"other".to_string()));
        assert_eq!(
            mapped.fixtures().secrets[0].namespace.as_deref(),
            Some(map.unique("other").as_str())
        );
        let text = format!("Successfully assigned {pod_ns}/p to node-1");
        assert_eq!(map.back(&text), "Successfully assigned harness-delegate-ng/p to node-1");
    }

    #[test]
    fn scenarios_that_shape_the_cluster_do_not_apply() {
        assert_eq!(not_applicable(&scenario("  namespaces: [harness-delegate-ng]\n")), None);
        let why = not_applicable(&scenario(
            "  namespaces: [harness-delegate-ng]\n  kubernetesVersion: '1.30'\n",
        ))
        .unwrap();
        assert!(why.contains("kubernetesVersion"), "{why}");
        let why = not_applicable(&scenario("  nodes: [{name: n1, cpu: '2'}]\n")).unwrap();
        assert!(why.contains("fixtures.nodes"), "{why}");
    }

    #[test]
    fn a_namespace_is_named_only_as_a_whole_word() {
        assert!(names_word(
            "kubectl -n harness-delegate-ng get pods",
            "harness-delegate-ng"
        ));
        assert!(names_word("ns=default;", "default"));
        assert!(!names_word("--default-timeout", "default"));
        assert!(!names_word("my-harness-delegate-ng2", "harness-delegate-ng"));
    }

    #[test]
    fn pulled_and_already_present_images_compare_alike() {
        let pulled = "Created container a\nPulling image \"x:1\"\nSuccessfully pulled image \"x:1\" in 1.2s (1.3s including waiting)\nCreated container b\n";
        let present = "Created container a\nContainer image \"x:1\" already present on machine\nCreated container b\n";
        assert_eq!(canonical_initialize(pulled), canonical_initialize(present));
        assert!(canonical_initialize(present).contains("[image \"x:1\" on the node: pulled, or already present]"));
        // A pull that failed stays as it is.
        let failed = "Pulling image \"y:2\"\nFailed to pull image \"y:2\": boom\n";
        assert_eq!(canonical_initialize(failed), failed);
        // Another image's lines are not merged.
        assert_ne!(
            canonical_initialize("Container image \"x:1\" already present on machine\n"),
            canonical_initialize("Container image \"x:2\" already present on machine\n")
        );
    }

    #[test]
    fn the_relay_alias_is_removed_from_the_recorded_pod() {
        let ip: IpAddr = "10.244.1.9".parse().unwrap();
        let mut spec = PodSpec {
            host_aliases: Some(vec![
                HostAlias {
                    ip: "1.2.3.4".into(),
                    hostnames: Some(vec!["mine".into()]),
                },
                relay_alias(ip),
            ]),
            ..Default::default()
        };
        strip_relay_alias(&mut spec, ip);
        assert_eq!(spec.host_aliases.as_ref().unwrap().len(), 1);
        let mut only = PodSpec {
            host_aliases: Some(vec![relay_alias(ip)]),
            ..Default::default()
        };
        strip_relay_alias(&mut only, ip);
        assert_eq!(only.host_aliases, None);
    }
}
