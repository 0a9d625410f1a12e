//! The shared state of one embedded API server: its store, token, log sources and options, as
//! every request handler (and the ServiceAccount token issuer) sees them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::defaults::Admission;
use super::logs::PodLogSource;
use super::portforward::PodPortSource;
use super::store::Store;

/// Shared state of one server.
pub struct AppState {
    /// Objects and watch history.
    pub store: Store,
    /// Bearer token clients must present.
    pub token: String,
    /// Log sources by node name.
    pub node_logs: RwLock<HashMap<String, Arc<dyn PodLogSource>>>,
    /// Port-forward sources by node name.
    pub node_ports: RwLock<HashMap<String, Arc<dyn PodPortSource>>>,
    /// Becomes true when the server shuts down (ends watches and log streams).
    pub shutdown: watch::Receiver<bool>,
    /// Admission plugins enabled.
    pub admission: Admission,
    /// `host:port` the server listens on.
    pub addr: String,
    /// gitVersion served at `/version`.
    pub git_version: String,
    /// Pods bound to a node are marked (deletionTimestamp) instead of removed on delete.
    pub graceful_pod_deletion: bool,
    /// `ca.crt` of every namespace's `kube-root-ca.crt`.
    pub root_ca: String,
}

/// Shared state handle.
pub type App = Arc<AppState>;
