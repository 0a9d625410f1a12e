//! Which registry connector each container of the pod pulls through, and the image pull
//! Secrets the product creates beside the pod for connectors that authenticate.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{DEFAULT_HARNESS_IMAGE_CONNECTOR, container_name, container_steps, pod_name, registry_prefix};
use crate::scenario::Scenario;
use crate::step_types;

/// The registry connector of each container of the pod, in pod order (setup-addon, steps,
/// lite-engine): `(container name, connector identifier)`.
pub fn container_connectors(s: &Scenario) -> Vec<(String, String)> {
    let g = &s.step_group;
    let harness = g
        .infra
        .harness_image_connector_ref
        .clone()
        .unwrap_or_else(|| DEFAULT_HARNESS_IMAGE_CONNECTOR.to_string());
    let mut out = vec![("setup-addon".to_string(), harness.clone())];
    for (st, _) in container_steps(g) {
        let conn = match step_types::by_type(&st.step_type) {
            Some(t) if !t.product_managed => st.connector_ref.clone(),
            _ => {
                if st.image.as_deref().is_some_and(step_types::is_product_image) {
                    Some(harness.clone())
                } else {
                    st.connector_ref.clone()
                }
            }
        };
        if let Some(c) = conn {
            out.push((container_name(&st.identifier), c));
        }
    }
    out.push(("lite-engine".to_string(), harness));
    out
}

/// Names of the image pull secrets (`<pod>-image-<container>`) for containers whose registry
/// connector authenticates (`auth: usernamePassword`), with that connector.
pub fn image_pull_secret_names(s: &Scenario) -> Vec<(String, String)> {
    let pod = pod_name(&s.step_group.identifier, s.seed());
    container_connectors(s)
        .into_iter()
        .filter(|(_, c)| s.connector(c).is_some_and(|c| c.auth == "usernamePassword"))
        .map(|(container, c)| (format!("{pod}-image-{container}"), c))
        .collect()
}

/// The image pull Secrets the product creates beside the pod (type
/// `kubernetes.io/dockerconfigjson`), for the containers of [`image_pull_secret_names`].
pub fn image_pull_secrets(s: &Scenario) -> Vec<Secret> {
    let mut out = Vec::new();
    for (name, conn) in image_pull_secret_names(s) {
        let Some(c) = s.connector(&conn) else { continue };
        let user = c.username.clone().unwrap_or_default();
        let pass = c
            .password_ref
            .as_ref()
            .and_then(|r| s.fixtures().harness_secrets.get(r))
            .cloned()
            .unwrap_or_default();
        let registry = match c.url.as_deref().map(registry_prefix) {
            Some(p) if !p.is_empty() => p.split('/').next().unwrap_or_default().to_string(),
            _ => "https://index.docker.io/v1/".to_string(),
        };
        let auth = crate::base64::encode(format!("{user}:{pass}").as_bytes());
        let cfg = serde_json::json!({"auths": {registry: {"username": user, "password": pass, "auth": auth}}});
        out.push(Secret {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(s.namespace().to_string()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_string(),
                k8s_openapi::ByteString(cfg.to_string().into_bytes()),
            )])),
            ..Default::default()
        });
    }
    out
}
