//! The conformance suite: one libtest-mimic trial per directory of `scenarios/`, shared by
//! `cargo test` (tests/conformance.rs, tests/conformance_fake.rs) and `sgsim test`.
//!
//! Every trial goes through [`check::run_and_check`] on the suite's one [`Runtime`]: on the Docker
//! runtime the trials of a process share a warm node pool (started on first need, removed at the
//! end, also on Ctrl-C), and each trial gets its own cluster (API server, scheduler, kubelets) and pod.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use libtest_mimic::{Arguments, Conclusion, Failed, Trial};
use sgsim_cluster::runtime::{RunSettings, Runtime};
use tokio::runtime::Runtime as Tokio;

use crate::check;
use crate::golden_store::{self, BlessMode};
use crate::junit::{self, TrialRecord, TrialStatus};
use crate::report::TrialReport;
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
    /// Print nextest-like lines as trials end.
    lines: bool,
    records: Mutex<Vec<TrialRecord>>,
    /// Where the HTML report's trials go (only with `--report`).
    report_dir: Option<PathBuf>,
}

impl Suite {
    /// `conformance-docker`, `conformance-fake` or `conformance-kube`.
    fn suite_name(&self) -> String {
        format!("conformance-{}", self.runtime.name())
    }

    /// Records how a trial ended and, in lines mode, prints its line (and a failure's text; no
    /// line for a skipped trial, as nextest prints none: the summary counts it).
    fn record(&self, record: TrialRecord, shown: Option<&str>, details: Details) {
        if let Some(dir) = &self.report_dir {
            let trial = TrialReport {
                name: record.name.clone(),
                suite: self.suite_name(),
                status: record.status.clone(),
                secs: record.secs,
                started_at: details.started_at,
                files: details.files,
                diffs: details.diffs,
                mismatches: details.mismatches,
                images: details.images,
            };
            if let Err(e) = crate::report::add(dir, &trial) {
                eprintln!(
                    "warning: adding {} to the report in {}: {e}",
                    record.name,
                    dir.display()
                );
            }
        }
        if self.lines && !matches!(record.status, TrialStatus::Skip(_)) {
            crate::output::out_line(&status_line(&record, self.color));
            if let Some(text) = shown {
                crate::output::out(text);
            }
        }
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }
}

/// A trial's line as nextest prints it: `        PASS [   1.234s] dind-basic`.
pub fn status_line(r: &TrialRecord, color: bool) -> String {
    let (word, style) = match r.status {
        TrialStatus::Pass => ("PASS", console::Style::new().green().bold()),
        TrialStatus::Fail(_) => ("FAIL", console::Style::new().red().bold()),
        TrialStatus::Skip(_) => ("SKIP", console::Style::new().yellow().bold()),
    };
    let word = format!("{word:>12}");
    let word = if color {
        style.force_styling(true).apply_to(word).to_string()
    } else {
        word
    };
    format!("{word} [{:>8.3}s] {}", r.secs, r.name)
}

/// The summary after the trials, as nextest prints it, with the failed trials listed again.
pub fn summary(records: &[TrialRecord], secs: f64, color: bool) -> String {
    let c = junit::counts(records);
    let mut out = String::from("------------\n");
    let head = format!("{:>12}", "Summary");
    let head = if color {
        console::Style::new()
            .bold()
            .force_styling(true)
            .apply_to(head)
            .to_string()
    } else {
        head
    };
    out.push_str(&format!(
        "{head} [{secs:>8.3}s] {} {} run: {} passed, {} failed, {} skipped\n",
        c.run,
        if c.run == 1 { "test" } else { "tests" },
        c.passed,
        c.failed,
        c.skipped
    ));
    for r in records.iter().filter(|r| matches!(r.status, TrialStatus::Fail(_))) {
        out.push_str(&status_line(r, color));
        out.push('\n');
    }
    out
}

/// A failed trial: the text shown (colored when the suite colors) and the plain text.
struct TrialFailure {
    shown: String,
    plain: String,
}

impl From<String> for TrialFailure {
    fn from(text: String) -> Self {
        TrialFailure {
            shown: text.clone(),
            plain: text,
        }
    }
}

/// What the report shows of a trial beyond its status (empty when there is no report, or the
/// trial ended before its run).
#[derive(Debug, Default)]
struct Details {
    started_at: String,
    files: std::collections::BTreeMap<String, String>,
    diffs: Vec<String>,
    mismatches: Vec<String>,
    images: Vec<crate::report::ImageRow>,
}

