//! The REST verb table: which handler serves a method on a resource path, after the request's
//! target, dry-run flag, output shape and body media type are read.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::objects::{create, delete, delete_collection, get_object, list, patch_object, update_value};
use super::request::{Params, PathParams, param, parse_body, parse_target, truthy};
use super::respond::{json_ok, json_response};
use super::subresources::{bind, pod_log};
use super::watch::watch_objects;
use crate::apiserver::app::App;
use crate::apiserver::patch::PatchType;
use crate::apiserver::status::{ApiError, GroupResource};
use crate::apiserver::table::Shape;
use crate::apiserver::{protobuf, sa_token};

pub(super) async fn core_handler(
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

pub(super) async fn group_handler(
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
            protobuf::MEDIA_TYPE if method == Method::POST && t.name.is_none() => match protobuf::decode(&body) {
                Some(v) => Bytes::from(v.to_string()),
                None => return Err(ApiError::UnsupportedBodyType),
            },
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
            &sa_token::issue(&app, &ns, name, &parse_body(&body)?)?,
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
