//! HTTP routing and the REST verbs of the embedded API server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::app::App;
use super::defaults;
use super::logs::{LogError, LogOptions};
use super::patch::{self, PatchType};
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{self, ApiError, GroupResource};
use super::store::{EventType, Since, WatchEvent};
use super::table::{self, Shape};
use super::util;

type Params = HashMap<String, String>;

/// How often a watch with `allowWatchBookmarks` reports its progress.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

type PathParams = Path<HashMap<String, String>>;

fn param(p: &HashMap<String, String>, key: &str) -> String {
    p.get(key).cloned().unwrap_or_default()
}

/// The routes, under `prefix` ("" or `/sgsim/{token}`).
fn routes(prefix: &str, app: &App) -> Router<App> {
    let r = |path: &str| format!("{prefix}{path}");
    let protected = Router::new()
        .route(&r("/api"), get(api_versions))
        .route(
            &r("/api/v1"),
            get(|| async { discovery(resources::resource_list("", "v1")) }),
        )
        .route(&r("/api/v1/{*rest}"), any(core_handler))
        .route(&r("/apis"), get(|| async { json_ok(&resources::api_group_list()) }))
        .route(
            &r("/apis/{group}"),
            get(|Path(p): PathParams| async move { discovery(resources::api_group(&param(&p, "group"))) }),
        )
        .route(
            &r("/apis/{group}/{version}"),
            get(|Path(p): PathParams| async move {
                discovery(resources::resource_list(&param(&p, "group"), &param(&p, "version")))
            }),
        )
        .route(&r("/apis/{group}/{version}/{*rest}"), any(group_handler))
        .route(
            &r("/openapi/v2"),
            get(|| async { json_ok(super::openapi::v2_document()) }),
        )
        .route(
            &r("/openapi/v3"),
            get(|| async { json_ok(&resources::openapi_v3_index()) }),
        )
        .route(
            &r("/openapi/v3/api/{version}"),
            get(|Path(p): PathParams| async move { discovery(resources::openapi_v3_group("", &param(&p, "version"))) }),
        )
        .route(
            &r("/openapi/v3/apis/{group}/{version}"),
            get(|Path(p): PathParams| async move {
                discovery(resources::openapi_v3_group(&param(&p, "group"), &param(&p, "version")))
            }),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(app), auth));
    let public = Router::new()
        .route(&r("/version"), get(version))
        // The Python client asks for `/version/`; kube-apiserver serves both.
        .route(&r("/version/"), get(version))
        .route(&r("/healthz"), get(|| async { "ok" }))
        .route(&r("/livez"), get(|| async { "ok" }))
        .route(&r("/readyz"), get(|| async { "ok" }));
    protected.merge(public)
}

/// The whole router.
pub fn router(app: App) -> Router {
    let prefixed = format!("{TOKEN_PATH_PREFIX}{{token}}");
    routes("", &app)
        .merge(routes(&prefixed, &app))
        .fallback(fallback)
        // Kubernetes' request body limit (3 MiB); larger bodies get 413.
        .layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024))
        .with_state(app)
}

async fn fallback(State(app): State<App>, req: Request) -> Response {
    if let Some(rest) = req.uri().path().strip_prefix(TOKEN_PATH_PREFIX)
        && rest.split('/').next() != Some(app.token.as_str())
    {
        return ApiError::Unauthorized.into_response();
    }
    let authed = req.uri().path().starts_with(TOKEN_PATH_PREFIX)
        || req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == app.token || super::sa_token::verify(&app, t.trim()));
    if authed {
        ApiError::PathNotFound.into_response()
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Path prefix that authenticates like the bearer token: `/sgsim/<token>/api/v1/...`. kubectl
/// (client-go) sends no credentials at all over plain HTTP, so the kubeconfig's server URL carries
/// the token in its path instead.
pub const TOKEN_PATH_PREFIX: &str = "/sgsim/";

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(rest) = req.uri().path().strip_prefix(TOKEN_PATH_PREFIX) {
        let token = rest.split('/').next().unwrap_or_default();
        return if token == app.token {
            next.run(req).await
        } else {
            ApiError::Unauthorized.into_response()
        };
    }
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == app.token || super::sa_token::verify(&app, t.trim()));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn raw_json(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

fn discovery(v: Option<Value>) -> Response {
    match v {
        Some(v) => json_ok(&v),
        None => ApiError::PathNotFound.into_response(),
    }
}

async fn api_versions(State(app): State<App>) -> Response {
    json_ok(&json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": app.addr}],
    }))
}

