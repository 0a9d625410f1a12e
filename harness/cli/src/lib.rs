//! The `sgsim` command line, as a library so that `cargo test` (tests/conformance.rs) and
//! `sgsim test` share the same trials. `main.rs` only calls [`main_impl`].

pub mod check;
pub mod conformance;
pub mod doctor;
pub mod exit;
pub mod golden_store;
pub mod images_cmd;
pub mod input;
pub mod junit;
pub mod new_cmd;
pub mod output;
pub mod report;
pub mod reporter;
pub mod repro;
pub mod review;
pub mod user_kubeconfig;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use sgsim_cluster::runtime::{DockerRuntime, FakeRuntime, RunSettings, Runtime, StepImage};
use sgsim_core::record::RunRecord;
use sgsim_core::{LoadOptions, Scenario, ScenarioError};

use crate::reporter::{Event, Reporter};

const EXIT_CODES: &str = "Exit codes:
  0    success: the outcome is the expected one and goldens match
  1    invalid input (YAML, unknown field, missing step group, unreadable file)
  2    wrong usage
  3    the outcome or a golden file differs from the expected one
  4    infrastructure failure (Docker, images, cluster)
  130  interrupted (everything the run started is removed)
  141  standard output was closed (`sgsim run ... | head`); everything the run started is removed";

/// sgsim: run Harness containerized step groups on a throwaway Kubernetes cluster and compare
/// what happens with golden output.
#[derive(Debug, Parser)]
#[command(name = "sgsim", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// When to color the output: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: output::ColorChoice,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of `render`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// When `sgsim run` pulls a step's image from its real registry into this machine's Docker daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PullArg {
    /// Pull the images the daemon does not hold yet (then the real image runs).
    #[default]
    Missing,
    /// Pull every image again (moving tags); a failed pull ends the run.
    Always,
    /// Never pull: the images the daemon holds, else stand-ins.
    Never,
}

impl From<PullArg> for sgsim_cluster::images::PullMode {
    fn from(p: PullArg) -> Self {
        match p {
            PullArg::Missing => Self::Missing,
            PullArg::Always => Self::Always,
            PullArg::Never => Self::Never,
        }
    }
}

/// Where pods run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Real containers on kind-style Docker-in-Docker nodes (the default).
    #[default]
    Docker,
    /// No containers (kwok-like): the same API server, scheduler and runner with fake kubelets
    /// and a fake lite-engine driven by the scenario's `fake:` data. Compares pod.yaml,
    /// initialize.log, result.yaml and the step logs the data gives; never writes goldens.
    Fake,
}

/// Which step group of the input runs, and under which identifier.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Select {
    /// The step group to use (identifier, or stage.group), when the file has several.
    #[arg(long)]
    pub step_group: Option<String>,
    /// Run a step group template under this identifier: the one it has in the customer's pipeline,
    /// so its `<+execution.steps.<identifier>...>` expressions resolve.
    #[arg(long)]
    pub identifier: Option<String>,
}

