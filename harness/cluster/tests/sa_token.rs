//! ServiceAccount tokens: a TokenRequest issues a token the embedded API server accepts as a
//! bearer token, naming the account; tampered tokens and tokens of deleted accounts are refused.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};

async fn start() -> (ApiServerHandle, kube::Client) {
    let api = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("api server starts");
    let client = api.client().await.expect("client");
    (api, client)
}

/// A client that authenticates with `token` only.
async fn client_with(api: &ApiServerHandle, token: &str) -> kube::Client {
    let mut kc = api.kubeconfig();
    for u in &mut kc.auth_infos {
        if let Some(a) = u.auth_info.as_mut() {
            a.token = Some(token.to_owned().into());
        }
    }
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

async fn request_token(client: &kube::Client, ns: &str, sa: &str) -> Result<String, kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3607),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let tr: TokenRequest = api
        .create_subresource("token", sa, &PostParams::default(), &req)
        .await?;
    Ok(tr.status.and_then(|s| s.token).unwrap_or_default())
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let std = payload.replace('-', "+").replace('_', "/");
    let padded = format!("{std}{}", "=".repeat((4 - std.len() % 4) % 4));
    let bytes = decode_b64(&padded);
    serde_json::from_slice(&bytes).expect("claims are JSON")
}

fn decode_b64(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = T.iter().position(|t| *t == c).expect("base64 alphabet") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

#[tokio::test]
async fn token_request_issues_a_bearer_token_the_server_accepts() {
    let (api, admin) = start().await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let sa = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some("deployer".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create(&PostParams::default(), &sa).await.expect("create sa");

    let token = request_token(&admin, "default", "deployer")
        .await
        .expect("token request");
    let c = claims(&token);
    assert_eq!(c["sub"], "system:serviceaccount:default:deployer");
    assert_eq!(c["kubernetes.io"]["namespace"], "default");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "deployer");

    // The token authenticates (RBAC: a ClusterRoleBinding lets every service account list pods).
    let crb: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "sa-list-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "list-pods"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts", "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .expect("binding");
    let cr: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "list-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }))
    .expect("role");
    let gvk = |k: &str| {
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", k))
    };
    Api::<kube::core::DynamicObject>::all_with(admin.clone(), &gvk("ClusterRole"))
        .create(&PostParams::default(), &cr)
        .await
        .expect("create clusterrole");
    Api::<kube::core::DynamicObject>::all_with(admin.clone(), &gvk("ClusterRoleBinding"))
        .create(&PostParams::default(), &crb)
        .await
        .expect("create clusterrolebinding");
    let as_sa = client_with(&api, &token).await;
    let pods: Api<Pod> = Api::namespaced(as_sa.clone(), "default");
    pods.list(&ListParams::default())
        .await
        .expect("the service-account token is accepted");

    // A tampered token does not.
    let mut forged = token.clone();
    let last = forged.pop().expect("non-empty");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let bad = client_with(&api, &forged).await;
    let err = Api::<Pod>::namespaced(bad, "default")
        .list(&ListParams::default())
        .await
        .expect_err("forged token refused");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 401), "{err:?}");

    // Deleting the account revokes its tokens.
    sas.delete("deployer", &DeleteParams::default())
        .await
        .expect("delete sa");
    let err = pods
        .list(&ListParams::default())
        .await
        .expect_err("token of a deleted account refused");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 401), "{err:?}");
}

#[tokio::test]
async fn token_request_for_a_missing_account_is_not_found() {
    let (_api, admin) = start().await;
    let err = request_token(&admin, "default", "ghost")
        .await
        .expect_err("no such account");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.message, "serviceaccounts \"ghost\" not found");
        }
        other => panic!("unexpected error {other:?}"),
    }
}
