//! The embedded Kubernetes API server: sgsim's default cluster control plane.
//!
//! An in-process axum server on `https://127.0.0.1:<free port>`, bearer-token auth, speaking the
//! core/v1 REST API closely enough for `kube::Client`, `kube::runtime::watcher` and `kubectl`.
//! Each server has its own CA (in memory only): the kubeconfig carries it as
//! `certificate-authority-data`, and the serving certificate names `127.0.0.1`, `::1`,
//! `localhost` and the `kubernetes` Service.
//!
//! Design: every object is stored as JSON (module `store`) under one global, monotonically increasing
//! resourceVersion; typed behaviour (defaulting, admission, validation) happens on create only where
//! Kubernetes has it (module `defaults`). Watches replay the change history from a resourceVersion, or
//! synthesize ADDED events for the current state when none (or `0`) is given.
//!
//! Served: `/version`, `/healthz`, `/livez`, `/readyz`, discovery (`/api`, `/api/v1`, `/apis`,
//! `/apis/<group>/<version>`), a minimal `/openapi/v3` (enough for kubectl's server-side field
//! validation check, so `kubectl create/apply -f` work), and the resources of
//! `resources::RESOURCES`: namespaces, nodes, pods (+ `status`, `binding`, `log`), events (core/v1,
//! and events.k8s.io/v1 as a converted view of the same store, which `kube::runtime::events`
//! uses), configmaps, secrets, serviceaccounts, services, persistentvolumeclaims,
//! persistentvolumes, `bindings`, and scheduling.k8s.io/v1 priorityclasses (with the two built-in
//! system classes). Verbs: get, list, watch, create, update (PUT), patch (JSON, merge, strategic
//! merge with the merge keys sgsim's kinds use, apply approximated as strategic merge), delete,
//! deletecollection; `dryRun=All`; label and field selectors; Tables for kubectl.
//!
//! Creating a namespace also creates what the service-account and root-CA controllers would: the
//! `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap. Pod create runs defaulting, then
//! NamespaceLifecycle, ServiceAccount (optional, see [`ApiServerOptions`]), Priority and
//! DefaultTolerationSeconds admission, then a subset of pod validation.
//!
//! Deliberate simplifications (documented behaviour):
//! - Deleting a pod removes it at once by default: the DELETED event (and the response) carry the
//!   last state with `deletionTimestamp` and `deletionGracePeriodSeconds` set. Kubernetes' graceful
//!   deletion is available with [`ApiServerOptions::graceful_pod_deletion`].
//! - Deleting a namespace removes everything in it at once (no lingering `Terminating` phase);
//!   `default`, `kube-system` and `kube-public` cannot be deleted.
//! - `limit`/`continue` are ignored: lists return every item, in creation order.
//! - `resourceVersion`/`resourceVersionMatch` on lists are ignored (always the latest state).
//! - No managedFields; unknown fields are kept, not rejected (`fieldValidation` is ignored).
//! - Watch history keeps the last 20 000 changes; older resourceVersions get a 410 `Expired`
//!   ERROR event, upon which clients relist (kube's watcher does).
//! - Authentication: `Authorization: Bearer <token>` only (never in a URL). A missing or wrong
//!   token gets a 401 `Status`.
//! - HTTP/1.1 only (ALPN offers no `h2`); clients fall back to it as they do behind proxies.
//! - `/version`, `/healthz`, `/livez`, `/readyz` are public, as `system:public-info-viewer` makes
//!   them in real clusters; everything else needs the token.

mod app;
mod convert;
mod defaults;
mod handlers;
mod inprocess;
mod logs;
mod openapi;
mod patch;
mod portforward;
mod protobuf;
mod rbac;
mod resources;
mod sa_token;
mod selectors;
mod status;
mod store;
mod table;
mod util;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use inprocess::{InProcess, in_process};
pub use logs::{LogError, LogOptions, LogStream, PodLogSource};
pub use portforward::PodPortSource;
pub use status::ApiError;

