//! Kubernetes' own event strings, per Kubernetes version, in **one table**.
//!
//! Every string sgsim's scheduler and kubelet put in an Event or a status comes from here. The
//! formats were checked against kubernetes' source:
//! - `pkg/kubelet/images/image_manager.go` (`Pulling image %q`, `Successfully pulled image %q in %v`,
//!   `... in %v (%v including waiting)`, the later `.Truncate(time.Millisecond)` and
//!   `. Image size: %v bytes.` forms, `Container image %q already present on machine`,
//!   `Container image %q is not present with pull policy of Never`, `Failed to pull image %q: %v`,
//!   `Back-off pulling image %q`, `Failed to inspect image %q: %v`);
//! - `pkg/kubelet/kuberuntime/kuberuntime_container.go` (`Created container %s`, later
//!   `Created container: %v`, `Started container %s`, `Stopping container %s`, `Error: %v`);
//! - `pkg/scheduler/framework/types.go` (`FitError.Error`: the `0/%v nodes are available` histogram,
//!   sorted with `sort.Strings`; older releases close it with `: %v.` and append ` ` + the preemption
//!   message, newer ones use `SeparatorFormat = " %v."` for every part, hence the final `..`) and
//!   `plugins/defaultpreemption/default_preemption.go` (`"preemption: " + msg`).
//!
//! The strings that do not depend on the generation (scheduler filter reasons, volume, sandbox,
//! container-config and status messages) are the free functions and constants below the table, each
//! with the kubernetes source it follows.
//!
//! Which release introduced which form is approximate (the table names a representative version for
//! each generation); the default generation is the one the product documentation's Initialize log
//! shows: full-precision pull durations with `including waiting`, and `Created container <name>`.

use std::time::Duration;

use super::go_format::{go_duration, go_quote};

/// How the kubelet words the `Pulled` event after a real pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PulledStyle {
    /// `Successfully pulled image %q in %v` (pull time only, full precision).
    Plain,
    /// `Successfully pulled image %q in %v (%v including waiting)`, full precision.
    Waiting,
    /// As [`PulledStyle::Waiting`], both durations truncated to milliseconds.
    WaitingTruncated,
    /// As [`PulledStyle::WaitingTruncated`], plus `. Image size: %v bytes.`.
    WaitingTruncatedSize,
}

/// How the kubelet words the `Created` / `Started` container events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventStyle {
    /// `Created container %s` / `Started container %s`.
    Plain,
    /// `Created container: %v` / `Started container %s`.
    Colon,
    /// `Container created` / `Container started`.
    NoName,
}

/// How the scheduler words an untolerated taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintStyle {
    /// `node(s) had untolerated taint {%s: %s}` (first untolerated taint of the node).
    PerTaint,
    /// `node(s) had untolerated taint(s)`.
    Generic,
}

/// How `FitError.Error()` joins its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitErrorStyle {
    /// `0/N nodes are available: <fragments>.` + ` ` + `preemption: ...` (one final dot).
    Legacy,
    /// Every part formatted with `" %v."`, so the preemption part ends in `..`.
    Separator,
}

/// The strings of one Kubernetes generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct K8sMessages {
    /// Representative Kubernetes version (`major.minor`).
    pub version: &'static str,
    /// Pulled-event wording.
    pub pulled: PulledStyle,
    /// Created/Started wording.
    pub container_events: ContainerEventStyle,
    /// Untolerated-taint fragment wording.
    pub taint: TaintStyle,
    /// FailedScheduling message assembly.
    pub fit_error: FitErrorStyle,
    /// Whether the kubelet reports the `PodReadyToStartContainers` condition (1.29+).
    pub ready_to_start_condition: bool,
}

