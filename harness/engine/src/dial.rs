//! Dialing gRPC peers from inside the pod without glibc name resolution.
//!
//! The in-pod binaries are linked fully static; glibc's NSS cannot be loaded there, so names are
//! resolved here: IP literals, `localhost`, then the hosts file (`/etc/hosts`, which the kubelet
//! fills with `delegate-service`). There is no DNS lookup.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;
use tonic::transport::{Channel, Endpoint};

use crate::error::{EngineError, Result};

/// The product's value of DELEGATE_SERVICE_ENDPOINT (the lite-engine dials it; the log service's
/// upload links fall back to its host).
pub const DEFAULT_DELEGATE_ENDPOINT: &str = "delegate-service:8080";

/// Environment variable overriding the hosts file path (tests).
pub const HOSTS_FILE_ENV: &str = "SGSIM_HOSTS_FILE";

/// Where a gRPC peer listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port` (an optional `http://` prefix is accepted).
    Tcp { host: String, port: u16 },
    /// `unix:/path` or `unix:///path`.
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Target {
    /// Parses `host:port`, `http://host:port`, `[v6]:port`, `unix:/path`, `unix:///path`.
    pub fn parse(endpoint: &str) -> Result<Self> {
        let bad = |reason| EngineError::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason,
        };
        let s = endpoint.trim();
        if let Some(rest) = s.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("empty unix socket path"));
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let s = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("expected host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Target::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

/// Finds `name` in hosts-file text (first match wins, as glibc does).
pub fn lookup_hosts(content: &str, name: &str) -> Option<IpAddr> {
    content.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let ip: IpAddr = fields.next()?.parse().ok()?;
        fields.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
    })
}

/// Resolves a host name without NSS (see the module docs).
pub async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let hosts_path = std::env::var_os(HOSTS_FILE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/hosts"));
    if let Ok(content) = tokio::fs::read_to_string(&hosts_path).await
        && let Some(ip) = lookup_hosts(&content, host)
    {
        return Ok(SocketAddr::new(ip, port));
    }
    // No DNS: the only names a pod needs are in its hosts file.
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "cannot resolve {host}: not an IP address, not localhost, not in {}",
            hosts_path.display()
        ),
    ))
}

/// A connected byte stream to a [`Target`].
pub type Stream = Either<TcpStream, UnixStream>;

/// Opens a byte stream to `target`.
pub async fn dial(target: &Target) -> io::Result<Stream> {
    match target {
        Target::Tcp { host, port } => {
            let addr = resolve(host, *port).await?;
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Either::Left(s))
        }
        Target::Unix(path) => Ok(Either::Right(UnixStream::connect(path).await?)),
    }
}

type BoxIoFuture<S> = Pin<Box<dyn Future<Output = io::Result<TokioIo<S>>> + Send>>;

/// Builds a gRPC channel whose every connection comes from `connector`. Eager: the first
/// connection is made before this returns; lazy: at the first call (a failed connection fails
/// that call, the next call tries again).
pub async fn channel_with<F, Fut, S>(
    connector: F,
    timeout: Option<Duration>,
    lazy: bool,
) -> Result<Channel, tonic::transport::Error>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connector = std::sync::Arc::new(connector);
    let mut endpoint = Endpoint::from_static("http://sgsim.invalid")
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    if let Some(t) = timeout {
        endpoint = endpoint.timeout(t);
    }
    let service = tower::service_fn(move |_: http::Uri| {
        let fut = connector();
        let boxed: BoxIoFuture<S> = Box::pin(async move { fut.await.map(TokioIo::new) });
        boxed
    });
    if lazy {
        Ok(endpoint.connect_with_connector_lazy(service))
    } else {
        endpoint.connect_with_connector(service).await
    }
}

/// A gRPC channel to `target`, resolved with [`resolve`].
pub async fn channel(target: &Target) -> Result<Channel> {
    let t = target.clone();
    channel_with(
        move || {
            let t = t.clone();
            async move { dial(&t).await }
        },
        None,
        false,
    )
    .await
    .map_err(|source| EngineError::Dial {
        target: target.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            Target::parse("delegate-service:8080").unwrap(),
            Target::Tcp {
                host: "delegate-service".into(),
                port: 8080
            }
        );
        assert_eq!(
            Target::parse("http://10.0.0.1:20001/").unwrap(),
            Target::Tcp {
                host: "10.0.0.1".into(),
                port: 20001
            }
        );
        assert_eq!(
            Target::parse("[::1]:5").unwrap(),
            Target::Tcp {
                host: "::1".into(),
                port: 5
            }
        );
        assert_eq!(
            Target::parse("unix:///run/sgsim/delegate.sock").unwrap(),
            Target::Unix("/run/sgsim/delegate.sock".into())
        );
        assert_eq!(Target::parse("unix:/a/b").unwrap(), Target::Unix("/a/b".into()));
        assert!(Target::parse("nohost").is_err());
        assert!(Target::parse("h:notaport").is_err());
    }

    #[test]
    fn hosts_lookup() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.9 delegate-service\n10.244.1.1\tdelegate-service other # gw\n10.9.9.9 delegate-service\n";
        assert_eq!(
            lookup_hosts(hosts, "delegate-service"),
            Some("10.244.1.1".parse().unwrap())
        );
        assert_eq!(lookup_hosts(hosts, "other"), Some("10.244.1.1".parse().unwrap()));
        assert_eq!(lookup_hosts(hosts, "missing"), None);
    }
}
