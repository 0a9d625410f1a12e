//! The `sgsim` command line, as a library so that `cargo test` (tests/conformance.rs) and
//! `sgsim test` share the same trials. `main.rs` only calls [`main_impl`].

pub mod conformance;
pub mod exit;
pub mod golden;
pub mod images_cmd;
pub mod input;
pub mod new_cmd;
pub mod reporter;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use sgsim_cluster::pool::{NodePool, PoolOptions};
use sgsim_cluster::runner::{Outcome, RunRecord};
use sgsim_core::scenario::ExpectedStatus;
use sgsim_core::{Scenario, ScenarioError};

use crate::reporter::{Event, Reporter};

const EXIT_CODES: &str = "Exit codes:
  0    success: the outcome is the expected one and goldens match
  1    invalid input (YAML, unknown field, missing step group, unreadable file)
  2    wrong usage
  3    the outcome or a golden file differs from the expected one
  4    infrastructure failure (Docker, images, cluster)
  130  interrupted (everything the run started is removed)";

/// sgsim: run Harness containerized step groups on a throwaway Kubernetes cluster and compare
/// what happens with golden output.
#[derive(Debug, Parser)]
#[command(name = "sgsim", version, about, after_help = EXIT_CODES)]
pub struct Cli {
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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate scenarios or pipeline YAML files; every error as file:line:col.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Scenario directories, scenario.yaml files or bare pipeline YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The step group to use (identifier, or stage.group), when the file has several.
        #[arg(long)]
        step_group: Option<String>,
    },
    /// Print the Pod the product would create for the step group.
    #[command(after_help = EXIT_CODES)]
    Render {
        /// A scenario directory, scenario.yaml or a bare pipeline YAML.
        file: PathBuf,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
        output: Format,
        /// The step group to render (identifier, or stage.group), when the file has several.
        #[arg(long)]
        step_group: Option<String>,
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
        /// The step group to run (identifier, or stage.group), when the file has several.
        #[arg(long)]
        step_group: Option<String>,
        /// Where pods run.
        #[arg(long, value_enum, default_value = "docker")]
        runtime: RuntimeKind,
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
    },
    /// Accept pending golden files (`*.new`, written when a trial's output differed).
    Accept {
        /// Only scenarios whose name contains this.
        filter: Option<String>,
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
        /// Where to write the kubeconfig.
        #[arg(long, default_value = "sgsim.kubeconfig")]
        kubeconfig: PathBuf,
        /// Start only the API server (no node, scheduler or kubelet: nothing runs).
        #[arg(long)]
        api_only: bool,
    },
}

/// The differences between a run and its scenario's expectations (empty: as expected).
pub fn expectation_mismatches(sc: &Scenario, rec: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let want = match sc.expect().status {
        ExpectedStatus::Success => Outcome::Success,
        ExpectedStatus::Failed => Outcome::Failed,
        ExpectedStatus::Skipped => Outcome::Skipped,
    };
    // An expected `Failed` also admits the product's other failed statuses (Expired, Aborted,
    // IgnoreFailed for a step); result.yaml holds the exact status.
    let admits = |want: Outcome, got: Outcome| {
        got == want
            || (want == Outcome::Failed && matches!(got, Outcome::Timeout | Outcome::Aborted | Outcome::IgnoreFailed))
    };
    if !admits(want, rec.status) {
        let why = rec.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        out.push(format!(
            "the step group ended {} but {} was expected{why}",
            rec.status.as_str(),
            want.as_str()
        ));
    }
    for (id, exp) in &sc.expect().steps {
        let Some(step) = rec.steps.iter().find(|s| &s.id == id) else {
            out.push(format!("step {id} is expected but did not exist"));
            continue;
        };
        if let Some(st) = exp.status {
            let want = match st {
                ExpectedStatus::Success => Outcome::Success,
                ExpectedStatus::Failed => Outcome::Failed,
                ExpectedStatus::Skipped => Outcome::Skipped,
            };
            if !admits(want, step.status) {
                out.push(format!(
                    "step {id} ended {} but {} was expected",
                    step.status.as_str(),
                    want.as_str()
                ));
            }
        }
        if let Some(code) = exp.exit_code {
            if step.exit_code != Some(code) {
                out.push(format!(
                    "step {id} exited with {:?} but {code} was expected",
                    step.exit_code
                ));
            }
        }
    }
    out
}

