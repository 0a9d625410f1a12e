//! Home of the image pull Secrets in the API server: creating them beside the pod as the product
//! does ([`create_pull_secrets`]) and reading a pod's imagePullSecrets as the kubelet's keyring
//! ([`pod_pull_credentials`]).

use super::{PullCredentials, credentials_for};

/// The credentials of a pod's imagePullSecrets for `image`, read through the API server (the
/// kubelet's keyring). Secrets that are missing or of another type are skipped, as the kubelet does.
pub async fn pod_pull_credentials(
    client: &kube::Client,
    pod: &k8s_openapi::api::core::v1::Pod,
    image: &str,
) -> Option<PullCredentials> {
    use k8s_openapi::api::core::v1::Secret;
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let refs = pod.spec.as_ref()?.image_pull_secrets.clone()?;
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
    let mut configs = Vec::new();
    for r in refs {
        let Ok(secret) = api.get(&r.name).await else {
            continue;
        };
        if secret.type_.as_deref() != Some("kubernetes.io/dockerconfigjson") {
            continue;
        }
        if let Some(data) = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson")) {
            configs.push(data.0.clone());
        }
    }
    credentials_for(image, &configs)
}

/// Creates the Secrets the product creates before the pod (`render::pod_secrets`: the image pull
/// Secrets, then the lite-engine's `<pod>-secret` with `credentials`), in that order; one that
/// already exists is kept.
pub async fn create_pod_secrets(
    client: &kube::Client,
    scenario: &sgsim_core::Scenario,
    credentials: &sgsim_core::render::EngineCredentials,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Secret;
    for secret in sgsim_core::render::pod_secrets(scenario, credentials) {
        let ns = secret
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| scenario.namespace().to_string());
        let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
        match api.create(&kube::api::PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
