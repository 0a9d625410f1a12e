//! Home of the node cgroups on the host: where a node's pod containers put their cgroups
//! ([`cgroup_parent`] under [`CGROUP_ROOT`]) and removing the empty ones a removed or crashed
//! node left behind.

use std::collections::HashSet;
use std::path::Path;

/// Where the host's cgroup hierarchies are mounted (also inside every node).
const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The top-level cgroup under which nodes put their containers' cgroups.
pub const CGROUP_ROOT: &str = "sgsim";

/// Where the cgroups of a node's pod containers go (cgroup v1, cgroupfs driver): the node's
/// `/sys/fs/cgroup` is the host's, so without a parent of its own, containers of a node that was
/// killed would leave empty cgroups among the host daemon's.
pub fn cgroup_parent(container_name: &str) -> String {
    format!("/{CGROUP_ROOT}/{container_name}")
}

/// Removes the (empty) cgroups a removed node left, in every hierarchy. Cgroups that still hold
/// processes cannot be removed and stay.
pub fn remove_cgroups(container_name: &str) {
    let Ok(hierarchies) = std::fs::read_dir(CGROUP_FS) else {
        return;
    };
    for h in hierarchies.flatten() {
        let dir = h.path().join(CGROUP_ROOT).join(container_name);
        if dir.is_dir() {
            rmdir_tree(&dir);
        }
    }
}

/// Removes the empty cgroups of nodes (`sgsim-…` under [`CGROUP_ROOT`], in every hierarchy) whose
/// container name is not in `existing`.
pub fn remove_orphaned(existing: &HashSet<String>) {
    let Ok(hierarchies) = std::fs::read_dir(CGROUP_FS) else {
        return;
    };
    for h in hierarchies.flatten() {
        let Ok(nodes) = std::fs::read_dir(h.path().join(CGROUP_ROOT)) else {
            continue;
        };
        for n in nodes.flatten() {
            let name = n.file_name().to_string_lossy().into_owned();
            if n.file_type().is_ok_and(|t| t.is_dir()) && name.starts_with("sgsim-") && !existing.contains(&name) {
                rmdir_tree(&n.path());
            }
        }
    }
}

/// rmdir(2) bottom-up (cgroupfs directories go away with rmdir despite their control files).
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
