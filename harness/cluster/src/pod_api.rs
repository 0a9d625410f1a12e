//! The pods' path to the API server, as in-cluster clients use it: `https://$KUBERNETES_SERVICE_HOST:443`
//! with the CA in `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt` and the bearer token beside
//! it (client-go sends no token over plain HTTP, so this endpoint is TLS).
//!
//! Nodes have no network (`--network none`): each node's agent listens on `:443` inside the node
//! and forwards every connection to `apiserver.sock` in the node's directory, which a
//! [`PodApiGateway`] serves here. The gateway terminates TLS with a certificate for the node's
//! gateway address (signed by the gateway's own CA, which the API servers publish as
//! `kube-root-ca.crt`), then routes the connection to the trial's API server that issued the
//! request's ServiceAccount token: the token's header names its server (`kid`,
//! [`crate::apiserver::ApiServerHandle::token_key_id`]), so parallel trials sharing a node each
//! reach their own cluster. The connection is handed to that server in process (no network between
//! the gateway and the server); the bytes after the request head are copied as they are (HTTP/1.1;
//! the TLS endpoint offers no HTTP/2).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::apiserver::ApiEndpoint;
use crate::tls::{Ca, SERVICE_NAMES, TlsError};

/// Longest request head read before routing.
const MAX_HEAD: usize = 64 * 1024;

/// Errors of the pod API gateway.
#[derive(Debug, thiserror::Error)]
pub enum PodApiError {
    /// Generating a certificate or the TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The socket could not be served.
    #[error("cannot serve {path}")]
    Serve {
        /// Socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

type Routes = Arc<RwLock<HashMap<String, ApiEndpoint>>>;

/// A CA and the routes from token key ids to API servers; serves TLS endpoints for nodes.
pub struct PodApiGateway {
    ca: Ca,
    routes: Routes,
}

impl std::fmt::Debug for PodApiGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodApiGateway").finish_non_exhaustive()
    }
}

/// Removes a route when dropped.
pub struct RouteGuard {
    routes: Routes,
    kid: String,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.kid);
    }
}

/// Stops one served endpoint and removes its socket when dropped.
pub struct EndpointGuard {
    stop: CancellationToken,
    path: PathBuf,
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl PodApiGateway {
    /// A gateway with a fresh CA.
    pub fn new() -> Result<PodApiGateway, PodApiError> {
        Ok(PodApiGateway {
            ca: Ca::new("sgsim-ca")?,
            routes: Arc::default(),
        })
    }

    /// The CA certificate (PEM), for `kube-root-ca.crt`.
    pub fn ca_pem(&self) -> &str {
        self.ca.pem()
    }

    /// Routes requests whose token has key id `kid` to the API server `endpoint` (served in
    /// process, no network between) until the guard is dropped.
    pub fn register(&self, kid: &str, endpoint: ApiEndpoint) -> RouteGuard {
        self.routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(kid.to_string(), endpoint);
        RouteGuard {
            routes: self.routes.clone(),
            kid: kid.to_string(),
        }
    }

    /// Serves the TLS endpoint on the unix socket `path` with a certificate for `ips` and the
    /// `kubernetes` Service names.
    pub fn serve_unix(&self, path: &Path, ips: &[IpAddr]) -> Result<EndpointGuard, PodApiError> {
        let mut names: Vec<String> = SERVICE_NAMES.iter().map(|s| (*s).to_string()).collect();
        names.extend(ips.iter().map(IpAddr::to_string));
        let config = self.ca.server_config(names)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = sgsim_engine::node_agent::bind_unix(path).map_err(|e| PodApiError::Serve {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let stop = CancellationToken::new();
        let s = stop.clone();
        let routes = self.routes.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = s.cancelled() => break,
                    c = listener.accept() => c,
                };
                let stream = match conn {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // E.g. out of file descriptors: retry without spinning.
                        tracing::debug!(error = %e, "pod API: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let routes = routes.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(tls) => route(tls, &routes).await,
                        Err(e) => tracing::debug!(error = %e, "pod API: TLS handshake failed"),
                    }
                });
            }
        });
        Ok(EndpointGuard {
            stop,
            path: path.to_path_buf(),
        })
    }
}

/// The `kid` of the bearer token in a request head, if any.
pub fn token_key_id(head: &str) -> Option<String> {
    let token = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return None;
        }
        let v = value.trim();
        let (scheme, tok) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| tok.trim().to_string())
    })?;
    crate::apiserver::token_kid(&token)
}

/// A Kubernetes 401 `Status` response, then close.
fn unauthorized() -> Vec<u8> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
    })
    .to_string();
    format!(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn route<S: AsyncRead + AsyncWrite + Unpin>(mut tls: S, routes: &RwLock<HashMap<String, ApiEndpoint>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = token_key_id(&text).and_then(|kid| {
        routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&kid)
            .cloned()
    });
    let Some(endpoint) = target else {
        let _ = tls.write_all(&unauthorized()).await;
        let _ = tls.shutdown().await;
        return;
    };
    let (mut upstream, server_side) = tokio::io::duplex(64 * 1024);
    endpoint.serve(server_side);
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_of_a_bearer_token() {
        // {"alg":"RS256","kid":"sgsim-abc"}
        let header = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNnc2ltLWFiYyJ9";
        let head = format!("GET /api/v1/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {header}.e30.sig\r\n\r\n");
        assert_eq!(token_key_id(&head).as_deref(), Some("sgsim-abc"));
        assert_eq!(token_key_id("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(
            token_key_id("GET / HTTP/1.1\r\nauthorization: Basic eDp5\r\n\r\n"),
            None
        );
    }
}
