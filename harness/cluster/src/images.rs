//! Home of images without a registry: the catalog of stand-ins for vendor images and loading them
//! into a node's dockerd under the vendor name; building them (`scripts/build-images.sh`) is
//! `images/build.rs`.
//!
//! Every image is built locally and tagged by content hash (`sgsim/<name>:<hash12>`); the build
//! script prints `<name>=<tag>` lines and keeps them in `target/sgsim-images.env`. A step group
//! names vendor images (`alpine:3.19`, `harness/ci-addon:1.16.8`, `docker:24-dind`); the
//! [`ImageCatalog`] maps each to a stand-in, and [`load_into_node`] copies the stand-in from the
//! host daemon into the node's daemon and tags it there with the vendor name, so the node shows
//! vendor names.

mod build;
mod pull;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{ImportImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;

use crate::docker::DockerError;

pub use pull::{PullEvent, PullMode, images_to_pull, is_unreachable, pull_into_host};

pub use build::{
    BuildEvent, BuiltImages, ImagesState, ensure_built, images_env_file, images_state, prune_host, run_build_script,
};

/// The ENTRYPOINT and CMD of an image (the delegate asks the lite-engine's GetImageEntrypoint in
/// the product; sgsim knows its stand-ins).
pub type ImageEntrypoint = std::sync::Arc<dyn Fn(&str) -> Option<(Vec<String>, Vec<String>)> + Send + Sync>;

/// Every image the build script produces, in build order.
pub const IMAGE_NAMES: &[&str] = &[
    "debian-docker",
    "busybox",
    "bash",
    "pause",
    "hello-world",
    "addon",
    "lite-engine",
    "node",
    "dind",
    "registry",
    "python",
    "aws-plugin",
    "drone-git",
    "kubectl",
    "pwsh",
    "relay",
];

/// The stand-in for any image the catalog does not know: busybox's tools and GNU bash, as most
/// (Debian- and Ubuntu-based) images have; images known to have no bash (alpine, busybox) map to
/// `busybox`, which has none.
pub const DEFAULT_STANDIN: &str = "bash";

/// Errors of image building and loading.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The host daemon could not be reached.
    #[error("cannot reach the host Docker daemon")]
    Host(#[from] DockerError),
    /// The build script could not be started.
    #[error("cannot run {script}")]
    Spawn {
        /// The script path.
        script: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The build script failed; `tail` holds its last stderr lines.
    #[error("{script} failed ({status}):\n{tail}")]
    BuildFailed {
        /// The script path.
        script: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines it wrote on stderr.
        tail: String,
    },
    /// The build script succeeded but did not report every image.
    #[error("the image build did not report an image named {name}")]
    MissingImage {
        /// The image name (see [`IMAGE_NAMES`]).
        name: String,
    },
    /// Exporting from the host or loading into the node failed.
    #[error("cannot load {local} into the node as {vendor}")]
    Load {
        /// The stand-in's local tag.
        local: String,
        /// The vendor name.
        vendor: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
    /// The host daemon's image list could not be read.
    #[error("cannot list the host daemon's images")]
    List(#[source] bollard::errors::Error),
    /// Tagging the loaded image with the vendor name failed.
    #[error("cannot tag {local} as {vendor} in the node")]
    Tag {
        /// The stand-in's local tag.
        local: String,
        /// The vendor name.
        vendor: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
    /// Inspecting an image in a node failed for another reason than "not found".
    #[error("cannot inspect image {image}")]
    Inspect {
        /// The image reference.
        image: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
}

/// A stand-in image for a vendor image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandIn {
    /// The image as the step group names it.
    pub vendor: String,
    /// The local stand-in, `sgsim/<name>:<hash>`.
    pub local: String,
    /// The stand-in's ENTRYPOINT (empty: none).
    pub entrypoint: Vec<String>,
    /// The stand-in's CMD.
    pub cmd: Vec<String>,
    /// The stand-in's USER (None: root).
    pub user: Option<String>,
}

/// ENTRYPOINT and CMD of each stand-in, as scripts/build-images.sh sets them.
fn standin_config(name: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match name {
        "busybox" => (&[], &["sh"]),
        "bash" => (&[], &["bash"]),
        "hello-world" => (&[], &["/hello"]),
        "addon" => (&[], &["/usr/local/bin/ci-addon-linux-amd64"]),
        "lite-engine" => (&["/usr/local/bin/ci-lite-engine"], &[]),
        "dind" => (&["/usr/local/bin/dockerd-entrypoint.sh"], &[]),
        "pause" => (&["/pause"], &[]),
        "node" => (&["/usr/local/bin/sgsim-node-entrypoint"], &[]),
        "debian-docker" => (&[], &["/bin/bash"]),
        "registry" => (
            &["/usr/bin/docker-registry"],
            &["serve", "/etc/docker/registry/config.yml"],
        ),
        "python" => (&[], &["python3"]),
        "aws-plugin" => (&["/usr/local/bin/aws-plugin"], &[]),
        "drone-git" => (&["/usr/local/bin/drone-git"], &[]),
        "kubectl" => (&["/usr/local/bin/kubectl"], &["--help"]),
        "pwsh" => (&[], &["pwsh"]),
        "relay" => (
            &["/usr/local/bin/sgsim-relay"],
            &["--listen", "0.0.0.0:8080", "--relay-back", "0.0.0.0:8081"],
        ),
        _ => (&[], &[]),
    }
}

/// Maps vendor image names to stand-ins. Patterns are matched against the normalized vendor
/// reference (see [`normalize_reference`]) with `*` as the only wildcard; the first match wins,
/// overrides before built-in rules; anything else gets [`DEFAULT_STANDIN`].
#[derive(Debug, Clone)]
pub struct ImageCatalog {
    rules: Vec<(String, String)>,
    /// How many of `rules` (at the front) are `fixtures.images` overrides.
    overrides: usize,
    /// Images the host daemon holds under their own name, by normalized reference (consulted
    /// after the overrides, before the stand-ins).
    host: std::collections::HashMap<String, HostImage>,
    built: BuiltImages,
}

/// An image the host Docker daemon holds under the name a pod uses: it runs as itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostImage {
    /// The reference on the host daemon.
    pub reference: String,
    /// Its ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// Its CMD.
    pub cmd: Vec<String>,
    /// Its USER (None: root).
    pub user: Option<String>,
    /// Whether this run pulled it from its registry into the host daemon (`--pull`).
    pub pulled: bool,
}

/// Where the image a step ran as came from, in the order sgsim looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// A `fixtures.images` override named the stand-in.
    Override,
    /// The host Docker daemon has the image under its own name: the real image ran.
    Host,
    /// The run pulled the image from its registry into the host daemon (`--pull`): the real
    /// image ran.
    Pulled,
    /// A stand-in from the catalog.
    StandIn,
}

impl ImageSource {
    /// As shown and recorded: `fixtures.images`, `host`, `stand-in`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageSource::Override => "fixtures.images",
            ImageSource::Host => "host",
            ImageSource::Pulled => "pulled",
            ImageSource::StandIn => "stand-in",
        }
    }
}

/// Images sgsim itself provides in the pod whatever the host holds: the product's addon and
/// lite-engine (sgsim plays the delegate with its own protocol) and the sandbox.
const NEVER_FROM_HOST: &[&str] = &["addon", "lite-engine", "pause", "relay"];

/// What the host daemon holds of `images` under their own names (see [`ImageCatalog::with_host_images`]).
pub async fn host_images(host: &Docker, images: &[String]) -> Vec<(String, HostImage)> {
    let mut out = Vec::new();
    for image in images {
        let reference = normalize_reference(image);
        if reference.starts_with("sgsim/") {
            continue;
        }
        let Ok(info) = host.inspect_image(&reference).await else {
            continue;
        };
        let cfg = info.config.unwrap_or_default();
        out.push((
            image.clone(),
            HostImage {
                reference,
                entrypoint: cfg.entrypoint.unwrap_or_default(),
                cmd: cfg.cmd.unwrap_or_default(),
                user: cfg.user.filter(|u| !u.is_empty()),
                pulled: false,
            },
        ));
    }
    out
}

impl ImageCatalog {
    /// The built-in catalog over the built images: first the stand-ins of the step types' default
    /// images (from core's step-type table, [`sgsim_core::step_types::ALL`]), then vendor families.
    pub fn builtin(built: &BuiltImages) -> Self {
        let mut rules: Vec<(String, String)> = Vec::new();
        for t in sgsim_core::step_types::ALL {
            let (Some(image), Some(standin)) = (t.default_image, t.stand_in) else {
                continue;
            };
            let repo = split_reference(image).0;
            for pattern in [format!("{repo}:*"), format!("*/{repo}:*")] {
                if !rules.iter().any(|(p, _)| *p == pattern) {
                    rules.push((pattern, standin.to_string()));
                }
            }
        }
        let families = [
            // sgsim's own in-cluster delegate relay (`--backend kube`), by its own name.
            ("sgsim/relay:*", "relay"),
            ("harness/ci-addon:*", "addon"),
            ("*/harness/ci-addon:*", "addon"),
            ("harness/ci-lite-engine:*", "lite-engine"),
            ("*/harness/ci-lite-engine:*", "lite-engine"),
            ("docker:*dind*", "dind"),
            ("docker:*", "dind"),
            ("hello-world:*", "hello-world"),
            ("python:*", "python"),
            ("harnessdev/sam-*", "aws-plugin"),
            ("harnessdev/serverless-*", "aws-plugin"),
            ("*/harnessdev/sam-*", "aws-plugin"),
            ("*/harnessdev/serverless-*", "aws-plugin"),
            // The newer AWS SAM and Serverless plugin images (harness/developer-hub's SAM pipelines).
            ("harness/aws-sam-plugin*", "aws-plugin"),
            ("*/harness/aws-sam-plugin*", "aws-plugin"),
            ("harness/serverless-plugin*", "aws-plugin"),
            ("*/harness/serverless-plugin*", "aws-plugin"),
            ("harness/drone-git:*", "drone-git"),
            ("*/harness/drone-git:*", "drone-git"),
            ("bitnami/kubectl*", "kubectl"),
            ("*/bitnami/kubectl*", "kubectl"),
            ("rancher/kubectl*", "kubectl"),
            ("alpine/k8s*", "kubectl"),
            ("registry.k8s.io/kubectl*", "kubectl"),
            ("mcr.microsoft.com/powershell*", "pwsh"),
            ("mcr.microsoft.com/dotnet/sdk*", "pwsh"),
            ("*/powershell*", "pwsh"),
            ("powershell*", "pwsh"),
            ("alpine*", "busybox"),
            ("busybox*", "busybox"),
            ("*:*alpine*", "busybox"),
            ("ubuntu*", "bash"),
            ("debian*", "bash"),
            ("bash*", "bash"),
        ];
        rules.extend(families.iter().map(|(p, s)| (p.to_string(), s.to_string())));
        ImageCatalog {
            rules,
            overrides: 0,
            host: std::collections::HashMap::new(),
            built: built.clone(),
        }
    }

