//! The node agent: byte tunnels between the host and a node's pods.
//!
//! - Host → pod: a unix socket (`/run/sgsim/agent.sock`). A client writes `CONNECT <ip>:<port>\n`;
//!   the agent dials that address from inside the node, answers `OK\n` or `ERR <message>\n`, and
//!   then copies bytes both ways until either side closes.
//! - Pod → delegate: a TCP listener (`0.0.0.0:8080`) whose every connection is forwarded to the
//!   unix socket `/run/sgsim/delegate.sock`, which the sgsim process serves.
//! - Pod → API server (optional): a TCP listener on the node's bridge address, port 443 (where
//!   `KUBERNETES_SERVICE_HOST` points), forwarded the same way to `/run/sgsim/apiserver.sock`
//!   (sgsim's TLS endpoint for pods). Not on every address: the node's dockerd tries
//!   `https://<registry>:443` on loopback before plain HTTP, and must find nothing there.
//!
//! [`connect_via_agent`] is the client half of the first tunnel, for the host side.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

pub use crate::error::AgentError;

/// Default path of the host → pod tunnel socket inside a node.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/sgsim/agent.sock";
/// Default path of the delegate socket inside a node.
pub const DEFAULT_DELEGATE_SOCKET: &str = "/run/sgsim/delegate.sock";
/// Default TCP address forwarded to the delegate socket.
pub const DEFAULT_DELEGATE_LISTEN: &str = "0.0.0.0:8080";
/// Default path of the API server socket inside a node.
pub const DEFAULT_API_SOCKET: &str = "/run/sgsim/apiserver.sock";

const MAX_REQUEST_LINE: usize = 512;
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub agent_socket: PathBuf,
    pub delegate_listen: SocketAddr,
    pub delegate_socket: PathBuf,
    /// The pod → API server forward (`None`: off).
    pub api_listen: Option<SocketAddr>,
    pub api_socket: PathBuf,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            agent_socket: DEFAULT_AGENT_SOCKET.into(),
            delegate_listen: DEFAULT_DELEGATE_LISTEN.parse().expect("valid default address"),
            delegate_socket: DEFAULT_DELEGATE_SOCKET.into(),
            api_listen: None,
            api_socket: DEFAULT_API_SOCKET.into(),
        }
    }
}

/// Binds a unix listener, replacing a stale socket file and making it usable by any user (the
/// host-side sgsim process usually does not run as the node's root).
pub fn bind_unix(path: &Path) -> Result<UnixListener, AgentError> {
    let err = |source| AgentError::BindUnix {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
    Ok(listener)
}

/// Serves the host → pod tunnel on `listener` until the task is dropped.
pub async fn serve_tunnel(listener: UnixListener) -> Result<(), AgentError> {
    loop {
        let (conn, _) = listener.accept().await.map_err(AgentError::Accept)?;
        tokio::spawn(async move {
            match handle_tunnel(conn).await {
                // a probe that connected and went away without a request
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => eprintln!("sgsim-node-agent: tunnel: {e}"),
                Ok(()) => {}
            }
        });
    }
}

/// Reads one `\n`-terminated line byte by byte, so no byte after it is consumed.
async fn read_line(conn: &mut UnixStream) -> io::Result<String> {
    let mut line = Vec::with_capacity(64);
    loop {
        let b = conn.read_u8().await?;
        if b == b'\n' {
            break;
        }
        if line.len() >= MAX_REQUEST_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request line too long"));
        }
        line.push(b);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request line is not UTF-8"))
}

async fn handle_tunnel(mut conn: UnixStream) -> io::Result<()> {
    let line = read_line(&mut conn).await?;
    let target = match line.strip_prefix("CONNECT ").map(str::trim) {
        None => {
            conn.write_all(b"ERR expected CONNECT <ip>:<port>\n").await?;
            return Ok(());
        }
        Some(t) => t.to_string(),
    };
    let addr = match crate::dial::Target::parse(&target) {
        Ok(crate::dial::Target::Tcp { host, port }) => crate::dial::resolve(&host, port).await,
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid address {target:?}"),
        )),
    };
    let dialed = match addr {
        Ok(addr) => match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        },
        Err(e) => Err(e),
    };
    let upstream = match dialed {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("ERR dial {target}: {e}\n").replace(['\r'], " ");
            conn.write_all(msg.as_bytes()).await?;
            return Ok(());
        }
    };
    upstream.set_nodelay(true)?;
    conn.write_all(b"OK\n").await?;
    splice(conn, upstream).await
}

/// Serves the pod → delegate forward on `listener` until the task is dropped.
pub async fn serve_delegate_forward(listener: TcpListener, delegate_socket: PathBuf) -> Result<(), AgentError> {
    loop {
        let (conn, _) = listener.accept().await.map_err(AgentError::Accept)?;
        let path = delegate_socket.clone();
        tokio::spawn(async move {
            let _ = conn.set_nodelay(true);
            match UnixStream::connect(&path).await {
                Ok(up) => {
                    let _ = splice(up, conn).await;
                }
                Err(e) => eprintln!("sgsim-node-agent: delegate socket {}: {e}", path.display()),
            }
        });
    }
}

/// Copies both ways; each direction's end is passed on as a half close.
async fn splice<A, B>(a: A, b: B) -> io::Result<()>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut a, mut b) = (a, b);
    match tokio::io::copy_bidirectional(&mut a, &mut b).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Binds `addr`, waiting (up to a minute) while the address does not exist yet: the node's bridge
/// address appears only once its dockerd has created the bridge.
async fn bind_when_available(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => return Err(AgentError::BindTcp { addr, source }),
        }
    }
}

/// Runs the agent's listeners until one fails.
pub async fn run(config: AgentConfig) -> Result<(), AgentError> {
    let tunnel = bind_unix(&config.agent_socket)?;
    let tcp = TcpListener::bind(config.delegate_listen)
        .await
        .map_err(|source| AgentError::BindTcp {
            addr: config.delegate_listen,
            source,
        })?;
    let api_forward = async {
        match config.api_listen {
            Some(addr) => serve_delegate_forward(bind_when_available(addr).await?, config.api_socket.clone()).await,
            None => futures::future::pending().await,
        }
    };
    tokio::select! {
        r = serve_tunnel(tunnel) => r,
        r = serve_delegate_forward(tcp, config.delegate_socket.clone()) => r,
        r = api_forward => r,
    }
}

/// Client half of the host → pod tunnel: a stream to `target` through the agent at `agent_socket`.
pub async fn connect_via_agent(agent_socket: &Path, target: SocketAddr) -> Result<UnixStream, AgentError> {
    let agent_err = |source| AgentError::Agent {
        path: agent_socket.to_path_buf(),
        source,
    };
    let mut conn = UnixStream::connect(agent_socket).await.map_err(agent_err)?;
    conn.write_all(format!("CONNECT {target}\n").as_bytes())
        .await
        .map_err(agent_err)?;
    let mut line = Vec::new();
    loop {
        let b = conn.read_u8().await.map_err(agent_err)?;
        if b == b'\n' {
            break;
        }
        if line.len() >= MAX_REQUEST_LINE {
            return Err(agent_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer line too long",
            )));
        }
        line.push(b);
    }
    let answer = String::from_utf8_lossy(&line).into_owned();
    if answer == "OK" {
        Ok(conn)
    } else {
        Err(AgentError::Refused {
            target,
            message: answer.strip_prefix("ERR ").unwrap_or(&answer).to_string(),
        })
    }
}