async fn version(State(app): State<App>) -> Response {
    let v = &app.git_version;
    let trimmed = v.trim_start_matches('v');
    let mut parts = trimmed.split(['.', '-']);
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json_ok(&json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": minor.parse::<u32>().map(|m| m.saturating_sub(1).to_string()).unwrap_or_default(),
        "gitVersion": v,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// What one request addresses.
struct Target {
    def: &'static ResourceDef,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_owned());
    let (ns, res, name, sub, extra) =
        if segs.first() == Some(&"namespaces") && segs.len() >= 3 && !matches!(segs[2], "status" | "finalize") {
            (
                Some(segs[1].to_owned()),
                segs[2],
                owned(segs.get(3)),
                owned(segs.get(4)),
                segs.len() > 5,
            )
        } else {
            let res = segs.first().copied().ok_or(ApiError::PathNotFound)?;
            (None, res, owned(segs.get(1)), owned(segs.get(2)), segs.len() > 3)
        };
    let def = resources::lookup(group, version, res).ok_or(ApiError::PathNotFound)?;
    if extra || (!def.namespaced && ns.is_some()) || (def.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::PathNotFound);
    }
    if let Some(s) = &sub
        && !def.subresources.iter().any(|d| d.name == s)
    {
        return Err(ApiError::PathNotFound);
    }
    Ok(Target { def, ns, name, sub })
}

async fn core_handler(
    State(app): State<App>,
    Path(p): PathParams,
    method: Method,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    dispatch(app, "", "v1", &param(&p, "rest"), method, q, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn group_handler(
    State(app): State<App>,
    Path(p): PathParams,
    method: Method,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    dispatch(
        app,
        &param(&p, "group"),
        &param(&p, "version"),
        &param(&p, "rest"),
        method,
        q,
        headers,
        body,
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

fn truthy(q: &Params, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    app: App,
    group: &str,
    version: &str,
    rest: &str,
    method: Method,
    q: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = parse_target(group, version, rest)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let shape = Shape::negotiate(accept, q.get("includeObject").map(String::as_str));
    let unsupported = |verb: &str| ApiError::MethodNotSupported {
        resource: GroupResource::new(t.def.group, t.def.plural),
        verb: verb.to_owned(),
    };
    let ns = t.ns.clone().unwrap_or_default();
    let dry = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("unsupported dry run value: {other:?}")));
        }
    };
    // Object bodies are JSON, or protobuf for the few kinds kubectl's typed clients create
    // (`kubectl create namespace|configmap|secret|serviceaccount`); any other body gets 415.
    let body = if matches!(method, Method::POST | Method::PUT) {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "" | "application/json" | "*/*" => body,
            super::protobuf::MEDIA_TYPE if method == Method::POST && t.name.is_none() => {
                match super::protobuf::decode(&body) {
                    Some(v) => Bytes::from(v.to_string()),
                    None => return Err(ApiError::UnsupportedBodyType),
                }
            }
            _ => return Err(ApiError::UnsupportedBodyType),
        }
    } else {
        body
    };
    match (&method, t.name.as_deref(), t.sub.as_deref()) {
        (&Method::GET, None, None) if !t.def.stored => Err(unsupported("list")),
        (&Method::GET, None, None) if truthy(&q, "watch") => watch_objects(&app, &t, &q, shape),
        (&Method::GET, None, None) => list(&app, &t, &q, shape),
        (&Method::GET, Some(name), None | Some("status")) => get_object(&app, t.def, &ns, name, shape),
        (&Method::GET, Some(name), Some("log")) => pod_log(&app, &ns, name, &q).await,
        (&Method::POST, None, None) if t.def.id == "bindings" => {
            let b: Value = parse_body(&body)?;
            let name = b
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            bind(&app, &ns, &name, &b)
        }
        (&Method::POST, None, None) => create(&app, t.def, &ns, &body, dry),
        (&Method::POST, Some(name), Some("binding")) => bind(&app, &ns, name, &parse_body(&body)?),
        (&Method::POST, Some(name), Some("token")) if t.def.id == "serviceaccounts" => Ok(json_response(
            StatusCode::CREATED,
            &super::sa_token::issue(&app, &ns, name, &parse_body(&body)?)?,
        )),
        (&Method::PUT, Some(name), sub @ (None | Some("status") | Some("finalize"))) => {
            let obj = t.def.ingest(parse_body(&body)?);
            let stored = update_value(&app, t.def.core(), &ns, name, sub, obj, None, dry)?;
            Ok(json_ok(&t.def.present(&stored)))
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let pt = PatchType::from_content_type(ct)?;
            patch_object(&app, t.def, &ns, name, sub, pt, &body, dry)
        }
        (&Method::DELETE, Some(name), None) => delete(&app, t.def, &ns, name, &body, &q, dry),
        (&Method::DELETE, None, None) if t.def.verbs.contains(&"deletecollection") => delete_collection(&app, &t, &q),
        (m, _, _) => Err(unsupported(&m.as_str().to_lowercase())),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the object provided is unrecognized or could not be decoded: {e}"
        ))
    })
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn selectors(def: &ResourceDef, q: &Params) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
    let f = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), def)?;
    Ok((l, f))
}