/// Default `gitVersion` served at `/version`.
pub const DEFAULT_GIT_VERSION: &str = "v1.37.0-sgsim";

/// Options of [`ApiServer::start`].
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// Bearer token to require (random when `None`).
    pub token: Option<String>,
    /// Address to bind (default `127.0.0.1:0`, a free port).
    pub bind: SocketAddr,
    /// `gitVersion` served at `/version`.
    pub git_version: String,
    /// Namespaces to create at start (default: default, kube-system, kube-public, kube-node-lease).
    pub namespaces: Vec<String>,
    /// Run the ServiceAccount admission plugin on pod create (require the account, mount the
    /// `kube-api-access-*` token volume) as real clusters do. Default true.
    pub service_account_admission: bool,
    /// Graceful pod deletion as in Kubernetes: deleting a pod that is bound to a node, not
    /// terminal, with a grace period > 0 only sets `deletionTimestamp` (now + grace) and
    /// `deletionGracePeriodSeconds` (MODIFIED); the node's kubelet stops the pod and deletes it
    /// with grace 0. Default false: pods are removed at once (DELETED carries the grace period).
    pub graceful_pod_deletion: bool,
    /// The cluster CA bundle published as `ca.crt` of every namespace's `kube-root-ca.crt`
    /// (the CA of the TLS endpoint pods reach, see [`crate::pod_api`]); `None`: the server's own.
    pub root_ca: Option<String>,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        Self {
            token: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            git_version: DEFAULT_GIT_VERSION.to_owned(),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .map(str::to_owned)
                .to_vec(),
            service_account_admission: true,
            graceful_pod_deletion: false,
            root_ca: None,
        }
    }
}

