//! `pods/log` for the pods of one node: the Docker log of the pod's container, served through the
//! API server.

use std::sync::Arc;

use bollard::query_parameters::LogsOptionsBuilder;
use futures::future::BoxFuture;
use futures::stream::StreamExt;

use super::{KubeletError, Shared};
use crate::apiserver::{LogError, LogOptions, LogStream, PodLogSource};

/// `pods/log` for the pods of one node: the Docker log of the pod's container.
pub(super) struct KubeletLogs {
    pub(super) shared: Arc<Shared>,
}

impl PodLogSource for KubeletLogs {
    fn logs(&self, namespace: &str, pod: &str, opts: LogOptions) -> BoxFuture<'static, Result<LogStream, LogError>> {
        let shared = self.shared.clone();
        let (namespace, pod) = (namespace.to_string(), pod.to_string());
        Box::pin(async move {
            let id = shared
                .container_id(&namespace, &pod, &opts.container)
                .await
                .map_err(|e| match e {
                    KubeletError::NotFound(m) => LogError::BadRequest(m),
                    other => LogError::Internal(other.to_string()),
                })?;
            let mut b = LogsOptionsBuilder::default()
                .follow(opts.follow)
                .stdout(true)
                .stderr(true)
                .timestamps(opts.timestamps);
            b = match opts.tail_lines {
                Some(n) => b.tail(&n.to_string()),
                None => b.tail("all"),
            };
            let stream = shared.docker.logs(&id, Some(b.build()));
            let out: LogStream = stream
                .map(|r| r.map(|o| o.into_bytes()).map_err(std::io::Error::other))
                .boxed();
            Ok(out)
        })
    }
}