/// An object with `kind`/`apiVersion` as served (stored objects always carry them).
fn with_type(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    o["kind"] = json!(def.kind);
    o
}

fn get_object(app: &App, def: &'static ResourceDef, ns: &str, name: &str, shape: Shape) -> Result<Response, ApiError> {
    let obj = app.store.transact(|t| t.get(def.storage, ns, name));
    let obj = obj.ok_or_else(|| status::not_found(def.group, def.plural, name))?;
    Ok(json_ok(&table::render_one(def, &obj, shape)))
}

fn list(app: &App, t: &Target, q: &Params, shape: Shape) -> Result<Response, ApiError> {
    let (ls, fs) = selectors(t.def, q)?;
    let (items, rv) = app
        .store
        .transact(|txn| (txn.list(t.def.storage, t.ns.as_deref()), txn.rv()));
    let items: Vec<Arc<Value>> = items.into_iter().filter(|o| ls.matches(o) && fs.matches(o)).collect();
    Ok(json_ok(&table::render_list(t.def, &items, rv, shape)))
}

fn watch_objects(app: &App, t: &Target, q: &Params, shape: Shape) -> Result<Response, ApiError> {
    let (ls, fs) = selectors(t.def, q)?;
    let send_initial = truthy(q, "sendInitialEvents");
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or_default();
    let since = match rv {
        _ if send_initial => Since::Current,
        "" | "0" => Since::Current,
        n => Since::Rv(
            n.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {n}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let def = t.def;
    let ns = t.ns.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let encode = move |kind: &str, obj: &Value| -> Bytes {
        let object = table::render_one(def, obj, shape);
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    };
    let matches = move |ev: &WatchEvent| -> Option<(&'static str, Arc<Value>)> {
        if ev.resource != def.storage || ns.as_deref().is_some_and(|n| n != ev.namespace) {
            return None;
        }
        let m = |o: &Value| ls.matches(o) && fs.matches(o);
        match ev.kind {
            EventType::Added => m(&ev.object).then(|| ("ADDED", Arc::clone(&ev.object))),
            EventType::Deleted => m(&ev.object).then(|| ("DELETED", Arc::clone(&ev.object))),
            EventType::Modified => {
                let before = ev.prev.as_deref().is_some_and(&m);
                match (before, m(&ev.object)) {
                    (true, true) => Some(("MODIFIED", Arc::clone(&ev.object))),
                    (false, true) => Some(("ADDED", Arc::clone(&ev.object))),
                    (true, false) => Some(("DELETED", Arc::clone(&ev.object))),
                    (false, false) => None,
                }
            }
        }
    };
    let sub = match app.store.subscribe(def.storage, since) {
        Ok(s) => s,
        Err(e) => {
            // Kubernetes reports an expired resourceVersion as an ERROR watch event.
            let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.body()})).unwrap_or_default();
            line.push(b'\n');
            return Ok(stream_response("application/json", Body::from(line)));
        }
    };
    let mut shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        for ev in &sub.backlog {
            if let Some((kind, obj)) = matches(ev)
                && tx.send(Ok(encode(kind, &obj))).await.is_err()
            {
                return;
            }
        }
        let bookmark = |rv: u64, initial_end: bool| -> Bytes {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            let object = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
            let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        if send_initial && tx.send(Ok(bookmark(sub.after, true))).await.is_err() {
            return;
        }
        // With allowWatchBookmarks, a periodic BOOKMARK tells the client how far the stream got,
        // so a re-watch after a quiet period does not start from a long-gone resourceVersion.
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let (mut seen_rv, mut bookmarked_rv) = (sub.after, sub.after);
        let mut live = sub.live;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = stopped(&mut shutdown) => return,
                () = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if seen_rv > bookmarked_rv {
                        bookmarked_rv = seen_rv;
                        if tx.send(Ok(bookmark(seen_rv, false))).await.is_err() {
                            return;
                        }
                    }
                }
                ev = live.recv() => match ev {
                    Ok(ev) if ev.rv > sub.after => {
                        seen_rv = ev.rv;
                        if let Some((kind, obj)) = matches(&ev)
                            && tx.send(Ok(encode(kind, &obj))).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(stream_response(
        "application/json",
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    ))
}

/// Resolves once the server shuts down.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.is_ok();
}

