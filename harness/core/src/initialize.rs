//! The Initialize step log, worded as the product writes it: the product's own lines around the pod
//! start (harness-core `K8sTaskExecutor` / `K8EventHandler`), how a Kubernetes event becomes a line,
//! and the text format of `initialize.log` that the reporter and the golden files share.
//!
//! Kubernetes' own messages (the events' text) are worded in `sgsim_cluster::k8s`; this module only
//! decides which of them the log shows and how.

use k8s_openapi::api::core::v1::Pod;

use crate::record::{InitLine, Level};

/// The product's first line, before it creates the pod.
pub fn starting_job(pod: &str, ns: &str) -> String {
    format!("Starting job to create pod {pod} on {ns} namespace")
}

/// The product's line once the pod is Running (the Initialize step then succeeds).
pub fn pod_running(pod: &str, ns: &str) -> String {
    format!("Pod {pod} is now in running status on {ns} namespace")
}

/// The product's line when the pod could not be created, failed, or missed its initTimeout.
pub fn pod_failed_to_start(pod: &str, ns: &str) -> String {
    format!("Pod {pod} has failed to start on {ns} namespace")
}

/// Whether a line is one of the product's own (not a Kubernetes event's message).
pub fn is_product_line(text: &str) -> bool {
    (text.starts_with("Starting job to create pod ") && text.ends_with(" namespace"))
        || (text.starts_with("Pod ")
            && (text.ends_with(" namespace"))
            && (text.contains(" is now in running status on ") || text.contains(" has failed to start on ")))
}

/// The level a pod event is logged at, as the product's event handler decides it
/// (harness-core `K8EventHandler.getLogLevel`): WARN only when the type equals `"WARNING"`.
/// Kubernetes writes `Warning`, so every Kubernetes event is logged at INFO.
pub fn event_level(event_type: Option<&str>) -> Level {
    if event_type == Some("WARNING") {
        Level::Warn
    } else {
        Level::Info
    }
}

/// A pod event as an Initialize line: its message verbatim at [`event_level`].
pub fn event_line(event_type: Option<&str>, message: &str) -> InitLine {
    InitLine {
        level: event_level(event_type),
        text: message.to_string(),
    }
}

/// One line of `initialize.log` as text: the message verbatim, `WARN ` before a warning.
pub fn format_line(level: Level, text: &str) -> String {
    match level {
        Level::Info => text.to_string(),
        Level::Warn => format!("WARN {text}"),
    }
}

/// The whole Initialize log as text, one line each, as `initialize.log` holds it (before
/// normalization).
pub fn format_log(lines: &[InitLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&format_line(l.level, &l.text));
        out.push('\n');
    }
    out
}

/// Why a pod is not running when initTimeout has passed, as the product reports it
/// (harness-core `K8sTaskExecutor`-side pod wait: the waiting containers' messages, or else the pod
/// conditions' messages, joined with ", "; when there is none, "Timeout exception: Pod containers
/// failed to reach running state within N seconds"). Conditions without a message are left out.
pub fn init_timeout_message(p: &Pod, init_timeout_secs: u64) -> String {
    let status = p.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .filter(|c| !c.is_empty());
    let parts: Vec<String> = match containers {
        Some(cs) => cs
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
            .collect(),
        None => status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| cs.iter().filter_map(|c| c.message.clone()).collect())
            .unwrap_or_default(),
    };
    let msg = parts.join(", ");
    if msg.is_empty() {
        format!("Timeout exception: Pod containers failed to reach running state within {init_timeout_secs} seconds")
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_timeout_message_as_the_product_builds_it() {
        let pod = |status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status})).unwrap()
        };
        let pending = pod(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available: x."},
            {"type": "Other", "status": "False"}]}));
        assert_eq!(init_timeout_message(&pending, 5), "0/1 nodes are available: x.");
        let waiting = pod(serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "pull failed"}}},
            {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}}},
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}],
            "conditions": [{"type": "PodScheduled", "status": "True", "message": "ignored"}]}));
        assert_eq!(init_timeout_message(&waiting, 5), "pull failed, back-off");
        assert_eq!(
            init_timeout_message(&pod(serde_json::json!({})), 480),
            "Timeout exception: Pod containers failed to reach running state within 480 seconds"
        );
        assert_eq!(
            init_timeout_message(&Pod::default(), 7),
            "Timeout exception: Pod containers failed to reach running state within 7 seconds"
        );
    }

    #[test]
    fn product_lines_and_their_format() {
        let lines = [
            InitLine {
                level: Level::Info,
                text: starting_job("p-1", "ns"),
            },
            event_line(Some("Warning"), "Failed to pull image \"x\": boom"),
            event_line(Some("Normal"), "Pulled"),
            event_line(Some("WARNING"), "only this literal type is a warning to the product"),
            InitLine {
                level: Level::Info,
                text: pod_running("p-1", "ns"),
            },
        ];
        assert_eq!(
            format_log(&lines),
            "Starting job to create pod p-1 on ns namespace\nFailed to pull image \"x\": boom\nPulled\n\
             WARN only this literal type is a warning to the product\nPod p-1 is now in running status on ns namespace\n"
        );
        assert!(is_product_line(&starting_job("p", "n")));
        assert!(is_product_line(&pod_running("p", "n")));
        assert!(is_product_line(&pod_failed_to_start("p", "n")));
        assert!(!is_product_line("Successfully assigned ns/p to node-1"));
        assert!(!is_product_line(
            "Pod p-1 sandbox changed, it will be killed and re-created."
        ));
    }
}
