//! Home of clean-up after crashed or interrupted runs: what counts as left behind ([`is_stale`]),
//! and removing labelled containers, volumes and networks ([`reap_stale`], [`remove_run`]), stale
//! run and compat-proxy directories ([`reap_stale_dirs`]) and orphaned node cgroups.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};

use crate::context::{LABEL_MANAGED, LABEL_PID, LABEL_RUN, LOCK_FILE, PID_FILE, sgsim_tmp_root};

/// A run directory without a pid file is only reaped when older than this (it may be being
/// created right now).
const UNOWNED_DIR_GRACE: Duration = Duration::from_secs(300);

/// Errors of the reaper.
#[derive(Debug, thiserror::Error)]
pub enum ReapError {
    /// Listing labelled resources on the daemon failed.
    #[error("cannot list sgsim {kind} on the Docker daemon")]
    List {
        /// containers, volumes or networks.
        kind: &'static str,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
}

/// True when a process with this pid exists (on this machine's pid namespace) and is not a zombie
/// (a process that has exited but that its parent has not waited for yet).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state …`: comm may hold spaces and parentheses, the state follows the last `)`.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Whether the run directory `dir` is owned by a live process: `Some(true)` while its lock file is
/// held, `Some(false)` once nobody holds it (the owner exited, was killed, is a zombie, or its pid
/// was reused by another program), `None` when it has no lock file.
pub fn run_dir_locked(dir: &Path) -> Option<bool> {
    let f = std::fs::File::open(dir.join(LOCK_FILE)).ok()?;
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            Some(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// Whether a resource's labels mark it as left behind by a dead sgsim process.
pub fn is_stale(labels: &HashMap<String, String>) -> bool {
    is_stale_in(&sgsim_tmp_root(), labels)
}

/// [`is_stale`] with run directories under `root`: the run's lock decides; only a run without one
/// (its directory gone) falls back to whether its pid exists.
fn is_stale_in(root: &Path, labels: &HashMap<String, String>) -> bool {
    if labels.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
        return false;
    }
    let pid = labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok());
    let Some(pid) = pid else { return false };
    let locked = labels
        .get(LABEL_RUN)
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .and_then(|r| run_dir_locked(&root.join(r)));
    match locked {
        Some(held) => !held,
        None => !pid_alive(pid),
    }
}

/// What [`reap_stale`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// Container ids.
    pub containers: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
    /// Network ids.
    pub networks: Vec<String>,
    /// Run and proxy directories.
    pub dirs: Vec<PathBuf>,
}

/// Removes containers, volumes and networks labelled `dev.sgsim.managed=true` whose
/// `dev.sgsim.pid` process is gone, and stale run directories. Live runs of parallel processes
/// are never touched. Also removes the empty cgroups of node containers that no longer exist.
/// Removal failures are logged and skipped; only listing failures are errors.
pub async fn reap_stale(docker: &Docker) -> Result<Reaped, ReapError> {
    let mut reaped = remove_labelled(docker, &format!("{LABEL_MANAGED}=true"), is_stale).await?;
    reaped.dirs = reap_stale_dirs(&sgsim_tmp_root());

    // Empty cgroups of nodes whose container is gone (see crate::cgroups::cgroup_parent).
    let existing: HashSet<String> = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
        .await
        .map_err(|source| ReapError::List {
            kind: "containers",
            source,
        })?
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    crate::cgroups::remove_orphaned(&existing);
    Ok(reaped)
}

/// Removes every container, volume and network of one run (label `dev.sgsim.run=<run_id>`),
/// whatever still holds them: the last resort of a run that is interrupted while trials run.
pub async fn remove_run(docker: &Docker, run_id: &str) -> Result<Reaped, ReapError> {
    remove_labelled(docker, &format!("{LABEL_RUN}={run_id}"), |_| true).await
}