fn stream_response(content_type: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    r
}

fn ensure_namespace(txn: &super::store::Txn<'_>, ns: &str, def: &ResourceDef, name: &str) -> Result<(), ApiError> {
    let Some(n) = txn.get("namespaces", "", ns) else {
        return Err(status::not_found("", "namespaces", ns));
    };
    if n.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some() {
        return Err(ApiError::Forbidden {
            resource: GroupResource::new(def.group, def.plural),
            name: name.to_owned(),
            detail: format!("unable to create new content in namespace {ns} because it is being terminated"),
        });
    }
    Ok(())
}

/// Creates an object (the whole create path: naming, admission, storing, side effects).
pub fn create_value(
    app: &App,
    def: &'static ResourceDef,
    ns: &str,
    mut obj: Value,
    dry: bool,
) -> Result<Arc<Value>, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the object provided is unrecognized".into()));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != def.kind
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default(),
            def.api_version()
        )));
    }
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if def.namespaced {
        let body_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        obj["metadata"]["namespace"] = json!(ns);
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let generate = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fixed_name = !name_of(&obj).is_empty();
    if !fixed_name && generate.is_empty() {
        return Err(ApiError::Invalid {
            group: def.group.to_owned(),
            kind: def.kind.to_owned(),
            name: String::new(),
            causes: vec![status::Cause {
                reason: "FieldValueRequired".into(),
                message: "metadata.name: Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            }],
        });
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    let ns_key = if def.namespaced { ns } else { "" };
    let admission = app.admission;
    app.store.transact_with(dry, |txn| {
        for _attempt in 0..8 {
            let mut o = obj.clone();
            if !fixed_name {
                o["metadata"]["name"] = json!(format!("{generate}{}", util::random_suffix(5)));
            }
            let name = name_of(&o).to_owned();
            if !fixed_name && txn.get(def.id, ns_key, &name).is_some() {
                continue;
            }
            // Kubernetes' order: NamespaceLifecycle, the other admission plugins, then validation.
            if def.namespaced {
                ensure_namespace(txn, ns, def, &name)?;
            }
            match def.id {
                "pods" => defaults::admit_pod(txn, ns, &mut o, admission)?,
                "namespaces" => defaults::admit_namespace(&mut o),
                _ => defaults::admit_other(def.kind, &mut o),
            }
            defaults::validate_name(def.group, def.kind, &name)?;
            o["metadata"]["uid"] = json!(util::new_uid());
            o["metadata"]["creationTimestamp"] = json!(util::now_time());
            let stored = txn
                .create(def.id, ns_key, &name, o)
                .ok_or_else(|| ApiError::AlreadyExists {
                    resource: GroupResource::new(def.group, def.plural),
                    name: name.clone(),
                })?;
            if def.id == "namespaces" {
                populate_namespace(txn, &name, &app.root_ca);
            }
            return Ok(stored);
        }
        Err(ApiError::Internal("could not generate a unique name".into()))
    })
}

/// What the service-account and root-CA controllers create in every new namespace.
pub fn populate_namespace(txn: &mut super::store::Txn<'_>, ns: &str, root_ca: &str) {
    let now = util::now_time();
    let sa = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": ns, "uid": util::new_uid(), "creationTimestamp": now},
    });
    let _ = txn.create("serviceaccounts", ns, "default", sa);
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "kube-root-ca.crt", "namespace": ns, "uid": util::new_uid(), "creationTimestamp": now,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
        },
        "data": {"ca.crt": root_ca},
    });
    let _ = txn.create("configmaps", ns, "kube-root-ca.crt", cm);
}

