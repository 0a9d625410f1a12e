//! `pods/log`: the trait a node's kubelet implements to serve container logs.

use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// Query of one `pods/{name}/log` request, as the API server passes it to the node (`limitBytes`
/// is applied by the API server itself; `sinceSeconds`/`sinceTime` are not passed on).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Container name (resolved: the pod's only container when the request named none).
    pub container: String,
    /// Keep streaming until the container ends or the client goes away.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// Prefix every line with an RFC 3339 timestamp with nanoseconds.
    pub timestamps: bool,
    /// Logs of the previous (terminated) instance of the container.
    pub previous: bool,
}

/// Why a node could not serve logs; becomes a Kubernetes `Status` body.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// 400, e.g. `container "x" in pod "p" is waiting to start: ContainerCreating`.
    #[error("{0}")]
    BadRequest(String),
    /// 404, e.g. the container or pod is unknown to the node.
    #[error("{0}")]
    NotFound(String),
    /// 500: reading the logs failed.
    #[error("reading container logs failed")]
    Io(#[source] std::io::Error),
    /// 500 with a free-form message.
    #[error("{0}")]
    Internal(String),
}

/// A log stream: chunks of the container's log, in order.
pub type LogStream = BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// Serves container logs of the pods bound to one node (implemented by that node's kubelet and
/// registered with [`super::ApiServerHandle::register_node_logs`]).
pub trait PodLogSource: Send + Sync + 'static {
    /// Opens the log of `opts.container` in `namespace/pod`.
    fn logs(&self, namespace: &str, pod: &str, opts: LogOptions) -> BoxFuture<'static, Result<LogStream, LogError>>;
}