impl Select {
    /// The core load options for this selection.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            step_group: self.step_group.clone(),
            identifier: self.identifier.clone(),
            ..Default::default()
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate scenarios or pipeline YAML files; every error as file:line:col.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Scenario directories, scenario.yaml files or bare pipeline YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
    },
    /// Print the Pod the product would create for the step group.
    #[command(after_help = EXIT_CODES)]
    Render {
        /// A scenario directory, scenario.yaml or a bare pipeline YAML.
        file: PathBuf,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
        output: Format,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
    },
    /// Run the step group on a throwaway cluster: live Initialize log, step logs, summary, and a
    /// diff against golden/<scenario>/ when it exists.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// A scenario directory, scenario.yaml or a bare pipeline YAML.
        file: PathBuf,
        /// Compare with this golden directory (default: golden/<scenario dir name> when it exists).
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Keep the pod after the run (the cluster still goes away at exit).
        #[arg(long)]
        keep_pod: bool,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
        /// Where pods run.
        #[arg(long, value_enum, default_value = "docker")]
        runtime: RuntimeKind,
        /// Also write a static HTML report of the run (DIR/index.html).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Pull step images from their registries into this machine's Docker daemon first, so the
        /// real image runs: `missing` (images it does not hold), `always` or `never`. An image
        /// that is neither held nor pulled runs as a stand-in, named as such.
        #[arg(long, value_enum, env = "SGSIM_PULL", default_value = "missing")]
        pull: PullArg,
    },
    /// Turn a customer's pipeline into a conformance scenario: write scenarios/NAME/ (the pipeline
    /// verbatim, every inferred fixture with a comment), run it on real containers, write
    /// golden/NAME/ from that run; with --log, name the first line where the customer's Initialize
    /// log and sgsim's part (exit 3).
    #[command(after_help = EXIT_CODES)]
    Repro {
        /// The customer's pipeline YAML (or step group template).
        pipeline: PathBuf,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
        /// Runtime input values: a YAML mapping of field paths to values.
        #[arg(long, value_name = "FILE")]
        inputs: Option<PathBuf>,
        /// The customer's Initialize log, as copied from the product's UI (timestamps and all).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// The scenario's name (default: repro-<file name>).
        #[arg(long)]
        name: Option<String>,
        /// The directory holding scenarios/ and golden/ (default: this repository).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Pull step images from their registries first (see `sgsim run --pull`).
        #[arg(long, value_enum, env = "SGSIM_PULL", default_value = "missing")]
        pull: PullArg,
    },
    /// Run the conformance trials (the same as `cargo test --test conformance`).
    #[command(after_help = EXIT_CODES)]
    Test {
        /// Run only trials whose name contains this.
        filter: Option<String>,
        /// The filter must match the trial name exactly.
        #[arg(long)]
        exact: bool,
        /// List the trials instead of running them.
        #[arg(long)]
        list: bool,
        /// How many trials run at once.
        #[arg(long)]
        test_threads: Option<usize>,
        /// Where pods run (`fake` skips the scenarios whose `fake.skip` says why they need
        /// containers).
        #[arg(long, value_enum, default_value = "docker")]
        runtime: RuntimeKind,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write a static HTML report (DIR/index.html): per scenario the outcome, golden
        /// diffs, events timeline, step logs, pod and images.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Build the HTML report page (DIR/index.html) again from the trials DIR holds: after
    /// `cargo nextest run` or sharded runs with SGSIM_REPORT=DIR, whose processes each add theirs.
    #[command(after_help = EXIT_CODES)]
    Report {
        /// The report directory.
        dir: PathBuf,
        /// The page's title.
        #[arg(long, default_value = "sgsim conformance")]
        title: String,
    },
    /// Accept pending golden files (`*.new`, written when a trial's output differed).
    Accept {
        /// Only scenarios whose name contains this.
        filter: Option<String>,
    },
    /// Review the pending golden files one by one: the colored diff, then accept (a), reject (r),
    /// skip (s) or quit (q), as `cargo insta review`; reports golden directories no scenario
    /// produces any more.
    #[command(after_help = EXIT_CODES)]
    Review {
        /// Only scenarios whose name contains this.
        filter: Option<String>,
        /// Golden directories without a scenario: ignore, warn (default), reject (exit 3) or delete.
        #[arg(long, value_enum, default_value = "warn")]
        unreferenced: review::Unreferenced,
    },
    /// Write a scenario with the step group the product adds for an AWS SAM or Serverless.com
    /// deployment (and its fixtures), then validate it.
    #[command(after_help = EXIT_CODES)]
    New {
        /// The deployment type.
        #[arg(value_enum)]
        kind: new_cmd::NewKind,
        /// The scenario directory to write (default: ./aws-sam or ./serverless).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Give the AWS connector no keys and run the pod as this service account.
        #[arg(long)]
        service_account: Option<String>,
    },
    /// Show, build and prune the stand-in images and the vendor names they stand in for.
    Images {
        /// What to do.
        #[command(subcommand)]
        action: images_cmd::ImagesAction,
    },
    /// Check that this machine can run sgsim and its tests (Docker, privileged support or its
    /// fallback, images, disk space, kubectl, the Python client) and say what to do about each
    /// problem.
    #[command(after_help = EXIT_CODES)]
    Doctor,
    /// Manage the embedded cluster.
    Cluster {
        /// What to do with it.
        #[command(subcommand)]
        action: ClusterAction,
    },
}

