//! Conversions between a stored representation and another served version of the same objects:
//! `events.k8s.io/v1` Events are served from the core/v1 Event store, as in Kubernetes.

use serde_json::{Map, Value, json};

/// (core/v1 field, events.k8s.io/v1 field) pairs that only differ in name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Fields with the same name in both versions.
const EVENT_SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

fn rename(obj: &Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) -> Map<String, Value> {
    let mut out = Map::new();
    for k in EVENT_SHARED {
        if let Some(v) = obj.get(*k) {
            out.insert((*k).to_owned(), v.clone());
        }
    }
    for (from, to) in pairs {
        if let Some(v) = obj.get(from) {
            out.insert(to.to_owned(), v.clone());
        }
    }
    out
}

/// core/v1 Event → events.k8s.io/v1 Event (Go zero values as Kubernetes serializes them).
pub fn event_to_events_v1(core: &Value) -> Value {
    let mut out = rename(core, EVENT_FIELDS.iter().copied());
    for k in ["eventTime", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"] {
        out.entry(k).or_insert(Value::Null);
    }
    out.entry("regarding").or_insert_with(|| json!({}));
    out.entry("deprecatedSource").or_insert_with(|| json!({}));
    for k in [
        "reportingController",
        "reportingInstance",
        "note",
        "reason",
        "type",
        "action",
    ] {
        if out.get(k).and_then(Value::as_str) == Some("") {
            out.remove(k);
        }
    }
    if out.get("deprecatedCount").and_then(Value::as_i64) == Some(0) {
        out.remove("deprecatedCount");
    }
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// events.k8s.io/v1 Event → core/v1 Event.
pub fn events_v1_to_event(v1: &Value) -> Value {
    let mut out = rename(v1, EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)));
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// Field selector labels of events.k8s.io/v1 mapped to the stored core/v1 names.
pub fn events_v1_field(label: &str) -> String {
    if let Some(rest) = label.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match label {
        "reportingController" => "reportingComponent".to_owned(),
        "deprecatedSource" => "source".to_owned(),
        "note" => "message".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let v1 = json!({
            "metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "sgsim",
            "reportingInstance": "i", "action": "Binding", "reason": "Scheduled", "regarding": {"kind": "Pod", "name": "p"},
            "note": "hello", "type": "Normal",
        });
        let core = events_v1_to_event(&v1);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "sgsim");
        let back = event_to_events_v1(&core);
        assert_eq!(back["note"], "hello");
        assert_eq!(back["regarding"]["kind"], "Pod");
        assert_eq!(back["apiVersion"], "events.k8s.io/v1");
    }
}