/// The table: one row per generation, oldest first.
pub const TABLE: &[K8sMessages] = &[
    K8sMessages {
        version: "1.24",
        pulled: PulledStyle::Plain,
        container_events: ContainerEventStyle::Plain,
        taint: TaintStyle::PerTaint,
        fit_error: FitErrorStyle::Legacy,
        ready_to_start_condition: false,
    },
    K8sMessages {
        version: "1.26",
        pulled: PulledStyle::Waiting,
        container_events: ContainerEventStyle::Plain,
        taint: TaintStyle::PerTaint,
        fit_error: FitErrorStyle::Legacy,
        ready_to_start_condition: false,
    },
    K8sMessages {
        version: "1.28",
        pulled: PulledStyle::WaitingTruncated,
        container_events: ContainerEventStyle::Plain,
        taint: TaintStyle::PerTaint,
        fit_error: FitErrorStyle::Separator,
        ready_to_start_condition: false,
    },
    K8sMessages {
        version: "1.30",
        pulled: PulledStyle::WaitingTruncatedSize,
        container_events: ContainerEventStyle::Plain,
        taint: TaintStyle::PerTaint,
        fit_error: FitErrorStyle::Separator,
        ready_to_start_condition: true,
    },
    K8sMessages {
        version: "1.32",
        pulled: PulledStyle::WaitingTruncatedSize,
        container_events: ContainerEventStyle::Colon,
        taint: TaintStyle::Generic,
        fit_error: FitErrorStyle::Separator,
        ready_to_start_condition: true,
    },
    K8sMessages {
        version: "1.35",
        pulled: PulledStyle::WaitingTruncatedSize,
        container_events: ContainerEventStyle::NoName,
        taint: TaintStyle::Generic,
        fit_error: FitErrorStyle::Separator,
        ready_to_start_condition: true,
    },
];

/// The default generation: the product documentation's Initialize log.
pub const DEFAULT: &K8sMessages = &TABLE[1];

