//! `sgsim cluster up` in another process, for the tests that reach a cluster only through its
//! kubeconfig (tests/clients.rs, tests/kube_backend.rs).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `sgsim cluster up` in the background; interrupted (Ctrl-C, so it removes its node) on drop,
/// also when the test panics.
pub struct ClusterUp {
    /// The `sgsim cluster up` process.
    pub child: Child,
    /// Its own directory (the kubeconfig, its log), removed on drop.
    pub dir: PathBuf,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
}

impl ClusterUp {
    /// Starts it and waits for its kubeconfig.
    pub fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sgsim-clients-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let kubeconfig = dir.join("kubeconfig");
        let log = File::create(dir.join("cluster.log")).expect("create cluster.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sgsim"))
            .current_dir(repo())
            .env("NO_COLOR", "1")
            .args(["cluster", "up", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn sgsim cluster up");
        let mut up = Self { child, dir, kubeconfig };
        // Images may be built on first use: allow for it.
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            if std::fs::read_to_string(&up.kubeconfig).is_ok_and(|k| k.contains("current-context")) {
                break;
            }
            if let Ok(Some(status)) = up.child.try_wait() {
                panic!(
                    "sgsim cluster up exited ({status}) before writing a kubeconfig:\n{}",
                    up.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no kubeconfig from sgsim cluster up after 900s:\n{}",
                up.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        up
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cluster.log")).unwrap_or_default()
    }
}

impl Drop for ClusterUp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGINT: `cluster up` removes its containers and volumes on Ctrl-C.
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