/// `sgsim cluster` actions.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Start the embedded cluster in the foreground and write a kubeconfig (Ctrl-C stops it and
    /// removes everything).
    Up {
        /// Where to write the cluster's own kubeconfig (YAML, mode 0600).
        #[arg(long, default_value = "sgsim.kubeconfig")]
        kubeconfig: PathBuf,
        /// Also merge the cluster's context into your kubeconfig ($KUBECONFIG, else
        /// ~/.kube/config) and make it current, as kind does; it is removed again on exit.
        #[arg(long)]
        merge: bool,
        /// Name of the cluster, user and context in the kubeconfigs.
        #[arg(long, default_value = "sgsim")]
        name: String,
        /// Start only the API server (no node, scheduler or kubelet: nothing runs).
        #[arg(long)]
        api_only: bool,
    },
}

/// Hints for steps that failed because their stand-in image lacks a program: the shell's exit
/// code 127 ("command not found").
pub fn standin_hints(rec: &RunRecord, images: &[StepImage]) -> Vec<String> {
    let mut out = Vec::new();
    for s in rec.steps.iter().filter(|s| s.exit_code == Some(127)) {
        // An image from the host is the real one: its exit code 127 is the product's too.
        let Some(si) = images
            .iter()
            .find(|x| x.step == s.id && x.source != "host" && x.source != "pulled")
        else {
            continue;
        };
        let missing = s
            .log
            .lines()
            .rev()
            .find_map(|l| {
                l.strip_suffix(": not found")
                    .or_else(|| l.strip_suffix(": command not found"))
            })
            .map(|l| l.rsplit(": ").next().unwrap_or(l).trim().to_string());
        let what = missing
            .map(|m| format!("has no `{m}`"))
            .unwrap_or_else(|| "lacks the program its command runs".into());
        out.push(format!(
            "step `{}` ran image `{}` as sgsim's `{}` stand-in, which {what} (exit code 127); \
             sgsim builds its images from Debian packages, not from the vendor's image: choose another \
             stand-in with fixtures.images (scripts/images/README.md lists them) or check that the \
             command does not depend on the vendor image's tools",
            s.id, si.requested, si.ran_as
        ));
    }
    out
}

/// One line saying what each step's image ran as, so a run never passes a stand-in off as the
/// real image: `images: build ran maven:3.9 (host daemon); test ran alpine:3.19 as stand-in busybox`.
pub fn images_line(images: &[StepImage]) -> Option<String> {
    if images.is_empty() {
        return None;
    }
    let parts: Vec<String> = images
        .iter()
        .map(|i| match i.source {
            "host" => format!("{} ran {} (host daemon)", i.step, i.requested),
            "pulled" => format!("{} ran {} (pulled)", i.step, i.requested),
            "fixtures.images" => format!(
                "{} ran {} as stand-in {} (fixtures.images)",
                i.step, i.requested, i.ran_as
            ),
            _ => format!("{} ran {} as stand-in {}", i.step, i.requested, i.ran_as),
        })
        .collect();
    Some(format!("images: {}", parts.join("; ")))
}

pub(crate) fn print_diagnostics(e: &ScenarioError) {
    let fancy = output::color_stderr();
    for d in &e.diagnostics().items {
        if fancy {
            output::err_line(&d.to_string());
            output::err_line(&format!("{:?}", miette::Report::new(d.clone())));
        } else {
            output::err_line(&d.render_plain());
        }
    }
}

fn load_or_report(file: &Path, select: &Select) -> Result<Scenario, i32> {
    let inp = match input::load(file, &select.options()) {
        Ok(i) => i,
        Err(e) => {
            output::err_line(&format!("error: {e}"));
            return Err(exit::INVALID_INPUT);
        }
    };
    match inp.scenario {
        Ok(sc) => {
            for w in &sc.warnings.items {
                output::err_line(&w.render_plain());
            }
            Ok(sc)
        }
        Err(e) => {
            print_diagnostics(&e);
            Err(exit::INVALID_INPUT)
        }
    }
}