fn create(app: &App, def: &'static ResourceDef, ns: &str, body: &[u8], dry: bool) -> Result<Response, ApiError> {
    let obj = def.ingest(parse_body(body)?);
    let stored = create_value(app, def.core(), ns, obj, dry)?;
    Ok(json_response(StatusCode::CREATED, &def.present(&stored)))
}

fn bind(app: &App, ns: &str, name: &str, binding: &Value) -> Result<Response, ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("Node");
    if !kind.is_empty() && kind != "Node" {
        return Err(ApiError::Invalid {
            group: String::new(),
            kind: "Binding".into(),
            name: name.to_owned(),
            causes: vec![status::Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!("target.kind: Unsupported value: {kind:?}: supported values: \"Node\""),
                field: "target.kind".into(),
            }],
        });
    }
    if node.is_empty() {
        return Err(ApiError::Invalid {
            group: String::new(),
            kind: "Binding".into(),
            name: name.to_owned(),
            causes: vec![status::Cause {
                reason: "FieldValueRequired".into(),
                message: "target.name: Required value".into(),
                field: "target.name".into(),
            }],
        });
    }
    app.store.transact(|txn| {
        let pod = txn.get("pods", ns, name).ok_or_else(|| status::not_found("", "pods", name))?;
        let have_uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
        if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str).filter(|u| !u.is_empty())
            && uid != have_uid
        {
            return Err(ApiError::Conflict {
                resource: GroupResource::new("", "pods"),
                name: name.to_owned(),
                detail: format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have_uid}"),
            });
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::Conflict {
                resource: GroupResource::new("", "pods/binding"),
                name: name.to_owned(),
                detail: format!("pod {name} is being deleted, cannot be assigned to a host"),
            });
        }
        if let Some(cur) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            return Err(ApiError::Conflict {
                resource: GroupResource::new("", "pods/binding"),
                name: name.to_owned(),
                detail: format!("pod {name} is already assigned to node {cur:?}"),
            });
        }
        let mut p = (*pod).clone();
        p["spec"]["nodeName"] = json!(node);
        if let Some(ann) = binding.pointer("/metadata/annotations").and_then(Value::as_object) {
            let meta = p["metadata"].as_object_mut().expect("stored metadata");
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            for (k, v) in ann {
                target[k] = v.clone();
            }
        }
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": util::now_time()});
        let conds = p["status"].as_object_mut().map(|s| s.entry("conditions").or_insert_with(|| json!([])));
        if let Some(arr) = conds.and_then(Value::as_array_mut) {
            match arr.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled")) {
                Some(c) => *c = cond,
                None => arr.push(cond),
            }
        }
        txn.update("pods", ns, name, p);
        Ok(())
    })?;
    Ok(raw_json(StatusCode::CREATED, status::success(201, None)))
}

