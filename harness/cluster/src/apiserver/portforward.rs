//! `pods/{name}/portforward` over WebSocket (the `v4.channel.k8s.io` framing kube-rs and client-go's
//! WebSocket port-forwarder speak): each requested port gets a data channel `2i` and an error
//! channel `2i+1`; the server opens both with the port number (two bytes, little endian), then
//! every binary message is a channel byte followed by data. The bytes reach the pod through the
//! node's registered [`PodPortSource`] (the node agent's tunnel to `podIP:port`).

use std::io;
use std::net::IpAddr;

use axum::extract::ws::{Message, WebSocket};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Opens TCP connections to pods of one node (implemented with the node agent's tunnel and
/// registered with [`super::ApiServerHandle::register_node_ports`]).
pub trait PodPortSource: Send + Sync + 'static {
    /// A byte stream to `ip:port` as seen from inside the node.
    fn connect(&self, ip: IpAddr, port: u16) -> BoxFuture<'static, io::Result<UnixStream>>;
}

/// The subprotocols served, in order of preference.
pub const PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", "portforward.k8s.io"];

/// Ports of a `portforward` query: `ports=80&ports=443` or `ports=80,443`.
pub fn parse_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.split('&') {
        let Some(v) = pair.strip_prefix("ports=") else {
            continue;
        };
        let v = v.replace("%2C", ",").replace("%2c", ",");
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?}: must be between 1 and 65535, inclusive")),
            }
        }
    }
    if ports.is_empty() {
        return Err("at least 1 port must be specified".into());
    }
    Ok(ports)
}

/// Serves one upgraded port-forward connection until both sides are done.
pub async fn serve(socket: WebSocket, source: std::sync::Arc<dyn PodPortSource>, ip: IpAddr, ports: Vec<u16>) {
    let (mut tx, mut rx) = socket.split();
    let mut writers = Vec::with_capacity(ports.len());
    let (from_pod, mut from_pods) = mpsc::channel::<(u8, Option<Vec<u8>>)>(16);
    let mut open = 0usize;
    for (i, port) in ports.iter().enumerate() {
        let (data, err) = (
            u8::try_from(2 * i).unwrap_or(u8::MAX),
            u8::try_from(2 * i + 1).unwrap_or(u8::MAX),
        );
        let [lo, hi] = port.to_le_bytes();
        for ch in [data, err] {
            if tx.send(Message::Binary(vec![ch, lo, hi].into())).await.is_err() {
                return;
            }
        }
        match source.connect(ip, *port).await {
            Ok(conn) => {
                let (mut r, w) = conn.into_split();
                writers.push(Some(w));
                open += 1;
                let from_pod = from_pod.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = from_pod.send((data, None)).await;
                                return;
                            }
                            Ok(n) => {
                                if from_pod.send((data, Some(buf[..n].to_vec()))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                writers.push(None);
                let mut msg = vec![err];
                msg.extend_from_slice(format!("error forwarding port {port} to pod at {ip}: {e}").as_bytes());
                let _ = tx.send(Message::Binary(msg.into())).await;
            }
        }
    }
    drop(from_pod);
    if open == 0 {
        let _ = tx.send(Message::Close(None)).await;
        return;
    }
    loop {
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let i = usize::from(b[0] / 2);
                    if b[0] % 2 == 0
                        && let Some(Some(w)) = writers.get_mut(i)
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        writers[i] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client is gone: close the pods' write halves and stop.
                    for w in writers.iter_mut().flatten() {
                        let _ = w.shutdown().await;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            p = from_pods.recv() => match p {
                Some((ch, Some(data))) => {
                    let mut msg = Vec::with_capacity(data.len() + 1);
                    msg.push(ch);
                    msg.extend_from_slice(&data);
                    if tx.send(Message::Binary(msg.into())).await.is_err() {
                        return;
                    }
                }
                Some((_, None)) => {
                    open -= 1;
                    if open == 0 {
                        let _ = tx.send(Message::Close(None)).await;
                        // Let the client see the close before the connection goes.
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                            while let Some(Ok(m)) = rx.next().await {
                                if matches!(m, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ports;

    #[test]
    fn ports_come_repeated_or_comma_separated() {
        assert_eq!(parse_ports("ports=20001").unwrap(), vec![20001]);
        assert_eq!(parse_ports("ports=80&ports=443").unwrap(), vec![80, 443]);
        assert_eq!(parse_ports("a=b&ports=80%2C443").unwrap(), vec![80, 443]);
        assert!(parse_ports("").unwrap_err().contains("at least 1 port"));
        assert!(parse_ports("ports=0").unwrap_err().contains("invalid port \"0\""));
        assert!(parse_ports("ports=x").is_err());
    }
}
