//! Home of docker-registry's storage layout: a stand-in image's config and layers written as
//! content-addressed blobs straight from a `docker save` archive, and the links that make
//! `<path>:<tag>` name them (schema 2 manifest), as docker-registry lays out a pushed image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{RegistryError, io_err};

/// A stand-in image as registry blobs: config and layers (uncompressed tars, as `docker save`
/// gives them) by digest, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    put_blob(root, digest_hex, |tmp| std::fs::write(tmp, data))
}

/// Puts a blob into a registry storage once: `fill` writes it into a temporary file of its own,
/// which is then renamed into place. Images that share a layer are seeded concurrently by parallel
/// trials; the blob is content-addressed, so whichever rename lands is right.
fn put_blob(
    root: &Path,
    digest_hex: &str,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), RegistryError> {
    let file = blob_path(root, digest_hex);
    if file.exists() {
        return Ok(());
    }
    let dir = file.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("data.tmp.{}.{n}", std::process::id()));
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(format!("cannot write {}", tmp.display()))(e));
    }
    match std::fs::rename(&tmp, &file) {
        Ok(()) => Ok(()),
        Err(_) if file.exists() => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_err(format!("cannot write {}", file.display()))(e))
        }
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

/// Copies `size` bytes at `offset` of `archive` into a blob of `root` (content-addressed, written
/// once), streaming: an image is never held in memory.
fn copy_blob(
    archive: &mut std::fs::File,
    offset: u64,
    size: u64,
    root: &Path,
    digest_hex: &str,
) -> Result<(), RegistryError> {
    use std::io::{Read, Seek, SeekFrom};
    put_blob(root, digest_hex, |tmp| {
        archive.seek(SeekFrom::Start(offset))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(tmp)?);
        let n = std::io::copy(&mut archive.take(size), &mut out)?;
        std::io::Write::flush(&mut out)?;
        if n == size {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive is truncated",
            ))
        }
    })
}

/// Reads a `docker save` archive (one image) and writes its config and layers as blobs into
/// `root`; returns their digests. Only the tar headers, manifest.json and the config are read into
/// memory; the layers are copied from the file to their blobs in a stream.
pub(super) fn blobs_from_archive(archive: &Path, root: &Path) -> Result<ImageBlobs, RegistryError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut data = std::fs::File::open(archive).map_err(io_err(format!("cannot read {}", archive.display())))?;
    let len = data
        .metadata()
        .map_err(io_err(format!("cannot read {}", archive.display())))?
        .len();
    let bad = |what: &str| RegistryError::Io {
        what: format!("{} is not a docker save archive: {what}", archive.display()),
        source: std::io::Error::other(what.to_string()),
    };
    let read_err = |e: std::io::Error| io_err(format!("cannot read {}", archive.display()))(e);
    // name → (offset of the contents, size)
    let mut entries: HashMap<String, (u64, u64)> = HashMap::new();
    let mut off = 0u64;
    let mut h = [0u8; 512];
    while off + 512 <= len {
        data.seek(SeekFrom::Start(off)).map_err(read_err)?;
        data.read_exact(&mut h).map_err(read_err)?;
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
        let start = off + 512;
        if start.checked_add(size).is_none_or(|end| end > len) {
            return Err(bad("truncated"));
        }
        entries.insert(name, (start, size));
        off = start + size.div_ceil(512) * 512;
    }
    /// Small files (manifest.json, the config) are read whole; larger ones are never needed so.
    const SMALL: u64 = 16 << 20;
    let mut small = |name: &str| -> Result<Vec<u8>, RegistryError> {
        let (start, size) = *entries.get(name).ok_or_else(|| bad(&format!("no {name}")))?;
        if size > SMALL {
            return Err(bad(&format!("{name} is too large")));
        }
        let mut buf = vec![0u8; usize::try_from(size).map_err(|_| bad("size"))?];
        data.seek(SeekFrom::Start(start)).map_err(read_err)?;
        data.read_exact(&mut buf).map_err(read_err)?;
        Ok(buf)
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&small("manifest.json")?).map_err(|_| bad("manifest.json"))?;
    let first = manifest.get(0).ok_or_else(|| bad("empty manifest.json"))?;
    let config_name = first
        .get("Config")
        .and_then(|c| c.as_str())
        .ok_or_else(|| bad("no Config"))?;
    let config = small(config_name)?;
    let config_hex = sha256_hex(&config);
    write_blob(root, &config_hex, &config)?;
    // The layer tars' digests are the config's rootfs.diff_ids (docker computed them; hashing
    // hundreds of MB again here would cost seconds).
    let cfg: serde_json::Value = serde_json::from_slice(&config).map_err(|_| bad("config json"))?;
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
        let (start, size) = *entries.get(*name).ok_or_else(|| bad("no layer file"))?;
        copy_blob(&mut data, start, size, root, &hex)?;
        layers.push((hex, size));
    }
    Ok(ImageBlobs {
        config: (config_hex, config.len() as u64),
        layers,
    })
}

/// The machine-wide cache of images as registry blobs: `$SGSIM_CACHE_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/sgsim/blobs`. One entry per image ID (`<id hex>/image.json`
/// and `<id hex>/storage/`, laid out like a registry's storage), so an image is exported from the
/// host daemon once per machine, not once per run, and an image that changed (a new ID) never
/// uses an old entry. `sgsim images prune` removes entries of images the daemon no longer has.
pub fn blob_cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("SGSIM_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("sgsim").join("blobs")
}

/// The cache entry of an image ID (`sha256:<hex>`), or `None` for an ID that is not a digest.
pub(super) fn cache_entry(cache: &Path, image_id: &str) -> Option<PathBuf> {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| cache.join(hex))
}

