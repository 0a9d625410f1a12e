//! Home of the registry proxy on `<node dir>/registry.sock`: it picks the registry instance by the
//! `Host` header, applies the scenario's simulated conditions (a delay per pull, `429 Too Many
//! Requests` for the first N pulls) and forwards the request through the node agent's tunnel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::DOCKER_HUB;

/// Docker Hub's answer when the pull rate limit is reached (status 429).
pub const RATE_LIMIT_BODY: &str = "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit\"}]}\n";

/// The simulated conditions of one registry.
#[derive(Default)]
pub(super) struct Conditions {
    /// A fixed delay before each pull (its manifest request by tag).
    pub(super) delay: Duration,
    /// How many more manifest requests are answered 429.
    pub(super) remaining_429: u32,
}

/// Serves the proxy: one task per connection.
pub(super) async fn serve(
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
    match super::split_port(host) {
        ("127.0.0.1" | "localhost" | "", None | Some(80)) => DOCKER_HUB.to_string(),
        (name, None | Some(80)) => name.to_string(),
        // A registry with its own port (`registry.x.io:5000`): the node forwards that port here.
        (name, Some(port)) => format!("{name}:{port}"),
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
    use super::*;

    #[test]
    fn route_keys() {
        assert_eq!(route_key("127.0.0.1"), "docker.io");
        assert_eq!(route_key("registry.x.io:80"), "registry.x.io");
        assert_eq!(route_key("localhost:80"), "docker.io");
        assert_eq!(route_key("registry.x.io:5000"), "registry.x.io:5000");
        assert_eq!(route_key("127.0.0.1:31234"), "127.0.0.1:31234");
    }
}
