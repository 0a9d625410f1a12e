//! Where a scenario's pod runs: the [`Runtime`] trait and its two implementations, real containers
//! on the warm Docker-in-Docker node pool ([`DockerRuntime`]) and the kwok-like fake tier
//! ([`FakeRuntime`]). A runtime starts a throwaway cluster for the scenario, runs the step group
//! with [`crate::runner::run`] and removes the cluster again: the [`RunOutput`] is all its caller
//! sees, so `sgsim run`, `sgsim run --runtime fake` and both conformance suites share one path.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use sgsim_core::Scenario;
use sgsim_core::record::RunRecord;
use tokio::sync::Mutex;

use crate::docker::error_chain;
use crate::fake_runtime::{FakeCluster, FakeError};
use crate::pool::{NodePool, PoolOptions, SessionError, SessionEvent};
use crate::runner::{self, RunError, RunEvent, RunOptions};

/// Errors that keep a runtime from producing a [`RunOutput`] (a failing step group is not one).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The Docker node pool did not start (remembered: later runs fail the same way at once).
    #[error("the node pool did not start: {0}")]
    PoolStart(String),
    /// The scenario's cluster could not be started on the pool.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The fake tier's cluster could not be started.
    #[error(transparent)]
    Fake(#[from] FakeError),
    /// The run itself failed (Kubernetes API, lite-engine).
    #[error(transparent)]
    Run(#[from] RunError),
    /// Plugin steps whose image sgsim has no stand-in for and the host does not hold: running
    /// them would do nothing and report Success, so sgsim refuses.
    #[error(
        "{}: sgsim has no stand-in for {} and this machine's Docker daemon does not hold {}, so running {} would do \
         nothing and report Success. Provide each image: `docker pull IMAGE` on this machine (sgsim run then runs the \
         real image), build an image and tag it with that name, or map it to a stand-in in the scenario \
         (`fixtures.images: {{IMAGE: busybox}}`; `sgsim images list` shows the stand-ins)",
        .0.iter().map(|(s, i)| format!("step `{s}` uses plugin image `{i}`")).collect::<Vec<_>>().join(", "),
        if .0.len() == 1 { "it" } else { "them" },
        if .0.len() == 1 { "it" } else { "them" },
        if .0.len() == 1 { "the step" } else { "the steps" }
    )]
    NoImage(Vec<(String, String)>),
    /// `--pull always` and an image could not be pulled.
    #[error("cannot pull {image}: {reason} (--pull always; --pull missing runs what the host holds or a stand-in)")]
    Pull {
        /// The image.
        image: String,
        /// What the daemon said.
        reason: String,
    },
    /// A node container stopped (or the host daemon stopped answering) while the run was on it.
    #[error("{0}")]
    NodeLost(crate::pool::NodeLost),
    /// `--backend kube`: the cluster could not be reached or prepared for a trial.
    #[error("kube backend: {0}")]
    Backend(String),
    /// The scenario needs what only the embedded cluster can give (a trial is skipped, not failed).
    #[error("{0}")]
    NotApplicable(String),
}

impl RuntimeError {
    /// The error with its whole chain of causes, on one line.
    pub fn chain(&self) -> String {
        match self {
            RuntimeError::PoolStart(_)
            | RuntimeError::NoImage(_)
            | RuntimeError::NodeLost(_)
            | RuntimeError::Pull { .. }
            | RuntimeError::Backend(_)
            | RuntimeError::NotApplicable(_) => self.to_string(),
            RuntimeError::Session(e) => error_chain(e),
            RuntimeError::Fake(e) => error_chain(e),
            RuntimeError::Run(e) => error_chain(e),
        }
    }
}

/// The image a step's container ran as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepImage {
    /// Step identifier.
    pub step: String,
    /// The image as the step group names it.
    pub requested: String,
    /// What sgsim ran for it: the name of its stand-in (`busybox`, `python`, ...), or the image
    /// itself when it came from the host daemon.
    pub ran_as: String,
    /// Where it came from: `fixtures.images`, `host` or `stand-in` ([`ImageSource::as_str`]).
    pub source: &'static str,
}

/// What a runtime gives back for one run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Everything the run observed.
    pub record: RunRecord,
    /// The image each step with a container ran as (empty on the fake tier, which runs none).
    pub images: Vec<StepImage>,
}

impl RunOutput {
    /// The output of a run, each step's image also recorded in the record (result.yaml's `image:`).
    pub fn new(mut record: RunRecord, images: Vec<StepImage>) -> RunOutput {
        for step in &mut record.steps {
            if let Some(i) = images.iter().find(|i| i.step == step.id) {
                step.image = Some(sgsim_core::record::ImageRecord {
                    requested: i.requested.clone(),
                    ran_as: i.ran_as.clone(),
                    source: i.source.to_string(),
                });
            }
        }
        RunOutput { record, images }
    }
}

