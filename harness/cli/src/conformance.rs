//! The conformance suite: one libtest-mimic trial per directory of `scenarios/`, shared by
//! `cargo test` (tests/conformance.rs, tests/conformance_fake.rs) and `sgsim test`.
//!
//! Every trial goes through [`check::run_and_check`] on the suite's one [`Runtime`]: on the Docker
//! runtime the trials of a process share a warm node pool (started on first need, removed at the
//! end, also on Ctrl-C), and each trial gets its own cluster (API server, scheduler, kubelets) and pod.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use libtest_mimic::{Arguments, Conclusion, Failed, Trial};
use sgsim_cluster::runtime::{RunSettings, Runtime};
use tokio::runtime::Runtime as Tokio;

use crate::check;
use crate::golden_store::{self, BlessMode};
use crate::reporter::Reporter;
use crate::{RuntimeKind, input};

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

/// What the trials of one suite share (no globals: each trial holds an `Arc` of it).
struct Suite {
    repo: PathBuf,
    rt: Tokio,
    runtime: Box<dyn Runtime>,
    mode: BlessMode,
    color: bool,
}

/// Runs one trial; the error text is what libtest-mimic prints.
async fn trial(s: &Suite, name: &str) -> Result<(), String> {
    let rel = PathBuf::from("scenarios").join(name);
    let inp = input::load_in(&s.repo, &rel, &Default::default()).map_err(|e| e.to_string())?;
    let golden_dir = s.repo.join("golden").join(name);
    let settings = RunSettings {
        name: Some(name.to_string()),
        keep_pod: false,
        // A trial runs the images its scenario pins, whatever the host daemon holds.
        host_images: false,
    };
    let verdict = check::run_and_check(
        inp.scenario.as_ref(),
        s.runtime.as_ref(),
        Some(&golden_dir),
        s.mode,
        &settings,
        &|_| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    if verdict.passed() {
        Ok(())
    } else {
        Err(verdict.failure_text(name, s.color))
    }
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
    run_selected(args, &filters, runtime)
}

fn selected(name: &str, args: &Arguments, filters: &[String]) -> bool {
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
    run_selected(args, &[], runtime)
}

fn run_selected(args: &Arguments, filters: &[String], kind: RuntimeKind) -> Conclusion {
    let repo = input::repo_root();
    let mode = match golden_store::bless_mode() {
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
    let reporter = Arc::new(Reporter::new(color, false));
    let suite = Arc::new(Suite {
        repo: repo.clone(),
        rt,
        runtime: crate::new_runtime(kind, &reporter),
        mode,
        color,
    });
    // Ctrl-C or SIGTERM: remove everything the suite started, then exit.
    let on_signal = suite.clone();
    suite.rt.spawn(async move {
        crate::interrupted().await;
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        eprintln!("interrupted: removing the nodes of this run");
        on_signal.runtime.shutdown().await;
        crate::finish_process();
        std::process::exit(crate::exit::INTERRUPTED);
    });
    let trials: Vec<Trial> = discover(&repo)
        .into_iter()
        .filter(|name| selected(name, args, filters))
        .map(|name| {
            let ignored = ignored_on(&repo, &name, kind);
            let s = suite.clone();
            let n = name.clone();
            Trial::test(name, move || {
                let started = Instant::now();
                let r = s.rt.block_on(trial(&s, &n));
                tracing::debug!("trial {n} took {:?}", started.elapsed());
                r.map_err(Failed::from)
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    let conclusion = libtest_mimic::run(args, trials);
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // The trials ended because the signal handler removed their nodes: it exits the process
        // with 130 once the removal is done; the trials' failures are not the suite's verdict.
        // Bounded: should the removal hang, exit anyway.
        std::thread::sleep(std::time::Duration::from_secs(60));
        crate::finish_process();
        std::process::exit(crate::exit::INTERRUPTED);
    }
    suite.rt.block_on(suite.runtime.shutdown());
    conclusion
}

/// Set by the signal handler of [`run_selected`] as soon as Ctrl-C or SIGTERM arrives.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
