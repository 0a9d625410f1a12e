//! What one REST request addresses (resource, namespace, name, subresource) and how its query and
//! body are read.

use std::collections::HashMap;

use axum::extract::Path;
use serde_json::Value;

use crate::apiserver::resources::{self, ResourceDef};
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use crate::apiserver::status::ApiError;

pub(super) type Params = HashMap<String, String>;

pub(super) type PathParams = Path<HashMap<String, String>>;

pub(super) fn param(p: &HashMap<String, String>, key: &str) -> String {
    p.get(key).cloned().unwrap_or_default()
}

pub(super) fn truthy(q: &Params, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

/// What one request addresses.
pub(super) struct Target {
    pub(super) def: &'static ResourceDef,
    pub(super) ns: Option<String>,
    pub(super) name: Option<String>,
    pub(super) sub: Option<String>,
}

pub(super) fn parse_target(group: &str, version: &str, rest: &str) -> Result<Target, ApiError> {
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

pub(super) fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the object provided is unrecognized or could not be decoded: {e}"
        ))
    })
}

pub(super) fn selectors(def: &ResourceDef, q: &Params) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
    let f = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), def)?;
    Ok((l, f))
}
