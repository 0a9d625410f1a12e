//! The in-cluster delegate relay, for runs on a cluster sgsim does not own (`--backend kube`):
//! pods reach `delegate-service:8080` through it, while sgsim stays outside the cluster and can
//! only open connections *into* pods (port-forward).
//!
//! - Relay side ([`run_relay`], `sgsim-node-agent --relay-back ADDR`, in a pod of the trial's
//!   namespace): sgsim opens *back* connections to `ADDR` and leaves them idle; each connection a
//!   pod makes to the delegate listener takes one idle back connection, the relay writes one byte
//!   ([`GO`]) on it, then copies bytes both ways.
//! - sgsim's side ([`serve_back`]): keeps a few back connections open; one that receives [`GO`] is
//!   spliced to the local delegate and replaced by a new one.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::error::AgentError;

/// The byte that tells sgsim's side a pod connection is attached to a back connection.
pub const GO: u8 = 0x01;
/// How long a pod connection waits for an idle back connection.
pub const WAIT_FOR_BACK: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Parked {
    conns: Mutex<VecDeque<TcpStream>>,
    arrived: Notify,
}

impl Parked {
    async fn take(&self) -> Option<TcpStream> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_BACK;
        loop {
            let notified = self.arrived.notified();
            if let Some(c) = self.conns.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                return Some(c);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Serves the relay: pods connect to `listen`, sgsim's back connections arrive on `back`.
pub async fn run_relay(listen: SocketAddr, back: SocketAddr) -> Result<(), AgentError> {
    let pods = TcpListener::bind(listen)
        .await
        .map_err(|source| AgentError::BindTcp { addr: listen, source })?;
    let backs = TcpListener::bind(back)
        .await
        .map_err(|source| AgentError::BindTcp { addr: back, source })?;
    serve_relay(pods, backs).await
}

/// [`run_relay`] on bound listeners.
pub async fn serve_relay(pods: TcpListener, backs: TcpListener) -> Result<(), AgentError> {
    let parked = Arc::new(Parked::default());
    let accept_backs = {
        let parked = parked.clone();
        async move {
            loop {
                let (c, _) = backs.accept().await.map_err(AgentError::Accept)?;
                let _ = c.set_nodelay(true);
                parked.conns.lock().unwrap_or_else(|e| e.into_inner()).push_back(c);
                parked.arrived.notify_waiters();
            }
        }
    };
    let accept_pods = async move {
        loop {
            let (pod, from) = pods.accept().await.map_err(AgentError::Accept)?;
            let _ = pod.set_nodelay(true);
            let parked = parked.clone();
            tokio::spawn(async move {
                loop {
                    let Some(mut back) = parked.take().await else {
                        eprintln!("sgsim-relay: no connection from sgsim within {WAIT_FOR_BACK:?}; dropping {from}");
                        return;
                    };
                    // A back connection sgsim already gave up fails here: try the next one.
                    if back.write_all(&[GO]).await.is_ok() {
                        let _ = splice(pod, back).await;
                        return;
                    }
                }
            });
        }
    };
    tokio::select! {
        r = accept_backs => r,
        r = accept_pods => r,
    }
}

/// sgsim's side: keeps `idle` back connections (opened by `open`) waiting; each that receives
/// [`GO`] is spliced to a connection `local` opens. Runs until dropped.
pub async fn serve_back<O, OF, S, L, LF, T>(open: O, local: L, idle: usize)
where
    O: Fn() -> OF + Send + Sync + 'static,
    OF: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    L: Fn() -> LF + Send + Sync + 'static,
    LF: Future<Output = io::Result<T>> + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let open = Arc::new(open);
    let local = Arc::new(local);
    // Each slot holds one idle back connection at a time; a used one is handed to a task of its
    // own and the slot opens the next.
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..idle.max(1) {
        let (open, local) = (open.clone(), local.clone());
        slots.spawn(async move {
            let mut failures = 0u32;
            loop {
                let mut back = match open().await {
                    Ok(b) => b,
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(20) {
                            tracing::debug!("relay back connection: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                };
                let mut go = [0u8; 1];
                match back.read_exact(&mut go).await {
                    Ok(_) if go[0] == GO => {
                        failures = 0;
                        let local = local.clone();
                        tokio::spawn(async move {
                            match local().await {
                                Ok(l) => {
                                    let _ = splice(back, l).await;
                                }
                                Err(e) => tracing::warn!("relay: the local delegate refused: {e}"),
                            }
                        });
                    }
                    // The relay went away (pod deleted, port-forward closed): open again.
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
    }
    while slots.join_next().await.is_some() {}
}

async fn splice<A, B>(mut a: A, mut b: B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut a, &mut b).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod's connection reaches the local service through a back connection, both ways, and
    /// several pods at once each get their own.
    #[tokio::test]
    async fn pod_connections_reach_the_local_service_through_back_connections() {
        let pods = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backs = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (pod_addr, back_addr) = (pods.local_addr().unwrap(), backs.local_addr().unwrap());
        let relay = tokio::spawn(serve_relay(pods, backs));
        // The "delegate": an echo server that prefixes what it got.
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = c.read(&mut buf).await.unwrap();
                    let mut out = b"echo:".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    c.write_all(&out).await.unwrap();
                });
            }
        });
        let back = tokio::spawn(serve_back(
            move || TcpStream::connect(back_addr),
            move || TcpStream::connect(echo_addr),
            2,
        ));
        let mut clients = Vec::new();
        for i in 0..5 {
            clients.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(pod_addr).await.unwrap();
                c.write_all(format!("pod{i}").as_bytes()).await.unwrap();
                let mut got = Vec::new();
                c.read_to_end(&mut got).await.unwrap();
                String::from_utf8(got).unwrap()
            }));
        }
        for (i, c) in clients.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), format!("echo:pod{i}"));
        }
        back.abort();
        relay.abort();
    }
}