impl K8sMessages {
    /// The row for a Kubernetes version (`"1.29"`, `"v1.29.3"`): the newest row not newer than it;
    /// versions older than the table get its first row, unparsable ones the default.
    pub fn for_version(version: &str) -> &'static K8sMessages {
        let Some(wanted) = minor_of(version) else {
            return DEFAULT;
        };
        let mut best = &TABLE[0];
        for row in TABLE {
            if minor_of(row.version).is_some_and(|m| m <= wanted) {
                best = row;
            }
        }
        best
    }

    /// `Pulling image %q`.
    pub fn pulling(&self, image: &str) -> String {
        format!("Pulling image {}", go_quote(image))
    }

    /// The `Pulled` message after a pull that took `pull` (runtime) and `total` (including waiting).
    pub fn pulled(&self, image: &str, pull: Duration, total: Duration, size: Option<u64>) -> String {
        let q = go_quote(image);
        match self.pulled {
            PulledStyle::Plain => format!("Successfully pulled image {q} in {}", go_duration(total)),
            PulledStyle::Waiting => format!(
                "Successfully pulled image {q} in {} ({} including waiting)",
                go_duration(pull),
                go_duration(total)
            ),
            PulledStyle::WaitingTruncated => format!(
                "Successfully pulled image {q} in {} ({} including waiting)",
                go_duration(truncate_ms(pull)),
                go_duration(truncate_ms(total))
            ),
            PulledStyle::WaitingTruncatedSize => format!(
                "Successfully pulled image {q} in {} ({} including waiting). Image size: {} bytes.",
                go_duration(truncate_ms(pull)),
                go_duration(truncate_ms(total)),
                size.unwrap_or(0)
            ),
        }
    }

    /// `Container image %q already present on machine`.
    pub fn already_present(&self, image: &str) -> String {
        format!("Container image {} already present on machine", go_quote(image))
    }

    /// `Container image %q is not present with pull policy of Never` (reason `ErrImageNeverPull`).
    pub fn never_pull(&self, image: &str) -> String {
        format!(
            "Container image {} is not present with pull policy of Never",
            go_quote(image)
        )
    }

    /// `Failed to pull image %q: %v` (reason `Failed`).
    pub fn failed_pull(&self, image: &str, err: impl std::fmt::Display) -> String {
        format!("Failed to pull image {}: {err}", go_quote(image))
    }

    /// `Back-off pulling image %q` (reason `BackOff`).
    pub fn backoff_pull(&self, image: &str) -> String {
        format!("Back-off pulling image {}", go_quote(image))
    }

    /// `Failed to inspect image %q: %v` (reason `InspectFailed`).
    pub fn inspect_failed(&self, image: &str, err: impl std::fmt::Display) -> String {
        format!("Failed to inspect image {}: {err}", go_quote(image))
    }

    /// `Error: %v` (reason `Failed`), e.g. `Error: ErrImagePull`.
    pub fn error(&self, err: &str) -> String {
        format!("Error: {err}")
    }

    /// The `Created` message.
    pub fn created(&self, container: &str) -> String {
        match self.container_events {
            ContainerEventStyle::Plain => format!("Created container {container}"),
            ContainerEventStyle::Colon => format!("Created container: {container}"),
            ContainerEventStyle::NoName => "Container created".to_string(),
        }
    }

    /// The `Started` message.
    pub fn started(&self, container: &str) -> String {
        match self.container_events {
            ContainerEventStyle::Plain | ContainerEventStyle::Colon => {
                format!("Started container {container}")
            }
            ContainerEventStyle::NoName => "Container started".to_string(),
        }
    }

    /// `Stopping container %s` (reason `Killing`).
    pub fn killing(&self, container: &str) -> String {
        format!("Stopping container {container}")
    }

    /// `Successfully assigned %v/%v to %v` (reason `Scheduled`).
    pub fn scheduled(&self, namespace: &str, pod: &str, node: &str) -> String {
        format!("Successfully assigned {namespace}/{pod} to {node}")
    }

    /// The untolerated-taint fragment for a taint `key`/`value`.
    pub fn untolerated_taint(&self, key: &str, value: &str) -> String {
        match self.taint {
            TaintStyle::PerTaint => format!("node(s) had untolerated taint {{{key}: {value}}}"),
            TaintStyle::Generic => "node(s) had untolerated taint(s)".to_string(),
        }
    }

    /// `FitError.Error()`: `num_nodes` nodes, per-node filter reasons, per-node preemption reasons.
    /// `pre_filter` replaces the filter histogram when a PreFilter plugin failed.
    pub fn fit_error(
        &self,
        num_nodes: usize,
        pre_filter: Option<&str>,
        reasons: &[Vec<String>],
        preemption: &[String],
    ) -> String {
        let head = format!("0/{num_nodes} nodes are available:");
        let filters = match pre_filter {
            Some(msg) => msg.to_string(),
            None => histogram(reasons.iter().flatten()),
        };
        let post = if preemption.is_empty() {
            None
        } else {
            Some(format!("preemption: {head} {}.", histogram(preemption.iter())))
        };
        match self.fit_error {
            FitErrorStyle::Legacy => {
                let mut msg = format!("{head} {filters}.");
                if let Some(post) = post {
                    msg.push(' ');
                    msg.push_str(&post);
                }
                msg
            }
            FitErrorStyle::Separator => {
                let mut msg = head;
                if !filters.is_empty() {
                    msg.push_str(&format!(" {filters}."));
                }
                if let Some(post) = post {
                    msg.push_str(&format!(" {post}."));
                }
                msg
            }
        }
    }

    /// `FitError.Error()` for a pod with `preemptionPolicy: Never`: the filter part, then
    /// default_preemption.go's `not eligible due to preemptionPolicy=Never.` as the preemption part.
    pub fn fit_error_preemption_never(
        &self,
        num_nodes: usize,
        pre_filter: Option<&str>,
        reasons: &[Vec<String>],
    ) -> String {
        let head = self.fit_error(num_nodes, pre_filter, reasons, &[]);
        match self.fit_error {
            FitErrorStyle::Legacy => format!("{head} preemption: not eligible due to preemptionPolicy=Never."),
            FitErrorStyle::Separator => format!("{head} preemption: not eligible due to preemptionPolicy=Never.."),
        }
    }

    /// The Node's `nodeInfo.kubeletVersion` / `kubeProxyVersion` (`v<major.minor>.0`).
    pub fn kubelet_version(&self) -> String {
        format!("v{}.0", self.version)
    }
}

/// The scheduler's event message cut (schedule_one.go `truncateMessage`): at most 1024 bytes,
/// ending in ` ...` when cut.
pub fn truncate_event_message(msg: &str) -> String {
    const MAX: usize = 1024;
    const SUFFIX: &str = " ...";
    if msg.len() <= MAX {
        return msg.to_string();
    }
    let mut end = MAX - SUFFIX.len();
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{SUFFIX}", &msg[..end])
}

// ---- Scheduler: filter and preemption reasons (generation-independent). ----

