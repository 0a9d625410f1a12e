//! `--report DIR`: a static HTML report of a run or a suite (`DIR/index.html`, one file, no
//! scripts, nothing fetched) that a nightly job can publish. Per scenario: the outcome, the golden
//! diffs and unexpected outcomes, the Initialize log as an events timeline, the step logs, the
//! pod, and the image each step ran as. Failed trials come first and open; passed ones closed.
//! Everything is HTML-escaped and goes through the secret masking of [`crate::output::mask`].
//!
//! Each trial is also kept as `DIR/trials/<name>.json`, and the page is built from all of them:
//! several processes (nextest runs each trial in its own, shards run on several machines) add to
//! one report, and `sgsim report DIR` builds the page again from what the directory holds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sgsim_cluster::runtime::StepImage;
use sgsim_core::golden::GoldenDiff;

use crate::junit::TrialStatus;

/// The image a step ran as, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRow {
    /// Step identifier.
    pub step: String,
    /// The image the step group names.
    pub requested: String,
    /// What ran.
    pub ran_as: String,
    /// `fixtures.images`, `host` or `stand-in`.
    pub source: String,
}

impl From<&StepImage> for ImageRow {
    fn from(i: &StepImage) -> Self {
        ImageRow {
            step: i.step.clone(),
            requested: i.requested.clone(),
            ran_as: i.ran_as.clone(),
            source: i.source.to_owned(),
        }
    }
}

/// What the report shows of one scenario.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrialReport {
    /// The scenario.
    pub name: String,
    /// Which suite ran it (`conformance-docker`, `conformance-fake`, `run`): one report may hold
    /// the same scenario from several.
    #[serde(default)]
    pub suite: String,
    /// How it ended.
    pub status: TrialStatus,
    /// How long it took, in seconds.
    pub secs: f64,
    /// The run's normalized files (pod.yaml, initialize.log, result.yaml, steps/*.log).
    pub files: BTreeMap<String, String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Golden files that differ, each as a unified diff.
    pub diffs: Vec<String>,
    /// Differences between the outcome and `expect:`.
    pub mismatches: Vec<String>,
    /// What each step's image ran as.
    pub images: Vec<ImageRow>,
}

/// The unified diffs of the golden files that differ.
pub fn diff_texts(diffs: &[GoldenDiff]) -> Vec<String> {
    diffs.iter().map(|d| d.render(false)).collect()
}

/// `text` with the run's secrets masked, escaped for HTML (the JUnit writer's escaping: XML's
/// entities, control characters and ANSI escapes dropped).
fn esc(text: &str) -> String {
    crate::junit::escape(&crate::output::mask(text))
}

