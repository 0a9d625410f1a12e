//! Raw HTTP: exact Status bodies, authentication, discovery documents and media types.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{connect, host, pod, raw, start};

#[tokio::test]
async fn error_bodies_are_kubernetes_status() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("dup", json!({})))
        .await
        .unwrap();
    let token = server.token().to_owned();

    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/nope",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"pods"},"code":404}"#
    );

    let dup = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dup"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
    let (code, body) = raw(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(&token),
        Some(dup),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"dup\" already exists","reason":"AlreadyExists","details":{"name":"dup","kind":"pods"},"code":409}"#
    );

    let (code, body) = raw(
        &server,
        "POST",
        "/api/v1/namespaces/missing/pods",
        Some(&token),
        Some(dup),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"namespaces"},"code":404}"#
    );

    // Through kube-rs too.
    match pods.get("nope").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.reason, "NotFound");
            assert_eq!(s.message, "pods \"nope\" not found");
        }
        other => panic!("expected 404, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unauthorized_without_token() {
    let (server, _client) = start().await;
    let expected = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    let (code, body) = raw(&server, "GET", "/api/v1/pods", None, None).await;
    assert_eq!((code, body.as_str()), (401, expected));
    let (code, _) = raw(&server, "GET", "/api/v1/pods", Some("wrong"), None).await;
    assert_eq!(code, 401);
    let token = server.token().to_owned();
    let (code, _) = raw(&server, "GET", "/api/v1/pods", Some(&token), None).await;
    assert_eq!(code, 200);
    let (code, body) = raw(&server, "GET", "/version", None, None).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"gitVersion\":\"v1.37.0-sgsim\""), "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn discovery_documents() {
    let (server, client) = start().await;
    let token = server.token().to_owned();
    let (code, body) = raw(&server, "GET", "/api/v1", Some(&token), None).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let pods = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert!(
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/log")
    );
    let (code, body) = raw(&server, "GET", "/apis", Some(&token), None).await;
    assert_eq!(code, 200);
    assert!(body.contains("events.k8s.io"), "{body}");
    for path in ["/healthz", "/readyz", "/livez"] {
        assert_eq!(raw(&server, "GET", path, None, None).await, (200, "ok".to_owned()));
    }
    // Nothing in a URL authenticates: the token only counts in the Authorization header.
    assert_eq!(
        raw(
            &server,
            "GET",
            &format!("/sgsim/{token}/api/v1/namespaces/default"),
            None,
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        raw(&server, "GET", "/api/v1/namespaces/default", None, None).await.0,
        401
    );
    let ver = client.apiserver_version().await.unwrap();
    assert_eq!(ver.git_version, "v1.37.0-sgsim");
    server.shutdown().await;
}

/// What real clients need beyond kube-rs: the Python client's `/version/`, and a 415 (which
/// client-go understands) rather than a decode error for a protobuf body it cannot decode.
#[tokio::test]
async fn version_with_slash_and_protobuf_body_is_415() {
    let (server, _client) = start().await;
    let (code, body) = raw(&server, "GET", "/version/", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"gitVersion\""), "{body}");

    let addr = host(&server);
    let mut s = connect(&server).await;
    // A Pod in protobuf: not one of the kinds the server decodes.
    let payload = b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Pod\x12\x05\x0a\x03\x0a\x01p";
    let head = format!(
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: {}\r\n\r\n",
        server.token(),
        payload.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(payload).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 415"), "{text}");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let v: Value = serde_json::from_str(body).expect("Status body");
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "UnsupportedMediaType");
    assert_eq!(v["code"], 415);
    assert_eq!(
        v["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json"
    );
    server.shutdown().await;
}

/// `kubectl create namespace` sends a protobuf Namespace: the server decodes it.
#[tokio::test]
async fn protobuf_namespace_create() {
    let (server, client) = start().await;
    let name = format!("pb-{}", std::process::id());
    let mut meta = vec![0x0a, name.len() as u8];
    meta.extend_from_slice(name.as_bytes());
    let mut raw = vec![0x0a, meta.len() as u8];
    raw.extend(meta);
    let mut payload = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace".to_vec();
    payload.push(0x12);
    payload.push(raw.len() as u8);
    payload.extend(raw);
    let addr = host(&server);
    let mut s = connect(&server).await;
    let head = format!(
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: {}\r\n\r\n",
        server.token(),
        payload.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&payload).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let ns: Api<Namespace> = Api::all(client);
    let got = ns.get(&name).await.expect("namespace exists");
    assert_eq!(got.metadata.name.as_deref(), Some(name.as_str()));
    server.shutdown().await;
}

/// The server speaks only TLS: a plain-HTTP request gets no HTTP answer, and a client that does
/// not trust the server's own CA cannot connect.
#[tokio::test]
async fn plain_http_and_untrusted_clients_get_nothing() {
    let (server, _client) = start().await;
    assert!(server.url().starts_with("https://127.0.0.1:"), "{}", server.url());
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    s.write_all(
        format!(
            "GET /version HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            host(&server)
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1 200"), "{out:?}");

    let other = sgsim_cluster::tls::Ca::new("someone-else").expect("ca");
    let config = sgsim_cluster::tls::client_config(other.pem()).expect("client config");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    assert!(connector.connect(name, tcp).await.is_err());
    // The server's own CA works (what raw() and every client here use).
    drop(connect(&server).await);
    server.shutdown().await;
}

/// The kubeconfig: YAML, mode 0600, the https server URL with nothing secret in it, the server's CA
/// as certificate-authority-data and the token only as the user's bearer token.
#[tokio::test]
async fn kubeconfig_is_private_yaml_with_the_ca_and_no_token_in_the_url() {
    let (server, _client) = start().await;
    let dir = std::env::temp_dir().join(format!("sgsim-kc-{}-{}", std::process::id(), line!()));
    let path = dir.join("kubeconfig");
    server.write_kubeconfig(&path).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!text.trim_start().starts_with('{'), "YAML, not JSON:\n{text}");
    let v: Value = serde_saphyr::from_str(&text).expect("YAML");
    let cluster = &v["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], json!(server.url()));
    assert!(!text.contains("/sgsim/"), "{text}");
    let ca = cluster["certificate-authority-data"].as_str().expect("CA data");
    assert_eq!(
        sgsim_core::base64::decode(ca).expect("base64"),
        server.ca_pem().as_bytes()
    );
    assert_eq!(v["users"][0]["user"]["token"], json!(server.token()));
    assert_eq!(
        text.matches(server.token()).count(),
        1,
        "the token appears once:\n{text}"
    );
    // A client built from the file alone works.
    let kc = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let ns: Api<Namespace> = Api::all(client);
    assert!(ns.get("default").await.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown().await;
}
