//! The embedded API server's request handling, in process (no listener): request lines, paths,
//! query strings (selectors, watch and log parameters), headers (content types, patch types,
//! authorization) and bodies.
//!
//! An input is a request as text: `METHOD TARGET`, header lines, an empty line, the body. A target
//! that is not a valid URI is one hyper would refuse before routing, so it is skipped.
//! Properties: no handler panics (also in tasks it spawns); every request completes within 5 s
//! (a watch or a followed log only has to start); no 500; a JSON body parses; a `Status` body's
//! `code` is the HTTP status.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use axum::body::Body;
use futures::{FutureExt, StreamExt};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use sgsim_cluster::apiserver::{ApiServerOptions, InProcess, in_process};
use tower::ServiceExt;

use super::{Exec, Target, files_under};
use crate::fnv64;

/// Requests served by one server state before a fresh one (bounds the store's growth).
const REQUESTS_PER_SERVER: u32 = 2_000;

/// Hand-written seeds: every kind of request the server handles.
const SEEDS: &[&str] = &[
    "GET /version\n\n",
    "GET /api\n\n",
    "GET /apis\n\n",
    "GET /api/v1\n\n",
    "GET /apis/apps/v1\n\n",
    "GET /openapi/v2\nAccept: application/json\n\n",
    "GET /openapi/v3\n\n",
    "GET /api/v1/namespaces\n\n",
    "GET /api/v1/namespaces/default\n\n",
    "GET /api/v1/nodes?limit=1\n\n",
    "GET /api/v1/pods?labelSelector=app%3Dx,tier!%3Dfront&fieldSelector=spec.nodeName%3Dn1\n\n",
    "GET /api/v1/namespaces/default/pods?limit=2&continue=abc\n\n",
    "GET /api/v1/namespaces/default/pods?watch=true&resourceVersion=1&timeoutSeconds=1\n\n",
    "GET /api/v1/namespaces/default/events?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\n\n",
    "GET /api/v1/namespaces/default/pods/p1/log?container=step-a&tailLines=10&timestamps=true\n\n",
    "GET /api/v1/namespaces/default/pods/p1/log?follow=true&sinceSeconds=5\n\n",
    "GET /api/v1/namespaces/default/pods\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json\n\n",
    "GET /api/v1/namespaces/default/pods\nAccept: application/vnd.kubernetes.protobuf\n\n",
    "POST /api/v1/namespaces\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"fz\"}}",
    "POST /api/v1/namespaces/default/configmaps\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c1\",\"labels\":{\"a\":\"b\"}},\"data\":{\"k\":\"v\"}}",
    "POST /api/v1/namespaces/default/secrets\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s1\"},\"type\":\"Opaque\",\"data\":{\"k\":\"dg==\"}}",
    "POST /api/v1/namespaces/default/serviceaccounts\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"sa1\"}}",
    "POST /api/v1/namespaces/default/serviceaccounts/default/token\nContent-Type: application/json\n\n{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{\"expirationSeconds\":600}}",
    "POST /api/v1/namespaces/default/pods?dryRun=All&fieldManager=fz\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
    "POST /api/v1/namespaces/default/pods\nContent-Type: application/yaml\n\napiVersion: v1\nkind: Pod\nmetadata:\n  generateName: p-\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
    "POST /api/v1/namespaces/default/pods/p1/binding\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":\"p1\"},\"target\":{\"kind\":\"Node\",\"name\":\"n1\"}}",
    "PUT /api/v1/namespaces/default/pods/p1/status\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\",\"resourceVersion\":\"7\"},\"status\":{\"phase\":\"Running\"}}",
    "PATCH /api/v1/namespaces/default/configmaps/c1\nContent-Type: application/merge-patch+json\n\n{\"data\":{\"k\":null,\"n\":\"1\"}}",
    "PATCH /api/v1/namespaces/default/configmaps/c1\nContent-Type: application/strategic-merge-patch+json\n\n{\"metadata\":{\"labels\":{\"$patch\":\"replace\",\"x\":\"y\"}}}",
    "PATCH /api/v1/namespaces/default/configmaps/c1\nContent-Type: application/json-patch+json\n\n[{\"op\":\"add\",\"path\":\"/data/z\",\"value\":\"1\"},{\"op\":\"remove\",\"path\":\"/data/k\"},{\"op\":\"test\",\"path\":\"/data/n\",\"value\":\"1\"}]",
    "PATCH /api/v1/namespaces/default/configmaps/c2?fieldManager=kubectl&force=true\nContent-Type: application/apply-patch+yaml\n\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\ndata:\n  a: b\n",
    "DELETE /api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0&propagationPolicy=Background\n\n",
    "DELETE /api/v1/namespaces/default/configmaps?labelSelector=a%3Db\n\n",
    "POST /api/v1/nodes\nContent-Type: application/json\n\n{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"labels\":{\"kubernetes.io/hostname\":\"n1\"}}}",
    "POST /apis/rbac.authorization.k8s.io/v1/namespaces/default/roles\nContent-Type: application/json\n\n{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"Role\",\"metadata\":{\"name\":\"r\"},\"rules\":[]}",
    "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews\nContent-Type: application/json\n\n{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SelfSubjectAccessReview\",\"spec\":{\"resourceAttributes\":{\"verb\":\"list\",\"resource\":\"pods\"}}}",
    "GET /api/v1/namespaces/default/pods\nAuthorization: Bearer not-the-token\n\n",
    "GET /sgsim/not-the-token/api/v1/pods\n\n",
];

