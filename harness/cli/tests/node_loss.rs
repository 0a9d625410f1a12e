//! A node lost mid-step ends `sgsim run` at once (exit 4, the node named), instead of leaving it
//! waiting for the step's timeout: its container killed, or its dockerd killed inside it. Whatever
//! the run started is gone afterwards.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// The run under test, killed and its resources removed on drop (also when the test panics).
struct Run {
    child: Child,
    tmp: PathBuf,
    run_id: Option<String>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(id) = &self.run_id {
            let filter = format!("label=dev.sgsim.run={id}");
            if let Ok(o) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
                for c in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("docker").args(["rm", "-f", "-v", c]).output();
                }
            }
            if let Ok(o) = Command::new("docker")
                .args(["volume", "ls", "-q", "--filter", &filter])
                .output()
            {
                for v in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("docker").args(["volume", "rm", "-f", v]).output();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// A step group whose one step sleeps far longer than the test waits.
fn sleeping_pipeline(dir: &Path) -> PathBuf {
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        "pipeline:\n  name: p\n  identifier: p\n  projectIdentifier: sgsim\n  orgIdentifier: default\n  stages:\n    - stage:\n        name: s\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n              - stepGroup:\n                  name: g\n                  identifier: g\n                  stepGroupInfra:\n                    type: KubernetesDirect\n                    spec: {connectorRef: k8s, namespace: harness-delegate-ng}\n                  steps:\n                    - step:\n                        type: Run\n                        name: sleeper\n                        identifier: sleeper\n                        spec:\n                          image: alpine:3.19\n                          shell: Sh\n                          command: echo started; sleep 300\n                        timeout: 10m\n",
    )
    .unwrap();
    p
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let o = Command::new("docker").args(args).output().expect("docker runs");
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect()
}

/// Starts a run of the sleeping step, waits for its step to start, applies `fault` to its node
/// container, and returns the exit code, stderr, the time from the fault to the exit and the run.
fn run_and_lose_node(fault: impl FnOnce(&str)) -> (Option<i32>, String, Duration, Run, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(repo())
        .args(["images", "build"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tmp = std::env::temp_dir().join(format!("sgsim-node-loss-{}", unique()));
    std::fs::create_dir_all(&tmp).unwrap();
    let pipeline = sleeping_pipeline(&tmp);
    let child = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(repo())
        .env("TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .env_remove("SGSIM_BLESS")
        .arg("run")
        .arg(&pipeline)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sgsim starts");
    let mut run = Run {
        child,
        tmp: tmp.clone(),
        run_id: None,
    };
    let (tx, rx) = mpsc::channel();
    let stdout = run.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if l.starts_with("── Step") {
                let _ = tx.send(());
            }
        }
    });
    let stderr = run.child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    rx.recv_timeout(Duration::from_secs(600))
        .expect("the step starts within 10 minutes");
    let run_id = std::fs::read_dir(tmp.join("sgsim"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("sg"))
        .expect("a run directory");
    run.run_id = Some(run_id.clone());
    let nodes = docker_lines(&[
        "ps",
        "--filter",
        &format!("label=dev.sgsim.run={run_id}"),
        "--filter",
        "label=dev.sgsim.image=node",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(nodes.len(), 1, "one node container: {nodes:?}");
    let node = nodes[0].clone();
    let faulted = Instant::now();
    fault(&node);
    let deadline = faulted + Duration::from_secs(120);
    let code = loop {
        if let Some(st) = run.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            Instant::now() < deadline,
            "sgsim still runs 120 s after its node was lost"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = faulted.elapsed();
    let err = err_reader.join().unwrap();
    (code, err, took, run, node)
}

/// What the run left: containers, volumes, networks with its label, its run directory.
fn leftovers(run: &Run) -> Vec<String> {
    let id = run.run_id.as_deref().unwrap();
    let filter = format!("label=dev.sgsim.run={id}");
    let mut left = Vec::new();
    for what in [
        &["ps", "-aq", "--filter", &filter][..],
        &["volume", "ls", "-q", "--filter", &filter],
        &["network", "ls", "-q", "--filter", &filter],
    ] {
        left.extend(docker_lines(what));
    }
    if let Ok(rd) = std::fs::read_dir(run.tmp.join("sgsim")) {
        left.extend(rd.flatten().map(|e| e.path().display().to_string()));
    }
    left
}

fn assert_lost(code: Option<i32>, err: &str, took: Duration, run: &Run, node: &str, said: &str) {
    assert_eq!(code, Some(4), "exit code 4 (infrastructure); stderr:\n{err}");
    assert!(
        err.contains("node `node-0`") && err.contains(node),
        "the error names the node and its container:\n{err}"
    );
    assert!(err.contains(said), "the error says `{said}`:\n{err}");
    // Before the fix the run waited about 60 s for the engine; the step itself sleeps 300 s.
    assert!(took < Duration::from_secs(20), "ended {took:?} after the node was lost");
    assert!(
        !err.contains("Failed to remove container"),
        "no double removal reported:\n{err}"
    );
    assert_eq!(leftovers(run), Vec::<String>::new(), "nothing of the run is left");
}

#[test]
fn a_killed_node_container_ends_the_run_naming_the_node() {
    let (code, err, took, run, node) = run_and_lose_node(|node| {
        let o = Command::new("docker").args(["kill", node]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    });
    assert_lost(code, &err, took, &run, &node, "exited with code 137");
}

#[test]
fn a_node_whose_dockerd_dies_ends_the_run_naming_the_node() {
    let (code, err, took, run, node) = run_and_lose_node(|node| {
        let o = Command::new("docker")
            .args(["exec", node, "pkill", "-9", "dockerd"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    });
    assert_lost(code, &err, took, &run, &node, "dockerd exited");
}
