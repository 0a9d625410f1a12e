//! The pods' TLS endpoint to the API server (`sgsim_cluster::pod_api`), without Docker: a TLS
//! client that trusts only the gateway's CA (as client-go trusts the mounted ca.crt) sends HTTP
//! requests over the node socket. A pod's ServiceAccount token reaches the API server that issued
//! it (two servers share the gateway, as parallel trials share a node); a forged token and a
//! request without one are refused with a Kubernetes Status.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, PostParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use sgsim_cluster::pod_api::PodApiGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 244, 7, 1));

async fn server(ca: &str) -> (ApiServerHandle, kube::Client) {
    let api = ApiServer::start(ApiServerOptions {
        root_ca: Some(ca.to_string()),
        ..Default::default()
    })
    .await
    .expect("api server");
    let client = api.client().await.expect("client");
    // RBAC: every service account may read pods and namespaces here.
    let gvk = |k: &str| {
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", k))
    };
    for (kind, body) in [
        (
            "ClusterRole",
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list"]}]}),
        ),
        (
            "ClusterRoleBinding",
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "sa-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}),
        ),
    ] {
        let obj: kube::core::DynamicObject = serde_json::from_value(body).expect("rbac object");
        Api::<kube::core::DynamicObject>::all_with(client.clone(), &gvk(kind))
            .create(&PostParams::default(), &obj)
            .await
            .expect("create rbac object");
    }
    (api, client)
}

async fn token(client: &kube::Client, ns: &str, sa: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req = TokenRequest {
        spec: Some(TokenRequestSpec::default()),
        ..TokenRequest::default()
    };
    let tr: TokenRequest = api
        .create_subresource("token", sa, &PostParams::default(), &req)
        .await
        .expect("token");
    tr.status.and_then(|s| s.token).expect("token issued")
}

/// One HTTP/1.1 request over TLS through the socket, verifying the server as `NODE_IP`.
async fn get(socket: &std::path::Path, ca_pem: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    let der = pem_to_der(ca_pem);
    roots.add(rustls::pki_types::CertificateDer::from(der)).expect("CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::net::UnixStream::connect(socket).await.expect("socket");
    let name = rustls::pki_types::ServerName::IpAddress(NODE_IP.into());
    let mut tls = connector
        .connect(name, stream)
        .await
        .expect("TLS handshake with the cluster CA");
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {NODE_IP}:443\r\n{auth}Connection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in b64.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

#[tokio::test]
async fn pod_tokens_reach_their_own_api_server_over_tls() {
    let gw = PodApiGateway::new().expect("gateway");
    let ca = gw.ca_pem().to_string();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let dir = std::env::temp_dir().join(format!("sgsim-pod-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("apiserver.sock");
    let _endpoint = gw.serve_unix(&socket, &[NODE_IP]).expect("serve");

    // Two trials' API servers behind one gateway.
    let (a, ca_client) = server(&ca).await;
    let (b, cb_client) = server(&ca).await;
    assert_ne!(a.token_key_id(), b.token_key_id());
    let _ra = gw.register(&a.token_key_id(), a.endpoint());
    let _rb = gw.register(&b.token_key_id(), b.endpoint());
    // Only server B has namespace only-in-b.
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "only-in-b"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(cb_client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    // kube-root-ca.crt carries the gateway's CA.
    let cm = Api::<ConfigMap>::namespaced(ca_client.clone(), "default")
        .get("kube-root-ca.crt")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap().get("ca.crt"), Some(&ca));

    let ta = token(&ca_client, "default", "default").await;
    let tb = token(&cb_client, "only-in-b", "default").await;
    let (code, body) = get(&socket, &ca, "/api/v1/namespaces/default/pods", Some(&ta)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"kind\":\"PodList\""), "{body}");
    // B's token reaches B: its namespace exists there, not in A.
    let (code, body) = get(&socket, &ca, "/api/v1/namespaces/only-in-b", Some(&tb)).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = get(&socket, &ca, "/api/v1/namespaces/only-in-b", Some(&ta)).await;
    assert_eq!(code, 404);

    // Refused: no token, a forged token, a token whose server is gone.
    let (code, body) = get(&socket, &ca, "/api/v1/pods", None).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body.contains("\"kind\":\"Status\"") && body.contains("\"reason\":\"Unauthorized\""),
        "{body}"
    );
    let (code, _) = get(&socket, &ca, "/api/v1/pods", Some("forged")).await;
    assert_eq!(code, 401);
    drop(_rb);
    let (code, _) = get(&socket, &ca, "/api/v1/namespaces/only-in-b", Some(&tb)).await;
    assert_eq!(code, 401);

    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
