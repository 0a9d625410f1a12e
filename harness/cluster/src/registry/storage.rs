//! Home of docker-registry's storage layout: a stand-in image's config and layers written as
//! content-addressed blobs straight from a `docker save` archive, and the links that make
//! `<path>:<tag>` name them (schema 2 manifest), as docker-registry lays out a pushed image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{RegistryError, io_err};

/// A stand-in image as registry blobs: config and layers (uncompressed tars, as `docker save`
/// gives them) by digest, in order.
#[derive(Debug, Clone)]
pub(super) struct ImageBlobs {
    config: (String, u64),
    layers: Vec<(String, u64)>,
}

/// Where an instance keeps its storage: `<node dir>/registries/<host>/storage` on the host
/// (`/var/lib/registry` in the registry container).
pub(super) fn storage_dir(node_dir: &Path, host: &str) -> PathBuf {
    node_dir.join("registries").join(host).join("storage")
}

/// Writes a blob into a registry storage (content-addressed, written once).
fn write_blob(root: &Path, digest_hex: &str, data: &[u8]) -> Result<(), RegistryError> {
    let dir = root
        .join("docker/registry/v2/blobs/sha256")
        .join(&digest_hex[..2])
        .join(digest_hex);
    let file = dir.join("data");
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    // Images that share a layer are seeded concurrently by parallel trials: every writer gets its
    // own temporary file, and the blob is content-addressed, so whichever rename lands is right.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("data.tmp.{}.{n}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io_err(format!("cannot write {}", tmp.display())))?;
    match std::fs::rename(&tmp, &file) {
        Ok(()) => Ok(()),
        Err(_) if file.exists() => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(io_err(format!("cannot write {}", file.display()))(e)),
    }
}

fn write_link(file: PathBuf, digest_hex: &str) -> Result<(), RegistryError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    }
    std::fs::write(&file, format!("sha256:{digest_hex}")).map_err(io_err(format!("cannot write {}", file.display())))
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Reads a `docker save` archive (one image) and writes its config and layers as blobs into
/// `root`; returns their digests.
pub(super) fn blobs_from_archive(archive: &Path, root: &Path) -> Result<ImageBlobs, RegistryError> {
    let data = std::fs::read(archive).map_err(io_err(format!("cannot read {}", archive.display())))?;
    let bad = |what: &str| RegistryError::Io {
        what: format!("{} is not a docker save archive: {what}", archive.display()),
        source: std::io::Error::other(what.to_string()),
    };
    let mut entries: HashMap<String, (usize, usize)> = HashMap::new();
    let mut off = 0usize;
    while off + 512 <= data.len() {
        let h = &data[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let field = |a: usize, b: usize| {
            let f = &h[a..b];
            let end = f.iter().position(|c| *c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).to_string()
        };
        let mut name = field(0, 100);
        let prefix = field(345, 500);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let size = u64::from_str_radix(field(124, 136).trim(), 8).map_err(|_| bad("tar size"))?;
        let size = usize::try_from(size).map_err(|_| bad("tar size"))?;
        let start = off + 512;
        if start + size > data.len() {
            return Err(bad("truncated"));
        }
        entries.insert(name, (start, size));
        off = start + size.div_ceil(512) * 512;
    }
    let slice = |name: &str| entries.get(name).map(|(s, n)| &data[*s..*s + *n]);
    let manifest: serde_json::Value =
        serde_json::from_slice(slice("manifest.json").ok_or_else(|| bad("no manifest.json"))?)
            .map_err(|_| bad("manifest.json"))?;
    let first = manifest.get(0).ok_or_else(|| bad("empty manifest.json"))?;
    let config_name = first
        .get("Config")
        .and_then(|c| c.as_str())
        .ok_or_else(|| bad("no Config"))?;
    let config = slice(config_name).ok_or_else(|| bad("no config file"))?;
    let config_hex = sha256_hex(config);
    write_blob(root, &config_hex, config)?;
    // The layer tars' digests are the config's rootfs.diff_ids (docker computed them; hashing
    // hundreds of MB again here would cost seconds).
    let cfg: serde_json::Value = serde_json::from_slice(config).map_err(|_| bad("config json"))?;
    let diff_ids: Vec<String> = cfg
        .pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str())
                .map(|d| d.trim_start_matches("sha256:").to_string())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = first
        .get("Layers")
        .and_then(|l| l.as_array())
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    if names.len() != diff_ids.len() {
        return Err(bad("layers and diff_ids differ"));
    }
    let mut layers = Vec::new();
    for (name, hex) in names.iter().zip(diff_ids) {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("diff_id"));
        }
        let bytes = slice(name).ok_or_else(|| bad("no layer file"))?;
        write_blob(root, &hex, bytes)?;
        layers.push((hex, bytes.len() as u64));
    }
    Ok(ImageBlobs {
        config: (config_hex, config.len() as u64),
        layers,
    })
}

/// Makes `path:tag` in the storage `root` name an image of these blobs (schema 2 manifest with
/// uncompressed layers), as docker-registry lays out a pushed image.
pub(super) fn tag_in_storage(root: &Path, path: &str, tag: &str, blobs: &ImageBlobs) -> Result<(), RegistryError> {
    let layers: Vec<serde_json::Value> = blobs
        .layers
        .iter()
        .map(|(hex, size)| {
            serde_json::json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": size, "digest": format!("sha256:{hex}")})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": blobs.config.1, "digest": format!("sha256:{}", blobs.config.0)},
        "layers": layers,
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mhex = sha256_hex(&bytes);
    write_blob(root, &mhex, &bytes)?;
    let repo = root.join("docker/registry/v2/repositories").join(path);
    for (hex, _) in blobs.layers.iter().chain(std::iter::once(&blobs.config)) {
        write_link(repo.join("_layers/sha256").join(hex).join("link"), hex)?;
    }
    write_link(repo.join("_manifests/revisions/sha256").join(&mhex).join("link"), &mhex)?;
    write_link(
        repo.join("_manifests/tags")
            .join(tag)
            .join("index/sha256")
            .join(&mhex)
            .join("link"),
        &mhex,
    )?;
    write_link(repo.join("_manifests/tags").join(tag).join("current/link"), &mhex)
}

#[cfg(test)]
mod tests {

    #[test]
    fn concurrent_writers_of_one_blob_all_succeed() {
        let root = std::env::temp_dir().join(format!(
            "sgsim-blob-race-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let data = b"same layer, two images".to_vec();
        let hex = super::sha256_hex(&data);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (root, data, hex) = (root.clone(), data.clone(), hex.clone());
                std::thread::spawn(move || super::write_blob(&root, &hex, &data).is_ok())
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
        let blob = root
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data");
        assert_eq!(std::fs::read(&blob).unwrap(), data);
        let leftovers = std::fs::read_dir(blob.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
