//! The pod sandbox ("pause" container): it owns the pod's network namespace, and its address is the
//! pod IP.

use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use k8s_openapi::api::core::v1::Pod;

use super::container::docker_message;
use crate::k8s::messages;
use crate::kubelet::convert::{self, PodId};
use crate::kubelet::{PullPolicy, Shared};

/// Start the sandbox; returns (container id, pod IP).
pub(super) async fn start_sandbox(shared: &Shared, pod: &Pod, id: &PodId) -> Result<(String, String), String> {
    let sandbox = shared.images.sandbox();
    shared
        .images
        .ensure(&sandbox.image, PullPolicy::IfNotPresent)
        .await
        .map_err(|e| messages::sandbox_image_failed(&sandbox.image, &e))?;
    let name = id.container_name("POD");
    // A leftover from an earlier attempt is replaced.
    let _ = shared
        .docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await;
    let body = convert::sandbox_body(shared, pod, id);
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let c = shared
        .docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| docker_message(&e))?;
    shared
        .docker
        .start_container(&c.id, None)
        .await
        .map_err(|e| docker_message(&e))?;
    let info = shared
        .docker
        .inspect_container(&c.id, None)
        .await
        .map_err(|e| docker_message(&e))?;
    let ip = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|nets| {
            let mut v: Vec<_> = nets.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter()
                .find_map(|(_, e)| e.ip_address.filter(|ip| !ip.is_empty()))
        })
        .ok_or_else(|| "sandbox has no IP address".to_string())?;
    Ok((c.id, ip))
}
