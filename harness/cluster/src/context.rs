//! Home of a run's identity: run id, run directory, the labels every Docker resource of the run
//! carries, and the `${TMPDIR:-/tmp}/sgsim` root; [`crate::reaper`] removes what crashed runs left.
//!
//! Labels (see docs/architecture.md): `dev.sgsim.managed=true`, `dev.sgsim.run=<run id>`,
//! `dev.sgsim.pid=<pid>`. A resource whose pid is no longer alive is garbage; a resource without a
//! pid label is never touched by the reaper.

use std::collections::HashMap;
use std::path::PathBuf;

use rand::Rng;

/// Label marking every resource sgsim creates.
pub const LABEL_MANAGED: &str = "dev.sgsim.managed";
/// Label holding the run id.
pub const LABEL_RUN: &str = "dev.sgsim.run";
/// Label holding the pid of the sgsim process that owns the resource.
pub const LABEL_PID: &str = "dev.sgsim.pid";

/// Name of the file in a run directory that holds the owning pid.
pub(crate) const PID_FILE: &str = "pid";
/// Name of the file in a run directory that the owning process holds locked while it lives: the
/// lock goes with the process (also when it is killed, or a zombie, or its pid is reused).
pub(crate) const LOCK_FILE: &str = "lock";

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
    /// `<run dir>/lock`, held locked for the life of the run (see [`LOCK_FILE`]).
    _lock: std::fs::File,
}

impl RunContext {
    /// A new run with a fresh id and directory (holding a `pid` file and the locked `lock` file
    /// the reaper goes by).
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
        let lock = std::fs::File::create(dir.join(LOCK_FILE)).map_err(err)?;
        lock.lock().map_err(err)?;
        Ok(RunContext {
            run_id,
            dir,
            pid,
            _lock: lock,
        })
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
        let dir = ctx.dir.clone();
        drop(ctx);
        assert!(!dir.exists());
    }
}