/// NodeUnschedulable's reason (`plugins/nodeunschedulable`: `ErrReasonUnschedulable`).
pub const NODE_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// NodeAffinity's reason (`plugins/nodeaffinity`: `ErrReasonPod`).
pub const NODE_AFFINITY_MISMATCH: &str = "node(s) didn't match Pod's node affinity/selector";
/// NodeResourcesFit's reason for the pod count (`plugins/noderesources/fit.go`).
pub const TOO_MANY_PODS: &str = "Too many pods";
/// Preemption's per-node reason when the node's failure cannot be fixed by evicting pods
/// (`defaultpreemption`: `framework.UnschedulableAndUnresolvable`).
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Preemption's per-node reason when evicting could help but nothing is evictable.
pub const NO_PREEMPTION_VICTIMS: &str = "No preemption victims found for incoming pod";

/// NodeResourcesFit's reason for a resource (`fit.go`: `"Insufficient " + resourceName`).
pub fn insufficient(resource: &str) -> String {
    format!("Insufficient {resource}")
}

/// VolumeBinding's PreFilter failure for a missing claim (`persistentvolumeclaim %q not found`).
pub fn pvc_not_found(claim: &str) -> String {
    format!("persistentvolumeclaim {} not found", go_quote(claim))
}

// ---- Kubelet: generation-independent messages. ----

/// The Node's `Ready` condition reason and message (`pkg/kubelet/nodestatus/setters.go`).
pub const NODE_READY_REASON: &str = "KubeletReady";
/// See [`NODE_READY_REASON`].
pub const NODE_READY_MESSAGE: &str = "kubelet is posting ready status";

/// `pods/log` of a container not started yet (`kubelet_pods.go` `validateContainerLogStatus`:
/// `container %q in pod %q is waiting to start: %s`).
pub fn waiting_to_start(container: &str, pod: &str) -> String {
    format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating")
}

/// The `DeadlineExceeded` event and pod status message (`pkg/kubelet/active_deadline.go`).
pub const DEADLINE_EXCEEDED: &str = "Pod was active on the node longer than the specified deadline";

/// `MountVolume.SetUp failed for volume %q : <why>` (operation_generator.go; note the space).
pub fn failed_mount(volume: &str, why: &str) -> String {
    format!("MountVolume.SetUp failed for volume {} : {why}", go_quote(volume))
}

/// The API server's NotFound for a ConfigMap (`apierrors.NewNotFound`: `%s %q not found`).
pub fn configmap_not_found(name: &str) -> String {
    format!("configmap {} not found", go_quote(name))
}

/// The API server's NotFound for a Secret (`apierrors.NewNotFound`: `%s %q not found`).
pub fn secret_not_found(name: &str) -> String {
    format!("secret {} not found", go_quote(name))
}

/// A missing key of an env `configMapKeyRef` (`kubelet_pods.go`: `couldn't find key %v in ConfigMap %v/%v`).
pub fn configmap_key_not_found(key: &str, namespace: &str, name: &str) -> String {
    format!("couldn't find key {key} in ConfigMap {namespace}/{name}")
}

/// A missing key of an env `secretKeyRef` (`kubelet_pods.go`: `couldn't find key %v in Secret %v/%v`).
pub fn secret_key_not_found(key: &str, namespace: &str, name: &str) -> String {
    format!("couldn't find key {key} in Secret {namespace}/{name}")
}

/// `format.Pod`: `%q` of `<name>_<namespace>(<uid>)`, as the kubelet names a pod in messages.
pub fn format_pod(name: &str, namespace: &str, uid: &str) -> String {
    go_quote(&format!("{name}_{namespace}({uid})"))
}

/// `verifyRunAsNonRoot` (security_context_others.go) with `runAsUser: 0`; `pod` is [`format_pod`].
pub fn run_as_user_breaks_non_root(pod: &str, container: &str) -> String {
    format!("container's runAsUser breaks non-root policy (pod: {pod}, container: {container})")
}

/// `verifyRunAsNonRoot` with an image that runs as root; `pod` is [`format_pod`].
pub fn run_as_non_root_image_root(pod: &str, container: &str) -> String {
    format!("container has runAsNonRoot and image will run as root (pod: {pod}, container: {container})")
}

/// `verifyRunAsNonRoot` with an image whose user is a name; `pod` is [`format_pod`].
pub fn run_as_non_root_non_numeric(user: &str, pod: &str, container: &str) -> String {
    format!(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod}, container: {container})"
    )
}

