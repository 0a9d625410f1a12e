//! The scenario's Kubernetes fixtures (namespaces, service accounts, ConfigMaps, Secrets, claims…)
//! created through the API before the pod, as they exist in the customer's cluster.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use sgsim_core::Scenario;

use super::{RunError, kerr};

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Creates the scenario's fixtures (namespaces, service accounts, configMaps, secrets).
pub async fn create_fixtures(client: &kube::Client, scenario: &Scenario) -> Result<(), RunError> {
    let f = scenario.fixtures();
    // A bare pipeline's namespace is in its inferred fixtures (unless it is no valid name).
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &f.namespaces {
        let obj = Namespace {
            metadata: meta(ns, None),
            ..Default::default()
        };
        match ns_api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(kerr(format!("create namespace {ns}"))(e)),
        }
    }
    let default_ns = scenario.namespace().to_string();
    let ns_of = |n: &Option<String>| n.clone().unwrap_or_else(|| default_ns.clone());
    for sa in &f.service_accounts {
        let ns = ns_of(&sa.namespace);
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let obj = ServiceAccount {
            metadata: meta(&sa.name, Some(&ns)),
            ..Default::default()
        };
        create_ignoring_conflict(&api, &obj, format!("create serviceaccount {ns}/{}", sa.name)).await?;
    }
    for cm in &f.config_maps {
        let ns = ns_of(&cm.namespace);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let obj = ConfigMap {
            metadata: meta(&cm.name, Some(&ns)),
            data: Some(cm.data.clone()),
            ..Default::default()
        };
        create_ignoring_conflict(&api, &obj, format!("create configmap {ns}/{}", cm.name)).await?;
    }
    for s in &f.secrets {
        let ns = ns_of(&s.namespace);
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let obj = Secret {
            metadata: meta(&s.name, Some(&ns)),
            string_data: Some(s.data.clone()),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        create_ignoring_conflict(&api, &obj, format!("create secret {ns}/{}", s.name)).await?;
    }
    for manifest in &f.rbac {
        create_rbac_object(client, manifest, &default_ns).await?;
    }
    crate::fixtures::create_pod_fixtures(client, scenario)
        .await
        .map_err(|crate::fixtures::FixtureError::Api { what, source }| RunError::Kube { what, source })?;
    Ok(())
}

/// Creates one `fixtures.rbac` manifest (Role, ClusterRole, RoleBinding, ClusterRoleBinding);
/// a namespaced one without a namespace goes to `default_ns`.
async fn create_rbac_object(
    client: &kube::Client,
    manifest: &serde_json::Value,
    default_ns: &str,
) -> Result<(), RunError> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let kind = manifest
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind));
    let mut obj: DynamicObject = serde_json::from_value(manifest.clone()).map_err(|e| RunError::Kube {
        what: format!("read rbac fixture {kind}"),
        source: kube::Error::SerdeError(e),
    })?;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = if kind.starts_with("Cluster") {
        Api::all_with(client.clone(), &ar)
    } else {
        let ns = obj
            .metadata
            .namespace
            .get_or_insert_with(|| default_ns.to_owned())
            .clone();
        Api::namespaced_with(client.clone(), &ns, &ar)
    };
    create_ignoring_conflict(&api, &obj, format!("create {} {name}", kind.to_lowercase())).await
}

async fn create_ignoring_conflict<K>(api: &Api<K>, obj: &K, what: String) -> Result<(), RunError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => Err(kerr(what)(e)),
    }
}

fn meta(name: &str, ns: Option<&str>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.to_string()),
        namespace: ns.map(str::to_string),
        ..Default::default()
    }
}