/// The image of each step of the scenario that names one: `resolve` tells what it ran as and
/// where that came from.
pub(crate) fn step_images(scenario: &Scenario, resolve: impl Fn(&str) -> (String, &'static str)) -> Vec<StepImage> {
    sgsim_core::render::plan(scenario)
        .flat()
        .into_iter()
        .filter_map(|st| {
            st.image.as_ref().map(|i| {
                let (ran_as, source) = resolve(i);
                StepImage {
                    step: st.id.clone(),
                    requested: i.clone(),
                    ran_as,
                    source,
                }
            })
        })
        .collect()
}

/// How one run is labelled.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// The run's name (a conformance trial's scenario), part of its task ids; `None` for a single run.
    pub name: Option<String>,
    /// Keep the pod after the run (its cluster still goes away).
    pub keep_pod: bool,
    /// Run the images the host Docker daemon holds under their own names instead of stand-ins
    /// (`sgsim run`); the conformance suite leaves it off, so a trial runs the same images on
    /// every machine.
    pub host_images: bool,
    /// Whether images are pulled from their registries into the host daemon first (only with
    /// `host_images`).
    pub pull: crate::images::PullMode,
}

/// Live progress of a run: the pool's start-up and the run's own events.
pub type Sink<'a> = &'a (dyn Fn(RunEvent) + Send + Sync);

/// A place where scenarios run.
pub trait Runtime: Send + Sync {
    /// `docker` or `fake`.
    fn name(&self) -> &'static str;

    /// Whether this runtime's output may become golden files. The fake tier's may not: goldens come
    /// from real runs.
    fn writes_goldens(&self) -> bool;

    /// The part of a run's golden files this runtime reproduces (all of them by default).
    fn compared(
        &self,
        scenario: &Scenario,
        files: std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let _ = scenario;
        files
    }

    /// What "goldens match" covers when this runtime compares only part of them or through
    /// [`Runtime::canonical`] (`None`: all of them, as they are).
    fn match_scope(&self) -> Option<String> {
        None
    }

    /// Shown with a golden mismatch of a runtime that never writes goldens: why, and what to do.
    fn compare_only_note(&self) -> &'static str {
        "this runtime never writes goldens"
    }

    /// A golden file's text as this runtime compares it (`None`: as is), applied to the golden
    /// and the actual text alike: the differences the runtime is allowed (the kube backend's image
    /// pull events, which depend on what the cluster's nodes already hold).
    fn canonical(&self, name: &str, text: &str) -> Option<String> {
        let _ = (name, text);
        None
    }

    /// Runs the scenario's step group on a fresh cluster and removes the cluster.
    fn run<'a>(
        &'a self,
        scenario: &'a Scenario,
        settings: &'a RunSettings,
        sink: Sink<'a>,
    ) -> BoxFuture<'a, Result<RunOutput, RuntimeError>>;

    /// Removes everything the runtime started, also what a run still in progress holds (for an
    /// interrupted process that exits right after).
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

enum PoolState {
    NotStarted,
    Up(Arc<NodePool>),
    Failed(String),
}

/// Real containers: a pool of warm kind-style nodes, started on the first run and shared by every
/// run of the process; each run gets its own API server, scheduler and kubelets on it.
pub struct DockerRuntime {
    opts: PoolOptions,
    progress: Arc<dyn Fn(SessionEvent) + Send + Sync>,
    pool: Mutex<PoolState>,
}

impl DockerRuntime {
    /// A runtime whose pool (one node) builds its images from `repo_root`; `progress` hears the
    /// pool's start-up (image builds, nodes).
    pub fn new(repo_root: PathBuf, progress: Arc<dyn Fn(SessionEvent) + Send + Sync>) -> DockerRuntime {
        DockerRuntime {
            opts: PoolOptions { repo_root, nodes: 1 },
            progress,
            pool: Mutex::new(PoolState::NotStarted),
        }
    }

    /// The node pool, started on first call; a failed start is remembered.
    pub async fn pool(&self) -> Result<Arc<NodePool>, RuntimeError> {
        let mut state = self.pool.lock().await;
        match &*state {
            PoolState::Up(p) => return Ok(p.clone()),
            PoolState::Failed(e) => return Err(RuntimeError::PoolStart(e.clone())),
            PoolState::NotStarted => {}
        }
        let progress = self.progress.clone();
        match NodePool::start(&self.opts, &move |e| progress(e)).await {
            Ok(p) => {
                let p = Arc::new(p);
                *state = PoolState::Up(p.clone());
                Ok(p)
            }
            Err(e) => {
                let msg = error_chain(&e);
                *state = PoolState::Failed(msg.clone());
                Err(RuntimeError::PoolStart(msg))
            }
        }
    }

