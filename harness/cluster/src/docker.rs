//! Docker daemon access: the host daemon, the API compatibility proxy for testcontainers, and
//! privileged containers (or the fallback where `--privileged` is refused).
//!
//! testcontainers 0.28 always speaks Docker API v1.53 and does not negotiate; an older daemon
//! (Debian's docker.io 20.10 serves at most v1.41) refuses every such request.
//! [`prepare_process`] detects that once per process and starts a small proxy on a private unix
//! socket that rewrites the `/v1.NN/` path prefix to the daemon's version and otherwise passes
//! bytes through untouched (bodies stream both ways; attach/exec upgrades are spliced), then points
//! testcontainers at it through `DOCKER_HOST`. sgsim's own bollard clients ([`host_docker`])
//! connect to the real daemon and negotiate.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::context::{LABEL_MANAGED, LABEL_PID, random_suffix, sgsim_tmp_root};

/// The Docker API version testcontainers 0.28 hard-codes.
pub const TESTCONTAINERS_API_VERSION: (u32, u32) = (1, 53);

/// Default request timeout of sgsim's bollard clients, in seconds (long: image loads stream).
pub const CLIENT_TIMEOUT_SECS: u64 = 600;

const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
const MAX_REQUEST_HEAD: usize = 1 << 20;

/// Errors of Docker access.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `DOCKER_HOST` names a transport sgsim does not support (only `unix://` and `tcp://`).
    #[error("unsupported DOCKER_HOST {host:?}: sgsim supports unix:// and tcp:// daemons")]
    UnsupportedHost {
        /// The value of DOCKER_HOST.
        host: String,
    },
    /// The bollard client could not be created (e.g. the socket does not exist).
    #[error("cannot connect to the Docker daemon at {addr}")]
    Connect {
        /// The daemon address.
        addr: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
    /// The daemon did not answer the version negotiation.
    #[error("the Docker daemon at {addr} does not answer")]
    Negotiate {
        /// The daemon address.
        addr: String,
        /// What bollard reported.
        #[source]
        source: bollard::errors::Error,
    },
    /// The blocking `GET /version` probe of [`prepare_process`] failed.
    #[error("probing the Docker daemon's API version at {addr} failed")]
    Probe {
        /// The daemon address.
        addr: String,
        /// The I/O or parse failure.
        #[source]
        source: io::Error,
    },
    /// Starting the compatibility proxy failed.
    #[error("cannot start the Docker API compatibility proxy")]
    Proxy(#[source] io::Error),
}

/// Where a Docker daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// A `host:port` TCP address (plain HTTP).
    Tcp(String),
}

impl DaemonAddr {
    /// Parses a `DOCKER_HOST` value (`unix:///path`, `tcp://host:port`, `http://host:port`).
    pub fn parse(host: &str) -> Result<Self, DockerError> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(DaemonAddr::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            return Ok(DaemonAddr::Tcp(rest.trim_end_matches('/').to_string()));
        }
        Err(DockerError::UnsupportedHost { host: host.to_string() })
    }

    /// The address in `DOCKER_HOST` syntax.
    pub fn to_docker_host(&self) -> String {
        match self {
            DaemonAddr::Unix(p) => format!("unix://{}", p.display()),
            DaemonAddr::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

/// What [`prepare_process`] found and did.
#[derive(Debug, Clone)]
pub struct ProcessDocker {
    /// The real daemon (the `DOCKER_HOST` the process started with, or the default socket).
    pub real: DaemonAddr,
    /// The `DOCKER_HOST` value the process started with, if any.
    pub original_docker_host: Option<String>,
    /// The daemon's maximum API version, when the probe answered.
    pub api_version: Option<(u32, u32)>,
    /// The compatibility proxy's socket, when one runs.
    pub proxy_socket: Option<PathBuf>,
}

static PROCESS: OnceLock<ProcessDocker> = OnceLock::new();

/// Removes what [`prepare_process`] left on disk (the compat proxy's private directory). Call
/// it last, right before the process exits; the proxy thread dies with the process. A process
/// that cannot call it (killed) leaves the directory to the next run's reaper.
pub fn finish_process() {
    if let Some(dir) = PROCESS
        .get()
        .and_then(|p| p.proxy_socket.as_ref())
        .and_then(|s| s.parent())
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Prepares Docker access for this process. Call it at the very start of `main`, before any
/// thread exists (it may set `DOCKER_HOST`). Idempotent.
///
/// If the daemon's maximum API version is older than testcontainers' v1.53, a compatibility
/// proxy starts on its own OS thread (for the life of the process) on a unix socket in a private
/// directory `${TMPDIR:-/tmp}/sgsim/proxy-<pid>/`, and `DOCKER_HOST` points at it. Failures are
/// reported on stderr and leave `DOCKER_HOST` alone (testcontainers will then report the error).
pub fn prepare_process() -> &'static ProcessDocker {
    PROCESS.get_or_init(|| {
        let original = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let real = match DaemonAddr::parse(original.as_deref().unwrap_or(DEFAULT_DOCKER_HOST)) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("sgsim: {e}");
                return ProcessDocker {
                    real: DaemonAddr::Unix(PathBuf::from("/var/run/docker.sock")),
                    original_docker_host: original,
                    api_version: None,
                    proxy_socket: None,
                };
            }
        };
        let mut info = ProcessDocker {
            real: real.clone(),
            original_docker_host: original,
            api_version: None,
            proxy_socket: None,
        };
        let version = match probe_api_version(&real) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("sgsim: {}", error_chain(&e));
                return info;
            }
        };
        info.api_version = Some(version);
        if version >= TESTCONTAINERS_API_VERSION {
            return info;
        }
        match start_proxy(real, version) {
            Ok(socket) => {
                set_docker_host(&format!("unix://{}", socket.display()));
                info.proxy_socket = Some(socket);
            }
            Err(e) => eprintln!("sgsim: {}", error_chain(&e)),
        }
        info
    })
}

