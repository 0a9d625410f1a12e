//! Schemas of the served kinds for `/openapi/v2` and `/openapi/v3/...`, generated from
//! k8s-openapi's `schemars` support (schema names are Kubernetes' own, e.g.
//! `io.k8s.api.core.v1.PodSpec`). Each top-level kind carries `x-kubernetes-group-version-kind`,
//! which is how `kubectl explain` finds it.

use std::sync::OnceLock;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use k8s_openapi::api::{
    authentication::v1 as authn, core::v1 as core, events::v1 as events, rbac::v1 as rbac, scheduling::v1 as scheduling,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

/// A kind: schema name, group, version, kind.
type KindRow = (String, &'static str, &'static str, &'static str);

fn add<T: JsonSchema + k8s_openapi::Resource>(g: &mut SchemaGenerator, kinds: &mut Vec<KindRow>) {
    g.subschema_for::<T>();
    kinds.push((T::schema_name().into_owned(), T::GROUP, T::VERSION, T::KIND));
}

fn generate(settings: SchemaSettings) -> Map<String, Value> {
    let mut g = settings.into_generator();
    let mut kinds = Vec::new();
    add::<core::Pod>(&mut g, &mut kinds);
    add::<core::Namespace>(&mut g, &mut kinds);
    add::<core::Node>(&mut g, &mut kinds);
    add::<core::ConfigMap>(&mut g, &mut kinds);
    add::<core::Secret>(&mut g, &mut kinds);
    add::<core::ServiceAccount>(&mut g, &mut kinds);
    add::<core::PersistentVolumeClaim>(&mut g, &mut kinds);
    add::<core::PersistentVolume>(&mut g, &mut kinds);
    add::<core::Service>(&mut g, &mut kinds);
    add::<core::Event>(&mut g, &mut kinds);
    add::<core::Binding>(&mut g, &mut kinds);
    add::<events::Event>(&mut g, &mut kinds);
    add::<scheduling::PriorityClass>(&mut g, &mut kinds);
    add::<authn::TokenRequest>(&mut g, &mut kinds);
    add::<rbac::Role>(&mut g, &mut kinds);
    add::<rbac::RoleBinding>(&mut g, &mut kinds);
    add::<rbac::ClusterRole>(&mut g, &mut kinds);
    add::<rbac::ClusterRoleBinding>(&mut g, &mut kinds);
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    let mut defs = g.take_definitions(true);
    for (name, group, version, kind) in kinds {
        if let Some(Value::Object(o)) = defs.get_mut(&name) {
            o.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "kind": kind, "version": version}]),
            );
        }
    }
    defs
}

/// OpenAPI v3 component schemas (`$ref`s point at `#/components/schemas/...`).
pub fn v3_schemas() -> &'static Map<String, Value> {
    static S: OnceLock<Map<String, Value>> = OnceLock::new();
    S.get_or_init(|| generate(SchemaSettings::openapi3()))
}

/// Swagger 2.0 document (`/openapi/v2`): the same schemas under `definitions`.
pub fn v2_document() -> &'static Value {
    static D: OnceLock<Value> = OnceLock::new();
    D.get_or_init(|| {
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.37.0"},
            "paths": {},
            "definitions": generate(SchemaSettings::draft07()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_schema_has_gvk_and_resolvable_refs() {
        let s = v3_schemas();
        let pod = &s["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        let spec_ref = pod["properties"]["spec"].to_string();
        assert!(
            spec_ref.contains("#/components/schemas/io.k8s.api.core.v1.PodSpec"),
            "{spec_ref}"
        );
        assert!(s.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(s.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        // Every $ref resolves.
        let text = Value::Object(s.clone()).to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(s.contains_key(name), "dangling $ref {name}");
        }
        let v2 = v2_document();
        assert_eq!(
            v2["definitions"]["io.k8s.api.scheduling.v1.PriorityClass"]["x-kubernetes-group-version-kind"][0]["kind"],
            "PriorityClass"
        );
    }
}