    /// A run on the pool, given up as soon as a node stops ([`NodePool::watch_nodes`]): a dead
    /// node never leaves the run waiting for a timeout.
    async fn run_on_pool(
        &self,
        scenario: &Scenario,
        settings: &RunSettings,
        sink: Sink<'_>,
    ) -> Result<RunOutput, RuntimeError> {
        let pool = self.pool().await?;
        tokio::select! {
            biased;
            lost = pool.watch_nodes() => Err(RuntimeError::NodeLost(lost)),
            out = self.run_on_nodes(&pool, scenario, settings, sink) => out,
        }
    }

    /// Pulls the images `mode` asks for into the host daemon (see [`crate::images::images_to_pull`];
    /// `host` is what the daemon holds of `wanted`), with the credentials of the scenario's Docker
    /// connector for each registry; returns the images pulled. A failed pull is reported and the
    /// step runs what the host holds or a stand-in, unless the mode is `always`; a registry that
    /// could not be reached is not asked again.
    async fn pull_images(
        &self,
        pool: &Arc<NodePool>,
        scenario: &Scenario,
        (wanted, host): (&[String], &[(String, crate::images::HostImage)]),
        mode: crate::images::PullMode,
    ) -> Result<Vec<String>, RuntimeError> {
        use crate::images::{self, PullEvent, PullMode, normalize_reference};
        let mut pulled = Vec::new();
        if mode == PullMode::Never {
            return Ok(pulled);
        }
        let present: std::collections::HashSet<String> =
            host.iter().map(|(vendor, _)| normalize_reference(vendor)).collect();
        let catalog = images::ImageCatalog::pinned(&scenario.fixtures().images);
        let specs = crate::registry::specs_for_scenario(scenario);
        let declared_missing: std::collections::HashSet<String> = specs
            .iter()
            .flat_map(|s| s.missing.iter().map(|m| normalize_reference(m)))
            .collect();
        let to_pull = images::images_to_pull(mode, wanted, &present, |i| {
            catalog.provided_by_sgsim(i)
                || catalog.source(i) == images::ImageSource::Override
                || declared_missing.contains(&normalize_reference(i))
        });
        let progress = self.progress.clone();
        let report = move |e: PullEvent| progress(SessionEvent::Pull(e));
        let mut unreachable: std::collections::HashSet<String> = std::collections::HashSet::new();
        for image in to_pull {
            let registry = crate::registry::registry_host(&image);
            if unreachable.contains(&registry) {
                report(PullEvent::Failed {
                    image: image.clone(),
                    reason: format!("not tried: {registry} could not be reached"),
                });
                continue;
            }
            let credentials = specs
                .iter()
                .find(|s| s.host == registry)
                .and_then(|s| s.credentials.clone())
                .map(|(username, password)| {
                    crate::registry::PullCredentials {
                        server: registry.clone(),
                        username,
                        password,
                    }
                    .docker()
                });
            match images::pull_into_host(pool.host(), &image, credentials, &report).await {
                Ok(_) => pulled.push(image),
                Err(reason) => {
                    if mode == PullMode::Always {
                        return Err(RuntimeError::Pull { image, reason });
                    }
                    if images::is_unreachable(&reason) {
                        unreachable.insert(registry);
                    }
                    report(PullEvent::Failed { image, reason });
                }
            }
        }
        Ok(pulled)
    }