/// Removes the containers (with their anonymous volumes), volumes and networks carrying `label`
/// (`key=value`) for which `remove` holds. Removal failures are logged and skipped.
async fn remove_labelled(
    docker: &Docker,
    label: &str,
    remove: impl Fn(&HashMap<String, String>) -> bool,
) -> Result<Reaped, ReapError> {
    let mut reaped = Reaped::default();
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new().all(true).filters(&filters).build(),
        ))
        .await
        .map_err(|source| ReapError::List {
            kind: "containers",
            source,
        })?;
    for c in containers {
        let (Some(id), Some(labels)) = (c.id, c.labels) else {
            continue;
        };
        if !remove(&labels) {
            continue;
        }
        let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        match docker.remove_container(&id, Some(opts)).await {
            Ok(()) => reaped.containers.push(id),
            Err(e) => tracing::warn!("cannot remove container {id}: {e}"),
        }
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
        .await
        .map_err(|source| ReapError::List {
            kind: "volumes",
            source,
        })?;
    for v in volumes.volumes.unwrap_or_default() {
        if !remove(&v.labels) {
            continue;
        }
        match docker
            .remove_volume(&v.name, Some(RemoveVolumeOptionsBuilder::new().force(true).build()))
            .await
        {
            Ok(()) => reaped.volumes.push(v.name),
            Err(e) => tracing::warn!("cannot remove volume {}: {e}", v.name),
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
        .await
        .map_err(|source| ReapError::List {
            kind: "networks",
            source,
        })?;
    for n in networks {
        let (Some(id), Some(labels)) = (n.id, n.labels) else {
            continue;
        };
        if !remove(&labels) {
            continue;
        }
        match docker.remove_network(&id).await {
            Ok(()) => reaped.networks.push(id),
            Err(e) => tracing::warn!("cannot remove network {id}: {e}"),
        }
    }
    Ok(reaped)
}

/// Removes run directories (`sg…` with a dead or missing owner) and compat-proxy directories
/// (`proxy-<pid>` of a dead pid) under `root`.
pub fn reap_stale_dirs(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return removed;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = if let Some(pid) = name.strip_prefix("proxy-") {
            pid.parse::<u32>().is_ok_and(|p| !pid_alive(p))
        } else if name.starts_with("sg") && path.is_dir() {
            if let Some(held) = run_dir_locked(&path) {
                !held
            } else {
                match std::fs::read_to_string(path.join(PID_FILE)) {
                    Ok(s) => s.trim().parse::<u32>().is_ok_and(|p| !pid_alive(p)),
                    Err(_) => e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > UNOWNED_DIR_GRACE),
                }
            }
        } else {
            false
        };
        if stale && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{RunContext, random_suffix};

    #[test]
    fn staleness() {
        let ctx = RunContext::new().unwrap();
        assert!(!is_stale(&ctx.labels()), "a live run is never stale");
        let mut l = HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
        assert!(!is_stale(&l), "no pid label: never stale");
        l.insert(LABEL_PID.to_string(), "4194303".to_string());
        assert!(is_stale(&l) || pid_alive(4194303));
        l.insert(LABEL_MANAGED.to_string(), "false".to_string());
        assert!(!is_stale(&l));
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not waited for: a zombie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pid_alive(pid) {
            assert!(std::time::Instant::now() < deadline, "a zombie counts as alive");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "not reaped yet");
        child.wait().unwrap();
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn the_run_lock_decides_liveness_whatever_the_pid_says() {
        let root = std::env::temp_dir().join(format!("sgsim-lock-test-{}", random_suffix(8)));
        let dir = root.join("sglockedrun1");
        std::fs::create_dir_all(&dir).unwrap();
        let labels = |pid: u32| {
            HashMap::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (LABEL_RUN.to_string(), "sglockedrun1".to_string()),
                (LABEL_PID.to_string(), pid.to_string()),
            ])
        };
        let lock = std::fs::File::create(dir.join(LOCK_FILE)).unwrap();
        lock.lock().unwrap();
        // Held: live, even when its pid label names no process (or a reused one).
        assert!(!is_stale_in(&root, &labels(4194303)));
        assert_eq!(reap_stale_dirs(&root), Vec::<PathBuf>::new());
        drop(lock);
        // Released (the owner exited, was killed, or is a zombie): stale, even when a process with
        // its pid exists (this one).
        assert!(is_stale_in(&root, &labels(std::process::id())));
        assert_eq!(reap_stale_dirs(&root), vec![dir.clone()]);
        // No lock file (the directory is gone): the pid decides.
        assert!(!is_stale_in(&root, &labels(std::process::id())));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reaps_dead_dirs_only() {
        let root = std::env::temp_dir().join(format!("sgsim-reap-test-{}", random_suffix(8)));
        let dead = root.join("sgdeaddeaddd");
        let live = root.join("sgliveliveli");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(dead.join(PID_FILE), "4194303\n").unwrap();
        std::fs::write(live.join(PID_FILE), format!("{}\n", std::process::id())).unwrap();
        let removed = reap_stale_dirs(&root);
        assert_eq!(removed.len(), usize::from(!pid_alive(4194303)));
        assert!(live.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