/// Path segments that name routes (everything else is a name).
const ROUTE_WORDS: &[&str] = &[
    "api",
    "apis",
    "v1",
    "version",
    "openapi",
    "v2",
    "v3",
    "namespaces",
    "pods",
    "nodes",
    "events",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "token",
    "log",
    "status",
    "binding",
    "eviction",
    "apps",
    "deployments",
    "rbac.authorization.k8s.io",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "authorization.k8s.io",
    "selfsubjectaccessreviews",
    "events.k8s.io",
    "coordination.k8s.io",
    "leases",
    "sgsim",
];

/// The API server target.
pub struct ApiServerTarget {
    rt: tokio::runtime::Runtime,
    server: Option<InProcess>,
    served: u32,
    seeds: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ApiServerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerTarget")
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

impl ApiServerTarget {
    /// Seeds: the hand-written requests and every golden pod, posted.
    pub fn new(repo: &Path) -> ApiServerTarget {
        let mut seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
        for (i, (_, yaml)) in files_under(&repo.join("golden"), &|p| p.ends_with("pod.yaml"))
            .into_iter()
            .enumerate()
        {
            let Ok(mut v) = serde_saphyr::from_slice::<serde_json::Value>(&yaml) else {
                continue;
            };
            if let Some(o) = v.as_object_mut() {
                o.remove("status");
                o.insert("metadata".into(), serde_json::json!({"name": format!("golden-{i}")}));
            }
            seeds.push(
                format!("POST /api/v1/namespaces/default/pods\nContent-Type: application/json\n\n{v}").into_bytes(),
            );
        }
        ApiServerTarget {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread tokio runtime builds"),
            server: None,
            served: 0,
            seeds,
        }
    }

    fn server(&mut self) -> Result<&InProcess, String> {
        if self.served >= REQUESTS_PER_SERVER {
            self.server = None;
            self.served = 0;
        }
        self.served += 1;
        if self.server.is_none() {
            let s = self
                .rt
                .block_on(async { in_process(&ApiServerOptions::default()) })
                .map_err(|e| format!("the in-process server did not start: {e}"))?;
            self.server = Some(s);
        }
        Ok(self.server.as_ref().expect("set above"))
    }
}

/// The request an input describes, or `None` when hyper would refuse it before routing.
fn parse_request(input: &[u8], token: &str) -> Option<(Request<Body>, bool)> {
    let text = String::from_utf8_lossy(input);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let first = lines.next()?;
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let uri = Uri::from_str(target.trim()).ok()?;
    uri.path_and_query()?;
    let streaming = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.starts_with("watch") || kv.starts_with("follow"))
    });
    let mut req = Request::builder().method(method).uri(uri);
    let mut has_auth = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(n), Ok(v)) = (HeaderName::from_str(name.trim()), HeaderValue::from_str(value.trim())) else {
            continue;
        };
        has_auth |= n == http::header::AUTHORIZATION;
        req = req.header(n, v);
    }
    if !has_auth {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::from(body.as_bytes().to_vec()))
        .ok()
        .map(|r| (r, streaming))
}

