//! The log service, as the product's lite-engine uses it, played by sgsim on the host.
//!
//! In the product a step's log never goes through the container runtime: the addon turns every
//! line the step prints into a log-service line (`{"level","pos","out","time","args"}`) and sends
//! batches to the lite-engine's `LogProxy` (gRPC, port 20001), which relays each call to the log
//! service's HTTP API at `HARNESS_LOG_SERVICE_ENDPOINT` with the header `X-Harness-Token`
//! (`HARNESS_LOG_SERVICE_TOKEN`). When the step ends the addon uploads the whole log through an
//! upload link and closes the stream. docs/protocol.md lists the calls and their sources.
//!
//! - [`Line`]: one log line on the wire, and [`text_of`], the text a user reads.
//! - [`LogStore`]: what the service received, per key; the runner reads step logs from it.
//! - [`router`]: the HTTP API, served by [`crate::delegate::DelegateServer`] under
//!   [`LOG_SERVICE_PATH`] next to the delegate's gRPC services (one listener, HTTP/1 and HTTP/2).
//! - [`HttpLogClient`]: the lite-engine's client of that API (plain HTTP/1.1, names resolved
//!   without NSS as in [`crate::dial`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use crate::dial::{self, Target};

/// Path under which the delegate's listener serves the log service.
pub const LOG_SERVICE_PATH: &str = "/log-service";
/// The header carrying HARNESS_LOG_SERVICE_TOKEN.
pub const TOKEN_HEADER: &str = "X-Harness-Token";
/// The most log the product keeps for upload, per step (the stream itself goes on).
pub const HISTORY_LIMIT: usize = 5 * 1024 * 1024;

/// One log line as the log service stores it (the product's `stream.Line`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Line {
    #[serde(default)]
    pub level: String,
    #[serde(default, rename = "pos")]
    pub number: i64,
    #[serde(default, rename = "out")]
    pub message: String,
    #[serde(default)]
    pub time: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub args: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

impl Line {
    /// The product's conversion of one printed line (with its newline): a JSON object with `msg`
    /// and `level` becomes that message at that level with every field in `args`; anything else
    /// is the text itself at level `info`.
    pub fn from_output(text: &str, number: i64, time: String) -> Line {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
            && let (Some(msg), Some(level)) = (map.get("msg"), map.get("level"))
        {
            let plain = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Line {
                level: plain(level),
                number,
                message: plain(msg),
                time,
                args: map.iter().map(|(k, v)| (k.clone(), plain(v))).collect(),
            };
        }
        Line {
            level: "info".into(),
            number,
            message: text.to_string(),
            time,
            args: BTreeMap::new(),
        }
    }
}

/// The text of `lines` as a user reads it: each line's message, one per line.
pub fn text_of<'a>(lines: impl IntoIterator<Item = &'a Line>) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.message);
        if !l.message.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Parses newline-separated JSON lines (an uploaded log); lines that are not a [`Line`] are kept
/// as text so nothing is lost.
pub fn parse_json_lines(data: &[u8]) -> Vec<Line> {
    String::from_utf8_lossy(data)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Line>(l)
                .unwrap_or_else(|_| Line::from_output(&format!("{l}\n"), i as i64, String::new()))
        })
        .collect()
}

/// Now as RFC 3339 with nanoseconds in UTC (Go's `time.Time` JSON form).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[derive(Debug, Default)]
struct StreamState {
    lines: Vec<Line>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Streams {
    streams: HashMap<String, StreamState>,
    blobs: HashMap<String, Vec<u8>>,
}

/// What the log service received, per key. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Streams>>,
    token: Arc<str>,
}

