//! The embedded Kubernetes API server: sgsim's default cluster control plane.
//!
//! An in-process axum server on `127.0.0.1:<free port>`, plain HTTP, bearer-token auth, speaking
//! the core/v1 REST API closely enough for `kube::Client`, `kube::runtime::watcher` and `kubectl`.
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
//! - Authentication: `Authorization: Bearer <token>`, or the path prefix `/sgsim/<token>` that the
//!   kubeconfig's server URL carries, because kubectl (client-go) drops all credentials on plain
//!   HTTP. A missing or wrong token gets a 401 `Status`.
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
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use inprocess::{InProcess, in_process};
pub use logs::{LogError, LogOptions, LogStream, PodLogSource};
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
    /// (the CA of the TLS endpoint pods reach, see [`crate::pod_api`]); `None`: a placeholder.
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
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let app = Arc::new(app::AppState {
            store: store::Store::default(),
            token: token.clone(),
            node_logs: RwLock::new(HashMap::new()),
            shutdown: shutdown_rx.clone(),
            admission: defaults::Admission {
                service_account: opts.service_account_admission,
            },
            addr: addr.to_string(),
            git_version: opts.git_version.clone(),
            graceful_pod_deletion: opts.graceful_pod_deletion,
            root_ca: opts
                .root_ca
                .clone()
                .unwrap_or_else(|| defaults::ROOT_CA_PLACEHOLDER.to_owned()),
        });
        seed(&app, &opts)?;
        let router = handlers::router(Arc::clone(&app));
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "embedded API server stopped with an error");
            }
        });
        Ok(ApiServerHandle {
            url: format!("http://{addr}"),
            token,
            app,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }
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
    app: app::App,
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
    /// Base URL, e.g. `http://127.0.0.1:40123`.
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

    /// `host:port` the server listens on (plain HTTP, loopback).
    pub fn addr(&self) -> SocketAddr {
        self.app
            .addr
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Server URL written into kubeconfigs: [`Self::url`] plus `/sgsim/<token>`. kubectl
    /// (client-go) sends no credentials over plain HTTP, so the path carries the token for it;
    /// clients that send `Authorization: Bearer` (kube-rs) may use either form.
    pub fn kubeconfig_server(&self) -> String {
        format!("{}{}{}", self.url, handlers::TOKEN_PATH_PREFIX, self.token)
    }

    /// A kubeconfig whose cluster, user and context are all named `sgsim` (current context).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        let v = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sgsim", "cluster": {"server": self.kubeconfig_server()}}],
            "users": [{"name": "sgsim", "user": {"token": self.token}}],
            "contexts": [{"name": "sgsim", "context": {"cluster": "sgsim", "user": "sgsim", "namespace": "default"}}],
            "current-context": "sgsim",
            "preferences": {},
        });
        serde_json::from_value(v).expect("static kubeconfig shape")
    }

    /// Writes [`Self::kubeconfig`] to `path` (JSON, which kubectl reads as YAML), mode 0600 on Unix.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ApiServerError> {
        let text = serde_json::to_string_pretty(&self.kubeconfig())?;
        let wrap = |source| ApiServerError::WriteKubeconfig {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(wrap)?;
        }
        std::fs::write(path, text).map_err(wrap)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(wrap)?;
        }
        Ok(())
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