/// The blobs of a complete cache entry (its `image.json` is written last).
pub(super) fn cached(entry: &Path) -> Option<ImageBlobs> {
    let text = std::fs::read(entry.join("image.json")).ok()?;
    let blobs: ImageBlobs = serde_json::from_slice(&text).ok()?;
    let storage = entry.join("storage");
    let whole = blobs.hexes().all(|hex| blob_path(&storage, hex).is_file());
    whole.then_some(blobs)
}

/// Records `blobs` as the entry's image once its blobs are all in `entry/storage`.
pub(super) fn mark_cached(entry: &Path, blobs: &ImageBlobs) -> Result<(), RegistryError> {
    let text = serde_json::to_vec_pretty(blobs).unwrap_or_default();
    // A name of its own per writer: parallel trials may complete the same entry at once.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = entry.join(format!("image.json.tmp.{}.{n}", std::process::id()));
    let file = entry.join("image.json");
    let written = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_err(format!("cannot write {}", file.display())))
}

fn blob_path(root: &Path, hex: &str) -> PathBuf {
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

impl ImageBlobs {
    fn hexes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.config.0.as_str()).chain(self.layers.iter().map(|(h, _)| h.as_str()))
    }
}

/// Puts the blobs of `from` (a cache entry's storage) into the storage `root`: a hard link where
/// both are on one file system (instant, no space), a copy otherwise.
pub(super) fn link_blobs(from: &Path, root: &Path, blobs: &ImageBlobs) -> Result<(), RegistryError> {
    for hex in blobs.hexes() {
        let (src, dst) = (blob_path(from, hex), blob_path(root, hex));
        if dst.exists() {
            continue;
        }
        let dir = dst.parent().unwrap_or(root);
        std::fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        if std::fs::hard_link(&src, &dst).is_ok() {
            continue;
        }
        put_blob(root, hex, |tmp| std::fs::copy(&src, tmp).map(|_| ()))?;
    }
    Ok(())
}

/// Removes the cache entries whose image ID `keep` rejects; returns the IDs removed.
pub fn prune_blob_cache(cache: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache) else {
        return removed;
    };
    for e in entries.flatten() {
        let hex = e.file_name().to_string_lossy().into_owned();
        let id = format!("sha256:{hex}");
        if cache_entry(cache, &id).is_some() && !keep(&id) && std::fs::remove_dir_all(e.path()).is_ok() {
            removed.push(id);
        }
    }
    removed
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
    /// A `docker save`-like tar of the given files.
    fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", data.len());
            h[124..136].copy_from_slice(size.as_bytes());
            h[156] = b'0';
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn a_cache_entry_is_used_only_when_whole_and_links_into_a_storage() {
        let dir = std::env::temp_dir().join(format!("sgsim-blob-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let id = format!("sha256:{}", "ab".repeat(32));
        let entry = super::cache_entry(&dir, &id).expect("a digest is an entry");
        assert!(super::cache_entry(&dir, "sgsim/busybox:1").is_none());
        let storage = entry.join("storage");
        let (config, layer) = (b"{}".to_vec(), b"layer bytes".to_vec());
        let blobs = super::ImageBlobs {
            config: (super::sha256_hex(&config), config.len() as u64),
            layers: vec![(super::sha256_hex(&layer), layer.len() as u64)],
        };
        super::write_blob(&storage, &blobs.config.0, &config).unwrap();
        assert_eq!(super::cached(&entry), None, "no image.json yet");
        super::mark_cached(&entry, &blobs).unwrap();
        assert_eq!(super::cached(&entry), None, "a layer is missing");
        super::write_blob(&storage, &blobs.layers[0].0, &layer).unwrap();
        assert_eq!(super::cached(&entry), Some(blobs.clone()));
        let root = dir.join("run-storage");
        super::link_blobs(&storage, &root, &blobs).unwrap();
        super::link_blobs(&storage, &root, &blobs).unwrap();
        assert_eq!(
            std::fs::read(super::blob_path(&root, &blobs.layers[0].0)).unwrap(),
            layer
        );
        // Removing the run's storage leaves the cache whole.
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(super::cached(&entry), Some(blobs));
        assert_eq!(super::prune_blob_cache(&dir, |i| i == id), Vec::<String>::new());
        assert_eq!(super::prune_blob_cache(&dir, |_| false), vec![id]);
        assert!(!entry.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_archive_becomes_blobs_streamed_and_a_truncated_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("sgsim-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let layer: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let layer_hex = super::sha256_hex(&layer);
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_hex}"]}}}}"#);
        let manifest = br#"[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["l1/layer.tar"]}]"#;
        let archive = tar(&[
            ("manifest.json", manifest),
            ("cfg.json", config.as_bytes()),
            ("l1/layer.tar", &layer),
        ]);
        let path = dir.join("image.tar");
        std::fs::write(&path, &archive).unwrap();
        let root = dir.join("storage");
        let blobs = super::blobs_from_archive(&path, &root).expect("blobs");
        assert_eq!(blobs.layers, vec![(layer_hex.clone(), layer.len() as u64)]);
        assert_eq!(blobs.config.0, super::sha256_hex(config.as_bytes()));
        let blob = |hex: &str| {
            root.join("docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data")
        };
        assert_eq!(std::fs::read(blob(&layer_hex)).unwrap(), layer);
        assert_eq!(std::fs::read(blob(&blobs.config.0)).unwrap(), config.as_bytes());

        std::fs::write(&path, &archive[..archive.len() - 1024 - 4096]).unwrap();
        let err = super::blobs_from_archive(&path, &dir.join("storage2")).expect_err("truncated");
        assert!(err.to_string().contains("not a docker save archive"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