/// The stand-in image a step's container ran as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStandIn {
    /// Step identifier.
    pub step: String,
    /// The image as the step group names it.
    pub image: String,
    /// sgsim's stand-in for it (`busybox`, `python`, ...).
    pub standin: String,
}

/// Hints for steps that failed because their stand-in image lacks a program: the shell's exit
/// code 127 ("command not found").
pub fn standin_hints(rec: &RunRecord, standins: &[StepStandIn]) -> Vec<String> {
    let mut out = Vec::new();
    for s in rec.steps.iter().filter(|s| s.exit_code == Some(127)) {
        let Some(si) = standins.iter().find(|x| x.step == s.id) else {
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
            s.id, si.image, si.standin
        ));
    }
    out
}

fn print_diagnostics(e: &ScenarioError) {
    let fancy = console::Term::stderr().is_term() && std::env::var_os("NO_COLOR").is_none();
    for d in &e.diagnostics().items {
        if fancy {
            eprintln!("{d}");
            eprintln!("{:?}", miette::Report::new(d.clone()));
        } else {
            eprintln!("{}", d.render_plain());
        }
    }
}

fn load_or_report(file: &Path, step_group: Option<&str>) -> Result<Scenario, i32> {
    let inp = match input::load(file, step_group) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(exit::INVALID_INPUT);
        }
    };
    match inp.scenario {
        Ok(sc) => {
            for w in &sc.warnings.items {
                eprintln!("{}", w.render_plain());
            }
            Ok(sc)
        }
        Err(e) => {
            print_diagnostics(&e);
            Err(exit::INVALID_INPUT)
        }
    }
}

fn cmd_validate(files: &[PathBuf], step_group: Option<&str>) -> i32 {
    let mut code = exit::OK;
    for f in files {
        match load_or_report(f, step_group) {
            Ok(sc) => println!(
                "ok: {} (step group {}, {} step(s), namespace {})",
                f.display(),
                sc.step_group.identifier,
                sc.step_group.flat_steps().len(),
                sc.namespace()
            ),
            Err(c) => code = c,
        }
    }
    code
}

