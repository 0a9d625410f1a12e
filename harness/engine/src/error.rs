//! Errors of the delegate-side API.

use std::time::Duration;

/// Errors returned by [`crate::delegate`] (the host-side API).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot bind the delegate service socket {path}")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the lite-engine")]
    Connect(#[source] tonic::transport::Error),
    #[error("lite-engine call {call} failed")]
    Rpc {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("no status for task {task_id} within {after:?}")]
    StatusTimeout { task_id: String, after: Duration },
    #[error("the delegate service stopped before task {task_id} reported")]
    StatusDropped { task_id: String },
    #[error("invalid step: {0}")]
    InvalidStep(String),
}
