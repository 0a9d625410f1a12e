//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (merge
//! keys of the kinds sgsim writes) and server-side apply (approximated as a strategic merge).

use serde_json::{Map, Value};

use super::status::ApiError;

/// The patch content types Kubernetes accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (JSON bodies only).
    Apply,
}

impl PatchType {
    /// From the request's Content-Type.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}

/// Merge keys of list fields under strategic merge patch (by field name).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "containerStatuses"
        | "initContainerStatuses"
        | "ephemeralContainerStatuses"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "resourceClaimStatuses" => "name",
        "conditions" | "readinessGates" => "type",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "ports" => "containerPort",
        "ownerReferences" => "uid",
        "podIPs" | "hostIPs" => "ip",
        "addresses" => "address",
        "taints" => "key",
        _ => return None,
    })
}

/// Applies a patch of `kind` to `target`.
pub fn apply(kind: PatchType, target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let bad = |e: serde_json::Error| ApiError::BadRequest(format!("error decoding patch: {e}"));
    match kind {
        PatchType::Json => {
            let ops: Vec<Value> = serde_json::from_slice(patch).map_err(bad)?;
            json_patch(target.clone(), &ops)
        }
        PatchType::Merge => {
            let p: Value = serde_json::from_slice(patch).map_err(bad)?;
            Ok(merge(target, &p, false))
        }
        PatchType::Strategic | PatchType::Apply => {
            let p: Value = serde_json::from_slice(patch)
                .map_err(|_| ApiError::BadRequest("sgsim accepts only JSON bodies for this patch type".into()))?;
            Ok(merge(target, &p, true))
        }
    }
}

/// RFC 7386 merge; with `strategic`, lists with a known merge key merge by that key.
pub fn merge(target: &Value, patch: &Value, strategic: bool) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if strategic && k.starts_with("$") {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), v) {
            (Some(cur @ Value::Object(_)), Value::Object(_)) => merge(cur, v, strategic),
            (Some(Value::Array(cur)), Value::Array(items)) if strategic => match merge_key(k) {
                Some(key) => merge_list(cur, items, key),
                None => v.clone(),
            },
            _ => merge(&Value::Null, v, strategic),
        };
        out.insert(k.clone(), merged);
    }
    Value::Object(out)
}

fn merge_list(cur: &[Value], items: &[Value], key: &str) -> Value {
    let mut out: Vec<Value> = cur.to_vec();
    for item in items {
        let directive = item.get("$patch").and_then(Value::as_str);
        let id = item.get(key);
        let pos = id.and_then(|id| out.iter().position(|o| o.get(key) == Some(id)));
        match (directive, pos) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (Some("replace"), _) => return Value::Array(items.to_vec()),
            (_, Some(i)) => out[i] = merge(&out[i], item, true),
            (_, None) => out.push(merge(&Value::Null, item, true)),
        }
    }
    Value::Array(out)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| ApiError::BadRequest(format!("invalid JSON pointer {path:?}")))?;
    Ok((path[..idx].to_owned(), unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let missing =
        || ApiError::PatchNotApplicable(format!("add operation does not apply: doc is missing path: {path:?}"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing())?;
                if i > a.len() {
                    return Err(missing());
                }
                a.insert(i, value);
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || {
        ApiError::PatchNotApplicable(format!(
            "remove operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(mut doc: Value, ops: &[Value]) -> Result<Value, ApiError> {
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::BadRequest(format!("missing value for {name} operation")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::BadRequest(format!("missing from for {name} operation")))
        };
        match name {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                let v = value()?;
                let slot = doc.pointer_mut(path).ok_or_else(|| {
                    ApiError::PatchNotApplicable(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    ))
                })?;
                *slot = v;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc.pointer(from()?).cloned().ok_or_else(|| {
                    ApiError::PatchNotApplicable(format!(
                        "copy operation does not apply: doc is missing from path: {}",
                        from().unwrap_or_default()
                    ))
                })?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(ApiError::PatchNotApplicable(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => return Err(ApiError::BadRequest(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_conditions() {
        let t = json!({"status": {"phase": "Pending", "conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}});
        let p = json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "C", "status": "True"}]}});
        let out = merge(&t, &p, true);
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 3);
        assert_eq!(out["status"]["conditions"][0]["status"], "True");
        assert_eq!(out["status"]["phase"], "Pending");
        let out = merge(&t, &p, false);
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_json_patch_that_does_not_apply_is_kubernetes_generic_422() {
        // Found by the apiserver fuzz target: this was a 500 InternalError.
        for ops in [
            json!([{"op": "remove", "path": "/data/k"}]),
            json!([{"op": "test", "path": "/data", "value": 1}]),
            json!([{"op": "replace", "path": "/nope", "value": 1}]),
        ] {
            let e = json_patch(json!({"data": {}}), ops.as_array().unwrap()).unwrap_err();
            assert_eq!(e.code().as_u16(), 422);
            let body = e.body();
            assert_eq!(body["reason"], "Invalid");
            assert_eq!(
                body["message"],
                "the server rejected our request due to an error in our request"
            );
            assert_eq!(body["details"], json!({}));
        }
    }

    #[test]
    fn json_ops() {
        let d = json!({"a": [1, 2], "b": {"c": 1}});
        let ops = json!([{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b/c"}, {"op": "replace", "path": "/a/0", "value": 0}]);
        let out = json_patch(d, ops.as_array().unwrap()).unwrap();
        assert_eq!(out, json!({"a": [0, 2, 3], "b": {}}));
    }
}