impl LogStore {
    /// A store whose API accepts requests carrying `token`.
    pub fn new(token: &str) -> Self {
        LogStore {
            inner: Arc::default(),
            token: token.into(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lines of `key`: the uploaded log when there is one (the whole step), else what was
    /// streamed so far. `None` when nothing was ever opened, streamed or uploaded under `key`.
    pub fn lines(&self, key: &str) -> Option<Vec<Line>> {
        let s = self.lock();
        if let Some(blob) = s.blobs.get(key) {
            return Some(parse_json_lines(blob));
        }
        s.streams.get(key).map(|st| st.lines.clone())
    }

    /// The text of [`LogStore::lines`].
    pub fn text(&self, key: &str) -> Option<String> {
        self.lines(key).map(|l| text_of(&l))
    }

    /// Whether the stream of `key` was closed (the addon closes it when a step ends).
    pub fn closed(&self, key: &str) -> bool {
        self.lock().streams.get(key).is_some_and(|s| s.closed)
    }

    fn open(&self, key: &str) {
        let mut s = self.lock();
        let st = s.streams.entry(key.to_string()).or_default();
        st.closed = false;
    }

    fn write(&self, key: &str, lines: Vec<Line>) -> bool {
        let mut s = self.lock();
        match s.streams.get_mut(key) {
            Some(st) => {
                st.lines.extend(lines);
                true
            }
            None => false,
        }
    }

    fn close(&self, key: &str) -> bool {
        let mut s = self.lock();
        match s.streams.get_mut(key) {
            Some(st) => {
                st.closed = true;
                true
            }
            None => false,
        }
    }

    fn put_blob(&self, key: &str, data: Vec<u8>) {
        self.lock().blobs.insert(key.to_string(), data);
    }

    fn blob(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().blobs.get(key).cloned()
    }
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    #[serde(rename = "accountID", default)]
    account_id: String,
    #[serde(default)]
    key: String,
}

fn error(code: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "code": code.as_u16(), "message": message });
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

/// Why a request was refused.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// Checks the token and the query; the key on success.
fn admit(store: &LogStore, headers: &HeaderMap, q: &KeyQuery) -> Result<String, Refusal> {
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if token != &*store.token {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "sgsim log service: missing or wrong X-Harness-Token",
        ));
    }
    if q.account_id.is_empty() || q.key.is_empty() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "sgsim log service: accountID and key are required",
        ));
    }
    Ok(q.key.clone())
}

async fn open_stream(State(store): State<LogStore>, headers: HeaderMap, Query(q): Query<KeyQuery>) -> Response {
    match admit(&store, &headers, &q) {
        Ok(key) => {
            store.open(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r.into_response(),
    }
}

async fn write_stream(
    State(store): State<LogStore>,
    headers: HeaderMap,
    Query(q): Query<KeyQuery>,
    body: Bytes,
) -> Response {
    let key = match admit(&store, &headers, &q) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let lines: Vec<Line> = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("sgsim log service: bad lines: {e}")),
    };
    if store.write(&key, lines) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "stream: not found")
    }
}

async fn close_stream(State(store): State<LogStore>, headers: HeaderMap, Query(q): Query<KeyQuery>) -> Response {
    match admit(&store, &headers, &q) {
        Ok(key) if store.close(&key) => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => error(StatusCode::NOT_FOUND, "stream: not found"),
        Err(r) => r.into_response(),
    }
}