fn cmd_render(file: &Path, output: Format, step_group: Option<&str>) -> i32 {
    let sc = match load_or_report(file, step_group) {
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
            print!("{t}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot serialize the pod: {e}");
            exit::INFRASTRUCTURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts the node pool of a command (one node), reporting progress; an error is reported and
/// turned into the infrastructure exit code.
async fn start_pool(reporter: &Reporter) -> Result<NodePool, i32> {
    let opts = PoolOptions {
        repo_root: input::repo_root(),
        nodes: 1,
    };
    NodePool::start(&opts, &|e| reporter.event(&Event::Session(e)))
        .await
        .map_err(|e| {
            eprintln!("error: {}", sgsim_cluster::docker::error_chain(&e));
            exit::INFRASTRUCTURE
        })
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
fn scenario_to_run(file: &Path, step_group: Option<&str>) -> Result<Scenario, i32> {
    let inp = match input::load(file, step_group) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(exit::INVALID_INPUT);
        }
    };
    let sc = match inp.scenario {
        Ok(sc) => sc,
        Err(e) => {
            print_diagnostics(&e);
            if e.is_expected() {
                eprintln!("the scenario expects this validation error: outcome as expected");
                return Err(exit::OK);
            }
            return Err(exit::INVALID_INPUT);
        }
    };
    for w in &sc.warnings.items {
        eprintln!("{}", w.render_plain());
    }
    Ok(sc)
}

fn cmd_run(file: &Path, golden_dir: Option<PathBuf>, keep_pod: bool, step_group: Option<&str>) -> i32 {
    let reporter = Reporter::for_terminal();
    let sc = match scenario_to_run(file, step_group) {
        Ok(sc) => sc,
        Err(code) => return code,
    };
    let golden_dir = golden_dir.or_else(|| default_golden_dir(file));
    let mode = match golden::bless_mode() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let name = if sc.header.name.is_empty() {
        sc.step_group.identifier.clone()
    } else {
        sc.header.name.clone()
    };
    reporter.mask_secrets(&sc.secrets);
    let rt = runtime();
    rt.block_on(async {
        let started = Instant::now();
        let pool = match start_pool(&reporter).await {
            Ok(p) => p,
            Err(code) => return code,
        };
        let work = async {
            let cluster = pool
                .cluster_for_scenario(&sc, &|e| reporter.event(&Event::Session(e)))
                .await
                .map_err(|e| sgsim_cluster::docker::error_chain(&e))?;
            let ropts = sgsim_cluster::runner::RunOptions {
                task_prefix: pool.run_id().to_string(),
                keep_pod,
                image_entrypoint: Some(cluster.image_entrypoint()),
                ..Default::default()
            };
            let rec =
                sgsim_cluster::runner::run(cluster.client(), cluster.dialer(), pool.delegate(), &sc, &ropts, &|e| {
                    reporter.event(&Event::Run(e))
                })
                .await;
            let standins: Vec<StepStandIn> = sgsim_core::render::plan(&sc)
                .flat()
                .into_iter()
                .filter_map(|st| {
                    st.image.as_ref().map(|i| StepStandIn {
                        step: st.id.clone(),
                        image: i.clone(),
                        standin: cluster.standin_name(i),
                    })
                })
                .collect();
            cluster.shutdown().await;
            rec.map(|r| (r, standins))
                .map_err(|e| sgsim_cluster::docker::error_chain(&e))
        };
        let rec = tokio::select! {
            r = work => r,
            () = interrupted() => {
                eprintln!("interrupted: removing everything this run started");
                pool.shutdown().await;
                return exit::INTERRUPTED;
            }
        };
        pool.shutdown().await;
        let (rec, standins) = match rec {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INFRASTRUCTURE;
            }
        };
        reporter.background_logs(&rec.steps);
        for h in standin_hints(&rec, &standins) {
            reporter.hint(&h);
        }
        let mismatch = expectation_mismatches(&sc, &rec);
        reporter.event(&Event::Summary {
            scenario: name.clone(),
            status: rec.status,
            as_expected: mismatch.is_empty(),
            mismatch: mismatch.clone(),
            took: started.elapsed(),
        });
        let mut code = if mismatch.is_empty() { exit::OK } else { exit::MISMATCH };
        if let Some(dir) = golden_dir {
            let files = match golden::files_for_run(&sc, &rec) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::INFRASTRUCTURE;
                }
            };
            match golden::check(&dir, &files, mode) {
                Ok(r) if r.ok() && r.written.is_empty() => println!("goldens in {} match", dir.display()),
                Ok(r) if r.ok() => println!("goldens written: {}", r.written.join(", ")),
                Ok(r) => {
                    let color = console::colors_enabled() && std::env::var_os("NO_COLOR").is_none();
                    print!("{}", r.render(&name, color));
                    code = exit::MISMATCH;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::INFRASTRUCTURE;
                }
            }
        }
        code
    })
}

/// `sgsim run --runtime fake`: the same runner on a [`sgsim_cluster::fake_runtime::FakeCluster`].
fn cmd_run_fake(file: &Path, golden_dir: Option<PathBuf>, step_group: Option<&str>) -> i32 {
    let reporter = Reporter::for_terminal();
    let sc = match scenario_to_run(file, step_group) {
        Ok(sc) => sc,
        Err(code) => return code,
    };
    if let Some(why) = &sc.header.fake.skip {
        eprintln!(
            "note: the scenario says it needs real containers (fake.skip: {why}); running it on the fake runtime anyway"
        );
    }
    let golden_dir = golden_dir.or_else(|| default_golden_dir(file));
    let name = if sc.header.name.is_empty() {
        sc.step_group.identifier.clone()
    } else {
        sc.header.name.clone()
    };
    reporter.mask_secrets(&sc.secrets);
    let rt = runtime();
    rt.block_on(async {
        let started = Instant::now();
        let rec = match conformance::run_fake(&sc, "sgsim", &|e| reporter.event(&Event::Run(e))).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INFRASTRUCTURE;
            }
        };
        let mismatch = expectation_mismatches(&sc, &rec);
        reporter.event(&Event::Summary {
            scenario: name.clone(),
            status: rec.status,
            as_expected: mismatch.is_empty(),
            mismatch: mismatch.clone(),
            took: started.elapsed(),
        });
        let mut code = if mismatch.is_empty() { exit::OK } else { exit::MISMATCH };
        if let Some(dir) = golden_dir {
            match conformance::check_fake_goldens(&sc, &rec, &dir) {
                Ok(r) if r.ok() => println!(
                    "goldens in {} match (fake runtime: {})",
                    dir.display(),
                    conformance::FAKE_COMPARED
                ),
                Ok(r) => {
                    let color = console::colors_enabled() && std::env::var_os("NO_COLOR").is_none();
                    print!("{}", r.render(&name, color));
                    code = exit::MISMATCH;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::INFRASTRUCTURE;
                }
            }
        }
        code
    })
}

