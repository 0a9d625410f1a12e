//! Shared helpers: a server with its kube client, raw HTTP/1.1 requests, and test objects.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) async fn start() -> (ApiServerHandle, kube::Client) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("server starts");
    let client = server.client().await.expect("client");
    (server, client)
}

/// A TLS connection to the server, trusting only its CA (as a kubeconfig's
/// `certificate-authority-data` makes a client do).
pub(crate) async fn connect(server: &ApiServerHandle) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = sgsim_cluster::tls::client_config(server.ca_pem()).expect("client config");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

/// `host:port` for a Host header.
pub(crate) fn host(server: &ApiServerHandle) -> String {
    server.addr().to_string()
}

/// HTTP/1.1 request over TLS; returns status code and body.
pub(crate) async fn raw(
    server: &ApiServerHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let addr = host(server);
    let mut s = connect(server).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (code, body)
}

pub(crate) fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub(crate) fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}, {"name": "side", "image": "alpine"}]},
    }))
    .expect("pod")
}

pub(crate) async fn create_ns(client: &kube::Client, name: &str) -> Namespace {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created")
}