/// Runs one trial.
async fn trial(s: &Suite, name: &str, details: &mut Details) -> Result<(), TrialFailure> {
    let rel = PathBuf::from("scenarios").join(name);
    let inp = input::load_in(&s.repo, &rel, &Default::default()).map_err(|e| e.to_string())?;
    let golden_dir = s.repo.join("golden").join(name);
    let settings = RunSettings {
        name: Some(name.to_string()),
        keep_pod: false,
        // A trial runs the images its scenario pins, whatever the host daemon holds.
        host_images: false,
        pull: sgsim_cluster::images::PullMode::Never,
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
    if s.report_dir.is_some() {
        if let (Ok(sc), Some(out)) = (inp.scenario.as_ref(), verdict.output.as_ref()) {
            details.files = sgsim_core::verdict::golden_files(sc, &out.record).unwrap_or_default();
            details.images = out.images.iter().map(Into::into).collect();
        }
        details.diffs = verdict
            .golden
            .as_ref()
            .map(|g| crate::report::diff_texts(&g.diffs))
            .unwrap_or_default();
        details.mismatches = verdict.mismatches.clone();
    }
    if verdict.passed() {
        Ok(())
    } else {
        Err(TrialFailure {
            shown: verdict.failure_text(name, s.color),
            plain: verdict.failure_text(name, false),
        })
    }
}

/// What a suite run prints and writes besides libtest's report.
#[derive(Debug, Clone, Default)]
pub struct SuiteOutput {
    /// nextest-like lines (`PASS [   1.234s] name`) and a summary instead of libtest's output.
    pub lines: bool,
    /// Write the run as JUnit XML to this file.
    pub junit: Option<PathBuf>,
    /// Write a static HTML report into this directory (`index.html`).
    pub report: Option<PathBuf>,
    /// Start the report empty (`sgsim test`); else add to what the directory holds (cargo test
    /// and nextest, whose processes each add their trials).
    pub fresh_report: bool,
    /// The cluster of the kube runtime.
    pub kube: sgsim_cluster::kube_runtime::KubeTarget,
}

impl SuiteOutput {
    /// For `cargo test`: libtest's output; JUnit to `$SGSIM_JUNIT` when set.
    pub fn from_env() -> Self {
        SuiteOutput {
            lines: false,
            junit: std::env::var_os("SGSIM_JUNIT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            report: std::env::var_os("SGSIM_REPORT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            fresh_report: false,
            kube: sgsim_cluster::kube_runtime::KubeTarget::from_env(),
        }
    }
}

/// Runs the suite with libtest-mimic arguments (filters, --list, --exact, --test-threads …) on
/// the Docker runtime.
pub fn run(args: &Arguments) -> Conclusion {
    run_with(args, RuntimeKind::Docker)
}

/// Why a trial is ignored on `runtime` (`None`: it runs): on the fake runtime, scenarios whose
/// `fake.skip` says they need real containers; on the kube runtime, scenarios that need the
/// embedded cluster ([`sgsim_cluster::kube_runtime::not_applicable`]).
fn ignored_on(repo: &Path, name: &str, runtime: RuntimeKind) -> Option<String> {
    if runtime == RuntimeKind::Docker {
        return None;
    }
    let rel = PathBuf::from("scenarios").join(name);
    let inp = input::load_in(repo, &rel, &Default::default()).ok()?;
    let sc = inp.scenario.as_ref().ok()?;
    match runtime {
        RuntimeKind::Fake => sc
            .header
            .fake
            .skip
            .as_ref()
            .map(|_| format!("{name} needs containers (fake.skip)")),
        RuntimeKind::Kube => sgsim_cluster::kube_runtime::not_applicable(sc),
        RuntimeKind::Docker => None,
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
    run_selected(args, &filters, runtime, &SuiteOutput::from_env())
}

/// [`run_filtered`] printing and writing what `output` asks for (and on its kube target).
pub fn run_filtered_with(
    args: &Arguments,
    filters: Vec<String>,
    runtime: RuntimeKind,
    output: &SuiteOutput,
) -> Conclusion {
    run_selected(args, &filters, runtime, output)
}

/// Whether `name` matches a libtest name filter: equal to it with `--exact`, else containing it.
fn name_matches(name: &str, filter: &str, exact: bool) -> bool {
    if exact { name == filter } else { name.contains(filter) }
}

fn selected(name: &str, args: &Arguments, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name_matches(name, f, args.exact))
}

/// Whether libtest-mimic's own filter (`args.filter`, `--exact`, `--skip`) keeps `name`.
fn libtest_selects(name: &str, args: &Arguments) -> bool {
    args.filter.as_ref().is_none_or(|f| name_matches(name, f, args.exact))
        && !args.skip.iter().any(|s| name_matches(name, s, args.exact))
}

/// [`run`] on the given runtime.
pub fn run_with(args: &Arguments, runtime: RuntimeKind) -> Conclusion {
    run_selected(args, &[], runtime, &SuiteOutput::from_env())
}

fn run_selected(args: &Arguments, filters: &[String], kind: RuntimeKind, output: &SuiteOutput) -> Conclusion {
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
    let color = crate::output::color_stderr();
    let reporter = Arc::new(Reporter::new(color, false));
    let lines = output.lines && !args.list;
    let color = if lines { crate::output::color_stdout() } else { color };
    let suite = Arc::new(Suite {
        repo: repo.clone(),
        rt,
        runtime: crate::new_runtime(kind, &output.kube, &reporter),
        mode,
        color,
        lines,
        records: Mutex::new(Vec::new()),
        report_dir: output.report.clone().filter(|_| !args.list),
    });
    if let Some(dir) = suite.report_dir.as_ref().filter(|_| output.fresh_report)
        && let Err(e) = crate::report::clear(dir)
    {
        eprintln!("error: clearing the report in {}: {e}", dir.display());
        std::process::exit(crate::exit::INFRASTRUCTURE);
    }
    let started_at = sgsim_cluster::apiserver::now_rfc3339();
    let started = Instant::now();
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
            let why_ignored = ignored_on(&repo, &name, kind);
            let ignored = why_ignored.is_some();
            if let Some(why) = why_ignored
                .filter(|_| !args.ignored && !args.include_ignored && !args.list && libtest_selects(&name, args))
            {
                // Counted in the summary and JUnit and shown in the report (no line, as nextest).
                suite.record(
                    TrialRecord {
                        name: name.clone(),
                        status: TrialStatus::Skip(why),
                        secs: 0.0,
                    },
                    None,
                    Details {
                        started_at: started_at.clone(),
                        ..Details::default()
                    },
                );
            }
            let s = suite.clone();
            let n = name.clone();
            Trial::test(name, move || {
                let started = Instant::now();
                let mut details = Details {
                    started_at: sgsim_cluster::apiserver::now_rfc3339(),
                    ..Details::default()
                };
                let r = s.rt.block_on(trial(&s, &n, &mut details));
                let secs = started.elapsed().as_secs_f64();
                tracing::debug!("trial {n} took {secs:.3}s");
                match r {
                    Ok(()) => {
                        s.record(
                            TrialRecord {
                                name: n.clone(),
                                status: TrialStatus::Pass,
                                secs,
                            },
                            None,
                            details,
                        );
                        Ok(())
                    }
                    Err(f) => {
                        s.record(
                            TrialRecord {
                                name: n.clone(),
                                status: TrialStatus::Fail(f.plain),
                                secs,
                            },
                            Some(&f.shown),
                            details,
                        );
                        Err(Failed::from(f.shown))
                    }
                }
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    let mut libtest_args = args.clone();
    if lines {
        // Our lines replace libtest's report.
        libtest_args.logfile = Some("/dev/null".to_owned());
    }
    let conclusion = libtest_mimic::run(&libtest_args, trials);
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // The trials ended because the signal handler removed their nodes: it exits the process
        // with 130 once the removal is done; the trials' failures are not the suite's verdict.
        // Bounded: should the removal hang, exit anyway.
        std::thread::sleep(std::time::Duration::from_secs(60));
        crate::finish_process();
        std::process::exit(crate::exit::INTERRUPTED);
    }
    suite.rt.block_on(suite.runtime.shutdown());
    let secs = started.elapsed().as_secs_f64();
    let mut records = std::mem::take(&mut *suite.records.lock().unwrap_or_else(|e| e.into_inner()));
    records.sort_by(|a, b| a.name.cmp(&b.name));
    if lines {
        crate::output::out(&summary(&records, secs, color));
    }
    let suite_name = suite.suite_name();
    if let Some(dir) = &suite.report_dir {
        match crate::report::write(dir, &format!("sgsim {suite_name}")) {
            Ok(path) => eprintln!("report: {}", path.display()),
            Err(e) => {
                eprintln!("error: writing the report into {}: {e}", dir.display());
                crate::finish_process();
                std::process::exit(crate::exit::INFRASTRUCTURE);
            }
        }
    }
    if let Some(path) = output.junit.as_ref().filter(|_| !args.list) {
        let xml = junit::render(&suite_name, &started_at, secs, &records);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = golden_store::write_atomically(path, xml.as_bytes()) {
            eprintln!("error: writing the JUnit report {}: {e}", path.display());
            crate::finish_process();
            std::process::exit(crate::exit::INFRASTRUCTURE);
        }
    }
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
