//! The API server's router without a listener: requests go straight to the handlers, as the
//! fuzzer and in-process tests send them. Same state, seeding and handlers as [`ApiServer::start`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use tokio::sync::watch;

use super::{ApiServerError, ApiServerOptions, app, defaults, handlers, store, util};

/// A router over a fresh server state; dropping it ends its watches.
pub struct InProcess {
    /// The whole router, as the listener serves it.
    pub router: Router,
    /// The bearer token the router requires.
    pub token: String,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

/// A server state seeded as [`super::ApiServer::start`] seeds it, served by no listener.
pub fn in_process(opts: &ApiServerOptions) -> Result<InProcess, ApiServerError> {
    let token = opts.token.clone().unwrap_or_else(util::random_token);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(app::AppState {
        store: store::Store::default(),
        token: token.clone(),
        node_logs: RwLock::new(HashMap::new()),
        node_ports: RwLock::new(HashMap::new()),
        shutdown: shutdown_rx,
        admission: defaults::Admission {
            service_account: opts.service_account_admission,
        },
        addr: opts.bind.to_string(),
        git_version: opts.git_version.clone(),
        graceful_pod_deletion: opts.graceful_pod_deletion,
        root_ca: opts
            .root_ca
            .clone()
            .unwrap_or_else(|| defaults::ROOT_CA_PLACEHOLDER.to_owned()),
    });
    super::seed(&app, opts)?;
    Ok(InProcess {
        router: handlers::router(app),
        token,
        _shutdown: shutdown_tx,
    })
}
