//! core/v1 Events as Kubernetes' legacy event recorder writes them (client-go `record`), shared by
//! the kubelet and the scheduler.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// The current time, strictly increasing across every event this process records: event names
/// (`<pod>.<hex nanoseconds>`, as client-go names them) never collide, and sorting by `eventTime`
/// gives the order in which the events were recorded.
fn monotonic_now() -> Timestamp {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = i64::try_from(Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
    let mut prev = LAST.load(Ordering::SeqCst);
    loop {
        // Microsecond steps, so that MicroTime (eventTime) keeps the order too.
        let next = now.max(prev - prev % 1000 + 1000);
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Timestamp::from_nanosecond(i128::from(next)).unwrap_or_else(|_| Timestamp::now()),
            Err(p) => prev = p,
        }
    }
}

/// Event type `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Events a [`Recorder`] recorded: aggregation key → (namespace, name, count).
pub type Recorded = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, String, i32)>>>;

/// Who records: `source.component` / `reportingComponent`, `source.host`, `reportingInstance`.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// `source.component` and `reportingComponent` (`kubelet`, `default-scheduler`).
    pub component: String,
    /// `source.host` (the node for the kubelet; none for the scheduler).
    pub host: Option<String>,
    /// `reportingInstance`.
    pub instance: String,
    /// `action` (the scheduler sets `Scheduling`/`Binding`; the kubelet none).
    pub action: Option<String>,
    /// Events recorded so far, by client-go's aggregation key (`getEventKey`: source, involved
    /// object with field path, type, reason, message) → (namespace, name, count): a repeat
    /// raises the count of the first Event instead of creating another, as client-go's
    /// EventCorrelator does, so watchers see it MODIFIED.
    pub recorded: Recorded,
}

/// The `fieldPath` of a container in a pod's involvedObject: `spec.initContainers{name}` or
/// `spec.containers{name}`.
pub fn container_field_path(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// The involvedObject for a pod, with an optional `fieldPath`
/// (`spec.containers{name}` / `spec.initContainers{name}`).
pub fn pod_ref(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Pod".to_string()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

impl Recorder {
    /// Build the Event object (count 1, first = last timestamp, eventTime with microseconds).
    pub fn build(&self, involved: ObjectReference, type_: EventType, reason: &str, message: &str) -> Event {
        let now = monotonic_now();
        let name = format!(
            "{}.{:x}",
            involved.name.clone().unwrap_or_default(),
            now.as_nanosecond()
        );
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(involved.namespace.clone().unwrap_or_else(|| "default".into())),
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            action: self.action.clone(),
            ..Event::default()
        }
    }

    /// Create the Event through the API server. Failures are logged, not returned: like
    /// client-go's recorder, a lost event never fails the caller.
    pub async fn emit(
        &self,
        client: &kube::Client,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let key = [
            self.component.as_str(),
            self.host.as_deref().unwrap_or_default(),
            involved.kind.as_deref().unwrap_or_default(),
            involved.namespace.as_deref().unwrap_or_default(),
            involved.name.as_deref().unwrap_or_default(),
            involved.field_path.as_deref().unwrap_or_default(),
            involved.uid.as_deref().unwrap_or_default(),
            type_.as_str(),
            reason,
            message,
        ]
        .join("\u{1f}");
        let repeat = self.recorded.lock().ok().and_then(|mut m| {
            m.get_mut(&key).map(|e| {
                e.2 += 1;
                e.clone()
            })
        });
        if let Some((ns, name, count)) = repeat {
            let api: Api<Event> = Api::namespaced(client.clone(), &ns);
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(monotonic_now())});
            if let Err(e) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                tracing::warn!(error = %e, reason, message, "could not update event");
            }
            return;
        }
        let ev = self.build(involved, type_, reason, message);
        let ns = ev.metadata.namespace.clone().unwrap_or_default();
        let name = ev.metadata.name.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        match api.create(&PostParams::default(), &ev).await {
            Ok(_) => {
                if let Ok(mut m) = self.recorded.lock() {
                    m.insert(key, (ns, name, 1));
                }
            }
            Err(e) => tracing::warn!(error = %e, reason, message, "could not record event"),
        }
    }
}
