//! `sgsim cluster up --merge`: the cluster's context in the user's own kubeconfig while the
//! cluster runs, as kind does. The file is `$KUBECONFIG` (its first entry) or `~/.kube/config`;
//! it is read, merged ([`sgsim_core::kubeconfig`]) and written back whole (YAML, mode 0600,
//! atomically) under a lock file beside it, so two clusters coming up at once both land.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sgsim_core::kubeconfig::{self, Merged};

/// The kubeconfig kubectl reads by default: the first entry of `$KUBECONFIG`, else
/// `$HOME/.kube/config`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .as_deref()
        .and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Some(first);
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube").join("config"))
}

/// A lock file beside the kubeconfig, removed when dropped.
struct Lock(PathBuf);

impl Lock {
    fn take(path: &Path) -> Result<Lock, String> {
        let lock = path.with_extension("lock");
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => return Ok(Lock(lock)),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists && start.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(format!(
                        "cannot lock {} ({e}); if no other sgsim or kind is writing it, remove the lock file",
                        lock.display()
                    ));
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read(path: &Path) -> Result<Value, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Value::Null),
        Ok(text) => serde_saphyr::from_str(&text).map_err(|e| format!("{}: not a kubeconfig: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn write(path: &Path, doc: &Value) -> Result<(), String> {
    let text = serde_saphyr::to_string(doc).map_err(|e| format!("writing {}: {e}", path.display()))?;
    sgsim_cluster::apiserver::write_private(path, &text)
        .map_err(|e| format!("{e}: {}", sgsim_cluster::docker::error_chain(&e)))
}

/// Merges `ours` (a kubeconfig whose cluster, user and context are named `name`) into the
/// kubeconfig at `path` and makes its context current.
pub fn merge(path: &Path, ours: &Value, name: &str) -> Result<Merged, String> {
    let _lock = Lock::take(path)?;
    let mut doc = read(path)?;
    let merged = kubeconfig::merge(&mut doc, ours, name).map_err(|e| format!("{}: {e}", path.display()))?;
    write(path, &doc)?;
    Ok(merged)
}

/// Takes what [`merge`] added out of the kubeconfig at `path` again.
pub fn remove(path: &Path, merged: &Merged) -> Result<(), String> {
    let _lock = Lock::take(path)?;
    let mut doc = read(path)?;
    kubeconfig::remove(&mut doc, merged).map_err(|e| format!("{}: {e}", path.display()))?;
    write(path, &doc)
}