/// Points testcontainers at the compatibility proxy.
#[allow(unsafe_code)]
fn set_docker_host(value: &str) {
    // SAFETY: `prepare_process` is documented to run at the very start of `main`, before any
    // other thread exists (the proxy thread it starts never reads the environment), so nothing
    // reads or writes the environment concurrently.
    unsafe { std::env::set_var("DOCKER_HOST", value) };
}

/// Renders an error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The real daemon's address: the one [`prepare_process`] recorded, else `DOCKER_HOST`, else
/// the default socket.
pub fn real_daemon() -> Result<DaemonAddr, DockerError> {
    if let Some(p) = PROCESS.get() {
        return Ok(p.real.clone());
    }
    let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    DaemonAddr::parse(host.as_deref().unwrap_or(DEFAULT_DOCKER_HOST))
}

/// The `DOCKER_HOST` that child processes (the docker CLI, build scripts) should get: the real
/// daemon, never the proxy. `None` means "unset".
pub fn child_docker_host() -> Option<String> {
    match PROCESS.get() {
        Some(p) => p.original_docker_host.clone(),
        None => std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
    }
}

/// A bollard client for the real host daemon (never through the proxy), version negotiated.
pub async fn host_docker() -> Result<Docker, DockerError> {
    connect(&real_daemon()?).await
}

/// A bollard client for the daemon at `addr`, version negotiated.
pub async fn connect(addr: &DaemonAddr) -> Result<Docker, DockerError> {
    let shown = addr.to_docker_host();
    let client = match addr {
        DaemonAddr::Unix(p) => {
            Docker::connect_with_unix(&p.to_string_lossy(), CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        }
        DaemonAddr::Tcp(a) => Docker::connect_with_http(
            &format!("http://{a}"),
            CLIENT_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        ),
    }
    .map_err(|source| DockerError::Connect {
        addr: shown.clone(),
        source,
    })?;
    client
        .negotiate_version()
        .await
        .map_err(|source| DockerError::Negotiate { addr: shown, source })
}

// ---------------------------------------------------------------------------------------------
// Blocking version probe (runs before any runtime exists).

fn probe_api_version(addr: &DaemonAddr) -> Result<(u32, u32), DockerError> {
    let err = |source| DockerError::Probe {
        addr: addr.to_docker_host(),
        source,
    };
    let request = b"GET /version HTTP/1.0\r\nHost: docker\r\nUser-Agent: sgsim\r\n\r\n";
    let mut response = Vec::new();
    match addr {
        DaemonAddr::Unix(p) => {
            let mut s = StdUnixStream::connect(p).map_err(err)?;
            s.set_read_timeout(Some(Duration::from_secs(10))).map_err(err)?;
            s.write_all(request).map_err(err)?;
            s.read_to_end(&mut response).map_err(err)?;
        }
        DaemonAddr::Tcp(a) => {
            let mut s = std::net::TcpStream::connect(a).map_err(err)?;
            s.set_read_timeout(Some(Duration::from_secs(10))).map_err(err)?;
            s.write_all(request).map_err(err)?;
            s.read_to_end(&mut response).map_err(err)?;
        }
    }
    parse_version_response(&response).map_err(err)
}

fn parse_version_response(response: &[u8]) -> io::Result<(u32, u32)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let split = find(response, b"\r\n\r\n").ok_or_else(|| bad("no HTTP header end"))?;
    let status = String::from_utf8_lossy(&response[..split]);
    if !status.starts_with("HTTP/1.") || status.split_whitespace().nth(1) != Some("200") {
        return Err(bad(&format!(
            "unexpected answer {:?}",
            status.lines().next().unwrap_or_default()
        )));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&response[split + 4..]).map_err(|e| bad(&format!("bad JSON: {e}")))?;
    let v = body
        .get("ApiVersion")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("no ApiVersion in /version"))?;
    parse_api_version(v).ok_or_else(|| bad(&format!("bad ApiVersion {v:?}")))
}

