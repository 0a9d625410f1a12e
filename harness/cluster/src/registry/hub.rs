//! Home of the registry instances of one node ([`RegistryHub`]): starting Debian's docker-registry
//! containers in the node's dockerd, their htpasswd credentials and /etc/hosts entries, seeding
//! them on demand with stand-in images (laid out by [`super::storage`]), and their logs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::Mutex;

use super::proxy::{Conditions, serve};
use super::storage::{
    ImageBlobs, blob_cache_root, blobs_from_archive, cache_entry, cached, link_blobs, mark_cached, storage_dir,
    tag_in_storage,
};
use super::{
    DOCKER_HUB, PROXY_SOCKET, RegistryError, RegistrySpec, io_err, join_err, registry_host, repository, valid_host,
    valid_repository,
};
use crate::images::{self, StandIn};

/// The port of the Docker Hub instance; private registries get the ports after it. Far from the
/// ports registries usually have (5000, 8082), which the node may forward for a registry host with
/// a port, and below Linux's ephemeral port range (32768-60999): a port in that range can be the
/// source port of any outgoing connection in the node, and a registry then fails with "bind:
/// address already in use" (seen in CI at 35004).
const HUB_PORT: u16 = 31000;
/// How long an instance may take to answer.
const INSTANCE_STARTUP: Duration = Duration::from_secs(20);
/// Go's resolver re-reads /etc/hosts at most every 5 s; after adding a host, pulls of it wait
/// this long past the edit so dockerd sees the entry.
const HOSTS_CACHE: Duration = Duration::from_millis(5200);

/// One running registry container.
struct Instance {
    /// Its port on the node's loopback.
    port: u16,
    /// Its container id in the node's dockerd.
    container: String,
    /// The credentials it requires.
    credentials: Option<(String, String)>,
    /// `<path>:<tag>` of the images seeded into it.
    seeded: HashSet<String>,
}

/// The instances of a hub and the hosts added to the node's /etc/hosts.
#[derive(Default)]
struct State {
    /// Instances by registry host.
    instances: HashMap<String, Instance>,
    /// Hosts with an /etc/hosts entry.
    hosts: HashSet<String>,
    /// When the last host was added.
    hosts_changed: Option<Instant>,
    /// Ports of registry hosts with a port (`registry.x.io:5000`) the node forwards to the proxy.
    forwards: HashSet<u16>,
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
                images::load_into_node(&self.host_docker, &self.node_docker, &standin).await?;
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
        let (name, host_port) = super::split_port(&spec.host);
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        if spec.host != DOCKER_HUB && name != "localhost" && !is_ip && st.hosts.insert(name.to_string()) {
            self.add_hosts_entry(name).await?;
            st.hosts_changed = Some(Instant::now());
        }
        if let Some(forwarded) = host_port.filter(|p| *p != 80)
            && st.forwards.insert(forwarded)
        {
            self.forward_port(forwarded).await?;
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
        std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        let line = match creds {
            Some((user, pass)) => htpasswd_line(user, pass).await?,
            None => String::new(),
        };
        let file = dir.join("htpasswd");
        std::fs::write(&file, line).map_err(io_err(format!("cannot write {}", file.display())))?;
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

    /// Forwards the node's loopback `port` to the proxy, as :80 is: a second forwarder of the
    /// node agent, started in the node (it lives as long as the node).
    async fn forward_port(&self, port: u16) -> Result<(), RegistryError> {
        let script = format!(
            "setsid sgsim-node-agent --socket /run/sgsim/registry-agent-{port}.sock \
             --delegate-socket /run/sgsim/{PROXY_SOCKET} --listen 127.0.0.1:{port} </dev/null >/dev/null 2>&1 & \
             for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.05; done"
        );
        exec_bash(&self.host_docker, &self.node_container, &script).await
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
                .map_err(join_err)??;
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

    /// The blobs of a stand-in in an instance's storage (written once per instance): linked from
    /// the machine-wide cache ([`blob_cache_root`]) when it has the image's ID, else exported from
    /// the host daemon into the cache first (into the storage directly when the cache cannot be
    /// written).
    async fn blobs(&self, host: &str, root: &Path, local: &str) -> Result<ImageBlobs, RegistryError> {
        let cache_key = format!("{host} {local}");
        let lock = self.seeding.lock().await.entry(cache_key.clone()).or_default().clone();
        let _guard = lock.lock().await;
        if let Some(b) = self.blobs.lock().await.get(&cache_key) {
            return Ok(b.clone());
        }
        let entry = match self.host_docker.inspect_image(local).await {
            Ok(info) => info
                .id
                .and_then(|id| cache_entry(&blob_cache_root(), &id))
                .filter(|e| std::fs::create_dir_all(e.join("storage")).is_ok()),
            Err(_) => None,
        };
        if let Some(entry) = entry.clone() {
            let root2 = root.to_path_buf();
            let hit = tokio::task::spawn_blocking(move || {
                let blobs = cached(&entry)?;
                Some(link_blobs(&entry.join("storage"), &root2, &blobs).map(|()| blobs))
            })
            .await
            .map_err(join_err)?;
            if let Some(blobs) = hit {
                let blobs = blobs?;
                tracing::debug!(image = local, "registry blobs from the machine cache");
                self.blobs.lock().await.insert(cache_key, blobs.clone());
                return Ok(blobs);
            }
        }
        let target = entry.as_ref().map_or_else(|| root.to_path_buf(), |e| e.join("storage"));
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
            let (a, t, r, e) = (archive.clone(), target.clone(), root.to_path_buf(), entry.clone());
            tokio::task::spawn_blocking(move || {
                let blobs = blobs_from_archive(&a, &t)?;
                if let Some(e) = e {
                    mark_cached(&e, &blobs)?;
                    link_blobs(&t, &r, &blobs)?;
                }
                Ok::<_, RegistryError>(blobs)
            })
            .await
            .map_err(join_err)?
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
    exec_with(docker, container, "sh", script).await
}

async fn exec_bash(docker: &Docker, container: &str, script: &str) -> Result<(), RegistryError> {
    exec_with(docker, container, "bash", script).await
}

async fn exec_with(docker: &Docker, container: &str, shell: &str, script: &str) -> Result<(), RegistryError> {
    let err = |source| RegistryError::Docker {
        what: format!("cannot run `{script}` in the node"),
        source,
    };
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec![shell.to_string(), "-c".to_string(), script.to_string()]),
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
