//! Files onto a node without running anything there: a created, never started helper container of
//! the sandbox image mounts the target, a tar archive is uploaded into it, and the helper is
//! removed. Used for the contents of a pod's configMap/secret/projected volumes and their root
//! modes (`kubelet::pod::volumes`), and for the `nodes[].files` fixtures that hostPath volumes expose.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use k8s_openapi::jiff::Timestamp;

use super::{ImageProvider, PullPolicy};

/// Write `files` (absolute node path → content) onto the node's filesystem, through a helper that
/// binds the node's `/` at `/sgsim-node-root`.
pub(crate) async fn write_node_files(
    docker: &Docker,
    images: &dyn ImageProvider,
    labels: HashMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Result<(), bollard::errors::Error> {
    if files.is_empty() {
        return Ok(());
    }
    let host_config = HostConfig {
        binds: Some(vec!["/:/sgsim-node-root".to_string()]),
        ..HostConfig::default()
    };
    let entries: Vec<TarEntry> = files
        .iter()
        .map(|(path, text)| TarEntry {
            path: format!("sgsim-node-root/{}", path.trim_start_matches('/')),
            data: text.clone().into_bytes(),
            mode: 0o644,
            dir: false,
        })
        .collect();
    upload_through_helper(docker, images, labels, host_config, &entries).await
}

/// Create the helper (the sandbox image, pulled if absent; no network; `labels`; the mounts or
/// binds of `host_config`), upload `entries` at `/`, and remove the helper.
pub(crate) async fn upload_through_helper(
    docker: &Docker,
    images: &dyn ImageProvider,
    labels: HashMap<String, String>,
    host_config: HostConfig,
    entries: &[TarEntry],
) -> Result<(), bollard::errors::Error> {
    let sandbox = images.sandbox();
    let _ = images.ensure(&sandbox.image, PullPolicy::IfNotPresent).await;
    let body = ContainerCreateBody {
        image: Some(sandbox.image),
        entrypoint: if sandbox.command.is_empty() {
            None
        } else {
            Some(sandbox.command)
        },
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..host_config
        }),
        ..ContainerCreateBody::default()
    };
    let c = docker.create_container(None::<CreateContainerOptions>, body).await?;
    let tar = tar_archive(entries);
    let res = docker
        .upload_to_container(
            &c.id,
            Some(UploadToContainerOptionsBuilder::default().path("/").build()),
            bollard::body_full(tar.into()),
        )
        .await;
    let _ = docker
        .remove_container(
            &c.id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    res
}

/// One archive member: a file, or a directory (`dir`, `data` empty) whose mode is set.
pub(crate) struct TarEntry {
    /// Path in the archive (relative; a directory ends in `/`).
    pub(crate) path: String,
    /// File content.
    pub(crate) data: Vec<u8>,
    /// Permission bits.
    pub(crate) mode: u32,
    /// A directory entry.
    pub(crate) dir: bool,
}

/// A minimal ustar archive (directories implied by paths are added, mode 0755).
fn tar_archive(entries: &[TarEntry]) -> Vec<u8> {
    fn header(name: &str, size: usize, mode: u32, dir: bool) -> [u8; 512] {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], off: usize, s: &[u8]| h[off..off + s.len()].copy_from_slice(s);
        let name = name.as_bytes();
        put(&mut h, 0, &name[..name.len().min(100)]);
        put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{size:011o}\0").as_bytes());
        put(
            &mut h,
            136,
            format!("{:011o}\0", Timestamp::now().as_second().max(0)).as_bytes(),
        );
        put(&mut h, 148, b"        ");
        h[156] = if dir { b'5' } else { b'0' };
        put(&mut h, 257, b"ustar\0");
        put(&mut h, 263, b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        h
    }
    let mut out = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for e in entries {
        if e.dir {
            if dirs.insert(e.path.clone()) {
                out.extend_from_slice(&header(&e.path, 0, e.mode, true));
            }
            continue;
        }
        let parts: Vec<&str> = e.path.split('/').collect();
        for n in 1..parts.len() {
            let d = format!("{}/", parts[..n].join("/"));
            if dirs.insert(d.clone()) {
                out.extend_from_slice(&header(&d, 0, 0o755, true));
            }
        }
        out.extend_from_slice(&header(&e.path, e.data.len(), e.mode, false));
        out.extend_from_slice(&e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}