    /// The catalog a conformance trial runs with on any machine: every stand-in (as if built) and
    /// the scenario's `fixtures.images` overrides; no host images.
    pub fn pinned(overrides: &std::collections::BTreeMap<String, String>) -> Self {
        let mut built = BuiltImages::default();
        for name in IMAGE_NAMES {
            built.insert(name, &format!("sgsim/{name}:pinned"));
        }
        Self::builtin(&built).with_overrides(overrides)
    }

    /// [`Self::with_override`] for each of a scenario's `fixtures.images` (vendor → stand-in).
    pub fn with_overrides(self, overrides: &std::collections::BTreeMap<String, String>) -> Self {
        overrides.iter().fold(self, |catalog, (vendor, standin)| {
            catalog.with_override(vendor, standin)
        })
    }

    /// Adds a rule in front of all others: vendor images matching `vendor_pattern` use the
    /// stand-in `standin_name` (a name from [`IMAGE_NAMES`]).
    pub fn with_override(mut self, vendor_pattern: &str, standin_name: &str) -> Self {
        self.rules
            .insert(0, (normalize_pattern(vendor_pattern), standin_name.to_string()));
        self.overrides += 1;
        self
    }

    /// Images the host daemon holds under their own names run as themselves, unless a
    /// `fixtures.images` override names a stand-in for them (sgsim's own addon, lite-engine and
    /// sandbox are never replaced).
    pub fn with_host_images(mut self, images: Vec<(String, HostImage)>) -> Self {
        for (vendor, img) in images {
            self.host.insert(normalize_reference(&vendor), img);
        }
        self
    }

