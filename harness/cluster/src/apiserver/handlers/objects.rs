//! The object verbs: get, list, create (with admission and the namespace controllers' side
//! effects), update, patch, delete and deletecollection.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::request::{Params, Target, parse_body, selectors};
use super::respond::{json_ok, json_response, raw_json};
use crate::apiserver::app::App;
use crate::apiserver::patch::{self, PatchType};
use crate::apiserver::resources::{self, ResourceDef};
use crate::apiserver::status::{self, ApiError, GroupResource};
use crate::apiserver::store::Txn;
use crate::apiserver::table::{self, Shape};
use crate::apiserver::{defaults, util};

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An object with `kind`/`apiVersion` as served (stored objects always carry them).
fn with_type(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    o["kind"] = json!(def.kind);
    o
}

pub(super) fn get_object(
    app: &App,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    shape: Shape,
) -> Result<Response, ApiError> {
    let obj = app.store.transact(|t| t.get(def.storage, ns, name));
    let obj = obj.ok_or_else(|| status::not_found(def.group, def.plural, name))?;
    Ok(json_ok(&table::render_one(def, &obj, shape)))
}

pub(super) fn list(app: &App, t: &Target, q: &Params, shape: Shape) -> Result<Response, ApiError> {
    let (ls, fs) = selectors(t.def, q)?;
    let (items, rv) = app.store.transact(|txn| {
        let keep = |o: &Value| ls.matches(o) && fs.matches(o);
        (txn.list_where(t.def.storage, t.ns.as_deref(), keep), txn.rv())
    });
    Ok(json_ok(&table::render_list(t.def, &items, rv, shape)))
}

fn ensure_namespace(txn: &Txn<'_>, ns: &str, def: &ResourceDef, name: &str) -> Result<(), ApiError> {
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
pub(crate) fn create_value(
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
fn populate_namespace(txn: &mut Txn<'_>, ns: &str, root_ca: &str) {
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

pub(super) fn create(
    app: &App,
    def: &'static ResourceDef,
    ns: &str,
    body: &[u8],
    dry: bool,
) -> Result<Response, ApiError> {
    let obj = def.ingest(parse_body(body)?);
    let stored = create_value(app, def.core(), ns, obj, dry)?;
    Ok(json_response(StatusCode::CREATED, &def.present(&stored)))
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
pub(super) fn update_value(
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
pub(super) fn patch_object(
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

pub(super) fn delete(
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

pub(super) fn delete_collection(app: &App, t: &Target, q: &Params) -> Result<Response, ApiError> {
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
