//! The conformance suite: one libtest-mimic trial per directory of `scenarios/`, shared by
//! `cargo test` (tests/conformance.rs) and `sgsim test`.
//!
//! The trials of one process share a warm [`NodePool`] (started on first need, removed at the end,
//! also on Ctrl-C); each trial gets its own cluster (API server, scheduler, kubelets) and pod.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use libtest_mimic::{Arguments, Conclusion, Failed, Trial};
use sgsim_cluster::pool::{NodePool, PoolOptions};
use tokio::runtime::Runtime;

use sgsim_cluster::runner::{RunEvent, RunRecord};
use sgsim_core::Scenario;

use crate::golden::{self, BlessMode, GoldenError, GoldenReport};
use crate::reporter::{Event, Reporter};
use crate::{RuntimeKind, expectation_mismatches, input};

/// What the fake runtime compares with the goldens (blessed on the Docker tier).
pub const FAKE_COMPARED: &str = "pod.yaml, initialize.log, result.yaml and the step logs given as fake data";

/// Runs `sc` on a fresh fake-tier cluster (no containers).
pub async fn run_fake(
    sc: &Scenario,
    task_prefix: &str,
    sink: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<RunRecord, String> {
    let cluster = sgsim_cluster::fake_runtime::FakeCluster::start(sc)
        .await
        .map_err(|e| sgsim_cluster::docker::error_chain(&e))?;
    let opts = sgsim_cluster::runner::RunOptions {
        task_prefix: task_prefix.to_string(),
        ..Default::default()
    };
    let rec = sgsim_cluster::runner::run(cluster.client(), cluster.dialer(), cluster.delegate(), sc, &opts, sink).await;
    cluster.shutdown().await;
    rec.map_err(|e| sgsim_cluster::docker::error_chain(&e))
}

/// Compares a fake-tier run with the goldens: pod.yaml, initialize.log, result.yaml, and the
/// logs of steps whose `fake:` data prints something. Never writes: goldens come from real runs.
pub fn check_fake_goldens(sc: &Scenario, rec: &RunRecord, dir: &Path) -> Result<GoldenReport, GoldenError> {
    let mut files = golden::files_for_run(sc, rec)?;
    let logged: Vec<String> = sc
        .header
        .fake
        .steps
        .iter()
        .filter(|(_, s)| s.attempts.iter().any(|a| !a.log.is_empty()))
        .map(|(id, _)| format!("steps/{id}.log"))
        .collect();
    files.retain(|name, _| !name.starts_with("steps/") || logged.contains(name));
    let mut report = golden::check(dir, &files, BlessMode::Never)?;
    report.stale.clear();
    report.check_only = Some(
        "the fake runtime never writes goldens (they come from real runs): fix the scenario's fake: data, or re-bless on the Docker runtime"
            .into(),
    );
    Ok(report)
}

/// Scenario directory names under `repo/scenarios`, sorted.
pub fn discover(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("scenarios"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("scenario.yaml").is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

struct Suite {
    repo: PathBuf,
    rt: Runtime,
    pool: tokio::sync::Mutex<Option<Arc<NodePool>>>,
    mode: BlessMode,
    color: bool,
    reporter: Reporter,
    runtime: RuntimeKind,
}

static SUITE: OnceLock<Suite> = OnceLock::new();
static POOL_ERROR: Mutex<Option<String>> = Mutex::new(None);

impl Suite {
    async fn pool(&self) -> Result<Arc<NodePool>, String> {
        let mut slot = self.pool.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        if let Some(e) = POOL_ERROR.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(e);
        }
        let opts = PoolOptions {
            repo_root: self.repo.clone(),
            nodes: 1,
        };
        match NodePool::start(&opts, &|e| self.reporter.event(&Event::Session(e))).await {
            Ok(p) => {
                let p = Arc::new(p);
                *slot = Some(p.clone());
                Ok(p)
            }
            Err(e) => {
                let msg = format!(
                    "the node pool did not start: {}",
                    sgsim_cluster::docker::error_chain(&e)
                );
                *POOL_ERROR.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
                Err(msg)
            }
        }
    }

    async fn shutdown(&self) {
        let pool = self.pool.lock().await.take();
        if let Some(p) = pool {
            match Arc::try_unwrap(p) {
                Ok(p) => p.shutdown().await,
                // A trial still runs on it (interrupted): remove its containers by label.
                Err(p) => p.remove_everything().await,
            }
        }
    }
}

/// Runs one trial; the error text is what libtest-mimic prints.
async fn trial(s: &Suite, name: &str) -> Result<(), String> {
    let rel = PathBuf::from("scenarios").join(name);
    let inp = input::load_in(&s.repo, &rel, &Default::default()).map_err(|e| e.to_string())?;
    let golden_dir = s.repo.join("golden").join(name);
    let (files, mismatches) = match &inp.scenario {
        Err(e) => {
            if !e.is_expected() {
                return Err(format!("the scenario is invalid:\n{}", e.diagnostics().render_plain()));
            }
            (golden::files_for_error(e), Vec::new())
        }
        Ok(sc) => {
            if let Some(err) = &sc.expect().error {
                return Err(format!("the scenario expects the error `{err}`, but it validated"));
            }
            if s.runtime == RuntimeKind::Fake {
                let rec = run_fake(sc, &format!("fake-{name}"), &|_| {}).await?;
                let report = check_fake_goldens(sc, &rec, &golden_dir).map_err(|e| e.to_string())?;
                let mut failure = String::new();
                if !report.ok() {
                    failure.push_str(&report.render(name, s.color));
                }
                for m in expectation_mismatches(sc, &rec) {
                    failure.push_str(&format!("unexpected outcome: {m}\n"));
                }
                return if failure.is_empty() { Ok(()) } else { Err(failure) };
            }
            let pool = s.pool().await?;
            let cluster = pool
                .cluster_for_scenario(sc, &|_| {})
                .await
                .map_err(|e| sgsim_cluster::docker::error_chain(&e))?;
            let opts = sgsim_cluster::runner::RunOptions {
                task_prefix: format!("{}-{name}", pool.run_id()),
                image_entrypoint: Some(cluster.image_entrypoint()),
                ..Default::default()
            };
            let rec =
                sgsim_cluster::runner::run(cluster.client(), cluster.dialer(), pool.delegate(), sc, &opts, &|_| {})
                    .await;
            cluster.shutdown().await;
            let rec = rec.map_err(|e| sgsim_cluster::docker::error_chain(&e))?;
            let files = golden::files_for_run(sc, &rec).map_err(|e| e.to_string())?;
            (files, expectation_mismatches(sc, &rec))
        }
    };
    let report = golden::check(&golden_dir, &files, s.mode).map_err(|e| e.to_string())?;
    let mut failure = String::new();
    if !report.ok() {
        failure.push_str(&report.render(name, s.color));
    }
    for m in mismatches {
        failure.push_str(&format!("unexpected outcome: {m}\n"));
    }
    if failure.is_empty() { Ok(()) } else { Err(failure) }
}

/// Runs the suite with libtest-mimic arguments (filters, --list, --exact, --test-threads …) on
/// the Docker runtime.
pub fn run(args: &Arguments) -> Conclusion {
    run_with(args, RuntimeKind::Docker)
}

/// Whether a trial is ignored on `runtime`: on the fake runtime, scenarios whose `fake.skip`
/// says they need real containers.
fn ignored_on(repo: &Path, name: &str, runtime: RuntimeKind) -> bool {
    if runtime != RuntimeKind::Fake {
        return false;
    }
    let rel = PathBuf::from("scenarios").join(name);
    match input::load_in(repo, &rel, &Default::default()) {
        Ok(inp) => inp.scenario.as_ref().is_ok_and(|sc| sc.header.fake.skip.is_some()),
        Err(_) => false,
    }
}

/// libtest flags that take a value in the next argument.
const VALUE_FLAGS: &[&str] = &["--test-threads", "--skip", "--format", "--color", "--logfile", "-Z"];

/// The suite's arguments from the command line. Like libtest, any number of name filters may be
/// given (`cargo test --test conformance -- dind k8s-oom`): a trial runs when it matches one of
/// them (with `--exact`, equals one). libtest-mimic takes a single filter, so the filters are
/// returned apart and [`run_filtered`] applies them.
pub fn arguments_from_env() -> (Arguments, Vec<String>) {
    split_filters(std::env::args().collect())
}

fn split_filters(argv: Vec<String>) -> (Arguments, Vec<String>) {
    let mut rest = Vec::with_capacity(argv.len());
    let mut filters = Vec::new();
    let mut it = argv.into_iter();
    if let Some(prog) = it.next() {
        rest.push(prog);
    }
    while let Some(a) = it.next() {
        if VALUE_FLAGS.contains(&a.as_str()) {
            rest.push(a);
            if let Some(v) = it.next() {
                rest.push(v);
            }
        } else if a.starts_with('-') {
            rest.push(a);
        } else {
            filters.push(a);
        }
    }
    // One filter: libtest-mimic's own (its summary then counts the filtered-out trials).
    if filters.len() == 1 {
        rest.append(&mut filters);
    }
    (Arguments::from_iter(rest), filters)
}

/// [`run_with`] keeping only the trials that match one of `filters` (all when empty).
pub fn run_filtered(args: &Arguments, filters: Vec<String>, runtime: RuntimeKind) -> Conclusion {
    let _ = FILTERS.set(filters);
    run_with(args, runtime)
}

static FILTERS: OnceLock<Vec<String>> = OnceLock::new();

fn selected(name: &str, args: &Arguments) -> bool {
    let filters = FILTERS.get().map(Vec::as_slice).unwrap_or_default();
    filters.is_empty()
        || filters.iter().any(|f| {
            if args.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        })
}

/// [`run`] on the given runtime.
pub fn run_with(args: &Arguments, runtime: RuntimeKind) -> Conclusion {
    let repo = input::repo_root();
    let mode = match golden::bless_mode() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(crate::exit::USAGE);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let color = console::colors_enabled_stderr() && std::env::var_os("NO_COLOR").is_none();
    let suite = SUITE.get_or_init(|| Suite {
        repo: repo.clone(),
        rt,
        pool: tokio::sync::Mutex::new(None),
        mode,
        color,
        reporter: Reporter::new(color, false),
        runtime,
    });
    // Ctrl-C or SIGTERM: remove everything the suite started, then exit.
    suite.rt.spawn(async {
        crate::interrupted().await;
        eprintln!("interrupted: removing the nodes of this run");
        if let Some(s) = SUITE.get() {
            s.shutdown().await;
        }
        std::process::exit(crate::exit::INTERRUPTED);
    });
    let trials: Vec<Trial> = discover(&repo)
        .into_iter()
        .filter(|name| selected(name, args))
        .map(|name| {
            let n = name.clone();
            let ignored = ignored_on(&repo, &name, runtime);
            Trial::test(name, move || {
                let s = SUITE.get().ok_or_else(|| Failed::from("suite not initialized"))?;
                let started = Instant::now();
                let r = s.rt.block_on(trial(s, &n));
                tracing::debug!("trial {n} took {:?}", started.elapsed());
                r.map_err(Failed::from)
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    let conclusion = libtest_mimic::run(args, trials);
    suite.rt.block_on(suite.shutdown());
    conclusion
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn several_filters_and_value_flags() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (args, filters) = split_filters(argv(&[
            "conformance",
            "dind",
            "--test-threads",
            "2",
            "k8s-oom",
            "--exact",
            "--skip",
            "x",
        ]));
        assert_eq!(filters, ["dind", "k8s-oom"]);
        assert_eq!(args.filter, None);
        assert_eq!(args.test_threads, Some(2));
        assert!(args.exact);
        assert_eq!(args.skip, ["x"]);
        let (_, none) = split_filters(argv(&["conformance", "--list"]));
        assert!(none.is_empty());
        let (one, rest) = split_filters(argv(&["conformance", "--exact", "dind-basic"]));
        assert_eq!((one.filter.as_deref(), rest.len()), (Some("dind-basic"), 0));
    }
}