    /// Where `vendor` comes from.
    pub fn source(&self, vendor: &str) -> ImageSource {
        let norm = normalize_reference(vendor);
        if self.rules[..self.overrides].iter().any(|(p, _)| glob_match(p, &norm)) {
            ImageSource::Override
        } else if let Some(h) = self.host.get(&norm)
            && !self.provided_by_sgsim(vendor)
        {
            if h.pulled {
                ImageSource::Pulled
            } else {
                ImageSource::Host
            }
        } else {
            ImageSource::StandIn
        }
    }

    /// Whether sgsim runs its own image for `vendor` whatever the host holds: the product's addon
    /// and lite-engine (sgsim plays the delegate with its own protocol) and the sandbox.
    pub fn provided_by_sgsim(&self, vendor: &str) -> bool {
        NEVER_FROM_HOST.contains(&self.rule_name(&normalize_reference(vendor)))
    }

    /// What `vendor` runs as: the image itself when it comes from the host, else the stand-in's name.
    pub fn ran_as(&self, vendor: &str) -> String {
        match self.source(vendor) {
            ImageSource::Host | ImageSource::Pulled => normalize_reference(vendor),
            _ => self.standin_name(vendor).to_string(),
        }
    }

    /// Whether `vendor` runs as itself (host) or as a stand-in a rule chose for it; false when
    /// only the fallback [`DEFAULT_STANDIN`] would run.
    pub fn models(&self, vendor: &str) -> bool {
        let norm = normalize_reference(vendor);
        self.source(vendor) != ImageSource::StandIn
            || self
                .rules
                .iter()
                .any(|(p, s)| glob_match(p, &norm) && self.built.get(s).is_some())
    }