/// Parses `"1.41"` into `(1, 41)`.
pub fn parse_api_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// The compatibility proxy.

/// Directory under which the proxy's private socket directory lives.
pub fn proxy_base_dir() -> PathBuf {
    sgsim_tmp_root()
}

fn start_proxy(target: DaemonAddr, version: (u32, u32)) -> Result<PathBuf, DockerError> {
    let base = proxy_base_dir();
    std::fs::create_dir_all(&base).map_err(DockerError::Proxy)?;
    let dir = base.join(format!("proxy-{}", std::process::id()));
    // A leftover from a dead process with our pid: start afresh.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(DockerError::Proxy)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(DockerError::Proxy)?;
    let socket = dir.join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).map_err(DockerError::Proxy)?;
    listener.set_nonblocking(true).map_err(DockerError::Proxy)?;
    let version = format!("{}.{}", version.0, version.1);
    std::thread::Builder::new()
        .name("sgsim-docker-proxy".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sgsim: docker compat proxy: no runtime: {e}");
                    return;
                }
            };
            runtime.block_on(serve_proxy(listener, target, version));
        })
        .map_err(DockerError::Proxy)?;
    Ok(socket)
}

async fn serve_proxy(listener: std::os::unix::net::UnixListener, target: DaemonAddr, version: String) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sgsim: docker compat proxy: {e}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let target = target.clone();
                let version = version.clone();
                tokio::spawn(async move {
                    if let Err(e) = proxy_connection(conn, &target, &version).await {
                        tracing::debug!("docker compat proxy connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("docker compat proxy accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

async fn proxy_connection(mut client: tokio::net::UnixStream, target: &DaemonAddr, version: &str) -> io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        if client.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let rewritten = rewrite_request_head(&head, version);
    let mut upstream: Box<dyn ByteStream> = match target {
        DaemonAddr::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
        DaemonAddr::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a.as_str()).await?),
    };
    upstream.write_all(rewritten.as_bytes()).await?;
    upstream.write_all(&buf[head_end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Rewrites one HTTP/1.1 request head for the daemon: the `/v1.NN/` path prefix becomes
/// `/v<version>/`, and, unless the request asks for a protocol upgrade (attach, exec), the
/// connection is made single-use (`Connection: close`) so every request passes through here.
pub fn rewrite_request_head(head: &str, version: &str) -> String {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.splitn(3, ' ');
    let (method, target, proto) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let target = rewrite_path(target, version);
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let upgrade = headers.iter().any(|h| {
        h.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("connection") && v.to_ascii_lowercase().contains("upgrade")
        })
    });
    let mut out = format!("{method} {target} {proto}\r\n");
    for h in headers {
        let name = h.split_once(':').map(|(n, _)| n.trim()).unwrap_or_default();
        if !upgrade && (name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive")) {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out
}

fn rewrite_path(target: &str, version: &str) -> String {
    if let Some(rest) = target.strip_prefix("/v")
        && let Some(slash) = rest.find('/')
        && parse_api_version(&rest[..slash]).is_some()
    {
        return format!("/v{version}{}", &rest[slash..]);
    }
    target.to_string()
}

// ---------------------------------------------------------------------------------------------
// Privileged containers.

/// How privileged containers are run on a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivilegeMode {
    /// `--privileged` works.
    Privileged,
    /// `--privileged` is refused (e.g. CAP_SYS_RESOURCE missing from the bounding set): every
    /// capability the daemon knows except SYS_RESOURCE, seccomp/apparmor/systempaths unconfined
    /// (systempaths: empty MaskedPaths and ReadonlyPaths), device cgroup rule `a *:* rwm`,
    /// `/sys/fs/cgroup` bind-mounted rw.
    Fallback,
}

/// Capabilities every Docker release accepts in `CapAdd` (Linux capabilities 0–37), less
/// SYS_RESOURCE, which is the one this fallback exists to avoid.
pub const FALLBACK_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
];

/// Capabilities (Linux 5.8/5.9) only daemons from Docker 23 (API 1.42) on accept; Docker 20.10
/// rejects them as unknown.
pub const FALLBACK_CAPS_API_1_42: &[&str] = &["PERFMON", "BPF", "CHECKPOINT_RESTORE"];

/// The fallback capability list for a daemon of the given API version (`None`: assume the
/// oldest, which every daemon accepts).
pub fn fallback_caps(api_version: Option<(u32, u32)>) -> Vec<String> {
    let mut caps: Vec<String> = FALLBACK_CAPS.iter().map(|c| c.to_string()).collect();
    if api_version.is_some_and(|v| v >= (1, 42)) {
        caps.extend(FALLBACK_CAPS_API_1_42.iter().map(|c| c.to_string()));
    }
    caps
}

/// Makes `host_config` privileged in `mode`, for a daemon of any version (the fallback grants
/// the capabilities every daemon knows; see [`apply_privileged_for`] to add newer ones).
pub fn apply_privileged(host_config: &mut HostConfig, mode: PrivilegeMode) {
    apply_privileged_for(host_config, mode, None)
}

/// Like [`apply_privileged`], with the fallback's capability list derived from the daemon's API
/// version.
pub fn apply_privileged_for(host_config: &mut HostConfig, mode: PrivilegeMode, api_version: Option<(u32, u32)>) {
    match mode {
        PrivilegeMode::Privileged => host_config.privileged = Some(true),
        PrivilegeMode::Fallback => {
            host_config.privileged = Some(false);
            let caps = host_config.cap_add.get_or_insert_with(Vec::new);
            for c in fallback_caps(api_version) {
                if !caps
                    .iter()
                    .any(|x| x.trim_start_matches("CAP_").eq_ignore_ascii_case(&c))
                {
                    caps.push(c);
                }
            }
            // `--security-opt systempaths=unconfined` is a docker CLI option: on the API it is
            // empty MaskedPaths and ReadonlyPaths.
            host_config.masked_paths = Some(Vec::new());
            host_config.readonly_paths = Some(Vec::new());
            let opts = host_config.security_opt.get_or_insert_with(Vec::new);
            for o in ["seccomp=unconfined", "apparmor=unconfined"] {
                let key = o.split('=').next().unwrap_or(o);
                opts.retain(|x| !x.starts_with(&format!("{key}=")) && !x.starts_with(&format!("{key}:")));
                opts.push(o.to_string());
            }
            let rules = host_config.device_cgroup_rules.get_or_insert_with(Vec::new);
            if !rules.iter().any(|r| r == "a *:* rwm") {
                rules.push("a *:* rwm".to_string());
            }
            let binds = host_config.binds.get_or_insert_with(Vec::new);
            if !binds.iter().any(|b| b.split(':').nth(1) == Some("/sys/fs/cgroup")) {
                binds.push("/sys/fs/cgroup:/sys/fs/cgroup:rw".to_string());
            }
        }
    }
}

static PRIVILEGE_CACHE: OnceLock<Mutex<HashMap<String, PrivilegeMode>>> = OnceLock::new();

/// Finds out (once per daemon and process) whether the daemon runs `--privileged` containers,
/// by running `true` in `probe_image` privileged. `probe_image` must have `true` on its PATH and
/// no entrypoint (the busybox stand-in). `SGSIM_PRIVILEGE_MODE=privileged|fallback` skips the probe.
/// Any failure to decide yields [`PrivilegeMode::Fallback`], which works everywhere.
pub async fn detect_privilege_mode(docker: &Docker, probe_image: &str) -> PrivilegeMode {
    match std::env::var("SGSIM_PRIVILEGE_MODE").ok().as_deref() {
        Some("privileged") => return PrivilegeMode::Privileged,
        Some("fallback") => return PrivilegeMode::Fallback,
        _ => {}
    }
    let key = match docker.info().await {
        Ok(info) => info.id.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("cannot identify the Docker daemon ({e}); using the privileged fallback");
            return PrivilegeMode::Fallback;
        }
    };
    let cache = PRIVILEGE_CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(m) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return *m;
    }
    let mode = probe_privileged(docker, probe_image).await;
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, mode);
    mode
}

