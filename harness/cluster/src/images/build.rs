//! Home of building the images: `scripts/build-images.sh` run when a tag is missing or its
//! inputs changed, the tags it reports ([`BuiltImages`], kept in `target/sgsim-images.env`), and
//! pruning old tags from the host daemon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::{IMAGE_NAMES, ImageError};
use crate::docker;

/// The images the build script produced: name → tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltImages {
    tags: BTreeMap<String, String>,
}

impl BuiltImages {
    /// Parses `<name>=<tag>` lines (blank lines and `#` comments ignored).
    pub fn parse(text: &str) -> Self {
        let tags = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        BuiltImages { tags }
    }

    /// Reads a tags file written by the build script.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// The tag of image `name` (e.g. `sgsim/node:0123456789ab`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.tags.get(name).map(String::as_str)
    }

    /// Like [`BuiltImages::get`], as an error when missing.
    pub fn require(&self, name: &str) -> Result<&str, ImageError> {
        self.get(name)
            .ok_or_else(|| ImageError::MissingImage { name: name.to_string() })
    }

    /// All (name, tag) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds or replaces one entry (tests, overrides).
    pub fn insert(&mut self, name: &str, tag: &str) {
        self.tags.insert(name.to_string(), tag.to_string());
    }

    fn missing(&self) -> Option<&'static str> {
        IMAGE_NAMES.iter().copied().find(|n| !self.tags.contains_key(*n))
    }
}

/// Progress of [`ensure_built`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// Every image exists and nothing changed since the last build.
    UpToDate,
    /// The build script starts, and why.
    Building {
        /// Why a build is needed.
        reason: String,
    },
    /// One stderr line of the build script (its progress).
    Progress(String),
    /// The build script finished.
    Finished {
        /// How long it ran.
        took: Duration,
    },
}

/// The tags file's header line when every image was built by one run of the script.
const COMPLETE_MARKER: &str = "# sgsim images: complete";