    fn rule_name(&self, norm: &str) -> &str {
        self.rules
            .iter()
            .find(|(p, s)| glob_match(p, norm) && self.built.get(s).is_some())
            .map(|(_, s)| s.as_str())
            .unwrap_or(DEFAULT_STANDIN)
    }

    /// The rules in order: (vendor pattern, stand-in name).
    pub fn rules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules.iter().map(|(p, s)| (p.as_str(), s.as_str()))
    }

    /// The stand-in name a vendor image maps to.
    pub fn standin_name(&self, vendor: &str) -> &str {
        self.rule_name(&normalize_reference(vendor))
    }

    /// ENTRYPOINT/CMD of what each vendor image runs as, for the runner (Background steps that set
    /// neither entrypoint nor command).
    pub fn entrypoint_lookup(self: &std::sync::Arc<Self>) -> ImageEntrypoint {
        let catalog = self.clone();
        std::sync::Arc::new(move |image: &str| {
            let s = catalog.resolve(image);
            Some((s.entrypoint, s.cmd))
        })
    }

    /// The image a vendor image runs as: the host's own image (see [`Self::source`]) or the stand-in.
    pub fn resolve(&self, vendor: &str) -> StandIn {
        if matches!(self.source(vendor), ImageSource::Host | ImageSource::Pulled)
            && let Some(h) = self.host.get(&normalize_reference(vendor))
        {
            return StandIn {
                vendor: vendor.to_string(),
                local: h.reference.clone(),
                entrypoint: h.entrypoint.clone(),
                cmd: h.cmd.clone(),
                user: h.user.clone(),
            };
        }
        let name = self.standin_name(vendor);
        let local = self
            .built
            .get(name)
            .map(str::to_string)
            .unwrap_or_else(|| format!("sgsim/{name}:missing"));
        let (entrypoint, cmd) = standin_config(name);
        StandIn {
            vendor: vendor.to_string(),
            local,
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            user: None,
        }
    }
}

fn normalize_pattern(p: &str) -> String {
    if p.contains('*') {
        p.to_string()
    } else {
        normalize_reference(p)
    }
}

/// Normalizes an image reference for matching: Docker Hub prefixes (`docker.io/`,
/// `index.docker.io/`, `library/`) and any `@digest` removed, `:latest` added when untagged.
/// `docker.io/library/alpine` → `alpine:latest`; `harness/ci-addon:1.16.8` stays.
pub fn normalize_reference(reference: &str) -> String {
    let mut r = reference.trim();
    for p in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = r.strip_prefix(p) {
            r = rest;
        }
    }
    if let Some(rest) = r.strip_prefix("library/") {
        r = rest;
    }
    let r = r.split('@').next().unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// The name under which [`load_into_node`] tags a vendor image in the node: the reference as
/// written, with a digest replaced by its tag (or `latest`), since a digest cannot be a tag.
pub fn node_reference(vendor: &str) -> String {
    let v = vendor.trim();
    match v.split_once('@') {
        None => v.to_string(),
        Some((name, _)) => {
            let last = name.rsplit('/').next().unwrap_or(name);
            if last.contains(':') {
                name.to_string()
            } else {
                format!("{name}:latest")
            }
        }
    }
}

