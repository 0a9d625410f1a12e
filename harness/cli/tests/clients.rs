//! Real Kubernetes clients against `sgsim cluster up`: the kubectl suite (tests/kubectl/suite.sh)
//! and the official Python client suite (tests/python/suite.py), each against its own cluster.
//! Skipped, with the reason printed, only when kubectl or python3 is not installed (under CI=true
//! that is a failure instead); the Python
//! client itself (`pip install kubernetes`) is installed by scripts/setup.sh.

#[path = "common/cluster_up.rs"]
mod cluster_up;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_up::{ClusterUp, repo};

/// A program on PATH (or at one of `extra` absolute paths).
/// `name` from the pinned test tools (`target/sgsim-venv`, scripts/setup-test.sh), else from PATH,
/// else from `extra`.
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let pinned = repo().join("target/sgsim-venv/bin").join(name);
    let on_path = || {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()))
    };
    Some(pinned)
        .filter(|p| p.is_file())
        .or_else(on_path)
        .or_else(|| extra.iter().map(PathBuf::from).find(|p| p.is_file()))
}

#[test]
fn kubectl_suite_against_cluster_up() {
    let Some(kubectl) = find_program("kubectl", &["/usr/bin/kubectl", "/usr/local/bin/kubectl"]) else {
        missing_tool("kubectl (the kubectl suite needs it on PATH)");
        return;
    };
    let Some(bash) = find_program("bash", &["/bin/bash", "/usr/bin/bash"]) else {
        missing_tool("bash");
        return;
    };
    let up = ClusterUp::start("kubectl");
    // The script runs the kubectl found here ($KUBECTL).
    let script = repo().join("tests/kubectl/suite.sh");
    run_suite(
        &up,
        &bash,
        &script,
        &[
            ("KUBECTL", kubectl.as_os_str()),
            ("SGSIM", std::ffi::OsStr::new(env!("CARGO_BIN_EXE_sgsim"))),
        ],
        Duration::from_secs(600),
    );
}

#[test]
fn python_client_suite_against_cluster_up() {
    let Some(python) = find_program("python3", &[]) else {
        missing_tool("python3 (the Python client suite needs it)");
        return;
    };
    let probe = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .expect("run python3");
    assert!(
        probe.status.success(),
        "the official Python client is missing: `pip install kubernetes` (scripts/setup.sh installs it)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let up = ClusterUp::start("python");
    run_suite(
        &up,
        &python,
        &repo().join("tests/python/suite.py"),
        &[],
        Duration::from_secs(600),
    );
}

/// Run a suite script (with `env` added) against the cluster; panics with its output and the
/// cluster's log unless it exits 0 within `limit`.
fn run_suite(up: &ClusterUp, program: &Path, script: &Path, env: &[(&str, &std::ffi::OsStr)], limit: Duration) {
    let out_path = up.dir.join("suite.out");
    let out = File::create(&out_path).expect("create suite.out");
    let mut cmd = Command::new(program);
    cmd.arg(script)
        .arg(&up.kubeconfig)
        .current_dir(repo())
        .env("TMPDIR", &up.dir)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone the output handle"))
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {} {}: {e}", program.display(), script.display()));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("wait for the suite: {e}"),
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{output}");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{} failed ({s}):\n{output}\n--- cluster log ---\n{}",
            script.display(),
            up.log()
        ),
        None => panic!(
            "{} did not finish in {limit:?}:\n{output}\n--- cluster log ---\n{}",
            script.display(),
            up.log()
        ),
    }
}

/// SIGTERM (CI cancellation, `kill`) is handled like Ctrl-C: `cluster up` removes its node
/// container and volumes and exits 0.
#[test]
fn cluster_up_cleans_up_on_sigterm() {
    let mut up = ClusterUp::start("sigterm");
    let label = format!("label=dev.sgsim.pid={}", up.child.id());
    let ours = |what: &str| -> String {
        let o = Command::new("docker")
            .args([what, "ls", "-q", "--filter", &label])
            .output()
            .expect("docker");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let containers = || {
        let o = Command::new("docker")
            .args(["ps", "-a", "-q", "--filter", &label])
            .output()
            .expect("docker");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert!(
        !containers().is_empty(),
        "no container labelled {label} while the cluster is up"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Ok(Some(s)) = up.child.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "sgsim cluster up ignored SIGTERM:\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(0), "{}", up.log());
    assert_eq!(containers(), "", "containers left behind after SIGTERM");
    assert_eq!(ours("volume"), "", "volumes left behind after SIGTERM");
}

/// A tool this test needs is missing: under `CI=true` that fails the test (set-up installs it),
/// elsewhere the test is skipped with the reason printed.
fn missing_tool(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{what} is not installed; under CI=true a missing tool fails the test (scripts/setup.sh installs it)"
    );
    println!("skipped: {what} is not installed");
}