/// The `FailedCreatePodSandBox` event (kuberuntime_manager.go: `Failed to create pod sandbox: %v`).
pub fn failed_create_sandbox(err: impl std::fmt::Display) -> String {
    format!("Failed to create pod sandbox: {err}")
}

/// The runtime's error for a sandbox image it cannot get (containerd CRI:
/// `failed to get sandbox image %q: %v`).
pub fn sandbox_image_failed(image: &str, err: impl std::fmt::Display) -> String {
    format!("failed to get sandbox image {image:?}: {err}")
}

/// The `Initialized=False` condition message (status.go `GeneratePodInitializedCondition`).
pub fn containers_incomplete(names: &[String]) -> String {
    format!("containers with incomplete status: [{}]", names.join(" "))
}

/// The `ContainersReady`/`Ready=False` condition message (status.go
/// `GenerateContainersReadyCondition`).
pub fn containers_unready(names: &[String]) -> String {
    format!("containers with unready status: [{}]", names.join(" "))
}

fn histogram<'a>(reasons: impl Iterator<Item = &'a String>) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in reasons {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// `/version`'s gitVersion for a scenario's `kubernetesVersion` (`1.32` → `v1.32.0`).
pub fn git_version(v: &str) -> String {
    let v = v.trim().trim_start_matches('v');
    if v.matches('.').count() >= 2 {
        format!("v{v}")
    } else {
        format!("v{v}.0")
    }
}

fn minor_of(version: &str) -> Option<u32> {
    let v = version.trim().trim_start_matches('v');
    let mut it = v.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    if major != 1 {
        return None;
    }
    Some(minor)
}

fn truncate_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_version_of_a_scenarios_kubernetes_version() {
        assert_eq!(git_version("1.32"), "v1.32.0");
        assert_eq!(git_version("v1.30.4"), "v1.30.4");
        assert_eq!(K8sMessages::for_version("1.32").version, "1.32");
        assert_eq!(K8sMessages::for_version("v1.33.1").version, "1.32");
    }

    #[test]
    fn pulled_default_matches_documentation() {
        let m = DEFAULT;
        assert_eq!(
            m.pulled(
                "harness/ci-addon:1.16.8",
                Duration::from_nanos(437_806_182),
                Duration::from_nanos(437_815_597),
                None
            ),
            "Successfully pulled image \"harness/ci-addon:1.16.8\" in 437.806182ms (437.815597ms including waiting)"
        );
        assert_eq!(m.created("setup-addon"), "Created container setup-addon");
        let new = K8sMessages::for_version("v1.31.2");
        assert_eq!(
            new.pulled(
                "x",
                Duration::from_nanos(437_806_182),
                Duration::from_nanos(1_437_815_597),
                Some(12)
            ),
            "Successfully pulled image \"x\" in 437ms (1.437s including waiting). Image size: 12 bytes."
        );
        assert_eq!(K8sMessages::for_version("1.33").created("a"), "Created container: a");
        assert_eq!(K8sMessages::for_version("1.36").created("a"), "Container created");
        assert_eq!(K8sMessages::for_version("1.20").version, "1.24");
        assert_eq!(K8sMessages::for_version("junk"), DEFAULT);
    }

    #[test]
    fn fit_error_example() {
        let reasons = vec![
            vec!["node(s) had untolerated taint {dedicated: ci}".to_string()],
            vec!["Insufficient cpu".to_string()],
            vec!["Insufficient cpu".to_string()],
        ];
        let pre = vec![
            "Preemption is not helpful for scheduling".to_string(),
            "No preemption victims found for incoming pod".to_string(),
            "No preemption victims found for incoming pod".to_string(),
        ];
        assert_eq!(
            DEFAULT.fit_error(3, None, &reasons, &pre),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: ci}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption \
             victims found for incoming pod."
        );
        assert_eq!(
            K8sMessages::for_version("1.29").fit_error(1, None, &reasons[1..2], &pre[1..2]),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption \
             victims found for incoming pod.."
        );
    }

    #[test]
    fn truncation() {
        let long = "x".repeat(2000);
        let t = truncate_event_message(&long);
        assert_eq!(t.len(), 1024);
        assert!(t.ends_with(" ..."));
        assert_eq!(truncate_event_message("short"), "short");
    }
}