/// `target/sgsim-images.env` under `repo_root` (where the build script keeps the tags).
pub fn images_env_file(repo_root: &Path) -> PathBuf {
    std::env::var_os("SGSIM_IMAGES_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root.join("target").join("sgsim-images.env"))
}

static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes sure every image exists on the host daemon and returns the tags. Runs
/// `scripts/build-images.sh` only when a tag is missing (or its inputs changed since the tags file
/// was written); the script's stderr lines arrive as [`BuildEvent::Progress`].
pub async fn ensure_built(
    repo_root: &Path,
    progress: &(dyn Fn(BuildEvent) + Send + Sync),
) -> Result<BuiltImages, ImageError> {
    let _guard = BUILD_LOCK.lock().await;
    match images_state(repo_root).await? {
        ImagesState::Current(built) => {
            progress(BuildEvent::UpToDate);
            Ok(built)
        }
        ImagesState::Stale(reason) => {
            progress(BuildEvent::Building { reason });
            run_build_script(repo_root, progress).await
        }
    }
}

/// Whether the images need a build.
#[derive(Debug, Clone)]
pub enum ImagesState {
    /// Every image is on the host daemon and none of their inputs changed since the tags file was
    /// written: their tags.
    Current(BuiltImages),
    /// A build is needed, and why.
    Stale(String),
}

/// The [`ImagesState`] of the images of `repo_root`.
pub async fn images_state(repo_root: &Path) -> Result<ImagesState, ImageError> {
    let env_file = images_env_file(repo_root);
    let host = docker::host_docker().await?;
    let complete = std::fs::read_to_string(&env_file).is_ok_and(|t| t.lines().any(|l| l.trim() == COMPLETE_MARKER));
    let built = match BuiltImages::from_file(&env_file) {
        Err(_) => return Ok(ImagesState::Stale(format!("no {}", env_file.display()))),
        Ok(_) if !complete => return Ok(ImagesState::Stale("the last image build was partial".to_string())),
        Ok(built) => built,
    };
    if let Some(name) = built.missing() {
        return Ok(ImagesState::Stale(format!("no {name} image recorded")));
    }
    if let Some(changed) = newest_input(repo_root, &env_file) {
        return Ok(ImagesState::Stale(format!("{} changed", changed.display())));
    }
    for (name, tag) in built.iter() {
        if IMAGE_NAMES.contains(&name) && host.inspect_image(tag).await.is_err() {
            return Ok(ImagesState::Stale(format!("{tag} is not on the host daemon")));
        }
    }
    Ok(ImagesState::Current(built))
}

/// Runs `scripts/build-images.sh` (all images) and parses its `<name>=<tag>` output.
pub async fn run_build_script(
    repo_root: &Path,
    progress: &(dyn Fn(BuildEvent) + Send + Sync),
) -> Result<BuiltImages, ImageError> {
    let script = repo_root.join("scripts").join("build-images.sh");
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(&script)
        .current_dir(repo_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The script's docker CLI talks to the real daemon, never to the compat proxy.
    match docker::child_docker_host() {
        Some(h) => cmd.env("DOCKER_HOST", h),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    let mut child = cmd.spawn().map_err(|source| ImageError::Spawn {
        script: script.clone(),
        source,
    })?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let read_stdout = async {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    };
    let read_stderr = async {
        let mut tail: Vec<String> = Vec::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            progress(BuildEvent::Progress(line.clone()));
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
        tail
    };
    let (out, tail) = futures::join!(read_stdout, read_stderr);
    let status = child.wait().await.map_err(|source| ImageError::Spawn {
        script: script.clone(),
        source,
    })?;
    progress(BuildEvent::Finished {
        took: started.elapsed(),
    });
    if !status.success() {
        return Err(ImageError::BuildFailed {
            script,
            status,
            tail: tail.join("\n"),
        });
    }
    let built = BuiltImages::parse(&out);
    if let Some(name) = built.missing() {
        return Err(ImageError::MissingImage { name: name.to_string() });
    }
    Ok(built)
}

/// The first input of the image build newer than `stamp` (recipes, scripts, engine sources,
/// Cargo.lock, binaries given through SGSIM_ENGINE_BIN_DIR), if any.
fn newest_input(repo_root: &Path, stamp: &Path) -> Option<PathBuf> {
    let stamp_time = std::fs::metadata(stamp).and_then(|m| m.modified()).ok()?;
    let mut roots = vec![
        repo_root.join("scripts").join("build-images.sh"),
        repo_root.join("scripts").join("build-engine.sh"),
        repo_root.join("scripts").join("images"),
        repo_root.join("harness").join("engine"),
        repo_root.join("Cargo.lock"),
    ];
    if let Some(dir) = std::env::var_os("SGSIM_ENGINE_BIN_DIR") {
        let dir = PathBuf::from(dir);
        roots.extend(["sgsim-addon", "sgsim-lite-engine", "sgsim-node-agent"].map(|b| dir.join(b)));
    }
    roots.into_iter().find_map(|r| newer_than(&r, stamp_time))
}

fn newer_than(path: &Path, t: SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "target" || name.starts_with('.') {
            return None;
        }
        let entries = std::fs::read_dir(path).ok()?;
        return entries.flatten().find_map(|e| newer_than(&e.path(), t));
    }
    meta.modified().ok().filter(|m| *m > t).map(|_| path.to_path_buf())
}

/// Removes `sgsim/<name>:*` tags on the host daemon other than the current ones in `built`;
/// a tag a container still uses stays (the daemon refuses). Returns the removed tags.
pub async fn prune_host(built: &BuiltImages) -> Result<Vec<String>, ImageError> {
    let host = docker::host_docker().await?;
    let current: std::collections::HashSet<&str> = built.iter().map(|(_, t)| t).collect();
    let mut removed = Vec::new();
    for name in IMAGE_NAMES {
        let filters = std::collections::HashMap::from([("reference".to_string(), vec![format!("sgsim/{name}")])]);
        let opts = bollard::query_parameters::ListImagesOptionsBuilder::new()
            .filters(&filters)
            .build();
        let Ok(list) = host.list_images(Some(opts)).await else {
            continue;
        };
        for img in list {
            for tag in img.repo_tags {
                if current.contains(tag.as_str()) {
                    continue;
                }
                let rm = bollard::query_parameters::RemoveImageOptionsBuilder::new().build();
                if host.remove_image(&tag, Some(rm), None).await.is_ok() {
                    removed.push(tag);
                }
            }
        }
    }
    Ok(removed)
}

/// Tags of every image, as a complete build reports them (tests).
#[cfg(test)]
pub(super) fn sample() -> BuiltImages {
    BuiltImages::parse(
        "# tags\ndebian-docker=sgsim/debian-docker:aaa\nbusybox=sgsim/busybox:bbb\nbash=sgsim/bash:bsh\npause=sgsim/pause:ccc\n\
         hello-world=sgsim/hello-world:ddd\naddon=sgsim/addon:eee\nlite-engine=sgsim/lite-engine:fff\n\
         node=sgsim/node:ggg\ndind=sgsim/dind:hhh\nregistry=sgsim/registry:iii\npython=sgsim/python:jjj\n\
         aws-plugin=sgsim/aws-plugin:kkk\ndrone-git=sgsim/drone-git:mmm\nkubectl=sgsim/kubectl:lll\npwsh=sgsim/pwsh:nnn\nrelay=sgsim/relay:ooo\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags() {
        let b = sample();
        assert_eq!(b.get("node"), Some("sgsim/node:ggg"));
        assert_eq!(b.missing(), None);
        assert_eq!(BuiltImages::parse("node=x").missing(), Some("debian-docker"));
    }
}
