//! Real registries for a run: Debian's docker-registry (distribution v2, the `registry` stand-in
//! image) running as containers inside a node's dockerd, in the node's network namespace
//! (`network_mode: host`, listening on `127.0.0.1:<port>`); nothing is reachable from any other
//! address.
//!
//! How a pull travels: the kubelet asks the node's dockerd (`POST /images/create`, with the
//! credentials of the pod's imagePullSecrets). dockerd resolves
//! - Docker Hub names through its registry mirror `http://127.0.0.1` (`--registry-mirror`, [`crate::node::MIRROR_URL`], set
//!   by [`crate::node::Node::start`]);
//! - a private registry host (a Docker connector's URL, e.g. `registry.mycompany.io`) through the
//!   node's /etc/hosts entry `127.0.0.1 <host>` that [`RegistryHub::configure`] adds; loopback
//!   registries are insecure by default in dockerd, so it falls back from https (nothing on :443)
//!   to http on :80.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

use crate::images::{self, StandIn};

/// The registry name of Docker Hub (images without a registry host).
pub const DOCKER_HUB: &str = "docker.io";
/// The proxy's socket in the node directory (`/run/sgsim/registry.sock` in the node).
pub const PROXY_SOCKET: &str = "registry.sock";
/// The port of the Docker Hub instance; private registries get the ports after it.
const HUB_PORT: u16 = 5000;
/// How long an instance may take to answer.
const INSTANCE_STARTUP: Duration = Duration::from_secs(20);
/// Docker Hub's answer when the pull rate limit is reached (status 429).
pub const RATE_LIMIT_BODY: &str = "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit\"}]}\n";
/// Go's resolver re-reads /etc/hosts at most every 5 s; after adding a host, pulls of it wait
/// this long past the edit so dockerd sees the entry.
const HOSTS_CACHE: Duration = Duration::from_millis(5200);

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
    Image(#[source] images::ImageError),
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

/// Credentials for one pull (from a `kubernetes.io/dockerconfigjson` secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCredentials {
    /// The registry key in the docker config (`registry.mycompany.io`).
    pub server: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl PullCredentials {
    /// As bollard's credentials.
    pub fn docker(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
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

/// Whether a docker config `auths` key names `host` (`registry.x.io`, `https://registry.x.io/v2/`,
/// `https://index.docker.io/v1/` for Docker Hub).
pub fn auth_key_matches(key: &str, host: &str) -> bool {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or(k);
    let k = match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    };
    k == host
}

/// The credentials for `image` in `.dockerconfigjson` documents (first match wins).
pub fn credentials_for(image: &str, configs: &[Vec<u8>]) -> Option<PullCredentials> {
    let host = registry_host(image);
    for raw in configs {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            continue;
        };
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
            continue;
        };
        for (key, entry) in auths {
            if !auth_key_matches(key, &host) {
                continue;
            }
            let mut user = entry
                .get("username")
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_string();
            let mut pass = entry
                .get("password")
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_string();
            if user.is_empty()
                && let Some(decoded) = entry
                    .get("auth")
                    .and_then(|a| a.as_str())
                    .and_then(sgsim_core::base64::decode)
                && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
            {
                user = u.to_string();
                pass = p.to_string();
            }
            return Some(PullCredentials {
                server: key.clone(),
                username: user,
                password: pass,
            });
        }
    }
    None
}

/// The credentials of a pod's imagePullSecrets for `image`, read through the API server (the
/// kubelet's keyring). Secrets that are missing or of another type are skipped, as the kubelet does.
pub async fn pod_pull_credentials(
    client: &kube::Client,
    pod: &k8s_openapi::api::core::v1::Pod,
    image: &str,
) -> Option<PullCredentials> {
    use k8s_openapi::api::core::v1::Secret;
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let refs = pod.spec.as_ref()?.image_pull_secrets.clone()?;
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
    let mut configs = Vec::new();
    for r in refs {
        let Ok(secret) = api.get(&r.name).await else {
            continue;
        };
        if secret.type_.as_deref() != Some("kubernetes.io/dockerconfigjson") {
            continue;
        }
        if let Some(data) = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson")) {
            configs.push(data.0.clone());
        }
    }
    credentials_for(image, &configs)
}