fn cmd_validate(files: &[PathBuf], select: &Select) -> i32 {
    let mut code = exit::OK;
    for f in files {
        match load_or_report(f, select) {
            Ok(sc) => output::out_line(&format!(
                "ok: {} (step group {}, {} step(s), namespace {})",
                f.display(),
                sc.step_group.identifier,
                sc.step_group.flat_steps().len(),
                sc.namespace()
            )),
            Err(c) => code = c,
        }
    }
    code
}

fn cmd_render(file: &Path, output: Format, select: &Select) -> i32 {
    let sc = match load_or_report(file, select) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let pod = sgsim_core::render_pod(&sc);
    let text = match output {
        Format::Json => serde_json::to_string_pretty(&pod)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_saphyr::to_string(&pod).map_err(|e| e.to_string()),
    };
    match text {
        Ok(t) => {
            output::out(&t);
            exit::OK
        }
        Err(e) => {
            output::err_line(&format!("error: cannot serialize the pod: {e}"));
            exit::INFRASTRUCTURE
        }
    }
}

pub(crate) fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn default_golden_dir(file: &Path) -> Option<PathBuf> {
    let dir = if file.is_dir() {
        file.to_path_buf()
    } else {
        file.parent()?.to_path_buf()
    };
    let dir = dir.canonicalize().ok()?;
    let name = dir.file_name()?.to_str()?.to_string();
    let scenarios = dir.parent()?;
    if scenarios.file_name()?.to_str()? != "scenarios" {
        return None;
    }
    let g = scenarios.parent()?.join("golden").join(name);
    g.is_dir().then_some(g)
}

/// The scenario `sgsim run` runs, its warnings printed; `Err` is the exit code when there is
/// nothing to run (invalid input, or the validation error the scenario expects: exit 0).
fn scenario_to_run(file: &Path, select: &Select) -> Result<Scenario, i32> {
    let inp = match input::load(file, &select.options()) {
        Ok(i) => i,
        Err(e) => {
            output::err_line(&format!("error: {e}"));
            return Err(exit::INVALID_INPUT);
        }
    };
    let sc = match inp.scenario {
        Ok(sc) => sc,
        Err(e) => {
            print_diagnostics(&e);
            if e.is_expected() {
                output::err_line("the scenario expects this validation error: outcome as expected");
                return Err(exit::OK);
            }
            return Err(exit::INVALID_INPUT);
        }
    };
    for w in &sc.warnings.items {
        output::err_line(&w.render_plain());
    }
    Ok(sc)
}

/// `sgsim run`'s switches.
struct RunFlags {
    keep_pod: bool,
    pull: PullArg,
}

