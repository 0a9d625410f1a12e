//! A step's log on its way to the log service, as the product's addon sends it: every line the
//! step prints becomes a log-service [`Line`]; pending lines go to the lite-engine's `LogProxy`
//! (`Write`) about once a second after the first new line; when the step ends (not for a detached
//! step) the rest is written, the whole log (its last [`HISTORY_LIMIT`] bytes) is uploaded through
//! an upload link and the stream is closed. A failed upload fails the step, as in the product.
//! The stream is opened in the background, as the product does; lines are written only once it
//! is open (the upload at the end carries them all anyway).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::debug_enabled;
use crate::dial::{self, Target};
use crate::log_service::{HISTORY_LIMIT, Line, now_rfc3339};
use crate::proto::engine::log_proxy_client::LogProxyClient;
use crate::proto::engine::{CloseRequest, OpenRequest, UploadLinkRequest, UploadUsingLinkRequest, WriteRequest};

/// Time between a new line and the write that carries it (the product's default interval).
const INTERVAL: Duration = Duration::from_secs(1);
/// Lines per upload message (the product's batch).
const UPLOAD_BATCH: usize = 50;

#[derive(Default)]
struct State {
    number: i64,
    pending: Vec<String>,
    history: VecDeque<String>,
    size: usize,
    stopped: bool,
}

/// One step's remote log.
pub(super) struct RemoteLog {
    key: String,
    client: LogProxyClient<Channel>,
    state: Mutex<State>,
    ready: Notify,
    stop: CancellationToken,
    opened: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A gRPC error as a Go client prints it.
fn go_error(s: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

impl RemoteLog {
    /// Starts the log of `key` through the LogProxy at `proxy` (the lite-engine).
    pub(super) async fn start(proxy: &Target, key: &str) -> Arc<RemoteLog> {
        let t = proxy.clone();
        let channel = dial::channel_with(
            move || {
                let t = t.clone();
                async move { dial::dial(&t).await }
            },
            None,
            true,
        )
        .await
        .expect("a lazy channel connects later");
        let log = Arc::new(RemoteLog {
            key: key.to_string(),
            client: LogProxyClient::new(channel),
            state: Mutex::default(),
            ready: Notify::new(),
            stop: CancellationToken::new(),
            opened: AtomicBool::new(false),
            tasks: Mutex::default(),
        });
        let me = log.clone();
        let opener = tokio::spawn(async move {
            let mut c = me.client.clone();
            match c.open(OpenRequest { key: me.key.clone() }).await {
                Ok(_) => me.opened.store(true, Ordering::SeqCst),
                Err(e) => debug!("could not open the log stream {}: {}", me.key, go_error(&e)),
            }
        });
        let me = log.clone();
        let flusher = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = me.ready.notified() => {}
                    _ = me.stop.cancelled() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(INTERVAL) => {}
                    _ = me.stop.cancelled() => return,
                }
                if let Err(e) = me.flush().await {
                    debug!("could not write to the log stream {}: {}", me.key, go_error(&e));
                }
            }
        });
        log.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([opener, flusher]);
        log
    }

    /// One printed line (with its newline).
    pub(super) fn write_line(&self, text: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let line = Line::from_output(text, s.number, now_rfc3339());
        let json = serde_json::to_string(&line).unwrap_or_default();
        // keep streaming past the limit, but upload only the last HISTORY_LIMIT bytes
        while s.size + json.len() > HISTORY_LIMIT {
            match s.history.pop_front() {
                Some(old) => s.size -= old.len(),
                None => break,
            }
        }
        s.size += json.len();
        s.number += 1;
        if !s.stopped {
            s.pending.push(json.clone());
        }
        s.history.push_back(json);
        drop(s);
        self.ready.notify_one();
    }

    async fn flush(&self) -> Result<(), tonic::Status> {
        if !self.opened.load(Ordering::SeqCst) {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).pending);
        if lines.is_empty() {
            return Ok(());
        }
        let mut c = self.client.clone();
        c.write(WriteRequest {
            key: self.key.clone(),
            lines,
        })
        .await
        .map(drop)
    }

    /// Ends the log: the last write, the upload of the whole log and the close. The upload's
    /// error, as the product reports it.
    pub(super) async fn close(&self) -> Result<(), String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.flush().await {
            debug!("could not write to the log stream {}: {}", self.key, go_error(&e));
        }
        let result = self.upload().await.map_err(|e| go_error(&e));
        let mut c = self.client.clone();
        if let Err(e) = c.close(CloseRequest { key: self.key.clone() }).await {
            debug!("could not close the log stream {}: {}", self.key, go_error(&e));
        }
        result
    }

    async fn upload(&self) -> Result<(), tonic::Status> {
        let history: Vec<String> = {
            let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.history.iter().map(|j| format!("{j}\n")).collect()
        };
        let mut c = self.client.clone();
        let link = c
            .upload_link(UploadLinkRequest { key: self.key.clone() })
            .await?
            .into_inner()
            .link;
        let mut batches: Vec<UploadUsingLinkRequest> = history
            .chunks(UPLOAD_BATCH)
            .map(|lines| UploadUsingLinkRequest {
                link: link.clone(),
                lines: lines.to_vec(),
            })
            .collect();
        if batches.is_empty() {
            batches.push(UploadUsingLinkRequest {
                link,
                lines: Vec::new(),
            });
        }
        c.upload_using_link(tokio_stream::iter(batches)).await.map(drop)
    }
}
