//! The loop around the suite: `sgsim review` driven in a real terminal (tmux), unreferenced
//! goldens, and `sgsim test`'s nextest-like lines and JUnit report checked against the JUnit
//! schema (docs/schemas/junit.xsd).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sgsim-loop-{tag}-{}-{nanos}", std::process::id())
}

/// A temporary directory removed on drop (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Under CI a missing tool is a failure; elsewhere the test says so and passes.
fn missing_tool(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{what} is required under CI=true (scripts/setup.sh installs it)");
    eprintln!("skipped: {what} is not installed");
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if !p.to_string_lossy().ends_with(".new") {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A tmux server of its own (unique socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn pane(&self) -> String {
        let o = self
            .cmd()
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", "review"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until the pane shows `needle` `count` times.
    fn wait_for(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pane = self.pane();
            if pane.matches(needle).count() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {needle:?} x{count}; the pane:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn key(&self, k: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", "review", k])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux send-keys {k}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// A repo with one scenario `a` whose three files are pending, and a golden directory `orphan`
/// that no scenario produces.
fn review_repo(t: &TempDir) -> PathBuf {
    let r = t.0.join("repo");
    write(
        &r.join("scenarios/a/scenario.yaml"),
        "# only its presence matters here\n",
    );
    write(&r.join("golden/a/one.txt"), "one old\n");
    write(&r.join("golden/a/one.txt.new"), "one new\n");
    write(&r.join("golden/a/three.txt"), "three old\n");
    write(&r.join("golden/a/three.txt.new"), "three new\n");
    write(&r.join("golden/a/two.txt.new"), "two, a new file\n");
    write(&r.join("golden/orphan/x.txt"), "nobody makes me\n");
    r
}

#[test]
fn review_in_a_terminal_accepts_rejects_and_skips() {
    if Command::new("tmux").arg("-V").output().is_err() {
        missing_tool("tmux");
        return;
    }
    let t = TempDir::new("review");
    let r = review_repo(&t);
    let tmux = Tmux { socket: unique("tmux") };
    let rc = t.0.join("rc");
    let script = format!(
        "'{}' review --color always; echo $? > '{}'; sleep 120",
        env!("CARGO_BIN_EXE_sgsim"),
        rc.display()
    );
    let ok = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "review",
            "-x",
            "160",
            "-y",
            "60",
            "sh",
            "-c",
            &script,
        ])
        .env("SGSIM_REPO", &r)
        .env_remove("CI")
        .env_remove("NO_COLOR")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tmux new-session");
    // Files come sorted: one.txt, three.txt, two.txt.
    tmux.wait_for("a accept", 1);
    let pane = tmux.pane();
    assert!(pane.contains("[1/3] golden/a/one.txt"), "{pane}");
    assert!(
        pane.contains("-one old") && pane.contains("+one new"),
        "the diff is shown:\n{pane}"
    );
    tmux.key("a");
    tmux.wait_for("a accept", 2);
    assert!(tmux.pane().contains("[2/3] golden/a/three.txt"));
    tmux.key("r");
    tmux.wait_for("a accept", 3);
    assert!(tmux.pane().contains("[3/3] golden/a/two.txt (new file)"));
    tmux.key("s");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rc.exists() {
        assert!(Instant::now() < deadline, "review did not end:\n{}", tmux.pane());
        std::thread::sleep(Duration::from_millis(50));
    }
    let pane = tmux.pane();
    assert_eq!(std::fs::read_to_string(&rc).unwrap().trim(), "0", "{pane}");
    assert!(
        pane.contains("review done: 1 accepted, 1 rejected, 1 skipped"),
        "{pane}"
    );
    assert!(pane.contains("unreferenced: golden/orphan"), "{pane}");
    // Exactly the expected files.
    let g = r.join("golden/a");
    assert_eq!(std::fs::read_to_string(g.join("one.txt")).unwrap(), "one new\n");
    assert!(!g.join("one.txt.new").exists());
    assert_eq!(std::fs::read_to_string(g.join("three.txt")).unwrap(), "three old\n");
    assert!(!g.join("three.txt.new").exists());
    assert!(!g.join("two.txt").exists());
    assert_eq!(
        std::fs::read_to_string(g.join("two.txt.new")).unwrap(),
        "two, a new file\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(&g)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["one.txt", "three.txt", "two.txt.new"]);
    assert!(r.join("golden/orphan/x.txt").exists(), "warn removes nothing");
}

#[test]
fn unreferenced_goldens_are_rejected_or_deleted_on_request() {
    let t = TempDir::new("unreferenced");
    let r = review_repo(&t);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sgsim"))
            .arg("review")
            .args(args)
            .env("SGSIM_REPO", &r)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // No terminal and no input: nothing is decided, every pending file stays.
    let o = run(&["--unreferenced=reject"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains("unreferenced: golden/orphan (no scenario scenarios/orphan)"),
        "{out}"
    );
    assert!(out.contains("review done: 0 accepted, 0 rejected, 3 skipped"), "{out}");
    assert!(r.join("golden/a/one.txt.new").exists());
    let o = run(&["--unreferenced=delete", "nothing-matches"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("removed unreferenced golden/orphan"), "{out}");
    assert!(!r.join("golden/orphan").exists());
    assert!(
        r.join("golden/a/one.txt.new").exists(),
        "the filter kept scenario a out"
    );
    // Answers on stdin work without a terminal too.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .args(["review", "a"])
        .env("SGSIM_REPO", &r)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"a\na\na\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("review done: 3 accepted, 0 rejected, 0 skipped"), "{out}");
    assert_eq!(
        std::fs::read_to_string(r.join("golden/a/two.txt")).unwrap(),
        "two, a new file\n"
    );
}

/// A Python with xmlschema (the test venv's), or None.
fn python_with_xmlschema() -> Option<PathBuf> {
    for p in [repo().join("target/sgsim-venv/bin/python3"), PathBuf::from("python3")] {
        let ok = Command::new(&p)
            .args(["-c", "import xmlschema"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    None
}

fn validate(python: &Path, xml: &Path) -> Result<(), String> {
    let xsd = repo().join("docs/schemas/junit.xsd");
    let o = Command::new(python)
        .args([
            "-c",
            "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2])",
        ])
        .arg(&xsd)
        .arg(xml)
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// `sgsim test --runtime fake --color never ARGS…` on the repo `r`.
fn sgsim_test(r: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .args(["test", "--runtime", "fake", "--color", "never"])
        .args(args)
        .env("SGSIM_REPO", r)
        .env_remove("CI")
        .env_remove("SGSIM_BLESS")
        .output()
        .unwrap()
}

#[test]
fn sgsim_test_prints_nextest_lines_and_a_junit_report_that_validates() {
    let Some(python) = python_with_xmlschema() else {
        missing_tool("python3 with xmlschema (scripts/setup-test.sh puts it in target/sgsim-venv)");
        return;
    };
    let t = TempDir::new("junit");
    let r = suite_repo(&t);
    let xml = t.0.join("reports/junit.xml");
    let o = sgsim_test(&r, &["--junit".as_ref(), xml.as_os_str()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = |word: &str, name: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(&format!("{word} [")) && l.ends_with(&format!("s] {name}")))
    };
    assert!(line("PASS", "step-fails"), "{out}");
    assert!(line("FAIL", "step-fails-changed"), "{out}");
    assert!(out.contains("Summary ["), "{out}");
    assert!(out.contains("2 tests run: 1 passed, 1 failed, 1 skipped"), "{out}");
    assert!(!out.contains("test result:"), "libtest's report is replaced:\n{out}");
    let report = std::fs::read_to_string(&xml).unwrap();
    assert!(report.contains("<testcase name=\"step-fails-changed\""), "{report}");
    assert!(report.contains("<failure message="), "{report}");
    assert!(report.contains("result.yaml"), "the failure says which file:\n{report}");
    assert!(report.contains("<skipped message=\"background-step"), "{report}");
    validate(&python, &xml).unwrap_or_else(|e| panic!("{e}\n{report}"));
    // The schema bites: a testcase without its classname is refused.
    let broken = t.0.join("broken.xml");
    std::fs::write(&broken, report.replacen(" classname=\"sgsim.conformance.fake\"", "", 1)).unwrap();
    assert!(validate(&python, &broken).is_err());
}

/// A repo holding step-fails, a copy of it whose golden result.yaml no longer matches, and
/// background-step (skipped on the fake tier).
fn suite_repo(t: &TempDir) -> PathBuf {
    let r = t.0.join("repo");
    let src = repo();
    for (scenario, as_name) in [
        ("step-fails", "step-fails"),
        ("step-fails", "step-fails-changed"),
        ("background-step", "background-step"),
    ] {
        copy_dir(
            &src.join("scenarios").join(scenario),
            &r.join("scenarios").join(as_name),
        );
        copy_dir(&src.join("golden").join(scenario), &r.join("golden").join(as_name));
    }
    let result = r.join("golden/step-fails-changed/result.yaml");
    let text = std::fs::read_to_string(&result).unwrap();
    let changed = text.replacen("exitCode: 0", "exitCode: 99", 1);
    assert_ne!(changed, text);
    std::fs::write(&result, changed).unwrap();
    r
}

/// Screenshot of `html` in headless Chromium; returns the counts of the report's marker colors:
/// deleted and inserted diff lines, the events timeline's border.
fn screenshot_colors(t: &TempDir, html: &Path, tag: &str) -> (usize, usize, usize) {
    let png = t.0.join(format!("{tag}.png"));
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            t.0.join(format!("chromium-{tag}")).display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(png.exists(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("python3")
        .arg(repo().join("tests/report/pngcount.py"))
        .arg(&png)
        .args(["del=ffd7d5", "ins=ccffd8", "timeline=0969da"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let get = |k: &str| -> usize {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {out}"))
    };
    (get("del"), get("ins"), get("timeline"))
}

#[test]
fn the_html_report_shows_a_failing_trials_diff_and_events_on_screen() {
    if Command::new("chromium").arg("--version").output().is_err() {
        missing_tool("chromium");
        return;
    }
    let t = TempDir::new("report");
    let r = suite_repo(&t);
    let dir = t.0.join("report");
    let o = sgsim_test(&r, &["--report".as_ref(), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
    let html = dir.join("index.html");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("<span class=\"del\">-  exitCode: 99</span>"), "{text}");
    assert!(text.contains("Pulling image"), "the events are in the page");
    assert!(
        text.contains("id=\"t-conformance-fake-background-step\"") && text.contains("1 passed, 1 failed, 1 skipped"),
        "the skipped trial is in the report too"
    );
    let (del, ins, timeline) = screenshot_colors(&t, &html, "failing");
    assert!(
        del > 1000 && ins > 1000,
        "the diff lines are on screen: del={del} ins={ins}"
    );
    assert!(timeline > 500, "the events timeline is on screen: {timeline}");

    // Without the failing trial: no diff on screen, and the passed trial's events stay folded.
    std::fs::remove_dir_all(r.join("scenarios/step-fails-changed")).unwrap();
    let o = sgsim_test(&r, &["--report".as_ref(), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let (del, ins, timeline) = screenshot_colors(&t, &html, "passing");
    assert_eq!((del, ins, timeline), (0, 0, 0));
}

#[test]
fn sgsim_run_writes_a_report_of_its_one_run() {
    let t = TempDir::new("run-report");
    let dir = t.0.join("report");
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .args(["run", "--runtime", "fake", "--color", "never", "--report"])
        .arg(&dir)
        .arg(repo().join("scenarios/step-fails"))
        .env_remove("CI")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("report: {}", dir.join("index.html").display())));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("<title>sgsim run step-fails</title>"), "{html}");
    assert!(html.contains("1 passed, 0 failed, 0 skipped"), "{html}");
    assert!(html.contains("<ol class=\"timeline\">") && html.contains("Started container lite-engine"));
    assert!(html.contains("steps/deploy.log") && html.contains("pod.yaml"));
}