fn cmd_run(
    file: &Path,
    golden_dir: Option<PathBuf>,
    flags: RunFlags,
    select: &Select,
    kind: RuntimeKind,
    report_dir: Option<&Path>,
) -> i32 {
    let reporter = Arc::new(Reporter::for_terminal());
    let sc = match scenario_to_run(file, select) {
        Ok(sc) => sc,
        Err(code) => return code,
    };
    if kind == RuntimeKind::Fake
        && let Some(why) = &sc.header.fake.skip
    {
        output::err_line(&format!(
            "note: the scenario says it needs real containers (fake.skip: {why}); running it on the fake runtime anyway"
        ));
    }
    let golden_dir = golden_dir.or_else(|| default_golden_dir(file));
    let mode = match golden_store::bless_mode() {
        Ok(m) => m,
        Err(e) => {
            output::err_line(&format!("error: {e}"));
            return exit::USAGE;
        }
    };
    let name = if sc.header.name.is_empty() {
        sc.step_group.identifier.clone()
    } else {
        sc.header.name.clone()
    };
    reporter.mask_secrets(&sc.secrets);
    let runtime = new_runtime(kind, &reporter);
    let rt = tokio_runtime();
    rt.block_on(async {
        output::watch_stdout();
        let started = Instant::now();
        let started_at = sgsim_cluster::apiserver::now_rfc3339();
        let settings = RunSettings {
            name: None,
            keep_pod: flags.keep_pod,
            host_images: true,
            pull: flags.pull.into(),
        };
        let sink = |e| reporter.event(&Event::Run(e));
        let work = check::run_and_check(Ok(&sc), runtime.as_ref(), golden_dir.as_deref(), mode, &settings, &sink);
        let verdict = tokio::select! {
            v = work => v,
            () = interrupted() => {
                output::err_line("interrupted: removing everything this run started");
                runtime.shutdown().await;
                return exit::INTERRUPTED;
            }
            () = output::closed() => {
                // `sgsim run … | head`: stop quietly, removing everything (nothing to print to).
                runtime.shutdown().await;
                return exit::OUTPUT_CLOSED;
            }
        };
        runtime.shutdown().await;
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => {
                output::err_line(&format!("error: {e}"));
                return exit::INFRASTRUCTURE;
            }
        };
        let Some(out) = &verdict.output else { return exit::OK };
        let logs_dir = sgsim_cluster::context::sgsim_tmp_root()
            .with_file_name("sgsim-logs")
            .join(&name);
        reporter.background_logs(&out.record.steps, &logs_dir);
        for h in standin_hints(&out.record, &out.images) {
            reporter.hint(&h);
        }
        if let Some(line) = images_line(&out.images) {
            reporter.hint(&line);
        }
        reporter.event(&Event::Summary {
            scenario: name.clone(),
            status: out.record.status,
            as_expected: verdict.mismatches.is_empty(),
            mismatch: verdict.mismatches.clone(),
            took: started.elapsed(),
        });
        let mut code = if verdict.mismatches.is_empty() {
            exit::OK
        } else {
            exit::MISMATCH
        };
        if let (Some(dir), Some(r)) = (&golden_dir, &verdict.golden) {
            if !r.ok() {
                output::out(&r.render(&name, output::color_stdout()));
                code = exit::MISMATCH;
            } else if !r.written.is_empty() {
                output::out_line(&format!("goldens written: {}", r.written.join(", ")));
            } else if runtime.writes_goldens() {
                output::out_line(&format!("goldens in {} match", dir.display()));
            } else {
                output::out_line(&format!(
                    "goldens in {} match (fake runtime: {})",
                    dir.display(),
                    sgsim_core::verdict::FAKE_COMPARED
                ));
            }
        }
        if let Some(dir) = report_dir {
            let status = if code == exit::OK {
                junit::TrialStatus::Pass
            } else {
                junit::TrialStatus::Fail(check::Verdict::failure_text(&verdict, &name, false))
            };
            let trial = report::TrialReport {
                name: name.clone(),
                suite: "run".to_owned(),
                status,
                secs: started.elapsed().as_secs_f64(),
                started_at: started_at.clone(),
                files: sgsim_core::verdict::golden_files(&sc, &out.record).unwrap_or_default(),
                diffs: report::diff_texts(verdict.golden.as_ref().map(|g| g.diffs.as_slice()).unwrap_or_default()),
                mismatches: verdict.mismatches.clone(),
                images: out.images.iter().map(Into::into).collect(),
            };
            let published =
                report::clear(dir).and_then(|()| report::publish(dir, &format!("sgsim run {name}"), &[trial]));
            match published {
                Ok(path) => output::err_line(&format!("report: {}", path.display())),
                Err(e) => {
                    output::err_line(&format!("error: writing the report into {}: {e}", dir.display()));
                    return exit::INFRASTRUCTURE;
                }
            }
        }
        code
    })
}

/// The runtime of a command; the Docker pool reports its start-up to `reporter`.
pub fn new_runtime(kind: RuntimeKind, reporter: &Arc<Reporter>) -> Box<dyn Runtime> {
    match kind {
        RuntimeKind::Docker => {
            let reporter = reporter.clone();
            Box::new(DockerRuntime::new(
                input::repo_root(),
                Arc::new(move |e| reporter.event(&Event::Session(e))),
            ))
        }
        RuntimeKind::Fake => Box::new(FakeRuntime),
    }
}

