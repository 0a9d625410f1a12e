//! The kubelet's pod workers: a watch-triggered reconcile lists the node's pods and starts a worker
//! ([`super::pod::run_pod`]) for each new one, stops the workers of deleted pods with their grace
//! period, and forgets the workers of pods gone from the API server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{KubeletError, Shared, pod};

/// One pod's worker task and how to stop it.
pub(super) struct Worker {
    cancel: CancellationToken,
    /// Grace period (seconds) for stopping the pod's containers once cancelled.
    grace: Arc<std::sync::atomic::AtomicI64>,
    /// The pod's `terminationGracePeriodSeconds` (default 30).
    default_grace: i64,
    pub(super) task: JoinHandle<()>,
}

impl Worker {
    fn stop(&self, grace: i64) {
        if !self.cancel.is_cancelled() {
            self.grace.store(grace, std::sync::atomic::Ordering::SeqCst);
            self.cancel.cancel();
        }
    }
}

/// Watch-triggered reconcile: every event of the pod watch (or every 500 ms without one) lists the
/// node's pods and starts, stops or cleans up pod workers.
pub(super) async fn sync_loop(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.node);
    let mut watch =
        kube::runtime::watcher(api.clone(), kube::runtime::watcher::Config::default().fields(&selector)).boxed();
    let mut watch_alive = true;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = watch.next(), if watch_alive => {
                match ev {
                    None => watch_alive = false,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "pod watch error; relying on polling");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Some(Ok(kube::runtime::watcher::Event::Delete(pod))) => {
                        // The final object carries the deletion's grace period.
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(w) = workers.get(uid) {
                                let grace = pod
                                    .metadata
                                    .deletion_grace_period_seconds
                                    .unwrap_or(w.default_grace);
                                w.stop(grace);
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            _ = tick.tick() => {}
        }
        if let Err(e) = reconcile(&shared, &api, &selector).await {
            tracing::debug!(error = %e, "kubelet reconcile failed");
        }
    }
}

async fn reconcile(shared: &Arc<Shared>, api: &Api<Pod>, selector: &str) -> Result<(), KubeletError> {
    let list = api
        .list(&ListParams::default().fields(selector))
        .await
        .map_err(KubeletError::api("list pods"))?;
    let mut seen = HashSet::new();
    for pod in list.items {
        let Some(spec) = &pod.spec else { continue };
        if spec.node_name.as_deref() != Some(shared.node.as_str()) {
            continue;
        }
        let Some(uid) = pod.metadata.uid.clone() else { continue };
        seen.insert(uid.clone());
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
        match workers.get(&uid) {
            Some(w) => {
                if deleting {
                    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(w.default_grace);
                    w.stop(grace);
                }
            }
            None => {
                let terminal = matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                );
                if terminal && !deleting {
                    // Finished before this kubelet started (or by another one): leave it.
                    continue;
                }
                let cancel = CancellationToken::new();
                let grace = Arc::new(std::sync::atomic::AtomicI64::new(0));
                if deleting {
                    cancel.cancel();
                }
                let task = tokio::spawn(pod::run_pod(shared.clone(), pod.clone(), cancel.clone(), grace.clone()));
                let default_grace = spec.termination_grace_period_seconds.unwrap_or(30);
                workers.insert(
                    uid,
                    Worker {
                        cancel,
                        grace,
                        default_grace,
                        task,
                    },
                );
            }
        }
    }
    let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
    workers.retain(|uid, w| {
        if seen.contains(uid) {
            return true;
        }
        // The pod is gone from the API server (deleted without the watch telling): stop with the
        // pod's own grace period, clean up, forget.
        w.stop(w.default_grace);
        !w.task.is_finished()
    });
    Ok(())
}