async fn probe_privileged(docker: &Docker, probe_image: &str) -> PrivilegeMode {
    let name = format!("sgsim-privprobe-{}", random_suffix(10));
    let body = ContainerCreateBody {
        image: Some(probe_image.to_string()),
        cmd: Some(vec!["true".to_string()]),
        labels: Some(HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_PID.to_string(), std::process::id().to_string()),
        ])),
        host_config: Some(HostConfig {
            privileged: Some(true),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body)
        .await;
    let mode = match created {
        Err(e) => {
            tracing::warn!("privileged probe: cannot create a container of {probe_image}: {e}");
            PrivilegeMode::Fallback
        }
        Ok(_) => match docker
            .start_container(&name, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            Err(e) => {
                tracing::debug!("privileged probe refused: {e}");
                PrivilegeMode::Fallback
            }
            Ok(()) => {
                let mut wait = docker.wait_container(&name, Some(WaitContainerOptionsBuilder::new().build()));
                match wait.next().await {
                    Some(Ok(r)) if r.status_code == 0 => PrivilegeMode::Privileged,
                    _ => PrivilegeMode::Fallback,
                }
            }
        },
    };
    let _ = docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).v(true).build()),
        )
        .await;
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_version_prefix_and_forces_close() {
        let head = "GET /v1.53/containers/json?all=true HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n";
        let out = rewrite_request_head(head, "1.41");
        assert_eq!(
            out,
            "GET /v1.41/containers/json?all=true HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn keeps_upgrade_requests_and_unversioned_paths() {
        let head = "POST /v1.53/exec/abc/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        assert_eq!(
            rewrite_request_head(head, "1.41"),
            "POST /v1.41/exec/abc/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        );
        assert!(rewrite_request_head("GET /_ping HTTP/1.1\r\n\r\n", "1.41").starts_with("GET /_ping HTTP/1.1\r\n"));
        assert_eq!(rewrite_path("/version", "1.41"), "/version");
        assert_eq!(rewrite_path("/vx/containers", "1.41"), "/vx/containers");
    }

    #[test]
    fn parses_version_answers() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ApiVersion\":\"1.41\",\"Version\":\"20.10.24\"}";
        assert_eq!(parse_version_response(r).unwrap(), (1, 41));
        assert!(parse_version_response(b"HTTP/1.0 500 x\r\n\r\n{}").is_err());
        assert_eq!(
            DaemonAddr::parse("unix:///x.sock").unwrap(),
            DaemonAddr::Unix("/x.sock".into())
        );
        assert!(DaemonAddr::parse("ssh://h").is_err());
    }

    #[test]
    fn fallback_flags_are_exact() {
        let mut hc = HostConfig::default();
        apply_privileged(&mut hc, PrivilegeMode::Fallback);
        let caps = hc.cap_add.clone().unwrap();
        assert_eq!(caps.len(), 37);
        assert!(!caps.iter().any(|c| c == "SYS_RESOURCE" || c == "BPF" || c == "ALL"));
        assert_eq!(
            hc.security_opt.clone().unwrap(),
            ["seccomp=unconfined", "apparmor=unconfined"]
        );
        assert_eq!(hc.masked_paths, Some(vec![]));
        assert_eq!(hc.readonly_paths, Some(vec![]));
        assert_eq!(hc.device_cgroup_rules.clone().unwrap(), ["a *:* rwm"]);
        assert_eq!(hc.binds.clone().unwrap(), ["/sys/fs/cgroup:/sys/fs/cgroup:rw"]);
        // Idempotent.
        apply_privileged(&mut hc, PrivilegeMode::Fallback);
        assert_eq!(hc.cap_add.unwrap().len(), 37);
        assert_eq!(hc.binds.unwrap().len(), 1);
        let mut hc = HostConfig::default();
        apply_privileged_for(&mut hc, PrivilegeMode::Fallback, Some((1, 43)));
        assert_eq!(hc.cap_add.unwrap().len(), 40);
        let mut hc = HostConfig::default();
        apply_privileged(&mut hc, PrivilegeMode::Privileged);
        assert_eq!(hc.privileged, Some(true));
        assert!(hc.cap_add.is_none());
    }
}