/// Splits `repo[:tag]` into repository and tag (`latest` when absent); a registry port is not
/// mistaken for a tag.
pub fn split_reference(reference: &str) -> (String, String) {
    let slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[slash..].rfind(':') {
        Some(i) => (
            reference[..slash + i].to_string(),
            reference[slash + i + 1..].to_string(),
        ),
        None => (reference.to_string(), "latest".to_string()),
    }
}

/// `*`-only glob match.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

/// Whether the vendor image is present in the node's daemon (under [`node_reference`]).
pub async fn present_on_node(node: &Docker, vendor: &str) -> Result<bool, ImageError> {
    let reference = node_reference(vendor);
    match node.inspect_image(&reference).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(source) => Err(ImageError::Inspect {
            image: reference,
            source,
        }),
    }
}

/// Copies the stand-in from the host daemon into the node's daemon (`docker save | docker load`,
/// streamed; skipped when the node already has the stand-in under another vendor name) and tags
/// it there as the vendor name. Returns how long it took.
pub async fn load_into_node(host: &Docker, node: &Docker, standin: &StandIn) -> Result<Duration, ImageError> {
    let started = Instant::now();
    let load_err = |source| ImageError::Load {
        local: standin.local.clone(),
        vendor: standin.vendor.clone(),
        source,
    };
    let node_has_local = match node.inspect_image(&standin.local).await {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => false,
        Err(e) => return Err(load_err(e)),
    };
    if !node_has_local {
        let export = host.export_image(&standin.local);
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut results = node.import_image_stream(options, export, None);
        while let Some(r) = results.next().await {
            r.map_err(load_err)?;
        }
    }
    let (repo, tag) = split_reference(&node_reference(&standin.vendor));
    node.tag_image(
        &standin.local,
        Some(TagImageOptionsBuilder::new().repo(&repo).tag(&tag).build()),
    )
    .await
    .map_err(|source| ImageError::Tag {
        local: standin.local.clone(),
        vendor: standin.vendor.clone(),
        source,
    })?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_types_default_images_use_their_table_stand_in() {
        let c = ImageCatalog::builtin(&build::sample());
        let mut checked = 0;
        for t in sgsim_core::step_types::ALL {
            let (Some(image), Some(standin)) = (t.default_image, t.stand_in) else {
                continue;
            };
            assert_eq!(c.standin_name(image), standin, "{}", t.name);
            let (repo, _) = split_reference(image);
            assert_eq!(c.standin_name(&format!("{repo}:9.9.9")), standin, "{}: any tag", t.name);
            assert_eq!(
                c.standin_name(&format!("registry.example.com/{image}")),
                standin,
                "{}: behind a connector",
                t.name
            );
            checked += 1;
        }
        assert!(checked >= 3, "the table names stand-ins for GitClone and the AWS steps");
    }

    #[test]
    fn the_pinned_catalog_is_the_stand_ins_and_the_overrides() {
        let overrides = std::collections::BTreeMap::from([("alpine:3.19".to_string(), "python".to_string())]);
        let c = ImageCatalog::pinned(&overrides);
        assert_eq!(c.ran_as("alpine:3.19"), "python");
        assert_eq!(c.source("alpine:3.19"), ImageSource::Override);
        assert_eq!(c.ran_as("alpine:3.18"), "busybox");
        assert_eq!(c.source("alpine:3.18"), ImageSource::StandIn);
        assert_eq!(c.ran_as("docker:dind"), "dind");
        assert_eq!(c.ran_as("maven:3-openjdk"), DEFAULT_STANDIN);
    }

    #[test]
    fn resolves_vendor_images() {
        let c = ImageCatalog::builtin(&build::sample());
        let name = |v: &str| c.resolve(v).local;
        assert_eq!(name("harness/ci-addon:1.16.8"), "sgsim/addon:eee");
        assert_eq!(name("registry.example.com/harness/ci-addon:1.16.8"), "sgsim/addon:eee");
        assert_eq!(name("harness/ci-lite-engine:1.16.8"), "sgsim/lite-engine:fff");
        assert_eq!(name("docker:dind"), "sgsim/dind:hhh");
        assert_eq!(name("docker:24.0-dind"), "sgsim/dind:hhh");
        assert_eq!(name("docker"), "sgsim/dind:hhh");
        assert_eq!(name("docker.io/library/docker:24"), "sgsim/dind:hhh");
        assert_eq!(name("alpine"), "sgsim/busybox:bbb");
        assert_eq!(name("alpine:3.19"), "sgsim/busybox:bbb");
        assert_eq!(name("ubuntu:22.04"), "sgsim/bash:bsh");
        assert_eq!(name("bash:5.2"), "sgsim/bash:bsh");
        assert_eq!(
            name("node:20-alpine"),
            "sgsim/busybox:bbb",
            "alpine variants have no bash"
        );
        assert_eq!(name("hello-world"), "sgsim/hello-world:ddd");
        assert_eq!(
            name("maven:3-openjdk"),
            "sgsim/bash:bsh",
            "unknown images: busybox tools and bash"
        );
        assert_eq!(name("harnessdev/sam-build:1.82.0-latest"), "sgsim/aws-plugin:kkk");
        assert_eq!(name("harness/aws-sam-plugin:1.0.1-linux-amd64"), "sgsim/aws-plugin:kkk");
        assert_eq!(
            name("registry.example.com/harness/aws-sam-plugin:1.0.1"),
            "sgsim/aws-plugin:kkk"
        );
        assert_eq!(
            name("harnessdev/serverless-deploy:3.30.1-1.0.0"),
            "sgsim/aws-plugin:kkk"
        );
        assert_eq!(
            name("registry.example.com/harnessdev/sam-deploy:1.82.0-latest"),
            "sgsim/aws-plugin:kkk"
        );
        assert_eq!(name("harness/drone-git:1.3.4-rootless"), "sgsim/drone-git:mmm");
        assert_eq!(
            name("registry.example.com/harness/drone-git:1.7.10-rootless"),
            "sgsim/drone-git:mmm"
        );
        assert_eq!(
            c.resolve("harness/drone-git:1.3.4-rootless").entrypoint,
            ["/usr/local/bin/drone-git"]
        );
        assert_eq!(name("bitnami/kubectl:1.31"), "sgsim/kubectl:lll");
        assert_eq!(name("mcr.microsoft.com/powershell:7.4-ubuntu-22.04"), "sgsim/pwsh:nnn");
        assert_eq!(name("mcr.microsoft.com/dotnet/sdk:8.0"), "sgsim/pwsh:nnn");
        assert_eq!(name("docker.io/bitnami/kubectl:latest"), "sgsim/kubectl:lll");
        assert_eq!(
            c.resolve("harnessdev/sam-deploy:1.82.0-latest").entrypoint,
            ["/usr/local/bin/aws-plugin"]
        );
        let s = c.resolve("docker:dind");
        assert_eq!(s.vendor, "docker:dind");
        assert_eq!(s.entrypoint, ["/usr/local/bin/dockerd-entrypoint.sh"]);
        assert_eq!(c.resolve("alpine").cmd, ["sh"]);
        let c = c.with_override("maven*", "dind").with_override("node:20", "addon");
        assert_eq!(name_of(&c, "maven:3"), "sgsim/dind:hhh");
        assert_eq!(name_of(&c, "node:20"), "sgsim/addon:eee");
        assert_eq!(name_of(&c, "node:21"), "sgsim/bash:bsh");
        // Overrides to a stand-in that was not built fall through.
        let c = c.with_override("foo*", "nonexistent");
        assert_eq!(name_of(&c, "foo:1"), "sgsim/bash:bsh");
    }

    fn name_of(c: &ImageCatalog, v: &str) -> String {
        c.resolve(v).local
    }

    #[test]
    fn references() {
        assert_eq!(normalize_reference("alpine"), "alpine:latest");
        assert_eq!(
            normalize_reference("docker.io/library/alpine@sha256:abc"),
            "alpine:latest"
        );
        assert_eq!(normalize_reference("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(node_reference("alpine@sha256:abc"), "alpine:latest");
        assert_eq!(node_reference("alpine:3@sha256:abc"), "alpine:3");
        assert_eq!(split_reference("alpine"), ("alpine".into(), "latest".into()));
        assert_eq!(
            split_reference("localhost:5000/x:1"),
            ("localhost:5000/x".into(), "1".into())
        );
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
        assert!(glob_match("docker:*dind*", "docker:24-dind-rootless"));
        assert!(!glob_match("docker:*dind*", "docker:24"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "ac"));
    }
}