struct Instance {
    port: u16,
    container: String,
    credentials: Option<(String, String)>,
    seeded: HashSet<String>,
}

#[derive(Default)]
struct Conditions {
    delay: Duration,
    remaining_429: u32,
}

#[derive(Default)]
struct State {
    instances: HashMap<String, Instance>,
    hosts: HashSet<String>,
    hosts_changed: Option<Instant>,
}

/// The registries of one physical node, and the proxy in front of them.
pub struct RegistryHub {
    host_docker: Docker,
    node_docker: Docker,
    node_container: String,
    node_dir: PathBuf,
    agent_socket: PathBuf,
    registry_image: String,
    labels: HashMap<String, String>,
    state: Mutex<State>,
    /// One seeding at a time per (registry, image): parallel trials pulling the same image must
    /// not untag each other's push.
    seeding: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Stand-in blobs already in an instance's storage, by "<host> <stand-in tag>".
    blobs: Mutex<HashMap<String, ImageBlobs>>,
    routes: Arc<std::sync::Mutex<HashMap<String, u16>>>,
    conditions: Arc<std::sync::Mutex<HashMap<String, Conditions>>>,
    access: Arc<std::sync::Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RegistryHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryHub")
            .field("node", &self.node_container)
            .finish()
    }
}

impl Drop for RegistryHub {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(self.node_dir.join(PROXY_SOCKET));
    }
}