fn cmd_accept(filter: Option<&str>) -> i32 {
    let repo = input::repo_root();
    let mut n = 0;
    for name in conformance::discover(&repo) {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        match golden_store::accept(&repo.join("golden").join(&name)) {
            Ok(files) => {
                for f in files {
                    output::out_line(&format!("accepted {f}"));
                    n += 1;
                }
            }
            Err(e) => {
                output::err_line(&format!("error: {e}"));
                return exit::INFRASTRUCTURE;
            }
        }
    }
    if n == 0 {
        output::out_line("no pending golden files");
    }
    exit::OK
}

/// Writes the cluster's kubeconfig (cluster, user and context named `name`) to `path` and, with
/// `merge`, merges its context into the user's kubeconfig; prints how to use it. Returns what to
/// take out of the user's file on exit.
fn publish_kubeconfig(
    api: &sgsim_cluster::apiserver::ApiServerHandle,
    path: &Path,
    name: &str,
    merge: bool,
) -> Result<Option<(PathBuf, sgsim_core::kubeconfig::Merged)>, String> {
    let own = api.kubeconfig_named(name);
    sgsim_cluster::apiserver::write_kubeconfig_file(path, &own)
        .map_err(|e| format!("{e}: {}", sgsim_cluster::docker::error_chain(&e)))?;
    output::out_line(&format!("  kubectl --kubeconfig {} get pods -A", path.display()));
    if !merge {
        return Ok(None);
    }
    let user = user_kubeconfig::default_path().ok_or("--merge: neither KUBECONFIG nor HOME is set")?;
    let ours = serde_json::to_value(&own).map_err(|e| e.to_string())?;
    let merged = user_kubeconfig::merge(&user, &ours, name)?;
    output::out_line(&format!(
        "  context \"{name}\" merged into {} and made current (removed on exit): kubectl get pods -A",
        user.display()
    ));
    Ok(Some((user, merged)))
}

/// Takes the merged context out of the user's kubeconfig again.
fn unpublish_kubeconfig(merged: Option<(PathBuf, sgsim_core::kubeconfig::Merged)>) {
    if let Some((user, merged)) = merged {
        match user_kubeconfig::remove(&user, &merged) {
            Ok(()) => output::err_line(&format!("context \"{}\" removed from {}", merged.name, user.display())),
            Err(e) => output::err_line(&format!("error: {e}")),
        }
    }
}

/// `merge`: also merge the context `name` into the user's kubeconfig while the cluster runs.
fn cmd_cluster_up(kubeconfig: &Path, name: &str, merge: bool, api_only: bool) -> i32 {
    let reporter = Arc::new(Reporter::for_terminal());
    let rt = tokio_runtime();
    rt.block_on(async {
        if api_only {
            let api = match sgsim_cluster::apiserver::ApiServer::start(Default::default()).await {
                Ok(a) => a,
                Err(e) => {
                    output::err_line(&format!("error: {}", sgsim_cluster::docker::error_chain(&e)));
                    return exit::INFRASTRUCTURE;
                }
            };
            output::out_line(&format!(
                "API server at {} (no nodes); kubeconfig written to {}",
                api.url(),
                kubeconfig.display()
            ));
            let merged = match publish_kubeconfig(&api, kubeconfig, name, merge) {
                Ok(m) => m,
                Err(e) => {
                    output::err_line(&format!("error: {e}"));
                    return exit::INFRASTRUCTURE;
                }
            };
            output::out_line("Ctrl-C stops it.");
            interrupted().await;
            unpublish_kubeconfig(merged);
            api.shutdown().await;
            return exit::OK;
        }
        let runtime = DockerRuntime::new(input::repo_root(), {
            let reporter = reporter.clone();
            Arc::new(move |e| reporter.event(&Event::Session(e)))
        });
        let pool = match runtime.pool().await {
            Ok(p) => p,
            Err(e) => {
                output::err_line(&format!("error: {}", e.chain()));
                return exit::INFRASTRUCTURE;
            }
        };
        let cluster = match pool.cluster(&[], &Default::default(), &|_| {}).await {
            Ok(c) => c,
            Err(e) => {
                output::err_line(&format!("error: {}", sgsim_cluster::docker::error_chain(&e)));
                drop(pool);
                runtime.shutdown().await;
                return exit::INFRASTRUCTURE;
            }
        };
        output::out_line(&format!(
            "cluster up: API server at {}, node node-1; kubeconfig written to {}",
            cluster.api().url(),
            kubeconfig.display()
        ));
        let merged = match publish_kubeconfig(cluster.api(), kubeconfig, name, merge) {
            Ok(m) => m,
            Err(e) => {
                output::err_line(&format!("error: {e}"));
                cluster.shutdown().await;
                drop(pool);
                runtime.shutdown().await;
                return exit::INFRASTRUCTURE;
            }
        };
        output::out_line("Ctrl-C stops it and removes everything.");
        interrupted().await;
        output::err_line("stopping: removing the cluster");
        unpublish_kubeconfig(merged);
        cluster.shutdown().await;
        drop(pool);
        runtime.shutdown().await;
        exit::OK
    })
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM (what CI cancellation and `kill` send): the moment to
/// remove everything a run started.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm => {}
    }
}

