//! Output shapes chosen by the Accept header: plain objects and lists, `meta.k8s.io/v1` Tables
//! (what kubectl asks for, with kubectl's columns) and PartialObjectMetadata.

mod columns;
mod rows;

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::ResourceDef;
use columns::columns;
use rows::cells;

/// What `includeObject` asks rows to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// PartialObjectMetadata (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// The response shape negotiated from Accept and `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The object(s) themselves.
    Plain,
    /// `meta.k8s.io/v1` Table.
    Table(Include),
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
}

impl Shape {
    /// Picks the first acceptable media type we can serve.
    pub fn negotiate(accept: &str, include_object: Option<&str>) -> Self {
        for m in accept.split(',') {
            let params: Vec<&str> = m.split(';').map(str::trim).collect();
            let has = |p: &str| params.contains(&p);
            let meta_v1 = has("g=meta.k8s.io") && has("v=v1");
            if meta_v1 && has("as=Table") {
                let inc = match include_object {
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    _ => Include::Metadata,
                };
                return Self::Table(inc);
            }
            if meta_v1 && (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList")) {
                return Self::Metadata;
            }
            if params
                .first()
                .is_some_and(|t| *t == "application/json" || *t == "*/*" || t.is_empty())
                && !params.iter().any(|p| p.starts_with("as="))
            {
                return Self::Plain;
            }
        }
        Self::Plain
    }
}

fn typed(def: &ResourceDef, obj: &Value) -> Value {
    def.present(obj)
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// One object in the negotiated shape.
pub fn render_one(def: &ResourceDef, obj: &Value, shape: Shape) -> Value {
    match shape {
        Shape::Plain => typed(def, obj),
        Shape::Metadata => partial(obj),
        Shape::Table(inc) => table(def, &[obj], None, inc),
    }
}

/// A list in the negotiated shape.
pub fn render_list(def: &ResourceDef, items: &[Arc<Value>], rv: u64, shape: Shape) -> Value {
    match shape {
        Shape::Plain => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| {
                    let mut o = def.present(o);
                    if let Some(m) = o.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    o
                })
                .collect();
            json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })
        }
        Shape::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items.iter().map(|o| partial(o)).collect::<Vec<_>>(),
        }),
        Shape::Table(inc) => {
            let refs: Vec<&Value> = items.iter().map(|o| &**o).collect();
            table(def, &refs, Some(rv), inc)
        }
    }
}

fn table(def: &ResourceDef, items: &[&Value], rv: Option<u64>, inc: Include) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(def, o)});
            match inc {
                Include::None => {}
                Include::Metadata => row["object"] = partial(o),
                Include::Object => row["object"] = typed(def, o),
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns(def),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(Shape::negotiate(kubectl, None), Shape::Table(Include::Metadata));
        assert_eq!(Shape::negotiate("application/json", None), Shape::Plain);
        assert_eq!(Shape::negotiate("", None), Shape::Plain);
        assert_eq!(
            Shape::negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", None),
            Shape::Metadata
        );
    }
}