async fn upload_link(State(store): State<LogStore>, headers: HeaderMap, Query(q): Query<KeyQuery>) -> Response {
    let key = match admit(&store, &headers, &q) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::dial::DEFAULT_DELEGATE_ENDPOINT);
    let link = format!(
        "http://{host}{LOG_SERVICE_PATH}/blob?accountID={}&key={}",
        query_escape(&q.account_id),
        query_escape(&key)
    );
    let body = serde_json::json!({ "link": link, "expires": 3_600_000_000_000u64 });
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn upload_blob(
    State(store): State<LogStore>,
    headers: HeaderMap,
    Query(q): Query<KeyQuery>,
    body: Bytes,
) -> Response {
    match admit(&store, &headers, &q) {
        Ok(key) => {
            store.put_blob(&key, body.to_vec());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r.into_response(),
    }
}

async fn download_blob(State(store): State<LogStore>, headers: HeaderMap, Query(q): Query<KeyQuery>) -> Response {
    match admit(&store, &headers, &q) {
        Ok(key) => match store.blob(&key) {
            Some(b) => (StatusCode::OK, b).into_response(),
            None => error(StatusCode::NOT_FOUND, "sgsim log service: no such blob"),
        },
        Err(r) => r.into_response(),
    }
}

/// The log service's HTTP API over `store` (paths relative to [`LOG_SERVICE_PATH`]):
/// `POST|PUT|DELETE /stream` open, write and close a stream; `POST /blob/link/upload` returns an
/// upload link (`PUT` of the whole log to `/blob`); `POST|PUT|GET /blob` upload and download.
pub fn router(store: LogStore) -> Router {
    Router::new()
        .route("/stream", post(open_stream).put(write_stream).delete(close_stream))
        .route("/blob/link/upload", post(upload_link))
        .route("/blob", post(upload_blob).put(upload_blob).get(download_blob))
        .with_state(store)
}

/// Percent-encodes what may not stand in a query value as is.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error of the log service client: a transport error or the service's answer.
#[derive(Debug, thiserror::Error)]
pub enum LogClientError {
    #[error("{0}")]
    Config(String),
    #[error("{method} {url}: {source}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The service's error message (its JSON `message`, else the body, else the status text).
    #[error("{0}")]
    Service(String),
}

/// The lite-engine's client of the log service HTTP API (the product's `client.HTTPClient`).
#[derive(Debug, Clone)]
pub struct HttpLogClient {
    pub endpoint: String,
    pub account_id: String,
    pub token: String,
}

/// The link returned by `UploadLink`.
#[derive(Debug, Deserialize)]
struct Link {
    link: String,
}

impl HttpLogClient {
    fn url(&self, path: &str, key: &str) -> String {
        format!(
            "{}{path}?accountID={}&key={}",
            self.endpoint.trim_end_matches('/'),
            query_escape(&self.account_id),
            query_escape(key)
        )
    }

    /// `POST /stream`.
    pub async fn open(&self, key: &str) -> Result<(), LogClientError> {
        self.call("POST", &self.url("/stream", key), Vec::new()).await.map(drop)
    }

    /// `PUT /stream` with the lines as a JSON array.
    pub async fn write(&self, key: &str, lines: &[Line]) -> Result<(), LogClientError> {
        let body = serde_json::to_vec(lines).map_err(|e| LogClientError::Config(e.to_string()))?;
        self.call("PUT", &self.url("/stream", key), body).await.map(drop)
    }

    /// `DELETE /stream`.
    pub async fn close(&self, key: &str) -> Result<(), LogClientError> {
        self.call("DELETE", &self.url("/stream", key), Vec::new())
            .await
            .map(drop)
    }

    /// `POST /blob/link/upload`: the link to upload the whole log to.
    pub async fn upload_link(&self, key: &str) -> Result<String, LogClientError> {
        let body = self
            .call("POST", &self.url("/blob/link/upload", key), Vec::new())
            .await?;
        let link: Link = serde_json::from_slice(&body)
            .map_err(|e| LogClientError::Service(format!("bad upload link answer: {e}")))?;
        Ok(link.link)
    }

    /// `PUT <link>` with the log's JSON lines.
    pub async fn upload_using_link(&self, link: &str, data: Vec<u8>) -> Result<(), LogClientError> {
        self.call("PUT", link, data).await.map(drop)
    }

    /// `POST /blob` with the log's JSON lines.
    pub async fn upload(&self, key: &str, data: Vec<u8>) -> Result<(), LogClientError> {
        self.call("POST", &self.url("/blob", key), data).await.map(drop)
    }

    async fn call(&self, method: &'static str, url: &str, body: Vec<u8>) -> Result<Vec<u8>, LogClientError> {
        let transport = |source| LogClientError::Transport {
            method,
            url: url.to_string(),
            source,
        };
        let (status, body) = http_request(method, url, &self.token, body).await.map_err(transport)?;
        if status == 204 || (200..300).contains(&status) {
            return Ok(body);
        }
        #[derive(Deserialize)]
        struct Error {
            message: String,
        }
        let msg = match serde_json::from_slice::<Error>(&body) {
            Ok(e) => e.message,
            Err(_) if !body.is_empty() => String::from_utf8_lossy(&body).into_owned(),
            Err(_) => StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_string(),
        };
        Err(LogClientError::Service(msg))
    }
}

/// One HTTP/1.1 request (`Connection: close`) to an `http://host[:port]/path?query` URL; the
/// status and the body.
async fn http_request(method: &str, url: &str, token: &str, body: Vec<u8>) -> std::io::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{m}: {url}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let target = Target::parse(&target).map_err(|e| invalid(&e.to_string()))?;
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(10), dial::dial(&target))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {target} timed out"),
            )
        })??;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{TOKEN_HEADER}: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no complete answer in 60s"))??;
    parse_response(&raw).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP answer"))
}