    async fn run_on_nodes(
        &self,
        pool: &Arc<NodePool>,
        scenario: &Scenario,
        settings: &RunSettings,
        sink: Sink<'_>,
    ) -> Result<RunOutput, RuntimeError> {
        let progress = self.progress.clone();
        let host = if settings.host_images {
            let pod = sgsim_core::render_pod(scenario);
            let spec = pod.spec.unwrap_or_default();
            let wanted: Vec<String> = spec
                .init_containers
                .unwrap_or_default()
                .into_iter()
                .chain(spec.containers)
                .filter_map(|c| c.image)
                .collect();
            let mut host = crate::images::host_images(pool.host(), &wanted).await;
            let pulled = self
                .pull_images(pool, scenario, (&wanted, &host), settings.pull)
                .await?;
            if !pulled.is_empty() {
                // What the pulls brought (with `always`, in place of what the host held before).
                let norm: std::collections::HashSet<String> =
                    pulled.iter().map(|i| crate::images::normalize_reference(i)).collect();
                host.retain(|(vendor, _)| !norm.contains(&crate::images::normalize_reference(vendor)));
                let mut fresh = crate::images::host_images(pool.host(), &pulled).await;
                for (_, img) in &mut fresh {
                    img.pulled = true;
                }
                host.extend(fresh);
            }
            host
        } else {
            Vec::new()
        };
        let cluster = pool.cluster_for_scenario(scenario, host, &move |e| progress(e)).await?;
        let unmodelled: Vec<(String, String)> = sgsim_core::render::plan(scenario)
            .flat()
            .into_iter()
            .filter(|st| st.kind == sgsim_core::model::StepKind::Plugin)
            .filter_map(|st| st.image.clone().map(|i| (st.id.clone(), i)))
            .filter(|(_, i)| !cluster.models(i))
            .collect();
        if !unmodelled.is_empty() {
            cluster.shutdown().await;
            return Err(RuntimeError::NoImage(unmodelled));
        }
        let task_prefix = match &settings.name {
            Some(name) => format!("{}-{name}", pool.run_id()),
            None => pool.run_id().to_string(),
        };
        let opts = RunOptions {
            task_prefix,
            keep_pod: settings.keep_pod,
            image_entrypoint: Some(cluster.image_entrypoint()),
            ..Default::default()
        };
        let record = runner::run(
            cluster.client(),
            cluster.dialer(),
            pool.delegate(),
            scenario,
            &opts,
            sink,
        )
        .await;
        let images = step_images(scenario, |i| (cluster.ran_as(i), cluster.image_source(i).as_str()));
        cluster.shutdown().await;
        Ok(RunOutput::new(record?, images))
    }
}

impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn writes_goldens(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        scenario: &'a Scenario,
        settings: &'a RunSettings,
        sink: Sink<'a>,
    ) -> BoxFuture<'a, Result<RunOutput, RuntimeError>> {
        Box::pin(self.run_on_pool(scenario, settings, sink))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let state = std::mem::replace(&mut *self.pool.lock().await, PoolState::NotStarted);
            if let PoolState::Up(p) = state {
                // No waiting here: on Ctrl-C a trial still holds the pool and the process exits
                // right after this removal (waiting would let the trials fail first).
                match Arc::try_unwrap(p) {
                    Ok(p) => p.shutdown().await,
                    // A run still holds it (interrupted): remove its containers by label.
                    Err(p) => p.remove_everything().await,
                }
            }
        })
    }
}

/// No containers (kwok-like): each run gets a [`FakeCluster`] driven by the scenario's `fake:` data.
#[derive(Debug, Default, Clone, Copy)]
pub struct FakeRuntime;

/// One fake-tier run: a fresh [`FakeCluster`], the runner, the record.
async fn run_fake(scenario: &Scenario, settings: &RunSettings, sink: Sink<'_>) -> Result<RunOutput, RuntimeError> {
    let cluster = FakeCluster::start(scenario).await?;
    let task_prefix = match &settings.name {
        Some(name) => format!("fake-{name}"),
        None => "sgsim".to_string(),
    };
    let opts = RunOptions {
        task_prefix,
        ..Default::default()
    };
    let record = runner::run(
        cluster.client(),
        cluster.dialer(),
        cluster.delegate(),
        scenario,
        &opts,
        sink,
    )
    .await;
    cluster.shutdown().await;
    // No image runs here; each step is recorded with the image the Docker tier runs for it on any
    // machine (the conformance suite's pinned images: overrides, then stand-ins).
    let catalog = crate::images::ImageCatalog::pinned(&scenario.fixtures().images);
    let images = step_images(scenario, |i| (catalog.ran_as(i), catalog.source(i).as_str()));
    Ok(RunOutput::new(record?, images))
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn writes_goldens(&self) -> bool {
        false
    }

    fn compared(
        &self,
        scenario: &Scenario,
        files: std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        sgsim_core::verdict::fake_compared(scenario, files)
    }

    fn match_scope(&self) -> Option<String> {
        Some(format!("fake runtime: {}", sgsim_core::verdict::FAKE_COMPARED))
    }

    fn compare_only_note(&self) -> &'static str {
        "the fake runtime never writes goldens (they come from real runs): fix the scenario's fake: data, or \
         re-bless on the Docker runtime"
    }

    fn run<'a>(
        &'a self,
        scenario: &'a Scenario,
        settings: &'a RunSettings,
        sink: Sink<'a>,
    ) -> BoxFuture<'a, Result<RunOutput, RuntimeError>> {
        Box::pin(async move {
            let (scenario, settings) = (scenario.clone(), settings.clone());
            // The whole fake run on a virtual clock: waits the scenario asks for take no time.
            crate::fake_runtime::run_on_virtual_clock(
                move |events| async move { run_fake(&scenario, &settings, &*events).await },
                sink,
            )
            .await?
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