/// An anchor id for a scenario name.
fn anchor(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    format!("t-{id}")
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
header{padding:16px 24px;background:#24292f;color:#fff}
header h1{margin:0 0 4px;font-size:20px}
main{padding:16px 24px}
table.summary{border-collapse:collapse;margin-bottom:24px}
table.summary td,table.summary th{padding:3px 12px;border-bottom:1px solid #d0d7de;text-align:left}
.badge{display:inline-block;min-width:42px;text-align:center;font-weight:700;border-radius:4px;padding:0 6px;color:#fff}
.PASS{background:#1a7f37}.FAIL{background:#cf222e}.SKIP{background:#9a6700}
section.trial{border:1px solid #d0d7de;border-radius:6px;margin:0 0 16px;padding:0 16px 8px}
section.trial>h2{font-size:16px;margin:12px 0}
h3{font-size:14px;margin:12px 0 6px}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;margin:0;font:12px/1.4 ui-monospace,monospace}
pre.diff span{display:block}
pre.diff .del{background:#ffd7d5;color:#82071e}
pre.diff .ins{background:#ccffd8;color:#055d20}
pre.diff .hunk{color:#0550ae}
ol.timeline{list-style:none;margin:0;padding:0 0 0 12px;border-left:4px solid #0969da}
ol.timeline li{font:12px/1.4 ui-monospace,monospace;padding:1px 8px;white-space:pre-wrap}
ol.timeline li.warn{background:#fff8c5}
ul.mismatch li{color:#cf222e}
";

fn status_word(s: &TrialStatus) -> &'static str {
    match s {
        TrialStatus::Pass => "PASS",
        TrialStatus::Fail(_) => "FAIL",
        TrialStatus::Skip(_) => "SKIP",
    }
}

fn diff_html(diff: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "file"
        } else if line.starts_with('+') {
            "ins"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        let _ = write!(out, "<span class=\"{class}\">{}</span>", esc(line));
    }
    out.push_str("</pre>");
    out
}

fn timeline_html(log: &str) -> String {
    let mut out = String::from("<ol class=\"timeline\">");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let warn = ["Warning", "Failed", "BackOff", "Error", "WARN"]
            .iter()
            .any(|w| line.contains(w));
        let class = if warn { " class=\"warn\"" } else { "" };
        let _ = write!(out, "<li{class}>{}</li>", esc(line));
    }
    out.push_str("</ol>");
    out
}

fn trial_html(t: &TrialReport) -> String {
    let word = status_word(&t.status);
    let failed = matches!(t.status, TrialStatus::Fail(_));
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"trial\" id=\"{}\"><h2><span class=\"badge {word}\">{word}</span> {} <small>{:.3}s</small></h2>",
        t.key(),
        esc(&t.name),
        t.secs
    );
    if !t.suite.is_empty() {
        let _ = write!(out, "<p class=\"suite\">{}</p>", esc(&t.suite));
    }
    match &t.status {
        TrialStatus::Skip(why) => {
            let _ = write!(out, "<p>skipped: {}</p>", esc(why));
        }
        TrialStatus::Fail(text) if t.diffs.is_empty() && t.mismatches.is_empty() => {
            let _ = write!(out, "<h3>Failure</h3><pre>{}</pre>", esc(text));
        }
        _ => {}
    }
    if !t.mismatches.is_empty() {
        out.push_str("<h3>Unexpected outcome</h3><ul class=\"mismatch\">");
        for m in &t.mismatches {
            let _ = write!(out, "<li>{}</li>", esc(m));
        }
        out.push_str("</ul>");
    }
    if !t.diffs.is_empty() {
        out.push_str("<h3>Golden diffs</h3>");
        for d in &t.diffs {
            out.push_str(&diff_html(d));
        }
    }
    if !t.images.is_empty() {
        out.push_str("<h3>Images</h3><table class=\"summary\"><tr><th>step</th><th>requested</th><th>ran as</th><th>source</th></tr>");
        for i in &t.images {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&i.step),
                esc(&i.requested),
                esc(&i.ran_as),
                esc(&i.source)
            );
        }
        out.push_str("</table>");
    }
    let open = if failed { " open" } else { "" };
    if let Some(log) = t.files.get("initialize.log") {
        let _ = write!(
            out,
            "<details{open}><summary><h3 style=\"display:inline\">Events (Initialize log)</h3></summary>{}</details>",
            timeline_html(log)
        );
    }
    for (name, text) in t.files.iter().filter(|(n, _)| n.starts_with("steps/")) {
        let _ = write!(
            out,
            "<details{open}><summary>Step log {}</summary><pre>{}</pre></details>",
            esc(name),
            esc(text)
        );
    }
    for name in ["result.yaml", "pod.yaml"] {
        if let Some(text) = t.files.get(name) {
            let _ = write!(
                out,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(name),
                esc(text)
            );
        }
    }
    out.push_str("</section>");
    out
}

/// The whole report page.
pub fn render(title: &str, trials: &[TrialReport]) -> String {
    let started_at = trials.iter().map(|t| t.started_at.as_str()).min().unwrap_or("");
    let secs: f64 = trials.iter().map(|t| t.secs).sum();
    let mut sorted: Vec<&TrialReport> = trials.iter().collect();
    // Failures first, then passes, then skips; by name within each.
    sorted.sort_by_key(|t| {
        let rank = match t.status {
            TrialStatus::Fail(_) => 0,
            TrialStatus::Pass => 1,
            TrialStatus::Skip(_) => 2,
        };
        (rank, t.name.clone(), t.suite.clone())
    });
    let count = |w: &str| sorted.iter().filter(|t| status_word(&t.status) == w).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
    let _ = write!(
        out,
        "<header><h1>{}</h1><div>started {} · {:.3}s of trials · {} passed, {} failed, {} skipped</div></header><main>",
        esc(title),
        esc(started_at),
        secs,
        count("PASS"),
        count("FAIL"),
        count("SKIP")
    );
    out.push_str("<table class=\"summary\"><tr><th></th><th>scenario</th><th>suite</th><th>time</th></tr>");
    for t in &sorted {
        let word = status_word(&t.status);
        let _ = write!(
            out,
            "<tr><td><span class=\"badge {word}\">{word}</span></td><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{:.3}s</td></tr>",
            t.key(),
            esc(&t.name),
            esc(&t.suite),
            t.secs
        );
    }
    out.push_str("</table>");
    for t in &sorted {
        out.push_str(&trial_html(t));
    }
    out.push_str("</main></body></html>\n");
    out
}

impl TrialReport {
    /// The trial's anchor in the page and its fragment's name: suite and scenario.
    fn key(&self) -> String {
        if self.suite.is_empty() {
            anchor(&self.name)
        } else {
            anchor(&format!("{}-{}", self.suite, self.name))
        }
    }
}

/// File name of a trial's fragment.
fn fragment_name(name: &str) -> String {
    format!("{name}.json")
}

/// Removes the fragments under `dir` (a new report starts empty).
pub fn clear(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir.join("trials")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Keeps `trial` as a fragment under `dir` (atomically, replacing an earlier one of the same name).
pub fn add(dir: &Path, trial: &TrialReport) -> std::io::Result<()> {
    let trials = dir.join("trials");
    std::fs::create_dir_all(&trials)?;
    let json = serde_json::to_vec_pretty(trial).map_err(std::io::Error::other)?;
    crate::golden_store::write_atomically(&trials.join(fragment_name(&trial.key())), &json)
}

/// The fragments under `dir`; unreadable ones are named in the error.
pub fn load(dir: &Path) -> std::io::Result<Vec<TrialReport>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir.join("trials")) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = std::fs::read(&p)?;
        let t: TrialReport =
            serde_json::from_slice(&bytes).map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))?;
        out.push(t);
    }
    Ok(out)
}

/// Builds `dir/index.html` from the fragments under `dir` (atomically); returns the file.
pub fn write(dir: &Path, title: &str) -> std::io::Result<std::path::PathBuf> {
    write_page(dir, title, &load(dir)?)
}

/// Writes `dir/index.html` for `trials` (atomically); returns the file.
pub fn write_page(dir: &Path, title: &str, trials: &[TrialReport]) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("index.html");
    crate::golden_store::write_atomically(&path, render(title, trials).as_bytes())?;
    Ok(path)
}

