//! The run context: run id, run directory, and the labels every Docker resource of the run
//! carries; plus [`reap_stale`], which removes what crashed runs left behind.
//!
//! Labels (see docs/architecture.md): `dev.sgsim.managed=true`, `dev.sgsim.run=<run id>`,
//! `dev.sgsim.pid=<pid>`. A resource whose pid is no longer alive is garbage; a resource without a
//! pid label is never touched by the reaper.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use rand::Rng;

/// Label marking every resource sgsim creates.
pub const LABEL_MANAGED: &str = "dev.sgsim.managed";
/// Label holding the run id.
pub const LABEL_RUN: &str = "dev.sgsim.run";
/// Label holding the pid of the sgsim process that owns the resource.
pub const LABEL_PID: &str = "dev.sgsim.pid";

/// Name of the file in a run directory that holds the owning pid.
const PID_FILE: &str = "pid";
/// A run directory without a pid file is only reaped when older than this (it may be being
/// created right now).
const UNOWNED_DIR_GRACE: Duration = Duration::from_secs(300);

/// Errors of the run context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The run directory could not be created or written.
    #[error("cannot create the run directory {path}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
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

/// `${TMPDIR:-/tmp}/sgsim`: the parent of every run directory.
pub fn sgsim_tmp_root() -> PathBuf {
    let tmp = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()).map(PathBuf::from);
    tmp.unwrap_or_else(|| PathBuf::from("/tmp")).join("sgsim")
}

/// `n` random lowercase alphanumerics.
pub fn random_suffix(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// One sgsim run: its id, its directory, its owning process.
#[derive(Debug)]
pub struct RunContext {
    /// `sg` + 10 lowercase alphanumerics.
    pub run_id: String,
    /// `${TMPDIR:-/tmp}/sgsim/<run id>/`, removed on drop.
    pub dir: PathBuf,
    /// This process's pid (the `dev.sgsim.pid` label).
    pub pid: u32,
}

impl RunContext {
    /// A new run with a fresh id and directory (holding a `pid` file for the reaper).
    pub fn new() -> Result<Self, ContextError> {
        let run_id = format!("sg{}", random_suffix(10));
        let dir = sgsim_tmp_root().join(&run_id);
        let pid = std::process::id();
        let err = |source| ContextError::RunDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        std::fs::write(dir.join(PID_FILE), format!("{pid}\n")).map_err(err)?;
        Ok(RunContext { run_id, dir, pid })
    }

    /// The labels every resource of this run carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_RUN.to_string(), self.run_id.clone()),
            (LABEL_PID.to_string(), self.pid.to_string()),
        ])
    }

    /// Labels for resources inside nodes (no pid: the node's lifetime bounds them).
    pub fn node_level_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_RUN.to_string(), self.run_id.clone()),
        ])
    }

    /// `<run dir>/nodes/<node>/`.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    /// A Docker resource name unique to this run: `sgsim-<run id>-<suffix>`.
    pub fn resource_name(&self, suffix: &str) -> String {
        format!("sgsim-{}-{suffix}", self.run_id)
    }
}

impl Drop for RunContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when a process with this pid exists (on this machine's pid namespace).
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a resource's labels mark it as left behind by a dead sgsim process.
pub fn is_stale(labels: &HashMap<String, String>) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && labels
            .get(LABEL_PID)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| !pid_alive(p))
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
pub async fn reap_stale(docker: &Docker) -> Result<Reaped, ContextError> {
    let mut reaped = remove_labelled(docker, &format!("{LABEL_MANAGED}=true"), is_stale).await?;
    reaped.dirs = reap_stale_dirs(&sgsim_tmp_root());

    // Empty cgroups of nodes whose container is gone (see node::cgroup_parent).
    let existing: std::collections::HashSet<String> = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
        .await
        .map_err(|source| ContextError::List {
            kind: "containers",
            source,
        })?
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            let Ok(nodes) = std::fs::read_dir(h.path().join(crate::node::CGROUP_ROOT)) else {
                continue;
            };
            for n in nodes.flatten() {
                let name = n.file_name().to_string_lossy().into_owned();
                if n.file_type().is_ok_and(|t| t.is_dir()) && name.starts_with("sgsim-") && !existing.contains(&name) {
                    crate::node::rmdir_tree(&n.path());
                }
            }
        }
    }
    Ok(reaped)
}

/// Removes every container, volume and network of one run (label `dev.sgsim.run=<run_id>`),
/// whatever still holds them: the last resort of a run that is interrupted while trials run.
pub async fn remove_run(docker: &Docker, run_id: &str) -> Result<Reaped, ContextError> {
    remove_labelled(docker, &format!("{LABEL_RUN}={run_id}"), |_| true).await
}

/// Removes the containers (with their anonymous volumes), volumes and networks carrying `label`
/// (`key=value`) for which `remove` holds. Removal failures are logged and skipped.
async fn remove_labelled(
    docker: &Docker,
    label: &str,
    remove: impl Fn(&HashMap<String, String>) -> bool,
) -> Result<Reaped, ContextError> {
    let mut reaped = Reaped::default();
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new().all(true).filters(&filters).build(),
        ))
        .await
        .map_err(|source| ContextError::List {
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
        .map_err(|source| ContextError::List {
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
        .map_err(|source| ContextError::List {
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
            match std::fs::read_to_string(path.join(PID_FILE)) {
                Ok(s) => s.trim().parse::<u32>().is_ok_and(|p| !pid_alive(p)),
                Err(_) => e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > UNOWNED_DIR_GRACE),
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

    #[test]
    fn run_ids_and_labels() {
        let ctx = RunContext::new().unwrap();
        assert_eq!(ctx.run_id.len(), 12);
        assert!(ctx.run_id.starts_with("sg"));
        assert!(
            ctx.run_id[2..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert!(ctx.dir.is_dir());
        let l = ctx.labels();
        assert_eq!(l[LABEL_MANAGED], "true");
        assert_eq!(l[LABEL_RUN], ctx.run_id);
        assert_eq!(l[LABEL_PID], std::process::id().to_string());
        assert!(!is_stale(&l));
        let dir = ctx.dir.clone();
        drop(ctx);
        assert!(!dir.exists());
    }

    #[test]
    fn staleness() {
        let mut l = HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
        assert!(!is_stale(&l), "no pid label: never stale");
        l.insert(LABEL_PID.to_string(), "4194303".to_string());
        assert!(is_stale(&l) || pid_alive(4194303));
        l.insert(LABEL_MANAGED.to_string(), "false".to_string());
        assert!(!is_stale(&l));
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
