//! sgsim-cluster: the throwaway Kubernetes cluster sgsim runs step groups on.
//!
//! Embedded API server ([`apiserver`]), scheduler ([`scheduler`]), kubelet ([`kubelet`]) driving
//! kind-style nodes ([`node`]) through bollard, images built without a registry ([`images`]) and the
//! Docker API compatibility shim ([`docker`]). sgsim talks to the API server only through `kube::Client`.

pub mod apiserver;
pub mod cgroups;
pub mod context;
pub mod docker;
pub mod fake_kubelet;
pub mod fake_runtime;
pub mod files;
pub mod fixtures;
pub mod images;
pub mod k8s;
pub mod kube_runtime;
pub mod kubelet;
pub mod node;
pub mod pod_api;
pub mod pool;
pub mod reaper;
pub mod registry;
pub mod runner;
pub mod runtime;
pub mod scheduler;
pub mod tls;
