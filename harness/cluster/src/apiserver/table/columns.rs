//! Table column definitions per resource, with kubectl's names, types, priorities and
//! descriptions.

use serde_json::{Value, json};

use crate::apiserver::resources::ResourceDef;

pub(super) fn col(name: &str, ty: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

pub(super) const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

pub(super) const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(super) fn columns(def: &ResourceDef) -> Vec<Value> {
    let name = col("Name", "string", "name", 0, NAME_DESC);
    let age = col("Age", "string", "", 0, AGE_DESC);
    match def.storage {
        "pods" => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            col(
                "IP",
                "string",
                "",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                "",
                1,
                "Name of the Node where the pod is running, if it has been scheduled.",
            ),
            col(
                "Nominated Node",
                "string",
                "",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            col(
                "Readiness Gates",
                "string",
                "",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "events" => vec![
            col(
                "Last Seen",
                "string",
                "",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            col(
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            col(
                "Reason",
                "string",
                "",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col("Object", "string", "", 0, "The object that this event is about."),
            col(
                "Subobject",
                "string",
                "",
                1,
                "The subobject (field path) within the object that this event is about.",
            ),
            col("Source", "string", "", 1, "The component reporting this event."),
            col(
                "Message",
                "string",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                "",
                1,
                "The time at which the event was first recorded.",
            ),
            col("Count", "string", "", 1, "The number of times this event has occurred."),
            col("Name", "string", "", 1, NAME_DESC),
        ],
        "namespaces" => vec![name, col("Status", "string", "", 0, "The status of the namespace"), age],
        "nodes" => vec![
            name,
            col("Status", "string", "", 0, "The status of the node"),
            col("Roles", "string", "", 0, "The roles of the node"),
            age,
            col("Version", "string", "", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", "", 1, "List of internal IPs of the node."),
            col("External-IP", "string", "", 1, "List of external IPs of the node."),
            col(
                "OS-Image",
                "string",
                "",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                "",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                "",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "configmaps" => vec![
            name,
            col("Data", "integer", "", 0, "Data contains the configuration data."),
            age,
        ],
        "secrets" => vec![
            name,
            col(
                "Type",
                "string",
                "",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", "integer", "", 0, "Data contains the secret data."),
            age,
        ],
        "serviceaccounts" => vec![
            name,
            col(
                "Secrets",
                "integer",
                "",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        "priorityclasses.scheduling.k8s.io" => vec![
            name,
            col("Value", "integer", "", 0, "The value of this priority class."),
            col(
                "Global-Default",
                "boolean",
                "",
                0,
                "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
            ),
            age,
            col(
                "PreemptionPolicy",
                "string",
                "",
                0,
                "PreemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        "persistentvolumeclaims" => vec![
            name,
            col("Status", "string", "", 0, "The phase of the claim."),
            col("Volume", "string", "", 0, "The volume bound to the claim."),
            col("Capacity", "string", "", 0, "The capacity of the bound volume."),
            col("Access Modes", "string", "", 0, "The access modes of the claim."),
            col("StorageClass", "string", "", 0, "The storage class of the claim."),
            col(
                "VolumeAttributesClass",
                "string",
                "",
                0,
                "The volume attributes class of the claim.",
            ),
            age,
            col("VolumeMode", "string", "", 1, "The volume mode of the claim."),
        ],
        _ => vec![name, age],
    }
}
