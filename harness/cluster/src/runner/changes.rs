//! Event-driven waiting: two watches (the pod by name, and its events) wake the runner the moment
//! something changes, so it reacts to a new event or a new pod status at once instead of on the
//! next poll tick. What it then reads is still a fresh list/get, so a watch that misses or breaks
//! costs only the fallback interval, never a line or a state.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Watches of one pod and its events; stops them on drop.
pub(super) struct Changes {
    notify: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

fn watch<K>(api: Api<K>, fields: String, notify: Arc<Notify>) -> JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default().fields(&fields)).boxed();
        while stream.next().await.is_some() {
            notify.notify_one();
        }
    })
}

impl Changes {
    /// Starts watching pod `ns/name` and the events about it.
    pub(super) fn watch(client: &kube::Client, ns: &str, name: &str) -> Changes {
        let notify = Arc::new(Notify::new());
        let tasks = vec![
            watch(
                Api::<Pod>::namespaced(client.clone(), ns),
                format!("metadata.name={name}"),
                notify.clone(),
            ),
            watch(
                Api::<Event>::namespaced(client.clone(), ns),
                format!("involvedObject.name={name},involvedObject.kind=Pod"),
                notify.clone(),
            ),
        ];
        Changes { notify, tasks }
    }

    /// Returns when the pod or its events changed since the last call, or after `at_most`.
    pub(super) async fn wait(&self, at_most: Duration) {
        tokio::select! {
            () = self.notify.notified() => {}
            () = tokio::time::sleep(at_most) => {}
        }
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
