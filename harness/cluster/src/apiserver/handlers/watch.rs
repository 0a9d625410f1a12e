//! Watches: the change stream of one resource from a resourceVersion, filtered by namespace and
//! selectors, with initial-events and periodic bookmarks.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::request::{Params, Target, selectors, truthy};
use super::respond::stream_response;
use crate::apiserver::app::App;
use crate::apiserver::status::ApiError;
use crate::apiserver::store::{EventType, Since, WatchEvent};
use crate::apiserver::table::{self, Shape};

/// How often a watch with `allowWatchBookmarks` reports its progress.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

pub(super) fn watch_objects(app: &App, t: &Target, q: &Params, shape: Shape) -> Result<Response, ApiError> {
    let (ls, fs) = selectors(t.def, q)?;
    let send_initial = truthy(q, "sendInitialEvents");
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or_default();
    let since = match rv {
        _ if send_initial => Since::Current,
        "" | "0" => Since::Current,
        n => Since::Rv(
            n.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {n}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let def = t.def;
    let ns = t.ns.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let encode = move |kind: &str, obj: &Value| -> Bytes {
        /// One watch line, serialized from borrowed parts (no copy of the object).
        #[derive(serde::Serialize)]
        struct Line<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            object: &'a Value,
        }
        let mut line = if matches!(shape, Shape::Plain) && def.presents_as_stored(obj) {
            serde_json::to_vec(&Line { kind, object: obj })
        } else {
            serde_json::to_vec(&Line {
                kind,
                object: &table::render_one(def, obj, shape),
            })
        }
        .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    };
    let matches = move |ev: &WatchEvent| -> Option<(&'static str, Arc<Value>)> {
        if ev.resource != def.storage || ns.as_deref().is_some_and(|n| n != ev.namespace) {
            return None;
        }
        let m = |o: &Value| ls.matches(o) && fs.matches(o);
        match ev.kind {
            EventType::Added => m(&ev.object).then(|| ("ADDED", Arc::clone(&ev.object))),
            EventType::Deleted => m(&ev.object).then(|| ("DELETED", Arc::clone(&ev.object))),
            EventType::Modified => {
                let before = ev.prev.as_deref().is_some_and(&m);
                match (before, m(&ev.object)) {
                    (true, true) => Some(("MODIFIED", Arc::clone(&ev.object))),
                    (false, true) => Some(("ADDED", Arc::clone(&ev.object))),
                    (true, false) => Some(("DELETED", Arc::clone(&ev.object))),
                    (false, false) => None,
                }
            }
        }
    };
    let sub = match app.store.subscribe(def.storage, since) {
        Ok(s) => s,
        Err(e) => {
            // Kubernetes reports an expired resourceVersion as an ERROR watch event.
            let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.body()})).unwrap_or_default();
            line.push(b'\n');
            return Ok(stream_response("application/json", Body::from(line)));
        }
    };
    let mut shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        for ev in &sub.backlog {
            if let Some((kind, obj)) = matches(ev)
                && tx.send(Ok(encode(kind, &obj))).await.is_err()
            {
                return;
            }
        }
        let bookmark = |rv: u64, initial_end: bool| -> Bytes {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            let object = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta});
            let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        if send_initial && tx.send(Ok(bookmark(sub.after, true))).await.is_err() {
            return;
        }
        // With allowWatchBookmarks, a periodic BOOKMARK tells the client how far the stream got,
        // so a re-watch after a quiet period does not start from a long-gone resourceVersion.
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let (mut seen_rv, mut bookmarked_rv) = (sub.after, sub.after);
        let mut live = sub.live;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = stopped(&mut shutdown) => return,
                () = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if seen_rv > bookmarked_rv {
                        bookmarked_rv = seen_rv;
                        if tx.send(Ok(bookmark(seen_rv, false))).await.is_err() {
                            return;
                        }
                    }
                }
                ev = live.recv() => match ev {
                    Ok(ev) if ev.rv > sub.after => {
                        seen_rv = ev.rv;
                        if let Some((kind, obj)) = matches(&ev)
                            && tx.send(Ok(encode(kind, &obj))).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(stream_response(
        "application/json",
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    ))
}

/// Resolves once the server shuts down.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.is_ok();
}