fn cmd_accept(filter: Option<&str>) -> i32 {
    let repo = input::repo_root();
    let mut n = 0;
    for name in conformance::discover(&repo) {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        match golden::accept(&repo.join("golden").join(&name)) {
            Ok(files) => {
                for f in files {
                    println!("accepted {f}");
                    n += 1;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INFRASTRUCTURE;
            }
        }
    }
    if n == 0 {
        println!("no pending golden files");
    }
    exit::OK
}

fn cmd_cluster_up(kubeconfig: &Path, api_only: bool) -> i32 {
    let reporter = Reporter::for_terminal();
    let rt = runtime();
    rt.block_on(async {
        if api_only {
            let api = match sgsim_cluster::apiserver::ApiServer::start(Default::default()).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {}", sgsim_cluster::docker::error_chain(&e));
                    return exit::INFRASTRUCTURE;
                }
            };
            if let Err(e) = api.write_kubeconfig(kubeconfig) {
                eprintln!("error: {e}");
                return exit::INFRASTRUCTURE;
            }
            println!(
                "API server at {} (no nodes); kubeconfig written to {}",
                api.url(),
                kubeconfig.display()
            );
            println!("  kubectl --kubeconfig {} get pods -A", kubeconfig.display());
            println!("Ctrl-C stops it.");
            interrupted().await;
            api.shutdown().await;
            return exit::OK;
        }
        let pool = match start_pool(&reporter).await {
            Ok(p) => p,
            Err(code) => return code,
        };
        let cluster = match pool.cluster(&[], &Default::default(), &|_| {}).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {}", sgsim_cluster::docker::error_chain(&e));
                pool.shutdown().await;
                return exit::INFRASTRUCTURE;
            }
        };
        if let Err(e) = cluster.api().write_kubeconfig(kubeconfig) {
            eprintln!("error: {e}");
            cluster.shutdown().await;
            pool.shutdown().await;
            return exit::INFRASTRUCTURE;
        }
        println!(
            "cluster up: API server at {}, node node-1; kubeconfig written to {}",
            cluster.api().url(),
            kubeconfig.display()
        );
        println!("  kubectl --kubeconfig {} get pods -A", kubeconfig.display());
        println!("Ctrl-C stops it and removes everything.");
        interrupted().await;
        eprintln!("stopping: removing the cluster");
        cluster.shutdown().await;
        pool.shutdown().await;
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SGSIM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Validate { files, step_group } => cmd_validate(&files, step_group.as_deref()),
        Command::Render {
            file,
            output,
            step_group,
        } => cmd_render(&file, output, step_group.as_deref()),
        Command::Run {
            file,
            golden,
            keep_pod,
            step_group,
            runtime: RuntimeKind::Docker,
        } => cmd_run(&file, golden, keep_pod, step_group.as_deref()),
        Command::Run {
            file,
            golden,
            keep_pod: _,
            step_group,
            runtime: RuntimeKind::Fake,
        } => cmd_run_fake(&file, golden, step_group.as_deref()),
        Command::Test {
            filter,
            exact,
            list,
            test_threads,
            runtime,
        } => {
            let args = libtest_mimic::Arguments {
                filter,
                exact,
                list,
                test_threads,
                ..Default::default()
            };
            if conformance::run_with(&args, runtime).has_failed() {
                exit::MISMATCH
            } else {
                exit::OK
            }
        }
        Command::Accept { filter } => cmd_accept(filter.as_deref()),
        Command::Cluster {
            action: ClusterAction::Up { kubeconfig, api_only },
        } => cmd_cluster_up(&kubeconfig, api_only),
        Command::Images { action } => images_cmd::cmd_images(&action),
        Command::New {
            kind,
            output,
            service_account,
        } => match new_cmd::cmd_new(kind, output.as_deref(), service_account.as_deref()) {
            Ok(dir) => cmd_validate(&[dir], None),
            Err(code) => code,
        },
    }
}

/// Prepares Docker access for the process (call first thing in `main`, before any thread).
pub fn prepare_process() {
    sgsim_cluster::docker::prepare_process();
}

#[cfg(test)]
mod hint_tests {
    use super::*;
    use sgsim_cluster::runner::StepRecord;
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
        let si = |s: &str, i: &str| StepStandIn {
            step: s.into(),
            image: i.into(),
            standin: "busybox".into(),
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
}