fn conflict_modified(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::Conflict {
        resource: GroupResource::new(def.group, def.plural),
        name: name.to_owned(),
        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

/// Replaces an object (or its status); `expect_rv` overrides the body's resourceVersion check.
#[allow(clippy::too_many_arguments)]
fn update_value(
    app: &App,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    mut obj: Value,
    expect_rv: Option<String>,
    dry: bool,
) -> Result<Arc<Value>, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the object provided is unrecognized".into()));
    }
    let body_name = name_of(&obj).to_owned();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let ns_key = if def.namespaced { ns } else { "" };
    let stored = app.store.transact_with(dry, |txn| {
        let old = txn
            .get(def.id, ns_key, name)
            .ok_or_else(|| status::not_found(def.group, def.plural, name))?;
        let old_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let rv = expect_rv.clone().unwrap_or_else(|| {
            obj.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        });
        if !rv.is_empty() && rv != old_rv {
            return Err(conflict_modified(def, name));
        }
        let new = match sub {
            Some("status") => {
                let mut n = (*old).clone();
                n["status"] = obj.get("status").cloned().unwrap_or(json!({}));
                n
            }
            Some("finalize") => {
                let mut n = (*old).clone();
                n["spec"]["finalizers"] = obj.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
                n
            }
            _ => {
                let mut n = std::mem::take(&mut obj);
                for key in [
                    "uid",
                    "creationTimestamp",
                    "namespace",
                    "name",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match old["metadata"].get(key) {
                        Some(v) => n["metadata"][key] = v.clone(),
                        None => {
                            if let Some(m) = n["metadata"].as_object_mut() {
                                m.remove(key);
                            }
                        }
                    }
                }
                if def.has_status {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(m) = n.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                if def.id == "pods" && n.get("spec") != old.get("spec") {
                    let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    n["metadata"]["generation"] = json!(g + 1);
                }
                n
            }
        };
        let new = with_type(def, &new);
        if *old == new {
            // Kubernetes does not write (or bump resourceVersion) for a no-op update.
            return Ok(old);
        }
        Ok(txn
            .update(def.id, ns_key, name, new)
            .expect("object exists in this transaction"))
    })?;
    Ok(stored)
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    app: &App,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    pt: PatchType,
    body: &[u8],
    dry: bool,
) -> Result<Response, ApiError> {
    let ns_key = if def.namespaced { ns } else { "" };
    for _ in 0..16 {
        let Some(old) = app.store.transact(|t| t.get(def.storage, ns_key, name)) else {
            if pt == PatchType::Apply && sub.is_none() {
                let mut obj = patch::apply(pt, &json!({}), body)?;
                obj["metadata"]["name"] = json!(name);
                let stored = create_value(app, def.core(), ns, def.ingest(obj), dry)?;
                return Ok(json_response(StatusCode::CREATED, &def.present(&stored)));
            }
            return Err(status::not_found(def.group, def.plural, name));
        };
        let old_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let patched = patch::apply(pt, &def.present(&old), body)?;
        let requested_rv = patched
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let explicit = !requested_rv.is_empty() && requested_rv != old_rv;
        let expect = if explicit { requested_rv } else { old_rv };
        match update_value(app, def.core(), ns, name, sub, def.ingest(patched), Some(expect), dry) {
            // A concurrent write between read and update: retry unless the client asked for a version.
            Err(ApiError::Conflict { .. }) if !explicit => continue,
            other => return other.map(|stored| json_ok(&def.present(&stored))),
        }
    }
    Err(conflict_modified(def, name))
}

fn delete(
    app: &App,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    body: &[u8],
    q: &Params,
    dry: bool,
) -> Result<Response, ApiError> {
    let def = def.core();
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or(json!({}))
    };
    let dry = dry
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let grace = opts
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or_else(|| q.get("gracePeriodSeconds").and_then(|s| s.parse().ok()));
    let ns_key = if def.namespaced { ns } else { "" };
    let graceful = app.graceful_pod_deletion;
    let removed = app.store.transact_with(dry, |txn| {
        let old = txn.get(def.id, ns_key, name).ok_or_else(|| status::not_found(def.group, def.plural, name))?;
        if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
            let have = old.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
            if uid != have {
                return Err(ApiError::Conflict {
                    resource: GroupResource::new(def.group, def.plural),
                    name: name.to_owned(),
                    detail: format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                });
            }
        }
        if let Some(rv) = opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            let have = old.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
            if rv != have {
                return Err(ApiError::Conflict {
                    resource: GroupResource::new(def.group, def.plural),
                    name: name.to_owned(),
                    detail: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                    ),
                });
            }
        }
        if def.id == "namespaces" && matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError::Forbidden {
                resource: GroupResource::new("", "namespaces"),
                name: name.to_owned(),
                detail: "this namespace may not be deleted".into(),
            });
        }
        let mut last = (*old).clone();
        if def.id == "pods" || def.id == "namespaces" {
            last["metadata"]["deletionTimestamp"] = json!(util::now_time());
            let g = grace.unwrap_or_else(|| {
                old.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0)
            });
            if def.id == "pods" {
                last["metadata"]["deletionGracePeriodSeconds"] = json!(g);
            }
        }
        if def.id == "pods" && graceful {
            let g = last["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
            let bound = !old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().is_empty();
            let terminal = matches!(
                old.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
            if bound && !terminal && g > 0 {
                // Graceful deletion: mark the pod; its kubelet stops it and deletes it with grace 0.
                let previous = old.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
                if previous.is_some_and(|p| p <= g) {
                    return Ok(old);
                }
                last["metadata"]["deletionTimestamp"] = json!(util::time_in(g));
                if let Some(gen_) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
                    last["metadata"]["generation"] = json!(gen_ + 1);
                }
                return Ok(txn.update(def.id, ns_key, name, last).expect("object exists in this transaction"));
            }
        }
        if def.id == "namespaces" {
            last["status"]["phase"] = json!("Terminating");
            // The namespace controller's work, done at once: remove everything inside it.
            for r in resources::RESOURCES.iter().filter(|r| r.namespaced && r.stored) {
                for o in txn.list(r.id, Some(name)) {
                    txn.delete(r.id, name, name_of(&o), None);
                }
            }
        }
        Ok(txn.delete(def.id, ns_key, name, Some(last)).expect("object exists in this transaction"))
    })?;
    if def.id == "pods" || def.id == "namespaces" {
        return Ok(json_ok(&removed));
    }
    let uid = removed
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let details = status::Details::new(name, def.group, def.plural, uid);
    Ok(raw_json(StatusCode::OK, status::success(0, Some(details))))
}

