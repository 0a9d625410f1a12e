//! The service-account token of a projected volume: a TokenRequest bound to the pod, or a locally
//! built JWT-shaped token when the API server serves none.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use crate::kubelet::Shared;
use crate::kubelet::convert::PodId;

/// The pod's `spec.serviceAccountName` as stored (admission defaults it to `default`).
pub(super) async fn pod_service_account(shared: &Shared, ns: &str, name: &str) -> String {
    Api::<Pod>::namespaced(shared.client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.spec)
        .and_then(|s| s.service_account_name)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Ask the API server for a token of ServiceAccount `ns/sa` bound to the pod (TokenRequest on
/// `serviceaccounts/{sa}/token`, as the kubelet's token manager does). `None` when the server
/// does not serve TokenRequests.
pub(super) async fn request_token(
    shared: &Shared,
    ns: &str,
    sa: &str,
    id: &PodId,
    expiration: Option<i64>,
    audience: Option<String>,
) -> Option<String> {
    use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a]),
            expiration_seconds: expiration,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(id.name.clone()),
                uid: Some(id.uid.clone()),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(shared.client.clone(), ns);
    match api
        .create_subresource::<_, TokenRequest>("token", sa, &PostParams::default(), &req)
        .await
    {
        Ok(tr) => tr.status.and_then(|s| s.token).filter(|t| !t.is_empty()),
        Err(e) => {
            tracing::debug!(error = %e, "TokenRequest failed; using a local token");
            None
        }
    }
}

/// A JWT-shaped bound service-account token with the claims Kubernetes puts in one (issuer,
/// audience, `sub` = `system:serviceaccount:<ns>:<name>`, the `kubernetes.io` claim naming the
/// namespace, account and pod); the signature is a digest, not an RSA signature. Used when the
/// API server serves no TokenRequest.
pub(super) fn service_account_token(ns: &str, sa: &str, id: &PodId) -> String {
    use sha2::Digest;
    let header = serde_json::json!({"alg": "RS256", "kid": "sgsim"});
    let payload = serde_json::json!({
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {
            "namespace": ns,
            "pod": {"name": id.name, "uid": id.uid},
            "serviceaccount": {"name": sa},
        },
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
    });
    let signing = format!(
        "{}.{}",
        sgsim_core::base64::encode_url(header.to_string().as_bytes()),
        sgsim_core::base64::encode_url(payload.to_string().as_bytes())
    );
    let sig = sha2::Sha256::digest(format!("{signing}.{}", id.uid).as_bytes());
    format!("{signing}.{}", sgsim_core::base64::encode_url(&sig))
}
