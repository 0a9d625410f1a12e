//! `sgsim doctor`: whether this machine can run sgsim and its tests, one line per check, and what
//! to do about each problem.

use std::path::Path;
use std::process::Command;

use sgsim_cluster::docker::{self, PrivilegeMode};
use sgsim_cluster::images;

use crate::{exit, input, output};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but something is off (a run will fix it, or only the tests need it).
    Warn,
    /// sgsim cannot run until it is fixed.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked (`docker`, `images`, ...).
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (for Warn and Fail).
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn problem(name: &'static str, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The check as printed: `ok    docker: …`, then `      → fix` for a problem.
    pub fn render(&self) -> String {
        let tag = match self.status {
            Status::Ok => "ok   ",
            Status::Warn => "warn ",
            Status::Fail => "FAIL ",
        };
        let mut s = format!("{tag} {}: {}", self.name, self.detail);
        if let Some(f) = &self.fix {
            s.push_str(&format!("\n      → {f}"));
        }
        s
    }
}

/// Free space below `path` in bytes (from `df`), `None` when it cannot be told.
fn free_bytes(path: &Path) -> Option<u64> {
    let o = Command::new("df").args(["-Pk"]).arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let kib: u64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

fn disk_check(what: &'static str, path: &Path) -> Check {
    disk_verdict(what, path, free_bytes(path))
}

/// The disk check for `free` bytes at `path`: below 2 GiB fails, below 10 GiB warns.
fn disk_verdict(what: &'static str, path: &Path, free: Option<u64>) -> Check {
    const GIB: u64 = 1 << 30;
    match free {
        None => Check::problem(
            what,
            Status::Warn,
            format!("cannot tell the free space of {}", path.display()),
            "check it with df -h",
        ),
        Some(b) if b < 2 * GIB => Check::problem(
            what,
            Status::Fail,
            format!("{:.1} GiB free at {}", b as f64 / GIB as f64, path.display()),
            "free some space: sgsim images prune, cargo clean, docker system prune",
        ),
        Some(b) if b < 10 * GIB => Check::problem(
            what,
            Status::Warn,
            format!(
                "{:.1} GiB free at {} (a fresh build and the suite take about 8 GiB: target/ 5, images and caches 2-3)",
                b as f64 / GIB as f64,
                path.display()
            ),
            "free some space: sgsim images prune, cargo clean",
        ),
        Some(b) => Check::ok(
            what,
            format!("{:.0} GiB free at {}", b as f64 / GIB as f64, path.display()),
        ),
    }
}

/// A test tool: the pinned one (`target/sgsim-venv`), else one on PATH (a warning), else none.
fn tool_check(name: &'static str, repo: &Path, program: &str, probe: &[&str]) -> Check {
    let pinned = repo.join("target/sgsim-venv/bin").join(program);
    let run = |bin: &Path| {
        Command::new(bin)
            .args(probe)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let first_line = |o: std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    if let Some(o) = run(&pinned) {
        return Check::ok(name, format!("{} ({})", first_line(o), pinned.display()));
    }
    let fix = "scripts/setup-test.sh (scripts/test runs it) installs the pinned test tools into target/sgsim-venv";
    match run(Path::new(program)) {
        Some(o) => Check::problem(
            name,
            Status::Warn,
            format!("not pinned; using the one on PATH: {}", first_line(o)),
            fix,
        ),
        None => Check::problem(
            name,
            Status::Warn,
            "not installed (only the client test suites need it)",
            fix,
        ),
    }
}

/// Runs every check.
pub async fn checks(repo: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let addr = docker::real_daemon()
        .map(|a| a.to_docker_host())
        .unwrap_or_else(|e| e.to_string());
    let host = match docker::host_docker().await {
        Ok(d) => match d.version().await {
            Ok(v) => {
                out.push(Check::ok(
                    "docker",
                    format!(
                        "Docker Engine {} (API {}) at {addr}",
                        v.version.unwrap_or_default(),
                        v.api_version.unwrap_or_default()
                    ),
                ));
                Some(d)
            }
            Err(e) => {
                out.push(docker_fail(&addr, &e));
                None
            }
        },
        Err(e) => {
            out.push(docker_fail(&addr, &e));
            None
        }
    };
    if let Some(host) = &host {
        match images::images_state(repo).await {
            Ok(images::ImagesState::Current(built)) => {
                out.push(Check::ok("images", format!("{} images current", built.iter().count())));
                if let Some(probe) = built.get("busybox") {
                    out.push(match docker::detect_privilege_mode(host, probe).await {
                        PrivilegeMode::Privileged => Check::ok("privileged", "--privileged containers work"),
                        PrivilegeMode::Fallback => Check::ok(
                            "privileged",
                            "--privileged is refused here; nodes and privileged pods use the documented fallback \
                             (every other capability, unconfined seccomp/apparmor/systempaths, all devices)",
                        ),
                    });
                }
            }
            Ok(images::ImagesState::Stale(reason)) => out.push(Check::problem(
                "images",
                Status::Warn,
                format!("a build is needed ({reason})"),
                "scripts/build-images.sh, or any sgsim run (it builds them first, a few minutes the first time)",
            )),
            Err(e) => out.push(Check::problem(
                "images",
                Status::Fail,
                docker::error_chain(&e),
                "see the error",
            )),
        }
        if let Some(root) = host.info().await.ok().and_then(|i| i.docker_root_dir) {
            out.push(disk_check("disk (docker)", Path::new(&root)));
        }
    }
    out.push(disk_check("disk (repo)", repo));
    out.push(tool_check("kubectl", repo, "kubectl", &["version", "--client"]));
    out.push(tool_check(
        "python client",
        repo,
        "python3",
        &["-c", "import kubernetes; print('kubernetes', kubernetes.__version__)"],
    ));
    out
}

fn docker_fail(addr: &str, e: &dyn std::error::Error) -> Check {
    Check::problem(
        "docker",
        Status::Fail,
        format!("cannot reach the Docker Engine at {addr}: {}", docker::error_chain(e)),
        "start it (scripts/setup.sh installs docker.io and starts dockerd), or point DOCKER_HOST at a running one",
    )
}

/// `sgsim doctor`: prints every check; exit 4 when one failed.
pub fn cmd_doctor() -> i32 {
    let repo = input::repo_root();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let results = rt.block_on(checks(&repo));
    for c in &results {
        output::out_line(&c.render());
    }
    if results.iter().any(|c| c.status == Status::Fail) {
        exit::INFRASTRUCTURE
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_says_what_to_do() {
        let c = Check::problem("docker", Status::Fail, "cannot reach it", "start it");
        assert_eq!(c.render(), "FAIL  docker: cannot reach it\n      → start it");
        assert_eq!(
            Check::ok("images", "15 images current").render(),
            "ok    images: 15 images current"
        );
    }

    #[test]
    fn short_disk_space_warns_then_fails() {
        let p = Path::new("/w");
        let gib = 1u64 << 30;
        let v = |b| disk_verdict("disk (repo)", p, b);
        assert_eq!(v(Some(gib * 3 / 4)).status, Status::Fail);
        assert!(
            v(Some(gib * 3 / 4))
                .render()
                .starts_with("FAIL  disk (repo): 0.8 GiB free at /w")
        );
        assert_eq!(v(Some(5 * gib)).status, Status::Warn);
        assert_eq!(v(Some(40 * gib)).render(), "ok    disk (repo): 40 GiB free at /w");
        assert_eq!(v(None).status, Status::Warn);
    }
}