/// The whole program; returns the exit code.
pub fn main_impl() -> i32 {
    // Before any thread exists: Docker API compatibility for testcontainers.
    sgsim_cluster::docker::prepare_process();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    output::set_color(cli.color);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SGSIM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Validate { files, select } => cmd_validate(&files, &select),
        Command::Render { file, output, select } => cmd_render(&file, output, &select),
        Command::Run {
            file,
            golden,
            keep_pod,
            select,
            runtime,
            report,
            pull,
        } => cmd_run(
            &file,
            golden,
            RunFlags { keep_pod, pull },
            &select,
            runtime,
            report.as_deref(),
        ),
        Command::Repro {
            pipeline,
            select,
            inputs,
            log,
            name,
            root,
            pull,
        } => repro::cmd_repro(&repro::ReproArgs {
            pipeline: &pipeline,
            select: &select,
            inputs: inputs.as_deref(),
            log: log.as_deref(),
            name: name.as_deref(),
            root: root.as_deref(),
            pull,
        }),
        Command::Test {
            filter,
            exact,
            list,
            test_threads,
            runtime,
            junit,
            report,
        } => {
            let args = libtest_mimic::Arguments {
                filter,
                exact,
                list,
                test_threads,
                ..Default::default()
            };
            let report = conformance::SuiteOutput {
                lines: true,
                junit,
                report,
                fresh_report: true,
            };
            if conformance::run_reported(&args, runtime, &report).has_failed() {
                exit::MISMATCH
            } else {
                exit::OK
            }
        }
        Command::Accept { filter } => cmd_accept(filter.as_deref()),
        Command::Report { dir, title } => match report::load(&dir) {
            Ok(t) if t.is_empty() => {
                output::err_line(&format!("error: no trials in {}", dir.join("trials").display()));
                exit::USAGE
            }
            Ok(t) => match report::write_page(&dir, &title, &t) {
                Ok(path) => {
                    output::out_line(&format!("report: {} ({} trials)", path.display(), t.len()));
                    exit::OK
                }
                Err(e) => {
                    output::err_line(&format!("error: {e}"));
                    exit::INFRASTRUCTURE
                }
            },
            Err(e) => {
                output::err_line(&format!("error: {e}"));
                exit::INFRASTRUCTURE
            }
        },
        Command::Review { filter, unreferenced } => review::cmd_review(filter.as_deref(), unreferenced),
        Command::Cluster {
            action:
                ClusterAction::Up {
                    kubeconfig,
                    merge,
                    name,
                    api_only,
                },
        } => cmd_cluster_up(&kubeconfig, &name, merge, api_only),
        Command::Images { action } => images_cmd::cmd_images(&action),
        Command::Doctor => doctor::cmd_doctor(),
        Command::New {
            kind,
            output,
            service_account,
        } => match new_cmd::cmd_new(kind, output.as_deref(), service_account.as_deref()) {
            Ok(dir) => cmd_validate(&[dir], &Select::default()),
            Err(code) => code,
        },
    }
}