impl Target for ApiServerTarget {
    fn name(&self) -> &'static str {
        "apiserver"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn dict(&self) -> &'static [&'static str] {
        &[
            "?watch=true",
            "&watch=1",
            "&resourceVersion=0",
            "&resourceVersion=999999999999",
            "&resourceVersionMatch=Exact",
            "&limit=-1",
            "&continue=",
            "&labelSelector=a+in+(b,c),!d",
            "&fieldSelector=metadata.name%3D%3Dx",
            "&timeoutSeconds=0",
            "&tailLines=-5",
            "&limitBytes=1",
            "&sinceTime=2026-01-01T00:00:00Z",
            "&dryRun=All",
            "&propagationPolicy=Orphan",
            "&fieldValidation=Strict",
            "%2F",
            "%00",
            "%ZZ",
            "/status",
            "/log",
            "/binding",
            "/eviction",
            "/exec",
            "/portforward",
            "/namespaces/",
            "/api/v1/",
            "/apis/",
            "/../",
            "//",
            "Content-Type: application/json\n",
            "Content-Type: application/yaml\n",
            "Content-Type: application/vnd.kubernetes.protobuf\n",
            "Content-Type: application/apply-patch+yaml\n",
            "Accept: application/json;as=Table;v=v1;g=meta.k8s.io\n",
            "Accept: application/json;stream=watch\n",
            "Authorization: Bearer \n",
            "null",
            "{\"metadata\":{}}",
            "\"$patch\":\"delete\"",
            "\"resourceVersion\":\"1\"",
            "\"generateName\":\"x-\"",
            "[{\"op\":\"replace\",\"path\":\"/metadata/name\",\"value\":1}]",
            "\u{0}",
        ]
    }

    fn exec(&mut self, input: &[u8]) -> Exec {
        let token = self.server()?.token.clone();
        let Some((req, streaming)) = parse_request(input, &token) else {
            return Ok(fnv64(b"refused before routing"));
        };
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let router = self.server()?.router.clone();
        let outcome = self.rt.block_on(async move {
            let call = AssertUnwindSafe(router.oneshot(req)).catch_unwind();
            let resp = match tokio::time::timeout(Duration::from_secs(5), call).await {
                Err(_) => return Err(format!("{method} {path}: no response within 5 s")),
                Ok(Err(_)) => return Err(format!("{method} {path}: the handler panicked")),
                Ok(Ok(Ok(r))) => r,
                Ok(Ok(Err(e))) => match e {},
            };
            let status = resp.status();
            let json = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json") && !v.contains("stream"));
            let body = if streaming && status.is_success() {
                // A watch or a followed log only has to start: take what comes first.
                let mut s = resp.into_body().into_data_stream();
                let _ = tokio::time::timeout(Duration::from_millis(20), s.next()).await;
                None
            } else {
                match tokio::time::timeout(Duration::from_secs(5), axum::body::to_bytes(resp.into_body(), 64 << 20))
                    .await
                {
                    Err(_) => return Err(format!("{method} {path}: the body did not end within 5 s")),
                    Ok(Err(e)) => return Err(format!("{method} {path}: reading the body failed: {e}")),
                    Ok(Ok(b)) => Some(b),
                }
            };
            Ok((status, json, body, method, path))
        })?;
        let (status, json, body, method, path) = outcome;
        if status == http::StatusCode::INTERNAL_SERVER_ERROR {
            let b = body.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            return Err(format!("{method} {path}: 500 Internal Server Error: {b}"));
        }
        if json && let Some(b) = &body {
            let v: serde_json::Value = serde_json::from_slice(b)
                .map_err(|e| format!("{method} {path}: {status} with a JSON content type but no JSON body: {e}"))?;
            if v.get("kind").and_then(|k| k.as_str()) == Some("Status")
                && let Some(code) = v.get("code").and_then(serde_json::Value::as_u64)
                && code != u64::from(status.as_u16())
            {
                return Err(format!("{method} {path}: HTTP {status} but Status.code {code}"));
            }
        }
        // The route's shape: API words kept, names replaced, so a new name is not a new outcome.
        let shape: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| if ROUTE_WORDS.contains(&s) { s } else { "*" })
            .collect();
        Ok(fnv64(
            format!("{method} {} {}", status.as_u16(), shape.join("/")).as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_auth_added_unless_given() {
        let (r, streaming) = parse_request(b"GET /api/v1/pods?watch=true\nAccept: x\n\n", "t").expect("parses");
        assert!(streaming);
        assert_eq!(r.headers()[http::header::AUTHORIZATION], "Bearer t");
        let (r, _) = parse_request(b"GET /api\nAuthorization: Bearer other\n\n", "t").expect("parses");
        assert_eq!(r.headers()[http::header::AUTHORIZATION], "Bearer other");
        assert!(parse_request(b"GET not a uri\n\n", "t").is_none());
    }
}
