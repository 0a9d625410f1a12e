//! Real registries for a run: Debian's docker-registry (distribution v2, the `registry` stand-in
//! image) running as containers inside a node's dockerd, in the node's network namespace
//! (`network_mode: host`, listening on `127.0.0.1:<port>`); nothing is reachable from any other
//! address.
//!
//! How a pull travels: the kubelet asks the node's dockerd (`POST /images/create`, with the
//! credentials of the pod's imagePullSecrets). dockerd resolves
//! - Docker Hub names through its registry mirror `http://127.0.0.1` (`--registry-mirror`,
//!   [`crate::node::MIRROR_URL`], set by [`crate::node::Node::start`]);
//! - a private registry host (a Docker connector's URL, e.g. `registry.mycompany.io`) through the
//!   node's /etc/hosts entry `127.0.0.1 <host>` that [`RegistryHub::configure`] adds; loopback
//!   registries are insecure by default in dockerd, so it falls back from https (nothing on :443)
//!   to http on :80. A registry host with a port (`registry.mycompany.io:5000`,
//!   `127.0.0.1:5000`) is reached the same way on that port of the node's loopback, which a further
//!   node-agent forwarder sends to the same proxy ([`RegistryHub::configure`]).
//!
//! Port 80 of the node's loopback is a second node-agent instance forwarding every connection to
//! `<node dir>/registry.sock`, served here by a small HTTP/1.1 proxy: it picks the registry
//! instance by the `Host` header, applies the scenario's simulated conditions (a fixed delay per
//! pull, `429 Too Many Requests` for the first N pulls) and forwards the request through the node
//! agent's tunnel to that instance. Credentials are checked by the instance itself (htpasswd,
//! bcrypt entries made with Debian's `htpasswd` from apache2-utils).
//!
//! Each instance is seeded on demand: before a pull, the stand-in of the image is exported from
//! the host daemon and its blobs are written straight into the instance's storage (a bind mount of
//! `<node dir>/registries/<host>/storage`) under the image's repository and tag. An image a
//! scenario declares missing is never written, so the registry itself answers `manifest unknown`.
//! The node's dockerd then pulls it like any image: manifest, config and layers over HTTP.

mod credentials;
mod hub;
mod proxy;
mod secrets;
mod specs;
mod storage;
pub use storage::{blob_cache_root, prune_blob_cache};

use std::time::Duration;

use crate::images;

pub use credentials::{PullCredentials, auth_key_matches, credentials_for};
pub use hub::RegistryHub;
pub use proxy::RATE_LIMIT_BODY;
pub use secrets::{create_pod_secrets, pod_pull_credentials};
pub use specs::{specs_for_scenario, specs_from_fixtures, url_host};

/// The registry name of Docker Hub (images without a registry host).
pub const DOCKER_HUB: &str = "docker.io";
/// The proxy's socket in the node directory (`/run/sgsim/registry.sock` in the node).
pub const PROXY_SOCKET: &str = "registry.sock";

/// Errors of the run's registries.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A Docker call failed.
    #[error("{what}")]
    Docker {
        /// What was being done.
        what: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
    /// Loading the registry or a stand-in image into the node failed.
    #[error("cannot load an image into the node")]
    Image(#[from] images::ImageError),
    /// A file could not be written or the proxy socket not bound.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The registry instance did not answer in time.
    #[error("registry {host} did not start; its log ends with:\n{log}")]
    Start {
        /// The registry host.
        host: String,
        /// The last lines of its log.
        log: String,
    },
    /// Pushing a stand-in into a registry instance failed.
    #[error("cannot push {image} into registry {host}: {message}")]
    Push {
        /// The registry host.
        host: String,
        /// The image.
        image: String,
        /// dockerd's message.
        message: String,
    },
    /// A registry host sgsim cannot serve (it must be a plain host name, no port).
    #[error("registry host `{0}` is not supported (a host name without port is needed)")]
    Host(String),
}

/// One registry of a scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySpec {
    /// `docker.io` or the connector's registry host (`registry.mycompany.io`).
    pub host: String,
    /// When set, the instance requires these credentials (htpasswd).
    pub credentials: Option<(String, String)>,
    /// A fixed delay before each pull (its manifest request by tag).
    pub delay: Duration,
    /// The first N pulls are answered `429 Too Many Requests`.
    pub too_many_requests: u32,
    /// Image references (as written in the pod) the registry does not have.
    pub missing: Vec<String>,
}