/// Prepares Docker access for the process (call first thing in `main`, before any thread).
pub fn prepare_process() {
    sgsim_cluster::docker::prepare_process();
}

/// Removes what [`prepare_process`] left on disk (call last, right before the process exits).
pub fn finish_process() {
    sgsim_cluster::docker::finish_process();
}

#[cfg(test)]
mod hint_tests {
    use super::*;
    use sgsim_core::record::{Outcome, StepRecord};
    use std::time::Duration;

    fn step(id: &str, exit: Option<i32>, log: &str) -> StepRecord {
        StepRecord {
            id: id.into(),
            name: id.into(),
            container: Some(format!("step-{id}")),
            status: if exit == Some(0) {
                Outcome::Success
            } else {
                Outcome::Failed
            },
            exit_code: exit,
            error: None,
            outputs: Default::default(),
            log: log.into(),
            background: false,
            took: Duration::ZERO,
            attempts: 1,
            strategy: None,
            reports: Default::default(),
            image: None,
        }
    }

    #[test]
    fn exit_127_names_the_stand_in_and_the_missing_program() {
        let rec = RunRecord {
            pod: None,
            initialize: Vec::new(),
            steps: vec![
                step("plan", Some(127), "init\nsh: terraform: not found\n"),
                step("ok", Some(0), ""),
                step("other", Some(127), "bash: line 1: helm: command not found\n"),
                step("bare", Some(127), ""),
            ],
            status: Outcome::Failed,
            error: None,
            node: None,
        };
        let si = |s: &str, i: &str| StepImage {
            step: s.into(),
            requested: i.into(),
            ran_as: "busybox".into(),
            source: "stand-in",
        };
        let hints = standin_hints(
            &rec,
            &[
                si("plan", "hashicorp/terraform:1.5"),
                si("ok", "alpine"),
                si("other", "alpine/helm:3"),
                si("bare", "x:1"),
            ],
        );
        assert_eq!(hints.len(), 3, "{hints:#?}");
        assert!(hints[0].starts_with("step `plan` ran image `hashicorp/terraform:1.5` as sgsim's `busybox` stand-in, which has no `terraform` (exit code 127)"), "{}", hints[0]);
        assert!(hints[1].contains("which has no `helm`"), "{}", hints[1]);
        assert!(
            hints[2].contains("which lacks the program its command runs"),
            "{}",
            hints[2]
        );
    }

    #[test]
    fn the_images_line_names_what_each_step_ran_as() {
        let img = |step: &str, requested: &str, ran_as: &str, source: &'static str| StepImage {
            step: step.into(),
            requested: requested.into(),
            ran_as: ran_as.into(),
            source,
        };
        assert_eq!(images_line(&[]), None);
        let line = images_line(&[
            img("build", "maven:3.9", "maven:3.9", "host"),
            img("test", "alpine:3.19", "busybox", "stand-in"),
            img("tf", "hashicorp/terraform:1.5", "bash", "fixtures.images"),
            img(
                "lint",
                "golangci/golangci-lint:v1",
                "golangci/golangci-lint:v1",
                "pulled",
            ),
        ])
        .expect("a line");
        assert_eq!(
            line,
            "images: build ran maven:3.9 (host daemon); test ran alpine:3.19 as stand-in busybox; \
             tf ran hashicorp/terraform:1.5 as stand-in bash (fixtures.images); \
             lint ran golangci/golangci-lint:v1 (pulled)"
        );
        // A real image's exit code 127 is not blamed on a stand-in.
        let rec = RunRecord {
            pod: None,
            initialize: Vec::new(),
            steps: vec![step("build", Some(127), "sh: mvn: not found\n")],
            status: Outcome::Failed,
            error: None,
            node: None,
        };
        assert!(standin_hints(&rec, &[img("build", "maven:3.9", "maven:3.9", "host")]).is_empty());
    }
}
