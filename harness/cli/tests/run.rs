//! `sgsim run scenarios/dind-basic` on the embedded default, as README's first command does: the
//! Initialize log, the nested `docker run` output, exit 0, and nothing of the run left on Docker.

use std::path::Path;
use std::process::Command;

#[test]
fn run_dind_basic_end_to_end_leaves_nothing_behind() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(&repo)
        .env("NO_COLOR", "1")
        .env_remove("SGSIM_BLESS")
        .args(["run", "scenarios/dind-basic"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    for line in [
        "Starting job to create pod harnesscd-dindgroup-",
        "Created container setup-addon",
        "Started container step-dind",
        "Started container lite-engine",
        "is now in running status on harness-delegate-ng namespace",
        "hello from a nested container",
        "outcome as expected",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    // The Background dind step's log: its last lines, and the whole of it in a file.
    let whole = out
        .lines()
        .find_map(|l| {
            l.split_once("earlier line(s); the whole log: ")
                .map(|(_, p)| p.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no path of the Background step's whole log in:\n{out}"));
    let saved = std::fs::read_to_string(&whole).unwrap_or_else(|e| panic!("{whole}: {e}"));
    assert!(
        saved.lines().count() > 10,
        "the whole log has more than the lines shown:\n{saved}"
    );
    // The node container is named sgsim-<run id>-node-0; nothing labelled with the run remains.
    let run_id = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sgsim-").and_then(|r| r.strip_suffix("-node-0")))
        .unwrap_or_else(|| panic!("no node name in:\n{err}"))
        .to_string();
    for what in [
        &["ps", "-aq"][..],
        &["volume", "ls", "-q"][..],
        &["network", "ls", "-q"][..],
    ] {
        let l = Command::new("docker")
            .args(what)
            .arg("--filter")
            .arg(format!("label=dev.sgsim.run={run_id}"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&l.stdout).trim().is_empty(),
            "left behind by {run_id}: docker {what:?}"
        );
    }
}

/// SIGTERM while a conformance trial runs (`sgsim test`, the suite cargo test runs): the suite
/// removes the node the trial still uses before it exits 130, so nothing of it is left on Docker.
#[test]
fn interrupted_test_suite_leaves_nothing_behind() {
    use std::time::{Duration, Instant};
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A trial that runs for its initTimeout (20 s): it is still running when SIGTERM comes.
    let mut child = sgsim_in(&repo, &["test", "--exact", "security-run-as-non-root"], false);
    let pid = child.id();
    let ours = |what: &[&str]| labelled_with_pid(pid, what);
    // Wait until the trial's node runs, then a few seconds into the trial.
    let deadline = Instant::now() + Duration::from_secs(240);
    while ours(&["ps", "-q"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no node container labelled dev.sgsim.pid={pid}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sgsim test ended before its node ran"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(6));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sgsim test ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(130));
    assert_eq!(ours(&["ps", "-aq"]), "", "containers left behind after SIGTERM");
    assert_eq!(ours(&["volume", "ls", "-q"]), "", "volumes left behind after SIGTERM");
}

/// `sgsim run … | head -1`: once its standard output is closed the run stops by itself (no
/// panic, no hang), removes its node and volumes, and exits 141 like a program a closed pipe ends.
#[test]
fn closed_stdout_ends_the_run_quietly_and_removes_everything() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A pod that stays Pending for its 20 s initTimeout: the run is still going when the pipe closes.
    let mut child = sgsim_in(&repo, &["run", "scenarios/security-run-as-non-root"], true);
    let pid = child.id();
    let ours = |what: &[&str]| labelled_with_pid(pid, what);
    // Read the first line of the live Initialize log, then close the pipe, as `head -1` does.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "no output before the pipe closed");
    assert!(!ours(&["ps", "-aq"]).is_empty(), "the run's node is not up");
    drop(stdout);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sgsim run did not end after its stdout was closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(141), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "stderr:\n{err}");
    assert_eq!(ours(&["ps", "-aq"]), "", "containers left behind");
    assert_eq!(ours(&["volume", "ls", "-q"]), "", "volumes left behind");
}

/// `sgsim ARGS` started in `repo`, its output piped (or discarded).
fn sgsim_in(repo: &Path, args: &[&str], piped: bool) -> std::process::Child {
    let io = || {
        if piped {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .env_remove("SGSIM_BLESS")
        .args(args)
        .stdout(io())
        .stderr(io())
        .spawn()
        .unwrap()
}

/// The ids `docker WHAT… --filter label=dev.sgsim.pid=PID` lists (what a process left on Docker).
fn labelled_with_pid(pid: u32, what: &[&str]) -> String {
    let o = Command::new("docker")
        .args(what)
        .args(["--filter", &format!("label=dev.sgsim.pid={pid}")])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A live run with a Harness secret: the secret's value appears nowhere in what `sgsim run`
/// prints (stdout and stderr), masked where the output is produced, not only in golden files; the
/// Kubernetes Secret's content, which the documentation says Harness does not mask, is printed.
#[test]
fn a_live_run_prints_no_harness_secret() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(&repo)
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .env_remove("SGSIM_BLESS")
        .args(["run", "scenarios/secrets-masking"])
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        assert!(
            !text.contains("hs-7f3k9-token"),
            "the Harness secret leaked on {name}:\n{text}"
        );
    }
    assert!(out.contains("**************"), "the masked secret is not shown:\n{out}");
    assert!(
        out.contains("k8s-plain-pa55word"),
        "the Kubernetes Secret's content is shown as it is:\n{out}"
    );
}

/// `kill -9` of a run, then a new run at once: the new run removes what the killed one left, even
/// while the killed process is still a zombie (its parent, this test, has not waited for it yet) and
/// so still has a pid: the run's lock, not its pid, says whether it lives.
#[test]
fn a_run_killed_with_sigkill_is_reaped_by_the_next_run_even_as_a_zombie() {
    use std::time::{Duration, Instant};
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut killed = sgsim_in(&repo, &["run", "scenarios/security-run-as-non-root"], false);
    let pid = killed.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while labelled_with_pid(pid, &["ps", "-aq"]).is_empty() {
        assert!(Instant::now() < deadline, "the first run's node never came up");
        std::thread::sleep(Duration::from_millis(200));
    }
    killed.kill().unwrap(); // SIGKILL; not waited for: a zombie until the end of the test
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the killed run is a zombie with a pid"
    );
    assert!(
        !labelled_with_pid(pid, &["ps", "-aq"]).is_empty(),
        "SIGKILL removed nothing itself"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(&repo)
        .env("NO_COLOR", "1")
        .env_remove("SGSIM_BLESS")
        .args(["run", "scenarios/run-single"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        labelled_with_pid(pid, &["ps", "-aq"]),
        "",
        "the killed run's containers are left"
    );
    assert_eq!(
        labelled_with_pid(pid, &["volume", "ls", "-q"]),
        "",
        "the killed run's volumes are left"
    );
    let _ = killed.wait();
}