/// Removes the machine-wide registry blob cache's entries ([`blob_cache_root`]) of
/// images the host daemon no longer has; returns their IDs.
pub async fn prune_unused_blob_cache() -> Result<Vec<String>, images::ImageError> {
    let host = crate::docker::host_docker().await?;
    let opts = bollard::query_parameters::ListImagesOptionsBuilder::new()
        .all(true)
        .build();
    let ids: std::collections::HashSet<String> = host
        .list_images(Some(opts))
        .await
        .map_err(images::ImageError::List)?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let root = blob_cache_root();
    Ok(
        tokio::task::spawn_blocking(move || prune_blob_cache(&root, |id| ids.contains(id)))
            .await
            .unwrap_or_default(),
    )
}

/// `RegistryError::Io` with `what` as its message, for `map_err`.
fn io_err(what: String) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |source| RegistryError::Io { what, source }
}

/// A blocking seeding task that panicked or was cancelled.
fn join_err(e: tokio::task::JoinError) -> RegistryError {
    RegistryError::Io {
        what: "seeding task failed".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The registry host of an image reference (Docker's rule: the first path component is a host
/// when it contains `.` or `:` or is `localhost`; otherwise Docker Hub).
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => match first {
            "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
            other => other.to_string(),
        },
        _ => DOCKER_HUB.to_string(),
    }
}

/// The repository path of an image in its registry (`library/alpine` for `alpine`) and its tag.
pub fn repository(image: &str) -> (String, String) {
    let name = images::node_reference(image);
    let host = registry_host(&name);
    let rest = if host == DOCKER_HUB {
        ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(&name)
            .to_string()
    } else {
        name.split_once('/').map(|(_, r)| r.to_string()).unwrap_or_default()
    };
    let (path, tag) = images::split_reference(&rest);
    let path = if host == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (path, tag)
}

/// A repository path and tag docker accepts (lowercase components of `[a-z0-9._-]`, no `..`),
/// so they are safe as storage paths.
fn valid_repository(path: &str, tag: &str) -> bool {
    let comp_ok = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    path.split('/').all(comp_ok)
        && !tag.is_empty()
        && tag.len() <= 128
        && tag != "."
        && tag != ".."
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A registry host sgsim serves: a DNS name (letters, digits, `-`, `.`), no port.
fn valid_host(host: &str) -> bool {
    let (name, port) = split_port(host);
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && port.is_none_or(|p| p > 0)
        && (port.is_some() || !host.contains(':'))
}

/// A registry host's name and port (`registry.x.io:5000` → (`registry.x.io`, Some(5000))).
pub(crate) fn split_port(host: &str) -> (&str, Option<u16>) {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (name, port.parse().ok()),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_repositories() {
        assert_eq!(registry_host("alpine:3"), "docker.io");
        assert_eq!(registry_host("harness/ci-addon:1.16.8"), "docker.io");
        assert_eq!(
            registry_host("registry.mycompany.io/harness/ci-addon:1"),
            "registry.mycompany.io"
        );
        assert_eq!(registry_host("docker.io/library/alpine"), "docker.io");
        assert_eq!(repository("alpine"), ("library/alpine".into(), "latest".into()));
        assert_eq!(
            repository("harness/ci-addon:1.16.8"),
            ("harness/ci-addon".into(), "1.16.8".into())
        );
        assert_eq!(repository("registry.x.io/a/b/c:2"), ("a/b/c".into(), "2".into()));
        assert_eq!(
            repository("docker.io/library/alpine:3"),
            ("library/alpine".into(), "3".into())
        );
        assert!(valid_host("registry.x.io"));
        assert!(valid_host("x.io:5000") && valid_host("127.0.0.1:31234") && valid_host("localhost:5000"));
        assert!(!valid_host("a;reboot") && !valid_host("") && !valid_host("-x"));
        assert!(!valid_host("x.io:") && !valid_host("x.io:99999") && !valid_host("x.io:0") && !valid_host("x.io:a"));
        assert_eq!(split_port("x.io:5000"), ("x.io", Some(5000)));
        assert_eq!(split_port("x.io"), ("x.io", None));
    }
}
