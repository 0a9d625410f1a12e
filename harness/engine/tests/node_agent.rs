//! The node agent binary: host → pod tunnel and pod → delegate forward.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Proc, free_port, wait_tcp, wait_unix};
use sgsim_engine::node_agent::{AgentError, connect_via_agent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};

const AGENT: &str = env!("CARGO_BIN_EXE_sgsim-node-agent");

/// An echo server on a free loopback port.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

fn start_agent(dir: &std::path::Path, listen_port: u16) -> Proc {
    let sock = dir.join("agent.sock");
    let dsock = dir.join("delegate.sock");
    Proc::spawn(
        AGENT,
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{listen_port}"),
            "--delegate-socket",
            dsock.to_str().unwrap(),
        ],
        &[],
    )
}

#[tokio::test]
async fn connect_tunnels_to_tcp_echo() {
    let dir = tempfile::tempdir().unwrap();
    let _agent = start_agent(dir.path(), free_port());
    let sock = dir.path().join("agent.sock");
    wait_unix(&sock).await;
    let echo = echo_server().await;

    // raw protocol
    let mut s = UnixStream::connect(&sock).await.unwrap();
    s.write_all(format!("CONNECT {echo}\n").as_bytes()).await.unwrap();
    let mut ok = [0u8; 3];
    s.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"OK\n");
    s.write_all(b"hello through the tunnel").await.unwrap();
    let mut buf = vec![0u8; 24];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello through the tunnel");

    // bytes sent right behind the request line are not lost
    let mut s = UnixStream::connect(&sock).await.unwrap();
    s.write_all(format!("CONNECT {echo}\npipelined").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 3 + 9];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"OK\npipelined");

    // library client
    let mut s = connect_via_agent(&sock, echo).await.unwrap();
    s.write_all(b"abc").await.unwrap();
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"abc");
}

#[tokio::test]
async fn refused_port_answers_err() {
    let dir = tempfile::tempdir().unwrap();
    let _agent = start_agent(dir.path(), free_port());
    let sock = dir.path().join("agent.sock");
    wait_unix(&sock).await;
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    let mut s = UnixStream::connect(&sock).await.unwrap();
    s.write_all(format!("CONNECT {closed}\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("ERR "), "{answer:?}");
    assert!(answer.ends_with('\n'));
    assert!(answer.to_lowercase().contains("refused"), "{answer:?}");

    match connect_via_agent(&sock, closed).await {
        Err(AgentError::Refused { message, .. }) => assert!(message.to_lowercase().contains("refused")),
        other => panic!("expected Refused, got {:?}", other.map(|_| ())),
    }

    let mut s = UnixStream::connect(&sock).await.unwrap();
    s.write_all(b"HELLO\n").await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("ERR "), "{answer:?}");
}

#[tokio::test]
async fn tcp_listener_forwards_to_delegate_socket() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dsock = dir.path().join("delegate.sock");
    // the "delegate": a unix echo server answering with a prefix
    let l = UnixListener::bind(&dsock).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(b"delegate:").await.unwrap();
                s.write_all(&buf).await.unwrap();
            });
        }
    });
    let _agent = start_agent(dir.path(), port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_tcp(addr).await;
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"ping!").await.unwrap();
        let mut buf = vec![0u8; 14];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"delegate:ping!");
    }
}
