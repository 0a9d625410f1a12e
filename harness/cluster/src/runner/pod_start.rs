//! Waiting for the pod: its events streamed into the Initialize log, the start state it reaches
//! (Running, Failed, or initTimeout passed), the lite-engine's readiness, and the pod's removal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

// tokio's clock (the wall clock, or a paused test clock).
use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use sgsim_core::initialize;
use sgsim_core::record::{InitLine, Level};
use sgsim_engine::delegate::LiteEngineClient;

use super::{RunError, RunEvent, RunOptions, kerr};

/// Where the pod got to while waiting for it.
pub(super) enum PodStart {
    Running {
        node: String,
        ip: IpAddr,
    },
    Failed(String),
    /// initTimeout passed; the product's error message.
    TimedOut(String),
}

/// Streams the pod's events into the Initialize log as the product's event watch does: one line
/// per watch item, so an Event whose count rises (a repeat client-go aggregated into it) is
/// logged again, once per increment; new Events in creation order.
pub(super) struct EventTail {
    pub(super) api: Api<Event>,
    pub(super) selector: String,
    /// Count last logged, by event uid.
    pub(super) seen: HashMap<String, i32>,
    /// The containers (field paths) whose `Started` event has been logged.
    pub(super) started: std::collections::HashSet<String>,
}

impl EventTail {
    pub(super) async fn poll(
        &mut self,
        out: &mut Vec<InitLine>,
        sink: &(dyn Fn(RunEvent) + Send + Sync),
    ) -> Result<(), RunError> {
        let list = self
            .api
            .list(&ListParams::default().fields(&self.selector))
            .await
            .map_err(kerr("list pod events"))?;
        for ev in list.items {
            let key = ev.metadata.uid.clone().or(ev.metadata.name.clone()).unwrap_or_default();
            let count = ev.count.unwrap_or(1).max(1);
            let logged = self.seen.get(&key).copied().unwrap_or(0);
            if count <= logged {
                continue;
            }
            self.seen.insert(key, count);
            if ev.reason.as_deref() == Some("Started") {
                self.started
                    .insert(ev.involved_object.field_path.clone().unwrap_or_default());
            }
            let line = initialize::event_line(ev.type_.as_deref(), ev.message.as_deref().unwrap_or_default());
            for _ in logged..count {
                sink(RunEvent::Init(line.clone()));
                out.push(line.clone());
            }
        }
        Ok(())
    }
}

pub(super) fn push_line(out: &mut Vec<InitLine>, sink: &(dyn Fn(RunEvent) + Send + Sync), level: Level, text: String) {
    let line = InitLine { level, text };
    sink(RunEvent::Init(line.clone()));
    out.push(line);
}

pub(super) async fn wait_engine_ready(engine: &LiteEngineClient, pod: &str) -> Result<(), RunError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match engine.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(RunError::Engine {
                    pod: pod.to_string(),
                    source: e,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub(super) async fn cleanup(pods: &Api<Pod>, name: &str, opts: &RunOptions) {
    if opts.keep_pod {
        return;
    }
    let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
}

pub(super) fn pod_start_state(p: &Pod) -> Option<PodStart> {
    let status = p.status.as_ref()?;
    match status.phase.as_deref() {
        Some("Running") => {
            let all_started = status.container_statuses.as_ref().is_some_and(|cs| {
                !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
            if !all_started {
                return None;
            }
            let ip = status.pod_ip.as_deref().and_then(|s| s.parse().ok())?;
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone())?;
            Some(PodStart::Running { node, ip })
        }
        Some("Failed") => Some(PodStart::Failed(
            status.message.clone().unwrap_or_else(|| "pod failed".into()),
        )),
        Some("Succeeded") => Some(PodStart::Failed("pod completed before its steps ran".into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::{ApiServer, ApiServerOptions};
    use crate::k8s::events::{EventType, Recorder, pod_ref};

    #[tokio::test]
    async fn an_event_whose_count_rises_is_logged_again() {
        let api = ApiServer::start(ApiServerOptions::default()).await.expect("api server");
        let client = api.client().await.expect("client");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u-1"}
        }))
        .expect("pod");
        let rec = Recorder {
            component: "kubelet".into(),
            host: Some("node-1".into()),
            instance: "node-1".into(),
            action: None,
            recorded: Default::default(),
        };
        let mut tail = EventTail {
            api: Api::namespaced(client.clone(), "default"),
            selector: "involvedObject.name=p,involvedObject.kind=Pod".into(),
            seen: HashMap::new(),
            started: Default::default(),
        };
        let mut out = Vec::new();
        let back_off = "Back-off pulling image \"x\"";
        rec.emit(&client, pod_ref(&pod, None), EventType::Normal, "BackOff", back_off)
            .await;
        tail.poll(&mut out, &|_| {}).await.expect("poll");
        // The same event again: client-go's correlator raises the count of the first Event.
        rec.emit(&client, pod_ref(&pod, None), EventType::Normal, "BackOff", back_off)
            .await;
        rec.emit(&client, pod_ref(&pod, None), EventType::Normal, "BackOff", back_off)
            .await;
        tail.poll(&mut out, &|_| {}).await.expect("poll");
        tail.poll(&mut out, &|_| {}).await.expect("poll");
        let events = tail.api.list(&ListParams::default()).await.expect("list");
        assert_eq!(events.items.len(), 1, "one Event, aggregated");
        assert_eq!(events.items[0].count, Some(3));
        let texts: Vec<&str> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, [back_off, back_off, back_off], "one line per watch item");
        api.shutdown().await;
    }
}
