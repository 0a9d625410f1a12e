//! The pod sandbox ("pause" container): it owns the pod's network namespace, and its address is the
//! pod IP.

use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use k8s_openapi::api::core::v1::Pod;

use super::container::docker_message;
use crate::k8s::messages;
use crate::kubelet::convert::{self, PodId};
use crate::kubelet::{PullPolicy, Shared};

/// Why the sandbox did not start; the text goes into `Failed to create pod sandbox: <error>`.
#[derive(Debug, thiserror::Error)]
pub(super) enum SandboxError {
    /// The sandbox image could not be brought onto the node.
    #[error("{message}")]
    Image {
        /// The runtime's wording ([`messages::sandbox_image_failed`]).
        message: String,
    },
    /// A Docker call failed (the daemon's own message).
    #[error("{}", docker_message(.0))]
    Docker(#[from] bollard::errors::Error),
    /// The started sandbox has no address.
    #[error("sandbox has no IP address")]
    NoIp,
}

/// Start the sandbox; returns (container id, pod IP).
pub(super) async fn start_sandbox(shared: &Shared, pod: &Pod, id: &PodId) -> Result<(String, String), SandboxError> {
    let sandbox = shared.images.sandbox();
    shared
        .images
        .ensure(&sandbox.image, PullPolicy::IfNotPresent)
        .await
        .map_err(|e| SandboxError::Image {
            message: messages::sandbox_image_failed(&sandbox.image, &e),
        })?;
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
    let c = shared.docker.create_container(Some(opts), body).await?;
    shared.docker.start_container(&c.id, None).await?;
    let info = shared.docker.inspect_container(&c.id, None).await?;
    let ip = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|nets| {
            let mut v: Vec<_> = nets.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter()
                .find_map(|(_, e)| e.ip_address.filter(|ip| !ip.is_empty()))
        })
        .ok_or(SandboxError::NoIp)?;
    Ok((c.id, ip))
}
