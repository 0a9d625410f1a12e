//! Kubernetes' image handling for one container (image_manager.go): pull policy and presence,
//! the `Pulling`/`Pulled`/`Failed`/`BackOff`/`ErrImageNeverPull`/`InspectFailed` events and waiting
//! reasons, the pull back-off, and the image id the status reports.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{RETRY, event};
use crate::k8s::events::{EventType, container_field_path};
use crate::kubelet::status::{Tracker, waiting};
use crate::kubelet::{PullOutcome, PullPolicy, Shared};

/// What a container's earlier attempts left for the next: the kubelet's sync passes retry a
/// container that could not start (image, config or create error) with back-off.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// Pulls that failed so far (the next one backs off first, as `ImagePullBackOff`).
    pub pull_failures: u32,
    /// `ErrImageNeverPull` was reported.
    pub never_reported: bool,
    /// The last config or create error reported (each distinct message is reported once:
    /// Kubernetes aggregates the repeats into one Event).
    pub last_err: Option<String>,
}

/// Kubernetes' image handling for one container (image_manager.go): decide by policy and
/// presence, emit `Pulled`/`Pulling`/`Failed`/`BackOff`/`ErrImageNeverPull`, retry with back-off.
/// Returns the image id for the status; `None` when `once` and this attempt failed (a later sync
/// tries again, backing off: `attempts` remembers the failures).
pub(super) async fn ensure_image(
    shared: &Shared,
    pod: &Pod,
    st: &mut Tracker,
    (init, i, c): (bool, usize, &Container),
    attempts: &mut Attempts,
    once: bool,
) -> Option<String> {
    let image = c.image.clone().unwrap_or_default();
    let fp = Some(container_field_path(init, &c.name));
    let m = shared.messages;
    let policy = PullPolicy::of(c.image_pull_policy.as_deref(), &image);
    loop {
        let present = match shared.images.is_present(&image).await {
            Ok(p) => p,
            Err(e) => {
                let msg = m.inspect_failed(&image, &e);
                event(shared, pod, fp.clone(), EventType::Warning, "InspectFailed", &msg).await;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.error("ImageInspectError"),
                )
                .await;
                st.status_mut(init, i).state = Some(waiting("ImageInspectError", Some(msg)));
                st.push().await;
                if once {
                    return None;
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        };
        let should_pull = match policy {
            PullPolicy::Never => false,
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
        };
        if !should_pull {
            if present {
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Normal,
                    "Pulled",
                    &m.already_present(&image),
                )
                .await;
                return Some(image_id(shared, &image).await);
            }
            if !attempts.never_reported {
                attempts.never_reported = true;
                let msg = m.never_pull(&image);
                event(shared, pod, fp.clone(), EventType::Warning, "ErrImageNeverPull", &msg).await;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.error("ErrImageNeverPull"),
                )
                .await;
                st.status_mut(init, i).state = Some(waiting("ErrImageNeverPull", Some(msg)));
                st.push().await;
            }
            if once {
                return None;
            }
            tokio::time::sleep(RETRY).await;
            continue;
        }
        let failures = attempts.pull_failures;
        if failures > 0 {
            let msg = m.backoff_pull(&image);
            event(shared, pod, fp.clone(), EventType::Normal, "BackOff", &msg).await;
            event(
                shared,
                pod,
                fp.clone(),
                EventType::Warning,
                "Failed",
                &m.error("ImagePullBackOff"),
            )
            .await;
            st.status_mut(init, i).state = Some(waiting("ImagePullBackOff", Some(msg)));
            st.push().await;
            let secs = (10u64 << (failures - 1).min(5)).min(300);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        event(
            shared,
            pod,
            fp.clone(),
            EventType::Normal,
            "Pulling",
            &m.pulling(&image),
        )
        .await;
        let start = Instant::now();
        let credentials = crate::registry::pod_pull_credentials(&shared.client, pod, &image).await;
        match shared.images.ensure_with_credentials(&image, policy, credentials).await {
            Ok(outcome) => {
                let (took, waited) = match outcome {
                    PullOutcome::Pulled { took, waited } => (took, waited),
                    PullOutcome::AlreadyPresent => (start.elapsed(), start.elapsed()),
                };
                let size = image_size(shared, &image).await;
                let msg = m.pulled(&image, took, waited, size);
                event(shared, pod, fp.clone(), EventType::Normal, "Pulled", &msg).await;
                return Some(image_id(shared, &image).await);
            }
            Err(e) => {
                attempts.pull_failures += 1;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.failed_pull(&image, &e),
                )
                .await;
                event(
                    shared,
                    pod,
                    fp.clone(),
                    EventType::Warning,
                    "Failed",
                    &m.error("ErrImagePull"),
                )
                .await;
                st.status_mut(init, i).state = Some(waiting("ErrImagePull", Some(e.to_string())));
                st.push().await;
                if once {
                    return None;
                }
            }
        }
    }
}

async fn image_id(shared: &Shared, image: &str) -> String {
    match shared.docker.inspect_image(&shared.images.local_ref(image)).await {
        Ok(info) => match info.repo_digests.as_ref().and_then(|d| d.first()) {
            Some(d) => format!("docker-pullable://{d}"),
            None => format!("docker://{}", info.id.unwrap_or_default()),
        },
        Err(_) => String::new(),
    }
}

async fn image_size(shared: &Shared, image: &str) -> Option<u64> {
    let info = shared
        .docker
        .inspect_image(&shared.images.local_ref(image))
        .await
        .ok()?;
    info.size.and_then(|s| u64::try_from(s).ok())
}
