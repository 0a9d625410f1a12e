//! ServiceAccount tokens. `POST serviceaccounts/{name}/token` (a TokenRequest, as the kubelet
//! sends for the `kube-api-access-*` projected volume) issues a JWT-shaped token with Kubernetes'
//! claims (`iss`, `aud`, `exp`, `iat`, `nbf`, `sub` = `system:serviceaccount:<ns>:<name>`, and the
//! `kubernetes.io` claim naming namespace, account and bound pod). It is signed with SHA-256 over
//! the server's own bearer token (not RS256), and the authenticator accepts it as a bearer token
//! while it has not expired and its ServiceAccount still exists with the same uid.

use serde_json::{Value, json};
use sha2::Digest;

use super::app::App;
use super::status::{self, ApiError};
use super::util;

/// Issuer and default audience of the tokens.
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The `kid` in the header of a JWT-shaped token.
pub(crate) fn kid_of(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let v: Value = serde_json::from_slice(&sgsim_core::base64::decode(header)?).ok()?;
    v.get("kid").and_then(Value::as_str).map(str::to_owned)
}

fn signature(app: &App, signing_input: &str) -> String {
    sgsim_core::base64::encode_url(&sha2::Sha256::digest(
        format!("{signing_input}.{}", app.token).as_bytes(),
    ))
}

/// The `kid` of this server's tokens: a digest of its secret, unique per server.
pub(crate) fn key_id(secret: &str) -> String {
    let d = sha2::Sha256::digest(format!("sgsim-kid:{secret}").as_bytes());
    format!("sgsim-{}", hex::encode(&d[..8]))
}

fn now_secs() -> i64 {
    util::parse_time(&util::now_time()).unwrap_or(0)
}

/// Handle a TokenRequest for ServiceAccount `ns/name`; returns the TokenRequest with its status.
pub(crate) fn issue(app: &App, ns: &str, name: &str, req: &Value) -> Result<Value, ApiError> {
    let sa = app
        .store
        .transact(|t| t.get("serviceaccounts", ns, name))
        .ok_or_else(|| status::not_found("", "serviceaccounts", name))?;
    let sa_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600)
        .clamp(600, 1 << 32);
    let audiences = match spec.get("audiences").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!([ISSUER]),
    };
    let now = now_secs();
    let mut k8s = json!({"namespace": ns, "serviceaccount": {"name": name, "uid": sa_uid}});
    if let Some(bound) = spec.get("boundObjectRef")
        && bound.get("kind").and_then(Value::as_str) == Some("Pod")
    {
        k8s["pod"] = json!({
            "name": bound.get("name").cloned().unwrap_or(Value::Null),
            "uid": bound.get("uid").cloned().unwrap_or(Value::Null),
        });
    }
    let claims = json!({
        "aud": audiences,
        "exp": now + expiration,
        "iat": now,
        "iss": ISSUER,
        "kubernetes.io": k8s,
        "nbf": now,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let header = json!({"alg": "RS256", "kid": key_id(&app.token)});
    let signing_input = format!(
        "{}.{}",
        sgsim_core::base64::encode_url(header.to_string().as_bytes()),
        sgsim_core::base64::encode_url(claims.to_string().as_bytes())
    );
    let token = format!("{signing_input}.{}", signature(app, &signing_input));
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null)},
        "status": {"token": token, "expirationTimestamp": util::time_in(expiration)},
    }))
}

/// Whether `token` is a token this server issued, unexpired, for a ServiceAccount that still
/// exists (same uid).
pub(crate) fn verify(app: &App, token: &str) -> bool {
    subject(app, token).is_some()
}

/// The ServiceAccount (namespace, name) a valid token (see [`verify`]) authenticates.
pub(crate) fn subject(app: &App, token: &str) -> Option<(String, String)> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let signing_input = format!("{h}.{p}");
    if signature(app, &signing_input) != sig {
        return None;
    }
    let claims = sgsim_core::base64::decode(p).and_then(|b| serde_json::from_slice::<Value>(&b).ok())?;
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= now_secs())
    {
        return None;
    }
    let ns = claims
        .pointer("/kubernetes.io/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = claims
        .pointer("/kubernetes.io/serviceaccount/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let uid = claims
        .pointer("/kubernetes.io/serviceaccount/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    app.store
        .transact(|t| t.get("serviceaccounts", ns, name))
        .is_some_and(|sa| sa.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid))
        .then(|| (ns.to_owned(), name.to_owned()))
}