fn delete_collection(app: &App, t: &Target, q: &Params) -> Result<Response, ApiError> {
    let (ls, fs) = selectors(t.def, q)?;
    let view = t.def;
    let def = t.def.core();
    let (items, rv) = app.store.transact(|txn| {
        let mut out = Vec::new();
        for o in txn.list(def.id, t.ns.as_deref()) {
            if ls.matches(&o) && fs.matches(&o) {
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let mut last = (*o).clone();
                if def.id == "pods" {
                    last["metadata"]["deletionTimestamp"] = json!(util::now_time());
                }
                if let Some(d) = txn.delete(def.id, &ns, name_of(&o), Some(last)) {
                    out.push(d);
                }
            }
        }
        (out, txn.rv())
    });
    Ok(json_ok(&table::render_list(view, &items, rv, Shape::Plain)))
}

fn log_error(e: LogError) -> ApiError {
    match e {
        LogError::BadRequest(m) => ApiError::BadRequest(m),
        LogError::NotFound(m) => ApiError::NotFoundMessage(m),
        LogError::Io(e) => ApiError::Internal(e.to_string()),
        LogError::Internal(m) => ApiError::Internal(m),
    }
}

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn pod_log(app: &App, ns: &str, name: &str, q: &Params) -> Result<Response, ApiError> {
    let pod = app
        .store
        .transact(|t| t.get("pods", ns, name))
        .ok_or_else(|| status::not_found("", "pods", name))?;
    let containers = container_names(&pod, "containers");
    let init = container_names(&pod, "initContainers");
    let ephemeral = container_names(&pod, "ephemeralContainers");
    let requested = q.get("container").cloned().unwrap_or_default();
    let container = if requested.is_empty() {
        let default = pod
            .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (default, containers.as_slice()) {
            (Some(d), _) => d,
            (None, [one]) => one.clone(),
            (None, []) => {
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}"
                )));
            }
            _ => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
                }
                return Err(ApiError::BadRequest(msg));
            }
        }
    } else {
        requested
    };
    if !containers.contains(&container) && !init.contains(&container) && !ephemeral.contains(&container) {
        return Err(ApiError::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest(format!("invalid {k}: {v:?}")))
            })
            .transpose()
    };
    let opts = LogOptions {
        container: container.clone(),
        follow: truthy(q, "follow"),
        tail_lines: int("tailLines")?,
        timestamps: truthy(q, "timestamps"),
        previous: truthy(q, "previous"),
    };
    let limit = int("limitBytes")?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if node.is_empty() {
        // Kubernetes returns an empty log for a pod not yet assigned to a node.
        return Ok(stream_response("text/plain", Body::empty()));
    }
    let source = app
        .node_logs
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&node)
        .cloned();
    let Some(source) = source else {
        let reason = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .filter_map(|k| pod.pointer(&format!("/status/{k}")).and_then(Value::as_array))
            .flatten()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()))
            .and_then(|s| {
                s.pointer("/state/waiting/reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "ContainerCreating".to_owned());
        return Err(ApiError::BadRequest(format!(
            "container {container:?} in pod {name:?} is waiting to start: {reason}"
        )));
    };
    let stream = source.logs(ns, name, opts).await.map_err(log_error)?;
    let mut shutdown = app.shutdown.clone();
    let stream = stream.take_until(Box::pin(async move {
        let _ = shutdown.wait_for(|s| *s).await;
    }));
    let body = match limit {
        Some(n) if n > 0 => {
            let mut left = usize::try_from(n).unwrap_or(usize::MAX);
            Body::from_stream(
                stream
                    .take_while(move |_| std::future::ready(left > 0))
                    .map(move |chunk| {
                        chunk.map(|b| {
                            let b = if b.len() > left { b.slice(..left) } else { b };
                            left -= b.len();
                            b
                        })
                    }),
            )
        }
        _ => Body::from_stream(stream),
    };
    Ok(stream_response("text/plain", body))
}