impl RegistryHub {
    /// Serves the proxy on `<node dir>/registry.sock`. Instances start on first use.
    pub async fn start(
        node: &crate::node::Node,
        host_docker: Docker,
        registry_image: &str,
        labels: HashMap<String, String>,
    ) -> Result<Arc<RegistryHub>, RegistryError> {
        let sock = node.dir().join(PROXY_SOCKET);
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).map_err(|source| RegistryError::Io {
            what: format!("cannot listen on {}", sock.display()),
            source,
        })?;
        let routes: Arc<std::sync::Mutex<HashMap<String, u16>>> = Arc::default();
        let conditions: Arc<std::sync::Mutex<HashMap<String, Conditions>>> = Arc::default();
        let access: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let agent = node.agent_socket();
        let server = tokio::spawn(serve(
            listener,
            agent.clone(),
            routes.clone(),
            conditions.clone(),
            access.clone(),
        ));
        Ok(Arc::new(RegistryHub {
            host_docker,
            node_docker: node.docker().clone(),
            node_container: node.container_id().to_string(),
            node_dir: node.dir().to_path_buf(),
            agent_socket: agent,
            registry_image: registry_image.to_string(),
            labels,
            state: Mutex::new(State::default()),
            seeding: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
            routes,
            conditions,
            access,
            server,
        }))
    }

    /// Makes these registries exist (instance, /etc/hosts entry, credentials) and sets their
    /// conditions (resetting earlier counts). Docker Hub always exists.
    pub async fn configure(&self, specs: &[RegistrySpec]) -> Result<(), RegistryError> {
        let mut all: BTreeMap<String, RegistrySpec> = BTreeMap::new();
        all.insert(
            DOCKER_HUB.into(),
            RegistrySpec {
                host: DOCKER_HUB.into(),
                ..Default::default()
            },
        );
        for s in specs {
            all.insert(s.host.clone(), s.clone());
        }
        for spec in all.values() {
            if spec.host != DOCKER_HUB && !valid_host(&spec.host) {
                // Pulls from it fail as from an unknown host (nothing resolves it).
                tracing::warn!(
                    "registry host `{}` is not served (a host name without port is needed)",
                    spec.host
                );
                continue;
            }
            self.instance(spec).await?;
            let mut c = self.conditions.lock().unwrap_or_else(|e| e.into_inner());
            c.insert(
                spec.host.clone(),
                Conditions {
                    delay: spec.delay,
                    remaining_429: spec.too_many_requests,
                },
            );
        }
        // dockerd sees a new /etc/hosts entry only once Go's resolver re-reads the file.
        let changed = self.state.lock().await.hosts_changed;
        if let Some(t) = changed {
            let wait = (t + HOSTS_CACHE).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    /// Starts the instance of `spec.host` if needed; updates its credentials.
    async fn instance(&self, spec: &RegistrySpec) -> Result<u16, RegistryError> {
        let mut st = self.state.lock().await;
        if let Some(inst) = st.instances.get_mut(&spec.host) {
            if inst.credentials != spec.credentials && spec.credentials.is_some() {
                self.write_htpasswd(&spec.host, spec.credentials.as_ref()).await?;
                inst.credentials = spec.credentials.clone();
            }
            return Ok(inst.port);
        }
        if spec.host != DOCKER_HUB && !valid_host(&spec.host) {
            return Err(RegistryError::Host(spec.host.clone()));
        }
        if st.instances.is_empty() {
            let standin = StandIn {
                vendor: self.registry_image.clone(),
                local: self.registry_image.clone(),
                entrypoint: vec![],
                cmd: vec![],
                user: None,
            };
            if !images::present_on_node(&self.node_docker, &self.registry_image)
                .await
                .unwrap_or(false)
            {
                images::load_into_node(&self.host_docker, &self.node_docker, &standin)
                    .await
                    .map_err(RegistryError::Image)?;
            }
        }
        let port = if spec.host == DOCKER_HUB {
            HUB_PORT
        } else {
            HUB_PORT + 1 + st.instances.len() as u16
        };
        let name = format!("sgsim-registry-{port}");
        let mut env = vec![
            format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
            format!("REGISTRY_HTTP_SECRET=sgsim-{port}"),
        ];
        let storage = storage_dir(&self.node_dir, &spec.host);
        std::fs::create_dir_all(&storage).map_err(io_err(format!("cannot create {}", storage.display())))?;
        let mut mounts = vec![Mount {
            target: Some("/var/lib/registry".into()),
            source: Some(format!("/run/sgsim/registries/{}/storage", spec.host)),
            typ: Some(MountType::BIND),
            ..Default::default()
        }];
        if spec.credentials.is_some() {
            let dir = self.write_htpasswd(&spec.host, spec.credentials.as_ref()).await?;
            env.push("REGISTRY_AUTH=htpasswd".into());
            env.push(format!("REGISTRY_AUTH_HTPASSWD_REALM={}", spec.host));
            env.push("REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd".into());
            mounts.push(Mount {
                target: Some("/auth".into()),
                source: Some(dir),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            });
        }
        let body = ContainerCreateBody {
            image: Some(self.registry_image.clone()),
            env: Some(env),
            labels: Some(self.labels.clone()),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        };
        let docker_err = |what: String| move |source| RegistryError::Docker { what, source };
        let _ = self
            .node_docker
            .remove_container(&name, Some(RemoveContainerOptionsBuilder::new().force(true).build()))
            .await;
        let created = self
            .node_docker
            .create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body)
            .await
            .map_err(docker_err(format!(
                "cannot create the registry container for {}",
                spec.host
            )))?;
        self.node_docker
            .start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(docker_err(format!(
                "cannot start the registry container for {}",
                spec.host
            )))?;
        self.wait_ready(&spec.host, &created.id, port).await?;
        if spec.host != DOCKER_HUB && st.hosts.insert(spec.host.clone()) {
            self.add_hosts_entry(&spec.host).await?;
            st.hosts_changed = Some(Instant::now());
        }
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.host.clone(), port);
        st.instances.insert(
            spec.host.clone(),
            Instance {
                port,
                container: created.id,
                credentials: spec.credentials.clone(),
                seeded: HashSet::new(),
            },
        );
        Ok(port)
    }

    /// Writes `<node dir>/registries/<host>/htpasswd` (bcrypt by Debian's htpasswd); returns the
    /// directory as the node sees it.
    async fn write_htpasswd(&self, host: &str, creds: Option<&(String, String)>) -> Result<String, RegistryError> {
        let dir = self.node_dir.join("registries").join(host);
        let io = |what: String| move |source| RegistryError::Io { what, source };
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let line = match creds {
            Some((user, pass)) => htpasswd_line(user, pass).await?,
            None => String::new(),
        };
        let file = dir.join("htpasswd");
        std::fs::write(&file, line).map_err(io(format!("cannot write {}", file.display())))?;
        Ok(format!("/run/sgsim/registries/{host}"))
    }

    async fn wait_ready(&self, host: &str, container: &str, port: u16) -> Result<(), RegistryError> {
        let deadline = Instant::now() + INSTANCE_STARTUP;
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Ok(mut s) = sgsim_engine::node_agent::connect_via_agent(&self.agent_socket, target).await
                && s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: ready\r\nConnection: close\r\n\r\n")
                    .await
                    .is_ok()
            {
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).await.is_ok() && buf.starts_with(b"HTTP/1.1") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let log = container_log(&self.node_docker, container).await;
                return Err(RegistryError::Start {
                    host: host.to_string(),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn add_hosts_entry(&self, host: &str) -> Result<(), RegistryError> {
        let script = format!("grep -q ' {host}$' /etc/hosts || echo '127.0.0.1 {host}' >> /etc/hosts");
        exec(&self.host_docker, &self.node_container, &script).await
    }

    /// Makes the registry of `image` hold it (pushing the stand-in under the image's repository
    /// and tag), unless the scenario declared it missing. Waits until dockerd can resolve a
    /// newly added registry host.
    pub async fn ensure_seeded(&self, image: &str, standin: &StandIn, missing: bool) -> Result<(), RegistryError> {
        let host = registry_host(image);
        let (path, tag) = repository(image);
        let key = format!("{path}:{tag}");
        let wait = {
            let st = self.state.lock().await;
            if !st.instances.contains_key(&host) {
                return Ok(());
            }
            st.hosts_changed
                .map(|t| (t + HOSTS_CACHE).saturating_duration_since(Instant::now()))
                .unwrap_or_default()
        };
        let lock = self
            .seeding
            .lock()
            .await
            .entry(format!("{host}/{key}"))
            .or_default()
            .clone();
        let _seeding = lock.lock().await;
        if !missing && valid_repository(&path, &tag) && !self.is_seeded(&host, &key).await {
            // Written straight into the instance's storage (measured: docker:dind, 290 MB, took
            // 19.6 s as load into the node + push, most of it dockerd compressing layers).
            let seed_started = Instant::now();
            let root = storage_dir(&self.node_dir, &host);
            let blobs = self.blobs(&host, &root, &standin.local).await?;
            let exported = seed_started.elapsed();
            let (root2, path2, tag2) = (root.clone(), path.clone(), tag.clone());
            tokio::task::spawn_blocking(move || tag_in_storage(&root2, &path2, &tag2, &blobs))
                .await
                .map_err(|e| RegistryError::Io {
                    what: "seeding task failed".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            tracing::debug!(image, host = %host, ?exported, took = ?seed_started.elapsed(), "registry seeded");
            let mut st = self.state.lock().await;
            if let Some(inst) = st.instances.get_mut(&host) {
                inst.seeded.insert(key);
            }
        }
        if !wait.is_zero() {
            // Only when a host was added after this trial's configure (another trial's).
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// The blobs of a stand-in in an instance's storage (exported from the host daemon and
    /// written once per instance).
    async fn blobs(&self, host: &str, root: &Path, local: &str) -> Result<ImageBlobs, RegistryError> {
        let cache_key = format!("{host} {local}");
        let lock = self.seeding.lock().await.entry(cache_key.clone()).or_default().clone();
        let _guard = lock.lock().await;
        if let Some(b) = self.blobs.lock().await.get(&cache_key) {
            return Ok(b.clone());
        }
        let dir = self.node_dir.join("registries");
        std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        let archive = dir.join(format!(".export-{}.tar", crate::context::random_suffix(8)));
        let result = async {
            let file = tokio::fs::File::create(&archive)
                .await
                .map_err(io_err(format!("cannot create {}", archive.display())))?;
            let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let mut export = self.host_docker.export_image(local);
            while let Some(chunk) = export.next().await {
                let chunk = chunk.map_err(|source| RegistryError::Docker {
                    what: format!("cannot export {local} from the host daemon"),
                    source,
                })?;
                file.write_all(&chunk)
                    .await
                    .map_err(io_err(format!("cannot write {}", archive.display())))?;
            }
            file.flush()
                .await
                .map_err(io_err(format!("cannot write {}", archive.display())))?;
            drop(file);
            let (a, r) = (archive.clone(), root.to_path_buf());
            tokio::task::spawn_blocking(move || blobs_from_archive(&a, &r))
                .await
                .map_err(|e| RegistryError::Io {
                    what: "seeding task failed".into(),
                    source: std::io::Error::other(e.to_string()),
                })?
        }
        .await;
        let _ = std::fs::remove_file(&archive);
        let blobs = result?;
        self.blobs.lock().await.insert(cache_key, blobs.clone());
        Ok(blobs)
    }

    async fn is_seeded(&self, host: &str, key: &str) -> bool {
        self.state
            .lock()
            .await
            .instances
            .get(host)
            .is_some_and(|i| i.seeded.contains(key))
    }

    /// Whether the run has a registry for this host.
    pub async fn has(&self, host: &str) -> bool {
        self.state.lock().await.instances.contains_key(host)
    }

    /// The registry instance's own log (docker-registry's access log included).
    pub async fn registry_log(&self, host: &str) -> String {
        let container = self.state.lock().await.instances.get(host).map(|i| i.container.clone());
        match container {
            Some(c) => container_log(&self.node_docker, &c).await,
            None => String::new(),
        }
    }

    /// The proxy's access lines (`<host> <method> <path> <status>`).
    pub fn proxy_log(&self) -> Vec<String> {
        self.access.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
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
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with(['-', '.'])
}

/// An htpasswd line with a bcrypt hash, made by Debian's htpasswd (apache2-utils).
async fn htpasswd_line(user: &str, pass: &str) -> Result<String, RegistryError> {
    let out = tokio::process::Command::new("htpasswd")
        .args(["-nbB", "-C", "5", user, pass])
        .output()
        .await
        .map_err(|source| RegistryError::Io {
            what: "cannot run htpasswd (install apache2-utils)".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(RegistryError::Io {
            what: "htpasswd failed".into(),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string() + "\n")
}

async fn exec(docker: &Docker, container: &str, script: &str) -> Result<(), RegistryError> {
    let err = |source| RegistryError::Docker {
        what: format!("cannot run `{script}` in the node"),
        source,
    };
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["sh".to_string(), "-c".to_string(), script.to_string()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&created.id, None).await.map_err(err)? {
        while output.next().await.is_some() {}
    }
    Ok(())
}

async fn container_log(docker: &Docker, container: &str) -> String {
    let opts = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
    let mut s = docker.logs(container, Some(opts));
    let mut text = String::new();
    while let Some(Ok(chunk)) = s.next().await {
        text.push_str(&chunk.to_string());
    }
    text
}

async fn serve(
    listener: UnixListener,
    agent: PathBuf,
    routes: Arc<std::sync::Mutex<HashMap<String, u16>>>,
    conditions: Arc<std::sync::Mutex<HashMap<String, Conditions>>>,
    access: Arc<std::sync::Mutex<Vec<String>>>,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            return;
        };
        let (agent, routes, conditions, access) = (agent.clone(), routes.clone(), conditions.clone(), access.clone());
        tokio::spawn(async move {
            if let Err(e) = proxy_one(conn, &agent, &routes, &conditions, &access).await {
                tracing::debug!("registry proxy: {e}");
            }
        });
    }
}

/// The head of an HTTP request: request line, headers, and the bytes read past it.
struct Head {
    method: String,
    path: String,
    host: String,
    raw: Vec<u8>,
    rest: Vec<u8>,
}

async fn read_head(conn: &mut UnixStream) -> std::io::Result<Option<Head>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut host = String::new();
    let mut raw = format!("{first}\r\n").into_bytes();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("host:") {
            host = v.trim().to_string();
        }
        if lower.starts_with("connection:") {
            continue;
        }
        raw.extend_from_slice(l.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Some(Head {
        method,
        path,
        host,
        raw,
        rest: buf[end..].to_vec(),
    }))
}

/// The registry a `Host` header names: the mirror's loopback address is Docker Hub.
fn route_key(host: &str) -> String {
    let h = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host);
    match h {
        "127.0.0.1" | "localhost" | "" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

async fn proxy_one(
    mut conn: UnixStream,
    agent: &Path,
    routes: &std::sync::Mutex<HashMap<String, u16>>,
    conditions: &std::sync::Mutex<HashMap<String, Conditions>>,
    access: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let Some(head) = read_head(&mut conn).await? else {
        return Ok(());
    };
    let key = route_key(&head.host);
    // A pull starts with a manifest request by tag (dockerd: HEAD, then GET by digest unless it
    // has that manifest cached; the distribution client falls back from a failed HEAD to a GET).
    // The delay applies once per pull (the request by tag); while 429s remain, every manifest
    // request is refused and each refused GET uses one up, so N means N failed pulls.
    let is_manifest = (head.method == "GET" || head.method == "HEAD") && head.path.contains("/manifests/");
    let by_tag = is_manifest && !head.path.rsplit('/').next().unwrap_or_default().starts_with("sha256:");
    let (delay, limited) = if is_manifest {
        let mut c = conditions.lock().unwrap_or_else(|e| e.into_inner());
        match c.get_mut(&key) {
            Some(cond) => {
                let limited = cond.remaining_429 > 0;
                if limited && head.method == "GET" {
                    cond.remaining_429 -= 1;
                }
                (if by_tag { cond.delay } else { Duration::ZERO }, limited)
            }
            None => (Duration::ZERO, false),
        }
    } else {
        (Duration::ZERO, false)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let log = |status: &str| {
        access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{key} {} {} {status}", head.method, head.path));
    };
    if limited {
        log("429");
        let body = if head.method == "HEAD" { "" } else { RATE_LIMIT_BODY };
        let resp = format!(
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            RATE_LIMIT_BODY.len()
        );
        conn.write_all(resp.as_bytes()).await?;
        return conn.shutdown().await;
    }
    let port = routes.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied();
    let Some(port) = port else {
        log("502");
        let body = format!("no registry {key} in this run\n");
        let resp = format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(resp.as_bytes()).await?;
        return conn.shutdown().await;
    };
    log("forwarded");
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut upstream = sgsim_engine::node_agent::connect_via_agent(agent, target)
        .await
        .map_err(std::io::Error::other)?;
    upstream.write_all(&head.raw).await?;
    upstream.write_all(&head.rest).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
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
        assert_eq!(route_key("127.0.0.1"), "docker.io");
        assert!(valid_host("registry.x.io"));
        assert!(!valid_host("a;reboot") && !valid_host("x.io:5000") && !valid_host("") && !valid_host("-x"));
        assert_eq!(route_key("registry.x.io:80"), "registry.x.io");
    }

    #[test]
    fn public_hosts_of_the_pod_get_anonymous_registries() {
        let pipeline = "pipeline:
  identifier: p
  stages:
    - stage:
        identifier: s
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: g
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec: {connectorRef: k8s, namespace: ns}
                  steps:
                    - step: {identifier: a, type: Run, spec: {image: mcr.microsoft.com/powershell:7.4, shell: Pwsh, command: x}}
                    - step: {identifier: b, type: Run, spec: {connectorRef: private, image: registry.acme.io/tools/ci:1, command: x}}
                    - step: {identifier: c, type: Run, spec: {image: alpine:3.19, command: x}}
";
        let scen = "pipeline: p.yaml
fixtures:
  namespaces: [ns]
  connectors:
    - {identifier: k8s, type: KubernetesCluster}
    - {identifier: private, type: DockerRegistry, url: https://registry.acme.io, auth: usernamePassword, username: u, passwordRef: pw}
  harnessSecrets: {pw: secret}
";
        let loader = |p: &str| {
            if p == "p.yaml" {
                Ok(pipeline.to_string())
            } else {
                Err("no such file".to_string())
            }
        };
        let s = sgsim_core::scenario::load("scenario.yaml", scen, &loader).expect("scenario");
        let specs = super::specs_for_scenario(&s);
        let hosts: Vec<(&str, bool)> = specs
            .iter()
            .map(|r| (r.host.as_str(), r.credentials.is_some()))
            .collect();
        assert_eq!(hosts, [("registry.acme.io", true), ("mcr.microsoft.com", false)]);
    }

    #[test]
    fn credentials_from_docker_config() {
        let cfg = br#"{"auths":{"registry.x.io":{"username":"u","password":"p","auth":"dTpw"}}}"#.to_vec();
        let c = credentials_for("registry.x.io/a:1", &[cfg.clone()]).expect("match");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(credentials_for("alpine", &[cfg]).is_none());
        let cfg = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpwOng="}}}"#.to_vec();
        let c = credentials_for("alpine", &[cfg]).expect("hub");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:x"));
        assert!(credentials_for("alpine", &[b"not json".to_vec()]).is_none());
    }
}

/// The registry host of a connector URL (`https://registry.x.io/v2/` → `registry.x.io`; Docker
/// Hub URLs → `docker.io`).
pub fn url_host(url: &str) -> String {
    let prefix = sgsim_core::render::registry_prefix(url);
    match prefix.split('/').next() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

/// The registries a scenario's fixtures call for: one per Docker connector URL (requiring the
/// connector's credentials when it has them), overridden by `fixtures.registries` (credentials the
/// registry accepts, delay, 429s, missing images).
pub fn specs_from_fixtures(f: &sgsim_core::scenario::Fixtures) -> Vec<RegistrySpec> {
    let mut out: BTreeMap<String, RegistrySpec> = BTreeMap::new();
    for c in &f.connectors {
        if c.connector_type != "DockerRegistry" {
            continue;
        }
        let Some(url) = &c.url else { continue };
        let host = url_host(url);
        let spec = out.entry(host.clone()).or_insert_with(|| RegistrySpec {
            host,
            ..Default::default()
        });
        if c.auth == "usernamePassword"
            && let (Some(u), Some(p)) = (
                &c.username,
                c.password_ref.as_ref().and_then(|r| f.harness_secrets.get(r)),
            )
            && spec.credentials.is_none()
        {
            spec.credentials = Some((u.clone(), p.clone()));
        }
    }
    for r in &f.registries {
        let host = url_host(&r.url);
        let spec = out.entry(host.clone()).or_insert_with(|| RegistrySpec {
            host,
            ..Default::default()
        });
        if let (Some(u), Some(p)) = (
            &r.username,
            r.password_ref.as_ref().and_then(|p| f.harness_secrets.get(p)),
        ) {
            spec.credentials = Some((u.clone(), p.clone()));
        }
        spec.delay = r
            .delay
            .as_deref()
            .and_then(sgsim_core::duration::parse_millis)
            .map(Duration::from_millis)
            .unwrap_or_default();
        spec.too_many_requests = r.too_many_requests;
        spec.missing.extend(r.missing_images.iter().cloned());
    }
    // Docker Hub is the mirror every trial shares: it never requires credentials.
    if let Some(hub) = out.get_mut(DOCKER_HUB) {
        hub.credentials = None;
    }
    out.into_values().collect()
}

/// The registries a scenario's run needs: [`specs_from_fixtures`], plus an anonymous registry for
/// every other host an image of the pod names (`mcr.microsoft.com/powershell`, `ghcr.io/...`,
/// `registry.k8s.io/...`): public registries serve them to anyone, as on a real cluster.
pub fn specs_for_scenario(s: &sgsim_core::Scenario) -> Vec<RegistrySpec> {
    let mut out = specs_from_fixtures(s.fixtures());
    let pod = sgsim_core::render::render_pod(s);
    let spec = pod.spec.unwrap_or_default();
    let images = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| c.image.clone());
    for image in images {
        let host = registry_host(&image);
        if host != DOCKER_HUB && !out.iter().any(|r| r.host == host) {
            out.push(RegistrySpec {
                host,
                ..Default::default()
            });
        }
    }
    out
}

/// Creates the image pull secrets the product creates beside the pod (`<pod>-image-<container>`,
/// type `kubernetes.io/dockerconfigjson`) for containers whose Docker connector has credentials.
pub async fn create_pull_secrets(client: &kube::Client, scenario: &sgsim_core::Scenario) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Secret;
    for secret in sgsim_core::render::image_pull_secrets(scenario) {
        let ns = secret
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| scenario.namespace().to_string());
        let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
        match api.create(&kube::api::PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A stand-in image as registry blobs: config and layers (uncompressed tars, as `docker save`
/// gives them) by digest, in order.
#[derive(Debug, Clone)]
struct ImageBlobs {
    config: (String, u64),
    layers: Vec<(String, u64)>,
}

/// Where an instance keeps its storage: `<node dir>/registries/<host>/storage` on the host
/// (`/var/lib/registry` in the registry container).
fn storage_dir(node_dir: &Path, host: &str) -> PathBuf {
    node_dir.join("registries").join(host).join("storage")
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |source| RegistryError::Io { what, source }
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
fn blobs_from_archive(archive: &Path, root: &Path) -> Result<ImageBlobs, RegistryError> {
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
fn tag_in_storage(root: &Path, path: &str, tag: &str, blobs: &ImageBlobs) -> Result<(), RegistryError> {
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