/// Status and body of a whole HTTP/1.1 answer (Content-Length, chunked or until EOF).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        if k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let rest = &raw[end + 4..];
    if chunked {
        let mut out = Vec::new();
        let mut r = rest;
        loop {
            let nl = r.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&r[..nl]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            r = &r[nl + 2..];
            if size == 0 {
                return Some((status, out));
            }
            out.extend_from_slice(r.get(..size)?);
            r = r.get(size + 2..)?;
        }
    }
    let body = match length {
        Some(n) => rest.get(..n)?.to_vec(),
        None => rest.to_vec(),
    };
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_with_msg_and_level_become_that_message() {
        let l = Line::from_output("{\"level\":\"warn\",\"msg\":\"disk low\",\"n\":3}\n", 4, "t".into());
        assert_eq!(l.level, "warn");
        assert_eq!(l.message, "disk low");
        assert_eq!(l.args.get("n").map(String::as_str), Some("3"));
        assert_eq!(l.number, 4);
        let plain = Line::from_output("{\"msg\":\"no level\"}\n", 0, "t".into());
        assert_eq!(plain.message, "{\"msg\":\"no level\"}\n");
        assert_eq!(plain.level, "info");
        assert_eq!(text_of(&[l, plain]), "disk low\n{\"msg\":\"no level\"}\n");
    }

    #[test]
    fn lines_use_the_wire_names() {
        let l = Line::from_output("hi\n", 2, "2026-01-02T03:04:05.000000006Z".into());
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["out"], "hi\n");
        assert_eq!(v["pos"], 2);
        assert_eq!(v["level"], "info");
        assert_eq!(v["time"], "2026-01-02T03:04:05.000000006Z");
        let back: Line =
            serde_json::from_str(r#"{"level":"info","pos":1,"out":"x\n","time":"t","args":null}"#).unwrap();
        assert_eq!(back.message, "x\n");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }

    #[test]
    fn http_answers_parse() {
        let (s, b) = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((s, b.len()), (204, 0));
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) =
            parse_response(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((s, b.as_slice()), (404, &b"abc"[..]));
        assert!(parse_response(b"garbage").is_none());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a/b:c d&e"), "a/b:c%20d%26e");
    }

    #[tokio::test]
    async fn the_http_api_over_the_delegates_listener() {
        let delegate = crate::delegate::DelegateServer::with_token("tok");
        let (addr, _guard) = delegate.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let client = |token: &str| HttpLogClient {
            endpoint: format!("http://{addr}{LOG_SERVICE_PATH}"),
            account_id: "acct".into(),
            token: token.into(),
        };
        let (good, bad) = (client("tok"), client("nope"));
        let refused = bad.open("k").await.unwrap_err().to_string();
        assert_eq!(refused, "sgsim log service: missing or wrong X-Harness-Token");
        let line = |n, m: &str| Line::from_output(m, n, now_rfc3339());
        let unopened = good.write("k", &[line(0, "x\n")]).await.unwrap_err().to_string();
        assert_eq!(unopened, "stream: not found");

        good.open("run/a b").await.unwrap();
        good.write("run/a b", &[line(0, "one\n"), line(1, "two\n")])
            .await
            .unwrap();
        let store = delegate.logs();
        assert_eq!(store.text("run/a b").as_deref(), Some("one\ntwo\n"));
        assert!(!store.closed("run/a b"));

        // the whole log through an upload link wins over the stream
        let link = good.upload_link("run/a b").await.unwrap();
        assert_eq!(
            link,
            format!("http://{addr}{LOG_SERVICE_PATH}/blob?accountID=acct&key=run/a%20b")
        );
        let blob = [line(0, "one\n"), line(1, "two\n"), line(2, "three\n")]
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect::<String>();
        good.upload_using_link(&link, blob.into_bytes()).await.unwrap();
        good.close("run/a b").await.unwrap();
        assert!(store.closed("run/a b"));
        assert_eq!(store.text("run/a b").as_deref(), Some("one\ntwo\nthree\n"));
        assert_eq!(store.text("other"), None);
    }
}