/// Errors of starting, configuring clients for, or stopping the embedded API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Binding the listening socket failed.
    #[error("binding the API server to {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the kubeconfig file failed.
    #[error("writing kubeconfig {path} failed")]
    WriteKubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serializing the kubeconfig failed.
    #[error("serializing the kubeconfig failed")]
    SerializeKubeconfig(#[from] serde_json::Error),
    /// Building a kube client configuration from the kubeconfig failed.
    #[error("building a kube client config failed")]
    ClientConfig(#[from] kube::config::KubeconfigError),
    /// Building the kube client failed.
    #[error("building a kube client failed")]
    Client(#[from] kube::Error),
    /// Seeding the initial objects failed.
    #[error("creating initial object failed")]
    Seed(#[from] ApiError),
    /// Generating the server's CA or serving certificate failed.
    #[error("setting up the API server's TLS failed")]
    Tls(#[from] crate::tls::TlsError),
    /// Writing the kubeconfig as YAML failed.
    #[error("serializing the kubeconfig as YAML failed")]
    KubeconfigYaml(#[from] serde_saphyr::ser::Error),
}

/// Now as RFC 3339 UTC with second precision (`2026-11-24T08:12:33Z`), as `metav1.Time` has it.
pub fn now_rfc3339() -> String {
    util::now_time()
}

/// The key id (`kid`) named in the header of a ServiceAccount token (see
/// [`ApiServerHandle::token_key_id`]); `None` for anything else.
pub fn token_kid(token: &str) -> Option<String> {
    sa_token::kid_of(token)
}

/// The embedded API server.
#[derive(Debug)]
pub struct ApiServer;

impl ApiServer {
    /// Starts a server; it runs until [`ApiServerHandle::shutdown`] or the handle is dropped.
    pub async fn start(opts: ApiServerOptions) -> Result<ApiServerHandle, ApiServerError> {
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .map_err(|source| ApiServerError::Bind {
                addr: opts.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ApiServerError::Bind {
            addr: opts.bind,
            source,
        })?;
        let token = opts.token.clone().unwrap_or_else(util::random_token);
        let ca = crate::tls::Ca::new("sgsim-apiserver-ca")?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let app = Arc::new(app::AppState {
            store: store::Store::default(),
            token: token.clone(),
            node_logs: RwLock::new(HashMap::new()),
            node_ports: RwLock::new(HashMap::new()),
            shutdown: shutdown_rx.clone(),
            admission: defaults::Admission {
                service_account: opts.service_account_admission,
            },
            addr: addr.to_string(),
            git_version: opts.git_version.clone(),
            graceful_pod_deletion: opts.graceful_pod_deletion,
            root_ca: opts.root_ca.clone().unwrap_or_else(|| ca.pem().to_owned()),
        });
        seed(&app, &opts)?;
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .chain(crate::tls::SERVICE_NAMES)
            .map(str::to_owned)
            .collect();
        if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config(names)?));
        let endpoint = ApiEndpoint {
            router: handlers::router(Arc::clone(&app)),
            stop: shutdown_rx,
        };
        let task = tokio::spawn(serve_tls(listener, acceptor, endpoint.clone()));
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        Ok(ApiServerHandle {
            url: format!("https://{host}:{}", addr.port()),
            token,
            ca_pem: ca.pem().to_owned(),
            app,
            endpoint,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }
}

/// The server without its listener: hands a connection (any byte stream) straight to the
/// router, as the pod API gateway does with the connections it has already authenticated by TLS.
#[derive(Clone)]
pub struct ApiEndpoint {
    router: Router,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for ApiEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEndpoint").finish_non_exhaustive()
    }
}

impl ApiEndpoint {
    /// Serves HTTP/1.1 on `io` in a task of its own until the peer closes or the server stops.
    pub fn serve<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(serve_connection(io, self.router.clone(), self.stop.clone()));
    }
}

/// Serves one connection; on shutdown, finishes the request in flight and closes.
async fn serve_connection<IO>(io: IO, router: Router, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    // With upgrades: `pods/portforward` switches the connection to WebSocket.
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "API server connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Completes once the server is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts TLS connections until the server stops, then waits for the open ones to close.
async fn serve_tls(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor, endpoint: ApiEndpoint) {
    let mut stop = endpoint.stop.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = stopped(&mut stop) => break,
            c = listener.accept() => match c {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors: retry without spinning.
                    tracing::debug!(error = %e, "API server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let endpoint = endpoint.clone();
        conns.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(tls, endpoint.router, endpoint.stop).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "API server: TLS handshake failed"),
                Err(_) => tracing::debug!("API server: TLS handshake timed out"),
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

fn seed(app: &app::App, opts: &ApiServerOptions) -> Result<(), ApiServerError> {
    let pcs = [
        ("system-node-critical", 2_000_001_000_i64),
        ("system-cluster-critical", 2_000_000_000),
    ];
    let pc_def = resources::by_id("priorityclasses.scheduling.k8s.io").expect("priorityclasses served");
    for (name, value) in pcs {
        let pc = json!({
            "metadata": {"name": name},
            "value": value,
            "description": "Used for system critical pods that must not be moved from their current node.",
            "preemptionPolicy": "PreemptLowerPriority",
        });
        handlers::create_value(app, pc_def, "", pc, false)?;
    }
    let ns_def = resources::by_id("namespaces").expect("namespaces served");
    for ns in &opts.namespaces {
        handlers::create_value(app, ns_def, "", json!({"metadata": {"name": ns}}), false)?;
    }
    Ok(())
}

/// A running embedded API server. Dropping it aborts the server task.
pub struct ApiServerHandle {
    url: String,
    token: String,
    ca_pem: String,
    app: app::App,
    endpoint: ApiEndpoint,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerHandle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ApiServerHandle {
    /// Base URL, e.g. `https://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The key id (`kid`) in the header of the ServiceAccount tokens this server issues: unique
    /// per server, so a router can tell which server a pod's token belongs to.
    pub fn token_key_id(&self) -> String {
        sa_token::key_id(&self.token)
    }

    /// The CA certificate (PEM) that signed the server's certificate: what clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server without its listener, for connections that reach it another way.
    pub fn endpoint(&self) -> ApiEndpoint {
        self.endpoint.clone()
    }

    /// `host:port` the server listens on (HTTPS, loopback).
    pub fn addr(&self) -> SocketAddr {
        self.app
            .addr
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A kubeconfig whose cluster, user and context are all named `sgsim` (current context): the
    /// server URL, the CA as `certificate-authority-data`, the token as the user's bearer token.
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        self.kubeconfig_named("sgsim")
    }

    /// [`Self::kubeconfig`] with cluster, user and context named `name`.
    pub fn kubeconfig_named(&self, name: &str) -> kube::config::Kubeconfig {
        let v = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {
                "server": self.url,
                "certificate-authority-data": sgsim_core::base64::encode(self.ca_pem.as_bytes()),
            }}],
            "users": [{"name": name, "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
            "current-context": name,
            "preferences": {},
        });
        serde_json::from_value(v).expect("static kubeconfig shape")
    }

    /// Writes [`Self::kubeconfig`] to `path` as YAML, mode 0600 on Unix (created so, never
    /// readable by others even for a moment).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ApiServerError> {
        write_kubeconfig_file(path, &self.kubeconfig())
    }

    /// A `kube::Client` whose requests go straight to this server's router, with no socket, no
    /// TLS and no HTTP framing (default namespace `default`). Same handlers, same token check;
    /// nothing can be upgraded (no `exec` or `portforward`). Every wake-up it causes is a tokio
    /// task wake-up, so a runtime on a paused clock sees its work: the fake tier's virtual clock
    /// advances only when the API server, its watches and their clients all wait.
    pub fn local_client(&self) -> kube::Client {
        let value = axum::http::HeaderValue::from_str(&format!("Bearer {}", self.token))
            .expect("a random token is a valid header value");
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut req: axum::http::Request<kube::client::Body>| {
                req.headers_mut()
                    .insert(axum::http::header::AUTHORIZATION, value.clone());
                req
            })
            .service(self.endpoint.router.clone());
        kube::Client::new(service, "default")
    }

    /// A `kube::Client` for this server (default namespace `default`).
    pub async fn client(&self) -> Result<kube::Client, ApiServerError> {
        let config =
            kube::Config::from_custom_kubeconfig(self.kubeconfig(), &kube::config::KubeConfigOptions::default())
                .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Registers the log source of `node` (pods/log of pods bound to it are served by `source`).
    pub fn register_node_logs(&self, node: &str, source: Arc<dyn PodLogSource>) {
        self.app
            .node_logs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node.to_owned(), source);
    }

    /// Registers the port-forward source of `node` (`pods/portforward` of pods bound to it).
    pub fn register_node_ports(&self, node: &str, source: Arc<dyn PodPortSource>) {
        self.app
            .node_ports
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node.to_owned(), source);
    }

    /// Removes the log source of `node`.
    pub fn unregister_node_logs(&self, node: &str) {
        self.app
            .node_logs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(node);
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.store.rv()
    }

    /// Stops the server: ends watches and log streams, then waits (at most 5 s) for connections.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A kubeconfig as YAML (what `kubectl config view --raw` prints).
pub fn kubeconfig_yaml(config: &kube::config::Kubeconfig) -> Result<String, ApiServerError> {
    // Through JSON: drops the fields kube leaves empty, keeps the kubeconfig's own key names.
    let value = serde_json::to_value(config)?;
    Ok(serde_saphyr::to_string(&value)?)
}

/// Writes `config` to `path` as YAML, mode 0600 from creation on, atomically.
pub fn write_kubeconfig_file(path: &Path, config: &kube::config::Kubeconfig) -> Result<(), ApiServerError> {
    write_private(path, &kubeconfig_yaml(config)?)
}

/// Writes `text` to `path` with mode 0600 from creation on (Unix), replacing it atomically
/// ([`crate::files::write_atomically_private`]); creates the directory.
pub fn write_private(path: &Path, text: &str) -> Result<(), ApiServerError> {
    let wrap = |source| ApiServerError::WriteKubeconfig {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(wrap)?;
    }
    crate::files::write_atomically_private(path, text.as_bytes()).map_err(wrap)
}
