//! The `sgsim` command line, as a library so that `cargo test` (tests/conformance.rs) and
//! `sgsim test` share the same trials. `main.rs` only calls [`main_impl`].

mod args;
pub mod check;
pub mod conformance;
pub mod doctor;
pub mod exit;
pub mod golden_store;
mod hints;
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

use clap::Parser;
use sgsim_cluster::runtime::{DockerRuntime, FakeRuntime, RunSettings, Runtime};
use sgsim_core::{Scenario, ScenarioError};

use crate::reporter::{Event, Reporter};

pub use args::{Cli, ClusterAction, Command, Format, KubeArgs, PullArg, RuntimeKind, Select};
pub use hints::{images_line, standin_hints};

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

fn cmd_render(file: &Path, output: Format, with_secrets: bool, select: &Select) -> i32 {
    let sc = match load_or_report(file, select) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let pod = sgsim_core::render_pod(&sc);
    let secrets = if with_secrets { render_secrets(&sc) } else { Vec::new() };
    let text: Result<String, String> = match output {
        Format::Json => {
            let doc = if secrets.is_empty() {
                serde_json::to_value(&pod)
            } else {
                let mut items = secrets.clone();
                items.push(serde_json::to_value(&pod).unwrap_or_default());
                Ok(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}))
            };
            doc.and_then(|d| serde_json::to_string_pretty(&d))
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        }
        Format::Yaml => secrets
            .iter()
            .map(|s| serde_saphyr::to_string(s).map(|t| t + "---\n"))
            .chain([serde_saphyr::to_string(&pod)])
            .collect::<Result<String, _>>()
            .map_err(|e| e.to_string()),
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

/// The Secrets the product creates before the pod, with placeholders where a run puts its
/// delegate's credentials.
fn render_secrets(sc: &sgsim_core::Scenario) -> Vec<serde_json::Value> {
    let placeholder = sgsim_core::render::EngineCredentials {
        delegate_token: "sgsim-placeholder-token".into(),
        log_service_token: "sgsim-placeholder-token".into(),
        log_service_endpoint: sgsim_cluster::runner::LOG_SERVICE_ENDPOINT.into(),
    };
    sgsim_core::render::pod_secrets(sc, &placeholder)
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect()
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
    kube: sgsim_cluster::kube_runtime::KubeTarget,
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
    let runtime = new_runtime(kind, &flags.kube, &reporter);
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
            } else if let Some(scope) = runtime.match_scope() {
                output::out_line(&format!("goldens in {} match ({scope})", dir.display()));
            } else {
                output::out_line(&format!("goldens in {} match", dir.display()));
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

/// The runtime of a command (`kube`: on `target`); the Docker pool and the image build report
/// their start-up to `reporter`.
pub fn new_runtime(
    kind: RuntimeKind,
    target: &sgsim_cluster::kube_runtime::KubeTarget,
    reporter: &Arc<Reporter>,
) -> Box<dyn Runtime> {
    match kind {
        RuntimeKind::Kube => {
            let reporter = reporter.clone();
            Box::new(sgsim_cluster::kube_runtime::KubeRuntime::new(
                target.clone(),
                input::repo_root(),
                Arc::new(move |e| reporter.event(&Event::Session(e))),
            ))
        }
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
        Command::Render {
            file,
            output,
            with_secrets,
            select,
        } => cmd_render(&file, output, with_secrets, &select),
        Command::Run {
            file,
            golden,
            keep_pod,
            select,
            runtime,
            kube,
            report,
            pull,
        } => cmd_run(
            &file,
            golden,
            RunFlags {
                keep_pod,
                pull,
                kube: kube.target(),
            },
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
            kube,
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
                kube: kube.target(),
            };
            if conformance::run_filtered_with(&args, Vec::new(), runtime, &report).has_failed() {
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