/// Adds `trials` to the report in `dir` and builds the page again.
pub fn publish(dir: &Path, title: &str, trials: &[TrialReport]) -> std::io::Result<std::path::PathBuf> {
    for t in trials {
        add(dir, t)?;
    }
    write(dir, title)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(name: &str, status: TrialStatus) -> TrialReport {
        let mut files = BTreeMap::new();
        files.insert(
            "initialize.log".to_owned(),
            "Pulling image \"alpine\"\nWarning Failed <x>\n".to_owned(),
        );
        files.insert("steps/run.log".to_owned(), "hello <b>\n".to_owned());
        TrialReport {
            name: name.to_owned(),
            suite: String::new(),
            status,
            secs: 1.0,
            started_at: "2026-12-04T04:00:00Z".to_owned(),
            files,
            diffs: diff_texts(&[sgsim_core::golden::compare("result.yaml", Some("a: 1\n"), "a: 2\n")]),
            mismatches: vec!["status Failed, expected Success".to_owned()],
            images: Vec::new(),
        }
    }

    #[test]
    fn failures_first_escaped_with_their_diff_and_events_open() {
        let html = render(
            "sgsim <suite>",
            &[
                trial("b-pass", TrialStatus::Pass),
                trial("a-fail", TrialStatus::Fail("x".into())),
            ],
        );
        assert!(html.contains("<title>sgsim &lt;suite&gt;</title>"));
        assert!(html.find("id=\"t-a-fail\"").unwrap() < html.find("id=\"t-b-pass\"").unwrap());
        assert!(
            html.contains("<span class=\"del\">-a: 1</span><span class=\"ins\">+a: 2</span>"),
            "{html}"
        );
        assert!(html.contains("<li class=\"warn\">Warning Failed &lt;x&gt;</li>"));
        assert!(html.contains("hello &lt;b&gt;"));
        assert!(!html.contains("<b>"));
        assert_eq!(
            html.matches("<details open>").count(),
            2,
            "the failed trial's events and log are open"
        );
    }

    #[test]
    fn fragments_from_several_processes_make_one_page() {
        let dir = std::env::temp_dir().join(format!("sgsim-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        publish(&dir, "x", &[trial("one", TrialStatus::Pass)]).unwrap();
        let page = publish(&dir, "x", &[trial("two", TrialStatus::Fail("f".into()))]).unwrap();
        let html = std::fs::read_to_string(page).unwrap();
        assert!(html.contains("id=\"t-one\"") && html.contains("id=\"t-two\""));
        assert!(html.contains("1 passed, 1 failed, 0 skipped"));
        clear(&dir).unwrap();
        assert!(load(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
