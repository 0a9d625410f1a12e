//! Pod subresources served beside the object verbs: `binding` (and the `bindings` resource) and
//! `log`, streamed from the node's registered log source.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

use super::request::{Params, truthy};
use super::respond::{raw_json, stream_response};
use crate::apiserver::app::App;
use crate::apiserver::logs::LogOptions;
use crate::apiserver::status::{self, ApiError, GroupResource};
use crate::apiserver::util;

pub(super) fn bind(app: &App, ns: &str, name: &str, binding: &Value) -> Result<Response, ApiError> {
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

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

pub(super) async fn pod_log(app: &App, ns: &str, name: &str, q: &Params) -> Result<Response, ApiError> {
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
    let stream = source.logs(ns, name, opts).await?;
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

/// `pods/{name}/portforward`: a WebSocket upgrade whose channels reach the pod's ports through
/// its node's registered port source. A request that is no upgrade gets 400, as kube-apiserver
/// answers one without `Upgrade`.
pub(super) async fn pod_portforward(
    axum::extract::State(app): axum::extract::State<App>,
    axum::extract::Path((ns, name)): axum::extract::Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    req: axum::extract::Request,
) -> Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, _) = req.into_parts();
    let ports = match crate::apiserver::portforward::parse_ports(query.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(msg) => return ApiError::BadRequest(msg).into_response(),
    };
    let Some(pod) = app.store.transact(|txn| txn.get("pods", &ns, &name)) else {
        return status::not_found("", "pods", &name).into_response();
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node.is_empty() {
        return ApiError::BadRequest(format!("pod {name} does not have a host assigned")).into_response();
    }
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<std::net::IpAddr>().ok());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
    let (Some(ip), "Running") = (ip, phase) else {
        return ApiError::BadRequest(format!(
            "unable to upgrade connection: pod {name} in namespace {ns} is not running"
        ))
        .into_response();
    };
    let source = app
        .node_ports
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(node)
        .cloned();
    let Some(source) = source else {
        return ApiError::BadRequest(format!(
            "unable to upgrade connection: node {node} serves no port-forward"
        ))
        .into_response();
    };
    let ws = match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(ws) => ws,
        Err(_) => return ApiError::BadRequest("Upgrade request required".into()).into_response(),
    };
    ws.protocols(crate::apiserver::portforward::PROTOCOLS)
        .on_upgrade(move |socket| crate::apiserver::portforward::serve(socket, source, ip, ports))
}
